"""The installation's secret, made once per cache dir, and f's hash seeds derived from it."""

from __future__ import annotations

import stat

import pytest

from sandbox import worker
from sandbox.installation import (
    MAX_HASH_SEED,
    SECRET_NAME,
    cache_root,
    derived_hash_seeds,
    installation_hash_seeds,
    installation_secret,
)


def test_the_secret_is_made_once_with_mode_0600_and_read_again(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = cache_root() / SECRET_NAME
    secret = installation_secret()
    assert path.read_bytes() == secret and len(secret) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    made = path.stat().st_mtime_ns
    assert installation_secret() == secret and installation_hash_seeds() == derived_hash_seeds(secret)
    assert path.stat().st_mtime_ns == made
    assert [p.name for p in cache_root().iterdir()] == [SECRET_NAME]  # no temporary file left


def test_each_cache_dir_is_an_installation_with_its_own_file(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "one"))
    one = installation_secret()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "two"))
    installation_secret()
    assert (tmp_path / "one" / "selfplay-factory" / SECRET_NAME).read_bytes() == one
    assert (tmp_path / "two" / "selfplay-factory" / SECRET_NAME).is_file()


def test_a_file_the_factory_did_not_make_is_refused(tmp_path):
    (tmp_path / SECRET_NAME).write_text("short")
    with pytest.raises(ValueError, match="remove it"):
        installation_secret(tmp_path)


def test_a_cache_dir_that_cannot_hold_the_secret_stops_the_sandbox_saying_what_to_do(monkeypatch, tmp_path):
    from sandbox.backend import open_sandbox
    from sandbox.engine import SandboxUnavailable

    (tmp_path / "selfplay-factory").write_text("a file where the cache dir should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="set XDG_CACHE_HOME to a writable directory"):
        open_sandbox("process", workers=1, log=lambda m: None)


def test_the_seeds_are_two_values_pythonhashseed_takes_and_never_gs():
    seeds = derived_hash_seeds(b"\1" * 32)
    assert seeds == derived_hash_seeds(b"\1" * 32) != derived_hash_seeds(b"\2" * 32)
    assert seeds.first != seeds.recheck
    assert all(0 < seed <= MAX_HASH_SEED for seed in (seeds.first, seeds.recheck))  # 0 is g's fixed seed
    assert MAX_HASH_SEED == worker.MAX_HASH_SEED == 2**32 - 1
