"""The `factory` command: a thin layer over library functions, one small handler per subcommand."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from factory.errors import UserError
from sandbox.engine import SandboxUnavailable

SANDBOX_EXIT = 3


def add_sandbox_options(parser: argparse.ArgumentParser, timeout: float = 5.0) -> None:
    parser.add_argument(
        "--sandbox",
        choices=("docker", "process", "auto"),
        default="auto",
        help="where untrusted code runs (default: docker when an engine is reachable)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="parallel sandbox workers (default: CPU count)"
    )
    parser.add_argument("--timeout", type=float, default=timeout, help="seconds each of g and f may run")


def open_sandbox_from(args: argparse.Namespace):
    from sandbox.backend import open_sandbox

    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.timeout <= 0:
        raise UserError("--timeout must be positive")
    return open_sandbox(args.sandbox, workers=args.workers)


# ---------------------------------------------------------------- verify


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


def add_verify(subparsers) -> None:
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
    add_sandbox_options(p)
    p.set_defaults(handler=cmd_verify)


# ---------------------------------------------------------------- sandbox build / status


def cmd_sandbox_build(args: argparse.Namespace) -> int:
    from sandbox.engine import docker_client
    from sandbox.image import build_image

    tag = build_image(docker_client(timeout_s=600), base=args.base, log=lambda m: print(m, file=sys.stderr))
    print(tag)
    return 0


def cmd_sandbox_status(args: argparse.Namespace) -> int:
    from sandbox.engine import docker_client, leftover_containers, sandbox_containers
    from sandbox.image import has_image, image_tag

    tag = image_tag()
    try:
        client = docker_client()
    except SandboxUnavailable as e:
        print(f"engine:     unreachable ({e})")
        print(f"image:      {tag} (unknown)")
        return SANDBOX_EXIT
    version = client.version().get("Version", "?")
    print(f"engine:     reachable (Docker {version})")
    print(
        f"image:      {tag} {'present' if has_image(client, tag) else 'MISSING: run `factory sandbox build`'}"
    )
    live = sandbox_containers(client)
    leftovers = leftover_containers(client)
    print(
        f"containers: {len(live) - len(leftovers)} in use, {len(leftovers)} left over by dead runs"
        + (" (removed at the next start)" if leftovers else "")
    )
    return 0


def add_sandbox(subparsers) -> None:
    p = subparsers.add_parser("sandbox", help="build or inspect the Docker sandbox")
    sub = p.add_subparsers(dest="sandbox_command", required=True)
    build = sub.add_parser("build", help="build the sandbox image (offline base image when it cannot pull)")
    build.add_argument("--base", default=None, help="base image (default python:3.11-slim)")
    build.set_defaults(handler=cmd_sandbox_build)
    status = sub.add_parser("status", help="engine reachable? image present? leftover containers?")
    status.set_defaults(handler=cmd_sandbox_status)


# ---------------------------------------------------------------- main

COMMANDS = [add_verify, add_sandbox]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="factory", description="A verified code self-play data factory.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def terminate(signum: int, frame: object) -> None:
    # Unwind through every `finally` and `with`, so that containers are removed.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, terminate)
    try:
        return args.handler(args)
    except UserError as e:
        print(f"factory: {e}", file=sys.stderr)
        return e.exit_code
    except SandboxUnavailable as e:
        print(f"factory: sandbox unavailable: {e}", file=sys.stderr)
        return SANDBOX_EXIT
    except KeyboardInterrupt:
        print("factory: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
