"""Prometheus metrics: the published names, types and labels, values that agree with the store, pool
health from a real sandbox, and the endpoint itself over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from factory.daemon.metrics import DaemonState, MetricsServer, metrics_registry, run_families
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


class CollectorOf:
    def __init__(self, collect: Callable[[], Iterable[Metric]]):
        self.collect = collect


def text(families: Iterable[Metric]) -> str:
    """``families`` in the text format, as the endpoint renders them."""
    registry = CollectorRegistry()
    registry.register(CollectorOf(lambda: families))
    return generate_latest(registry).decode()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


# Every metric /metrics publishes: name, type and label names (dashboards and alerts depend on them).
# factory_information_gain has no sample in the played run (nothing trained), so no label shows.
PUBLISHED = """
factory_daemon_up gauge
factory_daemon_pid gauge
factory_daemon_start_time_seconds gauge
factory_daemon_state gauge state
factory_daemon_round gauge
factory_sandbox_backoff_seconds gauge
factory_sandbox_outages_total counter
factory_sandbox_workers gauge
factory_sandbox_live_workers gauge
factory_sandbox_replaced_workers_total counter
factory_sandbox_info gauge kind
factory_rounds_started gauge
factory_rounds_finished gauge
factory_pairs_verified_total counter
factory_seed_pairs gauge
factory_proposals_total counter status
factory_attempts_total counter verdict
factory_generated_tokens_total counter
factory_canaries_total counter kind outcome
factory_stage_seconds_total counter stage
factory_tokens_per_second gauge
factory_pairs_per_second gauge
factory_pass_at_k gauge dataset k round
factory_information_gain gauge
factory_last_activity_timestamp_seconds gauge
"""


def test_the_endpoint_publishes_every_metric_by_its_name_type_and_labels(run):
    state = DaemonState()
    state.update(sandbox_kind="process")
    published = {
        (family.name + ("_total" if family.type == "counter" else ""), family.type,
         tuple(sorted({label for sample in family.samples for label in sample.labels})))
        for family in text_string_to_metric_families(generate_latest(metrics_registry(run.run_dir, state)).decode())
    }
    expected = {(name, kind, tuple(labels)) for name, kind, *labels in map(str.split, PUBLISHED.strip().splitlines())}
    assert published == expected


def test_run_metrics_are_the_raw_rows_of_the_store(run, rows, tmp_path):
    values = samples(text(run_families(run.run_dir)))
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
        assert values[f'factory_pass_at_k{{dataset="{e["dataset"]}",k="{e["k"]}",round="{e["round"]}"}}'] == e["pass_at_k"]
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
        values = samples(text(state.families()))
        assert values["factory_sandbox_workers"] == 2 and values["factory_sandbox_live_workers"] >= 1
        assert values["factory_sandbox_replaced_workers_total"] == 1
        assert values['factory_daemon_state{state="running"}'] == 1 and values["factory_daemon_round"] == 2
        assert values['factory_sandbox_info{kind="process"}'] == 1
        state.retire_sandbox()  # closed after an outage: its replacements still count
    values = samples(text(state.families()))
    assert values["factory_sandbox_replaced_workers_total"] == 1 and values["factory_sandbox_workers"] == 0


def test_the_endpoint_serves_metrics_on_localhost_only(run):
    state = DaemonState()
    state.update(phase="waiting_for_sandbox", backoff_seconds=8.0, outages=1)
    with MetricsServer(metrics_registry(run.run_dir, state), port=0) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        status, content_type, body = get(server.url)
        assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8"
        values = samples(body)
        assert values["factory_rounds_finished"] == 2 and values["factory_daemon_up"] == 1
        assert values['factory_daemon_state{state="waiting_for_sandbox"}'] == 1
        assert values["factory_sandbox_backoff_seconds"] == 8 and values["factory_sandbox_outages_total"] == 1
        assert get(f"http://127.0.0.1:{server.port}/other")[0] == 404
        with pytest.raises(UserError, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
            MetricsServer(CollectorRegistry(), port=server.port)  # the port is taken
    with pytest.raises(OSError):
        get(server.url)


def test_a_failing_scrape_answers_500_and_the_server_lives_on():
    calls = []

    def collect_once_broken() -> list[Metric]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("store locked")
        return [GaugeMetricFamily("factory_up", "Up.", 1)]

    registry = CollectorRegistry()
    registry.register(CollectorOf(collect_once_broken))
    messages = []
    with MetricsServer(registry, port=0, log=messages.append) as server:
        status, _, body = get(server.url)
        assert status == 500 and "store locked" in body
        status, _, body = get(server.url)
        assert status == 200 and samples(body) == {"factory_up": 1}
    assert messages == ["metrics scrape failed: RuntimeError: store locked"]


def test_a_run_with_token_prices_publishes_what_its_tokens_cost(run, rows, tmp_path):
    from tests.factory.played_run import copy_run, with_settings

    priced = with_settings(copy_run(run, tmp_path / "run"), price_per_mtok="1000,2000")
    generating = [b for b in rows.batches if b["stage"] in ("propose", "solve")]
    prompt, completion = sum(b["prompt_tokens"] or 0 for b in generating), sum(b["tokens"] for b in generating)
    assert completion > 0
    cost = samples(text(run_families(priced)))["factory_token_cost"]
    assert cost == pytest.approx((prompt * 1000 + completion * 2000) / 1e6)
    assert "factory_token_cost" not in samples(text(run_families(run.run_dir)))  # no prices: no cost
