"""Bad model input on the command line: one line on stderr and the exit code that says what failed."""

from __future__ import annotations

import pytest

from factory.cli.main import main
from factory.errors import MODEL_EXIT, USAGE_EXIT

ROUND = ["round", "--sandbox", "process", "--no-train", "--puzzles", "4", "--eval-limit", "2"]


def one_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("factory:")]
    assert len(lines) == 1
    return lines[0]


@pytest.mark.parametrize("price", ["0.15;0.6", "0.15", "1,2,3", "-1,2", "nan,1", "cheap,free"])
def test_a_malformed_price_is_exit_2(tmp_path, capsys, price):
    assert main([*ROUND, "--run-dir", str(tmp_path / "run"), f"--price-per-mtok={price}"]) == USAGE_EXIT
    assert "price_per_mtok must be two non-negative numbers" in one_line(capsys)
    assert not (tmp_path / "run").exists()


def test_a_student_that_cannot_be_loaded_is_exit_5(tmp_path, capsys):
    args = ["--backend", "openai", "--model", "teacher", "--base-url", "http://127.0.0.1:9/v1", "--train",
            "--train-model", str(tmp_path / "no-student")]
    assert main([*ROUND, "--run-dir", str(tmp_path / "run"), *args]) == MODEL_EXIT
    assert "no-student does not exist" in one_line(capsys)


@pytest.mark.slow
def test_a_model_the_server_does_not_serve_is_exit_5(real_server, tmp_path, capsys):
    args = ["--backend", "openai", "--model", "no-such-model", "--base-url", real_server.base_url]
    assert main([*ROUND, "--run-dir", str(tmp_path / "run"), *args]) == MODEL_EXIT
    assert "HTTP 400" in one_line(capsys)
