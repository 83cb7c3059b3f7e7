"""Generation throughput: the fast CPU backend against the transformers backend, on the same prompts,
model and sampling settings, in one run (rounds interleaved, so both see the same machine load).

    python benchmarks/bench_generation.py                    # the embedded default model
    python benchmarks/bench_generation.py --prompts 64 --n 2 --rounds 2
    python benchmarks/bench_generation.py --model runs/x/checkpoints/round-2 --no-stop
    python benchmarks/bench_generation.py --replicas 2 --chunk-prompts 8   # and Ray replicas of fast

Prompts are the loop's own: propose prompts (3 example puzzles, ending in ``def f4(``) and solve prompts
(1 solved example and a target puzzle, ending in its solution's signature), half each. Prints generated
tokens per second of each backend in each round, the totals, and the ratio. ``--replicas N`` adds
generation on N Ray replicas of the fast backend (``factory.models.ray_backend``, a local Ray unless
``RAY_ADDRESS`` names a cluster) and prints its ratio to the fast backend in this process.
"""

from __future__ import annotations

import argparse
import random
import time

from factory.models import SamplingConfig  # first: sets OMP_WAIT_POLICY before torch loads
from factory.models.base import ModelBackend


def make_prompts(count: int, seed: int = 0) -> list[str]:
    """Half propose prompts (3 seed puzzles), half solve prompts (1 solved seed, then a seed puzzle)."""
    from factory.loop.corpus import seed_training_pairs
    from factory.loop.prompts import propose_prompt, solve_prompt

    rng = random.Random(seed)
    pairs = seed_training_pairs()
    puzzles = [f for f, _ in pairs]
    prompts = []
    for i in range(count):
        if i % 2 == 0:
            prompts.append(propose_prompt(puzzles, rng, 3)[0])
        else:
            target = rng.choice(puzzles)
            prompts.append(solve_prompt(pairs, target, rng, 1)[0])
    return prompts


def measure(backend: ModelBackend, prompts: list[str], sampling: SamplingConfig) -> tuple[int, float]:
    """(generated tokens, seconds) of one ``generate`` call on all ``prompts``."""
    start = time.perf_counter()
    tokens = sum(c.tokens for row in backend.generate(prompts, sampling) for c in row)
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", help="checkpoint directory or Hub id (default: the embedded default model)"
    )
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=2, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--batch-size", type=int, default=64, help="transformers backend's batch (sequences)")
    parser.add_argument("--slots", type=int, default=128, help="fast backend's sequences decoded together")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of both backends")
    parser.add_argument("--no-stop", action="store_true", help="generate max-new-tokens every time")
    parser.add_argument("--replicas", type=int, default=0, help="also generate on N Ray replicas of fast")
    parser.add_argument("--chunk-prompts", type=int, default=None, help="the replicas' prompts per chunk")
    args = parser.parse_args()

    import torch

    from factory.loop.corpus import embedded_model_path
    from factory.loop.prompts import STOP_SEQUENCES
    from factory.models.fast_cpu import FastCPUBackend
    from factory.models.transformers_backend import TransformersBackend

    model = args.model or embedded_model_path()
    backends = {
        "transformers": TransformersBackend(model, batch_size=args.batch_size, device="cpu"),
        "fast": FastCPUBackend(model, batch_size=args.slots),
    }
    if args.replicas:
        from factory.models import load_backend

        chunking = {"chunk_prompts": args.chunk_prompts} if args.chunk_prompts else {}
        backends[f"ray x{args.replicas}"] = load_backend(
            "transformers", model, replicas=args.replicas, batch_size=args.slots, **chunking
        )
    prompts = make_prompts(args.prompts)
    sampling = SamplingConfig(
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        stop=() if args.no_stop else tuple(STOP_SEQUENCES),
        seed=0,
    )
    lengths = [len(backends["fast"].tokenizer(p)["input_ids"]) for p in prompts]
    print(
        f"model {model}; {torch.get_num_threads()} torch threads; {len(prompts)} prompts "
        f"({min(lengths)}-{max(lengths)} tokens, mean {sum(lengths) / len(lengths):.0f}) x n={args.n}, "
        f"max_new_tokens {args.max_new_tokens}, temperature {args.temperature}, top_p {args.top_p}, "
        f"stop {'off' if args.no_stop else 'on'}"
    )
    for backend in backends.values():  # warm-up
        backend.generate(prompts[:2], SamplingConfig(max_new_tokens=8, seed=1))
    totals = {name: [0, 0.0] for name in backends}
    for round_ in range(args.rounds):
        names = list(backends) if round_ % 2 == 0 else list(reversed(backends))
        for name in names:
            tokens, seconds = measure(backends[name], prompts, sampling)
            totals[name][0] += tokens
            totals[name][1] += seconds
            print(
                f"round {round_ + 1} {name:>12}: {tokens:7d} tokens in {seconds:7.1f} s = {tokens / seconds:8.1f} tokens/s"
            )
    rate = {name: tokens / seconds for name, (tokens, seconds) in totals.items()}
    for name, value in rate.items():
        print(f"total {name:>12}: {value:8.1f} tokens/s")
    print(f"fast / transformers: {rate['fast'] / rate['transformers']:.1f}x")
    if args.replicas:
        print(f"ray x{args.replicas} / fast: {rate[f'ray x{args.replicas}'] / rate['fast']:.2f}")
    for backend in backends.values():
        backend.close()


if __name__ == "__main__":
    main()
