"""`factory report`: plots and a static page from the store of a real run, an empty one, and a round
without pairs."""

from __future__ import annotations

import json
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from factory.cli.main import main
from factory.errors import UserError
from factory.outputs.report import (
    PLOTS,
    SeedDistance,
    collect_report,
    plot_diversity,
    plot_funnel,
    plot_pass_at_k,
    plot_throughput,
    plot_verdicts,
    render_html,
    write_report,
)
from factory.outputs.report.html import _diversity_table, _fmt
from factory.outputs.report.plots import STATUS_COLORS
from factory.store import PROPOSAL_STATUSES, ProposalRow, RunStore
from puzzles.canonical import canonical_hash, near_duplicate_tokens, similarity
from puzzles.parse import parse_puzzle
from puzzles.records import InvalidProgram
from puzzles.seeds import load_seeds, load_task_seeds
from sandbox.verdicts import ALL_VERDICTS
from tests.factory.played_run import StoreRows, copy_run, expected_novelty, with_settings, without_zeros

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PAINTERS = (plot_pass_at_k, plot_funnel, plot_verdicts, plot_throughput, plot_diversity)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.tables: list[list[list[str]]] = []  # every table: its rows of cell texts, header first
        self.open: list[str] = []
        self.title = ""
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag not in ("meta", "br"):
            self.open.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] == "title":
            self.title += data
        if self.open and self.open[-1] in ("td", "th"):
            self.tables[-1][-1][-1] += data
        self.text.append(data)

    def table(self, *head: str) -> list[list[str]]:
        """The rows of the table whose header starts with ``head``."""
        (rows,) = [t[1:] for t in self.tables if t and t[0][: len(head)] == list(head)]
        return rows


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.open == [], f"unclosed tags: {parser.open}"
    return parser


def texts_of(figure) -> str:
    return " ".join(t.get_text() for ax in figure.axes for t in ax.texts)


def produced_hashes(rows: StoreRows, round: int) -> set[str]:
    """Canonical hashes of the round's proposals that parse as puzzles and are not invalid."""
    hashes = set()
    for p in rows.of("proposals", round):
        if p["status"] == "invalid":
            continue
        try:
            hashes.add(canonical_hash(parse_puzzle(p["raw"]).source))
        except InvalidProgram:
            pass
    return hashes


# ---------------------------------------------------------------------------------------------------


def test_report_writes_five_pngs_and_a_page_that_embeds_them(run, run_dir, rows, tmp_path):
    result = write_report(run_dir, tmp_path / "report")
    assert [p.name for p in result.images] == [name for name, _ in PLOTS]
    for image in result.images:
        width, height = png_size(image)
        assert width >= 800 and height >= 400, image.name
    page = parse_page(result.index)
    assert page.images == [name for name, _ in PLOTS]
    assert all((result.out_dir / src).is_file() for src in page.images)
    assert len(page.tables) >= 6  # one per plot and the settings
    assert page.title.startswith("Self-play report: run")
    text = " ".join(page.text)
    assert "At a glance" in text and f"round {run.open_round} (unfinished) produced no pairs" in text
    # the tables under the plots hold the store's numbers
    funnel = page.table("round", "model", "proposed", *PROPOSAL_STATUSES)
    assert [cells[0] for cells in funnel] == ["1", "2", f"{run.open_round} (unfinished)"]
    for r, cells in zip((1, 2, run.open_round), funnel, strict=True):
        counts = rows.funnel(r)
        model = rows.of("rounds", r)[0]["model"]
        expected = [model, counts["proposed"], *(counts.get(s, 0) for s in PROPOSAL_STATUSES)]
        expected += [counts["solved_puzzles"], counts["pairs"]]
        assert cells[1:] == [str(v) for v in expected]
    verdicts = page.table("round", "attempts", *ALL_VERDICTS)
    for r, cells in zip((1, 2, run.open_round), verdicts, strict=True):
        counts = rows.verdict_counts(r)
        assert cells[1 : 2 + len(ALL_VERDICTS)] == [str(sum(counts.values())), *(str(counts[v]) for v in ALL_VERDICTS)]
    series = sorted({(e["dataset"], e["k"]) for e in rows.evals})
    passes = page.table("round", *(f"{d} pass@{k}" for d, k in series))
    assert [cells[0] for cells in passes] == ["0 (base)", "1", "2"]
    for r, cells in zip((0, 1, 2), passes, strict=True):
        values = [rows.pass_at_k(r)[k] for _, k in series]
        # the whole set's columns first, then one per part of it (factory.loop.parts)
        assert cells[1 : 1 + len(series)] == [f"{v:.3f}" if v < 1 else "1.0" for v in values]
    settings = dict(page.table("setting", "value"))
    assert settings["model"] == rows.config["model"] and settings["attempts"] == str(rows.config["attempts"])


