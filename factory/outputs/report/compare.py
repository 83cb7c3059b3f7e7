"""A report comparing runs: the control arms of an experiment (``factory report D`` on an experiment
directory) or several run directories (``factory report RUN_A RUN_B``).

The page has one pass@k panel with a curve per run (its 95% bootstrap interval shaded,
``factory.loop.confidence``), a table of the same numbers, each arm's difference to seeds-only with
its paired interval when the arms include seeds-only, and links to each run's own report, written
beside it in ``OUT/<label>/``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from factory.loop.arms import CONTROLS, SEEDS_ONLY_ARM, UNVERIFIED_ARM
from factory.loop.confidence import pass_at_k_interval, puzzle_counts
from factory.outputs.comparison import arm_dirs, comparison, is_experiment
from factory.outputs.export import open_run
from factory.outputs.report.html import _CSS
from factory.outputs.report.plots import DPI

COMPARE_PLOT = "pass_at_k_compare.png"


@dataclass(frozen=True)
class Curve:
    """pass@k of one run by round (0 = base model), with the 95% interval of each point."""

    label: str
    dataset: str
    k: int
    values: Mapping[int, float]
    intervals: Mapping[int, tuple[float, float]]


def runs_to_compare(run_dirs: list[Path]) -> dict[str, Path]:
    """Label -> run directory: an experiment directory's arms, else each directory by its name (the
    parent's name too where two names clash)."""
    if len(run_dirs) == 1 and is_experiment(run_dirs[0]):
        return arm_dirs(run_dirs[0])
    names = [d.resolve().name for d in run_dirs]
    labels = {}
    for d, name in zip(run_dirs, names, strict=True):
        label = name if names.count(name) == 1 else f"{d.resolve().parent.name}/{name}"
        labels[label] = d
    return labels


def collect_curves(runs: Mapping[str, Path]) -> list[Curve]:
    """One curve per run and (dataset, k), read from each store's evaluations."""
    curves = []
    for label, run_dir in runs.items():
        with open_run(run_dir) as store:
            series: dict[tuple[str, int], dict[int, tuple[float, tuple[float, float] | None]]] = {}
            for e in store.evals():
                solved = puzzle_counts(e)
                interval = pass_at_k_interval(solved, e.n, e.k) if solved else None
                series.setdefault((e.dataset, e.k), {})[e.round] = (e.pass_at_k, interval)
        for (dataset, k), points in sorted(series.items()):
            curves.append(
                Curve(
                    label, dataset, k,
                    {r: v for r, (v, _) in sorted(points.items())},
                    {r: ci for r, (_, ci) in sorted(points.items()) if ci is not None},
                )
            )
    return curves


def plot_curves(curves: list[Curve]):
    """pass@k by round, one line per run (and k), its 95% interval shaded."""
    import matplotlib
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 4.8), layout="constrained")
    ax = figure.subplots()
    figure.suptitle("pass@k by round, per run (shaded: 95% bootstrap interval over puzzles)", fontsize=12,
                    fontweight="bold")
    if not curves:
        ax.text(0.5, 0.5, "no data: no pass@k recorded yet", ha="center", va="center", transform=ax.transAxes)
        return figure
    colors = matplotlib.colormaps["tab10"].colors
    datasets = {c.dataset for c in curves}
    labels = list(dict.fromkeys(c.label for c in curves))  # one colour per run
    ks = sorted({(c.dataset, c.k) for c in curves})  # one line style per (dataset, k)
    styles = ("-", "--", ":", "-.")
    rounds: set[int] = set()
    top = 0.0
    for curve in curves:
        xs = sorted(curve.values)
        rounds.update(int(x) for x in xs)
        top = max(top, *curve.values.values(), *(high for _, high in curve.intervals.values()))
        color = colors[labels.index(curve.label) % len(colors)]
        style = styles[ks.index((curve.dataset, curve.k)) % len(styles)]
        shift = (labels.index(curve.label) - (len(labels) - 1) / 2) * 0.04  # equal values stay visible
        curve = Curve(curve.label, curve.dataset, curve.k, {x + shift: v for x, v in curve.values.items()},
                      {x + shift: ci for x, ci in curve.intervals.items()})
        xs = sorted(curve.values)
        name = curve.label + (f" {curve.dataset}" if len(datasets) > 1 else "") + f" pass@{curve.k}"
        ax.plot(xs, [curve.values[x] for x in xs], marker="o", linewidth=2, color=color, linestyle=style, label=name)
        with_ci = [x for x in xs if x in curve.intervals]
        if with_ci:
            ax.fill_between(with_ci, [curve.intervals[x][0] for x in with_ci],
                            [curve.intervals[x][1] for x in with_ci], color=color, alpha=0.08, linewidth=0)
            ax.errorbar(with_ci, [curve.values[x] for x in with_ci],
                        yerr=[[curve.values[x] - curve.intervals[x][0] for x in with_ci],
                              [curve.intervals[x][1] - curve.values[x] for x in with_ci]],
                        fmt="none", ecolor=color, capsize=3, alpha=0.6)
    ax.set_xticks(sorted(rounds))
    ax.set_xticklabels(["0\n(base)" if r == 0 else str(r) for r in sorted(rounds)])
    ax.set_xlabel("round")
    ax.set_ylabel("pass@k")
    ax.set_ylim(0, min(1.0, top * 1.15 + 0.05))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", ncol=max(1, len(ks)))
    return figure


