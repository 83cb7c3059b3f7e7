"""Canary pairs ride with every solve batch: a verifier that starts accepting everything stops the round."""

from __future__ import annotations

import pytest

from factory.config import RunConfig
from sandbox.backend import open_sandbox


@pytest.fixture(scope="module")
def process_sandbox():
    with open_sandbox("process", workers=2, log=lambda m: None) as box:
        yield box


class AcceptsEverySolution:
    """A broken verifier: the real sandbox's verdicts, except that every solution job comes back verified
    (probe jobs, which carry an answer and no g, keep their real verdicts)."""

    def __init__(self, sandbox):
        self.sandbox = sandbox

    def run(self, jobs, on_result=None):
        from sandbox.verdicts import VERIFIED, Result

        results = self.sandbox.run(jobs)
        return [Result(VERIFIED) if job.g_source is not None else r for job, r in zip(jobs, results, strict=True)]


def test_a_verifier_that_accepts_everything_is_stopped_by_the_canaries(tmp_path, process_sandbox, scripted_model):
    from factory.errors import VerifierError
    from factory.loop.context import prepare_run
    from factory.loop.rounds import run_round
    from factory.store import RunStore

    config = RunConfig(model="scripted", backend="openai", base_url=scripted_model.base_url, train=False,
                       puzzles=4, attempts=2, batch_size=2, propose_examples=2, eval_samples=1, eval_ks=(1,))
    broken = AcceptsEverySolution(process_sandbox)
    with prepare_run(tmp_path, config, broken, log=lambda m: None, show_progress=False) as ctx:
        with pytest.raises(VerifierError, match="canary .* passed"):
            run_round(ctx, 1)
    with RunStore.open(tmp_path, create=False) as store:
        assert store.attempts_of_round(1) == []  # nothing of the batch was stored
        assert not store.is_batch_done(1, "solve", 0)
