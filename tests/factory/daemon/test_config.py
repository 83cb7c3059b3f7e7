"""The daemon's TOML config: every key checked before anything starts, one-line errors naming the key."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import tomllib

from factory.cli.main import main as daemon_main
from factory.config import RunConfig, SandboxSettings
from factory.daemon.config import (
    DaemonConfig,
    DaemonSettings,
    StopConditions,
    example_config,
    load_config,
    parse_config,
    write_example_config,
)
from factory.errors import UserError


def config_from(text: str, tmp_path: Path) -> DaemonConfig:
    path = tmp_path / "factory.toml"
    path.write_text(text)
    return load_config(path)


def test_the_example_config_loads_to_the_defaults_and_mentions_every_key(tmp_path):
    text = example_config()
    config = parse_config(tomllib.loads(text), tmp_path / "factory.toml")
    assert config.run == RunConfig()  # defaults come from RunConfig, never restated
    assert config.run_dir == tmp_path / "run" and config.placement == SandboxSettings()
    assert config.stop == StopConditions() and config.daemon == DaemonSettings()
    for name in [f.name for f in fields(RunConfig) + fields(SandboxSettings)] + ["run_dir"]:
        assert f"\n# {name} = " in text or f"\n{name} = " in text, name
    for cls in (StopConditions, DaemonSettings):
        for f in fields(cls):
            assert f"\n# {f.name} = " in text, f.name
    # Every commented key, uncommented, is still a valid config.
    uncommented = "\n".join(line[2:] if line.startswith("# ") and " = " in line else line for line in text.splitlines())
    config = parse_config(tomllib.loads(uncommented), tmp_path / "factory.toml")
    assert config.stop.rounds == 10 and config.daemon.log_file == tmp_path / "daemon.log"


def test_init_writes_the_example_and_never_overwrites(tmp_path, capsys):
    path = tmp_path / "factory.toml"
    assert daemon_main(["init", str(path)]) == 0
    assert path.read_text() == example_config()
    path.write_text("# mine\n")
    assert daemon_main(["init", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert path.read_text() == "# mine\n"
    (tmp_path / "sub").mkdir()
    assert write_example_config(tmp_path / "sub") == tmp_path / "sub" / "factory.toml"  # a directory: the file in it


def test_a_full_config_maps_onto_run_config(tmp_path):
    config = config_from(
        """
