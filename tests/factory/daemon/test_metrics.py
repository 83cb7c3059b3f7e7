"""Prometheus metrics: the text format, values that agree with the store, pool health from a real
sandbox, and the endpoint itself over real HTTP on 127.0.0.1."""

from __future__ import annotations

import math
import os
import signal
import urllib.error
import urllib.request

import pytest

from factory.daemon.metrics import DaemonState, MetricFamily, MetricsServer, collect, render, run_families
from factory.errors import UserError
from factory.outputs.status import format_status, read_status
from factory.store import PROPOSAL_STATUSES
from sandbox.backend import open_sandbox
from sandbox.verdicts import ALL_VERDICTS, Job
from tests.factory.played_run import StoreRows


def latest_timestamp(rows: StoreRows) -> float:
    stamps = [b["finished_at"] for b in rows.batches] + [e["created_at"] for e in rows.evals]
    stamps += [r["started_at"] for r in rows.rounds] + [r["finished_at"] for r in rows.rounds if r["finished_at"]]
    return max(stamps)


def samples(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_the_text_format_escapes_labels_and_writes_help_and_type_once():
    text = render([
        MetricFamily.of("factory_x_total", "counter", 'Things\\n "counted".\nSecond line.', 3),
        MetricFamily.of("factory_y", "gauge", "Labelled.", labelled=[({"path": 'a"b\\c\nd'}, 0.25), ({"k": 1}, math.nan)]),
        MetricFamily.of("factory_empty", "gauge", "No samples yet."),
    ])
    assert text == (
        '# HELP factory_x_total Things\\\\n "counted".\\nSecond line.\n'
        "# TYPE factory_x_total counter\n"
        "factory_x_total 3\n"
        "# HELP factory_y Labelled.\n"
        "# TYPE factory_y gauge\n"
        'factory_y{path="a\\"b\\\\c\\nd"} 0.25\n'
        'factory_y{k="1"} NaN\n'
        "# HELP factory_empty No samples yet.\n"
        "# TYPE factory_empty gauge\n"
    )


def test_run_metrics_are_the_raw_rows_of_the_store(run, rows, tmp_path):
    values = samples(render(run_families(run.run_dir)))
    played = [r["round"] for r in rows.rounds if r["round"] > 0]
    assert values["factory_rounds_started"] == len(played) == 3
    assert values["factory_rounds_finished"] == sum(1 for r in rows.rounds if r["finished_at"]) == 2
    assert values["factory_pairs_verified_total"] == rows.generated_pairs() > 0
    assert values["factory_seed_pairs"] == len(rows.of("pairs", 0))
    for status in PROPOSAL_STATUSES:
        n = sum(rows.proposal_counts(r)[status] for r in played)
        assert values[f'factory_proposals_total{{status="{status}"}}'] == n
    for verdict in ALL_VERDICTS:
        n = sum(rows.verdict_counts(r)[verdict] for r in played)
        assert values[f'factory_attempts_total{{verdict="{verdict}"}}'] == n
    tokens = sum(rows.tokens(r) for r in played)
    assert values["factory_generated_tokens_total"] == tokens
    steps: dict[str, float] = {}
    for r in played:
        for step, seconds in rows.timings(r).items():
            steps[step] = steps.get(step, 0.0) + seconds
    stage_samples = {k: v for k, v in values.items() if k.startswith("factory_stage_seconds_total")}
    assert stage_samples == pytest.approx({f'factory_stage_seconds_total{{stage="{k}"}}': v for k, v in steps.items()}, abs=1e-6)
    generate = sum(v for k, v in steps.items() if k.endswith(".generate"))
    work = sum(v for k, v in steps.items() if not k.startswith("eval."))
    assert values["factory_tokens_per_second"] == pytest.approx(tokens / generate)
    assert values["factory_pairs_per_second"] == pytest.approx(rows.generated_pairs() / work)
    for e in rows.evals:
        assert values[f'factory_pass_at_k{{round="{e["round"]}",dataset="{e["dataset"]}",k="{e["k"]}"}}'] == e["pass_at_k"]
    assert sum(1 for k in values if k.startswith("factory_pass_at_k")) == len(rows.evals)
    assert values["factory_last_activity_timestamp_seconds"] == latest_timestamp(rows)
    assert run_families(tmp_path / "nothing-here") == []


def test_the_status_summarises_a_run_that_no_daemon_ran(run, rows, tmp_path):
    status = read_status(run.run_dir)
    assert status.running is False and status.holder is None
    assert [r.round for r in status.rounds] == [0, 1, 2, run.open_round]
    assert status.generated_pairs == rows.generated_pairs() and status.seed_pairs == len(rows.of("pairs", 0))
    assert status.last_activity is not None and status.last_activity.at == latest_timestamp(rows)
    for r in status.rounds[1:]:
        assert {k: v for k, v in r.funnel.items() if v} == {k: v for k, v in rows.funnel(r.round).items() if v}
        assert r.pass_at_k == rows.pass_at_k(r.round)
    text = format_status(status)
    assert "state: not running (no daemon has worked on it" in text
    c = rows.config
    assert f"model: scripted (openai), seed {c['seed']}, {c['puzzles']} puzzles x {c['attempts']} attempts per round" in text
    assert f"rounds finished: 2; pairs: {rows.generated_pairs()} generated, {len(rows.of('pairs', 0))} seed references" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("round "))
    assert header.split() == ["round", "state", "proposed", "accepted", "attempts", "verified", "pairs", "pass@1", "pass@2", "time"]
    base, *played = lines[lines.index(header) + 1 :]
    assert base.split()[:2] == ["0", "base"]
    assert [line.split()[0] for line in played] == ["1", "2", str(run.open_round)]
    for line in played:
        cells = line.split()
        funnel = rows.funnel(int(cells[0]))
        counts = [funnel["proposed"], funnel.get("accepted", 0), funnel["attempts"], funnel.get("attempts_verified", 0), funnel["pairs"]]
        assert cells[2:7] == [str(n) for n in counts]
    assert played[0].split()[1] == "finished" and played[-1].split()[1] == "unfinished"
    assert played[-1].split()[7:] == ["-", "-", "-"]  # no pass@k and no time for the open round
    with pytest.raises(UserError, match="holds no run"):
        read_status(tmp_path / "empty")


