"""Control arms (factory.loop.experiment) and the bootstrap intervals of pass@k (factory.loop.confidence).

What each arm trains on is counted on the played run's store (scripted model: verified, wrong and
raising attempts) against rows read with plain SQL; equal optimizer steps are checked on real tiny
trainings; the CLI runs a one-round experiment on a tiny model in the process sandbox, killed in its
second arm and resumed.
"""

from __future__ import annotations

import ast
import json
import random
import sqlite3
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from factory.cli.main import main
from factory.errors import UserError
from factory.loop.arms import (
    ARMS,
    SEEDS_ONLY_ARM,
    UNVERIFIED_ARM,
    VERIFIED_ARM,
    arm_config,
    experiment_arm,
    parse_arms,
)
from factory.loop.confidence import (
    bootstrap_interval,
    paired_difference_interval,
    pass_at_k_interval,
    percentile,
)
from factory.loop.context import prepare_run
from factory.loop.evaluation import evaluate_base
from factory.loop.experiment import run_experiment
from factory.loop.prompts import training_example
from factory.loop.propose import propose
from factory.loop.rounds import ROUND_STAGES, start_round
from factory.loop.solve import solve
from factory.loop.training import fixed_steps, preference_steps, train, training_plan
from factory.loop.training_data import sft_texts
from factory.models.steps import TRAINING_FILENAME, optimizer_steps, read_training_facts
from factory.models.train import fine_tune
from factory.outputs.comparison import (
    _training_of,
    comparison,
    format_comparison,
    is_experiment,
    over_seeds_only,
    round_differences,
)
from factory.store import STORE_FILENAME, EvalRecord, RunStore
from sandbox.backend import open_sandbox
from sandbox.verdicts import VERIFIED
from tests.factory.played_run import copy_run, played_config, with_settings

QUIET = {"log": lambda m: None, "show_progress": False}

# ---------------------------------------------------------------------------------------------------
# the bootstrap


def test_an_interval_of_equal_values_is_that_value():
    assert bootstrap_interval([0.4] * 7) == pytest.approx((0.4, 0.4))
    assert bootstrap_interval([0.0] * 7) == (0.0, 0.0)


def test_the_interval_of_a_hand_computed_bootstrap():
    # Two puzzles, 0 and 1: resampled means are 0, 1/2, 1 with chances 1/4, 1/2, 1/4, so the 2.5% and
    # 97.5% percentiles are 0 and 1.
    assert bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)
    # Four puzzles, one solved: the count of 1s in a resample is Binomial(4, 1/4), P(<= 2) = 0.949 and
    # P(<= 3) = 0.996, so the 97.5% percentile is 3/4; P(0) = 0.316 puts the 2.5% one at 0.
    assert bootstrap_interval([0.0, 0.0, 0.0, 1.0]) == (0.0, 0.75)


def test_the_interval_matches_an_independent_computation_with_the_same_seed():
    values = [0.0, 0.2, 0.5, 1.0, 1.0, 0.3, 0.0, 0.9]
    rng = random.Random(7)
    draws = np.array([rng.choices(values, k=len(values)) for _ in range(500)])
    expected = np.percentile(draws.mean(axis=1), [2.5, 97.5])  # numpy's default: linear interpolation
    assert bootstrap_interval(values, samples=500, seed=7) == pytest.approx(tuple(expected), abs=1e-12)
    assert bootstrap_interval(values, samples=500, seed=7) == bootstrap_interval(values, samples=500, seed=7)
    assert percentile([3.0, 1.0, 2.0], 0.25) == 1.5


def test_pass_at_k_and_paired_intervals():
    solved = {"a": 0, "b": 2, "c": 1}  # of n = 2 samples: pass@1 is 0, 1, 1/2
    rng = random.Random(0)
    means = sorted(sum(rng.choices([0.0, 1.0, 0.5], k=3)) / 3 for _ in range(2000))
    low, high = pass_at_k_interval(solved, 2, 1)
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    assert pass_at_k_interval(solved, 2, 2) == pytest.approx(bootstrap_interval([0.0, 1.0, 1.0]))
    assert paired_difference_interval([0.5, 1.0], [0.5, 1.0]) == (0.0, 0.0)  # paired: no spread at all


