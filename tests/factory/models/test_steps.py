"""A checkpoint's training.json, read in one place: every key it may hold, older records, and no record."""

from __future__ import annotations

import json

from factory.models.steps import (
    TRAINING_FILENAME,
    TrainingFacts,
    checkpoint_information_gain,
    read_training_facts,
)


def test_a_record_reads_to_its_facts_and_an_older_one_to_the_values_it_trained_with(tmp_path):
    (tmp_path / TRAINING_FILENAME).write_text(json.dumps({
        "objective": "dpo", "examples": 11, "steps": 2, "total_steps": 2, "sft_steps": 80, "epochs": 2.0,
        "ref_model": "m", "learning_rate": 1e-5, "seed": 3, "final_loss": 0.5,
        "probe_loss": {"round": 1.25, "seeds": 1.0}, "a_key_of_a_later_version": 1,
    }))
    facts = read_training_facts(tmp_path)
    assert (facts.objective, facts.examples, facts.steps, facts.sft_steps, facts.ref_model) == ("dpo", 11, 2, 80, "m")
    assert facts.information_gain == checkpoint_information_gain(tmp_path) == 0.25
    (tmp_path / TRAINING_FILENAME).write_text(json.dumps({"examples": 5, "steps": 1, "total_steps": None}))
    assert read_training_facts(tmp_path) == TrainingFacts(examples=5, steps=1)  # sft, no probe
    assert read_training_facts(tmp_path).information_gain is None


def test_no_checkpoint_or_no_readable_record_is_none(tmp_path):
    assert read_training_facts(None) is None and read_training_facts(tmp_path) is None
    (tmp_path / TRAINING_FILENAME).write_text("{not json")
    assert read_training_facts(tmp_path) is None and checkpoint_information_gain(tmp_path) is None
