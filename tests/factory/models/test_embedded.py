"""The embedded default model: built once per corpus, cached, atomic, locked, reproducible.

All builds here use ``BuildConfig.tiny()`` (seconds); the full default build is measured by hand.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import torch
from safetensors.torch import load_file

import factory.models.embedded as dm
from factory.loop.corpus import seed_training_pairs
from factory.loop.prompts import training_example
from factory.models.embedded import BuildConfig, default_model_path, fingerprint

TINY = BuildConfig.tiny()
PAIRS = seed_training_pairs()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, and two threads on busy shared cores can be 50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def texts_of(count: int, seed: int = 0) -> list[str]:
    """``count`` real training texts: the solve blocks of every fifth training seed, from ``seed`` on."""
    return [training_example(f, g) for f, g in PAIRS[seed::5][:count]]


def corpus_of(count: int, seed: int = 0):
    return lambda: texts_of(count, seed)


def test_build_then_cached(tmp_path):
    messages: list[str] = []
    path = default_model_path(corpus_of(80), tmp_path, config=TINY, log=messages.append)
    assert (path / "config.json").exists() and (path / "tokenizer.json").exists()
    assert any("default model built" in m for m in messages)
    mtime = (path / "model.safetensors").stat().st_mtime_ns

    messages.clear()
    start = time.monotonic()
    again = default_model_path(corpus_of(80), tmp_path, config=TINY, log=messages.append)
    assert again == path
    assert time.monotonic() - start < 2.0
    assert messages == []  # no rebuild
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime


def test_changed_corpus_or_config_builds_a_new_model(tmp_path):
    first = default_model_path(corpus_of(40), tmp_path, config=TINY, log=lambda m: None)
    other_corpus = default_model_path(corpus_of(40, seed=1), tmp_path, config=TINY, log=lambda m: None)
    assert other_corpus != first
    assert fingerprint(["a"], TINY) != fingerprint(["a"], dataclasses.replace(TINY, steps=41))
    assert fingerprint(["ab", "c"], TINY) != fingerprint(["a", "bc"], TINY)  # text boundaries count
    assert first.exists() and other_corpus.exists()


def test_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr(dm, "train_steps", explode)
    with pytest.raises(RuntimeError, match="killed"):
        default_model_path(corpus_of(30), tmp_path, config=TINY, log=lambda m: None)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_stale_temp_dir_of_a_killed_build_is_not_used(tmp_path):
    key = fingerprint(texts_of(30), TINY)
    stale = tmp_path / f".default-model-{key}.tmp-dead"
    stale.mkdir()
    (stale / "config.json").write_text("{half written")
    path = default_model_path(corpus_of(30), tmp_path, config=TINY, log=lambda m: None)
    assert path.name == f"default-model-{key}"
    assert not stale.exists()


def test_concurrent_callers_build_once(tmp_path, monkeypatch):
    builds = []
    real_build = dm.build_default_model

    def counting_build(*args, **kwargs):
        builds.append(1)
        time.sleep(0.3)  # widen the race window
        return real_build(*args, **kwargs)

    monkeypatch.setattr(dm, "build_default_model", counting_build)
    paths = []
    threads = [
        threading.Thread(
            target=lambda: paths.append(
                default_model_path(corpus_of(30), tmp_path, config=TINY, log=lambda m: None)
            )
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert len(set(paths)) == 1 and len(paths) == 3


def test_build_is_deterministic(tmp_path):
    a = default_model_path(corpus_of(40), tmp_path / "a", config=TINY, log=lambda m: None)
    b = default_model_path(corpus_of(40), tmp_path / "b", config=TINY, log=lambda m: None)
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_empty_corpus_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="corpus is empty"):
        default_model_path(lambda: ["", "  "], tmp_path, config=TINY)


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert dm.cache_root() == tmp_path / "selfplay-factory"


def test_tiny_model_learns_the_corpus(tmp_path):
    report = dm.build_default_model(tmp_path / "model", texts_of(80), TINY)
    assert report.final_loss < 5.0  # uniform over 512 tokens would be ~6.2; these 80 seed texts give ~4.6
