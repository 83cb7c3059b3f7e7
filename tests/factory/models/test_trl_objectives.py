"""The train stage by objective (SelfPlayRun.train): a real round of the scripted model (stored pairs and
failed attempts), then dpo, spin and sft+dpo fine-tunings of the tiny model through TRL on that round."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from factory.config import RunConfig, run_identity
from factory.daemon.metrics import run_families
from factory.loop.context import prepare_run
from factory.loop.preferences import preference_rows
from factory.loop.rounds import rounds_finished, run_rounds
from factory.loop.summary import round_summary, round_to
from factory.loop.training import train, training_plan
from factory.models.steps import (
    TRAINING_FILENAME,
    checkpoint_information_gain,
    optimizer_steps,
    read_training_facts,
)
from factory.outputs.report.collect import collect_report
from factory.store import RunStore
from sandbox.backend import open_sandbox
from tests.factory.played_run import QuietEvents, played_config

QUIET = {"log": lambda m: None, "show_progress": False}




@pytest.fixture(scope="module")
def one_round(scripted_model, tmp_path_factory):
    def play(objective: str):
        run_dir = tmp_path_factory.mktemp(objective.replace("+", "-")) / "run"
        config = replace(played_config(scripted_model.base_url), objective=objective)
        with open_sandbox("process", workers=2, log=lambda m: None) as sandbox:
            with prepare_run(run_dir, config, sandbox, **QUIET) as ctx:
                run_rounds(ctx, rounds_finished(1), QuietEvents())
        return run_dir, config

    return play


def test_old_stores_resume_as_sft_and_the_objective_is_identity():
    assert run_identity({})["objective"] == "sft"
    assert run_identity(RunConfig(objective="dpo").to_json())["objective"] == "dpo"


@pytest.mark.parametrize("objective", ["dpo", "spin", "sft+dpo"])
def test_a_round_trains_by_its_objective(one_round, synthetic_tiny_model, one_torch_thread, objective):
    run_dir, config = one_round(objective)
    with RunStore.open(run_dir, create=False) as store:
        pairs = preference_rows(store, [1], kind="spin" if objective == "spin" else "dpo")
    assert pairs
    with prepare_run(run_dir, config, None, **QUIET) as ctx:
        ctx.base_model = str(synthetic_tiny_model)  # generated with the scripted model; trained from the tiny one
        path = train(ctx, 1, config, training_plan(ctx, 1, config, steps=6))
        assert train(ctx, 1, config) == path  # recorded: not trained again
        checkpoint = ctx.store.checkpoint(1)
    facts = json.loads((run_dir / "checkpoints" / "round-1" / TRAINING_FILENAME).read_text())
    assert path == checkpoint.path and facts["objective"] == "dpo" and facts["examples"] == len(pairs)
    if objective in ("dpo", "spin"):  # from and against the model that generated the round
        assert checkpoint.base_model == str(synthetic_tiny_model)
        assert facts["ref_model"] == str(synthetic_tiny_model)
        # their own epochs over their rows, not the fixed 6 steps the other objectives take
        assert facts["steps"] == optimizer_steps(len(pairs), config.epochs)
    else:  # sft, then dpo from and against the sft checkpoint, in the same 6 steps together
        sft = run_dir / "checkpoints" / "round-1-sft"
        assert facts["ref_model"] == str(sft) == checkpoint.base_model
        assert facts["steps"] + facts["sft_steps"] == 6 and facts["steps"] >= 1
        sft_facts = json.loads((sft / TRAINING_FILENAME).read_text())
        assert sft_facts["objective"] == "sft"
        # the base model's loss on the round's new pairs against the seeds, measured before training
        probe = sft_facts["probe_loss"]
        assert probe["round"] > 0 and probe["seeds"] > 0
        assert read_training_facts(sft).information_gain == probe["round"] - probe["seeds"]
        # the evaluation set's reference pairs: measured under the starting and under the trained model
        held_out = read_training_facts(sft).held_out_loss
        assert held_out == {"before": probe["held_out"], "after": sft_facts["probe_loss_after"]["held_out"]}
        assert held_out["before"] > 0 and held_out["after"] > 0 and held_out["after"] != held_out["before"]
        # carried into the round's checkpoint, where the summary and the report read it
        assert facts["probe_loss"] == probe
        gain = probe["round"] - probe["seeds"]
        assert checkpoint_information_gain(path) == gain
        with RunStore.open(run_dir, create=False) as store:  # the round summary's key and the report's panel
            assert round_summary(store, 1, path, "seeds-test", {}, 0.0)["information_gain"] == round_to(gain)
            assert collect_report(store).rounds[0].information_gain == gain
        metric = next(f for f in run_families(run_dir) if f.name == "factory_information_gain")
        assert [(s.labels, s.value) for s in metric.samples] == [({"round": "1"}, gain)]
