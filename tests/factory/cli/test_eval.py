"""`factory eval`: the paper's protocol (--paper), its counts, its progress line, and a clean SIGTERM;
the P3 figure beside the paper's published ones in the report and the dataset card."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from factory.cli.evaluate import eval_config_from
from factory.cli.main import build_parser, main
from factory.loop.evaluate import EvalResult, eval_settings
from factory.loop.paper import NOT_COMPARABLE, PAPER_KS
from factory.loop.parts import HELD_OUT_FAMILIES, TASK_INSTANCES
from factory.loop.progress import EtaLine, duration
from factory.outputs.dataset_card import CardFacts, EvalFacts, card_body
from factory.outputs.report import collect_report, render_html
from factory.store import RunStore
from tests.factory.cli.test_errors import CHILD_ENV, REPO, one_line_error
from tests.factory.containers import owned_containers
from tests.factory.scripted_model import ScriptedModelServer


def parse(*argv: str):
    return build_parser().parse_args(["eval", *argv])


def test_paper_sets_the_papers_protocol_and_a_flag_given_as_well_wins():
    paper = eval_settings(eval_config_from(parse("--paper")))
    assert (paper.samples, paper.ks, paper.temperature, paper.max_new_tokens) == (100, PAPER_KS, 0.8, 150)
    assert PAPER_KS == (1, 2, 4, 8, 16, 32, 64, 100)
    fewer = eval_settings(eval_config_from(parse("--paper", "--samples", "10", "--temperature", "0.5")))
    assert (fewer.samples, fewer.ks, fewer.temperature, fewer.max_new_tokens) == (10, (1, 2, 4, 8), 0.5, 150)
    plain = eval_config_from(parse())
    assert (plain.eval_samples, plain.eval_ks, plain.temperature, plain.max_new_tokens) == (5, (1, 5), 0.7, 160)
    assert plain.eval_all_instances is False and eval_config_from(parse("--all-instances")).eval_all_instances


def test_solved_within_k_counts_puzzles_whose_first_success_is_among_their_first_k_samples():
    result = EvalResult("d", "m", 4, {1: 0.5}, {"a": 2, "b": 1, "c": 0},
                        first_verified={"a": 1, "b": 3, "c": None})
    assert [result.solved_within(k) for k in (1, 2, 3, 4)] == [1, 1, 2, 2]


def test_the_progress_line_says_how_long_is_left():
    lines: list[str] = []
    now = [100.0]
    eta = EtaLine(lines.append, every_s=10.0, clock=lambda: now[0])
    eta("generate", 0, 200)
    for done, at in ((20, 102.0), (50, 105.0), (100, 120.0), (200, 140.0)):
        now[0] = at
        eta("generate", done, 200)
    assert lines == [
        "eval generate: 200 puzzles",
        "eval generate: 20/200 puzzles, 2s elapsed, about 18s left",  # the first step: the first estimate
        # 50 at 5 s: not yet 10 s since the last line
        "eval generate: 100/200 puzzles, 20s elapsed, about 20s left",
        "eval generate: 200/200 puzzles, 40s elapsed, done",
    ]
    assert (duration(75.2), duration(3725), duration(200000)) == ("1m15s", "1h02m", "2d07h")


def test_a_paper_evaluation_on_p3_reports_pass_at_k_and_problems_solved(p3_path, scripted_model, capsys):
    code = main(["eval", "--p3", str(p3_path), "--paper", "--samples", "4", "--limit", "3", "--backend", "openai",
                 "--model", "scripted", "--base-url", scripted_model.base_url, "--sandbox", "process",
                 "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert (report["dataset"], report["puzzles"], report["samples"]) == ("p3-test", 3, 4)
    assert (report["temperature"], report["max_new_tokens"]) == (0.8, 150)
    assert list(report["pass_at_k"]) == list(report["solved_within_k"]) == ["1", "2", "4"]
    assert "eval: p3-test, 3 puzzles x 4 samples" in err and "eval generate: 3/3 puzzles" in err
    assert "eval verify: 12/12 samples" in err and "solved in <= k attempts (of 3): k=1 " in err


def test_an_evaluation_on_the_held_out_seeds_reports_each_part_and_each_puzzle(scripted_model, capsys):
    code = main(["eval", "--samples", "2", "--k", "1,2", "--limit", "20", "--backend", "openai",
                 "--model", "scripted", "--base-url", scripted_model.base_url, "--sandbox", "process",
                 "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["dataset"] == "task-test" and len(report["solved"]) == report["puzzles"] == 20
    assert set(report["pass_at_k_ci"]) == {"1", "2"}
    parts = report["parts"]
    assert set(parts) == {TASK_INSTANCES, HELD_OUT_FAMILIES}  # the first 20 hold both kinds
    assert sum(part["puzzles"] for part in parts.values()) == 20
    for part in parts.values():
        assert set(part["pass_at_k"]) == set(part["pass_at_k_ci"]) == {"1", "2"}


def endless_loop(prompt: str, seed: int, index: int) -> str:
    """A solution body that runs until the sandbox's time limit (every solve prompt ends with g's signature)."""
    return "\n    n = 0\n    while n >= 0:\n        n += 1\n    return n\n"


@pytest.mark.docker
def test_sigterm_mid_evaluation_is_one_line_exit_143_and_leaves_no_container(docker_ready):
    server = ScriptedModelServer(completion=endless_loop)  # 141 solutions of 5 s each on one worker: minutes
    command = [sys.executable, "-m", "factory.cli", "eval", "--backend", "openai", "--model", "scripted",
               "--base-url", server.base_url, "--samples", "1", "--k", "1", "--timeout", "5", "--sandbox", "docker",
               "--workers", "1"]
    process = subprocess.Popen(command, cwd=REPO, env=CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        seen: list[str] = []
        while not any(line.startswith("eval verify: 1/") for line in seen):  # a first verdict: a worker is up
            line = process.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
        assert owned_containers(process.pid) and process.poll() is None, "".join(seen)
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        server.close()
    stderr = "".join(seen) + rest
    assert code == 143, stderr
    assert "Traceback" not in stderr and one_line_error(stderr) == "factory: stopped by SIGTERM"
    assert owned_containers(process.pid) == []


def p3_evals(store: RunStore) -> None:
    for round, solved in ((0, 3), (1, 5)):
        store.record_eval(round=round, model="m", dataset="p3-test", k=1, n=100, pass_at_k=0.01, solved=solved,
                          total=228)


def test_the_report_shows_the_p3_figure_beside_the_published_ones(tmp_path):
    with RunStore.open(tmp_path / "run") as store:
        p3_evals(store)
        page = render_html(collect_report(store))
    assert "P3 beside the paper" in page and "published: GPT-Neo-125M" in page
    assert "22.2" in page and "26.9" in page and "this run, round 1" in page
    assert NOT_COMPARABLE in page.replace("&#x27;", "'")
    with RunStore.open(tmp_path / "seeds") as store:  # a run that never evaluated on P3: no comparison
        store.record_eval(round=0, model="m", dataset="seeds-test", k=1, n=5, pass_at_k=0.1, solved=2, total=9)
        assert "P3 beside the paper" not in render_html(collect_report(store))


def test_the_dataset_card_shows_the_p3_figure_beside_the_published_ones():
    facts = CardFacts(
        pretty_name="x", run_dir="r", config=None, rounds=(), num_rows=0, num_puzzles=0, rows_by_origin={},
        filters=(), dropped={},
        evals=(EvalFacts(0, "p3-test", 1, 100, 0.01, "m", 3, 228), EvalFacts(2, "p3-test", 1, 100, 0.02, "m", 7, 228)),
    )
    body = card_body(facts)
    assert "| this run, round 2 | `p3-test` | 7 of 228 | 100 |" in body
    assert "| published: GPT-Neo-125M, fine-tuned on its iteration-0 data | `p3-test` | 22.2 of 228 | as published |" in body
    assert "26.9 of 228" in body and NOT_COMPARABLE in body
    limited = card_body(CardFacts(**{**facts.__dict__, "evals": (EvalFacts(0, "p3-test", 1, 4, 0.0, "m", 0, 3),)}))
    assert "not the paper's 228 problems" in limited
