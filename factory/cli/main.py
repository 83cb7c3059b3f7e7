"""The `factory` command: a thin layer over library functions, one small handler per subcommand."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import warnings
from pathlib import Path

from factory.cli.daemon import add_daemon_commands
from factory.cli.outputs import add_export_commands
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


# ---------------------------------------------------------------- round / run / eval


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, help="checkpoint dir or Hub id (default: the embedded tiny model)"
    )
    parser.add_argument("--backend", choices=("transformers", "vllm", "openai"), default="transformers")
    parser.add_argument(
        "--base-url", default=None, help="openai backend: the server, e.g. http://localhost:8000/v1"
    )


def add_round_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-dir", type=Path, required=True, help="the run's store, checkpoints and summaries"
    )
    add_model_options(parser)
    parser.add_argument("--puzzles", type=int, default=128, help="puzzles proposed per round")
    parser.add_argument("--attempts", type=int, default=8, help="solutions sampled per new puzzle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--propose-examples", type=int, default=3, help="puzzles shown in a propose prompt")
    parser.add_argument("--solve-examples", type=int, default=1, help="(f, g) pairs shown in a solve prompt")
    parser.add_argument("--no-train", action="store_true", help="skip fine-tuning")
    parser.add_argument(
        "--incremental", action="store_true", help="fine-tune the last checkpoint, not the base"
    )
    parser.add_argument("--lora", action="store_true", help="fine-tune LoRA adapters (peft) and merge them")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument(
        "--eval-samples", type=int, default=5, help="samples per held-out puzzle (n of pass@k)"
    )
    parser.add_argument(
        "--eval-p3", default=None, help="evaluate on P3's puzzles.json instead of the held-out seeds"
    )
    parser.add_argument("--eval-split", default="test", choices=("train", "test"))
    parser.add_argument("--eval-limit", type=int, default=None, help="only the first N evaluation puzzles")
    add_sandbox_options(parser, timeout=2.0)


def run_config_from(args: argparse.Namespace):
    from factory.config import RunConfig

    return RunConfig(
        model=args.model,
        backend=args.backend,
        base_url=args.base_url,
        seed=args.seed,
        puzzles=args.puzzles,
        attempts=args.attempts,
        propose_examples=args.propose_examples,
        solve_examples=args.solve_examples,
        train=not args.no_train,
        incremental=args.incremental,
        lora=args.lora,
        epochs=args.epochs,
        eval_samples=args.eval_samples,
        eval_p3=args.eval_p3,
        eval_split=args.eval_split,
        eval_limit=args.eval_limit,
        timeout_s=args.timeout,
    )


def run_rounds(args: argparse.Namespace, until_finished: int | None) -> int:
    """Runs the next round (``until_finished`` None) or rounds until that many are finished."""
    from factory.loop.run import SelfPlayRun, run_rounds
    from factory.store.lock import RunLock

    config = run_config_from(args)
    with RunLock(args.run_dir), open_sandbox_from(args) as sandbox, SelfPlayRun(args.run_dir, config, sandbox) as run:
        target = run.finished_rounds() + 1 if until_finished is None else until_finished
        run_rounds(run, lambda r: f"{target} rounds are finished" if r.finished_rounds() >= target else None)
    return 0


def cmd_round(args: argparse.Namespace) -> int:
    return run_rounds(args, None)


def cmd_run(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        raise UserError("--rounds must be at least 1")
    return run_rounds(args, args.rounds)


def cmd_eval(args: argparse.Namespace) -> int:
    from factory.config import RunConfig
    from factory.loop.corpus import embedded_model_path, eval_set, seed_training_pairs
    from factory.loop.evaluate import eval_settings, evaluate
    from factory.models import load_backend

    ks = tuple(int(k) for k in args.k.split(","))
    name, puzzles = eval_set(args.p3, args.split)
    if args.limit:
        puzzles = puzzles[: args.limit]
    options = {"base_url": args.base_url} if args.backend == "openai" and args.base_url else {}
    model = args.model if args.model is not None or args.backend == "openai" else embedded_model_path()
    backend = load_backend(args.backend, model, **options)
    config = RunConfig(
        model=args.model, backend=args.backend, base_url=args.base_url, eval_samples=args.samples,
        eval_ks=ks, solve_examples=args.examples, timeout_s=args.timeout,
    )
    settings = eval_settings(config)
    with open_sandbox_from(args) as sandbox:
        result = evaluate(backend, puzzles, seed_training_pairs(), sandbox, name, settings)
    backend.close()
    report = {
        "dataset": name,
        "model": backend.name,
        "puzzles": result.total,
        "samples": result.samples,
        "solved_puzzles": result.solved_puzzles,
        "pass_at_k": {str(k): v for k, v in result.pass_at_k.items()},
        "seconds": result.seconds,
        "tokens": result.tokens,
    }
    print(json.dumps(report, indent=2))
    return 0


def add_round(subparsers) -> None:
    p = subparsers.add_parser("round", help="run one self-play round (resumes an unfinished one)")
    add_round_options(p)
    p.set_defaults(handler=cmd_round)
    p = subparsers.add_parser("run", help="run self-play rounds until N are finished (resumable)")
    p.add_argument("--rounds", type=int, required=True)
    add_round_options(p)
    p.set_defaults(handler=cmd_run)
    p = subparsers.add_parser("eval", help="pass@k of a model on held-out puzzles, verified in the sandbox")
    add_model_options(p)
    p.add_argument("--p3", type=Path, default=None, help="P3's puzzles.json (default: the held-out seeds)")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--samples", type=int, default=10, help="n samples per puzzle")
    p.add_argument("--k", default="1,10", help="comma-separated k values")
    p.add_argument("--examples", type=int, default=1, help="(f, g) pairs shown in each prompt")
    p.add_argument("--limit", type=int, default=None, help="only the first N puzzles")
    add_sandbox_options(p, timeout=2.0)
    p.set_defaults(handler=cmd_eval)


# ---------------------------------------------------------------- main

COMMANDS = [add_verify, add_sandbox, add_round, add_export_commands, add_daemon_commands]


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
    # Model output is parsed in many places; Python's warnings about odd literals in it are noise.
    warnings.filterwarnings("ignore", category=SyntaxWarning)
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

