"""How many optimizer steps a fine-tuning takes, and where a checkpoint records them (no torch here,
so the readers of checkpoints, reports and experiments, need not import it)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

TRAINING_FILENAME = "training.json"  # in a fine-tuned checkpoint: examples, optimizer steps, settings
# the probe set of the evaluation set's reference pairs, measured before and after training
HELD_OUT = "held_out"
TRAIN_BATCH_SIZE = 8  # texts per optimizer step of ``fine_tune``


def optimizer_steps(examples: int, epochs: float, batch_size: int = TRAIN_BATCH_SIZE) -> int:
    """The AdamW steps ``fine_tune`` takes for ``examples`` non-blank texts: ``epochs`` passes over
    their ``ceil(examples / batch_size)`` batches, rounded up, at least one."""
    return max(1, math.ceil(epochs * math.ceil(examples / batch_size)))


@dataclass(frozen=True)
class TrainingFacts:
    """What a fine-tuned checkpoint's ``training.json`` records (written by ``factory.models.train``); a
    key an older checkpoint lacks has the value it trained with (``objective`` sft) or None."""

    objective: str = "sft"  # "sft" or "dpo" (spin and sft+dpo's second pass are dpo trainings)
    examples: int = 0  # texts (sft) or preference rows (dpo) trained on
    steps: int = 0  # optimizer steps taken
    total_steps: int | None = None  # steps asked for (None: its epochs decided)
    sft_steps: int | None = None  # sft+dpo's dpo pass: the steps of the sft pass beside it (round-N-sft)
    epochs: float | None = None
    learning_rate: float | None = None
    seed: int | None = None
    final_loss: float | None = None
    ref_model: str | None = None  # dpo: the reference model
    probe_loss: Mapping[str, float] | None = None  # the base model's loss on the round's pairs and on seeds
    probe_loss_after: Mapping[str, float] | None = None  # the trained model's, on the probes measured again
    grpo: Mapping[str, object] | None = None  # grpo: the verdicts of its samples, rewards and masked counts

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> TrainingFacts:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})

    @property
    def information_gain(self) -> float | None:
        """What the round's verified pairs add beyond the seeds: the base model's mean completion loss on
        the round's new pairs minus on as many seed pairs (``probe_loss``, measured before training).
        None when the training measured none."""
        probe = self.probe_loss or {}
        if not isinstance(probe, Mapping) or probe.get("round") is None or probe.get("seeds") is None:
            return None
        return float(probe["round"]) - float(probe["seeds"])

    @property
    def held_out_loss(self) -> dict[str, float] | None:
        """The mean completion loss on the evaluation set's reference pairs (``HELD_OUT`` probes) under
        the starting model and under the trained one: what the training taught about puzzles no model
        of the run sampled or trained on, so unlike ``information_gain`` it is not low by construction.
        None when the training did not measure it."""
        before, after = (self.probe_loss or {}).get(HELD_OUT), (self.probe_loss_after or {}).get(HELD_OUT)
        if before is None or after is None:
            return None
        return {"before": float(before), "after": float(after)}


def read_training_facts(checkpoint: str | Path | None) -> TrainingFacts | None:
    """The ``training.json`` of the checkpoint directory ``checkpoint``; None when there is no checkpoint,
    no record, or one that cannot be read."""
    if checkpoint is None:
        return None
    try:
        data = json.loads((Path(checkpoint) / TRAINING_FILENAME).read_text())
    except (OSError, ValueError):
        return None
    return TrainingFacts.from_json(data) if isinstance(data, dict) else None


def checkpoint_information_gain(checkpoint: str | Path | None) -> float | None:
    """``information_gain`` of the checkpoint directory ``checkpoint`` (None: no checkpoint or no record)."""
    facts = read_training_facts(checkpoint)
    return facts.information_gain if facts is not None else None
