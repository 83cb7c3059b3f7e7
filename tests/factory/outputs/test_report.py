"""`factory report`: plots and a static page from a real run store, an empty one, and a round without pairs."""

from __future__ import annotations

import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from factory.cli.main import main
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
from factory.store import ProposalRow, RunStore
from puzzles.seeds import load_seeds
from tests.factory.run_fixture import build_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PAINTERS = (plot_pass_at_k, plot_funnel, plot_verdicts, plot_throughput, plot_diversity)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("run") / "run", open_round=True).run_dir


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.tables = 0
        self.open: list[str] = []
        self.title = ""
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag not in ("meta", "br"):
            self.open.append(tag)
        self.tables += tag == "table"

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] == "title":
            self.title += data
        self.text.append(data)


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.open == [], f"unclosed tags: {parser.open}"
    return parser


def texts_of(figure) -> str:
    return " ".join(t.get_text() for ax in figure.axes for t in ax.texts)


# ---------------------------------------------------------------------------------------------------


def test_report_writes_five_pngs_and_a_page_that_embeds_them(run_dir, tmp_path):
    result = write_report(run_dir, tmp_path / "report")
    assert [p.name for p in result.images] == [name for name, _ in PLOTS]
    for image in result.images:
        width, height = png_size(image)
        assert width >= 800 and height >= 400, image.name
    page = parse_page(result.index)
    assert page.images == [name for name, _ in PLOTS]
    assert all((result.out_dir / src).is_file() for src in page.images)
    assert page.tables >= 6  # one per plot and the settings
    assert page.title.startswith("Self-play report: run")
    text = " ".join(page.text)
    assert "At a glance" in text and "round 4 (unfinished) produced no pairs" in text


def test_collected_numbers_are_the_store_numbers(run_dir):
    with RunStore.open(run_dir, create=False) as store:
        report = collect_report(store, run_dir)
        assert [r.round for r in report.rounds] == [1, 2, 3, 4]
        for r in report.rounds:
            assert r.funnel == store.funnel(r.round)
            assert r.verdicts == store.verdict_counts(r.round)
            assert r.tokens == store.generated_tokens(r.round)
            assert r.timings == store.stage_timings(r.round)
        assert report.evals == tuple(store.evals())
        assert report.seed_puzzles == len(load_seeds("train"))
    one, two, three, open_round = report.rounds
    assert not open_round.finished and open_round.pairs == 0 and open_round.distinct == 0
    # The fixture run improves: more verified, pass@k up, puzzles drifting from the seeds.
    assert one.verified_share < two.verified_share < three.verified_share
    assert report.pass_at_k()[("seeds-test", 1)] == {0: 0.12, 1: 0.18, 2: 0.24, 3: 0.29}
    assert 0.0 <= one.distance_min <= one.distance_mean < three.distance_mean <= 1.0
    for r in (one, two, three):
        assert 0 < r.new <= r.distinct and r.funnel["accepted"] <= r.distinct
        assert len(r.seed_distances) == r.funnel["accepted"]
        assert r.tokens_per_second == pytest.approx(r.tokens / r.generate_seconds)
        assert r.pairs_per_second == pytest.approx(r.pairs / r.seconds)
    # Round 3 re-proposes puzzles of earlier rounds: duplicates, so not new.
    assert three.new < three.distinct


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
