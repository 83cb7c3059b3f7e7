"""`factory export` and `factory report`: thin handlers over factory.outputs (export, hub, report).

``add_export_commands(subparsers)`` registers both with the main `factory` parser.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from factory.cli.sandbox import add_sandbox_options, open_sandbox_from
from factory.errors import UserError
from factory.outputs.dataset_card import PREFERENCE, SFT
from puzzles.canonical import NEAR_DUPLICATE_THRESHOLD


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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

    if args.private and not args.push_to_hub:
        raise UserError("--private only applies with --push-to-hub USER/NAME")
    threshold = NEAR_DUPLICATE_THRESHOLD if args.near_threshold is None else args.near_threshold
    if not 0.0 < threshold <= 1.0:
        raise UserError(f"--near-threshold must be in (0, 1] (got {threshold})")
    # Everything a push needs without the network is checked before any work is done.
    target = hub_target(args.push_to_hub, private=args.private) if args.push_to_hub else None
    near = tuple(near_set(name, threshold) for name in args.exclude_near)
    near += tuple(near_set_p3(path, args.p3_split, threshold) for path in args.exclude_near_p3)
    filters = ExportFilters(
        include_seeds=args.include_seeds,
        rounds=parse_rounds(args.rounds) if args.rounds is not None else None,
        min_solve_rate=args.min_solve_rate,
        max_per_puzzle=args.max_per_puzzle,
        near=near,
    )
    check_out_dir(args.out)
    if args.out.is_dir() and any(args.out.iterdir()) and not args.force:
        raise UserError(
            f"--out {args.out} is not empty: choose a new directory, or pass --force to replace an earlier export"
        )
    if args.reverify_sample is not None and args.reverify_sample < 1:
        raise UserError(f"--reverify-sample must be at least 1 (got {args.reverify_sample})")
    if args.timeout is not None and args.timeout <= 0:
        raise UserError(f"--timeout must be positive (got {args.timeout})")
    if args.format == PREFERENCE:
        sft_only = [flag for flag, given in (
            ("--include-seeds", args.include_seeds), ("--min-solve-rate", args.min_solve_rate is not None),
            ("--max-per-puzzle", args.max_per_puzzle is not None), ("--exclude-near", bool(near)),
            ("--reverify-sample", args.reverify_sample is not None)) if given]
        if sft_only:
            raise UserError(f"{', '.join(sft_only)} only apply with --format sft")
        export = functools.partial(export_preferences, filters=PreferenceFilters(rounds=filters.rounds))
    else:
        export = functools.partial(export_dataset, filters=filters)
    if not args.reverify:
        result = export(args.run_dir, args.out, force=args.force, license=args.license)
    else:
        timeout = args.timeout or run_timeout(args.run_dir)  # a bad run directory fails before the sandbox starts
        with open_sandbox_from(args) as sandbox:
            check = Reverify(sandbox, timeout, args.reverify_sample)
            result = export(args.run_dir, args.out, force=args.force, license=args.license, reverify=check)
    removed = ", ".join(f"{name} {n}" for name, n in result.dropped.items() if n) or "nothing"
    by_round = ", ".join(f"round {r}: {n}" for r, n in result.rows_by_round.items())
    what = "preference pairs" if args.format == PREFERENCE else "pairs"
    log(f"exported {result.rows} {what} over {result.puzzles} puzzles ({by_round}); filters removed {removed}")
    if result.reverified is not None:
        log(f"re-verified at export: {result.reverified.describe()}")
    if target is not None:
        url = push_to_hub(result.out_dir, target, log=log)
        log(f"pushed to {url}")
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
    p.add_argument("--force", action="store_true", help="replace an earlier export in DIR")
    p.add_argument(
        "--format", choices=(SFT, PREFERENCE), default=SFT,
        help="sft: verified (puzzle, solution) pairs (default); preference: prompt/chosen/rejected rows for "
        "DPO, a verified solution over a failed attempt at the same puzzle (--rounds applies)",
    )
    p.add_argument("--include-seeds", action="store_true", help="also export the seed puzzles' pairs")
    p.add_argument("--rounds", metavar="SPEC", help="only pairs of these rounds, e.g. 1-3 or 2,3 or 1-2,5")
    p.add_argument(
        "--min-solve-rate",
        type=float,
        metavar="X",
        help="only puzzles whose attempts in their round were verified at least this often (0..1)",
    )
    p.add_argument(
        "--max-per-puzzle", type=int, metavar="N", help="at most N solutions per puzzle, shortest first"
    )
    p.add_argument(
        "--exclude-near",
        action="append",
        default=[],
        metavar="NAME",
        help="drop puzzles equal or near to an evaluation set: seeds-test (repeatable)",
    )
    p.add_argument(
        "--exclude-near-p3",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="drop puzzles equal or near to P3's puzzles (puzzles.json; repeatable)",
    )
    p.add_argument(
        "--p3-split",
        choices=("test", "train", "all"),
        default="test",
        help="which P3 split --exclude-near-p3 compares with (default: test)",
    )
    p.add_argument(
        "--near-threshold",
        type=float,
        default=None,
        metavar="S",
        help="similarity at or above which a puzzle counts as near (default: 0.8, the decontamination threshold)",
    )
    p.add_argument("--license", default="mit", help="licence identifier for the card (default: mit)")
    p.add_argument(
        "--push-to-hub", metavar="USER/NAME", help="also push the dataset and card to the Hugging Face Hub"
    )
    p.add_argument(
        "--private", action="store_true", help="with --push-to-hub: create the Hub repository private"
    )
    p.add_argument(
        "--reverify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="verify every exported pair again in a fresh sandbox and leave out any that fails (default: on)",
    )
    p.add_argument("--reverify-sample", type=int, metavar="N", help="re-verify only a random sample of N pairs")
    p.add_argument(
        "--timeout", type=float, default=None, metavar="S",
        help="re-verification: seconds each of g and f may run (default: the run's timeout_s)",
    )
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
    log(f"wrote {len(result.images)} plots and {result.index.name} to {result.out_dir}")
    print(result.index)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """`factory report` on an experiment directory or several run directories: one curve per run."""
    from factory.outputs.report.compare import write_comparison_report

    index = write_comparison_report(args.run_dir, args.out)
    log(f"wrote the comparison of {', '.join(map(str, args.run_dir))} to {index.parent}")
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
