"""The built-in evaluations split into their two parts, and pass@k on each."""

from __future__ import annotations

import json

from factory.loop.corpus import SEED_EVAL, TASK_EVAL
from factory.loop.parts import FRESH_INSTANCES, HELD_OUT_FAMILIES, TASK_INSTANCES, eval_parts, part_pass_at_k
from factory.outputs.report import collect_report
from factory.store import EvalRecord, RunStore
from puzzles.seeds import all_families, load_seeds, load_task_seeds, task_families


def record(k: int, n: int, solved: dict[str, int], dataset: str = SEED_EVAL) -> EvalRecord:
    return EvalRecord(0, "m", dataset, k, n, 0.0, 0, len(solved), {"solved": solved}, 0.0)


def test_the_parts_partition_the_held_out_seeds_by_family():
    parts = eval_parts(SEED_EVAL)
    test = {s.key: s.family for s in load_seeds("test")}
    fresh, held = parts[FRESH_INSTANCES], parts[HELD_OUT_FAMILIES]
    assert fresh | held == set(test) and not fresh & held
    held_out = {family.name for _, family in all_families() if family.held_out}
    assert {test[key] for key in held} == held_out
    # a fresh instance is one per training family, of a family the training split has
    train_families = {s.family for s in load_seeds("train")}
    assert sorted(test[key] for key in fresh) == sorted(train_families)
    assert eval_parts("p3-test") == {}


def test_the_task_evaluation_parts_are_the_task_families_and_the_held_out_ones():
    parts = eval_parts(TASK_EVAL)
    test = {s.key: s.family for s in load_task_seeds("test")}
    fresh, held = parts[TASK_INSTANCES], parts[HELD_OUT_FAMILIES]
    assert fresh | held == set(test) and not fresh & held
    assert {test[key] for key in fresh} == task_families()
    assert held == eval_parts(SEED_EVAL)[HELD_OUT_FAMILIES]


def test_pass_at_k_of_each_part_is_the_mean_over_its_puzzles():
    parts = eval_parts(SEED_EVAL)
    fresh = sorted(parts[FRESH_INSTANCES])[:2]
    held = sorted(parts[HELD_OUT_FAMILIES])[:3]
    solved = {fresh[0]: 4, fresh[1]: 0, held[0]: 1, held[1]: 0, held[2]: 0}
    result = part_pass_at_k([record(1, 4, solved), record(2, 4, solved)], SEED_EVAL)
    assert result[FRESH_INSTANCES]["puzzles"] == 2 and result[HELD_OUT_FAMILIES]["puzzles"] == 3
    assert result[FRESH_INSTANCES]["pass_at_k"] == {"1": 0.5, "2": 0.5}  # (1 + 0) / 2
    # held[0]: pass@1 = 1/4, pass@2 = 1 - C(3,2)/C(4,2) = 1/2; the other two are 0
    assert result[HELD_OUT_FAMILIES]["pass_at_k"] == {"1": round(0.25 / 3, 4), "2": round(0.5 / 3, 4)}
    low, high = result[HELD_OUT_FAMILIES]["pass_at_k_ci"]["1"]
    assert 0.0 <= low <= 0.25 / 3 <= high <= 0.25
    assert part_pass_at_k([record(1, 4, solved, dataset="p3-test")], "p3-test") == {}


def test_round_summaries_and_the_report_show_the_parts(run_dir):
    summary = json.loads((run_dir / "rounds" / "round-1.json").read_text())
    parts = summary["eval"]["parts"]
    assert parts and set(parts) <= {TASK_INSTANCES, HELD_OUT_FAMILIES}
    for entry in parts.values():
        assert set(entry["pass_at_k"]) == set(summary["eval"]["pass_at_k"]) == set(entry["pass_at_k_ci"])
    assert summary["eval"]["base_parts"].keys() == parts.keys()
    with RunStore.open(run_dir, create=False) as store:
        series = collect_report(store, run_dir).pass_at_k()
    for part in parts:
        assert any(dataset == f"{TASK_EVAL}: {part}" for dataset, _ in series)
