"""The process side of a GRPO training (``factory.models.trl_train`` calls it): TRL's ``GRPOTrainer`` with
a ``factory.rewards.VerifierReward`` over a sandbox of its own. The training process opens that sandbox
(the run's kind and worker count, from ``GrpoSettings``): in a child process (GPU, several processes)
the caller's sandbox cannot be shared, and on CPU one more pool of the same kind, open only while the
model trains, keeps the two cases one. Generation: on CPU, for the Llama-style models it supports (the
embedded one), the project's fast CPU decoder through TRL's rollout hook (``fast_cpu_rollout``); else
TRL's own (``model.generate``; vLLM with ``GrpoSettings.vllm``). The KL term is off (``beta`` 0), so a sample whose reward is masked (crashed)
carries no gradient at all: TRL gives it advantage 0.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from dataclasses import dataclass

ROW_COLUMNS = ("prompt", "prefix", "puzzle")


@dataclass(frozen=True)
class GrpoSettings:
    """What GRPO adds to a training: ``generations`` samples per prompt (the group), how they are sampled,
    and the sandbox the trainer's process opens for the reward (``sandbox`` kind, ``workers``,
    ``timeout_s`` per program)."""

    generations: int = 4
    max_completion_length: int = 160
    temperature: float = 1.0
    top_p: float = 1.0
    sandbox: str = "process"
    workers: int = 2
    timeout_s: float = 2.0
    vllm: bool = False
    stop: tuple[str, ...] = ()  # strings that end a sample (the fast CPU path's; TRL's generation ignores them)


def grpo_trainer(
    settings: GrpoSettings, seed: int, lora: bool, model, tokenizer, dataset, common: dict, callbacks: list,
    resources: ExitStack,
):
    """The ``GRPOTrainer`` over ``model`` (seeded by ``seed``; ``lora``: it trains adapters), with a
    ``VerifierReward`` on a sandbox opened in ``resources`` (closed with them)."""
    from trl import GRPOConfig, GRPOTrainer

    from factory.rewards import VerifierReward
    from sandbox.backend import open_sandbox

    sandbox = resources.enter_context(open_sandbox(settings.sandbox, settings.workers, log=lambda m: None))
    reward = VerifierReward(sandbox, settings.timeout_s, seed=seed)
    tokenizer.padding_side = "left"  # GRPO generates from left-padded prompts
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    args = GRPOConfig(
        **{k: v for k, v in common.items() if k != "max_length"},
        num_generations=settings.generations,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        top_p=settings.top_p,
        beta=0.0,
        use_vllm=settings.vllm,
        shuffle_dataset=True,
    )
    from factory.models.fast_cpu import supports_model

    fast = not settings.vllm and not lora and supports_model(model)
    rollout = fast_cpu_rollout(settings, seed) if fast else None
    with warnings.catch_warnings():  # chosen knowingly: TRL warns that rollout_func is experimental
        warnings.filterwarnings("ignore", message="You are using 'rollout_func'")
        return GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=dataset,
                           processing_class=tokenizer, callbacks=callbacks, rollout_func=rollout)


def fast_cpu_rollout(settings: GrpoSettings, seed: int):
    """A TRL ``rollout_func``: each step's samples from the project's fast CPU decoder over the policy's
    current weights (TRL hands it each prompt once per sample), cut at ``settings.stop``. A sample's
    text is tokenized again for the loss (EOS added where it ended before ``max_completion_length``),
    and no sampling log-probabilities are returned: TRL takes the policy's own, as on-policy."""
    from factory.models.base import SamplingConfig
    from factory.models.fast_cpu import FastCPUBackend

    def rollout(prompts: list[str], trainer) -> dict:
        model = trainer.accelerator.unwrap_model(trainer.model)
        tokenizer = trainer.processing_class
        backend = FastCPUBackend.of_model(model, tokenizer, batch_size=max(64, len(prompts)))
        sampling = SamplingConfig(n=1, max_new_tokens=settings.max_completion_length, temperature=settings.temperature,
                                  top_p=settings.top_p, stop=tuple(settings.stop), seed=seed * 100_003 + trainer.state.global_step)
        outputs = [outs[0] for outs in backend.generate(prompts, sampling)]
        completion_ids = [
            tokenizer(o.text, add_special_tokens=False)["input_ids"][: settings.max_completion_length]
            + ([tokenizer.eos_token_id] if o.finished else [])
            for o in outputs
        ]
        return {"prompt_ids": backend.encode(prompts, sampling), "completion_ids": completion_ids, "logprobs": None}

    return rollout


def grpo_facts(trainer) -> dict:
    """What a GRPO training's ``training.json`` records: the mean reward of each step (masked samples
    left out; None where every sample was masked), the verdicts, masked samples and canary flips, and
    which generation made the samples."""
    reward = trainer.reward_funcs[0]
    steps = [entry for entry in trainer.state.log_history if "reward" in entry]
    return {
        "reward_per_step": [None if entry["reward"] != entry["reward"] else round(entry["reward"], 4) for entry in steps],
        "masked_per_step": [entry.get("verifier/masked") for entry in steps],
        "verdicts": dict(reward.counts),
        "reward_calls": reward.calls,
        "generation": "fast cpu" if trainer.rollout_func is not None else "trl",
    }
