"""The report's page: ``index.html`` with the plots, a table of the numbers under each, and the settings."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from factory.outputs.paper_reference import p3_note, p3_rows
from factory.outputs.report.collect import RoundReport, RunReport, step_order
from factory.outputs.report.plots import PLOTS, number_text
from factory.outputs.status import puzzle_set_line
from factory.store import ACCEPTED, PROPOSAL_STATUSES
from sandbox.verdicts import ALL_VERDICTS

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
        "pass_at_k.png": _pass_table(report) + _p3_table(report),
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
        "verdicts.png": "Every sampled solution's sandbox verdict. A growing green share: the solver gets better on its own puzzles. Canaries: known cheats and good pairs verified with every solve batch (any flip stops the round).",
        "throughput.png": "Seconds per stage summed over the round's batches; tokens/s over generation time; pairs/s over the round's wall time.",
        "diversity.png": "Distinct canonical forms among parsable proposals, the share no earlier round or seed had, and how far "
        "accepted puzzles are from the nearest seed (on at most 1,000 accepted puzzles a round, a seeded sample). Falling share or distance near 0: the model is collapsing onto what it has seen. "
        "Information gain: the base model's mean loss per token on the round's new verified pairs minus on as many seed pairs; "
        "above 0 the round's data tells the model something its seeds do not.",
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
        return number_text(value) if value >= 1 else f"{value:.3f}"
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


def _p3_table(report: RunReport) -> str:
    """This run's P3 figure beside the paper's published ones (nothing when it never evaluated on P3)."""
    rows = p3_rows(report.evals)
    if not rows:
        return ""
    cells = [[r.who, r.dataset, r.solved, r.total, "as published" if r.samples is None else r.samples] for r in rows]
    return (
        "<h3>P3 beside the paper</h3>"
        + _table(["who", "set", "problems solved", "of", "samples per problem"], cells, left=2)
        + f'<p class="sub">{html.escape(p3_note(rows))}</p>'
    )


Column = tuple[str, Callable[[RoundReport], object]]  # a per-round table's header and its cell of a round


def _round_table(report: RunReport, columns: Sequence[Column], left: int = 1) -> str:
    """One row per round: its label, then each column's cell."""
    head = ["round", *(name for name, _ in columns)]
    return _table(head, [[_round_label(r), *(cell(r) for _, cell in columns)] for r in report.rounds], left=left)


def _funnel_table(report: RunReport) -> str:
    stages = ["proposed", *PROPOSAL_STATUSES]
    return _round_table(
        report,
        [
            ("model", lambda r: r.model),
            *((s, lambda r, s=s: r.funnel.get(s, 0)) for s in stages),
            ("solved puzzles", lambda r: r.funnel.get("solved_puzzles", 0)),
            ("pairs", lambda r: r.pairs),
        ],
        left=2,
    )


def _verdict_table(report: RunReport) -> str:
    def canaries(r: RoundReport):
        return r.stats.canaries

    return _round_table(
        report,
        [
            ("attempts", lambda r: r.attempts),
            *((v, lambda r, v=v: r.verdicts.get(v, 0)) for v in ALL_VERDICTS),
            ("verified share", lambda r: r.verified_share),
            ("canary cheats passed", lambda r: f"{canaries(r).cheats_passed} of {canaries(r).cheats}"),
            ("canary good failed", lambda r: f"{canaries(r).good_failed} of {canaries(r).good}"),
        ],
    )


def _throughput_table(report: RunReport) -> str:
    keys = sorted({k for r in report.rounds for k in r.timings}, key=step_order)
    return _round_table(
        report,
        [
            *((f"{k} (s)", lambda r, k=k: r.timings.get(k)) for k in keys),
            ("round (s)", lambda r: r.seconds),
            ("tokens", lambda r: r.tokens),
            ("tokens/s", lambda r: r.tokens_per_second),
            ("pairs/s", lambda r: r.pairs_per_second),
        ],
    )


def _diversity_table(report: RunReport) -> str:
    return _round_table(
        report,
        [
            ("distinct proposed", lambda r: r.distinct),
            ("new", lambda r: r.new),
            ("new share", lambda r: r.new_share),
            ("accepted", lambda r: r.funnel.get(ACCEPTED, 0)),
            ("mean distance from seeds", lambda r: r.distance_mean),
            ("min distance", lambda r: r.distance_min),
            ("information gain", lambda r: r.information_gain),
            ("mean weight", lambda r: r.weight_mean),
        ],
    )


def _config_table(report: RunReport) -> str:
    if not report.config:
        return '<section id="config"><h2>Settings</h2><p class="sub">The store holds no run configuration.</p></section>'
    rows = [[key, "(default)" if value is None else value] for key, value in sorted(report.config.items())]
    sets = "".join(
        f'<p class="sub">{what}: {html.escape(puzzle_set_line(report.puzzle_sets[key]))}</p>'
        for key, what in (("seed_set", "seeds"), ("eval_set", "evaluation set")) if key in report.puzzle_sets
    )
    return (
        '<section id="config"><h2>Settings</h2>' + sets + '<details open><summary>the run configuration</summary>'
        + _table(["setting", "value"], rows, left=2)
        + "</details></section>"
    )
