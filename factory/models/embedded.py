"""The embedded default model: a tiny causal LM trained from scratch on a corpus of P3-style Python,
built once per corpus in a few CPU minutes and cached, so the factory runs offline with no download.

    path = default_model_path(corpus)     # builds on first call (~2-3 min on 2 cores), then cached
    backend = load_backend("transformers", str(path))

The cache key (fingerprint) covers the corpus texts and every build setting, so a changed corpus or
config builds a new model. Builds happen in a temporary directory renamed into place when complete,
under a file lock, so a killed build never leaves a half model and two processes never build at once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from factory.models.train import deterministic, save_atomically, train_steps

FORMAT_VERSION = 1  # bump when the build code changes in a way that changes the model
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the default model besides the corpus. The defaults give a ~3.7M-parameter
    Llama-style model (4 layers, d=256) trained for 300 steps of 16x256 tokens (~4 min on 2 idle cores).
    ``max_seconds`` caps the training time on slow machines (the model is then less trained, and a build
    cut by it is no longer bit-reproducible)."""

    vocab_size: int = 2048
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 688
    context_length: int = 1024  # positions the model accepts (RoPE, so longer than the training blocks)
    block_size: int = 256  # tokens per training sequence (texts + EOS, packed)
    batch_size: int = 16
    steps: int = 300
    learning_rate: float = 2e-3
    weight_decay: float = 0.1
    seed: int = 0
    threads: int = 2  # torch CPU threads during the build (fixed for reproducibility)
    max_seconds: float | None = 280.0

    @classmethod
    def tiny(cls) -> BuildConfig:
        """A model of ~0.1M parameters built in seconds: for tests and smoke runs, useless otherwise."""
        return cls(
            vocab_size=512,
            hidden_size=64,
            num_layers=2,
            num_heads=2,
            intermediate_size=128,
            block_size=128,
            batch_size=8,
            steps=40,
            learning_rate=3e-3,
            threads=1,  # tiny matrices: one thread is fastest, and immune to busy cores
            max_seconds=None,
        )


@dataclass(frozen=True)
class BuildReport:
    path: Path
    parameters: int
    tokens: int  # corpus size in tokens
    steps: int
    final_loss: float
    seconds: float


def fingerprint(texts: Sequence[str], config: BuildConfig) -> str:
    """A short hash of the corpus and the build settings: the cache key of the built model."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps({"format": FORMAT_VERSION, **dataclasses.asdict(config)}, sort_keys=True).encode()
    )
    for text in texts:
        data = text.encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "selfplay-factory"


def default_model_path(
    corpus: Callable[[], Sequence[str]] | None = None,
    cache_dir: Path | None = None,
    *,
    config: BuildConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Path of the default model for ``corpus`` (a callable returning the training texts), building and
    caching it first if needed, in ``cache_dir`` (default ``$XDG_CACHE_HOME/selfplay-factory``).

    ``corpus=None`` uses ``synthetic_corpus`` (a stand-in until the seed puzzles are wired in).
    """
    config = config or BuildConfig()
    log = log or _stderr
    texts = list((corpus or synthetic_corpus)())
    if not any(t.strip() for t in texts):
        raise ValueError("the default-model corpus is empty; give it some Python texts to learn from")
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    path = root / f"default-model-{fingerprint(texts, config)}"
    if (path / "config.json").exists():
        return path
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
        if not path.exists():  # another process may have built it while we waited
            log(f"building the default model in {path} (once per corpus; a few minutes on CPU)")
            report = build_default_model(path, texts, config, log=log)
            log(
                f"default model built: {report.parameters / 1e6:.2f}M parameters, {report.tokens} corpus tokens, "
                f"{report.steps} steps, final loss {report.final_loss:.3f}, {report.seconds:.0f}s"
            )
    return path


