"""The settings of a self-play run: defaults, validation and identity, stated once.

``RunConfig`` is read by the round code, built by the CLI from its flags and by the daemon from its
config file's [run] table; both derive their options from its fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from factory.errors import UserError

# Settings that define a run: changing them half-way would mix two experiments in one store.
IDENTITY_FIELDS = ("model", "backend", "seed", "eval_p3", "eval_split", "eval_limit")


@dataclass(frozen=True)
class RunConfig:
    model: str | None = None  # None: the embedded default model
    backend: str = "transformers"
    base_url: str | None = None  # openai backend
    seed: int = 0
    puzzles: int = 128  # puzzles proposed per round
    attempts: int = 8  # solutions sampled per new puzzle
    propose_examples: int = 3  # puzzles shown before "def f{k+1}("
    solve_examples: int = 1  # (f, g) pairs shown before the puzzle to solve; more for larger models
    batch_size: int = 16  # prompts per generate call and per stored batch
    max_new_tokens: int = 160
    temperature: float = 0.7  # solving and evaluation
    propose_temperature: float = 0.6  # lower: a small model's proposals are then more often valid code
    top_p: float = 0.95
    timeout_s: float = 2.0
    max_pairs_per_puzzle: int = 4
    train: bool = True
    incremental: bool = False  # fine-tune the previous checkpoint instead of the base model
    lora: bool = False
    epochs: float = 2.0
    learning_rate: float | None = None
    eval_samples: int = 5
    eval_ks: tuple[int, ...] = (1, 5)
    eval_p3: str | None = None  # evaluate on P3 (puzzles.json path) instead of the held-out seeds
    eval_split: str = "test"
    eval_limit: int | None = None  # only the first N evaluation puzzles (smoke tests)

    def __post_init__(self) -> None:
        for name in (
            "puzzles",
            "attempts",
            "batch_size",
            "max_new_tokens",
            "eval_samples",
            "max_pairs_per_puzzle",
        ):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.timeout_s <= 0:
            raise UserError("timeout_s must be positive")
        if self.backend not in ("transformers", "vllm", "openai"):
            raise UserError(f"unknown backend {self.backend!r}: choose transformers, vllm or openai")

    def to_json(self) -> dict:
        data = asdict(self)
        data["eval_ks"] = list(self.eval_ks)
        return data
