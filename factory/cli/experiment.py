"""`factory experiment`: control arms that differ only in what they train on (factory.loop.experiment).

The round settings are the options of `factory run` (derived from RunConfig); every arm runs with them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from factory.cli.rounds import add_settings, run_config_from
from factory.cli.sandbox import add_sandbox_options, generation_options, open_sandbox_from
from factory.errors import UserError


def cmd_experiment(args: argparse.Namespace) -> int:
    from factory.loop.arms import parse_arms
    from factory.loop.experiment import check_arms, check_settings, run_experiment
    from factory.outputs.comparison import (
        EXPERIMENT_FILENAME,
        comparison,
        format_comparison,
        write_comparison,
    )
    from factory.store.lock import RunLock

    if args.rounds < 1:
        raise UserError("--rounds must be at least 1")
    config = run_config_from(args)
    arms = parse_arms(args.arms)
    check_settings(config)
    with RunLock(args.run_dir):  # settings, arms and stores are checked before any sandbox starts
        check_arms(args.run_dir, config, arms)
        with open_sandbox_from(args) as sandbox:
            run_experiment(
                args.run_dir, config, args.rounds, arms, sandbox, generation=generation_options(args),
                after_round=write_comparison,
            )
    print(format_comparison(comparison(args.run_dir)))
    print(json.dumps({"experiment": str(Path(args.run_dir) / EXPERIMENT_FILENAME)}))
    return 0


def add_experiment_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment",
        help="control arms: verified vs unverified vs seeds-only data, and training objectives, equal steps (resumable)",
        description=(
            "Run arms that differ only in what they fine-tune on (verified: seeds + verified pairs; "
            "unverified: seeds + the same attempts without verification; seeds-only: seeds alone; dpo, spin, sft+dpo: "
            "the verified arm's data with that training objective; grpo: online RL on solve prompts of its "
            "puzzles and the seeds, rewarded by the sandbox; sft+learnability, sft+novelty: resampled by "
            "learnability or novelty; sft+proposer: the propose listings resampled by the proposer's "
            "learnability reward), with the same base model, optimizer steps (dpo and spin: their own "
            "epochs over their rows) and evaluation. Each arm is a run directory DIR/ARM; "
            "round 1 generates once (in DIR/verified) and the other arms copy it. Rerun to resume."
        ),
    )
    p.add_argument("--run-dir", type=Path, required=True, help="the experiment's directory (one run dir per arm)")
    p.add_argument("--rounds", type=int, required=True, help="rounds each arm runs")
    p.add_argument(
        "--arms", default="verified,unverified,seeds-only", metavar="A,A",
        help="comma-separated arms among verified (= sft), unverified, seeds-only, dpo, spin, sft+dpo, grpo, "
        "sft+learnability, sft+novelty, sft+proposer; "
        "verified is required (default: verified, unverified, seeds-only)",
    )
    add_settings(p)
    add_sandbox_options(p)
    p.set_defaults(handler=cmd_experiment)
