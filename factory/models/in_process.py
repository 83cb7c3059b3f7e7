"""One backend in this process, of a kind named by the user: the choice ``load_backend`` makes when no
replicas are asked for, and that each Ray generation replica makes on its node."""

from __future__ import annotations

from factory.config import BACKENDS
from factory.errors import ModelError
from factory.models.base import ModelBackend


def load_in_process(kind: str, model: str, **options) -> ModelBackend:
    """A ready ``kind`` backend ("transformers": the fast CPU path where it applies unless ``fast=False``;
    "vllm"; "openai") for ``model``, built with ``options``."""
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

