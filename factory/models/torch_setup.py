"""How training sets torch up: seeded deterministic runs, and which layers LoRA adapts. Shared by the
training process (``factory.models.trl_train``) and the embedded model's build, apart from the launcher
(``factory.models.train``), which the training process must not import."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def deterministic(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seed torch, fix the CPU thread count and ask for deterministic kernels for the duration of the
    block (same seed, same machine -> same weights); the previous thread count and mode come back after."""
    threads_before = torch.get_num_threads()
    mode_before = torch.are_deterministic_algorithms_enabled()
    warn_only_before = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(mode_before, warn_only=warn_only_before)
        torch.set_num_threads(threads_before)


def lora_targets(model: torch.nn.Module) -> list[str]:
    """The attention projections LoRA adapts in ``model``'s architecture."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for targets in (["c_attn"], ["q_proj", "v_proj"], ["query_key_value"], ["qkv_proj"]):
        if all(t in names for t in targets):
            return targets
    raise ValueError(
        f"cannot find attention projections for LoRA in {type(model).__name__}; use lora=False for this model"
    )
