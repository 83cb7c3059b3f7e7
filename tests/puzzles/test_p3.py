import collections
import json
from pathlib import Path

import pytest

from puzzles.answer_types import canonical_type
from puzzles.p3 import load_p3, load_p3_report
from puzzles.parse import parse_puzzle
from puzzles.records import InvalidProgram

P3_DIR = Path(__file__).parents[2].parent / "shared" / "p3"
P3_PUZZLES = P3_DIR / "puzzles.json"

# The P3 problems whose sat calls eval(x); only trusted collections may (parse_puzzle(allow_eval=True)).
P3_EVAL_PROBLEMS = {"CardGame24", "Easy63", "EvaluateOperators", "Harder63", "Quine", "RevQuine"}

needs_p3 = pytest.mark.skipif(not P3_PUZZLES.is_file(), reason=f"P3 data not found at {P3_PUZZLES}")


@pytest.fixture(scope="module")
def raw():
    return json.loads(P3_PUZZLES.read_text())


@pytest.fixture(scope="module")
def report():
    return load_p3_report(P3_PUZZLES)


@needs_p3
def test_every_instance_loads(raw, report):
    accepted, rejected = report
    for key, reason in rejected:
        print(f"rejected {key}: {reason}")
    assert len(raw) == 1715
    assert rejected == []
    assert [p.key for p in accepted] == [entry["name"] for entry in raw]


@needs_p3
def test_records_reproduce_the_p3_text(raw, report):
    accepted, _ = report
    for entry, named in zip(raw, accepted, strict=True):
        assert named.puzzle.source == entry["sat"]
        assert named.puzzle.answer_type == canonical_type(entry["ans_type"])
        assert named.family == entry["name"].split(":")[0]
        assert named.tags == (entry["module"],)
        assert [s.source for s in named.solutions] == [
            f"{entry['sol_header']}\n{b}" for b in entry["sol_bodies"]
        ]
    assert sum(len(named.solutions) for named in accepted) == 1698
    assert sum(not named.solutions for named in accepted) == 54


@needs_p3
def test_split_counts_match_split_json(raw, report):
    splits = json.loads((P3_DIR / "split.json").read_text())
    family_split = {name: split for split in ("train", "test") for name in splits[split]}
    expected = collections.Counter(family_split.get(entry["name"].split(":")[0], "none") for entry in raw)
    accepted, _ = report
    assert collections.Counter(named.split for named in accepted) == expected
    assert expected == {"test": 1009, "train": 636, "none": 70}
    assert {named.family for named in accepted if named.split == "test"} == set(splits["test"])
    assert {named.family for named in accepted if named.split == "none"}.isdisjoint(family_split)


@needs_p3
def test_load_p3_filters_by_split():
    by_split = {split: load_p3(str(P3_PUZZLES), split=split) for split in ("train", "test", "none")}
    assert {split: len(loaded) for split, loaded in by_split.items()} == {
        "train": 636,
        "test": 1009,
        "none": 70,
    }
    assert all(named.split == split for split, loaded in by_split.items() for named in loaded)


@needs_p3
def test_every_p3_sat_passes_hygiene(raw):
    needs_eval = set()
    for entry in raw:
        parse_puzzle(entry["sat"], allow_eval=True)
        try:
            parse_puzzle(entry["sat"])
        except InvalidProgram as error:
            assert "'eval'" in str(error)
            needs_eval.add(entry["name"].split(":")[0])
    assert needs_eval == P3_EVAL_PROBLEMS


# ---------------------------------------------------------------------------------------------------
# Small hand-made files: errors and rejections


def write(folder: Path, puzzles: object, splits: object = None) -> Path:
    path = folder / "puzzles.json"
    path.write_text(puzzles if isinstance(puzzles, str) else json.dumps(puzzles))
    if splits is not None:
        (folder / "split.json").write_text(splits if isinstance(splits, str) else json.dumps(splits))
    return path


def instance(name: str, sat: str, ans_type: str = "int", bodies: tuple[str, ...] = ("    return 1",)) -> dict:
    return {
        "name": name,
        "sat": sat,
        "ans_type": ans_type,
        "sol_header": "def sol():",
        "sol_docstring": "",
        "sol_bodies": list(bodies),
        "module": "toy.py",
        "notes": "",
        "weight": 1.0,
    }


