"""A static report of a run: PNG plots and one HTML page, derived from the store alone.

``collect_report(store)`` (``collect``) reads everything the page shows into plain records (no
plotting, easy to test); ``write_report(run_dir, out_dir)`` draws the plots (``plots``: matplotlib,
Agg, no display needed) and writes ``index.html`` (``html``) beside them. The page answers: does the
loop make the model better (pass@k by round, round 0 = base model), where do proposals go (the
filter funnel), how do sampled solutions fail (verdict mix), where does the time go (seconds per
stage, tokens/s, pairs/s), and is the model still inventing new puzzles or collapsing onto a few
(distinct and new canonical forms per round, and how far new puzzles are from the seeds, measured on
at most ``DISTANCE_SAMPLE`` accepted puzzles a round: ``distances``). The store is read a chunk or a
round at a time, so a report of a million puzzles needs no more memory than one of a thousand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from factory.errors import UserError
from factory.outputs.export import open_run
from factory.outputs.report.collect import (
    DISTANCE_SAMPLE,
    RoundReport,
    RunReport,
    SeedDistance,
    collect_report,
)
from factory.outputs.report.html import render_html
from factory.outputs.report.plots import (
    DPI,
    PAINTERS,
    PLOTS,
    plot_diversity,
    plot_funnel,
    plot_pass_at_k,
    plot_throughput,
    plot_verdicts,
)

__all__ = [
    "DISTANCE_SAMPLE",
    "PLOTS",
    "ReportResult",
    "RoundReport",
    "RunReport",
    "SeedDistance",
    "collect_report",
    "plot_diversity",
    "plot_funnel",
    "plot_pass_at_k",
    "plot_throughput",
    "plot_verdicts",
    "render_html",
    "write_report",
]


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    index: Path
    images: tuple[Path, ...]


def write_report(run_dir: Path | str, out_dir: Path | str) -> ReportResult:
    """Draw the plots and write ``out_dir/index.html``; returns the files written."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} is a file: the report needs a directory")
    with open_run(run_dir) as store:
        report = collect_report(store, run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for name, _ in PLOTS:
        path = out_dir / name
        PAINTERS[name](report).savefig(path, dpi=DPI)
        images.append(path)
    index = out_dir / "index.html"
    index.write_text(render_html(report), encoding="utf-8")
    return ReportResult(out_dir, index, tuple(images))
