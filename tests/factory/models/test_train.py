"""fine_tune (TRL's SFTTrainer): a loadable checkpoint that fits its texts better, LoRA
merged, deterministic, atomic output, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import factory.models.train as train
from factory.loop.corpus import BUILTIN_AUGMENTED, seed_training_pairs
from factory.loop.prompts import training_example
from factory.models import ModelError, SamplingConfig
from factory.models.steps import TRAINING_FILENAME, optimizer_steps
from factory.models.train import (
    TrainReport,
    cosine_lr,
    encode_texts,
    fine_tune,
    padded_batches,
    prompt_and_completion,
)
from factory.models.transformers_backend import TransformersBackend, load_pretrained

# new texts (other seeds than the base model's corpus, which has every third), as verified pairs of a
# round would be
TEXTS = [training_example(f, g) for f, g in seed_training_pairs(BUILTIN_AUGMENTED)[1::18][:24]]


@torch.no_grad()
def mean_loss(model_path, texts, *, max_length: int = 1024, batch_size: int = 8) -> float:
    """Mean per-token loss of a checkpoint on ``texts`` (each + EOS), the way ``fine_tune`` trains."""
    model, tokenizer = load_pretrained(model_path, torch.float32)
    model.eval()
    total, count = 0.0, 0
    for batch in padded_batches(
        encode_texts(tokenizer, texts, max_length), batch_size, tokenizer.pad_token_id
    ):
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += model(**batch).loss.item() * n
        count += n
    return total / max(1, count)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def base_model(synthetic_tiny_model):
    return synthetic_tiny_model


@pytest.fixture(scope="module")
def base_loss(base_model):
    return mean_loss(base_model, TEXTS)


@pytest.fixture(scope="module")
def sft_checkpoint(base_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft") / "round-1"
    return fine_tune(base_model, TEXTS, out, epochs=2, learning_rate=3e-3, batch_size=4, seed=5)


def test_fine_tune_lowers_the_loss_and_loads_as_a_plain_model(sft_checkpoint, base_loss):
    report, out = sft_checkpoint, sft_checkpoint.out_dir
    assert isinstance(report, TrainReport)
    assert report.examples == len(TEXTS) and report.steps == 12
    assert report.final_loss > 0 and report.seconds > 0
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    facts = json.loads((out / TRAINING_FILENAME).read_text())
    assert facts["objective"] == "sft" and facts["steps"] == facts["total_steps"] == 12
    assert mean_loss(out, TEXTS) < base_loss
    backend = TransformersBackend(out)
    [[completion]] = backend.generate(["def f1("], SamplingConfig(temperature=0, max_new_tokens=8))
    assert completion.tokens > 0


def test_lora_fine_tune_saves_merged_weights(base_model, base_loss, tmp_path):
    out = tmp_path / "lora"
    report = fine_tune(base_model, TEXTS, out, epochs=2, batch_size=4, lora=True)
    assert report.steps == 12
    assert not (out / "adapter_config.json").exists()  # merged: a plain checkpoint
    weights = load_file(out / "model.safetensors")
    assert not any("lora" in name for name in weights)
    base = load_file(base_model / "model.safetensors")
    assert weights.keys() == base.keys()
    changed = [k for k in weights if not torch.equal(weights[k], base[k])]
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
    assert mean_loss(out, TEXTS) < base_loss


def test_fine_tune_is_deterministic(base_model, sft_checkpoint, tmp_path):
    again = fine_tune(base_model, TEXTS, tmp_path / "again", epochs=2, learning_rate=3e-3, batch_size=4, seed=5)
    assert again.final_loss == sft_checkpoint.final_loss
    wa = load_file(sft_checkpoint.out_dir / "model.safetensors")
    wb = load_file(again.out_dir / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_training_in_this_process_writes_nothing_to_stdout_and_reports_progress_through_log(base_model, tmp_path, capfd):
    lines: list[str] = []
    fine_tune(base_model, TEXTS, tmp_path / "quiet", steps=25, learning_rate=3e-3, batch_size=4, log=lines.append)
    captured = capfd.readouterr()
    assert captured.out == ""  # a command's stdout is its result (JSON, paths), never training logs
    assert "train dataset" not in captured.err  # nor datasets' progress bars on its stderr
    assert any(line.startswith("step 25/25 loss") for line in lines)


def test_fractional_epochs_and_time_budget(base_model, tmp_path):
    assert optimizer_steps(len(TEXTS), 0.5, 4) == 3
    report = fine_tune(base_model, TEXTS, tmp_path / "budget", epochs=50, batch_size=4, max_seconds=0.0)
    assert report.steps == 1  # stops after the first step once the budget is spent
    assert (tmp_path / "budget" / "config.json").exists()


def test_the_loss_is_on_the_solution_only():
    text = TEXTS[0]
    split = prompt_and_completion(text)
    assert split["prompt"] + split["completion"] == text
    assert split["prompt"].endswith("\n\n") and split["completion"].startswith("def g1(")
    listing = "from typing import List\n\ndef f1(x: int):\n    return x == 1\n"
    assert prompt_and_completion(listing) == {"prompt": "", "completion": listing}


def test_empty_texts_are_rejected(base_model, tmp_path):
    with pytest.raises(ValueError, match="no \\(non-blank\\) texts"):
        fine_tune(base_model, [], tmp_path / "x")
    with pytest.raises(ValueError, match="no \\(non-blank\\) texts"):
        fine_tune(base_model, ["", "   \n"], tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_existing_output_is_never_overwritten(base_model, tmp_path):
    (tmp_path / "done").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        fine_tune(base_model, TEXTS, tmp_path / "done")


def test_failed_save_leaves_no_checkpoint(base_model, tmp_path, monkeypatch):
    def write_half_then_die(out_dir, write):
        def half(tmp):
            (tmp / "config.json").write_text("{}")
            raise KeyboardInterrupt  # killed while writing

        return real_save(out_dir, half)

    real_save = train.save_atomically
    monkeypatch.setattr(train, "save_atomically", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        fine_tune(base_model, TEXTS[:4], tmp_path / "ckpt", batch_size=4, steps=1)
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_dir_is_swept(tmp_path):
    stale = tmp_path / ".ckpt.tmp-killed"
    stale.mkdir()
    train.save_atomically(tmp_path / "ckpt", lambda d: (d / "x").write_text("ok"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert (tmp_path / "ckpt" / "x").read_text() == "ok"


def test_missing_base_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        fine_tune(tmp_path / "nowhere", TEXTS, tmp_path / "out")


def test_cosine_schedule_shape():
    lrs = [cosine_lr(s, 100, 1.0, warmup_steps=10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_lora_on_a_gpt2_architecture(base_model, tmp_path):
    """GPT-2 fuses q/k/v in a Conv1D ``c_attn``: the LoRA target detection must find it too."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=256)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    tokenizer.save_pretrained(tmp_path / "gpt2")
    before = mean_loss(tmp_path / "gpt2", TEXTS, max_length=256)
    fine_tune(tmp_path / "gpt2", TEXTS, tmp_path / "out", epochs=2, batch_size=4, max_length=256, lora=True)
    weights = load_file(tmp_path / "out" / "model.safetensors")
    assert not any("lora" in name for name in weights)
    assert mean_loss(tmp_path / "out", TEXTS, max_length=256) < before
