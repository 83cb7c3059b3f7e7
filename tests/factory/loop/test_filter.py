"""The propose stage's filters, as plain functions on real proposals and a real (process) sandbox."""

from __future__ import annotations

import pytest

from factory.config import RunConfig
from factory.loop.filter import filter_proposals, probe
from factory.loop.run_sets import run_eval_set
from puzzles.canonical import canonical_hash
from puzzles.seeds import load_seeds
from sandbox.backend import open_sandbox


@pytest.fixture(scope="module")
def process_sandbox():
    with open_sandbox("process", workers=2, log=lambda m: None) as box:
        yield box


def test_filters_sort_proposals_into_the_funnel(process_sandbox):
    train_seed = load_seeds("train")[0].puzzle.source
    held_out = load_seeds("test")[0].puzzle.source
    fresh = "def f(s: str, n=7):\n    return len(s) == n and s.count('z') == 3\n"
    raws = [
        "def f(x: int:\n    return",  # invalid
        "def f(b: bool):\n    return b\n",  # trivial: bool answers
        "def f(x: int):\n    return x * x == 100\n",  # trivial: the probe 10 solves it
        "def f(n: int, a=3):\n    return x * a == n\n",  # invalid: x is never defined
        train_seed.replace("def f(", "def f9(", 1),  # duplicate of a stored seed
        "# copied\n" + held_out.replace("def f(", "def f2(", 1),  # contaminated: a held-out puzzle
        fresh,
        fresh.replace("def f(", "def f3(", 1),  # duplicate within the batch
        # A new instance of a training family: near its held-out instance, but so are its training
        # seeds, so only an exact copy of that instance would count as contaminated.
        "def f(s: str, target='qwerty') -> bool:\n    return s[::-1] == target\n",
        "def f(s: str, words=['b', 'a']):\n    return sorted(words)\n",  # invalid: never a bool
    ]
    seeds = load_seeds("train")
    known = {canonical_hash(s.puzzle.source) for s in seeds}
    eval_index = run_eval_set(RunConfig(model="unused"), seeds).index
    rows = filter_proposals(list(range(len(raws))), raws, known, eval_index, process_sandbox, timeout_s=2.0)
    assert [r.status for r in rows] == [
        "invalid",
        "trivial",
        "trivial",
        "invalid",
        "duplicate",
        "contaminated",
        "accepted",
        "duplicate",
        "accepted",
        "invalid",
    ]
    assert "other than a bool" in rows[9].reason
    assert "probe answer 10" in rows[2].reason and "NameError" in rows[3].reason
    assert "evaluation puzzle seed/" in rows[5].reason
    assert rows[6].puzzle is not None and rows[6].canonical_hash


def test_the_filter_does_not_change_the_known_hashes_it_is_given(process_sandbox):
    fresh = "def f(s: str, n=7):\n    return len(s) == n and s.count('z') == 3\n"
    known: set[str] = set()
    eval_index = run_eval_set(RunConfig(model="unused"), load_seeds("train")).index
    rows = filter_proposals([0], [fresh], known, eval_index, process_sandbox, timeout_s=2.0)
    assert rows[0].status == "accepted" and known == set()
    again = filter_proposals([0], [fresh], {rows[0].canonical_hash}, eval_index, process_sandbox, timeout_s=2.0)
    assert again[0].status == "duplicate"


def test_probe_outcomes_are_read_from_the_sandbox_results(process_sandbox):
    from puzzles.parse import parse_puzzle

    puzzles = [
        parse_puzzle("def f(x: int):\n    return x == 0\n"),  # 0 is a probe answer
        parse_puzzle("def f(x: int):\n    return y == x\n"),  # NameError on every probe
        parse_puzzle("def f(x: int):\n    return [x]\n"),  # never a bool
        parse_puzzle("def f(x: int):\n    return x == 123456789\n"),  # not trivial
        parse_puzzle("def f(x: int):\n    return 1 // (x - x) == 0\n"),  # raises, but not NameError
    ]
    verdicts = probe(puzzles, process_sandbox, timeout_s=1.0)
    assert [v[0] for v in verdicts] == ["trivial", "invalid", "invalid", "", ""]
    assert "probe answer 0" in verdicts[0][1] and "NameError" in verdicts[1][1] and "bool" in verdicts[2][1]


def test_the_filter_dedups_against_the_store_s_live_hash_view(process_sandbox, tmp_path):
    from factory.store import RunStore

    seeds = load_seeds("train")[:3]
    fresh = "def f(s: str, n=7):\n    return len(s) == n and s.count('z') == 3\n"
    eval_index = run_eval_set(RunConfig(model="unused"), load_seeds("train")).index
    with RunStore.open(tmp_path) as store:
        store.add_seed_puzzles((s, canonical_hash(s.puzzle.source)) for s in seeds)
        raws = [seeds[1].puzzle.source.replace("def f(", "def f7(", 1), fresh, fresh]
        rows = filter_proposals([0, 1, 2], raws, store.known_hashes(), eval_index, process_sandbox, 2.0)
        assert [r.status for r in rows] == ["duplicate", "accepted", "duplicate"]
        assert len(store.known_hashes()) == 3  # asked, never written