[run]
run_dir = "/data/run-7"
sandbox = "process"
workers = 3
model = "/models/m"
puzzles = 32
temperature = 1
eval_ks = [1, 5]
eval_samples = 5
train = false
learning_rate = 3e-4
[stop]
rounds = 4
hours = 1.5
[daemon]
metrics_port = 9464
log_file = "logs/daemon.log"
backoff_max_seconds = 60
""",
        tmp_path,
    )
    assert config.run_dir == Path("/data/run-7") and config.placement == SandboxSettings(sandbox="process", workers=3)
    assert config.run == RunConfig(model="/models/m", puzzles=32, temperature=1.0, eval_ks=(1, 5), eval_samples=5,
                                   train=False, learning_rate=3e-4)
    assert isinstance(config.run.temperature, float)
    assert config.stop == StopConditions(rounds=4, hours=1.5)
    assert config.daemon.metrics_port == 9464 and config.daemon.log_file == tmp_path / "logs" / "daemon.log"
    assert config.daemon.backoff_max_seconds == 60.0 and config.source == tmp_path / "factory.toml"


BAD = [
    ("[run]\npuzzles = 3\n", "[run] run_dir is required"),
    ('[run]\nrun_dir = "r"\npuzzle = 3\n', "unknown key [run] puzzle (did you mean puzzles?)"),
    ('[run]\nrun_dir = "r"\n[stopp]\nrounds = 1\n', "unknown section [stopp] (did you mean stop?)"),
    ('[run]\nrun_dir = "r"\n[stop]\nminutes = 5\n', "unknown key [stop] minutes"),
    ('[run]\nrun_dir = "r"\n[daemon]\nport = 9000\n', "unknown key [daemon] port (did you mean metrics_port?)"),
    ('run_dir = "r"\n', "unknown section [run_dir] (did you mean run?)"),
    ('run = 3\n', "run must be a section ([run]), not an integer"),
    ('[run]\nrun_dir = "r"\npuzzles = "64"\n', '[run] puzzles must be an integer, not a string ("64")'),
    ('[run]\nrun_dir = "r"\npuzzles = 6.5\n', "[run] puzzles must be an integer, not a number (6.5)"),
    ('[run]\nrun_dir = "r"\ntrain = 1\n', "[run] train must be true or false, not an integer (1)"),
    ('[run]\nrun_dir = "r"\ntemperature = true\n', "[run] temperature must be a number, not a boolean (true)"),
    ('[run]\nrun_dir = "r"\neval_ks = 1\n', "[run] eval_ks must be a list of integers, not an integer (1)"),
    ('[run]\nrun_dir = "r"\neval_ks = [1, "10"]\n', '[run] eval_ks[1] must be an integer, not a string ("10")'),
    ('[run]\nrun_dir = 5\n', "[run] run_dir must be a string"),
    ('[run]\nrun_dir = "r"\npuzzles = 0\n', "[run] puzzles must be at least 1 (got 0)"),
    ('[run]\nrun_dir = "r"\ntimeout_s = 0\n', "[run] timeout_s must be positive"),
    ('[run]\nrun_dir = "r"\ntop_p = 1.5\n', "[run] top_p must be in (0, 1] (got 1.5)"),
    ('[run]\nrun_dir = "r"\ntemperature = -0.1\n', "[run] temperature must be at least 0"),
    ('[run]\nrun_dir = "r"\nepochs = 0\n', "[run] epochs must be positive"),
    ('[run]\nrun_dir = "r"\neval_ks = []\n', "[run] eval_ks must be a non-empty list"),
    ('[run]\nrun_dir = "r"\neval_samples = 2\neval_ks = [5, 10]\n', "every k exceeds eval_samples = 2"),
    ('[run]\nrun_dir = "r"\neval_split = "dev"\n', '[run] eval_split must be "train" or "test"'),
    ('[run]\nrun_dir = "r"\nbackend = "tgi"\n', "[run] unknown backend 'tgi'"),
    ('[run]\nrun_dir = "r"\nbackend = "openai"\ntrain = false\n', "[run] model is required with backend = \"openai\""),
    ('[run]\nrun_dir = "r"\nbackend = "openai"\nmodel = "m"\n', "[run] train = true needs a local model"),
    ('[run]\nrun_dir = "r"\nsandbox = "vm"\n', "[run] sandbox must be one of docker, process, auto, ray, not 'vm'"),
    ('[run]\nrun_dir = "r"\nworkers = 0\n', "[run] workers must be at least 1 (got 0)"),
    ('[run]\nrun_dir = ""\n', "[run] run_dir must not be empty"),
    ('[run]\nrun_dir = "r"\n[stop]\nrounds = 0\n', "[stop] rounds must be at least 1 (got 0)"),
    ('[run]\nrun_dir = "r"\n[stop]\npairs = -5\n', "[stop] pairs must be at least 1"),
    ('[run]\nrun_dir = "r"\n[stop]\nhours = 0\n', "[stop] hours must be positive"),
    ('[run]\nrun_dir = "r"\n[stop]\nhours = "1h"\n', "[stop] hours must be a number"),
    ('[run]\nrun_dir = "r"\n[stop]\ncost = 0\n', "[stop] cost must be positive"),
    ('[run]\nrun_dir = "r"\n[stop]\ncost = 5.0\n', "[stop] cost needs the token prices: set price_per_mtok in [run]"),
    ('[run]\nrun_dir = "r"\n[daemon]\nmetrics_port = 70000\n', "[daemon] metrics_port must be in 0..65535"),
    ('[run]\nrun_dir = "r"\n[daemon]\nbackoff_max_seconds = 0\n', "[daemon] backoff_max_seconds must be positive"),
    ('[run]\nrun_dir = "r"\n[daemon]\nbackoff_initial_seconds = 9\nbackoff_max_seconds = 2\n',
     "backoff_initial_seconds must not exceed backoff_max_seconds"),
    ('[run]\nrun_dir = "r"\n[daemon]\nlog_file = ""\n', "[daemon] log_file must not be empty"),
    ('[run]\nrun_dir = "r"\n[daemon]\nstop_timeout_seconds = -1\n', "[daemon] stop_timeout_seconds must be positive"),
    ('[run]\nrun_dir = "r"\npuzzles = \n', "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_a_mistake_is_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(UserError) as caught:
        config_from(text, tmp_path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "factory.toml") + ": ")
    assert "\n" not in str(caught.value)


def test_the_daemon_command_reports_a_bad_config_before_starting(tmp_path, capsys):
    path = tmp_path / "factory.toml"
    path.write_text('[run]\nrun_dir = "run"\nsandbox = "process"\nattempts = "many"\n')
    assert daemon_main(["daemon", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f'factory: {path}: [run] attempts must be an integer, not a string ("many")\n'
    assert not (tmp_path / "run").exists()  # nothing started
    assert daemon_main(["daemon", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "write an example with `factory init" in capsys.readouterr().err
