"""A round against `transformers serve` that dies half-way: one line, exit 5, and the round resumes
from the batches already stored once the server is back."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from factory.config import RunConfig
from factory.errors import MODEL_EXIT, ModelError
from factory.loop.context import prepare_run
from factory.loop.rounds import rounds_finished, run_rounds
from factory.outputs.status import format_status, read_status
from factory.store import STORE_FILENAME
from sandbox.backend import open_sandbox

pytestmark = pytest.mark.slow

QUIET = {"log": lambda m: None, "show_progress": False}
FAST_FAILURE = {"max_retries": 1, "backoff_s": 0.05}  # a dead server is reported at once, not after ~30 s


def proposals(run_dir) -> list[tuple]:
    with sqlite3.connect(run_dir / STORE_FILENAME) as db:
        return db.execute("SELECT batch, idx, raw FROM proposals WHERE round = 1 ORDER BY batch, idx").fetchall()


def test_a_server_killed_mid_round_is_one_line_exit_5_and_the_round_resumes(real_server, tmp_path):
    config = RunConfig(
        model=real_server.model, backend="openai", base_url=real_server.base_url, train=False, puzzles=6,
        batch_size=2, attempts=2, max_new_tokens=16, eval_samples=1, eval_ks=(1,), eval_limit=2,
        price_per_mtok="2,8",
    )
    generate_calls = 0

    def kill_at_the_third_propose_batch() -> None:
        nonlocal generate_calls
        generate_calls += 1
        if generate_calls == 5:  # backend load, base evaluation, propose batches 0 and 1, then this
            real_server.stop()

    with open_sandbox("process", workers=1, log=lambda m: None) as sandbox:
        try:
            with prepare_run(tmp_path, config, sandbox, before_step=kill_at_the_third_propose_batch,
                             generation=FAST_FAILURE, **QUIET) as ctx:
                with pytest.raises(ModelError) as down:
                    run_rounds(ctx, rounds_finished(1))
            assert down.value.exit_code == MODEL_EXIT and "\n" not in str(down.value)
            assert "cannot get a completion" in str(down.value)
            before = proposals(tmp_path)
            assert {row[0] for row in before} == {0, 1}
        finally:
            real_server.start()
        with prepare_run(tmp_path, config, sandbox, generation=FAST_FAILURE, **QUIET) as ctx:
            assert run_rounds(ctx, rounds_finished(1)) == "1 rounds are finished"
    after = proposals(tmp_path)
    assert after[: len(before)] == before and {row[0] for row in after} == {0, 1, 2}
    summary = json.loads((tmp_path / "rounds" / "round-1.json").read_text())
    assert list(summary)[-7:] == ["information_gain", "grpo", "proposer", "usage", "models", "variants",
                                  "held_out_loss"]  # new keys last
    propose = summary["usage"]["propose"]
    assert propose["counted_by"] == "server" and propose["prompt_tokens"] > 0 and propose["completion_tokens"] > 0
    assert propose["cost"] == pytest.approx((2 * propose["prompt_tokens"] + 8 * propose["completion_tokens"]) / 1e6)
    assert summary["usage"]["price_per_mtok"] == [2.0, 8.0]


def test_a_served_teacher_and_a_local_student_that_trains(real_server, synthetic_tiny_model, tmp_path):
    """The served model proposes (the teacher); a local copy is the student: it solves, is trained
    and is evaluated each round."""
    student = tmp_path / "student"
    shutil.copytree(synthetic_tiny_model, student)
    run_dir = tmp_path / "run"
    config = RunConfig(
        model=real_server.model, backend="openai", base_url=real_server.base_url, train_model=str(student),
        solve_model="student", puzzles=2, batch_size=2, attempts=2, max_new_tokens=16, eval_samples=1,
        eval_ks=(1,), eval_limit=1, epochs=0.01,
    )
    with open_sandbox("process", workers=1, log=lambda m: None) as sandbox:
        with prepare_run(run_dir, config, sandbox, **QUIET) as ctx:
            run_rounds(ctx, rounds_finished(1))
            evaluated = {e.round: e.model for e in ctx.store.evals()}
            stored = ctx.store.config()
    checkpoint = str(run_dir / "checkpoints" / "round-1")
    assert evaluated == {0: str(student), 1: checkpoint}  # the student, before and after its training
    summary = json.loads((run_dir / "rounds" / "round-1.json").read_text())
    assert summary["models"] == {
        "propose": {"model": real_server.model, "backend": "openai", "base_url": real_server.base_url},
        "solve": {"model": str(student), "backend": "transformers", "base_url": None},
        "student": {"model": str(student), "backend": "transformers", "base_url": None},
        "evaluated": checkpoint,
    }
    assert summary["usage"]["propose"]["counted_by"] == "server"
    assert (stored["train_model"], stored["solve_model"]) == (str(student), "student")  # the roles, in the store
    assert "tokens: propose " in format_status(read_status(run_dir))  # `factory status` says what was used