# ---------------------------------------------------------------------------------------------------
# what each arm trains on


def test_arms_are_parsed_in_order_and_need_the_verified_arm():
    assert parse_arms("seeds-only,verified") == (VERIFIED_ARM, SEEDS_ONLY_ARM)
    with pytest.raises(UserError, match="must include 'verified'"):
        parse_arms("unverified,seeds-only")
    with pytest.raises(UserError, match="unknown arm 'nope'"):
        parse_arms("verified,nope")


def test_objective_arms_and_the_sft_alias():
    assert parse_arms("grpo,sft+dpo,spin,dpo,sft") == (VERIFIED_ARM, "dpo", "spin", "sft+dpo", "grpo")
    config = played_config("http://127.0.0.1:9/v1")
    assert [arm_config(config, arm).objective for arm in ARMS] == [
        "sft", "sft", "sft", "dpo", "spin", "sft+dpo", "grpo", "sft", "sft", "sft"
    ]
    assert arm_config(config, "dpo") == replace(config, objective="dpo")
    assert arm_config(config, "sft+learnability") == replace(config, weighting="learnability")
    assert arm_config(config, "sft+novelty") == replace(config, weighting="novelty")
    assert arm_config(config, "sft+proposer") == replace(config, proposer_weighting="learnability")


@pytest.mark.parametrize(("flags", "message"), [
    (["--objective", "dpo"], "drop --objective dpo and add the dpo arm"),
    (["--weighting", "learnability"], "drop --weighting learnability and add the sft+learnability arm"),
    (["--weighting", "novelty"], "drop --weighting novelty and add the sft+novelty arm"),
    (["--proposer-weighting", "learnability"], "drop --proposer-weighting learnability and add the sft+proposer arm"),
    (["--no-train"], "it needs train = true (drop --no-train)"),
    (["--arms", "seeds-only"], "the arms must include 'verified'"),
    (["--rounds", "0"], "--rounds must be at least 1"),
])
def test_the_cli_refuses_an_experiment_that_cannot_run_before_touching_anything(tmp_path, capsys, flags, message):
    root = tmp_path / "exp"
    argv = ["experiment", "--run-dir", str(root), "--rounds", "1", *flags]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not root.exists()


def test_the_cli_refuses_a_run_directory_as_an_experiment(run, tmp_path, capsys):
    run_dir = copy_run(run, tmp_path / "run")
    assert main(["experiment", "--run-dir", str(run_dir), "--rounds", "1"]) == 2
    assert "is a run directory" in capsys.readouterr().err


def parses(source: str) -> bool:
    try:
        ast.parse(source)
        return True
    except SyntaxError:
        return False


def arm_texts(run_dir: Path, arm: str, round: int) -> list[str]:
    config = played_config("http://127.0.0.1:9/v1")
    reference = None if arm == VERIFIED_ARM else run_dir
    with prepare_run(run_dir, config, None, arm=experiment_arm(arm, reference or run_dir), **QUIET) as ctx:
        return sft_texts(ctx, round, ctx.config)