def build_default_model(
    out_dir: Path,
    texts: Sequence[str],
    config: BuildConfig = BuildConfig(),
    *,
    log: Callable[[str], None] | None = None,
) -> BuildReport:
    """Train a BPE tokenizer and a tiny Llama-style model from scratch on ``texts``; save both to
    ``out_dir`` (which appears only when complete). Deterministic for a given corpus, config and machine."""
    from transformers import LlamaConfig, LlamaForCausalLM

    start = time.monotonic()
    with deterministic(config.seed, threads=min(config.threads, os.cpu_count() or 1)):
        tokenizer = train_tokenizer(texts, config.vocab_size, config.context_length)
        model_config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_heads,
            max_position_embeddings=config.context_length,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = LlamaForCausalLM(model_config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.bos_token_id = tokenizer.eos_token_id
        batches, tokens = packed_batches(tokenizer, texts, config)
        steps, final_loss = train_steps(
            model,
            batches,
            total_steps=config.steps,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            seed=config.seed,
            max_seconds=config.max_seconds,
            log=log,
        )

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

        save_atomically(out_dir, write)
    parameters = sum(p.numel() for p in model.parameters())
    return BuildReport(Path(out_dir), parameters, tokens, steps, final_loss, time.monotonic() - start)


def train_tokenizer(texts: Sequence[str], vocab_size: int, context_length: int):
    """A byte-level BPE tokenizer (any text encodes, nothing is unknown) wrapped as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=context_length,
        clean_up_tokenization_spaces=False,
    )


def packed_batches(
    tokenizer, texts: Sequence[str], config: BuildConfig
) -> tuple[list[dict[str, torch.Tensor]], int]:
    """Texts (shuffled, each + EOS) concatenated into one stream, cut into ``block_size`` blocks, batched.
    The last block is padded with label -100. Returns (batches, stream length in tokens)."""
    order = list(texts)
    random.Random(config.seed).shuffle(order)
    stream: list[int] = []
    for ids in tokenizer(order, add_special_tokens=False)["input_ids"]:
        stream += ids + [tokenizer.eos_token_id]
    size = config.block_size
    blocks = [stream[i : i + size] for i in range(0, len(stream), size)]
    batches = []
    for start in range(0, len(blocks), config.batch_size):
        rows = blocks[start : start + config.batch_size]
        ids = torch.full((len(rows), size), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), size), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        batches.append({"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)})
    return batches, len(stream)


def synthetic_corpus(count: int = 400, seed: int = 0) -> list[str]:
    """Small P3-style programs (a puzzle ``f``, a solution ``g``, an assert) made from templates with
    varied names, numbers and strings: a stand-in corpus for tests and for builds without seed puzzles."""
    rng = random.Random(seed)
    words = ["hello", "world", "puzzle", "python", "banana", "abc", "xyz", "level", "racecar", "code", "data"]

    def word() -> str:
        return rng.choice(words)

    templates: list[Callable[[], tuple[str, str]]] = [
        lambda: (
            f"def f{{k}}(s: str, n={(n := rng.randint(1, 30))}):\n    return len(s) == n",
            f"def g{{k}}(n={n}):\n    return '{rng.choice('abcxyz')}' * n",
        ),
        lambda: (
            f"def f{{k}}(x: int, a={(a := rng.randint(-99, 99))}, b={(b := rng.randint(1, 999))}):\n    return x + a == b",
            f"def g{{k}}(a={a}, b={b}):\n    return b - a",
        ),
        lambda: (
            f"def f{{k}}(x: int, a={(a := rng.randint(2, 20))}, b={(b := rng.randint(1, 500))}):\n    return x * a == b * a",
            f"def g{{k}}(a={a}, b={b}):\n    return b",
        ),
        lambda: (
            f"def f{{k}}(li: List[int], n={(n := rng.randint(2, 12))}):\n    return len(li) == n and all(x > 0 for x in li)",
            f"def g{{k}}(n={n}):\n    return [{rng.randint(1, 9)}] * n",
        ),
        lambda: (
            f"def f{{k}}(li: List[int], target={(t := rng.randint(10, 300))}):\n    return sum(li) == target and len(li) == {(m := rng.randint(2, 5))}",
            f"def g{{k}}(target={t}):\n    return [target - {m - 1}] + [1] * {m - 1}",
        ),
        lambda: (
            f'def f{{k}}(s: str, word="{(w := word())}"):\n    return s[::-1] == word',
            f'def g{{k}}(word="{w}"):\n    return word[::-1]',
        ),
        lambda: (
            f'def f{{k}}(s: str, sub="{(w := word())}", count={(c := rng.randint(1, 6))}):\n    return s.count(sub) == count',
            f'def g{{k}}(sub="{w}", count={c}):\n    return sub * count',
        ),
        lambda: (
            f"def f{{k}}(n: int, lower={(lo := rng.randint(0, 1000))}):\n    return n > lower and n % {(d := rng.randint(2, 13))} == 0",
            f"def g{{k}}(lower={lo}):\n    return (lower // {d} + 1) * {d}",
        ),
        lambda: (
            f"def f{{k}}(x: float, v={(v := rng.randint(2, 400))}):\n    return abs(x * x - v) < 1e-6",
            f"def g{{k}}(v={v}):\n    return v ** 0.5",
        ),
        lambda: (
            f'def f{{k}}(s: str, a="{(a := word())}", b="{(b := word())}"):\n    return s.startswith(a) and s.endswith(b)',
            f'def g{{k}}(a="{a}", b="{b}"):\n    return a + b',
        ),
        lambda: (
            f"def f{{k}}(li: List[int], n={(n := rng.randint(3, 15))}):\n    return sorted(li) == list(range(n)) and li[0] == n - 1",
            f"def g{{k}}(n={n}):\n    return list(range(n))[::-1]",
        ),
        lambda: (
            f"def f{{k}}(s: str, n={(n := rng.randint(2, 9))}):\n    return s == s[::-1] and len(s) == n",
            f'def g{{k}}(n={n}):\n    return "{rng.choice("abz")}" * n',
        ),
        lambda: (
            f'def f{{k}}(ls: List[str], words={(ws := [word() for _ in range(rng.randint(2, 4))])}):\n    return "".join(ls) == "".join(words)',
            f"def g{{k}}(words={ws}):\n    return list(words)",
        ),
        lambda: (
            f"def f{{k}}(i: int, li={(li := [rng.randint(-50, 50) for _ in range(rng.randint(3, 8))])}):\n    return li[i] == max(li)",
            f"def g{{k}}(li={li}):\n    return li.index(max(li))",
        ),
        lambda: (
            f"def f{{k}}(b: bool, n={(n := rng.randint(0, 99))}):\n    return b == (n % 2 == 0)",
            f"def g{{k}}(n={n}):\n    return n % 2 == 0",
        ),
    ]
    texts = []
    for _ in range(count):
        pairs = [rng.choice(templates)() for _ in range(rng.randint(1, 3))]
        parts = ["from typing import List\n"]
        for k, (f, g) in enumerate(pairs, start=1):
            parts.append(f"{f.format(k=k)}\n\n{g.format(k=k)}\n\nassert f{k}(g{k}())\n")
        texts.append("\n".join(parts))
    return texts


def _stderr(message: str) -> None:
    print(f"[default-model] {message}", file=sys.stderr, flush=True)


__all__ = [
    "BuildConfig",
    "BuildReport",
    "build_default_model",
    "cache_root",
    "default_model_path",
    "fingerprint",
    "synthetic_corpus",
    "train_tokenizer",
]
