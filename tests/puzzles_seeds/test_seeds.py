"""The seed set: counts, keys, splits, determinism, and that every instance verifies and resists probes."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import re
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from puzzles.filters import probe_answers
from puzzles.seeds import all_families, load_seeds
from puzzles.seeds.family import Family, fill_defaults

SEEDS = load_seeds()
FAMILIES = [family for _, family in all_families()]
P3_PUZZLES = Path(__file__).resolve().parents[2].parent / "shared" / "p3" / "puzzles.json"
REPO_ROOT = Path(__file__).resolve().parents[2]

ALLOWED_IMPORTS = {
    "math", "itertools", "collections", "heapq", "re", "random", "string",
    "functools", "operator", "bisect", "fractions", "statistics",
}  # fmt: skip
FORBIDDEN_NAMES = {"exec", "eval", "open", "getattr", "setattr", "compile", "globals", "locals", "vars"}
BASE_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
CALL_SECONDS = 2.0


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(signum, frame):
        raise TimeoutError(f"call ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def has_type(value: object, type_text: str) -> bool:
    """Exact P3 typing: ``type(x) is T`` at every level (a bool is not an int, 5.0 is not an int)."""
    if type_text.startswith("List[") and type_text.endswith("]"):
        inner = type_text[5:-1]
        return type(value) is list and all(has_type(item, inner) for item in value)
    return type(value) is BASE_TYPES[type_text]


def load_function(source: str, name: str):
    namespace = {"List": list}
    exec(compile("from typing import List\n" + source, f"<{name}>", "exec"), namespace)
    return namespace[name]


def test_counts():
    assert len(FAMILIES) >= 44
    assert all(6 <= len(family.instances) <= 10 for family in FAMILIES)
    assert len(SEEDS) == sum(len(family.instances) for family in FAMILIES)
    assert Counter(seed.family for seed in SEEDS) == {f.name: len(f.instances) for f in FAMILIES}


def test_keys_are_unique_and_named_by_family():
    keys = [seed.key for seed in SEEDS]
    assert len(keys) == len(set(keys))
    for seed in SEEDS:
        assert re.fullmatch(rf"seed/{re.escape(seed.family)}:\d+", seed.key)
        assert seed.tags and seed.puzzle.name == "f" and seed.solutions[0].name == "g"


def test_splits():
    by_family = defaultdict(list)
    for seed in SEEDS:
        by_family[seed.family].append(seed)
    held_out = [family for family in FAMILIES if family.held_out]
    assert 6 <= len(held_out) <= len(FAMILIES) // 3  # most families teach; a few only test
    for family in FAMILIES:
        seeds = sorted(by_family[family.name], key=lambda s: int(s.key.rsplit(":", 1)[1]))
        splits = [seed.split for seed in seeds]
        if family.held_out:
            assert splits == ["test"] * len(seeds)
        else:
            assert splits == ["train"] * (len(seeds) - 1) + ["test"]
    train, test = load_seeds("train"), load_seeds("test")
    assert {s.key for s in train} | {s.key for s in test} == {s.key for s in SEEDS}
    assert not {s.key for s in train} & {s.key for s in test}
    assert not {s.family for s in train} & {f.name for f in held_out}
    with pytest.raises(ValueError, match="unknown split"):
        load_seeds("validation")


def test_same_output_every_call_and_every_process():
    assert load_seeds() == SEEDS
    digest = hashlib.sha256(repr(SEEDS).encode()).hexdigest()
    code = "import hashlib; from puzzles.seeds import load_seeds; print(hashlib.sha256(repr(load_seeds()).encode()).hexdigest())"
    other = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == digest


def test_defaults_are_the_instance_literals():
    for family in FAMILIES:
        for index, values in enumerate(family.instances):
            seed = next(s for s in SEEDS if s.key == f"seed/{family.name}:{index}")
            assert {name: ast.literal_eval(text) for name, text in seed.puzzle.defaults} == values
            g_args = find_args(seed.solutions[0].source, "g")
            assert g_args in ([], [name for name, _ in seed.puzzle.defaults])


def find_args(source: str, name: str) -> list[str]:
    func = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)
    return [a.arg for a in func.args.args]


def test_fill_defaults_keeps_the_body_and_rejects_wrong_keys():
    source = "def f(x: int, a=..., b=[...]) -> bool:\n    # keep me\n    return x == a + b[0]\n"
    filled, literals = fill_defaults(source, "f", {"a": 3, "b": [4, "é"]})
    assert filled == "def f(x: int, a=3, b=[4, 'é']) -> bool:\n    # keep me\n    return x == a + b[0]\n"
    assert literals == (("a", "3"), ("b", "[4, 'é']"))
    with pytest.raises(ValueError, match="defaulted arguments"):
        fill_defaults(source, "f", {"a": 3})
    family = Family(
        name="x",
        f="\n    def f(x: int) -> bool:\n        return x == 3\n",
        g="def g(): return 3",
        instances=(),
    )
    assert family.f == "def f(x: int) -> bool:\n    return x == 3\n"


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.key)
def test_solution_verifies_and_probes_fail(seed):
    f = load_function(seed.puzzle.source, "f")
    g = load_function(seed.solutions[0].source, "g")
    with time_limit(CALL_SECONDS):
        answer = g()
    assert has_type(answer, seed.puzzle.answer_type), f"g returned {answer!r}, not {seed.puzzle.answer_type}"
    with time_limit(CALL_SECONDS):
        assert f(answer) is True
    with time_limit(CALL_SECONDS):
        assert g() == answer, "g is not deterministic"
    passed = []
    for probe in probe_answers(seed.puzzle.answer_type):  # what the filter tries
        try:
            with time_limit(CALL_SECONDS):
                verdict = f(probe)
        except TimeoutError:
            raise
        except Exception:
            continue
        if verdict is True:
            passed.append(probe)
    if seed.puzzle.answer_type == "bool":
        assert len(passed) <= 1
    else:
        assert passed == [], f"trivial answers pass: {passed}"


def _imported_modules(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append((node.module or "").split(".")[0])
    return names


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_puzzle_source_is_allowed(family):
    tree = ast.parse(family.f)
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.FunctionDef) and tree.body[0].name == "f"
    func = tree.body[0]
    assert func.args.args[0].annotation is not None
    assert set(_imported_modules(tree)) <= ALLOWED_IMPORTS
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert node.id not in FORBIDDEN_NAMES and not node.id.startswith("__")
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__")
        if isinstance(node, ast.arg):
            assert not node.arg.startswith("__")
    g_tree = ast.parse(family.g)
    assert [n.name for n in g_tree.body if isinstance(n, ast.FunctionDef)] == ["g"]


def _body_text(function_source: str) -> str:
    """The statements of a function without its docstring, unparsed and with whitespace dropped."""
    func = next(n for n in ast.parse(function_source).body if isinstance(n, ast.FunctionDef))
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return re.sub(r"\s+", "", "\n".join(ast.unparse(stmt) for stmt in body))


@pytest.mark.skipif(not P3_PUZZLES.exists(), reason="P3 puzzles.json not present")
def test_no_family_copies_a_p3_puzzle():
    p3 = json.loads(P3_PUZZLES.read_text())
    whole = {re.sub(r"\s+", "", entry["sat"]).replace("defsat(", "deff(", 1) for entry in p3}
    bodies = set()
    for entry in p3:
        with contextlib.suppress(SyntaxError, StopIteration):
            bodies.add(_body_text(entry["sat"]))
    for seed in SEEDS:
        assert re.sub(r"\s+", "", seed.puzzle.source) not in whole, seed.key
    for family in FAMILIES:
        assert _body_text(family.f) not in bodies, f"{family.name}: body identical to a P3 puzzle"


def test_extra_training_instances_continue_the_draw_and_verify():
    from puzzles.canonical import canonical_hash
    from puzzles.seeds import extra_training_seeds

    extra = extra_training_seeds(6)
    held_out = {family.name for family in FAMILIES if family.held_out}
    assert {seed.family for seed in extra} == {family.name for family in FAMILIES} - held_out
    assert all(seed.split == "train" and ":x" in seed.key for seed in extra)
    fixed = {canonical_hash(seed.puzzle.source) for seed in SEEDS}
    hashes = [canonical_hash(seed.puzzle.source) for seed in extra]
    assert len(set(hashes)) == len(hashes) and not fixed & set(hashes)
    # Drawing more extends the same sequence: the first six come back unchanged.
    assert [s.puzzle.source for s in extra_training_seeds(7) if not s.key.endswith(":x6")] == [
        s.puzzle.source for s in extra
    ]
    for seed in extra:
        f = load_function(seed.puzzle.source, "f")
        g = load_function(seed.solutions[0].source, "g")
        with time_limit(CALL_SECONDS):
            answer = g()
        assert has_type(answer, seed.puzzle.answer_type), seed.key
        with time_limit(CALL_SECONDS):
            assert f(answer) is True, seed.key


def test_no_training_puzzle_comes_near_a_held_out_family():
    """A held-out family tests puzzles of a kind never seen: the evaluation index built against every
    training seed and every instance the embedded model's corpus draws keeps the full near-duplicate
    check for each held-out puzzle (``EvalIndex``'s rule; its one-line cousins differ by more than a
    token or two), and drops it for the fresh instances of training families."""
    from factory.loop.corpus import EXTRA_INSTANCES_PER_FAMILY
    from puzzles.filters import EvalIndex
    from puzzles.seeds import extra_training_seeds

    held_out = {family.name for family in FAMILIES if family.held_out}
    training = load_seeds("train") + extra_training_seeds(EXTRA_INSTANCES_PER_FAMILY)
    test = load_seeds("test")
    index = EvalIndex.from_sources(
        ((seed.key, seed.puzzle.source) for seed in test), training=(seed.puzzle.source for seed in training)
    )
    near_checked = {entry.key for entry in index.entries if entry.near_check}
    assert near_checked == {seed.key for seed in test if seed.family in held_out}
