"""A round's summary: what ``RUN_DIR/rounds/round-N.json`` holds (other tools read its keys), and its
one-screen text form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from factory.loop.confidence import eval_intervals
from factory.loop.parts import part_pass_at_k
from factory.loop.proposer_reward import proposer_report
from factory.models.steps import TrainingFacts, read_training_facts
from factory.rewards import MASKED
from factory.store import (
    PROPOSAL_STATUSES,
    RunStore,
    TokenUsage,
    describe_usage,
    round_stats,
    usage_cost,
    variant_counts,
)
from sandbox.canaries import CanaryCounts
from sandbox.verdicts import VERIFIED

# The funnel counts the one-screen summary shows, in order.
SUMMARY_FUNNEL = ("proposed", *PROPOSAL_STATUSES, "solved_puzzles", f"attempts_{VERIFIED}", "pairs")


def round_summary(
    store: RunStore, round: int, model: str, eval_name: str, pass_at_k: dict[int, float], seconds: float,
    prices: tuple[float, float] | None = None, models: Mapping[str, object] | None = None,
) -> dict:
    """Funnel, verdicts, seconds per stage, tokens/s, pass@k and token usage (its cost at ``prices``,
    per million prompt and completion tokens) of ``round``, read from the store, and ``models`` (who
    did what this round)."""
    stats = round_stats(store, round)
    evals, base_evals = store.evals(round), store.evals(0)  # read once: pass@k, intervals and parts
    baseline = {e.k: e.pass_at_k for e in base_evals if e.dataset == eval_name}
    rate = stats.tokens_per_second
    facts = read_training_facts(_checkpoint_path(store, round))  # read once: gain, grpo, held-out loss
    return {
        "round": round,
        "model": model,
        "funnel": dict(stats.funnel),
        "verdicts": dict(stats.verdicts),
        "timings": {k: round_to(v) for k, v in sorted(stats.timings.items())},
        "seconds": round_to(seconds),
        "tokens": stats.tokens,
        "tokens_per_second": round_to(rate) if rate is not None else 0.0,
        "canaries": asdict(stats.canaries),
        "eval": {
            "dataset": eval_name,
            "pass_at_k": {str(k): v for k, v in pass_at_k.items()},
            "base_pass_at_k": {str(k): v for k, v in baseline.items()},
            # 95% intervals: a bootstrap over the evaluation puzzles (factory.loop.confidence)
            "pass_at_k_ci": eval_intervals(evals, eval_name),
            "base_pass_at_k_ci": eval_intervals(base_evals, eval_name),
            "parts": part_pass_at_k(evals, eval_name),
            "base_parts": part_pass_at_k(base_evals, eval_name),
        },
        # last, after the keys other tools read in order: the base model's loss on the round's new
        # pairs minus on seed pairs (None: nothing trained)
        "information_gain": _rounded(facts.information_gain if facts else None),
        # objective grpo: the mean reward of each step, and the samples the sandbox verified or masked
        "grpo": grpo_rewards(facts),
        # the proposer's learnability reward and its drift (factory.loop.proposer_reward)
        "proposer": proposer_report(store, round).to_json(),
        "usage": usage_summary(stats.usage, prices),
        "models": dict(models) if models is not None else None,
        # the seed variants among the proposals (RunConfig.variant_share): their part of the funnel
        "variants": variant_counts(store, round),
        # the loss on the evaluation set's reference pairs before and after training: what it taught about
        # puzzles no model of the run sampled (None: not trained, or no reference pairs)
        "held_out_loss": facts.held_out_loss if facts else None,
    }


def grpo_rewards(facts: TrainingFacts | None) -> dict | None:
    """A grpo checkpoint's rewards (its ``training.json``'s ``grpo``): the mean reward per step, samples
    rewarded and masked (crashed: no reward, no gradient). None for another objective or no checkpoint."""
    grpo = facts.grpo if facts else None
    if not grpo:
        return None
    verdicts = dict(grpo["verdicts"])
    masked = verdicts.pop(MASKED, 0)
    return {"reward_per_step": grpo["reward_per_step"], "samples": sum(verdicts.values()), "masked": masked,
            "verified": verdicts.get(VERIFIED, 0)}


def usage_summary(usage: Mapping[str, TokenUsage], prices: tuple[float, float] | None) -> dict:
    """Prompt and completion tokens per generating stage, who counted them, and (with ``prices``) their
    cost: the summary's "usage"."""
    stages = {stage: asdict(u) for stage, u in usage.items()}
    if prices is not None:
        for stage, u in usage.items():
            stages[stage]["cost"] = round(u.cost(prices), 6)
    return {
        **stages,
        "price_per_mtok": list(prices) if prices is not None else None,
        "cost": round(usage_cost(usage, prices), 6) if prices is not None else None,
    }