def test_each_arm_trains_on_exactly_the_data_it_claims(run, tmp_path):
    run_dir = copy_run(run, tmp_path / "run")
    round = run.finished[-1]
    db = sqlite3.connect(run_dir / STORE_FILENAME)
    source = dict(db.execute("SELECT id, source FROM puzzles"))
    seed_pairs = [(source[p], s) for p, s in db.execute("SELECT puzzle_id, solution_source FROM pairs WHERE round = 0 ORDER BY id")]
    all_pairs = [(source[p], s) for p, s in db.execute(f"SELECT puzzle_id, solution_source FROM pairs WHERE round <= {round} ORDER BY id")]
    attempts = db.execute(f"SELECT id, puzzle_id, source, solution_hash, length, status FROM attempts WHERE round <= {round} ORDER BY id").fetchall()
    cap = played_config("x").max_pairs_per_puzzle
    # the unverified arm, counted here: per puzzle the `cap` shortest distinct parsable attempts
    by_puzzle: dict[int, list] = defaultdict(list)
    for a in sorted(attempts, key=lambda a: (a[1], a[4], a[0])):
        if parses(a[2]) and a[3] not in {b[3] for b in by_puzzle[a[1]]} and len(by_puzzle[a[1]]) < cap:
            by_puzzle[a[1]].append(a)
    kept = [a for puzzle in sorted(by_puzzle) for a in by_puzzle[puzzle]]
    assert any(a[5] != VERIFIED for a in kept)  # the played store has wrong and raising attempts to keep
    self_play = {training_example(source[a[1]], a[2]) for a in attempts}  # every attempt as a solve block

    texts = {arm: arm_texts(run_dir, arm, round) for arm in (VERIFIED_ARM, UNVERIFIED_ARM, SEEDS_ONLY_ARM)}
    expected_pairs = {
        VERIFIED_ARM: all_pairs,
        UNVERIFIED_ARM: seed_pairs + [(source[a[1]], a[2]) for r in range(1, round + 1) for a in kept
                                      if db.execute("SELECT round FROM attempts WHERE id = ?", (a[0],)).fetchone()[0] == r],
        SEEDS_ONLY_ARM: seed_pairs,
    }
    for arm, pairs in expected_pairs.items():
        n = len(pairs)
        assert len(texts[arm]) == n + n // 3, arm  # solve blocks, then the recipe's listings
        assert texts[arm][:n] == [training_example(f, g) for f, g in pairs], arm
    counted = {arm: sum(1 for t in ts if t in self_play) for arm, ts in texts.items()}
    verified_attempts = sum(1 for a in attempts if a[5] == VERIFIED)
    assert counted[SEEDS_ONLY_ARM] == 0
    assert counted[VERIFIED_ARM] == len(all_pairs) - len(seed_pairs) > 0  # the verified pairs, nothing else
    assert counted[UNVERIFIED_ARM] == len(kept) > counted[VERIFIED_ARM]
    unverified_only = {training_example(source[a[1]], a[2]) for a in attempts if a[5] != VERIFIED}
    assert not unverified_only & set(texts[VERIFIED_ARM])
    assert len(unverified_only & set(texts[UNVERIFIED_ARM])) == sum(1 for a in kept if a[5] != VERIFIED) > 0
    assert verified_attempts >= counted[VERIFIED_ARM]
    # left to epochs the arms would train for different steps; the experiment gives each the verified arm's
    assert len({optimizer_steps(len(ts), 2.0) for ts in texts.values()}) > 1


def test_fixed_steps_train_that_many_steps_whatever_the_data(synthetic_tiny_model, tmp_path, one_torch_thread):
    small, large = ["def f(x: int):\n    return x == 1\n"] * 3, ["def g():\n    return 1\n"] * 40
    reports = [
        fine_tune(synthetic_tiny_model, texts, tmp_path / name, epochs=1.0, steps=6, seed=1)
        for name, texts in (("small", small), ("large", large))
    ]
    assert [r.steps for r in reports] == [6, 6]
    assert [read_training_facts(tmp_path / name).steps for name in ("small", "large")] == [6, 6]
    natural = fine_tune(synthetic_tiny_model, large, tmp_path / "natural", epochs=1.0, seed=1)
    assert natural.steps == optimizer_steps(40, 1.0) == 5


