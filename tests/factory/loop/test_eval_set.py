"""The paper's evaluation set, P3 test-228: each test problem's first instance, and how runs choose it.

How the 228 were established: split.json's "test" list names 228 problems; puzzles.json holds 1,009
instances of them, and each problem's first instance is its ``Name:0``. The paper's own
ICLR2023/data/test_228.json (microsoft/PythonProgrammingPuzzles) holds 228 puzzle sources that are,
text for text, exactly those ``:0`` instances (checked once by hand; that file is not in ../shared/p3).
"""

from __future__ import annotations

import json

import pytest

from factory.config import RunConfig, run_identity
from factory.errors import UserError
from factory.loop.context import open_run_store
from factory.loop.corpus import eval_set, load_eval_puzzles
from factory.loop.paper import PAPER_DATASET, PAPER_PROBLEMS
from factory.loop.run_sets import run_eval_set
from factory.store import RunStore
from factory.verify_files import reference_pairs, run_verification
from puzzles.canonical import canonical_hash
from puzzles.p3 import first_instances
from puzzles.records import NamedPuzzle
from puzzles.seeds import load_seeds
from sandbox.backend import open_sandbox
from sandbox.verdicts import TIMEOUT, VERIFIED, WRONG

TEST_INSTANCES = 1009
# Paper puzzles without a reference solution that verifies, and why.
NO_VERIFIED_REFERENCE = {
    "GCD17:0": set(),  # P3 gives it no reference solution
    # Its one reference answer is a list of more than 16 MiB of JSON (the answer cap), built in seconds:
    # "wrong" (over the cap), or "timeout" on a very loaded machine.
    "ExponentialCoinMoves:0": {WRONG, TIMEOUT},
}
# Generous: the slowest reference solution (Mastermind:0) takes about 7 s on an idle 2-core machine.
REFERENCE_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def paper_set(p3_path) -> list[NamedPuzzle]:
    name, puzzles = eval_set(p3_path, "test")
    assert name == PAPER_DATASET
    return puzzles


def test_the_paper_set_is_the_first_instance_of_each_of_the_228_test_problems(p3_path, paper_set):
    test_problems = json.loads((p3_path.parent / "split.json").read_text())["test"]
    assert len(test_problems) == PAPER_PROBLEMS == len(paper_set) == 228
    assert [p.key for p in paper_set] == [f"{p.family}:0" for p in paper_set]
    assert {p.family for p in paper_set} == set(test_problems)
    assert all(p.split == "test" for p in paper_set)


def test_all_instances_is_the_whole_test_split_and_the_paper_set_guards_all_of_it(p3_path, paper_set):
    name, every = eval_set(p3_path, "test", all_instances=True)
    assert name == "p3-test-all" and len(every) == TEST_INSTANCES
    assert {p.key for p in paper_set} < {p.key for p in every}
    guarded = load_eval_puzzles(p3_path, "test").guarded  # the data stays away from every instance
    assert [p.key for p in guarded] == [p.key for p in every]


@pytest.mark.slow
def test_a_run_evaluates_on_the_paper_set_and_keeps_its_data_away_from_every_instance(p3_path):
    run_set = run_eval_set(RunConfig(model="m", eval_p3=str(p3_path)), load_seeds("train"))
    assert (run_set.name, len(run_set.puzzles)) == ("p3-test", 228)
    every = load_eval_puzzles(p3_path, "test", all_instances=True).puzzles
    assert run_set.index.hashes() == {canonical_hash(p.puzzle.source) for p in every}


def test_every_paper_puzzle_has_a_reference_solution_that_verifies_but_the_known_two(paper_set):
    keys, pairs = reference_pairs(paper_set)
    with open_sandbox("process", workers=2, log=lambda m: None) as sandbox:
        report = run_verification(pairs, sandbox, REFERENCE_TIMEOUT_S, trusted_puzzles=True)
    verdicts: dict[str, set[str]] = {p.key: set() for p in paper_set}
    for key, result in zip(keys, report.results, strict=True):
        verdicts[key.rpartition("#")[0]].add(result.status)
    unverified = {key: found for key, found in verdicts.items() if VERIFIED not in found}
    assert unverified.keys() == NO_VERIFIED_REFERENCE.keys(), unverified
    assert all(found <= NO_VERIFIED_REFERENCE[key] for key, found in unverified.items()), unverified


def test_first_instances_keeps_each_familys_first_in_order():
    def named(key: str) -> NamedPuzzle:
        return NamedPuzzle(key=key, puzzle=None, family=key.partition(":")[0])  # type: ignore[arg-type]

    chosen = first_instances([named(k) for k in ("B:0", "B:1", "A:0", "B:2", "A:1", "C:3")])
    assert [p.key for p in chosen] == ["B:0", "A:0", "C:3"]


def test_a_p3_run_recorded_before_the_setting_resumes_only_with_every_instance(tmp_path):
    """A store whose config predates eval_all_instances evaluated P3 on every instance."""
    old = {k: v for k, v in RunConfig(model="m", eval_p3="p.json").to_json().items() if k != "eval_all_instances"}
    store = RunStore.open(tmp_path)
    store.record_config(old)
    store.close()
    with pytest.raises(UserError, match="eval_all_instances=True, not False"):
        open_run_store(tmp_path, RunConfig(model="m", eval_p3="p.json"))
    open_run_store(tmp_path, RunConfig(model="m", eval_p3="p.json", eval_all_instances=True)).close()
    seeds_only = {k: v for k, v in RunConfig(model="m").to_json().items() if k != "eval_all_instances"}
    assert run_identity(seeds_only) == run_identity(RunConfig(model="m").to_json())  # no P3: irrelevant