def test_pool_health_counts_workers_and_replaced_ones(tmp_path):
    state = DaemonState()
    with open_sandbox("process", workers=2, log=lambda m: None) as sandbox:
        state.update(sandbox=sandbox, sandbox_kind=sandbox.kind, phase="running", round=2)
        job = Job(id=0, f_source="def f(x: int):\n    return x == 3\n", f_name="f", answer_type="int",
                  g_source="def g():\n    return 3\n", g_name="g", timeout_s=2.0)
        assert sandbox.run([job])[0].status == "verified"
        link = next(link for link in sandbox.pool.links if link is not None)
        os.killpg(link.process.pid, signal.SIGKILL)  # the worker dies between runs: it is replaced
        link.process.wait(timeout=10)
        assert [r.status for r in sandbox.run([job, job])] == ["verified", "verified"]
        values = samples(render(state.families()))
        assert values["factory_sandbox_workers"] == 2 and values["factory_sandbox_live_workers"] >= 1
        assert values["factory_sandbox_replaced_workers_total"] == 1
        assert values['factory_daemon_state{state="running"}'] == 1 and values["factory_daemon_round"] == 2
        assert values['factory_sandbox_info{kind="process"}'] == 1
        state.retire_sandbox()  # closed after an outage: its replacements still count
    values = samples(render(state.families()))
    assert values["factory_sandbox_replaced_workers_total"] == 1 and values["factory_sandbox_workers"] == 0


def test_the_endpoint_serves_metrics_on_localhost_only(run):
    state = DaemonState()
    state.update(phase="waiting_for_sandbox", backoff_seconds=8.0, outages=1)
    with MetricsServer(lambda: collect(run.run_dir, state), port=0) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        status, content_type, body = get(server.url)
        assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8"
        values = samples(body)
        assert values["factory_rounds_finished"] == 2 and values["factory_daemon_up"] == 1
        assert values['factory_daemon_state{state="waiting_for_sandbox"}'] == 1
        assert values["factory_sandbox_backoff_seconds"] == 8 and values["factory_sandbox_outages_total"] == 1
        assert get(f"http://127.0.0.1:{server.port}/other")[0] == 404
        with pytest.raises(UserError, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
            MetricsServer(lambda: "", port=server.port)  # the port is taken
    with pytest.raises(OSError):
        get(server.url)


def test_a_failing_scrape_answers_500_and_the_server_lives_on():
    calls = []

    def collect_once_broken() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("store locked")
        return "factory_up 1\n"

    messages = []
    with MetricsServer(collect_once_broken, port=0, log=messages.append) as server:
        status, _, body = get(server.url)
        assert status == 500 and "store locked" in body
        assert get(server.url)[:3:2] == (200, "factory_up 1\n")
    assert messages == ["metrics scrape failed: RuntimeError: store locked"]
