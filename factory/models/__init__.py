"""Model backends behind one small interface: ``load_backend(kind, model).generate(prompts, SamplingConfig)``."""

from __future__ import annotations

from factory.models.base import Completion, ModelBackend, ModelError, SamplingConfig

BACKENDS = ("transformers", "vllm", "openai")


def load_backend(kind: str, model: str | None = None, **options) -> ModelBackend:
    """A ready backend of ``kind`` ("transformers", "vllm" or "openai") for ``model`` (a checkpoint
    directory, a Hub id, or the served model name for "openai"). ``model=None`` means the embedded
    default model for "transformers" and "vllm" (built on first use). ``options`` go to the backend's
    constructor (``batch_size``, ``base_url``, ``max_concurrency``...)."""
    if kind == "transformers":
        from factory.models.transformers_backend import TransformersBackend

        return TransformersBackend(model if model is not None else _default_model(), **options)
    if kind == "vllm":
        from factory.models.vllm_backend import VLLMBackend, require_vllm

        require_vllm()  # fail fast, before building a default model
        return VLLMBackend(model if model is not None else _default_model(), **options)
    if kind == "openai":
        from factory.models.openai_backend import OpenAIBackend

        if model is None:
            raise ModelError(
                "the openai backend needs a model name: the one the server serves (see GET /v1/models)"
            )
        return OpenAIBackend(model, **options)
    raise ModelError(f"unknown model backend {kind!r}; choose one of {', '.join(BACKENDS)}")


def _default_model() -> str:
    from factory.corpus import embedded_model_path

    return embedded_model_path()


__all__ = ["BACKENDS", "Completion", "ModelBackend", "ModelError", "SamplingConfig", "load_backend"]
