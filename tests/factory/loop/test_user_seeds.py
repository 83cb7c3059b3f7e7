"""A user's own seeds and evaluation set, end to end: a round from a small seed file (P3 train puzzles,
not the built-in set) evaluated on others, then status, report, export and `factory eval`; a bad seed
file is one line and exit 2 with nothing written to the store; a changed file does not resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from factory.cli.main import main
from factory.store import STORE_FILENAME, RunStore
from puzzles.p3 import first_instances, load_p3
from puzzles.parse import parse_puzzle
from puzzles.records import InvalidProgram
from tests.factory.cli.test_errors import CHILD_ENV, REPO, one_line_error

SEEDS, EVALUATED = 8, 5
SMALL = ["--puzzles", "4", "--attempts", "2", "--batch-size", "4", "--eval-samples", "2", "--eval-ks", "1,2",
         "--epochs", "0.05", "--max-new-tokens", "48", "--sandbox", "process", "--workers", "2"]


def usable(puzzle) -> bool:
    """A P3 instance a user could hand in as a seed: a solution, the proposals' rules, no bool answer."""
    try:
        parsed = parse_puzzle(puzzle.puzzle.source)
    except InvalidProgram:
        return False
    return bool(puzzle.solutions) and parsed.answer_type != "bool"


@pytest.fixture(scope="module")
def user_files(p3_path, tmp_path_factory) -> tuple[Path, Path]:
    """A seed file of 8 P3 train puzzles with their reference solutions, and an evaluation file of 5
    other P3 train puzzles (f alone), as a user would write them."""
    chosen = [p for p in first_instances(load_p3(p3_path, "train")) if usable(p)][: SEEDS + EVALUATED]
    folder = tmp_path_factory.mktemp("user")
    seeds, evaluated = folder / "tasks.jsonl", folder / "held_out.jsonl"
    seeds.write_text("".join(
        json.dumps({"id": p.key, "f": p.puzzle.source, "g": p.solutions[0].source}) + "\n" for p in chosen[:SEEDS]
    ))
    evaluated.write_text("".join(json.dumps({"f": p.puzzle.source}) + "\n" for p in chosen[SEEDS:]))
    return seeds, evaluated


@pytest.mark.slow
def test_a_round_from_a_users_seed_file_through_status_report_export_and_eval(
    user_files, synthetic_tiny_model, tmp_path, one_torch_thread, capsys
):
    seeds, evaluated = user_files
    run_dir = tmp_path / "run"
    assert main(["run", "--rounds", "1", "--run-dir", str(run_dir), "--model", str(synthetic_tiny_model),
                 "--seeds", str(seeds), "--eval", str(evaluated), *SMALL]) == 0
    with RunStore.open(run_dir, create=False) as store:
        sets = store.puzzle_sets()
        assert store.training_pairs(up_to_round=0) and len(store.training_pairs(up_to_round=0)) == SEEDS
        evals = store.evals()
        pool = store.pool_puzzles(up_to_round=0)
    assert sets["seed_set"]["source"] == str(seeds) and sets["seed_set"]["count"] == SEEDS
    assert sets["eval_set"]["source"] == str(evaluated) and sets["eval_set"]["count"] == EVALUATED
    assert {e.dataset for e in evals} == {"held_out"} and {e.total for e in evals} == {EVALUATED}
    assert len(pool) == SEEDS  # the prompts' examples are the user's seeds, not the built-in set
    capsys.readouterr()

    assert main(["status", str(run_dir)]) == 0
    status = capsys.readouterr().out
    assert f"seeds: {seeds}: {SEEDS} puzzles, hash {sets['seed_set']['hash'][:12]}" in status
    assert f"evaluation set: {evaluated}: {EVALUATED} puzzles" in status
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report")]) == 0
    assert f"seeds: {seeds}: {SEEDS} puzzles" in (tmp_path / "report" / "index.html").read_text()
    assert main(["export", str(run_dir), "--out", str(tmp_path / "data"), "--include-seeds", "--no-reverify"]) == 0
    card = (tmp_path / "data" / "README.md").read_text()
    assert "## Seeds and evaluation set" in card and f"{evaluated}: {EVALUATED} puzzles" in card
    capsys.readouterr()

    assert main(["eval", "--model", str(synthetic_tiny_model), "--eval", str(evaluated), "--seeds", str(seeds),
                 "--sandbox", "process", "--workers", "2", "--max-new-tokens", "48"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "held_out" and report["puzzles"] == EVALUATED
    assert report["samples"] == 5 and set(report["pass_at_k"]) == {"1", "5"}  # a round's evaluation settings
    assert report["seed_set"]["count"] == SEEDS


def factory(*argv: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factory.cli", *map(str, argv)], cwd=REPO, env=CHILD_ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "case", ["missing", "empty", "does not parse", "does not verify", "duplicates an evaluation puzzle"]
)
def test_a_bad_seed_file_is_one_line_and_exit_2_with_nothing_written(user_files, tmp_path, case):
    seeds, evaluated = user_files
    lines = seeds.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    first = json.loads(lines[0])
    content = {
        "empty": "",
        "does not parse": lines[0] + "\n{not json\n",
        "does not verify": json.dumps({**first, "g": "def g():\n    return None\n"}) + "\n",
        "duplicates an evaluation puzzle": json.dumps(
            {"f": json.loads(evaluated.read_text().splitlines()[0])["f"], "g": first["g"]}
        ) + "\n",
    }
    if case != "missing":
        bad.write_text(content[case])
    run_dir = tmp_path / "run"
    done = factory("round", "--run-dir", run_dir, "--seeds", bad, "--eval", evaluated, "--model", "unused",
                   "--sandbox", "process", "--workers", "1")
    assert done.returncode == 2, done.stderr
    line = one_line_error(done.stderr)
    assert str(bad) in line
    expected = {"missing": "no such file", "empty": "empty file", "does not parse": f"{bad}:2: does not parse",
                "does not verify": f"{bad}:1: does not verify", "duplicates an evaluation puzzle":
                f"{bad}:1: duplicates an evaluation puzzle"}[case]
    assert expected in line
    assert not (run_dir / STORE_FILENAME).exists()  # nothing written to the store


def test_a_seed_file_changed_since_the_run_started_does_not_resume(user_files, tmp_path):
    from factory.config import RunConfig
    from factory.errors import UserError
    from factory.loop.context import prepare_run
    from sandbox.backend import open_sandbox

    seeds, evaluated = user_files
    mine = tmp_path / "tasks.jsonl"
    mine.write_text(seeds.read_text())
    config = RunConfig(model="unused", seeds=str(mine), eval_set=str(evaluated))
    quiet = {"log": lambda m: None, "show_progress": False}
    with open_sandbox("process", workers=1, log=lambda m: None) as sandbox:
        prepare_run(tmp_path / "run", config, sandbox, **quiet).close()
        mine.write_text("".join(mine.read_text().splitlines(keepends=True)[1:]))  # one seed fewer
        with pytest.raises(UserError, match=f"started with the seed set {mine} of hash .*{SEEDS} puzzles"):
            prepare_run(tmp_path / "run", config, sandbox, **quiet)