def test_a_dpo_arm_trains_its_own_epochs_over_its_rows_not_the_verified_arms_steps(run, tmp_path):
    """Equal steps would be 166 DPO steps on 14 rows (measured: pass@1 0.157 -> 0.021); dpo and spin take
    ``optimizer_steps(rows, epochs)``, sft+dpo's dpo pass at most that."""
    verified_steps = 166
    assert preference_steps("dpo", 14, 2.0, verified_steps) == optimizer_steps(14, 2.0) == 4
    assert preference_steps("spin", 14, 2.0, None) == 4
    assert preference_steps("sft+dpo", 14, 2.0, verified_steps) == 4  # capped at its rows' own epochs
    assert preference_steps("sft+dpo", 400, 2.0, verified_steps) == verified_steps // 2
    # an arm beside a verified arm whose round-1 checkpoint trained 166 steps
    root = tmp_path / "exp"
    verified, dpo = copy_run(run, root / VERIFIED_ARM), copy_run(run, root / "dpo")
    checkpoint = verified / "checkpoints" / "round-1"
    checkpoint.mkdir(parents=True)
    (checkpoint / TRAINING_FILENAME).write_text(json.dumps({"steps": verified_steps, "total_steps": verified_steps}))
    with RunStore.open(verified, create=False) as store:
        store.record_checkpoint(1, str(checkpoint), "base", 500, 1.0)
    db = sqlite3.connect(dpo / STORE_FILENAME)
    with db:
        recorded = json.loads(db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps({**recorded, "objective": "dpo"}),))
    db.close()
    config = played_config("http://127.0.0.1:9/v1")
    for arm, path in ((VERIFIED_ARM, verified), ("dpo", dpo)):
        with prepare_run(path, arm_config(config, arm), None, arm=experiment_arm(arm, verified), **QUIET) as ctx:
            c = ctx.config
            plan = training_plan(ctx, 1, c)
            if arm == VERIFIED_ARM:
                assert [p.steps for p in plan.passes] == [optimizer_steps(len(plan.texts), c.epochs)]
            else:
                assert fixed_steps(ctx, 1, c, plan.texts) == verified_steps  # what equal steps would give
                assert plan.rows and [p.steps for p in plan.passes] == [optimizer_steps(len(plan.rows), c.epochs)]
                assert optimizer_steps(len(plan.rows), c.epochs) < verified_steps


def test_the_comparison_says_what_each_objective_trained_on(tmp_path):
    """sft: its texts; dpo and spin: their preference rows; sft+dpo: the sft pass's texts beside it
    and the dpo pass's rows, the steps of both passes together; grpo: its solve prompts and verdicts."""
    def checkpoint(name: str, **facts) -> str:
        (tmp_path / name).mkdir()
        (tmp_path / name / TRAINING_FILENAME).write_text(json.dumps(facts))
        return str(tmp_path / name)

    sft = checkpoint("sft", objective="sft", examples=650, steps=82)
    dpo = checkpoint("dpo", objective="dpo", examples=11, steps=2)
    checkpoint("round-1-sft", objective="sft", examples=654, steps=80)
    both = checkpoint("round-1", objective="dpo", examples=4, steps=2, sft_steps=80)
    verdicts = {"verified": 3, "wrong": 13, "masked": 1}
    grpo = checkpoint("grpo", objective="grpo", examples=623, steps=4, grpo={"verdicts": verdicts})
    read = {path: read_training_facts(path) for path in (sft, dpo, both, grpo)}
    assert _training_of(grpo, read[grpo]) == {"solve_prompts": 623, "steps": 4, "verdicts": verdicts}
    rounds = {"1": {"pass_at_k": {"1": 0.25}, "pass_at_k_ci": {}}}
    text = format_comparison({"arms": {"grpo": {"rounds": rounds, "train": {"1": _training_of(grpo, read[grpo])}}}})
    assert text == "grpo round 1: pass@1 0.250, trained 4 steps on 623 solve prompts"
    assert _training_of(sft, read[sft]) == {"texts": 650, "steps": 82}
    assert _training_of(dpo, read[dpo]) == {"texts": 0, "preference_rows": 11, "steps": 2}
    assert _training_of(both, read[both]) == {"texts": 654, "preference_rows": 4, "steps": 82}


