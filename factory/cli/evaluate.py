"""`factory eval`: pass@k of a model on held-out puzzles, verified in the sandbox.

Its settings are a RunConfig's (``eval_config_from``), so it and every round evaluate alike
(``factory.loop.evaluate.eval_settings``). ``--paper`` sets the paper's protocol
(``factory.loop.paper``: 100 samples at temperature 0.8, 150 new tokens, k = 1, 2, 4, ..., 64, 100);
a flag given as well wins over it. The report is JSON on stdout; progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from factory.cli.rounds import add_settings, config_from, setting_flag
from factory.cli.sandbox import add_sandbox_options, generation_options, open_sandbox_from
from factory.config import EVAL_SPLITS, RunConfig
from factory.loop.paper import PAPER_KS, PAPER_MAX_NEW_TOKENS, PAPER_SAMPLES, PAPER_TEMPERATURE
from factory.settings import int_list
from sandbox.backend import log_to_stderr

MODEL_SETTINGS = ("model", "backend", "base_url", "api", "chat_template")
SAMPLING_SETTINGS = ("temperature", "max_new_tokens")
# `factory eval` keeps its own short spellings (and defaults) for the evaluation settings.
EVAL_FLAGS = {
    **{name: setting_flag(name) for name in (*MODEL_SETTINGS, *SAMPLING_SETTINGS, "timeout_s")},
    "eval_samples": "--samples",
    "eval_ks": "--k",
    "solve_examples": "--examples",
    "eval_p3": "--p3",
    "eval_set": "--eval",
    "seeds": "--seeds",
    "eval_split": "--split",
    "eval_all_instances": "--all-instances",
    "eval_limit": "--limit",
}
# The options --paper sets, and their values without it; a flag given explicitly wins over both.
# Without --paper: a round's evaluation (its samples and k), so the two report the same figures.
PROTOCOL_DEFAULTS = {"samples": RunConfig.eval_samples, "k": RunConfig.eval_ks, "temperature": RunConfig.temperature,
                     "max_new_tokens": RunConfig.max_new_tokens}
PAPER_PROTOCOL = {"samples": PAPER_SAMPLES, "k": PAPER_KS, "temperature": PAPER_TEMPERATURE,
                  "max_new_tokens": PAPER_MAX_NEW_TOKENS}


def protocol_value(args: argparse.Namespace, name: str) -> object:
    given = getattr(args, name)
    if given is not None:
        return given
    return (PAPER_PROTOCOL if args.paper else PROTOCOL_DEFAULTS)[name]


def eval_config_from(args: argparse.Namespace) -> RunConfig:
    """The settings `factory eval` evaluates with: a RunConfig, so that it and a round's evaluation
    share one definition (``eval_settings``) and one set of rules."""
    return config_from(
        {
            **{name: getattr(args, name) for name in (*MODEL_SETTINGS, "timeout_s")},
            "train": False,  # evaluating never trains (and an openai model cannot)
            "eval_samples": protocol_value(args, "samples"),
            "eval_ks": protocol_value(args, "k"),
            "temperature": protocol_value(args, "temperature"),
            "max_new_tokens": protocol_value(args, "max_new_tokens"),
            "solve_examples": args.examples,
            "eval_p3": str(args.p3) if args.p3 is not None else None,
            "eval_set": args.eval_set,
            "seeds": args.seeds,
            "eval_split": args.split,
            "eval_all_instances": args.all_instances,
            "eval_limit": args.limit or None,  # --limit 0: every puzzle
        },
        EVAL_FLAGS,
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from factory.loop.confidence import pass_at_k_interval, rounded
    from factory.loop.context import backend_options
    from factory.loop.corpus import embedded_model_path
    from factory.loop.evaluate import eval_settings, evaluate
    from factory.loop.parts import add_parts
    from factory.loop.progress import EtaLine
    from factory.loop.run_sets import load_run_sets
    from factory.models import load_backend

    config = eval_config_from(args)
    settings = eval_settings(config)
    options = {**backend_options(config), **generation_options(args)}
    model = config.model if config.model is not None or config.backend == "openai" else embedded_model_path(config.seeds)
    backend = load_backend(config.backend, model, **options)
    try:
        with open_sandbox_from(args) as sandbox:
            seeds, chosen = load_run_sets(config, sandbox)
            name, puzzles = chosen.name, chosen.puzzles[: config.eval_limit or None]
            log_to_stderr(
                f"eval: {name}, {len(puzzles)} puzzles x {settings.samples} samples at temperature "
                f"{settings.temperature}, {settings.max_new_tokens} new tokens, k = {','.join(map(str, settings.ks))}"
            )
            result = evaluate(
                backend, puzzles, seeds.pairs, sandbox, name, settings, progress=EtaLine(log_to_stderr)
            )
    finally:
        backend.close()
    parts: dict[str, dict[str, object]] = {}
    for k in result.pass_at_k:
        add_parts(parts, result.solved, result.samples, k, name)
    report = {
        "dataset": name,
        "eval_set": chosen.record,
        "seed_set": seeds.record,
        "model": backend.name,
        "puzzles": result.total,
        "samples": result.samples,
        "temperature": settings.temperature,
        "max_new_tokens": settings.max_new_tokens,
        "solved_puzzles": result.solved_puzzles,
        "pass_at_k": {str(k): v for k, v in result.pass_at_k.items()},
        "pass_at_k_ci": {
            str(k): rounded(pass_at_k_interval(result.solved, result.samples, k)) for k in result.pass_at_k
        },
        "solved_within_k": {str(k): result.solved_within(k) for k in result.pass_at_k},
        "seconds": result.seconds,
        "tokens": result.tokens,
        "parts": parts,
        "solved": result.solved,  # puzzle key -> verified samples
    }
    print(json.dumps(report, indent=2))
    print(solved_line(result.total, report["solved_within_k"]), file=sys.stderr, flush=True)
    return 0


def solved_line(total: int, solved_within_k: dict[str, int]) -> str:
    """"solved in <= k attempts (of 228): k=1 3, k=2 5, ..." as the paper prints its results."""
    return f"solved in <= k attempts (of {total}): " + ", ".join(f"k={k} {n}" for k, n in solved_within_k.items())


def add_eval_commands(subparsers) -> None:
    p = subparsers.add_parser("eval", help="pass@k of a model on held-out puzzles, verified in the sandbox")
    add_settings(p, MODEL_SETTINGS)
    p.add_argument("--eval", dest="eval_set", default=None, metavar="PATH",
                   help='a JSONL file of {"f": ...} lines or P3\'s puzzles.json (default: the held-out seeds)')
    p.add_argument("--p3", type=Path, default=None, help="P3's puzzles.json (an alias of --eval for a P3 file)")
    p.add_argument("--seeds", default="builtin", metavar="PATH",
                   help="the seeds whose pairs are the prompts' examples: builtin, or a JSONL or P3 file")
    p.add_argument("--split", default="test", choices=EVAL_SPLITS)
    p.add_argument(
        "--all-instances", action="store_true",
        help="with --p3: every instance of each problem (test: 1,009), not the paper's set of each "
        "problem's first instance (test: 228)",
    )
    p.add_argument(
        "--paper", action="store_true",
        help="the paper's protocol: 100 samples at temperature 0.8, 150 new tokens, k = 1,2,4,...,64,100 "
        "(flags given as well win)",
    )
    p.add_argument("--samples", type=int, default=None,
                   help=f"n samples per puzzle (default: {RunConfig.eval_samples}, as a round; --paper: 100)")
    p.add_argument("--k", type=int_list, default=None, metavar="K,K",
                   help=f"the k values of pass@k (default: {','.join(map(str, RunConfig.eval_ks))}, as a round; "
                   "--paper: 1,2,4,...,64,100)")
    p.add_argument("--examples", type=int, default=1, help="(f, g) pairs shown in each prompt (default: 1)")
    p.add_argument("--limit", type=int, default=None, help="only the first N puzzles")
    add_settings(p, SAMPLING_SETTINGS)
    p.set_defaults(temperature=None, max_new_tokens=None)  # unset: the protocol's (protocol_value)
    add_sandbox_options(p)
    add_settings(p, ("timeout_s",))
    p.set_defaults(handler=cmd_eval)
