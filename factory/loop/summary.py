"""A round's summary: what ``RUN_DIR/rounds/round-N.json`` holds (other tools read its keys), and its
one-screen text form."""

from __future__ import annotations

from factory.store import RunStore


def round_summary(
    store: RunStore, round: int, model: str, eval_name: str, pass_at_k: dict[int, float], seconds: float
) -> dict:
    """Funnel, verdicts, seconds per stage, tokens/s and pass@k of ``round``, read from the store."""
    timings = store.stage_timings(round)
    generation_seconds = sum(v for k, v in timings.items() if k.endswith("generate"))
    tokens = store.generated_tokens(round)
    baseline = {e.k: e.pass_at_k for e in store.evals(0) if e.dataset == eval_name}
    return {
        "round": round,
        "model": model,
        "funnel": store.funnel(round),
        "verdicts": store.verdict_counts(round),
        "timings": {k: round_to(v) for k, v in sorted(timings.items())},
        "seconds": round_to(seconds),
        "tokens": tokens,
        "tokens_per_second": round_to(tokens / generation_seconds) if generation_seconds else 0.0,
        "eval": {
            "dataset": eval_name,
            "pass_at_k": {str(k): v for k, v in pass_at_k.items()},
            "base_pass_at_k": {str(k): v for k, v in baseline.items()},
        },
    }


def round_to(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}f}")


def format_summary(summary: dict) -> str:
    f = summary["funnel"]
    lines = [
        f"round {summary['round']} ({summary['seconds']:.0f} s, {summary['tokens']} tokens at {summary['tokens_per_second']:.0f} tokens/s)",
        "  funnel: "
        + ", ".join(
            f"{k} {f.get(k, 0)}"
            for k in (
                "proposed",
                "invalid",
                "trivial",
                "duplicate",
                "contaminated",
                "accepted",
                "solved_puzzles",
                "attempts_verified",
                "pairs",
            )
        ),
        "  verdicts: " + ", ".join(f"{k} {v}" for k, v in summary["verdicts"].items() if v),
        "  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary["timings"].items()),
        f"  {summary['eval']['dataset']}: "
        + ", ".join(
            f"pass@{k} {v:.3f} (base {summary['eval']['base_pass_at_k'].get(k, float('nan')):.3f})"
            for k, v in summary["eval"]["pass_at_k"].items()
        ),
    ]
    return "\n".join(lines)
