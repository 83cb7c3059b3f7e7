"""Generation with vLLM on a CUDA machine: a thin adapter over ``LLM.generate(prompts, SamplingParams)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from factory.errors import ModelError
from factory.models.base import Completion, SamplingConfig, cut_at_stop


class VLLMBackend:
    """``vllm.LLM`` with prefix caching on (few-shot prompts share long prefixes). Extra keyword
    options go to ``LLM`` unchanged (``gpu_memory_utilization``, ``max_model_len``, ``dtype``...)."""

    def __init__(self, model: str | Path, *, seed: int = 0, **llm_options):
        vllm = require_vllm()
        self.name = str(model)
        self._sampling_params = vllm.SamplingParams
        try:
            self.llm = vllm.LLM(model=str(model), enable_prefix_caching=True, seed=seed, **llm_options)
        except (OSError, ValueError) as exc:
            raise ModelError(f"vLLM cannot load model {model}: {str(exc).strip().splitlines()[0]}") from exc

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise TypeError("generate takes a sequence of prompts, not a single string")
        params = self._sampling_params(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            max_tokens=sampling.max_new_tokens,
            stop=list(sampling.stop) or None,
            seed=sampling.seed,
        )
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        return completions_from_outputs(outputs, sampling.stop)

    def close(self) -> None:
        self.llm = None


def require_vllm():
    """The ``vllm`` module, or a ModelError saying how to install it."""
    try:
        import vllm
    except ImportError as exc:
        raise ModelError(
            "the vllm backend needs vLLM: pip install 'selfplay-factory[vllm]' on a CUDA machine "
            "(or use the transformers backend)"
        ) from exc
    return vllm


def completions_from_outputs(outputs, stop: Sequence[str]) -> list[list[Completion]]:
    """Map vLLM ``RequestOutput``s (in prompt order) to our records. vLLM already cuts at stop strings;
    cutting again is a no-op there and keeps the contract if it did not."""
    result = []
    for request in outputs:
        row = []
        for out in request.outputs:
            text, stopped = cut_at_stop(out.text, stop)
            finished = stopped or out.finish_reason != "length"
            row.append(Completion(text=text, tokens=len(out.token_ids), finished=finished))
        result.append(row)
    return result
