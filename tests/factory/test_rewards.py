"""The verifier as a TRL reward: verdicts to rewards on a real sandbox, malformed completions, and a
real GRPOTrainer step in which crashed completions move nothing."""

from __future__ import annotations

import pytest
import torch

from factory.rewards import CANARY_FLIPS, MASKED, VerifierReward
from sandbox.backend import open_sandbox
from sandbox.verdicts import CRASHED, FLAKY, VERIFIED, Result

PUZZLE = "def f(x: int, n=3):\n    return x == n * 2\n"
PREFIX = "def g(n=3):\n"
PROMPT = PUZZLE + "\n" + PREFIX
SOLVES = "    return n * 2\n"
WRONG = "    return 5\n"
# g's parent is g's zygote, the zygote's parent the worker: killing it, the process sandbox loses the job (crashed)
KILLS_ITS_WORKER = (
    "    import os\n"
    "    worker = int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])\n"
    "    os.kill(worker, 9)\n"
)


@pytest.fixture(scope="module")
def sandbox():
    with open_sandbox("process", workers=2, log=lambda m: None) as box:
        yield box


def rewards_of(reward: VerifierReward, completions: list, puzzle: str = PUZZLE) -> list[float | None]:
    n = len(completions)
    return reward([PROMPT] * n, completions, puzzle=[puzzle] * n, prefix=[PREFIX] * n)


def test_verdicts_become_rewards_and_a_crash_is_masked(sandbox):
    reward = VerifierReward(sandbox, timeout_s=1.0)
    completions = [SOLVES, WRONG, "    return 1 / 0\n", "    while True:\n        pass\n", KILLS_ITS_WORKER]
    assert rewards_of(reward, completions) == [1.0, 0.0, 0.0, 0.0, None]
    assert reward.counts[VERIFIED] == 1 and reward.counts[CRASHED] == 1 and reward.counts[MASKED] == 1
    assert reward.counts[CANARY_FLIPS] == 0


def test_a_flaky_answer_is_a_0_neither_a_1_nor_masked(sandbox):
    """An answer g cannot give again (the clock) verifies once and then differs: flaky, a verdict on the code."""
    reward = VerifierReward(sandbox, timeout_s=1.0)
    any_int = "def f(x: int, n=3):\n    return x >= n\n"
    assert rewards_of(reward, ["    import time\n    return time.time_ns()\n", SOLVES], puzzle=any_int) == [0.0, 1.0]
    assert reward.counts[FLAKY] == 1 and reward.counts[MASKED] == 0


def test_malformed_completions_get_zero_without_raising(sandbox):
    reward = VerifierReward(sandbox)
    malformed = ["", "    return (\n", "x" * 1_000_000, "The answer is six, since 3 * 2 = 6.", "\x00" * 50, "    " * 100]
    assert rewards_of(reward, malformed) == [0.0] * len(malformed)
    assert reward.counts["invalid"] == len(malformed) and reward.counts[MASKED] == 0


def test_a_conversational_completion_is_read_from_its_messages_and_a_bad_puzzle_is_masked(sandbox):
    reward = VerifierReward(sandbox)
    assert rewards_of(reward, [[{"role": "assistant", "content": SOLVES}]]) == [1.0]
    assert rewards_of(reward, [SOLVES], puzzle="def f(x):\n    return x\n") == [None]  # no answer type


class AcceptsEverySolution:
    """A broken verifier: every solution job comes back verified."""

    def __init__(self, sandbox):
        self.sandbox = sandbox

    def run(self, jobs, on_result=None):
        return [Result(VERIFIED) for _ in self.sandbox.run(jobs)]


def test_a_batch_whose_canaries_flip_gets_no_reward(sandbox):
    reward = VerifierReward(AcceptsEverySolution(sandbox))
    assert rewards_of(reward, [SOLVES, WRONG]) == [None, None]
    assert reward.counts[CANARY_FLIPS] == 1 and reward.counts[MASKED] == 2


def scripted_rollout(completions: list[str]):
    """A TRL rollout_func whose samples are ``completions``, in turn (TRL hands it each group's prompt
    once per sample)."""

    def rollout(prompts, trainer):
        tokenizer = trainer.processing_class
        eos = [tokenizer.eos_token_id]
        prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        texts = [completions[i % len(completions)] for i in range(len(prompts))]
        completion_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + eos for t in texts]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}

    return rollout


def weights_after_one_step(model_path, sandbox, completions: list[str], tmp_path) -> tuple[dict, dict, VerifierReward]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reward = VerifierReward(sandbox, timeout_s=1.0)
    rows = Dataset.from_list([{"prompt": PROMPT, "prefix": PREFIX, "puzzle": PUZZLE}] * 4)
    args = GRPOConfig(
        str(tmp_path / "grpo"), max_steps=1, num_generations=len(completions), per_device_train_batch_size=len(completions),
        learning_rate=1e-3, beta=0.0, use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True,
    )
    trainer = GRPOTrainer(model, reward_funcs=reward, args=args, train_dataset=rows,
                          rollout_func=scripted_rollout(completions))
    trainer.train()
    return before, trainer.model.state_dict(), reward


def test_crashed_completions_contribute_no_reward_and_no_gradient(synthetic_tiny_model, sandbox, tmp_path, one_torch_thread):
    # one verified sample and three the sandbox lost: the crashes are not negatives, so nothing is learned
    before, after, reward = weights_after_one_step(synthetic_tiny_model, sandbox, [SOLVES] + [KILLS_ITS_WORKER] * 3, tmp_path)
    assert reward.counts[CRASHED] == 3 and reward.counts[MASKED] == 3
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the same group with three wrong answers (reward 0) moves the weights
    before, after, reward = weights_after_one_step(synthetic_tiny_model, sandbox, [SOLVES] + [WRONG] * 3, tmp_path)
    assert reward.counts[MASKED] == 0
    assert not all(torch.equal(before[k], after[k]) for k in before)


def test_the_documented_example_trains(synthetic_tiny_model, tmp_path, monkeypatch, one_torch_thread):
    import textwrap

    import factory.rewards

    doc = factory.rewards.__doc__
    example = textwrap.dedent(doc[doc.index("::\n") + 3 :])
    assert "GRPOTrainer(embedded_model_path()" in example
    monkeypatch.chdir(tmp_path)  # its output_dir
    monkeypatch.setattr("factory.loop.corpus.embedded_model_path", lambda: str(synthetic_tiny_model))
    exec(compile(example, "factory.rewards example", "exec"), {})
    assert (tmp_path / "grpo-out").is_dir()
