"""The comparison of an experiment's arms (``factory.loop.experiment``), read from their stores: per
arm and round pass@k with 95% bootstrap intervals, the training texts and steps (and the held-out loss
before and after, where the training measured it), and each arm's paired
difference to seeds-only (and the verified arm's to unverified: what the filter adds).
``D/experiment.json`` holds it after every round."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from factory.loop.arms import ARMS, CONTROLS, SEEDS_ONLY_ARM, VERIFIED_ARM
from factory.loop.confidence import (
    paired_difference_interval,
    pass_at_k_interval,
    per_puzzle_pass_at_k,
    puzzle_counts,
    rounded,
)
from factory.models.steps import TrainingFacts, read_training_facts
from factory.store import STORE_FILENAME, EvalRecord, RunStore

EXPERIMENT_FILENAME = "experiment.json"


def arm_dirs(root: Path | str) -> dict[str, Path]:
    """The arms of the experiment at ``root`` that have a store, in ``ARMS`` order."""
    return {arm: Path(root) / arm for arm in ARMS if (Path(root) / arm / STORE_FILENAME).exists()}


def is_experiment(root: Path | str) -> bool:
    """Whether ``root`` holds an experiment's arms (and no run store of its own)."""
    root = Path(root)
    return not (root / STORE_FILENAME).exists() and bool(arm_dirs(root))


def _training_of(checkpoint: str, facts: TrainingFacts) -> dict:
    """What a round's checkpoint trained on: sft texts, preference rows (dpo and spin) or both
    (sft+dpo: its sft pass is the ``round-N-sft`` checkpoint beside it) or solve prompts (grpo, with the
    sandbox's verdicts on its samples), and the steps of every pass."""
    if facts.objective == "grpo":
        return {"solve_prompts": facts.examples, "steps": facts.steps, "verdicts": dict((facts.grpo or {}).get("verdicts", {}))}
    if facts.objective != "dpo":
        return {"texts": facts.examples, "steps": facts.steps}
    sft = read_training_facts(Path(checkpoint).with_name(Path(checkpoint).name + "-sft")) if facts.sft_steps else None
    return {"texts": sft.examples if sft else 0, "preference_rows": facts.examples,
            "steps": facts.steps + (facts.sft_steps or 0)}


def _eval_of(store: RunStore, round: int) -> dict[int, EvalRecord]:
    records = store.evals(round)
    datasets = sorted({e.dataset for e in records})
    return {e.k: e for e in records if e.dataset == datasets[0]} if datasets else {}


def difference(a: EvalRecord, b: EvalRecord) -> dict | None:
    """mean pass@k of ``a`` minus ``b`` over the puzzles both evaluated, with its paired 95% interval."""
    sa, sb = puzzle_counts(a), puzzle_counts(b)
    keys = sorted(set(sa) & set(sb))
    if not keys or a.k != b.k:
        return None
    pa, pb = per_puzzle_pass_at_k(sa, a.n, a.k), per_puzzle_pass_at_k(sb, b.n, b.k)
    x, y = [pa[key] for key in keys], [pb[key] for key in keys]
    point = sum(x) / len(x) - sum(y) / len(y)
    return {"k": a.k, "difference": round(point, 4), "ci": rounded(paired_difference_interval(x, y)),
            "puzzles": len(keys)}


def comparison(root: Path | str) -> dict:
    """The arms side by side: per arm and round (0 = base model) pass@k with its 95% interval, the
    round's training texts and optimizer steps, the paired difference to seeds-only and, for the verified
    arm, to unverified (what the filter itself adds)."""
    dirs = arm_dirs(root)
    evals: dict[str, dict[int, dict[int, EvalRecord]]] = {}
    arms: dict[str, dict] = {}
    for arm, path in dirs.items():
        with RunStore.open(path, create=False) as store:
            finished = sorted(r.round for r in store.rounds() if r.round > 0 and r.finished_at is not None)
            evals[arm] = {r: _eval_of(store, r) for r in [0, *finished]}
            train = {}
            for r in finished:
                checkpoint = store.checkpoint(r)
                facts = read_training_facts(checkpoint.path) if checkpoint else None
                if facts:
                    held_out = {"held_out_loss": loss} if (loss := facts.held_out_loss) else {}
                    train[str(r)] = {**_training_of(checkpoint.path, facts), **held_out}
        arms[arm] = {
            "run_dir": str(path),
            "rounds": {
                str(r): {
                    "pass_at_k": {str(k): e.pass_at_k for k, e in by_k.items()},
                    "pass_at_k_ci": {
                        str(k): rounded(pass_at_k_interval(puzzle_counts(e), e.n, e.k)) for k, e in by_k.items() if puzzle_counts(e)
                    },
                }
                for r, by_k in evals[arm].items()
            },
            "train": train,
        }
    for control, key in CONTROLS:
        compared = [a for a in arms if a != control] if control == SEEDS_ONLY_ARM else [VERIFIED_ARM]
        for arm in compared:
            if control in evals and arm in evals:
                arms[arm][key] = round_differences(evals[arm], evals[control])
    return {"arms": arms}


