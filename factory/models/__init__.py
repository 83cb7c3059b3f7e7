"""Model backends behind one small interface: ``load_backend(kind, model).generate(prompts, SamplingConfig)``."""

from __future__ import annotations

from factory.config import BACKENDS
from factory.errors import ModelError
from factory.models.base import Completion, ModelBackend, SamplingConfig
from factory.models.in_process import load_in_process

# load_backend's options for generation replicas -> RayGeneration's arguments
RAY_OPTIONS = {"ray_address": "ray_address", "replica_cpus": "num_cpus", "replica_gpus": "num_gpus",
               "chunk_prompts": "chunk_prompts"}


def replica_options(replicas: int, ray_address: str | None) -> dict[str, object]:
    """``load_backend``'s options for generation on ``replicas`` Ray actors on ``ray_address``'s
    cluster (none for 0): a choice of where to run, made per invocation, not a setting of the run."""
    return {"replicas": replicas, "ray_address": ray_address} if replicas else {}


def load_backend(kind: str, model: str | None, **options) -> ModelBackend:
    """A ready backend of ``kind`` ("transformers", "vllm" or "openai") for ``model`` (a checkpoint
    directory, a Hub id, or the served model name for "openai"; the loop resolves the embedded default
    model to its path before calling). ``options`` go to the backend's constructor (``batch_size``,
    ``base_url``, ``max_concurrency``...).

    "transformers" picks the fast CPU path (``factory.models.fast_cpu``: static KV cache, continuous
    batching) when it applies: a local Llama-style checkpoint on CPU in float32. ``fast=False`` forces
    the plain transformers backend.

    ``replicas=N`` (N >= 1) spreads generation over N copies of that backend as Ray actors
    (``factory.models.ray_backend.RayGeneration``: same outputs for any N); with it, ``ray_address``,
    ``replica_cpus`` and ``replica_gpus`` say where and with what. ``replicas`` 0 or None: no Ray.

    ``api`` ("auto", "chat" or "completions", see ``RunConfig.api``) and ``chat_template`` (a Jinja file)
    choose how the model is prompted: a local model prompted through chat is wrapped in
    ``factory.models.chat.ChatTemplateBackend``."""
    if model is None:
        raise ModelError(f"the {kind} backend needs a model name: a checkpoint directory, a Hub id or a served name")
    api = options.pop("api", "auto")
    chat_template = options.pop("chat_template", None)
    if kind == "openai":
        from factory.models.openai_backend import OpenAIBackend

        if options.get("replicas"):
            raise ModelError("generation replicas need a local backend (transformers or vllm), not 'openai'")

        return OpenAIBackend(model, api=api, **options)
    if api == "chat" or chat_template is not None:
        from factory.models.chat import ChatTemplateBackend, chat_tokenizer

        tokenizer = chat_tokenizer(model, chat_template)
        return ChatTemplateBackend(_local_backend(kind, model, options), tokenizer)
    return _local_backend(kind, model, options)


def _local_backend(kind: str, model: str, options: dict) -> ModelBackend:
    replicas = options.pop("replicas", None)
    ray_options = {key: options.pop(name) for name, key in RAY_OPTIONS.items() if name in options}
    if replicas:
        if kind not in ("transformers", "vllm"):
            raise ModelError(f"generation replicas need a local backend (transformers or vllm), not {kind!r}")
        from factory.models.ray_backend import RayGeneration

        return RayGeneration(kind, model, replicas, options=options, **ray_options)
    return load_in_process(kind, model, **options)

__all__ = ["BACKENDS", "Completion", "ModelBackend", "ModelError", "SamplingConfig", "load_backend", "replica_options"]
