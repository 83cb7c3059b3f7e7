"""Seed and evaluation sets a user brings (factory.loop.puzzle_sets), checked in a real process sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.errors import USAGE_EXIT, UserError
from factory.loop.puzzle_sets import (
    BREAKS_RULE,
    DUPLICATE,
    EVALUATION_DUPLICATE,
    NOT_PARSED,
    NOT_VERIFIED,
    PuzzleSet,
    load_eval_set,
    load_seed_set,
)
from puzzles.p3 import SPLIT_FILE
from puzzles.seeds import load_seeds, load_task_seeds
from sandbox.backend import open_sandbox

SQUARE = {"f": "def f(x: int) -> bool:\n    return x * x == 49 and x > 0", "g": "def g():\n    return 7"}
WORD = {
    "id": "Word:0",
    "f": 'def f(s: str, n=3) -> bool:\n    """A word of n letters b."""\n    return s == "b" * n',
    "g": 'def g(n=3):\n    return "b" * n',
}
PAIR_SUM = {
    "id": "PairSum:2",
    "f": "def f(xs: List[int], t=12) -> bool:\n    return len(xs) == 2 and sum(xs) == t and xs[0] != xs[1]",
    "g": "def g(t=12):\n    return [1, t - 1]",
}
GOOD = [SQUARE, WORD, PAIR_SUM]
# The hash of GOOD as a seed set: the same on every run and machine (it names a run's seed set).
GOOD_HASH = "e68791a28b4f3c2fe490ab54d9f7c2e5588d8f71caeb34449a850fd0fefdc2ae"


def line(f: str, g: str | None = "def g():\n    return 1", **more: str) -> str:
    """One JSONL line: puzzle ``f``, solution ``g`` (none when None) and any other fields."""
    return json.dumps({"f": f, **({} if g is None else {"g": g}), **more})


ONE = "def f(x: int) -> bool:\n    return x == 1"
BAD = {  # (JSONL line, reason, a piece of the one-line message)
    "bad json": (line(ONE)[:-3], NOT_PARSED, "not a JSON object"),
    "syntax error": (line("def f(x: int) -> bool:\n    return x =="), NOT_PARSED, "f: syntax error"),
    "forbidden import": (
        line("def f(x: int) -> bool:\n    import os\n    return x == 1"),
        BREAKS_RULE,
        "'os'",
    ),
    "eval in a seed": (
        line("def f(x: str) -> bool:\n    return eval(x) == 1", 'def g():\n    return "1"'),
        BREAKS_RULE,
        "eval",
    ),
    "bool answer": (
        line("def f(b: bool) -> bool:\n    return b", "def g():\n    return True"),
        BREAKS_RULE,
        "bool answer",
    ),
    "no g": (line(ONE, None), BREAKS_RULE, "needs a solution g"),
    "wrong g": (line(ONE, "def g():\n    return 2"), NOT_VERIFIED, "wrong"),
    # SQUARE renamed, reformatted and commented: the same canonical form
    "same as a seed": (
        line("def sq(x: int) -> bool:  # again\n    return x*x == 49 and x > 0"),
        DUPLICATE,
        "as {path}:1",
    ),
    "same id": (line(ONE, id="Word:0"), DUPLICATE, "id 'Word:0'"),
}


@pytest.fixture(scope="module")
def sandbox():
    with open_sandbox("process", workers=2, log=lambda m: None) as box:
        yield box


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def refusal(call, *args, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert caught.value.exit_code == USAGE_EXIT
    assert "\n" not in message
    return message


def test_a_good_jsonl_loads_with_its_count_keys_and_pairs(tmp_path, sandbox):
    path = write_jsonl(
        tmp_path / "seeds.jsonl", [json.dumps(r) for r in GOOD[:2]] + ["", json.dumps(PAIR_SUM)]
    )
    seeds = load_seed_set(path, sandbox)
    assert isinstance(seeds, PuzzleSet)
    assert (seeds.name, seeds.kind, seeds.split, seeds.count, seeds.skipped) == (
        str(path),
        "jsonl",
        None,
        3,
        (),
    )
    assert [p.key for p in seeds.puzzles] == ["seeds.jsonl:1", "Word:0", "PairSum:2"]  # line 3 is blank
    assert [p.family for p in seeds.puzzles] == ["", "Word", "PairSum"]
    assert seeds.pairs() == [(r["f"], r["g"]) for r in GOOD]
    assert seeds.describe() == {
        "name": str(path),
        "kind": "jsonl",
        "split": None,
        "hash": seeds.content_hash,
        "count": 3,
        "skipped": {},
    }


def test_the_hash_is_stable_and_follows_the_content_only(tmp_path, sandbox):
    lines = [json.dumps(r) for r in GOOD]
    first = load_seed_set(write_jsonl(tmp_path / "a.jsonl", lines), sandbox).content_hash
    assert first == GOOD_HASH
    renamed = [json.dumps({**r, "id": f"other:{i}"}) for i, r in enumerate(GOOD)]
    assert load_seed_set(write_jsonl(tmp_path / "b.jsonl", renamed), sandbox).content_hash == first
    other_g = [json.dumps({**SQUARE, "g": "def g():\n    return 3 + 4"}), *lines[1:]]
    assert load_seed_set(write_jsonl(tmp_path / "c.jsonl", other_g), sandbox).content_hash != first
    fewer = load_seed_set(write_jsonl(tmp_path / "d.jsonl", lines[:2]), sandbox)
    assert fewer.count == 2 and fewer.content_hash != first


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_line_is_refused_in_one_line_naming_it_and_the_reason(tmp_path, sandbox, case):
    line, reason, piece = BAD[case]
    path = write_jsonl(tmp_path / "seeds.jsonl", [json.dumps(SQUARE), json.dumps(WORD), line])
    message = refusal(load_seed_set, path, sandbox)
    assert message.startswith(f"{path}:3: {reason}: ")
    assert piece.format(path=path) in message


def test_a_seed_equal_to_an_evaluation_puzzle_is_refused(tmp_path, sandbox):
    held_out = load_seeds("test")[0]
    twin = {"f": f"# a copy\n{held_out.puzzle.source}", "g": held_out.solutions[0].source}
    path = write_jsonl(tmp_path / "seeds.jsonl", [json.dumps(SQUARE), json.dumps(twin)])
    assert load_seed_set(path, sandbox).count == 2  # without the evaluation set, nothing to refuse
    message = refusal(load_seed_set, path, sandbox, evaluation=load_seeds("test"))
    assert (
        message
        == f"{path}:2: {EVALUATION_DUPLICATE}: same canonical form as evaluation puzzle {held_out.key}"
    )


def test_missing_empty_and_unknown_files_and_the_test_split_are_refused(tmp_path, sandbox):
    missing = tmp_path / "nowhere.jsonl"
    assert refusal(load_seed_set, missing, sandbox) == f"{missing}: no such file"
    empty = write_jsonl(tmp_path / "empty.jsonl", ["", "  "])
    assert refusal(load_seed_set, empty, sandbox) == f"{empty}: empty file: no puzzles in it"
    text = tmp_path / "seeds.txt"
    text.write_text(json.dumps(SQUARE))
    assert refusal(load_seed_set, text, sandbox).startswith(f"{text}: unknown format: expected a .jsonl file")
    assert "evaluation only" in refusal(load_seed_set, "builtin", sandbox, split="test")


def test_skip_bad_skips_and_counts_each_reason(tmp_path, sandbox):
    lines = [json.dumps(r) for r in GOOD] + [line for line, _, _ in BAD.values()]
    seeds = load_seed_set(write_jsonl(tmp_path / "seeds.jsonl", lines), sandbox, skip_bad=True)
    assert seeds.count == len(GOOD)
    assert seeds.skipped_counts() == {NOT_PARSED: 2, BREAKS_RULE: 4, NOT_VERIFIED: 1, DUPLICATE: 2}
    assert all("\n" not in s.message and s.message.startswith(f"{tmp_path}") for s in seeds.skipped)
    nothing_good = write_jsonl(tmp_path / "bad.jsonl", [BAD["bad json"][0], BAD["wrong g"][0]])
    message = refusal(load_seed_set, nothing_good, sandbox, skip_bad=True)
    assert message == f"{nothing_good}: no usable puzzles: all 2 left out (1 {NOT_PARSED}, 1 {NOT_VERIFIED})"


def test_an_evaluation_set_needs_only_f_and_verifies_a_g_when_given(tmp_path, sandbox):
    only_f = {"id": "Echo:0", "f": "def f(x: str) -> bool:\n    return eval(x) == 3"}  # P3's eval(x): allowed
    path = write_jsonl(tmp_path / "eval.jsonl", [json.dumps(only_f), json.dumps(SQUARE)])
    evaluation = load_eval_set(path, sandbox)
    assert [p.key for p in evaluation.puzzles] == ["Echo:0", "eval.jsonl:2"]
    assert evaluation.guarded == evaluation.puzzles
    assert [p.split for p in evaluation.puzzles] == ["test", "test"]
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [json.dumps(only_f), BAD["wrong g"][0]])
    assert refusal(load_eval_set, wrong, sandbox).startswith(f"{wrong}:2: {NOT_VERIFIED}: wrong")


@pytest.mark.parametrize(
    "name, load", [("builtin", load_task_seeds), ("builtin-augmented", load_seeds)], ids=["builtin", "augmented"]
)
def test_the_builtin_sets_are_their_seed_splits_and_stay_apart(sandbox, name, load):
    evaluation = load_eval_set(name, sandbox)
    seeds = load_seed_set(name, sandbox, evaluation=evaluation.guarded)
    assert [p.key for p in seeds.puzzles] == [s.key for s in load("train")]
    assert [p.key for p in evaluation.puzzles] == [s.key for s in load("test")]
    assert seeds.content_hash != evaluation.content_hash


def small_p3(tmp_path: Path, p3_path: Path, names: list[str]) -> Path:
    """A P3 folder holding the real instances ``names`` (in that order) and P3's real split.json."""
    folder = tmp_path / "p3"
    folder.mkdir()
    by_name = {entry["name"]: entry for entry in json.loads(p3_path.read_text())}
    (folder / "puzzles.json").write_text(json.dumps([by_name[name] for name in names]))
    (folder / SPLIT_FILE).write_text((p3_path.parent / SPLIT_FILE).read_text())
    return folder / "puzzles.json"


