"""`factory export` and `factory report`: thin handlers over factory.outputs (export, hub, report).
`factory export`'s options are ExportSettings' fields (factory.outputs.export_settings).

``add_export_commands(subparsers)`` registers both with the main `factory` parser.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from factory.cli.sandbox import add_sandbox_options, open_sandbox_from, sandbox_settings_from
from factory.errors import UserError
from factory.outputs.dataset_card import PREFERENCE
from factory.outputs.export_settings import ExportSettings
from factory.settings import add_options, record_from_args
from sandbox.backend import log_to_stderr


def check_out_dir(out: Path) -> None:
    """The --out checks, said in flags (the library says the same in its own terms)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a directory")


# ---------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    from factory.outputs.export import Reverify, export_dataset, run_timeout
    from factory.outputs.export_filters import ExportFilters, near_set, near_set_p3, parse_rounds
    from factory.outputs.hub import hub_target, push_to_hub
    from factory.outputs.preference_export import PreferenceFilters, export_preferences

    s = record_from_args(ExportSettings, args)
    sandbox_settings_from(args)
    # Everything a push needs without the network is checked before any work is done.
    target = hub_target(s.push_to_hub, private=s.private) if s.push_to_hub else None
    near = tuple(near_set(name, s.near_threshold) for name in s.exclude_near)
    near += tuple(near_set_p3(path, s.p3_split, s.near_threshold) for path in s.exclude_near_p3)
    filters = ExportFilters(
        include_seeds=s.include_seeds,
        rounds=parse_rounds(s.rounds) if s.rounds is not None else None,
        min_solve_rate=s.min_solve_rate,
        max_per_puzzle=s.max_per_puzzle,
        near=near,
    )
    check_out_dir(args.out)
    if args.out.is_dir() and any(args.out.iterdir()) and not s.force:
        raise UserError(
            f"--out {args.out} is not empty: choose a new directory, or pass --force to replace an earlier export"
        )
    if s.format == PREFERENCE:
        export = functools.partial(export_preferences, filters=PreferenceFilters(rounds=filters.rounds))
    else:
        export = functools.partial(export_dataset, filters=filters)
    if not s.reverify:
        result = export(args.run_dir, args.out, force=s.force, license=s.license)
    else:
        timeout = s.timeout or run_timeout(args.run_dir)  # a bad run directory fails before the sandbox starts
        with open_sandbox_from(args) as sandbox:
            check = Reverify(sandbox, timeout, s.reverify_sample)
            result = export(args.run_dir, args.out, force=s.force, license=s.license, reverify=check)
    removed = ", ".join(f"{name} {n}" for name, n in result.dropped.items() if n) or "nothing"
    by_round = ", ".join(f"round {r}: {n}" for r, n in result.rows_by_round.items())
    what = "preference pairs" if s.format == PREFERENCE else "pairs"
    log_to_stderr(f"exported {result.rows} {what} over {result.puzzles} puzzles ({by_round}); filters removed {removed}")
    if result.reverified is not None:
        log_to_stderr(f"re-verified at export: {result.reverified.describe()}")
    if target is not None:
        url = push_to_hub(result.out_dir, target, log=log_to_stderr)
        log_to_stderr(f"pushed to {url}")
    print(result.out_dir)
    return 0


def add_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a run's verified pairs as a Hugging Face dataset (parquet + card)",
        description=(
            "Write the verified (puzzle, solution) pairs of a run as a Hugging Face dataset: "
            "DIR/data/train-00000-of-00001.parquet and DIR/README.md (the dataset card). "
            "datasets.load_dataset(DIR) loads it. By default only generated pairs are exported; "
            "the filters apply to generated pairs (seed rows, with --include-seeds, are kept whole)."
        ),
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run directory (its factory.sqlite)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to write the dataset to")
    add_options(p, ExportSettings)
    add_sandbox_options(p, generation=False)
    p.set_defaults(handler=cmd_export)


# ---------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    from factory.outputs.comparison import is_experiment
    from factory.outputs.report import write_report

    check_out_dir(args.out)
    if len(args.run_dir) > 1 or is_experiment(args.run_dir[0]):
        return cmd_compare(args)
    result = write_report(args.run_dir[0], args.out)
    log_to_stderr(f"wrote {len(result.images)} plots and {result.index.name} to {result.out_dir}")
    print(result.index)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """`factory report` on an experiment directory or several run directories: one curve per run."""
    from factory.outputs.report.compare import write_comparison_report

    index = write_comparison_report(args.run_dir, args.out)
    log_to_stderr(f"wrote the comparison of {', '.join(map(str, args.run_dir))} to {index.parent}")
    print(index)
    return 0


def add_report(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="plots and a static HTML page of a run (pass@k, funnel, verdicts, throughput, diversity)",
        description="Write PNG plots and DIR/index.html from a run's store.",
    )
    p.add_argument(
        "run_dir", type=Path, nargs="+", metavar="RUN_DIR",
        help="the run directory (its factory.sqlite); an experiment's directory, or several run "
        "directories, for one pass@k curve per arm or run",
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="directory for the PNGs and index.html"
    )
    p.set_defaults(handler=cmd_report)


def add_export_commands(subparsers) -> None:
    """Register `export` and `report` with the `factory` parser's subparsers."""
    add_export(subparsers)
    add_report(subparsers)
