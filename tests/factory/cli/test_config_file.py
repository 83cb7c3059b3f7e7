"""`factory round/run --config FILE`: the [run] table of the daemon's file, flags winning over it; a key
it does not know, or a value it refuses, is one line naming the file and key (exit 2), before anything
starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from factory.cli.main import build_parser, main
from factory.cli.rounds import run_config_from, with_config_file
from factory.cli.sandbox import sandbox_settings_from
from factory.config import RunConfig, SandboxSettings

REPO = Path(__file__).resolve().parents[3]
FILE = """\
[run]
run_dir = "runs/a"
sandbox = "process"
workers = 3
puzzles = 32
eval_ks = [1, 2]
train = false
temperature = 1
[stop]
rounds = 2
[daemon]
metrics_port = 9464
"""


def resolved(tmp_path: Path, *flags: str, text: str = FILE):
    path = tmp_path / "factory.toml"
    path.write_text(text)
    args = with_config_file(build_parser().parse_args(["run", "--rounds", "1", "--config", str(path), *flags]))
    return args, run_config_from(args), sandbox_settings_from(args)


def test_the_settings_come_from_the_file(tmp_path):
    args, config, placement = resolved(tmp_path)
    assert args.run_dir == tmp_path / "runs" / "a"  # relative to the file's directory, as for the daemon
    assert config == RunConfig(puzzles=32, eval_ks=(1, 2), train=False, temperature=1.0)
    assert placement == SandboxSettings(sandbox="process", workers=3)


def test_a_flag_wins_over_the_file_even_when_it_gives_the_default(tmp_path):
    args, config, placement = resolved(
        tmp_path, "--run-dir", "elsewhere", "--puzzles", "2048", "--train", "--eval-ks", "1", "--sandbox", "docker",
    )
    assert args.run_dir == Path("elsewhere")
    assert config == RunConfig(eval_ks=(1,), temperature=1.0)  # the file's temperature, the flags' rest
    assert placement == SandboxSettings(workers=3)


def refusal(tmp_path: Path, capsys, text: str, *flags: str) -> str:
    """What `factory round --config FILE FLAGS` prints for a FILE of ``text`` that it refuses (exit 2),
    having touched no run directory."""
    path = tmp_path / "factory.toml"
    path.write_text(text)
    assert main(["round", "--config", str(path), *flags]) == 2
    assert not (tmp_path / "r").exists()
    return capsys.readouterr().err.replace(str(path), "FILE")


def test_a_refused_value_names_the_file_unless_a_flag_replaced_it(tmp_path, capsys):
    text = '[run]\nrun_dir = "r"\npuzzles = 0\nworkers = 0\n'
    assert refusal(tmp_path, capsys, text, "--workers", "1") == "factory: FILE: [run] puzzles must be at least 1 (got 0)\n"
    assert refusal(tmp_path, capsys, text, "--puzzles", "5") == "factory: FILE: [run] workers must be at least 1 (got 0)\n"
    assert refusal(tmp_path, capsys, text, "--puzzles", "5", "--eval-samples", "0", "--workers", "1") == (
        "factory: eval_samples must be at least 1 (got 0) (flag --eval-samples)\n"
    )


@pytest.mark.parametrize(("text", "message"), [
    ('[run]\nrun_dir = "r"\npuzzle = 3\n', "unknown key [run] puzzle (did you mean puzzles?)"),
    ('[run]\nrun_dir = "r"\npuzzles = "64"\n', '[run] puzzles must be an integer, not a string ("64")'),
    ('[runn]\nrun_dir = "r"\n', "unknown section [runn] (did you mean run?)"),
    ("[run]\npuzzles = 3\n", "--run-dir DIR is required (or run_dir in the [run] table of --config FILE)"),
])
def test_a_mistake_in_the_file_is_one_line(tmp_path, capsys, text, message):
    err = refusal(tmp_path, capsys, text)
    assert message in err and err.count("\n") == 1


def test_the_command_line_refuses_an_unknown_key_with_exit_2(tmp_path):
    path = tmp_path / "factory.toml"
    path.write_text('[run]\nrun_dir = "r"\nsandbox = "process"\nattempt = 4\n')
    done = subprocess.run([sys.executable, "-m", "factory.cli", "run", "--config", str(path), "--rounds", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"factory: {path}: unknown key [run] attempt (did you mean attempts?)\n"
    assert not (tmp_path / "r").exists()
    missing = tmp_path / "missing.toml"
    assert main(["round", "--config", str(missing)]) == 2
