"""Generation throughput of the transformers backend: batched vs one prompt at a time, in one run.

    python benchmarks/bench_generation.py                    # the embedded default model
    python benchmarks/bench_generation.py --model runs/x/checkpoints/round-2 --prompts 32

Prints generated tokens per second for each batch size and the ratio to one-at-a-time.
"""

from __future__ import annotations

import argparse
import random
import time

from factory.models import SamplingConfig  # first: sets OMP_WAIT_POLICY before torch loads
from factory.models.transformers_backend import TransformersBackend

STOP = ("\ndef ", "\nassert", "\nclass ", "\nif __name__", "\nprint(", "\n#")


def make_prompts(count: int, seed: int = 0) -> list[str]:
    """Propose prompts of 1 to 3 training seeds (varied length), each ending in a new puzzle header."""
    from factory.loop.corpus import seed_training_pairs
    from factory.loop.prompts import propose_prompt

    rng = random.Random(seed)
    puzzles = [f for f, _ in seed_training_pairs()]
    return [propose_prompt(puzzles, rng, rng.randint(1, 3))[0] for _ in range(count)]


def measure(
    backend: TransformersBackend, prompts: list[str], sampling: SamplingConfig, batch_size: int
) -> float:
    """Generated tokens per second with ``batch_size`` (1: each prompt on its own)."""
    backend.batch_size = batch_size
    backend.generate(prompts[:batch_size], sampling)  # warm-up
    start = time.perf_counter()
    tokens = sum(c.tokens for row in backend.generate(prompts, sampling) for c in row)
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", help="checkpoint directory or Hub id (default: the embedded default model)"
    )
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--no-stop", action="store_true", help="generate max-new-tokens every time")
    args = parser.parse_args()

    from factory.loop.corpus import embedded_model_path

    model = args.model or embedded_model_path()
    backend = TransformersBackend(model)
    prompts = make_prompts(args.prompts)
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, stop=() if args.no_stop else STOP, seed=0)
    print(f"model {model} on {backend.device}; {len(prompts)} prompts, max_new_tokens {args.max_new_tokens}")
    single = measure(backend, prompts, sampling, 1)
    print(f"one at a time: {single:8.1f} tokens/s")
    for batch_size in args.batch_sizes:
        batched = measure(backend, prompts, sampling, batch_size)
        print(f"batch {batch_size:>3}:     {batched:8.1f} tokens/s  ({batched / single:.2f}x one at a time)")


if __name__ == "__main__":
    main()
