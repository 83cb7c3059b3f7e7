"""`factory verify`: a thin handler over factory.verify_files (one verdict per (f, g) pair)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from factory.cli.sandbox import add_sandbox_options, open_sandbox_from
from factory.errors import UserError
from sandbox.verdicts import DEFAULT_TIMEOUT_S


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {value:g})")
    return value


def cmd_verify(args: argparse.Namespace) -> int:
    from factory.verify_files import read_pairs_jsonl, verify_p3, verify_records

    if (args.input is None) == (args.p3 is None):
        raise UserError("give either INPUT.jsonl (with --out) or --p3 PATH")
    if args.input is not None and args.out is None:
        raise UserError("--out RESULTS.jsonl is required with INPUT.jsonl")
    records = (
        read_pairs_jsonl(args.input) if args.input is not None else None
    )  # bad input fails before any sandbox starts
    with open_sandbox_from(args) as sandbox:
        if records is not None:
            report = verify_records(records, args.out, sandbox, args.timeout)
        else:
            report, rows = verify_p3(args.p3, sandbox, args.timeout, args.split, args.out)
            failures = [row for row in rows if row["status"] != "verified"]
            for row in failures[: args.show_failures]:
                print(f"{row['id']}: {row['status']}: {row['detail']}", file=sys.stderr)
    print(report.table(), file=sys.stderr)
    return 0


def add_verify_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "verify",
        help="verify (f, g) pairs in the sandbox",
        description="Verify (puzzle, solution) pairs: one verdict per pair.",
    )
    p.add_argument("input", nargs="?", type=Path, help='JSONL, one {"id", "f", "g"} object per line')
    p.add_argument("--out", type=Path, help="RESULTS.jsonl: one {id, status, seconds, detail} per input line")
    p.add_argument("--p3", type=Path, help="verify the reference solutions of P3's puzzles.json instead")
    p.add_argument("--split", choices=("train", "test", "none"), help="with --p3: only this split")
    p.add_argument("--show-failures", type=int, default=50, help="with --p3: list at most this many failures")
    add_sandbox_options(p, generation=False)
    p.add_argument(
        "--timeout", type=positive_float, default=DEFAULT_TIMEOUT_S,
        help=f"seconds each of g and f may run (default: {DEFAULT_TIMEOUT_S:g})",
    )
    p.set_defaults(handler=cmd_verify)
