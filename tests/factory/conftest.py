"""Fixtures shared by the factory tests: tiny models, one torch thread, the scripted model server."""

from __future__ import annotations

import pytest
import torch

from factory.models.embedded import BuildConfig, default_model_path, synthetic_corpus
from tests.factory.scripted_model import ScriptedModelServer


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and two threads on busy shared cores can be 50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_tiny_model(tmp_path_factory):
    """A ~0.1M-parameter model built in about a second from a synthetic corpus."""
    cache = tmp_path_factory.getbasetemp() / "model-cache"
    return default_model_path(lambda: synthetic_corpus(150), cache, config=BuildConfig.tiny(), log=lambda m: None)


@pytest.fixture(scope="module")
def scripted_model():
    """The scripted model's server, for rounds with ``backend="openai"`` (``server.base_url``)."""
    server = ScriptedModelServer()
    yield server
    server.close()