SPLITS = {"train": ["Good"], "test": ["Other"]}


def test_bad_instances_are_reported_not_lost(tmp_path):
    path = write(
        tmp_path,
        [
            instance("Good:0", "def sat(x: int, n=1):\n    return x == n", bodies=("    return 1",)),
            instance("Good:1", "def sat(x: int):\n    import os\n    return True"),
            instance("Other:0", "def sat(x: int):\n    return x", ans_type="str"),
            instance("Other:1", "def sat(x: int, n=1):\n    return x == n", bodies=("    return n",)),
            instance("Other:2", "def sat(x: int):\n    return x == 2", bodies=("  return (",)),
            instance("Good:0", "def sat(x: int):\n    return x == 1"),
            instance("Lone:0", "def sat(x: int):\n    return x == 3", bodies=()),
        ],
        SPLITS,
    )
    accepted, rejected = load_p3_report(path)
    assert [(n.key, n.split, n.family, n.tags) for n in accepted] == [
        ("Good:0", "train", "Good", ("toy.py",)),
        ("Other:1", "test", "Other", ("toy.py",)),
        ("Lone:0", "none", "Lone", ("toy.py",)),
    ]
    assert dict(rejected) == {
        "Good:1": "import of module 'os' is not allowed (allowed: bisect, collections, fractions, functools, "
        "heapq, itertools, math, operator, random, re, statistics, string)",
        "Other:0": "ans_type str does not match the annotation int",
        "Other:2": "solution 1: syntax error at line 2: '(' was never closed",
        "Good:0": "duplicate instance name",
    }
    assert [n.key for n in load_p3(tmp_path, split="test")] == ["Other:1"]


def test_solution_default_mismatch_rejects_the_instance(tmp_path):
    bad = instance("Good:0", "def sat(x: int, n=1):\n    return x == n")
    bad["sol_header"] = "def sol(n=2):"
    _, rejected = load_p3_report(write(tmp_path, [bad], SPLITS))
    assert rejected == [("Good:0", "solution 1: default of argument 'n' is 2 but the puzzle has 1")]


def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="P3 data file not found: .*puzzles.json"):
        load_p3(tmp_path / "puzzles.json")
    with pytest.raises(FileNotFoundError, match="P3 data file not found: .*puzzles.json"):
        load_p3(tmp_path)
    write(tmp_path, [])
    with pytest.raises(FileNotFoundError, match="split.json"):
        load_p3(tmp_path)


@pytest.mark.parametrize(
    ("puzzles", "splits", "message"),
    [
        ("[{", SPLITS, r"puzzles.json is not valid JSON"),
        ({"a": 1}, SPLITS, r"puzzles.json: expected a JSON list of puzzle instances, got dict"),
        ([1], SPLITS, r"puzzles.json: instance 0 is int, expected an object"),
        ([{"name": "A:0"}], SPLITS, r"puzzles.json: instance 'A:0' has no str field 'sat'"),
        ([], "nope", r"split.json is not valid JSON"),
        ([], {"train": []}, r"split.json: expected a JSON object with exactly the keys 'train' and 'test'"),
        ([], {"train": "A", "test": []}, r"split.json: 'train' must be a list of problem names"),
        ([], {"train": ["A"], "test": ["A"]}, r"split.json: problem 'A' is in both 'train' and 'test'"),
    ],
)
def test_malformed_files_raise_value_error_naming_the_file(tmp_path, puzzles, splits, message):
    with pytest.raises(ValueError, match=message):
        load_p3(write(tmp_path, puzzles, splits))


def test_unreadable_file_raises_value_error(tmp_path):
    path = tmp_path / "puzzles.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "split.json").write_text(json.dumps(SPLITS))
    with pytest.raises(ValueError, match="cannot read .*puzzles.json"):
        load_p3(path)
    path.write_text("[]")
    (tmp_path / "split.json").unlink()
    (tmp_path / "split.json").mkdir()
    with pytest.raises(ValueError, match="split.json is not a file"):
        load_p3(path)


def test_unknown_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown P3 split 'dev'"):
        load_p3(write(tmp_path, [], SPLITS), split="dev")
