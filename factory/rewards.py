"""The verifier as a reward for online RL: a TRL reward function over an open sandbox.

``VerifierReward(sandbox)`` is called by TRL's ``GRPOTrainer`` with the step's prompts and completions
and the dataset's other columns: ``puzzle`` (the puzzle's source) and optionally ``prefix`` (the end of
the prompt the completion continues, e.g. ``def g2(n=3):``; the solve stage's prompts end with it). Each
completion is cut to one function the way the solve stage does (``complete_function``) and the batch is
verified in one ``verify_pairs`` call, with canary pairs riding along:

- verified: 1.0; wrong, error, timeout, memory, output, invalid (no code, a syntax error, prose, too long): 0.0;
  flaky (verified once, then not, or another answer, in fresh processes): 0.0 too, not masked: it is a verdict
  on the code (an answer that hangs on the clock, os.urandom or an address is not a solution), not the
  sandbox failing to give one, and a 1 or a mask would leave the policy free to write such answers;
- crashed, a verdict the sandbox could not give, a puzzle that does not parse (not the model's doing), or
  every completion of a batch whose canaries got the wrong verdict: None. TRL (>= 1.16) takes a completion
  whose every reward is None as unscorable: it is left out of its group's baseline and its advantage is
  0, so with ``beta=0`` (no KL term) it contributes no gradient. Never a 0 (ARCHITECTURE invariant 10).
``counts`` says what it gave, per verdict and masked; TRL's logs get each step's masked count
(``verifier/masked``).

Training the embedded model with GRPO on CPU (``factory.models.grpo_train`` is the project's own use)::

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    from factory.loop.corpus import embedded_model_path
    from factory.rewards import VerifierReward
    from sandbox.backend import open_sandbox

    f = "def f(x: int, n=3):\\n    return x == n * 2\\n"
    rows = [{"prompt": f + "\\ndef g(n=3):\\n", "prefix": "def g(n=3):\\n", "puzzle": f}] * 8
    with open_sandbox("process") as sandbox:  # "docker" for code you did not write
        args = GRPOConfig("grpo-out", max_steps=4, num_generations=4, per_device_train_batch_size=4,
                          max_completion_length=48, use_cpu=True, report_to=[])
        GRPOTrainer(embedded_model_path(), reward_funcs=VerifierReward(sandbox), args=args,
                    train_dataset=Dataset.from_list(rows)).train()
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from puzzles.completion import complete_function, function_from_reply
from puzzles.parse import parse_puzzle
from puzzles.source import parses
from sandbox.backend import Sandbox
from sandbox.canaries import CanaryFlip, draw
from sandbox.canaries import check as check_canaries
from sandbox.verdicts import ALL_VERDICTS, CRASHED, VERIFIED, Result
from sandbox.verify import SourcePair, verify_pairs

MASKED = "masked"  # counts' key for completions given None
CANARY_FLIPS = "canary flips"  # counts' key for batches masked because a canary got the wrong verdict


def reward_of(result: Result | None) -> float | None:
    """A verdict's reward: 1.0 verified, None crashed or unknown (no verdict, or one the sandbox does not
    give), else 0.0."""
    if result is None or result.status == CRASHED or result.status not in ALL_VERDICTS:
        return None
    return 1.0 if result.status == VERIFIED else 0.0


def completion_source(prefix: str, completion: str | Sequence[dict]) -> str:
    """The function a completion writes for a prompt that ended with ``prefix``: a standard completion (a
    string) continues it; a conversational one (messages) is a chat reply, read by the one reply parser
    (``function_from_reply``; no code: the bare prefix, which never verifies)."""
    if isinstance(completion, str):
        return complete_function(prefix, completion)
    reply = "".join(str(m.get("content") or "") for m in completion if m.get("role") == "assistant")
    return function_from_reply(prefix, reply) or prefix


class VerifierReward:
    """A TRL reward function: ``(prompts, completions, puzzle, prefix=None, **columns) -> list[float | None]``
    (see the module docstring). ``timeout_s``: seconds each of g and f may run; ``canaries``: canary
    pairs (two cheats, one good pair) verified with each call, drawn from ``seed``."""

    __name__ = "verifier"  # the name TRL logs the reward under

    def __init__(self, sandbox: Sandbox, timeout_s: float = 2.0, canaries: bool = True, seed: int = 0):
        self.sandbox = sandbox
        self.timeout_s = timeout_s
        self.canaries = canaries
        self.rng = random.Random(f"{seed}:reward canaries")
        self.counts: Counter[str] = Counter()
        self.calls = 0

    def __call__(
        self,
        prompts: Sequence[object],
        completions: Sequence[str | Sequence[dict]],
        puzzle: Sequence[str],
        prefix: Sequence[str] | None = None,
        **columns: object,
    ) -> list[float | None]:
        self.calls += 1
        prefixes = prefix if prefix is not None else [""] * len(completions)
        sources = [completion_source(p, c) for p, c in zip(prefixes, completions, strict=True)]
        good_puzzle = {f: parses(f, parse_puzzle) for f in set(puzzle)}
        asked = [i for i, f in enumerate(puzzle) if good_puzzle[f]]
        canaries = draw(self.rng) if self.canaries else []
        pairs = [SourcePair(puzzle[i], sources[i]) for i in asked] + [SourcePair(k.f, k.g) for k in canaries]
        verdicts = verify_pairs(pairs, self.sandbox, self.timeout_s)
        results: list[Result | None] = [None] * len(completions)
        for i, verdict in zip(asked, verdicts[: len(asked)], strict=True):
            results[i] = verdict
        try:
            check_canaries(canaries, verdicts[len(asked) :])
        except CanaryFlip:
            self.counts[CANARY_FLIPS] += 1
            results = [None] * len(completions)
        rewards = [reward_of(r) for r in results]
        self.counts.update(r.status for r in results if r is not None)
        masked = sum(r is None for r in rewards)
        self.counts[MASKED] += masked
        if callable(log_metric := columns.get("log_metric")):  # TRL's: logged with the step's metrics
            log_metric("verifier/masked", float(masked))
        return rewards
