"""How many optimizer steps a fine-tuning takes, and where a checkpoint records them (no torch here,
so the readers of checkpoints, reports and experiments, need not import it)."""

from __future__ import annotations

import math

TRAINING_FILENAME = "training.json"  # in a fine-tuned checkpoint: examples, optimizer steps, settings
TRAIN_BATCH_SIZE = 8  # texts per optimizer step of ``fine_tune``


def optimizer_steps(examples: int, epochs: float, batch_size: int = TRAIN_BATCH_SIZE) -> int:
    """The AdamW steps ``fine_tune`` takes for ``examples`` non-blank texts: ``epochs`` passes over
    their ``ceil(examples / batch_size)`` batches, rounded up, at least one."""
    return max(1, math.ceil(epochs * math.ceil(examples / batch_size)))
