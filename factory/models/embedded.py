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
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from factory.models.torch_setup import deterministic
from factory.models.train import save_atomically, train_steps
from sandbox.installation import cache_root

FORMAT_VERSION = 1  # bump when the build code changes in a way that changes the model
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
# The embedded model knows only P3 programs, so its chat template renders the program of the last user
# message (``factory.models.chat.chat_messages`` puts it in a python fence) for the model to continue:
# chat mode runs offline on it, its reply being the continuation. Not part of the fingerprint: a cached
# model gains it when loaded (``add_chat_template``), its weights untouched.
CHAT_TEMPLATE = (
    "{%- for m in messages if m.role == 'user' %}{% if loop.last %}"
    "{{ m.content.split('```python\\n')[-1].split('\\n```')[0] }}{% endif %}{% endfor %}"
)
CHAT_TEMPLATE_FILE = "chat_template.jinja"  # where transformers' tokenizers read a template from


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the default model besides the corpus. The defaults give a ~3.7M-parameter
    Llama-style model (4 layers, d=256) trained for 600 steps of 8x256 tokens (~4.5 min on 2 idle cores:
    measured against 300 steps of 16 rows, the same time, held-out pass@1 0.175 -> 0.314 and invalid
    proposals 90% -> 39% on the augmented corpus).
    No clock decides the weights: every build runs all its steps, so a busy machine takes longer but
    gets the same model (a time cap once left a build on a loaded machine at a fraction of its steps,
    cached under the same key, with held-out pass@1 0.000 instead of 0.254)."""

    vocab_size: int = 2048
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 688
    context_length: int = 1024  # positions the model accepts (RoPE, so longer than the training blocks)
    block_size: int = 256  # tokens per training sequence (texts + EOS, packed)
    batch_size: int = 8
    steps: int = 600
    learning_rate: float = 2e-3
    weight_decay: float = 0.1
    seed: int = 0
    threads: int = 2  # torch CPU threads during the build (fixed for reproducibility)

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


def default_model_path(
    corpus: Callable[[], Sequence[str]],
    cache_dir: Path | None = None,
    *,
    config: BuildConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Path of the default model for ``corpus`` (a callable returning the training texts), building and
    caching it first if needed, in ``cache_dir`` (default ``$XDG_CACHE_HOME/selfplay-factory``). The
    factory's corpus is ``factory.loop.corpus.base_corpus`` (``embedded_model_path`` passes it).
    """
    config = config or BuildConfig()
    log = log or _stderr
    texts = list(corpus())
    if not any(t.strip() for t in texts):
        raise ValueError("the default-model corpus is empty; give it some Python texts to learn from")
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    path = root / f"default-model-{fingerprint(texts, config)}"
    if (path / "config.json").exists():
        add_chat_template(path)
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
    add_chat_template(path)
    return path


def add_chat_template(path: Path) -> None:
    """Give the model in ``path`` the embedded chat template unless it has one (written whole: a
    template file half written is never read)."""
    target = path / CHAT_TEMPLATE_FILE
    if target.exists():
        return
    # a name of its own per call: callers in other threads of this process may write it at the same time
    handle, partial = tempfile.mkstemp(prefix=f".{CHAT_TEMPLATE_FILE}.", dir=path)
    with os.fdopen(handle, "w") as out:
        out.write(CHAT_TEMPLATE)
    os.replace(partial, target)


def build_default_model(
    out_dir: Path,
    texts: Sequence[str],
    config: BuildConfig = BuildConfig(),
    *,
    log: Callable[[str], None] | None = None,
) -> BuildReport:
    """Train a BPE tokenizer and a tiny Llama-style model from scratch on ``texts``; save both to
    ``out_dir`` (which appears only when complete). Deterministic for a given corpus, config and machine."""
    from transformers import LlamaForCausalLM

    start = time.monotonic()
    with deterministic(config.seed, threads=min(config.threads, os.cpu_count() or 1)):
        tokenizer = train_tokenizer(texts, config.vocab_size, config.context_length)
        model_config = llama_config(config, tokenizer)
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
            log=log,
        )

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

        save_atomically(out_dir, write)
    parameters = sum(p.numel() for p in model.parameters())
    return BuildReport(Path(out_dir), parameters, tokens, steps, final_loss, time.monotonic() - start)


def llama_config(config: BuildConfig, tokenizer, kv_heads: int | None = None):
    """The LlamaConfig of a model of ``config``'s shape on ``tokenizer`` (``kv_heads`` fewer than its heads:
    grouped-query attention), its input and output embeddings tied."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=kv_heads or config.num_heads,
        max_position_embeddings=config.context_length,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


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


def _stderr(message: str) -> None:
    print(f"[default-model] {message}", file=sys.stderr, flush=True)


__all__ = [
    "BuildConfig",
    "BuildReport",
    "build_default_model",
    "cache_root",
    "default_model_path",
    "fingerprint",
    "train_tokenizer",
]