def test_collected_numbers_are_the_store_numbers(run, run_dir, rows):
    with RunStore.open(run_dir, create=False) as store:
        report = collect_report(store, run_dir)
    assert [r.round for r in report.rounds] == [row["round"] for row in rows.rounds] == [1, 2, run.open_round]
    seeds = load_task_seeds("train")
    seed_tokens = [near_duplicate_tokens(s.puzzle.source) for s in seeds]
    known = {canonical_hash(s.puzzle.source) for s in seeds}
    for r, row in zip(report.rounds, rows.rounds, strict=True):
        n = r.round
        assert r.model == row["model"] and r.finished == (row["finished_at"] is not None)
        assert without_zeros(r.funnel) == without_zeros(rows.funnel(n))
        assert without_zeros(r.verdicts) == dict(rows.verdict_counts(n))
        assert r.tokens == rows.tokens(n) and r.timings == pytest.approx(rows.timings(n))
        if r.finished:
            assert r.seconds == json.loads(row["summary_json"])["seconds"]
        else:  # no summary yet: the seconds of its stored steps
            assert r.seconds == pytest.approx(sum(rows.timings(n).values()))
        assert r.pairs_per_second == pytest.approx(len(rows.of("pairs", n)) / r.seconds)
        assert r.tokens_per_second == pytest.approx(rows.tokens(n) / rows.generate_seconds(n))
        produced = produced_hashes(rows, n)
        assert r.distinct == len(produced) and r.new == len(produced - known)
        known |= produced
        accepted = [p for p in rows.of("puzzles", n) if p["origin"] == "generated"]
        distances = sorted(1 - max(similarity(near_duplicate_tokens(p["source"]), t) for t in seed_tokens) for p in accepted)
        assert sorted(r.seed_distances) == pytest.approx(distances)
        attempts = len(rows.of("attempts", n))
        assert r.verified_share == (rows.verdict_counts(n)["verified"] / attempts if attempts else None)
    assert [(e.round, e.dataset, e.k, e.pass_at_k) for e in report.evals] == sorted(
        (e["round"], e["dataset"], e["k"], e["pass_at_k"]) for e in rows.evals
    )
    assert report.seed_puzzles == len(seeds) and report.seed_pairs == len(rows.of("pairs", 0))
    assert report.config == rows.config
    open_round = report.rounds[-1]
    assert not open_round.finished and open_round.pairs == 0 and open_round.attempts == 0
    assert open_round.verified_share is None and open_round.distinct > 0
    assert all(r.information_gain is None for r in report.rounds)  # the played run does not fine-tune
    untrained = "no data: no round fine-tuned on new pairs"
    for paint in PAINTERS:  # every plot of a run with rounds, pairs and pass@k has data to show
        assert "no data" not in texts_of(paint(report)).replace(untrained, ""), paint.__name__


def test_the_diversity_table_shows_each_round_mean_pair_weight(run, rows, tmp_path):
    novelty = expected_novelty(rows)
    run_dir = with_settings(copy_run(run, tmp_path / "run"), weighting="novelty")
    with RunStore.open(run_dir, create=False) as store:
        report = collect_report(store, run_dir)
    with RunStore.open(run.run_dir, create=False) as store:
        unweighted = collect_report(store, run.run_dir)
    for r, plain in zip(report.rounds, unweighted.rounds, strict=True):
        weights = [novelty[p["puzzle_id"]] for p in rows.of("pairs", r.round)]
        assert r.weight_mean == (pytest.approx(sum(weights) / len(weights)) if weights else None)
        assert plain.weight_mean == (1.0 if weights else None)
    assert {r.weight_mean for r in report.rounds if r.weight_mean is not None} - {1.0}
    table = _diversity_table(report)
    assert ">mean weight</th>" in table
    assert f">{_fmt(report.rounds[0].weight_mean)}</td>" in table


def test_every_proposal_status_has_a_color():
    assert set(STATUS_COLORS) == set(PROPOSAL_STATUSES)


def test_seed_distance_is_zero_for_a_seed_and_large_for_something_else():
    seeds = [s.puzzle.source for s in load_seeds("train")[:50]]
    distance = SeedDistance(seeds)
    assert distance(seeds[7]) == 0.0
    assert distance("def f(x: int) -> bool:\n    return x * x == 1764 and x > 0\n") > 0.5
    assert SeedDistance([])(seeds[0]) == 1.0


def test_report_on_an_empty_run_says_no_data(tmp_path):
    RunStore.open(tmp_path / "empty").close()
    result = write_report(tmp_path / "empty", tmp_path / "report")
    for image in result.images:
        png_size(image)
    page = parse_page(result.index)
    assert "no rounds and no evaluations yet" in " ".join(page.text)
    with RunStore.open(tmp_path / "empty", create=False) as store:
        report = collect_report(store)
    for paint in PAINTERS:
        assert "no data" in texts_of(paint(report)), paint.__name__


def test_report_on_a_round_with_zero_pairs(tmp_path):
    with RunStore.open(tmp_path / "run") as store:
        store.start_round(1, "m")
        rows = [
            ProposalRow(i, f"def f(x: int) -> bool\n    return x == {i}\n", "invalid", "syntax")
            for i in range(5)
        ]
        store.record_proposals(
            1, 0, rows, timings={"propose.generate": 3.0, "propose.filter": 0.1}, tokens=400
        )
        report = collect_report(store)
    (only,) = report.rounds
    assert only.pairs == 0 and only.attempts == 0 and only.distinct == 0 and only.verified_share is None
    assert "no data" not in texts_of(plot_funnel(report))  # five invalid proposals are data
    assert "no data" in texts_of(plot_verdicts(report))
    assert "no data" in texts_of(plot_diversity(report))
    assert "no data" in texts_of(plot_pass_at_k(report))
    stages_panel = plot_throughput(report).axes[0]
    assert "no data" not in " ".join(t.get_text() for t in stages_panel.texts)  # its seconds are data
    html = render_html(report)
    assert "round 1 (unfinished) produced no pairs" in html
    result = write_report(tmp_path / "run", tmp_path / "report")
    parse_page(result.index)


def test_cli_report(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "index.html")
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("factory: ") and err.count("\n") == 1
    (tmp_path / "file").write_text("x")
    assert main(["report", str(run_dir), "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"factory: --out {tmp_path / 'file'} is a file: give a directory\n"
    with pytest.raises(UserError, match="is a file") as error:
        write_report(run_dir, tmp_path / "file")
    assert "--" not in str(error.value)
