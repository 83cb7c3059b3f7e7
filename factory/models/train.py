"""Fine-tuning a causal LM: through TRL (``fine_tune`` for SFT, ``fine_tune_preferences`` for DPO;
``factory.models.trl_train``: in this process for one CPU process, else a child or ``accelerate launch``), and one plain torch loop.

``train_steps`` is kept for ``factory.models.embedded`` alone: the embedded model is built from
scratch by it and its weights must stay byte-identical to every cache built before (a different loop,
schedule or data order would give another model); a from-scratch build of a ~4M-parameter model needs
nothing a Trainer adds.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from factory.models.steps import TRAIN_BATCH_SIZE, TRAINING_FILENAME, optimizer_steps
from factory.models.trl_train import PROGRESS, TrainSpec, first_line

Batch = dict[str, torch.Tensor]  # input_ids, attention_mask, labels (-100 where no loss)


@dataclass(frozen=True)
class TrainReport:
    out_dir: Path
    examples: int
    steps: int
    final_loss: float  # mean training loss over the last few steps
    seconds: float


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


_SOLUTION_START = re.compile(r"\n\ndef g\d+\(")


def prompt_and_completion(text: str) -> dict[str, str]:
    """A training text split where its loss starts: a solve block (``training_example``) after its
    puzzle, at its last ``def gN(``; any other text (a puzzle listing) is all completion."""
    matches = list(_SOLUTION_START.finditer(text))
    if not matches:
        return {"prompt": "", "completion": text}
    cut = matches[-1].start() + 2
    return {"prompt": text[:cut], "completion": text[cut:]}


def _check_out_dir(out_dir: Path) -> None:
    from factory.errors import ModelError

    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; remove it or choose another output directory")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(
            f"cannot fine-tune: cannot create the checkpoint directory {out_dir.parent} ({first_line(e)})"
        ) from None


def launch_command(spec_file: Path, processes: int) -> list[str]:
    """The command that runs one training: this interpreter, or ``accelerate launch`` of ``processes``
    (on GPUs one per device; on CPU processes on the gloo backend)."""
    module = ["-m", "factory.models.trl_train", str(spec_file)]
    if processes <= 1:
        return [sys.executable, *module]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
            str(_free_port()), *module]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_training(
    objective: str,
    base_model: str | Path,
    rows: Sequence[Mapping[str, str]],
    out_dir: Path,
    options: TrainOptions,
    *,
    steps: int,
    learning_rate: float,
    ref_model: str | Path | None = None,
    facts: Mapping[str, object] | None = None,
    probes: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    probes_after: Sequence[str] = (),
    grpo: Mapping[str, object] | None = None,
) -> TrainReport:
    """Run one training (``factory.models.trl_train``: here for one CPU process, else in a child process or
    ``accelerate launch``) and move its checkpoint to
    ``out_dir`` atomically with ``training.json``; a failed child is a one-line ModelError."""
    from factory.errors import ModelError

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.train-", dir=out_dir.parent) as work:
        work_dir = Path(work)
        data = work_dir / "rows.jsonl"
        data.write_text("".join(json.dumps(dict(r)) + "\n" for r in rows), encoding="utf-8")
        spec = TrainSpec(
            objective=objective, base_model=str(base_model), data=str(data), out_dir=str(work_dir / "checkpoint"),
            result=str(work_dir / "result.json"), steps=steps, batch_size=options.batch_size,
            learning_rate=learning_rate, max_length=options.max_length, lora=options.lora, seed=options.seed,
            max_seconds=options.max_seconds, threads=torch.get_num_threads(),
            ref_model=str(ref_model) if ref_model is not None else None, processes=options.processes,
            probes={name: [dict(r) for r in rows] for name, rows in (probes or {}).items()} or None,
            probes_after=list(probes_after) or None,
            grpo=dict(grpo) if grpo is not None else None,
        )
        spec_file = work_dir / "spec.json"
        spec_file.write_text(json.dumps(spec.to_json()))
        log, processes = options.log, options.processes
        if log:
            log(f"training ({objective}, {steps} steps, {processes} process(es))")
        if processes <= 1 and not torch.cuda.is_available():
            result, returncode, last = _run_here(spec, log), 0, ""
        else:
            returncode, last = _run_child(launch_command(spec_file, processes), log)
            result = json.loads(Path(spec.result).read_text()) if Path(spec.result).is_file() else {}
        if returncode != 0 or "error" in result:
            why = result.get("error") or last or f"exit status {returncode}"
            raise ModelError(why if "error" in result else f"fine-tuning {base_model} failed: {why}")
        checkpoint = Path(spec.out_dir)

        def write(tmp: Path) -> None:
            for item in checkpoint.iterdir():
                shutil.move(str(item), tmp / item.name)
            record = {**(facts or {}), "objective": objective, "steps": result["steps"], "total_steps": steps,
                      "learning_rate": learning_rate, "seed": options.seed, "final_loss": result["final_loss"]}
            for key in ("probe_loss", "probe_loss_after", "grpo"):
                if result.get(key):
                    record[key] = result[key]
            (tmp / TRAINING_FILENAME).write_text(json.dumps(record, indent=2))

        try:
            save_atomically(out_dir, write)
        except FileExistsError:
            raise
        except OSError as e:
            raise ModelError(f"cannot save the fine-tuned checkpoint to {out_dir}: {first_line(e)}") from None
    return TrainReport(out_dir, len(rows), result["steps"], result["final_loss"], time.monotonic() - start)


def _run_here(spec: TrainSpec, log: Callable[[str], None] | None) -> dict:
    """One CPU process: train in this process (the caller closed its generation engine first)."""
    from factory.models.quiet import without_library_chatter
    from factory.models.trl_train import outcome

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the sandbox forks later
    with without_library_chatter():  # the round reports the training's progress itself
        return outcome(spec, log or (lambda line: None))


def _run_child(command: list[str], log: Callable[[str], None] | None) -> tuple[int, str]:
    """Run the training command, showing its progress lines through ``log``; returns its exit status
    and the last other line it wrote (what a crash says). Killed with the caller (KeyboardInterrupt,
    SIGTERM's exception): no training outlives its round."""
    last = ""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env) as child:
        try:
            assert child.stderr is not None
            for line in child.stderr:
                if line.startswith(PROGRESS):
                    if log:
                        log(line[len(PROGRESS):].rstrip())
                elif line.strip():
                    last = line.strip()
            child.wait()
        except BaseException:
            child.kill()
            raise
    return child.returncode, last


@dataclass(frozen=True)
class TrainOptions:
    """How one training runs, for ``fine_tune`` and ``fine_tune_preferences`` alike (their ``**options``).

    ``learning_rate`` None takes the objective's default. ``steps`` fixes the number of optimizer steps
    (the learning-rate schedule spans them) instead of ``optimizer_steps(rows, epochs, batch_size)``:
    the control arms of an experiment train for equal steps on different data. ``batch_size`` rows make
    one step whatever ``processes`` (several: ``accelerate launch``)."""

    epochs: float = 1.0
    learning_rate: float | None = None
    batch_size: int = TRAIN_BATCH_SIZE
    max_length: int = 1024
    lora: bool = False
    seed: int = 0
    max_seconds: float | None = None
    log: Callable[[str], None] | None = None
    steps: int | None = None
    processes: int = 1

    def total_steps(self, rows: int, out_dir: Path) -> int:
        """The optimizer steps of a training on ``rows`` (``steps``, else ``epochs`` over the rows), once
        these settings and ``out_dir`` are checked."""
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        total = optimizer_steps(rows, self.epochs, self.batch_size) if self.steps is None else self.steps
        if total < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        _check_out_dir(Path(out_dir))
        return total


def fine_tune(
    base_model: str | Path,
    texts: Sequence[str],
    out_dir: Path,
    *,
    probes: Mapping[str, Sequence[str]] | None = None,
    probes_after: Sequence[str] = (),
    **options: object,
) -> TrainReport:
    """Fine-tune ``base_model`` (checkpoint dir or Hub id) on ``texts`` with TRL's SFTTrainer and save a
    plain checkpoint (model + tokenizer, ``save_pretrained``) to ``out_dir``, which appears only once complete.

    ``options`` are the fields of ``TrainOptions``. Loss is on the completion (``prompt_and_completion``:
    a solve block's solution and its assert; the whole of a listing) plus EOS. ``learning_rate``
    defaults to 1e-4 (full) or 1e-3 (LoRA). ``lora=True`` trains LoRA adapters on the attention
    projections and saves the merged weights. The checkpoint's ``training.json`` records examples and
    steps, and the base model's mean completion loss on each named set of texts of ``probes``
    (``probe_loss``, measured before training), and the trained model's on those named in
    ``probes_after`` (``probe_loss_after``). Raises ValueError on empty ``texts``, FileExistsError if
    ``out_dir`` exists, and ModelError (one line) when training cannot run: the base model is missing or
    cannot be loaded, peft is missing for ``lora``, memory runs out, or the checkpoint cannot be written.
    """
    o = TrainOptions(**options)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("fine_tune got no (non-blank) texts to train on; check the verified pairs and seeds")
    lr = o.learning_rate if o.learning_rate is not None else (1e-3 if o.lora else 1e-4)
    return run_training(
        "sft", base_model, [prompt_and_completion(t) for t in texts], Path(out_dir), o,
        steps=o.total_steps(len(texts), out_dir), learning_rate=lr,
        facts={"examples": len(texts), "epochs": o.epochs},
        probes={name: [prompt_and_completion(t) for t in ts] for name, ts in (probes or {}).items()},
        probes_after=probes_after,
    )


def fine_tune_preferences(
    base_model: str | Path,
    rows: Sequence[Mapping[str, str]],
    out_dir: Path,
    *,
    ref_model: str | Path | None = None,
    facts: Mapping[str, object] | None = None,
    **options: object,
) -> TrainReport:
    """DPO (TRL's DPOTrainer) of ``base_model`` on ``rows`` (``prompt``, ``chosen``, ``rejected``) against
    ``ref_model`` (default: the base model; with ``lora``, always the base without its adapters).
    ``learning_rate`` defaults to 1e-5 (full) or 1e-4 (LoRA); ``facts`` go into ``training.json``; the
    rest as ``fine_tune``."""
    o = TrainOptions(**options)
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]
    if not rows:
        raise ValueError("fine_tune_preferences got no preference rows to train on")
    lr = o.learning_rate if o.learning_rate is not None else (1e-4 if o.lora else 1e-5)
    return run_training(
        "dpo", base_model, rows, Path(out_dir), o, steps=o.total_steps(len(rows), out_dir), learning_rate=lr,
        ref_model=ref_model,
        facts={**(facts or {}), "examples": len(rows), "epochs": o.epochs, "ref_model": str(ref_model or base_model)},
    )
