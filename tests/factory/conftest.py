"""Fixtures shared by the factory tests: tiny models, one torch thread, the scripted model server."""

from __future__ import annotations

import random

import pytest
import torch

from factory.loop.corpus import BUILTIN_AUGMENTED, seed_training_pairs, training_texts
from factory.models.embedded import BuildConfig, default_model_path
from tests.factory.played_run import PlayedRun, StoreRows, play
from tests.factory.real_server import TransformersServer
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
    """A ~0.1M-parameter model built in about a second from real seed texts: the seed corpus's recipe
    (``training_texts``) on every third training seed, with 50 listings."""
    pairs = seed_training_pairs(BUILTIN_AUGMENTED)[::3]
    texts = training_texts(pairs, [f for f, _ in pairs], 50, 3, random.Random(0))
    cache = tmp_path_factory.getbasetemp() / "model-cache"
    return default_model_path(lambda: texts, cache, config=BuildConfig.tiny(), log=lambda m: None)


@pytest.fixture(scope="session")
def real_server(synthetic_tiny_model, tmp_path_factory):
    """`transformers serve` serving the synthetic tiny model (with the embedded chat template) on
    127.0.0.1, offline; skipped where "transformers[serving]" is not installed."""
    server = TransformersServer(synthetic_tiny_model, tmp_path_factory.mktemp("serve") / "serve.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scripted_model():
    """The scripted model's server, for rounds with ``backend="openai"`` (``server.base_url``)."""
    server = ScriptedModelServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def run(tmp_path_factory) -> PlayedRun:
    """A store written by the real loop on the scripted model (``tests.factory.played_run``), played
    once per session: read it, or ``copy_run`` it to change it."""
    return play(tmp_path_factory.mktemp("played") / "run")


@pytest.fixture(scope="session")
def run_dir(run: PlayedRun):
    return run.run_dir


@pytest.fixture(scope="session")
def rows(run: PlayedRun) -> StoreRows:
    """The played store's raw rows, counted with plain SQL (not through the code under test)."""
    return StoreRows(run.run_dir)
