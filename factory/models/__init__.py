"""Model backends behind one small interface: ``load_backend(kind, model).generate(prompts, SamplingConfig)``."""

from __future__ import annotations

from factory.config import BACKENDS
from factory.errors import ModelError
from factory.models.base import Completion, ModelBackend, SamplingConfig


def load_backend(kind: str, model: str | None, **options) -> ModelBackend:
    """A ready backend of ``kind`` ("transformers", "vllm" or "openai") for ``model`` (a checkpoint
    directory, a Hub id, or the served model name for "openai"; the loop resolves the embedded default
    model to its path before calling). ``options`` go to the backend's constructor (``batch_size``,
    ``base_url``, ``max_concurrency``...).

    "transformers" picks the fast CPU path (``factory.models.fast_cpu``: static KV cache, continuous
    batching) when it applies: a local Llama-style checkpoint on CPU in float32. ``fast=False`` forces
    the plain transformers backend."""
    if model is None:
        raise ModelError(f"the {kind} backend needs a model name: a checkpoint directory, a Hub id or a served name")
    if kind == "transformers":
        from factory.models.transformers_backend import TransformersBackend

        fast = options.pop("fast", True)
        if fast:
            from factory.models import fast_cpu

            if fast_cpu.supports(model, device=options.get("device"), dtype=options.get("dtype")):
                return fast_cpu.FastCPUBackend(model, **options)
        return TransformersBackend(model, **options)
    if kind == "vllm":
        from factory.models.vllm_backend import VLLMBackend, require_vllm

        require_vllm()
        return VLLMBackend(model, **options)
    if kind == "openai":
        from factory.models.openai_backend import OpenAIBackend

        return OpenAIBackend(model, **options)
    raise ModelError(f"unknown model backend {kind!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Completion", "ModelBackend", "ModelError", "SamplingConfig", "load_backend"]