def test_round_1_is_copied_row_for_row_with_markers_canaries_and_the_base_evaluation(run, tmp_path):
    source = copy_run(run, tmp_path / "verified")
    target = tmp_path / "seeds-only"
    config = played_config("http://127.0.0.1:9/v1")
    with prepare_run(target, config, None, arm=experiment_arm(SEEDS_ONLY_ARM, source), **QUIET) as ctx:
        evaluate_base(ctx)
        model, c = start_round(ctx, 1)
        propose(ctx, 1, model, c)
        solve(ctx, 1, model, c)
        solve(ctx, 1, model, c)  # a resumed copy stores nothing twice
    queries = (
        "SELECT batch, idx, prompt_seed, raw, status, reason FROM proposals WHERE round = 1 ORDER BY batch, idx",
        "SELECT p.canonical_hash, a.batch, a.idx, a.source, a.solution_hash, a.status, a.detail FROM attempts a "
        "JOIN puzzles p ON p.id = a.puzzle_id WHERE a.round = 1 ORDER BY a.id",
        "SELECT stage, batch, items, timings_json, tokens FROM batches WHERE round = 1 AND stage IN ('propose', 'solve') "
        "ORDER BY stage, batch",
        "SELECT stage, batch, cheats, cheats_passed, good, good_failed FROM canaries WHERE round = 1 ORDER BY batch",
        "SELECT canonical_hash, source, round, prompt_seed FROM puzzles WHERE round = 1 ORDER BY id",
        "SELECT model, dataset, k, n, pass_at_k, solved, total, details_json FROM evals WHERE round = 0 ORDER BY k",
    )
    for query in queries:
        copied = rows(target, query)
        assert copied == rows(source, query) and copied, query
    statuses = {r[5] for r in rows(target, queries[1])}
    assert {"verified", "wrong"} <= statuses  # real attempts of every kind came across


def test_the_seeds_only_arm_generates_nothing_after_round_1(run, tmp_path):
    """Its training reads no generated pair; its model's server (unreachable here) is never asked."""
    source = copy_run(run, tmp_path / "verified")
    target = tmp_path / "seeds-only"
    said = []
    with prepare_run(target, played_config("http://127.0.0.1:9/v1"), None, arm=experiment_arm(SEEDS_ONLY_ARM, source),
                     log=said.append, show_progress=False) as ctx:
        model, c = start_round(ctx, 1)
        propose(ctx, 1, model, c)
        propose(ctx, 2, model, c)
        solve(ctx, 2, model, c)
    assert rows(target, "SELECT COUNT(*) FROM proposals WHERE round = 1")[0][0] > 0
    assert rows(target, "SELECT COUNT(*) FROM proposals WHERE round = 2") == [(0,)]
    assert "round 2: the seeds-only arm trains on no generated pair: no generation" in said


def test_a_report_on_several_run_directories_draws_one_curve_per_run(run, tmp_path):
    from factory.outputs.report.compare import collect_curves, runs_to_compare, write_comparison_report

    a, b = copy_run(run, tmp_path / "a" / "run"), copy_run(run, tmp_path / "b" / "run")
    runs = runs_to_compare([a, b])
    assert runs == {"a/run": a, "b/run": b}
    curves = collect_curves(runs)
    assert [(c.label, c.k) for c in curves] == [("a/run", 1), ("a/run", 2), ("b/run", 1), ("b/run", 2)]
    for curve in curves:
        for r, value in curve.values.items():
            low, high = curve.intervals[r]
            assert low <= value <= high
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "a" / "run" / "index.html").exists()
    assert write_comparison_report([a, b], tmp_path / "out2").read_text().count("<tr><td class=l>a/run</td>") == sum(
        len(c.values) for c in curves if c.label == "a/run"
    )


# ---------------------------------------------------------------------------------------------------
# the experiment end to end


SMALL = ["--puzzles", "4", "--attempts", "2", "--batch-size", "4", "--eval-samples", "2", "--eval-ks", "1,2",
         "--eval-limit", "6", "--epochs", "0.5", "--max-new-tokens", "48"]


class Killed(Exception):
    pass


def dies_in_seeds_only_training(ctx, round, c):
    """The train stage, but the seeds-only arm's process dies when it starts training (after copying
    round 1)."""
    if ctx.arm.name == SEEDS_ONLY_ARM:
        raise Killed("killed before training")
    return train(ctx, round, c)


