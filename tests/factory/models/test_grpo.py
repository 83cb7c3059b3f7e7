"""The grpo objective: a round of the scripted model (accepted puzzles), then GRPO of the tiny model on its
solve prompts and the seeds' with the sandbox's verdicts as the reward; killed mid-training, it resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from factory.config import RunConfig
from factory.loop.context import prepare_run
from factory.loop.rounds import rounds_finished, run_rounds
from factory.loop.summary import format_summary, round_summary
from factory.loop.training import GRPO, train, training_plan
from factory.models.grpo import group_batch
from factory.models.steps import TRAIN_BATCH_SIZE, TRAINING_FILENAME
from factory.rewards import MASKED
from factory.store import RunStore
from sandbox.backend import open_sandbox
from tests.factory.played_run import QuietEvents, played_config

QUIET = {"log": lambda m: None, "show_progress": False}


@pytest.fixture(scope="module")
def played_grpo_round(scripted_model, tmp_path_factory) -> tuple[Path, RunConfig]:
    run_dir = tmp_path_factory.mktemp("grpo") / "run"
    config = replace(played_config(scripted_model.base_url), objective=GRPO, max_new_tokens=24, grpo_generations=4)
    with open_sandbox("process", workers=2, log=lambda m: None) as sandbox:
        with prepare_run(run_dir, config, sandbox, **QUIET) as ctx:
            run_rounds(ctx, rounds_finished(1), QuietEvents())
    return run_dir, config


@pytest.fixture()
def grpo_round(played_grpo_round, tmp_path) -> tuple[Path, RunConfig]:
    """A run directory of its own whose round 1 (proposed, solved, evaluated by the scripted model) awaits
    training."""
    played, config = played_grpo_round
    shutil.copytree(played, tmp_path / "run")
    return tmp_path / "run", config


def train_round_one(run_dir: str, config: dict, model: str, steps: int) -> str:
    """Train round 1 of ``run_dir`` by grpo from ``model`` (what the killed process runs)."""
    c = RunConfig.from_json(config)
    with open_sandbox("process", workers=2, log=lambda m: None) as sandbox:
        with prepare_run(Path(run_dir), c, sandbox, **QUIET) as ctx:
            ctx.base_model = model  # generated with the scripted model; trained from the tiny one
            return train(ctx, 1, c, training_plan(ctx, 1, c, steps=steps))


def test_a_round_trains_by_grpo_on_solve_prompts_rewarded_by_the_sandbox(grpo_round, synthetic_tiny_model, one_torch_thread):
    run_dir, config = grpo_round
    with RunStore.open(run_dir, create=False) as store:
        accepted = len(store.puzzles_of_round(1))
        seeds = len(store.pool_puzzles(up_to_round=0))
    assert accepted >= 1
    path = train_round_one(str(run_dir), config.to_json(), str(synthetic_tiny_model), steps=2)
    facts = json.loads((Path(path) / TRAINING_FILENAME).read_text())
    assert facts["objective"] == GRPO and facts["steps"] == 2 and facts["generations"] == 4
    assert facts["examples"] <= accepted + seeds and facts["examples"] > seeds // 2  # distinct canonical forms
    grpo = facts["grpo"]
    assert len(grpo["reward_per_step"]) == 2 and grpo["reward_calls"] == 2
    assert sum(grpo["masked_per_step"]) == grpo["verdicts"][MASKED]  # each step's, in TRL's logs
    assert grpo["generation"] == "fast cpu"  # the tiny model is Llama-style: TRL's rollout hook, the fast path
    samples = sum(n for verdict, n in grpo["verdicts"].items() if verdict != MASKED)
    assert samples == 2 * group_batch(TRAIN_BATCH_SIZE, 4)
    with RunStore.open(run_dir, create=False) as store:
        checkpoint = store.checkpoint(1)
        summary = round_summary(store, 1, path, "seeds-test", {}, 0.0)
    assert checkpoint.path == path and checkpoint.base_model == str(synthetic_tiny_model)
    assert summary["grpo"]["samples"] == samples and summary["grpo"]["masked"] == grpo["verdicts"][MASKED]
    assert summary["grpo"]["reward_per_step"] == grpo["reward_per_step"]
    assert f"{summary['grpo']['verified']} of {samples} samples verified" in format_summary(summary)


def test_a_killed_grpo_round_resumes_and_ends_with_a_checkpoint(grpo_round, synthetic_tiny_model):
    run_dir, config = grpo_round
    arguments = (str(run_dir), config.to_json(), str(synthetic_tiny_model), 40)
    code = f"from tests.factory.models.test_grpo import train_round_one; train_round_one(*{arguments!r})"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = run_dir / "checkpoints"
    deadline = time.monotonic() + 120
    while not any(checkpoints.glob(".round-1.train-*/rows.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3.0)  # into the model's loading or its first steps
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not (checkpoints / "round-1").exists(), "the training ended before the kill"
    with RunStore.open(run_dir, create=False) as store:
        assert store.checkpoint(1) is None
    path = train_round_one(*arguments[:3], 2)
    assert Path(path, "config.json").exists()
    assert json.loads(Path(path, TRAINING_FILENAME).read_text())["objective"] == GRPO
    with RunStore.open(run_dir, create=False) as store:
        assert store.checkpoint(1).path == path
