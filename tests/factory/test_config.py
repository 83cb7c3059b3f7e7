"""RunConfig: the one owner of a run's settings (defaults, help, every rule on the values)."""

from __future__ import annotations

import pickle
from dataclasses import fields

import pytest

from factory.config import IDENTITY_FIELDS, RunConfig
from factory.errors import SettingError, UserError


def test_the_defaults_are_valid_and_every_setting_says_what_it_means():
    config = RunConfig()
    assert config.backend == "transformers" and config.train and config.eval_ks == (1, 5)
    for f in fields(RunConfig):
        assert f.metadata.get("help"), f"{f.name} has no help text"
        if f.default is None:
            assert "example" in f.metadata, f"{f.name}: the example config needs a value to show"
    assert set(IDENTITY_FIELDS) <= {f.name for f in fields(RunConfig)}


def test_json_round_trip_keeps_the_settings():
    config = RunConfig(model="m", eval_ks=(1, 2, 4), eval_samples=4, train=False, learning_rate=3e-4)
    data = config.to_json()
    assert data["eval_ks"] == [1, 2, 4]
    assert RunConfig.from_json(data) == config
    assert RunConfig(eval_ks=[1, 5]).eval_ks == (1, 5)  # a list (JSON, TOML) becomes the tuple


BAD = [
    ({"puzzles": 0}, "puzzles", "puzzles must be at least 1 (got 0)"),
    ({"attempts": -1}, "attempts", "attempts must be at least 1 (got -1)"),
    ({"batch_size": 0}, "batch_size", "batch_size must be at least 1"),
    ({"max_new_tokens": 0}, "max_new_tokens", "max_new_tokens must be at least 1"),
    ({"eval_samples": 0}, "eval_samples", "eval_samples must be at least 1"),
    ({"max_pairs_per_puzzle": 0}, "max_pairs_per_puzzle", "max_pairs_per_puzzle must be at least 1"),
    ({"propose_examples": -1}, "propose_examples", "propose_examples must be at least 0 (got -1)"),
    ({"solve_examples": -2}, "solve_examples", "solve_examples must be at least 0"),
    ({"temperature": -0.1}, "temperature", "temperature must be at least 0 (got -0.1)"),
    ({"propose_temperature": -1.0}, "propose_temperature", "propose_temperature must be at least 0"),
    ({"top_p": 0.0}, "top_p", "top_p must be in (0, 1] (got 0.0)"),
    ({"top_p": 2.0}, "top_p", "top_p must be in (0, 1] (got 2.0)"),
    ({"timeout_s": 0.0}, "timeout_s", "timeout_s must be positive (got 0.0)"),
    ({"epochs": 0.0}, "epochs", "epochs must be positive"),
    ({"learning_rate": -1e-4}, "learning_rate", "learning_rate must be positive"),
    ({"eval_limit": 0}, "eval_limit", "eval_limit must be at least 1"),
    ({"eval_ks": ()}, "eval_ks", "eval_ks must be a non-empty list of integers >= 1 (got [])"),
    ({"eval_ks": (0, 1)}, "eval_ks", "eval_ks must be a non-empty list of integers >= 1 (got [0, 1])"),
    ({"eval_samples": 2, "eval_ks": (5, 10)}, "eval_ks", "eval_ks [5, 10]: every k exceeds eval_samples = 2"),
    ({"model": " "}, "model", "model must not be empty"),
    ({"base_url": ""}, "base_url", "base_url must not be empty"),
    ({"eval_p3": ""}, "eval_p3", "eval_p3 must not be empty"),
    ({"backend": "tgi"}, "backend", "unknown backend 'tgi': choose transformers, vllm or openai"),
    ({"eval_split": "dev"}, "eval_split", 'eval_split must be "train" or "test"'),
    ({"backend": "openai", "train": False}, "model", 'model is required with backend = "openai"'),
    ({"backend": "openai", "model": "m"}, "train", "train = true needs a local model"),
]


@pytest.mark.parametrize(("values", "setting", "message"), BAD, ids=[m for _, _, m in BAD])
def test_every_rule_names_the_setting_not_a_flag(values, setting, message):
    with pytest.raises(SettingError) as caught:
        RunConfig(**values)
    assert isinstance(caught.value, UserError) and caught.value.exit_code == 2
    assert caught.value.setting == setting
    text = str(caught.value)
    assert message in text and setting in text and "--" not in text and "\n" not in text


def test_valid_edge_values_are_accepted():
    RunConfig(propose_examples=0, solve_examples=0, temperature=0.0, top_p=1.0, eval_samples=1, eval_ks=(1, 5))
    RunConfig(backend="openai", model="served-name", train=False, base_url="http://127.0.0.1:1/v1")


def test_a_setting_error_survives_pickling():
    error = pickle.loads(pickle.dumps(SettingError("top_p", "top_p must be in (0, 1] (got 2.0)")))
    assert error.setting == "top_p" and str(error) == "top_p must be in (0, 1] (got 2.0)"
