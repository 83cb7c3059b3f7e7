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
from factory.store import RunStore
from sandbox.backend import open_sandbox
from sandbox.verdicts import Job
from tests.factory.run_fixture import build_run


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


def test_run_metrics_agree_with_the_store(tmp_path):
    run = build_run(tmp_path / "run", rounds=3, open_round=True)
    values = samples(render(run_families(run.run_dir)))
    with RunStore.open(run.run_dir) as store:
        rounds = [r.round for r in store.rounds() if r.round > 0]
        verdicts = {}
        for r in rounds:
            for verdict, n in store.verdict_counts(r).items():
                verdicts[verdict] = verdicts.get(verdict, 0) + n
        pairs = sum(store.funnel(r)["pairs"] for r in rounds)
        tokens = sum(store.generated_tokens(r) for r in rounds)
        evals = store.evals()
        accepted = sum(store.funnel(r)["accepted"] for r in rounds)
    assert values["factory_rounds_started"] == 4 and values["factory_rounds_finished"] == 3
    assert values["factory_pairs_verified_total"] == pairs > 0
    assert values["factory_seed_pairs"] > 0
    assert values['factory_proposals_total{status="accepted"}'] == accepted
    for verdict, n in verdicts.items():
        assert values[f'factory_attempts_total{{verdict="{verdict}"}}'] == n
    assert values["factory_generated_tokens_total"] == tokens
    assert values['factory_stage_seconds_total{stage="train"}'] == pytest.approx(95 * 3 + 10 * 6)
    generate = sum(v for k, v in values.items() if k.startswith("factory_stage_seconds_total") and 'generate"' in k)
    assert values["factory_tokens_per_second"] == pytest.approx(tokens / generate)
    assert values["factory_pairs_per_second"] > 0
    for e in evals:
        assert values[f'factory_pass_at_k{{round="{e.round}",dataset="{e.dataset}",k="{e.k}"}}'] == pytest.approx(e.pass_at_k)
    assert values["factory_last_activity_timestamp_seconds"] > 0
    assert run_families(tmp_path / "nothing-here") == []


def test_the_status_summarises_a_run_that_no_daemon_ran(tmp_path):
    run = build_run(tmp_path / "run", rounds=2, open_round=True)
    status = read_status(run.run_dir)
    assert status.running is False and status.holder is None
    assert [r.round for r in status.rounds] == [0, 1, 2, 3]
    text = format_status(status)
    assert "state: not running (no daemon has worked on it" in text
    assert "model: tiny-base (transformers), seed 0, 24 puzzles x 6 attempts per round" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("round "))
    assert header.split() == ["round", "state", "proposed", "accepted", "attempts", "verified", "pairs", "pass@1", "pass@10", "time"]
    base, first, second, open_round = lines[lines.index(header) + 1 :]
    assert base.split()[:2] == ["0", "base"] and first.split()[:3] == ["1", "finished", "24"]
    assert open_round.split()[:2] == ["3", "unfinished"]
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


def test_the_endpoint_serves_metrics_on_localhost_only(tmp_path):
    run = build_run(tmp_path / "run", rounds=1)
    state = DaemonState()
    state.update(phase="waiting_for_sandbox", backoff_seconds=8.0, outages=1)
    with MetricsServer(lambda: collect(run.run_dir, state), port=0) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        status, content_type, body = get(server.url)
        assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8"
        values = samples(body)
        assert values["factory_rounds_finished"] == 1 and values["factory_daemon_up"] == 1
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
