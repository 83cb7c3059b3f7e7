"""`factory round` and `factory run`: thin handlers over factory.loop (`factory eval`: factory.cli.evaluate).

The run settings' options are generated from ``dataclasses.fields(RunConfig)``: one option per field,
spelt ``--`` + the name with dashes (``flag`` in the field's metadata where it differs: ``--timeout``
for ``timeout_s``), booleans as ``--name/--no-name``, ``eval_ks`` as comma-separated integers, with
the field's default, ``choices`` and help. Validation is RunConfig's alone; its errors name the field,
and the CLI adds the flag that sets it.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import Field, fields
from pathlib import Path

from factory.cli.sandbox import add_sandbox_options, generation_options, open_sandbox_from
from factory.config import RunConfig
from factory.errors import SettingError, UserError

SETTINGS: dict[str, Field] = {f.name: f for f in fields(RunConfig)}
_HINTS = typing.get_type_hints(RunConfig)


def value_type(name: str) -> type:
    """``int``, ``float``, ``str``, ``bool`` or ``tuple`` (a ``tuple[int, ...]``): the type of the
    values of setting ``name``, None left out."""
    hint = _HINTS[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def int_list(text: str) -> tuple[int, ...]:
    """``"1,5,10"`` -> ``(1, 5, 10)``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,5, got {text!r}") from None


def setting_flag(name: str) -> str:
    return SETTINGS[name].metadata.get("flag", "--" + name.replace("_", "-"))


def add_settings(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """One option per RunConfig field (all, or ``names``), derived from the field."""
    wanted = set(SETTINGS) if names is None else set(names)
    for name, f in SETTINGS.items():
        if name not in wanted:
            continue
        kind = value_type(name)
        help = f.metadata["help"].replace("%", "%%")
        if f.default is not None:
            shown = ",".join(map(str, f.default)) if kind is tuple else f.default
            help += f" (default: {shown})"
        flag = setting_flag(name)
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=f.default, help=help)
        elif kind is tuple:
            parser.add_argument(flag, dest=name, type=int_list, default=f.default, metavar="K,K", help=help)
        else:
            parser.add_argument(
                flag, dest=name, type=kind, default=f.default, choices=f.metadata.get("choices"),
                metavar=None if f.metadata.get("choices") else {int: "N", float: "X"}.get(kind, name.upper()),
                help=help,
            )


def config_from(values: dict, flags: Mapping[str, str]) -> RunConfig:
    """``RunConfig(**values)``; a refused value is a UserError naming the setting and its flag."""
    try:
        return RunConfig(**values)
    except SettingError as e:
        flag = flags.get(e.setting)
        raise UserError(f"{e} (flag {flag})" if flag else str(e)) from None


def run_config_from(args: argparse.Namespace) -> RunConfig:
    values = {name: getattr(args, name) for name in SETTINGS}
    flags = {name: setting_flag(name) for name in SETTINGS}
    for name in SETTINGS:  # a refused boolean: the flag that turns it the other way
        if value_type(name) is bool:
            flags[name] = "--no-" + flags[name][2:] if values[name] else flags[name]
    return config_from(values, flags)


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
    return run_until(args, None)


def cmd_run(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        raise UserError("--rounds must be at least 1")
    return run_until(args, args.rounds)


def add_round_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-dir", type=Path, required=True, help="the run's store, checkpoints and summaries"
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
