"""Where a self-play round spends its time: generation, verification, training, evaluation.

    python benchmarks/bench_round.py --puzzles 32 --attempts 4 [--model DIR] [--sandbox docker]

Runs one round in a fresh temporary run directory and prints each stage's seconds and share of
the round, plus generation tokens/s, all from the timings the round stored.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from factory.config import RunConfig
from factory.loop.context import prepare_run  # noqa: E402
from factory.loop.rounds import run_round  # noqa: E402
from sandbox.backend import open_sandbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--puzzles", type=int, default=32)
    parser.add_argument("--attempts", type=int, default=4)
    parser.add_argument("--eval-samples", type=int, default=2)
    parser.add_argument("--eval-limit", type=int, default=32)
    parser.add_argument("--sandbox", default="docker", choices=("docker", "process", "auto"))
    args = parser.parse_args()
    config = RunConfig(
        model=args.model,
        puzzles=args.puzzles,
        attempts=args.attempts,
        eval_samples=args.eval_samples,
        eval_ks=(1,),
        eval_limit=args.eval_limit,
    )
    with tempfile.TemporaryDirectory() as run_dir, open_sandbox(args.sandbox, log=lambda m: None) as sandbox:
        with prepare_run(Path(run_dir), config, sandbox, log=lambda m: None, show_progress=False) as ctx:
            print(f"model: {ctx.base_model}")  # builds the embedded model outside the timed round
            start = time.perf_counter()
            summary = run_round(ctx, 1)
            total = time.perf_counter() - start
    timings = summary["timings"]
    groups = {
        "generation": sum(v for k, v in timings.items() if k.endswith("generate")),
        "verification": timings.get("solve.verify", 0.0)
        + timings.get("propose.filter", 0.0)
        + timings.get("eval.verify", 0.0),
        "training": timings.get("train", 0.0),
    }
    groups["other"] = max(0.0, total - sum(groups.values()))
    print(
        f"round of {args.puzzles} puzzles x {args.attempts} attempts, {total:.1f} s in all ({sandbox.kind} sandbox)"
    )
    for name, seconds in groups.items():
        print(f"{name:14s} {seconds:8.1f} s  {100 * seconds / total:5.1f} %")
    print(f"generation: {summary['tokens']} tokens at {summary['tokens_per_second']:.0f} tokens/s")
    print("funnel:", summary["funnel"])


if __name__ == "__main__":
    main()