def describe_models(models: Mapping[str, object]) -> str:
    """Who proposed, solved and was trained, from a summary's "models"."""
    return ", ".join(
        f"{role} {m['model']} ({m['backend']})" for role, m in models.items() if isinstance(m, dict)
    )


def usage_of_summary(usage: Mapping[str, object]) -> tuple[dict[str, TokenUsage], tuple[float, float] | None]:
    """A summary's "usage" read back: the usage per stage, and the prices."""
    stages = {
        stage: TokenUsage(u["prompt_tokens"], u["completion_tokens"], u["counted_by"])
        for stage, u in usage.items() if isinstance(u, dict)
    }
    prices = usage.get("price_per_mtok")
    return stages, (prices[0], prices[1]) if isinstance(prices, list) else None


def _checkpoint_path(store: RunStore, round: int) -> str | None:
    checkpoint = store.checkpoint(round)
    return checkpoint.path if checkpoint is not None else None


def _rounded(value: float | None) -> float | None:
    return round_to(value) if value is not None else None


def round_to(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}f}")


def _format_grpo(grpo: dict) -> str:
    steps = [r for r in grpo["reward_per_step"] if r is not None]
    trend = f"{steps[0]:.3f} -> {steps[-1]:.3f} over {len(grpo['reward_per_step'])} steps" if steps else "none"
    return (f"  grpo: mean reward {trend}; {grpo['verified']} of {grpo['samples']} samples verified, "
            f"{grpo['masked']} masked (crashed: no reward, no gradient)")


def _format_proposer(p: dict) -> str:
    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    return (f"  proposer: learnability {shown(p['mean_reward'])} ({p['rewarded']} of {p['proposals']} rewarded, "
            f"{p['masked']} masked, {p['too_long']} over the seeds' length); length {shown(p['mean_length'])}, "
            f"{p['distinct_forms']} distinct forms, distance to seeds {shown(p['distance_to_seeds'])}")


def format_summary(summary: dict) -> str:
    f = summary["funnel"]
    lines = [
        f"round {summary['round']} ({summary['seconds']:.0f} s, {summary['tokens']} tokens at {summary['tokens_per_second']:.0f} tokens/s)",
        "  funnel: " + ", ".join(f"{k} {f.get(k, 0)}" for k in SUMMARY_FUNNEL),
        "  verdicts: " + ", ".join(f"{k} {v}" for k, v in summary["verdicts"].items() if v),
        "  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary["timings"].items()),
        f"  verifier canaries: {CanaryCounts(**summary['canaries']).describe()}",
        *([f"  tokens: {describe_usage(*usage_of_summary(summary['usage']))}"] if summary.get("usage") else []),
        *([f"  models: {describe_models(summary['models'])}"] if summary.get("models") else []),
        *(
            [f"  information gain: {summary['information_gain']:+.3f} (base model's loss on the new pairs minus on seeds)"]
            if summary.get("information_gain") is not None
            else []
        ),
        *(
            [f"  held-out loss: {h['before']:.3f} -> {h['after']:.3f} (the evaluation set's reference pairs, "
             "before and after training)"]
            if (h := summary.get("held_out_loss"))
            else []
        ),
        *([_format_grpo(summary["grpo"])] if summary.get("grpo") else []),
        *([_format_proposer(summary["proposer"])] if summary.get("proposer") else []),
        *(
            ["  seed variants: " + ", ".join(f"{k} {v}" for k, v in summary["variants"].items())]
            if summary.get("variants", {}).get("proposed")
            else []
        ),
        f"  {summary['eval']['dataset']}: "
        + ", ".join(
            f"pass@{k} {v:.3f} (base {summary['eval']['base_pass_at_k'].get(k, float('nan')):.3f})"
            for k, v in summary["eval"]["pass_at_k"].items()
        ),
    ]
    base_parts = summary["eval"].get("base_parts", {})
    for part, entry in summary["eval"].get("parts", {}).items():
        base = base_parts.get(part, {}).get("pass_at_k", {})
        lines.append(
            f"    {part} ({entry['puzzles']}): "
            + ", ".join(
                f"pass@{k} {v:.3f} (base {base.get(k, float('nan')):.3f})" for k, v in entry["pass_at_k"].items()
            )
        )
    return "\n".join(lines)
