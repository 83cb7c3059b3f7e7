"""Training through TRL in child processes: two CPU processes through accelerate (gloo), DPO against a
reference model, and a failed training as one ModelError line."""

from __future__ import annotations

import json
import random

import pytest
import torch

from factory.loop.corpus import seed_training_pairs
from factory.loop.prompts import solve_prompt, training_example
from factory.models import ModelError, SamplingConfig
from factory.models.steps import TRAINING_FILENAME
from factory.models.train import fine_tune, fine_tune_preferences, launch_command
from factory.models.transformers_backend import TransformersBackend, load_pretrained

TEXTS = [training_example(f, g) for f, g in seed_training_pairs()[2::18][:16]]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


def preference_rows() -> list[dict]:
    """Seed puzzles' solve prompts, their reference solution as chosen, a wrong one as rejected."""
    rows = []
    for f, g in seed_training_pairs()[5::40][:6]:
        prompt, _ = solve_prompt([], f, random.Random(0), 0)
        rows.append({"prompt": prompt, "chosen": "\n" + g.split("\n", 1)[1], "rejected": "\n    return None"})
    return rows


@torch.no_grad()
def margin(model_path, rows) -> float:
    """Mean log-probability of chosen minus rejected completions under the model."""
    model, tokenizer = load_pretrained(model_path, torch.float32)
    model.eval()

    def logprob(prompt: str, completion: str) -> float:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + tokenizer(completion, add_special_tokens=False)["input_ids"]])
        logits = model(ids).logits[0, :-1].log_softmax(-1)
        targets = ids[0, 1:]
        return logits[torch.arange(len(targets)), targets][len(p) - 1 :].sum().item()

    return sum(logprob(r["prompt"], r["chosen"]) - logprob(r["prompt"], r["rejected"]) for r in rows) / len(rows)


def test_two_cpu_processes_through_accelerate_give_a_working_checkpoint(synthetic_tiny_model, tmp_path):
    assert "accelerate.commands.launch" in launch_command(tmp_path / "spec.json", 2)
    out = tmp_path / "two"
    report = fine_tune(synthetic_tiny_model, TEXTS, out, steps=3, batch_size=4, learning_rate=3e-3, processes=2)
    assert report.steps == 3
    assert json.loads((out / TRAINING_FILENAME).read_text())["steps"] == 3
    [[completion]] = TransformersBackend(out).generate(["def f1("], SamplingConfig(temperature=0, max_new_tokens=8))
    assert completion.tokens > 0


def test_dpo_prefers_chosen_over_rejected_against_a_reference(synthetic_tiny_model, tmp_path):
    rows = preference_rows()
    out = tmp_path / "dpo"
    report = fine_tune_preferences(
        synthetic_tiny_model, rows, out, ref_model=synthetic_tiny_model, steps=4, batch_size=3, learning_rate=3e-3
    )
    assert report.steps == 4 and report.examples == len(rows)
    facts = json.loads((out / TRAINING_FILENAME).read_text())
    assert facts["objective"] == "dpo" and facts["ref_model"] == str(synthetic_tiny_model)
    assert margin(out, rows) > margin(synthetic_tiny_model, rows)


def test_a_failed_training_is_one_model_error_line(synthetic_tiny_model, tmp_path):
    with pytest.raises(ModelError) as caught:
        fine_tune_preferences(synthetic_tiny_model, preference_rows(), tmp_path / "x",
                              ref_model=tmp_path / "no-such-model", steps=1)
    assert "no-such-model" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "x").exists()
