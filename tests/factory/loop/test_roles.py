"""Who generates in each role: the run's model, a teacher per role, or the student being trained."""

from __future__ import annotations

import pytest

from factory.config import RunConfig
from factory.errors import SettingError
from factory.loop.context import Generator, backend_options, generator_for, student_of

URL = "http://127.0.0.1:8000/v1"


def test_without_roles_the_round_model_does_everything():
    local = RunConfig(model="/base")
    assert generator_for(local, "propose", "/ckpt-1") == Generator("/ckpt-1", "transformers")
    assert generator_for(local, "solve", "/ckpt-1") == student_of(local, "/ckpt-1") == Generator("/ckpt-1", "transformers")
    served = RunConfig(model="m", backend="openai", base_url=URL, train=False)
    assert generator_for(served, "solve", "m") == Generator("m", "openai", URL)


def test_a_served_teacher_and_a_local_student():
    c = RunConfig(model="teacher", backend="openai", base_url=URL, train_model="/student")
    assert generator_for(c, "propose", "/ckpt-1") == Generator("teacher", "openai", URL)
    assert generator_for(c, "solve", "/ckpt-1") == Generator("teacher", "openai", URL)
    assert student_of(c, "/ckpt-1") == Generator("/ckpt-1", "transformers")
    joined = RunConfig(model="teacher", backend="openai", base_url=URL, train_model="/student", solve_model="student")
    assert generator_for(joined, "solve", "/ckpt-1") == Generator("/ckpt-1", "transformers")
    assert "base_url" not in backend_options(joined, student_of(joined, "/ckpt-1"))


def test_a_role_with_its_own_model_backend_and_server():
    c = RunConfig(model="/local", propose_model="big", propose_backend="openai", propose_base_url=URL)
    assert generator_for(c, "propose", "/ckpt-2") == Generator("big", "openai", URL)
    assert generator_for(c, "solve", "/ckpt-2") == Generator("/ckpt-2", "transformers")
    assert backend_options(c, generator_for(c, "propose", "/ckpt-2"))["base_url"] == URL


def test_training_a_served_model_needs_a_student():
    with pytest.raises(SettingError, match="name the student"):
        RunConfig(model="m", backend="openai")
    with pytest.raises(SettingError, match="solve_backend must be one of"):
        RunConfig(solve_backend="tgi")
