"""``factory daemon``, ``factory init`` and ``factory status``: thin handlers over factory.daemon.daemon,
factory.daemon.config and factory.outputs.status. ``factory.cli.main`` registers them with
``add_daemon_commands(subparsers)``; ``main`` maps their errors to one line and an exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from factory.daemon.config import DEFAULT_CONFIG_NAME


def cmd_daemon(args: argparse.Namespace) -> int:
    from factory.daemon.config import load_config
    from factory.daemon.daemon import quiet_libraries, run_daemon

    config = load_config(args.config)  # every mistake in the file is reported before anything starts
    quiet_libraries()
    return run_daemon(config)


def cmd_init(args: argparse.Namespace) -> int:
    from factory.daemon.config import write_example_config

    path = write_example_config(args.path)
    print(f"wrote {path}: edit [run] run_dir and the settings you need, then `factory daemon --config {path}`",
          file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from factory.outputs.status import format_status, read_status

    status = read_status(args.run_dir)
    print(json.dumps(status.to_json(), indent=2) if args.json else format_status(status))
    return 0


def add_daemon_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "daemon",
        help="run self-play rounds unattended until a stop condition (config file)",
        description="Run rounds until the config's [stop] condition, SIGTERM/SIGINT, or forever. Safe to kill "
        "at any moment: started again, it resumes where the store says. Logs one JSON object per line.",
    )
    p.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG_NAME),
                   help=f"the TOML config (default ./{DEFAULT_CONFIG_NAME}; write one with `factory init`)")
    p.set_defaults(handler=cmd_daemon)
    p = subparsers.add_parser("init", help="write a commented example daemon config (never overwrites)")
    p.add_argument("path", nargs="?", type=Path, default=Path(DEFAULT_CONFIG_NAME),
                   help=f"where to write it (default ./{DEFAULT_CONFIG_NAME})")
    p.set_defaults(handler=cmd_init)
    p = subparsers.add_parser("status", help="summary of a running or finished run (read-only)")
    p.add_argument("run_dir", type=Path, help="the run directory")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(handler=cmd_status)
