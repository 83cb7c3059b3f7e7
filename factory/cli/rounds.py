"""`factory round` and `factory run`: thin handlers over factory.loop (`factory eval`: factory.cli.evaluate).

The run settings' options are derived from RunConfig's fields (``factory.settings.add_options``): one
option per field, spelt ``--`` + the name with dashes (``flag`` in the field's metadata where it
differs: ``--timeout`` for ``timeout_s``), booleans as ``--name/--no-name``, ``eval_ks`` as
comma-separated integers, with the field's default, ``choices`` and help; the sandbox options likewise
from SandboxSettings. ``--config FILE`` reads the [run] table of a daemon config file (run_dir, the
sandbox keys and RunConfig's); flags given as well win. Validation is the records' alone; their errors
name the field, and the CLI adds the flag that set it, or the file.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import Field, fields
from pathlib import Path

from factory.cli.sandbox import (
    add_sandbox_options,
    generation_options,
    open_sandbox_from,
    sandbox_settings_from,
)
from factory.config import RunConfig
from factory.errors import UserError
from factory.settings import add_options, flag_of, load_toml, record_from, record_from_args, with_file_values

SETTINGS: dict[str, Field] = {f.name: f for f in fields(RunConfig)}


def setting_flag(name: str) -> str:
    return flag_of(SETTINGS[name])


def add_settings(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """One option per RunConfig field (all, or ``names``), derived from the field."""
    add_options(parser, RunConfig, names)


def config_from(values: dict, flags: Mapping[str, str]) -> RunConfig:
    """``RunConfig(**values)``; a refused value is a UserError naming the setting and its flag."""
    return record_from(RunConfig, values, lambda name: ("", f" (flag {flags[name]})" if name in flags else ""))


def run_config_from(args: argparse.Namespace) -> RunConfig:
    return record_from_args(RunConfig, args)


def with_config_file(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the settings of ``--config FILE``'s [run] table where no flag gave them, checked
    (every refused setting, and a missing run directory, before anything starts)."""
    from factory.daemon.config import read_tables, split_run_table

    if args.config is not None:
        tables = read_tables(load_toml(args.config, f"write one with `factory init {args.config}`"), args.config)
        run_dir, placement, run = split_run_table(tables["run"])
        args = with_file_values(args, {**placement, **run}, f"{args.config}: [run]")
        if args.run_dir is None:
            args.run_dir = run_dir
    if args.run_dir is None:
        raise UserError("--run-dir DIR is required (or run_dir in the [run] table of --config FILE)")
    run_config_from(args)
    sandbox_settings_from(args)
    return args


def run_until(args: argparse.Namespace, until_finished: int | None) -> int:
    """Runs the next round (``until_finished`` None) or rounds until that many are finished. The
    settings, the run lock and the store (its schema, the run's identity) are checked before any
    sandbox starts."""
    from factory.loop.context import check_run_store, prepare_run
    from factory.loop.rounds import rounds_finished, run_rounds
    from factory.store.lock import RunLock

    config = run_config_from(args)
    with RunLock(args.run_dir):
        check_run_store(args.run_dir, config)  # another run's settings are refused before any sandbox starts
        with open_sandbox_from(args) as sandbox, prepare_run(
            args.run_dir, config, sandbox, generation=generation_options(args)
        ) as ctx:
            target = ctx.finished_rounds() + 1 if until_finished is None else until_finished
            run_rounds(ctx, rounds_finished(target))
    return 0


def cmd_round(args: argparse.Namespace) -> int:
    return run_until(with_config_file(args), None)


def cmd_run(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        raise UserError("--rounds must be at least 1")
    return run_until(with_config_file(args), args.rounds)


def add_round_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-dir", type=Path, default=None,
        help="the run's store, checkpoints and summaries (required, unless the --config file names its run_dir)",
    )
    parser.add_argument(
        "--config", type=Path, default=None, metavar="FILE",
        help="read the settings of the [run] table of a daemon config file (`factory init` writes one): "
        "run_dir, the sandbox's and the run's; flags given as well win",
    )
    add_settings(parser)
    add_sandbox_options(parser)


def add_round_commands(subparsers) -> None:
    p = subparsers.add_parser("round", help="run one self-play round (resumes an unfinished one)")
    add_round_options(p)
    p.set_defaults(handler=cmd_round)
    p = subparsers.add_parser("run", help="run self-play rounds until N are finished (resumable)")
    p.add_argument("--rounds", type=int, required=True)
    add_round_options(p)
    p.set_defaults(handler=cmd_run)