def render_comparison(curves: list[Curve], runs: Mapping[str, Path], differences: Mapping[tuple[str, str], Mapping] | None) -> str:
    e = html.escape
    rows = []
    for c in curves:
        for r, v in c.values.items():
            ci = c.intervals.get(r)
            rows.append(
                f"<tr><td class=l>{e(c.label)}</td><td class=l>{e(c.dataset)}</td><td>{c.k}</td><td>{r}</td>"
                f"<td>{v:.3f}</td><td>{f'[{ci[0]:.3f}, {ci[1]:.3f}]' if ci else '&ndash;'}</td></tr>"
            )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Self-play comparison</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>Self-play comparison</h1>",
        '<p class="sub">' + ", ".join(f'<a href="{e(label)}/index.html">{e(label)}</a> ({e(str(d))})'
                                      for label, d in runs.items()) + "</p>",
        '<section id="pass_at_k"><h2>pass@k by round</h2>',
        "<p>Round 0 is the base model. The interval is a percentile bootstrap over the evaluation puzzles "
        "(2000 resamples, seeded).</p>",
        f'<img src="{COMPARE_PLOT}" alt="pass@k by round per run">',
        "<table><tr><th class=l>run</th><th class=l>dataset</th><th>k</th><th>round</th><th>pass@k</th>"
        "<th>95% CI</th></tr>",
        *rows,
        "</table></section>",
    ]
    if differences:
        parts += ["<section id=\"over_controls\"><h2>Over the control arms</h2>",
                  f"<p>pass@k of an arm minus a control arm's on the same puzzles, with a paired bootstrap 95% "
                  f"interval. Over {SEEDS_ONLY_ARM}: what training on the arm's self-play data adds; the "
                  f"verified arm over {UNVERIFIED_ARM}: what the verification filter adds.</p>",
                  "<table><tr><th class=l>arm</th><th class=l>over</th><th>round</th><th>k</th><th>difference</th>"
                  "<th>95% CI</th><th>puzzles</th></tr>"]
        for (arm, control), by_round in differences.items():
            for r, by_k in by_round.items():
                for k, d in by_k.items():
                    parts.append(
                        f"<tr><td class=l>{e(arm)}</td><td class=l>{e(control)}</td><td>{r}</td><td>{k}</td>"
                        f"<td>{d['difference']:+.3f}</td><td>[{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]</td>"
                        f"<td>{d['puzzles']}</td></tr>"
                    )
        parts.append("</table></section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_comparison_report(run_dirs: list[Path], out_dir: Path | str) -> Path:
    """The comparison page (``out_dir/index.html``, its plot) and each run's own report in
    ``out_dir/<label>/``; returns the page."""
    from factory.outputs.report import write_report

    out_dir = Path(out_dir)
    runs = runs_to_compare([Path(d) for d in run_dirs])
    curves = collect_curves(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_curves(curves).savefig(out_dir / COMPARE_PLOT, dpi=DPI)
    for label, run_dir in runs.items():
        write_report(run_dir, out_dir / label)
    differences = None
    if len(run_dirs) == 1 and is_experiment(run_dirs[0]):
        result = comparison(run_dirs[0])
        differences = {
            (arm, control): d[key]
            for arm, d in result["arms"].items()
            for control, key in CONTROLS
            if d.get(key)
        }
    index = out_dir / "index.html"
    index.write_text(render_comparison(curves, runs, differences), encoding="utf-8")
    return index
