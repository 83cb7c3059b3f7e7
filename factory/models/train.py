"""Fine-tuning a causal LM on verified puzzle/solution texts, in one plain torch loop.

``train_steps`` is the only training loop in the project: ``fine_tune`` (later rounds) and
``factory.models.embedded`` (the embedded model built from scratch) both call it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from factory.models.steps import TRAIN_BATCH_SIZE, TRAINING_FILENAME, optimizer_steps

Batch = dict[str, torch.Tensor]  # input_ids, attention_mask, labels (-100 where no loss)


@dataclass(frozen=True)
class TrainReport:
    out_dir: Path
    examples: int
    steps: int
    final_loss: float  # mean training loss over the last few steps
    seconds: float


@contextmanager
def deterministic(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seed torch, fix the CPU thread count and ask for deterministic kernels for the duration of the
    block (same seed, same machine -> same weights); the previous thread count and mode come back after."""
    threads_before = torch.get_num_threads()
    mode_before = torch.are_deterministic_algorithms_enabled()
    warn_only_before = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(mode_before, warn_only=warn_only_before)
        torch.set_num_threads(threads_before)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cosine_lr(step: int, total_steps: int, peak: float, warmup_steps: int, floor: float = 0.1) -> float:
    """Linear warmup to ``peak``, then cosine decay to ``floor * peak`` at ``total_steps``."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train_steps(
    model: torch.nn.Module,
    batches: Sequence[Batch],
    *,
    total_steps: int,
    learning_rate: float,
    seed: int = 0,
    weight_decay: float = 0.0,
    warmup_steps: int | None = None,
    grad_clip: float = 1.0,
    max_seconds: float | None = None,
    log: Callable[[str], None] | None = None,
    log_every: int = 25,
) -> tuple[int, float]:
    """Train ``model`` for ``total_steps`` AdamW steps, cycling through ``batches`` in a seeded shuffled
    order (a fresh order each pass). Stops early once ``max_seconds`` have passed.

    Returns (steps done, mean loss of the last ``min(10, steps)`` steps).
    """
    if not batches:
        raise ValueError("train_steps needs at least one batch")
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
        betas=(0.9, 0.95),
    )
    if warmup_steps is None:
        warmup_steps = max(1, total_steps // 20)
    order_rng = torch.Generator().manual_seed(seed)
    order: list[int] = []
    recent: list[float] = []
    start = time.monotonic()
    model.train()
    step = 0
    while step < total_steps:
        if not order:
            order = torch.randperm(len(batches), generator=order_rng).tolist()
        batch = {k: v.to(device) for k, v in batches[order.pop()].items()}
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, total_steps, learning_rate, warmup_steps)
        loss = model(**batch).loss
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        recent = (recent + [loss.item()])[-10:]
        elapsed = time.monotonic() - start
        if log and (step % log_every == 0 or step == total_steps):
            log(
                f"step {step}/{total_steps} loss {recent[-1]:.3f} lr {optimizer.param_groups[0]['lr']:.2e} {elapsed:.0f}s"
            )
        if max_seconds is not None and elapsed > max_seconds and step < total_steps:
            if log:
                log(f"stopping at step {step}/{total_steps}: time budget of {max_seconds:.0f}s spent")
            break
    model.eval()
    return step, sum(recent) / len(recent)


def padded_batches(token_lists: Sequence[Sequence[int]], batch_size: int, pad_id: int) -> list[Batch]:
    """Right-padded batches of similar-length examples; pad positions get no loss (label -100)."""
    by_length = sorted(range(len(token_lists)), key=lambda i: (len(token_lists[i]), i))
    batches = []
    for start in range(0, len(by_length), batch_size):
        rows = [token_lists[i] for i in by_length[start : start + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[r, : len(row)] = 1
        batches.append({"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)})
    return batches


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text followed by EOS (so the model learns where a text ends), truncated."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [(ids + eos)[:max_length] for ids in encoded]


def save_atomically(out_dir: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_dir)`` then rename ``tmp_dir`` to ``out_dir``: ``out_dir`` exists only when complete.

    A killed or failed write leaves at most a hidden ``.<name>.tmp-*`` sibling, removed by the next attempt.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; remove it or choose another output directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a checkpoint is readable like any directory
        write(tmp)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _lora_targets(model: torch.nn.Module) -> list[str]:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for targets in (["c_attn"], ["q_proj", "v_proj"], ["query_key_value"], ["qkv_proj"]):
        if all(t in names for t in targets):
            return targets
    raise ValueError(
        f"cannot find attention projections for LoRA in {type(model).__name__}; use lora=False for this model"
    )


def _load_for_training(base_model: str | Path):
    from factory.models.transformers_backend import load_pretrained

    return load_pretrained(base_model, torch.float32)


def fine_tune(
    base_model: str | Path,
    texts: Sequence[str],
    out_dir: Path,
    *,
    epochs: float = 1.0,
    learning_rate: float | None = None,
    batch_size: int = TRAIN_BATCH_SIZE,
    max_length: int = 1024,
    lora: bool = False,
    seed: int = 0,
    max_seconds: float | None = None,
    log: Callable[[str], None] | None = None,
    steps: int | None = None,
) -> TrainReport:
    """Fine-tune ``base_model`` (checkpoint dir or Hub id) on ``texts`` and save a plain checkpoint
    (model + tokenizer, ``save_pretrained``) to ``out_dir``, which appears only once complete.

    Loss is on the whole text (each text + EOS). ``learning_rate`` defaults to 1e-4 (full) or 1e-3 (LoRA).
    ``lora=True`` trains LoRA adapters on the attention projections and saves the merged weights.
    ``steps`` fixes the number of optimizer steps (the learning-rate schedule spans them) instead of
    ``optimizer_steps(len(texts), epochs, batch_size)``: the control arms of an experiment train for
    equal steps on different data. The checkpoint's ``training.json`` records examples and steps.
    Raises ValueError on empty ``texts``, FileExistsError if ``out_dir`` exists, and ModelError (one
    line) when training cannot run: the base model is missing or cannot be loaded, peft is missing for
    ``lora``, memory runs out, or the checkpoint cannot be written.
    """
    from factory.errors import ModelError

    def first_line(e: BaseException) -> str:
        text = str(e).strip().splitlines()
        return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__

    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("fine_tune got no (non-blank) texts to train on; check the verified pairs and seeds")
    if epochs <= 0:
        raise ValueError(f"epochs must be > 0, got {epochs}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; remove it or choose another output directory")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(
            f"cannot fine-tune: cannot create the checkpoint directory {out_dir.parent} ({first_line(e)})"
        ) from None
    start = time.monotonic()
    with deterministic(seed):
        try:
            model, tokenizer = _load_for_training(base_model)
        except ModelError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure to load a user's checkpoint is one line
            raise ModelError(f"cannot load {base_model} for fine-tuning: {first_line(e)}") from e
        model.to(pick_device())
        if lora:
            try:
                from peft import LoraConfig, get_peft_model
            except ImportError:
                raise ModelError("fine-tuning LoRA adapters needs the peft package: pip install peft") from None

            try:
                targets = _lora_targets(model)
            except ValueError as e:
                raise ModelError(str(e)) from None
            config = LoraConfig(
                r=8,
                lora_alpha=16,
                lora_dropout=0.0,
                target_modules=targets,
                fan_in_fan_out=targets == ["c_attn"],
            )
            model = get_peft_model(model, config)
        batches = padded_batches(
            encode_texts(tokenizer, texts, max_length), batch_size, tokenizer.pad_token_id
        )
        total_steps = optimizer_steps(len(texts), epochs, batch_size) if steps is None else steps
        if total_steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        lr = learning_rate if learning_rate is not None else (1e-3 if lora else 1e-4)
        try:
            steps_done, final_loss = train_steps(
                model,
                batches,
                total_steps=total_steps,
                learning_rate=lr,
                seed=seed,
                max_seconds=max_seconds,
                log=log,
            )
        except (torch.OutOfMemoryError, MemoryError) as e:
            raise ModelError(
                f"fine-tuning {base_model} ran out of memory ({first_line(e)}): train with lora, or a smaller model"
            ) from None
        if lora:
            model = model.merge_and_unload()

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            facts = {"examples": len(texts), "steps": steps_done, "total_steps": total_steps,
                     "epochs": epochs, "learning_rate": lr, "seed": seed, "final_loss": final_loss}
            (tmp / TRAINING_FILENAME).write_text(json.dumps(facts, indent=2))

        try:
            save_atomically(out_dir, write)
        except FileExistsError:
            raise
        except OSError as e:
            raise ModelError(f"cannot save the fine-tuned checkpoint to {out_dir}: {first_line(e)}") from None
    return TrainReport(out_dir, len(texts), steps_done, final_loss, time.monotonic() - start)
