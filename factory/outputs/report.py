"""A static report of a run: PNG plots and one HTML page, derived from the store alone.

``collect_report(store)`` reads everything the page shows into plain records (no plotting, easy to
test); ``write_report(run_dir, out_dir)`` draws the plots (matplotlib, Agg, no display needed) and
writes ``index.html`` beside them. The page answers: does the loop make the model better (pass@k by
round, round 0 = base model), where do proposals go (the filter funnel), how do sampled solutions
fail (verdict mix), where does the time go (seconds per stage, tokens/s, pairs/s), and is the model
still inventing new puzzles or collapsing onto a few (distinct and new canonical forms per round, and
how far new puzzles are from the seeds: 1 - the highest token-shingle similarity to any seed).
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from factory.errors import UserError
from factory.outputs.export import open_run
from factory.store import PROPOSAL_STATUSES, SEED, EvalRecord, RunStore
from puzzles.canonical import canonical_hash, near_duplicate_tokens
from puzzles.parse import parse_puzzle
from puzzles.records import InvalidProgram
from sandbox.verdicts import ALL_VERDICTS, VERIFIED

REJECTIONS = ("invalid", "trivial", "duplicate", "contaminated")
STATUS_COLORS = {
    "invalid": "#9e9e9e",
    "trivial": "#f2b134",
    "duplicate": "#8e6bbf",
    "contaminated": "#d9534f",
    "accepted": "#4caf50",
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
    ("diversity.png", "Diversity of what each round produced"),
)
DPI = 110


# ---------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class RoundReport:
    round: int
    model: str
    finished: bool
    funnel: Mapping[str, int]
    verdicts: Mapping[str, int]
    timings: Mapping[str, float]  # seconds per named step, summed over the round's batches
    tokens: int
    seconds: float  # the round's wall time (summary), else the sum of its stage timings
    distinct: int  # distinct canonical forms among the round's parsable proposals
    new: int  # of those, how many no earlier round (nor the seeds) had produced
    seed_distances: tuple[float, ...] = field(default=())  # per accepted puzzle: 1 - max similarity to a seed

    @property
    def pairs(self) -> int:
        return self.funnel.get("pairs", 0)

    @property
    def attempts(self) -> int:
        return sum(self.verdicts.values())

    @property
    def verified_share(self) -> float | None:
        return self.verdicts.get(VERIFIED, 0) / self.attempts if self.attempts else None

    @property
    def new_share(self) -> float | None:
        return self.new / self.distinct if self.distinct else None

    @property
    def generate_seconds(self) -> float:
        return sum(v for k, v in self.timings.items() if k.endswith("generate"))

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.generate_seconds if self.generate_seconds else None

    @property
    def pairs_per_second(self) -> float | None:
        return self.pairs / self.seconds if self.seconds else None

    @property
    def distance_mean(self) -> float | None:
        return sum(self.seed_distances) / len(self.seed_distances) if self.seed_distances else None

    @property
    def distance_min(self) -> float | None:
        return min(self.seed_distances) if self.seed_distances else None


@dataclass(frozen=True)
class RunReport:
    run_dir: str
    config: Mapping[str, object] | None
    rounds: tuple[RoundReport, ...]
    evals: tuple[EvalRecord, ...]
    seed_puzzles: int
    seed_pairs: int

    def pass_at_k(self) -> dict[tuple[str, int], dict[int, float]]:
        """(dataset, k) -> {round: pass@k}."""
        series: dict[tuple[str, int], dict[int, float]] = {}
        for e in self.evals:
            series.setdefault((e.dataset, e.k), {})[e.round] = e.pass_at_k
        return dict(sorted(series.items()))


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    index: Path
    images: tuple[Path, ...]


# ---------------------------------------------------------------------------------------------------
# reading the store


class SeedDistance:
    """1 - the highest near-duplicate similarity of a puzzle to any seed, via an inverted shingle index."""

    def __init__(self, seed_sources: Sequence[str]):
        self.sizes: list[int] = []
        self.index: dict[str, list[int]] = {}
        for i, source in enumerate(seed_sources):
            tokens = near_duplicate_tokens(source)
            self.sizes.append(len(tokens))
            for shingle in tokens:
                self.index.setdefault(shingle, []).append(i)

    def __call__(self, source: str) -> float:
        tokens = near_duplicate_tokens(source)
        if not tokens or not self.sizes:
            return 1.0
        shared: Counter[int] = Counter()
        for shingle in tokens:
            shared.update(self.index.get(shingle, ()))
        best = max((n / (len(tokens) + self.sizes[i] - n) for i, n in shared.items()), default=0.0)
        return 1.0 - best


def collect_report(store: RunStore, run_dir: Path | str = "") -> RunReport:
    """Everything the report shows, read from ``store``."""
    seeds = [p for p in store.pool_puzzles(up_to_round=0, solved_only=False) if p.origin == SEED]
    distance = SeedDistance([p.source for p in seeds])
    known = {p.canonical_hash for p in seeds}
    rounds = []
    for info in store.rounds():
        if info.round == 0:
            continue  # round 0 is the base model and the seeds, not a generation round
        r = info.round
        timings = store.stage_timings(r)
        summary_seconds = (info.summary or {}).get("seconds")
        seconds = (
            float(summary_seconds) if isinstance(summary_seconds, (int, float)) else sum(timings.values())
        )
        puzzles = {p.id: p for p in store.puzzles_of_round(r)}
        produced: set[str] = set()
        for proposal in store.proposals_of_round(r):
            if proposal.status == "invalid":
                continue
            if proposal.puzzle_id is not None and proposal.puzzle_id in puzzles:
                produced.add(puzzles[proposal.puzzle_id].canonical_hash)
                continue
            try:
                produced.add(canonical_hash(parse_puzzle(proposal.raw).source))
            except InvalidProgram:
                continue
        new = produced - known
        known |= produced
        rounds.append(
            RoundReport(
                round=r,
                model=info.model,
                finished=info.finished_at is not None,
                funnel=store.funnel(r),
                verdicts=store.verdict_counts(r),
                timings=timings,
                tokens=store.generated_tokens(r),
                seconds=seconds,
                distinct=len(produced),
                new=len(new),
                seed_distances=tuple(distance(p.source) for p in puzzles.values()),
            )
        )
    return RunReport(
        run_dir=str(run_dir),
        config=store.config(),
        rounds=tuple(rounds),
        evals=tuple(store.evals()),
        seed_puzzles=len(seeds),
        seed_pairs=len(store.stored_pairs(up_to_round=0)),
    )


# ---------------------------------------------------------------------------------------------------
# writing


def write_report(run_dir: Path | str, out_dir: Path | str) -> ReportResult:
    """Draw the plots and write ``out_dir/index.html``; returns the files written."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file: give a directory")
    with open_run(run_dir) as store:
        report = collect_report(store, run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    painters = {
        "pass_at_k.png": plot_pass_at_k,
        "funnel.png": plot_funnel,
        "verdicts.png": plot_verdicts,
        "throughput.png": plot_throughput,
        "diversity.png": plot_diversity,
    }
    images = []
    for name, _ in PLOTS:
        figure = painters[name](report)
        path = out_dir / name
        figure.savefig(path, dpi=DPI)
        images.append(path)
    index = out_dir / "index.html"
    index.write_text(render_html(report), encoding="utf-8")
    return ReportResult(out_dir, index, tuple(images))


# ---------------------------------------------------------------------------------------------------
# plots (matplotlib's object API: no pyplot state, no display)


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
        for x, y in zip(rounds, ys, strict=True):
            ax.annotate(
                f"{y:.2f}",
                (x, y),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=9,
                color=color,
            )
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
    for status in (*REJECTIONS, "accepted"):
        values = [r.funnel.get(status, 0) for r in report.rounds]
        left.bar(rounds, values, bottom=bottom, color=STATUS_COLORS[status], label=status, width=0.6)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for x, total in zip(rounds, bottom, strict=True):
        left.annotate(
            str(total), (x, total), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=9
        )
    left.set_title("what the filters did with each proposal", fontsize=10)
    left.set_ylabel("proposals")
    left.set_ylim(0, max(bottom) * 1.15 + 1)
    _legend_below(left, 5)
    _round_axis(left, rounds, unfinished=_unfinished(report))

    stages = (
        ("accepted", "accepted puzzles", "#4caf50"),
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
        for x, v in zip(xs, values, strict=True):
            right.annotate(str(v), (x, v), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=8)
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
    for r in rounds:
        ax.annotate(
            f"n={r.attempts}",
            (r.round, 1.0),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=8,
        )
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
    keys = sorted({k for r in rounds for k in r.timings}, key=_stage_order)
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
    for x, total in zip(xs, bottom, strict=True):
        stages_ax.annotate(
            _seconds(total), (x, total), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8
        )
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
        for x, v in known:
            ax.annotate(
                _number(v), (x, v), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8
            )
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        top = max(v for _, v in known)
        ax.set_ylim(0, top * 1.2 if top > 0 else 1.0)  # all zeros: a plain 0..1 axis, not 0..1e-9
        _round_axis(ax, xs, unfinished=_unfinished(report))
    return figure


def plot_diversity(report: RunReport):
    figure, (count_ax, share_ax, distance_ax) = _figure(
        3, "Diversity of the puzzles each round produced", width=15.0
    )
    rounds = [r for r in report.rounds if r.distinct or r.seed_distances]
    if not rounds:
        for ax in (count_ax, share_ax, distance_ax):
            _no_data(ax, "no data: no parsable proposals yet")
        return figure
    xs = [r.round for r in rounds]
    width = 0.38
    distinct = [r.distinct for r in rounds]
    accepted = [r.funnel.get("accepted", 0) for r in rounds]
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
    for x, d, a in zip(xs, distinct, accepted, strict=True):
        count_ax.annotate(
            str(d), (x - width / 2, d), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=8
        )
        count_ax.annotate(
            str(a), (x + width / 2, a), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=8
        )
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
        for r in shared:
            share_ax.annotate(
                f"{r.new_share:.0%} ({r.new}/{r.distinct})",
                (r.round, r.new_share),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=8,
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
        distance_ax.plot(
            dx,
            [r.distance_mean for r in with_distances],
            marker="o",
            linewidth=2,
            color="#1f77b4",
            label="mean",
        )
        distance_ax.plot(
            dx,
            [r.distance_min for r in with_distances],
            marker="v",
            linewidth=1.5,
            color="#d62728",
            label="min",
        )
        for r in with_distances:
            distance_ax.annotate(
                f"{r.distance_mean:.2f}",
                (r.round, r.distance_mean),
                textcoords="offset points",
                xytext=(14, 0),
                va="center",
                fontsize=8,
                color="#1f77b4",
            )
        distance_ax.set_ylim(-0.02, 1.02)
        distance_ax.set_title("distance from the seeds (1 - max similarity)", fontsize=10)
        distance_ax.set_ylabel("distance (dots: accepted puzzles)")
        _legend_below(distance_ax, 2)
        _round_axis(distance_ax, dx, unfinished=_unfinished(report))
    else:
        _no_data(distance_ax, "no data: no accepted puzzles")
    return figure


PIPELINE_STEPS = (
    "propose.generate",
    "propose.filter",
    "solve.generate",
    "solve.verify",
    "train",
    "eval.generate",
    "eval.verify",
)


def _stage_order(key: str) -> tuple[int, int, str]:
    """Steps in pipeline order; unknown steps after the known ones of their stage."""
    stages = {"propose": 0, "solve": 1, "train": 2, "eval": 3}
    step = PIPELINE_STEPS.index(key) if key in PIPELINE_STEPS else len(PIPELINE_STEPS)
    return stages.get(key.split(".")[0], 9), step, key


def _shade(color: str, step: int) -> str:
    """``color`` lightened a little more for each further step of the same stage."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(c + (255 - c) * min(0.35 * step, 0.8)) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def _percent():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0, decimals=0)


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.3f}"


# ---------------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto; max-width: 1180px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .sub { color: #666; margin-top: 0; }
section { margin: 2.2em 0; } img { max-width: 100%; border: 1px solid #eee; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f5f5f5; } td.l, th.l { text-align: left; }
.glance { display: flex; flex-wrap: wrap; gap: 0.8em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 0.9em; min-width: 12em; }
.card b { font-size: 1.3em; } .up { color: #2e7d32; } .down { color: #c62828; } .flat { color: #666; }
.warn { background: #fff4e5; border-left: 4px solid #ef8c2d; padding: 0.5em 0.9em; margin: 0.4em 0; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


def render_html(report: RunReport) -> str:
    e = html.escape
    rounds = report.rounds
    finished = sum(1 for r in rounds if r.finished)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Self-play report: {e(Path(report.run_dir).name or report.run_dir)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Self-play run report: {e(Path(report.run_dir).name or report.run_dir)}</h1>",
        f'<p class="sub">{e(report.run_dir)}: {len(rounds)} round(s), {finished} finished; '
        f"{report.seed_puzzles} seed puzzles with {report.seed_pairs} reference pairs. "
        "Everything here is read from the run's store.</p>",
        _glance(report),
    ]
    sections = {
        "pass_at_k.png": _pass_table(report),
        "funnel.png": _funnel_table(report),
        "verdicts.png": _verdict_table(report),
        "throughput.png": _throughput_table(report),
        "diversity.png": _diversity_table(report),
    }
    notes = {
        "pass_at_k.png": "Held-out puzzles never reach prompts or training. Round 0 is the base model; round r is the "
        "model fine-tuned after round r. Rising lines: the loop teaches the model.",
        "funnel.png": "Left: every raw proposal by what the filters said. Right: accepted puzzles, those with a verified "
        "solution, and the pairs stored (shortest distinct solutions).",
        "verdicts.png": "Every sampled solution's sandbox verdict. A growing green share: the solver gets better on its own puzzles.",
        "throughput.png": "Seconds per stage summed over the round's batches; tokens/s over generation time; pairs/s over the round's wall time.",
        "diversity.png": "Distinct canonical forms among parsable proposals, the share no earlier round or seed had, and how far "
        "accepted puzzles are from the nearest seed. Falling share or distance near 0: the model is collapsing onto what it has seen.",
    }
    for name, title in PLOTS:
        parts += [
            f'<section id="{e(name[:-4])}"><h2>{e(title)}</h2>',
            f"<p>{e(notes[name])}</p>",
            f'<img src="{e(name)}" alt="{e(title)}">',
            sections[name],
            "</section>",
        ]
    parts.append(_config_table(report))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _glance(report: RunReport) -> str:
    if not report.rounds and not report.evals:
        return '<div class="warn">This run has no rounds and no evaluations yet: nothing to show.</div>'
    cards, warnings = [], []
    series = report.pass_at_k()
    if series:
        (dataset, k), values = min(
            series.items(), key=lambda item: (item[0][1], item[0][0])
        )  # the smallest k
        first_round, last_round = min(values), max(values)
        cards.append(
            _card(
                f"{dataset} pass@{k}",
                values[first_round],
                values[last_round],
                first_round,
                last_round,
                "{:.3f}",
            )
        )
        if values[last_round] < values[first_round]:
            warnings.append(
                f"pass@{k} fell from {values[first_round]:.3f} (round {first_round}) to {values[last_round]:.3f} (round {last_round})"
            )
    rounds = report.rounds
    finished = [r for r in rounds if r.finished] or list(rounds)  # an open round would skew every trend
    for label, metric, fmt in (
        ("pairs stored", lambda r: r.pairs, "{:.0f}"),
        ("verified share", lambda r: r.verified_share, "{:.0%}"),
        ("new-puzzle share", lambda r: r.new_share, "{:.0%}"),
        ("distance from seeds", lambda r: r.distance_mean, "{:.2f}"),
    ):
        known = [(r.round, metric(r)) for r in finished if metric(r) is not None]
        if known:
            (first_round, first), (last_round, last) = known[0], known[-1]
            cards.append(_card(label, first, last, first_round, last_round, fmt))
    for r in rounds:
        if r.funnel.get("proposed", 0) and not r.pairs:
            status = "" if r.finished else " (unfinished)"
            warnings.append(f"round {r.round}{status} produced no pairs")
        if r.new_share is not None and r.new_share < 0.5:
            warnings.append(
                f"round {r.round}: only {r.new_share:.0%} of its distinct puzzles were new: possible collapse"
            )
    out = ['<section id="glance"><h2>At a glance</h2><div class="glance">', *cards, "</div>"]
    out += [f'<div class="warn">{html.escape(w)}</div>' for w in warnings]
    out.append("</section>")
    return "\n".join(out)


def _card(label: str, first: float, last: float, first_round: int, last_round: int, fmt: str) -> str:
    if first_round == last_round:
        trend, arrow = "flat", ""
    elif math.isclose(first, last, abs_tol=1e-9):
        trend, arrow = "flat", "="
    else:
        trend, arrow = ("up", "&#9650;") if last > first else ("down", "&#9660;")
    span = f"round {first_round}" if first_round == last_round else f"round {first_round} &rarr; {last_round}"
    value = (
        fmt.format(last) if first_round == last_round else f"{fmt.format(first)} &rarr; {fmt.format(last)}"
    )
    return (
        f'<div class="card">{html.escape(label)}<br><b class="{trend}">{value} {arrow}</b>'
        f"<br><small>{span}</small></div>"
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    if not rows:
        return '<p class="sub">no data</p>'
    cells = "".join(
        f'<th class="{"l" if i < left else ""}">{html.escape(str(h))}</th>' for i, h in enumerate(head)
    )
    body = []
    for row in rows:
        tds = "".join(
            f'<td class="{"l" if i < left else ""}">{html.escape(_fmt(v))}</td>' for i, v in enumerate(row)
        )
        body.append(f"<tr>{tds}</tr>")
    return f"<table><tr>{cells}</tr>{''.join(body)}</table>"


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return _number(value) if value >= 1 else f"{value:.3f}"
    return str(value)


def _round_label(r: RoundReport) -> str:
    return str(r.round) if r.finished else f"{r.round} (unfinished)"


def _pass_table(report: RunReport) -> str:
    series = report.pass_at_k()
    rounds = sorted({r for values in series.values() for r in values})
    head = ["round", *(f"{d} pass@{k}" for d, k in series)]
    rows = [
        ["0 (base)" if r == 0 else str(r), *(values.get(r) for values in series.values())] for r in rounds
    ]
    return _table(head, rows)


def _funnel_table(report: RunReport) -> str:
    head = ["round", "model", "proposed", *PROPOSAL_STATUSES, "solved puzzles", "pairs"]
    rows = [
        [
            _round_label(r),
            r.model,
            r.funnel.get("proposed", 0),
            *(r.funnel.get(s, 0) for s in PROPOSAL_STATUSES),
            r.funnel.get("solved_puzzles", 0),
            r.pairs,
        ]
        for r in report.rounds
    ]
    return _table(head, rows, left=2)


def _verdict_table(report: RunReport) -> str:
    head = ["round", "attempts", *ALL_VERDICTS, "verified share"]
    rows = [
        [_round_label(r), r.attempts, *(r.verdicts.get(v, 0) for v in ALL_VERDICTS), r.verified_share]
        for r in report.rounds
    ]
    return _table(head, rows)


def _throughput_table(report: RunReport) -> str:
    keys = sorted({k for r in report.rounds for k in r.timings}, key=_stage_order)
    head = ["round", *(f"{k} (s)" for k in keys), "round (s)", "tokens", "tokens/s", "pairs/s"]
    rows = [
        [
            _round_label(r),
            *(r.timings.get(k) for k in keys),
            r.seconds,
            r.tokens,
            r.tokens_per_second,
            r.pairs_per_second,
        ]
        for r in report.rounds
    ]
    return _table(head, rows)


def _diversity_table(report: RunReport) -> str:
    head = [
        "round",
        "distinct proposed",
        "new",
        "new share",
        "accepted",
        "mean distance from seeds",
        "min distance",
    ]
    rows = [
        [
            _round_label(r),
            r.distinct,
            r.new,
            r.new_share,
            r.funnel.get("accepted", 0),
            r.distance_mean,
            r.distance_min,
        ]
        for r in report.rounds
    ]
    return _table(head, rows)


def _config_table(report: RunReport) -> str:
    if not report.config:
        return '<section id="config"><h2>Settings</h2><p class="sub">The store holds no run configuration.</p></section>'
    rows = [[key, "(default)" if value is None else value] for key, value in sorted(report.config.items())]
    return (
        '<section id="config"><h2>Settings</h2><details open><summary>the run configuration</summary>'
        + _table(["setting", "value"], rows, left=2)
        + "</details></section>"
    )
