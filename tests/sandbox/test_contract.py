"""The sandbox's wire contract: the worker (one stdlib-only file) and the host spell it separately;
these tests tie the two sides (verdict names, the keys of a recheck and of the answer's digest, limit
defaults, size limits)."""

from __future__ import annotations

import ast
import json
from dataclasses import fields, replace

from puzzles import source
from sandbox import links, verdicts, worker
from sandbox.image import WORKER_PATH

WORKER_VERDICTS = ("VERIFIED", "WRONG", "ERROR", "TIMEOUT", "MEMORY", "OUTPUT", "CRASHED")


def test_the_worker_spells_every_verdict_as_the_host_does():
    assert {name: getattr(worker, name) for name in WORKER_VERDICTS} == {
        name: getattr(verdicts, name) for name in WORKER_VERDICTS
    }
    # the host decides these two alone: a pair that never ran, a verified pair whose second run disagreed
    assert set(verdicts.ALL_VERDICTS) - {getattr(worker, n) for n in WORKER_VERDICTS} == {
        verdicts.INVALID,
        verdicts.FLAKY,
    }


def test_the_recheck_and_the_answer_digest_have_the_same_keys_on_both_sides():
    job = verdicts.Job(id=1, f_source="", f_name="f", answer_type="int", answer_json="1")
    assert worker.RECHECK not in job.to_wire()
    assert replace(job, recheck=True).to_wire()[worker.RECHECK] is True
    assert worker.ANSWER_DIGEST in {field.name for field in fields(verdicts.Result)}
    assert len(worker.answer_digest(b"[1]")) == len(worker.answer_digest(b"")) == 32


def test_the_worker_names_verdicts_only_in_its_contract_block():
    tree = ast.parse(WORKER_PATH.read_text())
    literals = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in verdicts.ALL_VERDICTS
    ]
    assert len(set(literals)) == 1, f"verdict literals outside the contract block, lines {sorted(literals)}"


def test_the_hosts_limits_and_the_workers_defaults_agree(tmp_path):
    host = links.WorkerLimits()
    assert (host.job_memory_mb, host.output_bytes, host.answer_bytes) == (
        worker.DEFAULT_MEMORY_MB,
        worker.DEFAULT_OUTPUT_BYTES,
        worker.DEFAULT_ANSWER_BYTES,
    )
    limits, _ = worker.parse_args([*host.worker_args(), f"--scratch={tmp_path}"])
    assert (limits.memory_bytes, limits.output_bytes, limits.answer_bytes) == (
        host.job_memory_mb * 2**20,
        host.output_bytes,
        host.answer_bytes,
    )


def test_what_the_host_accepts_the_worker_accepts():
    assert source.MAX_SOURCE_CHARS <= worker.MAX_SOURCE_CHARS
    assert source.MAX_INT_DIGITS <= worker.MAX_INT_DIGITS


def test_the_largest_reply_fits_the_hosts_line_cap():
    reply = {
        "id": 2**63,
        "status": verdicts.CRASHED,
        "seconds": 1e300,
        "detail": "\U0010ffff" * worker.MAX_DETAIL_CHARS,
        "retire": "\U0010ffff" * 300,
        worker.ANSWER_DIGEST: worker.answer_digest(b""),
    }
    assert len(json.dumps(reply).encode()) + 1 <= links.MAX_LINE_BYTES