def rows(run_dir: Path, query: str) -> list[tuple]:
    db = sqlite3.connect(run_dir / STORE_FILENAME)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def test_an_experiment_killed_in_its_second_arm_resumes_through_the_cli(
    tmp_path, synthetic_tiny_model, one_torch_thread, capsys
):
    from factory.cli.main import build_parser
    from factory.cli.rounds import run_config_from

    root = tmp_path / "exp"
    argv = ["experiment", "--run-dir", str(root), "--rounds", "1", "--arms", "verified,seeds-only",
            "--model", str(synthetic_tiny_model), "--sandbox", "process", "--workers", "2", *SMALL]
    config = run_config_from(build_parser().parse_args(argv))
    with open_sandbox("process", workers=2, log=lambda m: None) as sandbox:
        with pytest.raises(Killed):
            run_experiment(root, config, 1, ("verified", "seeds-only"), sandbox, log=lambda m: None,
                           show_progress=False, stages=replace(ROUND_STAGES, train=dies_in_seeds_only_training))
    verified, seeds = root / VERIFIED_ARM, root / SEEDS_ONLY_ARM
    checkpoint = verified / "checkpoints" / "round-1"
    trained_at = (checkpoint / "config.json").stat().st_mtime_ns
    assert rows(seeds, "SELECT finished_at FROM rounds WHERE round = 1") == [(None,)]

    assert main(argv) == 0  # resumes: the verified arm is done, seeds-only finishes its round
    out = capsys.readouterr().out
    assert "seeds-only round 1: pass@1" in out and "over seeds-only, 95% CI" in out
    assert (checkpoint / "config.json").stat().st_mtime_ns == trained_at  # not trained again
    for query in ("SELECT round, batch, idx, raw, status, reason FROM proposals ORDER BY round, batch, idx",
                  "SELECT p.canonical_hash, a.idx, a.source, a.status FROM attempts a JOIN puzzles p "
                  "ON p.id = a.puzzle_id ORDER BY a.id",
                  "SELECT round, k, n, pass_at_k, details_json FROM evals WHERE round = 0 ORDER BY k"):
        assert rows(verified, query) == rows(seeds, query)  # round 1's generation and the base eval: copied once
    assert rows(seeds, "SELECT COUNT(*) FROM proposals")[0][0] == 4
    facts = {arm: read_training_facts(root / arm / "checkpoints" / "round-1") for arm in (VERIFIED_ARM, SEEDS_ONLY_ARM)}
    assert facts[VERIFIED_ARM].steps == facts[SEEDS_ONLY_ARM].steps == optimizer_steps(
        facts[VERIFIED_ARM].examples, 0.5
    )
    seed_texts = rows(seeds, "SELECT COUNT(*) FROM pairs WHERE round = 0")[0][0]
    assert facts[SEEDS_ONLY_ARM].examples == seed_texts + seed_texts // 3
    for arm in (VERIFIED_ARM, SEEDS_ONLY_ARM):
        summary = json.loads((root / arm / "rounds" / "round-1.json").read_text())
        for k, value in summary["eval"]["pass_at_k"].items():
            low, high = summary["eval"]["pass_at_k_ci"][k]
            assert low <= value <= high
        assert set(summary["eval"]["base_pass_at_k_ci"]) == {"1", "2"}
    result = json.loads((root / "experiment.json").read_text())
    assert result == comparison(root) and set(result["arms"]) == {VERIFIED_ARM, SEEDS_ONLY_ARM}
    # the held-out loss: one starting model and one set of reference pairs, measured again after training
    held_out = {arm: result["arms"][arm]["train"]["1"]["held_out_loss"] for arm in (VERIFIED_ARM, SEEDS_ONLY_ARM)}
    assert held_out[VERIFIED_ARM]["before"] == held_out[SEEDS_ONLY_ARM]["before"] > 0
    assert all(0 < h["after"] != h["before"] for h in held_out.values())
    assert f"held-out loss {held_out[SEEDS_ONLY_ARM]['before']:.3f} -> {held_out[SEEDS_ONLY_ARM]['after']:.3f}" in out
    over = result["arms"][VERIFIED_ARM]["over_seeds_only"]["1"]["1"]
    assert over["puzzles"] == 6 and over["ci"][0] <= over["difference"] <= over["ci"][1]
    assert over_seeds_only(verified) == {"arm": VERIFIED_ARM, "round": 1, "dataset": "task-test", **over}
    assert over_seeds_only(seeds) is None and is_experiment(root) and not is_experiment(verified)

    # the report: one curve per arm; the dataset card of the verified arm: its gain over seeds-only
    assert main(["report", str(root), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert (tmp_path / "report" / "pass_at_k_compare.png").stat().st_size > 0
    assert all((tmp_path / "report" / arm / "index.html").exists() for arm in (VERIFIED_ARM, SEEDS_ONLY_ARM))
    assert page.count("<tr><td class=l>verified</td><td class=l>task-test</td>") == 4  # k 1, 2 x rounds 0, 1
    assert f"{over['difference']:+.3f}</td><td>[{over['ci'][0]:+.3f}, {over['ci'][1]:+.3f}]" in page
    assert main(["export", str(verified), "--out", str(tmp_path / "data"), "--include-seeds", "--no-reverify"]) == 0
    card = (tmp_path / "data" / "README.md").read_text()
    assert (f"trained on this data: {over['difference']:+.3f} pass@1 over seeds-only, "
            f"CI [{over['ci'][0]:+.3f}, {over['ci'][1]:+.3f}]") in card


def test_round_differences_pair_by_puzzle_per_round_and_k_and_the_verified_arm_is_compared_with_unverified():
    def record(round_: int, solved: dict[str, int]) -> EvalRecord:
        return EvalRecord(round_, "m", "seeds-test", 1, 4, 0.0, 0, len(solved), {"solved": solved}, 0.0)

    verified = {0: {1: record(0, {"a": 0, "b": 0})}, 1: {1: record(1, {"a": 4, "b": 2, "c": 1})}}
    unverified = {0: {1: record(0, {"a": 0, "b": 0})}, 1: {1: record(1, {"a": 2, "b": 2})}}
    over = round_differences(verified, unverified)
    assert set(over) == {"1"}  # round 0 (the shared base model) is no comparison; c is not paired
    d = over["1"]["1"]
    assert d["puzzles"] == 2 and d["difference"] == 0.25  # (1.0 + 0.5) / 2 - (0.5 + 0.5) / 2
    assert d["ci"] == [0.0, 0.5]  # the two puzzles' differences are 0.5 and 0: resampled means lie in [0, 0.5]
    text = format_comparison({"arms": {VERIFIED_ARM: {"rounds": {}, "train": {}, "over_unverified": over}}})
    assert text == "verified round 1: +0.250 pass@1 over unverified, 95% CI [+0.000, +0.500] (2 puzzles)"


def test_a_grpo_arm_trains_the_verified_arms_steps_on_solve_prompts(run, tmp_path):
    root = tmp_path / "exp"
    verified, grpo = copy_run(run, root / VERIFIED_ARM), copy_run(run, root / "grpo")
    checkpoint = verified / "checkpoints" / "round-1"
    checkpoint.mkdir(parents=True)
    (checkpoint / TRAINING_FILENAME).write_text(json.dumps({"steps": 40, "total_steps": 40}))
    with RunStore.open(verified, create=False) as store:
        store.record_checkpoint(1, str(checkpoint), "base", 500, 1.0)
    with_settings(grpo, objective="grpo")
    config = played_config("http://127.0.0.1:9/v1")
    with prepare_run(grpo, arm_config(config, "grpo"), None, arm=experiment_arm("grpo", verified), **QUIET) as ctx:
        plan = training_plan(ctx, 1, ctx.config)
        seeds = {p.source for p in ctx.store.pool_puzzles(up_to_round=0)}
        accepted = {p.source for p in ctx.store.puzzles_of_round(1)}
    assert [(p.kind, p.steps) for p in plan.passes] == [("grpo", 40)] and plan.texts == []
    assert {r["puzzle"] for r in plan.rows} == seeds | accepted and plan.examples == len(plan.rows)
    assert all(r["prompt"].endswith(r["prefix"]) and r["prefix"].startswith("def g") for r in plan.rows)
