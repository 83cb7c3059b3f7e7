"""The report's PNG plots, drawn with matplotlib's object API (Agg, no pyplot state, no display).

Each ``plot_*`` function takes the :class:`RunReport` and returns a ``matplotlib.figure.Figure``;
matplotlib is imported only when one is drawn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from factory.outputs.report.collect import RunReport, step_order
from factory.store import ACCEPTED, CONTAMINATED, DUPLICATE, INVALID, PROPOSAL_STATUSES, TRIVIAL
from sandbox.verdicts import ALL_VERDICTS

STATUS_COLORS = {
    INVALID: "#9e9e9e",
    TRIVIAL: "#f2b134",
    DUPLICATE: "#8e6bbf",
    CONTAMINATED: "#d9534f",
    ACCEPTED: "#4caf50",
}
VERDICT_COLORS = {
    "verified": "#2e7d32",
    "wrong": "#ef8c2d",
    "error": "#d9534f",
    "timeout": "#7b5ea7",
    "memory": "#8d6e63",
    "output": "#e377c2",
    "invalid": "#9e9e9e",
    "crashed": "#333333",
    "flaky": "#17becf",
}
STAGE_COLORS = {
    "propose": "#4c72b0",
    "solve": "#55a868",
    "train": "#c44e52",
    "eval": "#8172b2",
}
PLOTS = (
    ("pass_at_k.png", "pass@k by round"),
    ("funnel.png", "Filter funnel by round"),
    ("verdicts.png", "Verdict mix by round"),
    ("throughput.png", "Throughput by round"),
    ("diversity.png", "Diversity of what each round produced, and the information it adds"),
)
DPI = 110


def _figure(panels: int, title: str, width: float | None = None):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width or 5.2 * panels + 1.0, 4.8), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    figure.suptitle(title, fontsize=13, fontweight="bold")
    return figure, list(axes)


def _no_data(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=13, color="#777777", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#dddddd")


def _round_axis(ax, rounds: Sequence[int], base: bool = False, unfinished: Sequence[int] = ()) -> None:
    """Integer round ticks (round 0 labelled as the base model, unfinished rounds marked), some margin."""

    def label(r: int) -> str:
        if base and r == 0:
            return "0\n(base)"
        return f"{r}\n(unfinished)" if r in unfinished else str(r)

    ax.set_xticks(list(rounds))
    ax.set_xticklabels([label(r) for r in rounds])
    ax.set_xlabel("round")
    ax.set_xlim(min(rounds) - 0.6, max(rounds) + 0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _unfinished(report: RunReport) -> tuple[int, ...]:
    return tuple(r.round for r in report.rounds if not r.finished)


def _label_points(
    ax,
    xs: Sequence[float],
    ys: Sequence[float],
    texts: Sequence[str],
    *,
    offset: tuple[float, float] = (0, 3),
    **style,
) -> None:
    """Write each text by its point, ``offset`` points away (centred above it unless ``style`` says)."""
    style = {"ha": "center", "fontsize": 8, **style}
    for x, y, text in zip(xs, ys, texts, strict=True):
        ax.annotate(text, (x, y), textcoords="offset points", xytext=offset, **style)


def _legend_below(ax, columns: int) -> None:
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=columns, frameon=False)


def plot_pass_at_k(report: RunReport):
    figure, (ax,) = _figure(1, "pass@k on held-out puzzles (round 0 = base model)", width=8.0)
    series = report.pass_at_k()
    if not series:
        _no_data(ax, "no data: no pass@k recorded yet")
        return figure
    import matplotlib

    colors = matplotlib.colormaps["tab10"].colors
    all_rounds: set[int] = set()
    top = 0.0
    for i, ((dataset, k), values) in enumerate(series.items()):
        rounds = sorted(values)
        all_rounds.update(rounds)
        ys = [values[r] for r in rounds]
        top = max(top, *ys)
        label = f"pass@{k}" if len({d for d, _ in series}) == 1 else f"{dataset} pass@{k}"
        color = colors[i % len(colors)]
        ax.plot(rounds, ys, marker="o", linewidth=2, color=color, label=label)
        _label_points(ax, rounds, ys, [f"{y:.2f}" for y in ys], offset=(0, 7), fontsize=9, color=color)
        if 0 in values:
            ax.axhline(values[0], color=color, linestyle=":", linewidth=1, alpha=0.7)
    _round_axis(ax, sorted(all_rounds), base=True)
    ax.set_ylim(0, min(1.0, top * 1.25 + 0.05))
    ax.set_ylabel("pass@k (dotted: base model)")
    ax.legend(loc="lower right")
    return figure


def plot_funnel(report: RunReport):
    figure, (left, right) = _figure(2, "Filter funnel by round")
    rounds = [r.round for r in report.rounds]
    if not rounds or not any(r.funnel.get("proposed", 0) for r in report.rounds):
        _no_data(left, "no data: no proposals yet")
        _no_data(right, "no data")
        return figure
    bottom = [0] * len(rounds)
    for status in PROPOSAL_STATUSES:  # the rejections, then the accepted ones
        values = [r.funnel.get(status, 0) for r in report.rounds]
        left.bar(
            rounds, values, bottom=bottom, color=STATUS_COLORS.get(status, "#cccccc"), label=status, width=0.6
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    _label_points(left, rounds, bottom, [str(total) for total in bottom], fontsize=9)
    left.set_title("what the filters did with each proposal", fontsize=10)
    left.set_ylabel("proposals")
    left.set_ylim(0, max(bottom) * 1.15 + 1)
    _legend_below(left, 5)
    _round_axis(left, rounds, unfinished=_unfinished(report))

    stages = (
        (ACCEPTED, "accepted puzzles", "#4caf50"),
        ("solved_puzzles", "solved puzzles", "#2e7d32"),
        ("pairs", "pairs stored", "#1b4f72"),
    )
    width = 0.26
    top = 1
    for i, (key, label, color) in enumerate(stages):
        xs = [x + (i - 1) * width for x in rounds]
        values = [r.funnel.get(key, 0) for r in report.rounds]
        top = max(top, *values)
        right.bar(xs, values, width=width, color=color, label=label)
        _label_points(right, xs, values, [str(v) for v in values], offset=(0, 2))
    right.set_title("accepted -> solved -> pairs", fontsize=10)
    right.set_ylabel("count")
    right.set_ylim(0, top * 1.2)
    _legend_below(right, 3)
    _round_axis(right, rounds, unfinished=_unfinished(report))
    return figure


def plot_verdicts(report: RunReport):
    figure, (ax,) = _figure(1, "Verdict mix of sampled solutions by round", width=8.5)
    rounds = [r for r in report.rounds if r.attempts]
    if not rounds:
        _no_data(ax, "no data: no solutions verified yet")
        return figure
    xs = [r.round for r in rounds]
    bottom = [0.0] * len(rounds)
    for verdict in ALL_VERDICTS:
        shares = [r.verdicts.get(verdict, 0) / r.attempts for r in rounds]
        if not any(shares):
            continue
        ax.bar(
            xs, shares, bottom=bottom, color=VERDICT_COLORS.get(verdict, "#cccccc"), label=verdict, width=0.6
        )
        for x, b, s in zip(xs, bottom, shares, strict=True):
            if s >= 0.06:
                ax.text(x, b + s / 2, f"{s:.0%}", ha="center", va="center", fontsize=8, color="white")
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    _label_points(ax, [r.round for r in rounds], [1.0] * len(rounds), [f"n={r.attempts}" for r in rounds])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("share of attempts")
    ax.yaxis.set_major_formatter(_percent())
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _round_axis(ax, xs, unfinished=_unfinished(report))
    return figure


def plot_throughput(report: RunReport):
    figure, (stages_ax, tokens_ax, pairs_ax) = _figure(3, "Throughput by round", width=15.0)
    rounds = [r for r in report.rounds if r.timings]
    if not rounds:
        for ax in (stages_ax, tokens_ax, pairs_ax):
            _no_data(ax, "no data: no stage timings yet")
        return figure
    xs = [r.round for r in rounds]
    keys = sorted({k for r in rounds for k in r.timings}, key=step_order)
    bottom = [0.0] * len(rounds)
    shades: Counter[str] = Counter()
    for key in keys:
        stage = key.split(".")[0]
        values = [r.timings.get(key, 0.0) for r in rounds]
        color = _shade(STAGE_COLORS.get(stage, "#999999"), shades[stage])
        shades[stage] += 1
        stages_ax.bar(
            xs, values, bottom=bottom, color=color, label=key, width=0.6, edgecolor="white", linewidth=0.5
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    _label_points(stages_ax, xs, bottom, [_seconds(total) for total in bottom])
    stages_ax.set_title("seconds per stage", fontsize=10)
    stages_ax.set_ylabel("seconds")
    stages_ax.set_ylim(0, max(bottom) * 1.15 + 1e-9)
    _legend_below(stages_ax, 3)
    _round_axis(stages_ax, xs, unfinished=_unfinished(report))

    for ax, values, title, unit, color in (
        (
            tokens_ax,
            [r.tokens_per_second for r in rounds],
            "generated tokens per second of generation",
            "tokens/s",
            "#4c72b0",
        ),
        (
            pairs_ax,
            [r.pairs_per_second for r in rounds],
            "pairs stored per second of the round",
            "pairs/s",
            "#1b4f72",
        ),
    ):
        known = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        if not known:
            _no_data(ax)
            continue
        ax.bar([x for x, _ in known], [v for _, v in known], color=color, width=0.6)
        _label_points(ax, [x for x, _ in known], [v for _, v in known], [number_text(v) for _, v in known])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        top = max(v for _, v in known)
        ax.set_ylim(0, top * 1.2 if top > 0 else 1.0)  # all zeros: a plain 0..1 axis, not 0..1e-9
        _round_axis(ax, xs, unfinished=_unfinished(report))
    return figure


def plot_diversity(report: RunReport):
    figure, (count_ax, share_ax, distance_ax, gain_ax) = _figure(
        4, "Diversity of the puzzles each round produced, and the information its pairs add", width=20.0
    )
    _plot_information_gain(gain_ax, report)
    rounds = [r for r in report.rounds if r.distinct or r.seed_distances]
    if not rounds:
        for ax in (count_ax, share_ax, distance_ax):
            _no_data(ax, "no data: no parsable proposals yet")
        return figure
    xs = [r.round for r in rounds]
    width = 0.38
    distinct = [r.distinct for r in rounds]
    accepted = [r.funnel.get(ACCEPTED, 0) for r in rounds]
    count_ax.bar(
        [x - width / 2 for x in xs],
        distinct,
        width=width,
        color="#9ecae1",
        label="distinct canonical forms proposed",
    )
    count_ax.bar(
        [x + width / 2 for x in xs],
        accepted,
        width=width,
        color="#4caf50",
        label="accepted (new puzzles stored)",
    )
    for shift, counts in ((-width / 2, distinct), (width / 2, accepted)):
        _label_points(count_ax, [x + shift for x in xs], counts, [str(n) for n in counts], offset=(0, 2))
    count_ax.set_title("distinct puzzles", fontsize=10)
    count_ax.set_ylabel("puzzles")
    count_ax.set_ylim(0, max(*distinct, *accepted, 1) * 1.3)
    _legend_below(count_ax, 1)
    _round_axis(count_ax, xs, unfinished=_unfinished(report))

    shared = [r for r in rounds if r.new_share is not None]
    if shared:
        share_ax.plot(
            [r.round for r in shared], [r.new_share for r in shared], marker="o", linewidth=2, color="#8e6bbf"
        )
        _label_points(
            share_ax,
            [r.round for r in shared],
            [r.new_share for r in shared],
            [f"{r.new_share:.0%} ({r.new}/{r.distinct})" for r in shared],
            offset=(0, 7),
        )
        share_ax.axhline(0.5, color="#d9534f", linestyle=":", linewidth=1)
        share_ax.text(min(xs) - 0.5, 0.52, "below: mostly repeats", fontsize=7, color="#d9534f")
        share_ax.set_ylim(0, 1.12)
        share_ax.yaxis.set_major_formatter(_percent())
        share_ax.set_title("share new vs seeds and all earlier rounds", fontsize=10)
        share_ax.set_ylabel("new / distinct")
        _round_axis(share_ax, xs, unfinished=_unfinished(report))
    else:
        _no_data(share_ax)

    with_distances = [r for r in rounds if r.seed_distances]
    if with_distances:
        import random

        jitter = random.Random(0)
        for r in with_distances:
            distance_ax.scatter(
                [r.round + jitter.uniform(-0.15, 0.15) for _ in r.seed_distances],
                r.seed_distances,
                s=10,
                color="#999999",
                alpha=0.5,
                linewidths=0,
            )
        dx = [r.round for r in with_distances]
        means = [r.distance_mean for r in with_distances]
        mins = [r.distance_min for r in with_distances]
        for ys, marker, width, color, label in ((means, "o", 2, "#1f77b4", "mean"), (mins, "v", 1.5, "#d62728", "min")):
            distance_ax.plot(dx, ys, marker=marker, linewidth=width, color=color, label=label)
        _label_points(
            distance_ax, dx, means, [f"{m:.2f}" for m in means], offset=(14, 0), va="center", color="#1f77b4"
        )
        distance_ax.set_ylim(-0.02, 1.02)
        distance_ax.set_title("distance from the seeds (1 - max similarity)", fontsize=10)
        distance_ax.set_ylabel("distance (dots: accepted puzzles)")
        _legend_below(distance_ax, 2)
        _round_axis(distance_ax, dx, unfinished=_unfinished(report))
    else:
        _no_data(distance_ax, "no data: no accepted puzzles")
    return figure


def _plot_information_gain(ax, report: RunReport) -> None:
    """The base model's loss on each round's new pairs minus on seed pairs: above 0, the round's data is
    less predictable to the model than its seeds (it carries something the seeds do not)."""
    known = [(r.round, r.information_gain) for r in report.rounds if r.information_gain is not None]
    if not known:
        _no_data(ax, "no data: no round fine-tuned on new pairs")
        return
    xs, gains = [x for x, _ in known], [g for _, g in known]
    ax.bar(xs, gains, color=["#2e7d32" if g > 0 else "#c62828" for g in gains], width=0.6)
    ax.axhline(0, color="#555555", linewidth=1)
    _label_points(ax, xs, gains, [f"{g:+.2f}" for g in gains])
    low, high = min(0.0, *gains), max(0.0, *gains)
    pad = 0.2 * (high - low or 1.0)
    ax.set_ylim(low - pad, high + pad)
    ax.set_title("information gain (loss on new pairs - on seeds)", fontsize=10)
    ax.set_ylabel("nats per token, base model")
    _round_axis(ax, xs, unfinished=_unfinished(report))


def _shade(color: str, step: int) -> str:
    """``color`` lightened a little more for each further step of the same stage."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(c + (255 - c) * min(0.35 * step, 0.8)) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def _percent():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0, decimals=0)


def _seconds(value: float) -> str:
    size, unit = next(((s, u) for s, u in ((3600, "h"), (60, "min")) if value >= s), (1, "s"))
    return f"{value / size:.1f} {unit}"


def number_text(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.3f}"


PAINTERS = {
    "pass_at_k.png": plot_pass_at_k,
    "funnel.png": plot_funnel,
    "verdicts.png": plot_verdicts,
    "throughput.png": plot_throughput,
    "diversity.png": plot_diversity,
}
