"""GRPO through TRL's ``GRPOTrainer``, rewarded by the sandbox's verdicts (``factory.rewards``): the
caller's side, as ``fine_tune`` is for SFT. It writes the rows (``prompt``: a solve prompt, ``prefix``: the
solution's signature the prompt ends with, ``puzzle``: the puzzle's source) and runs
``factory.models.trl_train``, whose process builds the trainer (``factory.models.grpo_trainer``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from factory.models.grpo_trainer import ROW_COLUMNS, GrpoSettings
from factory.models.train import TrainOptions, TrainReport, run_training
from factory.models.trl_train import GRPO


def group_batch(batch_size: int, generations: int) -> int:
    """Samples per optimizer step: ``batch_size`` rounded down to whole groups, at least one group."""
    return generations * max(1, batch_size // generations)


def fine_tune_grpo(
    base_model: str | Path,
    rows: Sequence[Mapping[str, str]],
    out_dir: Path,
    *,
    settings: GrpoSettings,
    facts: Mapping[str, object] | None = None,
    **options: object,
) -> TrainReport:
    """GRPO of ``base_model`` on ``rows`` (``prompt``, ``prefix``, ``puzzle``), saved to ``out_dir`` as
    ``fine_tune`` saves. A step trains on ``group_batch(batch_size, generations)`` samples; without
    ``steps``, ``epochs`` passes over the rows' samples. ``learning_rate`` defaults to 1e-5 (full) or 1e-4
    (LoRA). ``training.json`` gets ``grpo``: the reward per step, and the verdicts and masked count."""
    o = TrainOptions(**options)
    rows = [{k: r[k] for k in ROW_COLUMNS} for r in rows]
    if not rows:
        raise ValueError("fine_tune_grpo got no solve prompts to train on")
    o = replace(o, batch_size=group_batch(o.batch_size, settings.generations))
    lr = o.learning_rate if o.learning_rate is not None else (1e-4 if o.lora else 1e-5)
    return run_training(
        GRPO, base_model, rows, Path(out_dir), o, steps=o.total_steps(len(rows) * settings.generations, out_dir),
        learning_rate=lr, grpo=asdict(settings),
        facts={**(facts or {}), "examples": len(rows), "epochs": o.epochs, "generations": settings.generations},
    )