def test_a_p3_file_gives_its_train_split_as_seeds_and_names_a_bad_instance(tmp_path, sandbox, p3_path):
    # Easy63 (train) evaluates its answer: P3 allows it, a seed may not. Study_2 and Sudoku are test problems.
    names = ["Study_2:0", "Study_1:0", "Easy63:0", "Sudoku:0", "Study_3:0", "Sudoku:1"]
    path = small_p3(tmp_path, p3_path, names)
    message = refusal(load_seed_set, path, sandbox)
    assert message.startswith(f"{path}: Easy63:0: {BREAKS_RULE}: use of 'eval'")
    seeds = load_seed_set(path.parent, sandbox, skip_bad=True)
    assert (seeds.kind, seeds.split, seeds.count) == ("p3", "train", 2)
    assert [p.key for p in seeds.puzzles] == ["Study_1:0", "Study_3:0"]
    assert seeds.skipped_counts() == {BREAKS_RULE: 1}
    evaluation = load_eval_set(path, sandbox)  # the test split's first instances; every instance guarded
    assert [p.key for p in evaluation.puzzles] == ["Study_2:0", "Sudoku:0"]
    assert [p.key for p in evaluation.guarded] == ["Study_2:0", "Sudoku:0", "Sudoku:1"]
    everything = load_eval_set(path, sandbox, all_instances=True)
    assert everything.puzzles == evaluation.guarded and everything.content_hash != evaluation.content_hash
    assert "evaluation only" in refusal(load_seed_set, path, sandbox, split="test")


@pytest.mark.slow
def test_p3s_whole_train_split_loads_as_seeds(sandbox, p3_path):
    """636 train instances: 2 evaluate their answer and 37 have no reference solution; the rest verify."""
    seeds = load_seed_set(p3_path, sandbox, skip_bad=True, evaluation=load_eval_set(p3_path, sandbox).guarded)
    assert (seeds.count, seeds.skipped_counts()) == (597, {BREAKS_RULE: 39})
    assert len(seeds.pairs()) == 607  # a few instances have more than one reference solution
