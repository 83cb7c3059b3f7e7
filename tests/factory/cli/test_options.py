"""The options of `factory round/run/eval` are RunConfig's fields: same flags, same meanings, same
defaults as before they were derived; and every command's sandbox defaults to docker."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from factory.cli.evaluate import eval_config_from
from factory.cli.main import build_parser, main
from factory.cli.rounds import run_config_from, setting_flag
from factory.config import RunConfig
from factory.loop.evaluate import eval_settings


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_without_flags_a_round_runs_with_run_config_defaults():
    args = parse("round", "--run-dir", "d")
    assert args.run_dir == Path("d") and run_config_from(args) == RunConfig()
    assert args.sandbox == "docker" and args.workers is None


def test_every_run_setting_is_an_option_of_round_and_run():
    for command in (("round",), ("run", "--rounds", "1")):
        parser = build_parser()
        sub = parser._subparsers._group_actions[0].choices[command[0]]
        options = {option for action in sub._actions for option in action.option_strings}
        for f in fields(RunConfig):
            assert setting_flag(f.name) in options, f.name
        assert {"--no-train", "--train", "--incremental", "--lora", "--timeout"} <= options


def test_the_flags_of_before_keep_their_meaning():
    args = parse(
        "run", "--rounds", "3", "--run-dir", "r", "--model", "m", "--backend", "vllm", "--base-url", "http://x/v1",
        "--puzzles", "7", "--attempts", "3", "--seed", "11", "--propose-examples", "2", "--solve-examples", "0",
        "--no-train", "--incremental", "--lora", "--epochs", "0.5", "--eval-samples", "4", "--eval-p3", "p.json",
        "--eval-split", "train", "--eval-limit", "9", "--sandbox", "process", "--workers", "2", "--timeout", "3",
    )
    assert args.rounds == 3 and args.sandbox == "process" and args.workers == 2
    assert run_config_from(args) == RunConfig(
        model="m", backend="vllm", base_url="http://x/v1", puzzles=7, attempts=3, seed=11, propose_examples=2,
        solve_examples=0, train=False, incremental=True, lora=True, epochs=0.5, eval_samples=4, eval_p3="p.json",
        eval_split="train", eval_limit=9, timeout_s=3.0,
    )


def test_newly_exposed_settings_parse_to_their_types():
    config = run_config_from(parse(
        "round", "--run-dir", "r", "--batch-size", "4", "--max-new-tokens", "64", "--temperature", "0",
        "--propose-temperature", "1.1", "--top-p", "0.5", "--max-pairs-per-puzzle", "2", "--learning-rate", "1e-3",
        "--eval-ks", "1,2,4", "--no-lora", "--train",
    ))
    assert config == RunConfig(batch_size=4, max_new_tokens=64, temperature=0.0, propose_temperature=1.1, top_p=0.5,
                               max_pairs_per_puzzle=2, learning_rate=1e-3, eval_ks=(1, 2, 4))


def test_eval_builds_the_same_settings_a_round_evaluates_with():
    args = parse("eval", "--model", "m", "--samples", "4", "--k", "1,4", "--examples", "2", "--limit", "3",
                 "--split", "train", "--timeout", "1.5", "--p3", "x/puzzles.json")
    config = eval_config_from(args)
    assert args.sandbox == "docker"
    assert config == RunConfig(model="m", train=False, eval_samples=4, eval_ks=(1, 4), solve_examples=2,
                               eval_limit=3, eval_split="train", timeout_s=1.5, eval_p3="x/puzzles.json")
    assert eval_settings(config).ks == (1, 4) and eval_settings(config).examples == 2
    defaults = eval_config_from(parse("eval"))
    assert (defaults.eval_samples, defaults.eval_ks, defaults.solve_examples, defaults.timeout_s) == (5, (1, 5), 1, 2.0)
    assert eval_config_from(parse("eval", "--backend", "openai", "--model", "served")).train is False


@pytest.mark.parametrize("argv", [["verify", "in.jsonl", "--out", "o"], ["round", "--run-dir", "d"],
                                  ["run", "--rounds", "1", "--run-dir", "d"], ["eval"]])
def test_every_command_defaults_to_the_docker_sandbox(argv):
    assert parse(*argv).sandbox == "docker"


@pytest.mark.parametrize(("argv", "message"), [
    (["round", "--run-dir", "d", "--eval-samples", "2", "--eval-ks", "5"],
     "factory: eval_ks [5]: every k exceeds eval_samples = 2 (flag --eval-ks)\n"),
    (["eval", "--samples", "2", "--k", "5"], "factory: eval_ks [5]: every k exceeds eval_samples = 2 (flag --k)\n"),
    (["eval", "--limit", "-1"], "factory: eval_limit must be at least 1 (got -1) (flag --limit)\n"),
    (["round", "--run-dir", "d", "--timeout", "0"], "factory: timeout_s must be positive (got 0.0) (flag --timeout)\n"),
    (["eval", "--backend", "openai"],
     'factory: model is required with backend = "openai": the name the server serves (flag --model)\n'),
])
def test_a_refused_setting_names_it_and_its_flag(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err == message
    assert not (tmp_path / "d").exists()  # refused before the run directory was touched


def test_a_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["round", "--run-dir", "d", "--eval-ks", "1,x"])
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        "factory: round: argument --eval-ks: expected comma-separated integers such as 1,5, got '1,x' "
        "(see `factory round --help`)\n"
    )


def test_export_options_are_export_settings_fields():
    from factory.outputs.export_settings import ExportSettings
    from factory.settings import record_from_args

    args = parse("export", "r", "--out", "o", "--exclude-near", "seeds-test", "--exclude-near", "x", "--force",
                 "--exclude-near-p3", "p.json", "--near-threshold", "0.5", "--no-reverify", "--max-per-puzzle", "2")
    assert record_from_args(ExportSettings, args) == ExportSettings(
        force=True, exclude_near=("seeds-test", "x"), exclude_near_p3=(Path("p.json"),), near_threshold=0.5,
        reverify=False, max_per_puzzle=2,
    )
    assert record_from_args(ExportSettings, parse("export", "r", "--out", "o")) == ExportSettings()


@pytest.mark.parametrize(("argv", "message"), [
    (["--private"], "factory: private only applies with push_to_hub USER/NAME (flag --no-private)\n"),
    (["--near-threshold", "1.5"], "factory: near_threshold must be in (0, 1] (got 1.5) (flag --near-threshold)\n"),
    (["--format", "preference", "--max-per-puzzle", "3"],
     "factory: max_per_puzzle only applies with format sft (flag --max-per-puzzle)\n"),
])
def test_a_refused_export_setting_names_its_flag(tmp_path, capsys, argv, message):
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "out"), *argv]) == 2
    assert capsys.readouterr().err == message
    assert not (tmp_path / "out").exists()