def round_differences(
    arm: Mapping[int, Mapping[int, EvalRecord]], control: Mapping[int, Mapping[int, EvalRecord]]
) -> dict[str, dict[str, dict]]:
    """Per trained round and k: ``arm``'s pass@k minus ``control``'s (``difference``), paired by puzzle."""
    over = {}
    for r, by_k in arm.items():
        base = control.get(r, {})
        diffs = {str(k): d for k, e in by_k.items() if k in base and (d := difference(e, base[k]))}
        if r > 0 and diffs:
            over[str(r)] = diffs
    return over


def write_comparison(root: Path | str) -> Path:
    path = Path(root) / EXPERIMENT_FILENAME
    temporary = path.with_suffix(".partial")
    temporary.write_text(json.dumps(comparison(root), indent=2))
    temporary.replace(path)
    return path


def over_seeds_only(run_dir: Path | str, k: int = 1) -> dict | None:
    """For an arm's run directory beside a seeds-only arm: the last round both finished, and this arm's
    pass@k minus seeds-only's there with its paired 95% interval (``difference``); else None."""
    run_dir = Path(run_dir)
    arm, seeds = run_dir.name, run_dir.parent / SEEDS_ONLY_ARM
    if arm not in ARMS or arm == SEEDS_ONLY_ARM or not (seeds / STORE_FILENAME).exists():
        return None
    finished: list[set[int]] = []
    records: list[dict[int, dict[int, EvalRecord]]] = []
    for path in (run_dir, seeds):
        with RunStore.open(path, create=False) as store:
            done = {r.round for r in store.rounds() if r.round > 0 and r.finished_at is not None}
            finished.append(done)
            records.append({r: _eval_of(store, r) for r in done})
    common = sorted(finished[0] & finished[1])
    for r in reversed(common):
        a, b = records[0][r].get(k), records[1][r].get(k)
        if a is not None and b is not None and (d := difference(a, b)) is not None:
            return {"arm": arm, "round": r, "dataset": a.dataset, **d}
    return None


def format_comparison(result: Mapping) -> str:
    """The comparison as a few lines of text (what the CLI prints)."""
    lines = []
    for arm, data in result["arms"].items():
        for r, values in data["rounds"].items():
            cells = []
            for k, v in values["pass_at_k"].items():
                ci = values["pass_at_k_ci"].get(k)
                cells.append(f"pass@{k} {v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
            train = data["train"].get(r)
            kinds = (("texts", "texts"), ("preference_rows", "preference rows"), ("solve_prompts", "solve prompts"))
            on = [f"{train[key]} {what}" for key, what in kinds if train and train.get(key)]
            steps = f", trained {train['steps']} steps on {' + '.join(on) or 'nothing'}" if train else ""
            if train and (held_out := train.get("held_out_loss")):
                steps += f", held-out loss {held_out['before']:.3f} -> {held_out['after']:.3f}"
            lines.append(f"{arm} round {r}: " + ", ".join(cells) + steps)
        for control, key in CONTROLS:
            for r, diffs in data.get(key, {}).items():
                for k, d in diffs.items():
                    lines.append(
                        f"{arm} round {r}: {d['difference']:+.3f} pass@{k} over {control}, "
                        f"95% CI [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] ({d['puzzles']} puzzles)"
                    )
    return "\n".join(lines)
