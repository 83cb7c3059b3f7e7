"""How many optimizer steps a fine-tuning takes, and where a checkpoint records them (no torch here,
so the readers of checkpoints, reports and experiments, need not import it)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

TRAINING_FILENAME = "training.json"  # in a fine-tuned checkpoint: examples, optimizer steps, settings
TRAIN_BATCH_SIZE = 8  # texts per optimizer step of ``fine_tune``


def optimizer_steps(examples: int, epochs: float, batch_size: int = TRAIN_BATCH_SIZE) -> int:
    """The AdamW steps ``fine_tune`` takes for ``examples`` non-blank texts: ``epochs`` passes over
    their ``ceil(examples / batch_size)`` batches, rounded up, at least one."""
    return max(1, math.ceil(epochs * math.ceil(examples / batch_size)))


def information_gain(training: Mapping[str, object]) -> float | None:
    """What a round's verified pairs add beyond the seeds, from a checkpoint's ``training.json``: the
    base model's mean completion loss on the round's new pairs minus on as many seed pairs
    (``probe_loss``, measured before training). None when the training measured none."""
    probe = training.get("probe_loss") or {}
    if not isinstance(probe, Mapping) or probe.get("round") is None or probe.get("seeds") is None:
        return None
    return float(probe["round"]) - float(probe["seeds"])


def checkpoint_information_gain(checkpoint: str | Path | None) -> float | None:
    """``information_gain`` of the checkpoint directory ``checkpoint`` (None: no checkpoint or no record)."""
    if checkpoint is None:
        return None
    try:
        training = json.loads((Path(checkpoint) / TRAINING_FILENAME).read_text())
    except (OSError, ValueError):
        return None
    return information_gain(training) if isinstance(training, dict) else None
