"""The settings of a self-play run: defaults, help, validation and identity, stated once.

``RunConfig`` is read by the round code, built by the CLI from its flags and by the daemon from its
config file's [run] table; both derive their options from its fields: each field's metadata holds its
``help`` (the CLI's --help, the comments of `factory init`'s example file), and optionally ``choices``,
``flag`` (the CLI spelling when it is not ``--`` + the name with dashes) and ``example`` (shown in the
example file for a setting whose default is None). Every rule a value must satisfy is checked in
``__post_init__``, which raises a ``SettingError`` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from factory.errors import SettingError

# Settings that define a run: changing them half-way would mix two experiments in one store.
IDENTITY_FIELDS = (
    "model", "backend", "seed", "eval_p3", "eval_split", "eval_all_instances", "eval_limit", "objective",
    "weighting",
)
# What a run recorded before a setting existed ran with: P3 evaluations used every instance, training
# was supervised fine-tuning on unweighted pairs.
BEFORE_SETTING = {"eval_all_instances": True, "objective": "sft", "weighting": "none"}

BACKENDS = ("transformers", "vllm", "openai")
APIS = ("auto", "chat", "completions")
EVAL_SPLITS = ("train", "test")
OBJECTIVES = ("sft", "dpo", "spin", "sft+dpo")
WEIGHTINGS = ("none", "learnability", "novelty", "both")


def setting(default: Any, help: str, **extra: Any) -> Any:
    """A RunConfig field: its default, what it means (``help``), and optional ``choices``, ``flag``,
    ``example`` (see the module docstring)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class RunConfig:
    model: str | None = setting(
        None,
        'checkpoint dir or Hub id; the served model name with backend = "openai" '
        "(default: the embedded default model)",
        example="/path/to/checkpoint",
    )
    backend: str = setting("transformers", "transformers, vllm or openai", choices=BACKENDS)
    base_url: str | None = setting(
        None, 'backend = "openai": the server\'s URL, up to and including /v1', example="http://127.0.0.1:8000/v1"
    )
    api: str = setting(
        "auto",
        "how the model is prompted: completions (it continues a few-shot program) or chat (instructions and "
        'the same program as a chat message; its reply holds the code). auto: with backend = "openai", '
        "completions where the server offers it for the model, else chat; on a local backend, chat when "
        "chat_template is given, else completions",
        choices=APIS,
    )
    chat_template: str | None = setting(
        None,
        "a local model's chat template (a Jinja file) instead of its tokenizer's; implies api = chat",
        example="/path/to/template.jinja",
    )
    propose_model: str | None = setting(
        None,
        "the model that proposes puzzles (a teacher: it is not trained), with propose_backend and "
        'propose_base_url; "student": the model being trained (default: as model generates)',
        example="gpt-4o-mini",
    )
    propose_backend: str | None = setting(
        None, "propose_model's backend (default: backend)", choices=BACKENDS, example="openai"
    )
    propose_base_url: str | None = setting(
        None, "propose_model's server URL (default: base_url)", example="https://api.openai.com/v1"
    )
    solve_model: str | None = setting(
        None,
        "the model that solves the proposed puzzles, with solve_backend and solve_base_url; "
        '"student": the model being trained (default: as model generates)',
        example="student",
    )
    solve_backend: str | None = setting(
        None, "solve_model's backend (default: backend)", choices=BACKENDS, example="openai"
    )
    solve_base_url: str | None = setting(
        None, "solve_model's server URL (default: base_url)", example="https://api.openai.com/v1"
    )
    train_model: str | None = setting(
        None,
        "the student: a local checkpoint dir or Hub id fine-tuned on the verified data and evaluated every "
        "round, while model (the teacher) generates unless propose_model/solve_model say otherwise "
        "(default: the generating model itself, when it can be trained)",
        example="/path/to/student",
    )
    seed: int = setting(0, "the run seed: prompts and sampling seeds derive from it")
    puzzles: int = setting(2048, "puzzles proposed per round")
    attempts: int = setting(16, "solutions sampled per new puzzle")
    propose_examples: int = setting(3, 'few-shot puzzles in each propose prompt (shown before "def f{k+1}(")')
    solve_examples: int = setting(
        1, "few-shot (puzzle, solution) pairs in each solve prompt; more for larger models"
    )
    batch_size: int = setting(128, "prompts per generate call and per stored batch")
    max_new_tokens: int = setting(160, "tokens generated per sample at most")
    temperature: float = setting(0.7, "sampling temperature of solving and evaluation (0 = greedy)")
    propose_temperature: float = setting(
        0.6, "sampling temperature of proposing; lower: a small model's proposals are more often valid code"
    )
    top_p: float = setting(0.95, "nucleus sampling, in (0, 1]")
    timeout_s: float = setting(2.0, "seconds each of g and f may run in the sandbox", flag="--timeout")
    max_pairs_per_puzzle: int = setting(4, "shortest distinct verified solutions kept per puzzle")
    train: bool = setting(True, "fine-tune a new checkpoint every round")
    incremental: bool = setting(False, "fine-tune the previous checkpoint instead of the base model")
    lora: bool = setting(False, "fine-tune LoRA adapters (needs peft) and merge them")
    objective: str = setting(
        "sft",
        "what a round trains on: sft (seeds + verified pairs), dpo (the round's verified solutions over its "
        "failed attempts, against the generating model), spin (verified over the generating model's own "
        "samples, from and against the previous round's model), sft+dpo (sft, then a dpo pass)",
        choices=OBJECTIVES,
    )
    weighting: str = setting(
        "none",
        "how often each generated pair is trained on (its solve block in sft, its preference rows in dpo/spin): "
        "ceil(4 * weight) times, seeds once. learnability: weight 1 - solve rate (a puzzle every attempt "
        "solved is dropped); novelty: 1 - the highest shingle similarity to the seeds and earlier rounds' "
        "puzzles; both: their product; none: every pair once",
        choices=WEIGHTINGS,
    )
    epochs: float = setting(2.0, "passes over the training texts per round")
    learning_rate: float | None = setting(None, "default: 1e-4 (full) or 1e-3 (LoRA)", example=1e-4)
    eval_samples: int = setting(5, "samples per evaluation puzzle (the n of pass@k)")
    eval_ks: tuple[int, ...] = setting((1, 5), "the k values of pass@k (each at most eval_samples)")
    eval_p3: str | None = setting(
        None, "P3's puzzles.json: evaluate on it instead of the held-out seeds", example="/path/to/puzzles.json"
    )
    eval_split: str = setting("test", "train or test", choices=EVAL_SPLITS)
    eval_all_instances: bool = setting(
        False,
        "with eval_p3: every instance of each P3 problem (1,009 in the test split), not the paper's set of "
        "each problem's first instance (228)",
    )
    eval_limit: int | None = setting(None, "only the first N evaluation puzzles (smoke runs)", example=20)
    price_per_mtok: str | None = setting(
        None,
        "PROMPT,COMPLETION: the price of a million prompt and of a million completion tokens (e.g. USD), "
        "to show what the generated tokens cost in the round summary, `factory status` and the dataset card",
        example="0.15,0.60",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "eval_ks", tuple(self.eval_ks))  # JSON and TOML give lists

        def check(name: str, ok: bool, rule: str) -> None:
            if not ok:
                value = getattr(self, name)
                shown = list(value) if isinstance(value, tuple) else value
                raise SettingError(name, f"{name} {rule} (got {shown!r})")

        for name in ("puzzles", "attempts", "batch_size", "max_new_tokens", "eval_samples", "max_pairs_per_puzzle"):
            check(name, getattr(self, name) >= 1, "must be at least 1")
        for name in ("propose_examples", "solve_examples"):
            check(name, getattr(self, name) >= 0, "must be at least 0")
        for name in ("temperature", "propose_temperature"):
            check(name, getattr(self, name) >= 0, "must be at least 0")
        check("top_p", 0 < self.top_p <= 1, "must be in (0, 1]")
        check("timeout_s", self.timeout_s > 0, "must be positive")
        check("epochs", self.epochs > 0, "must be positive")
        check("learning_rate", self.learning_rate is None or self.learning_rate > 0, "must be positive")
        check("eval_limit", self.eval_limit is None or self.eval_limit >= 1, "must be at least 1")
        check("eval_ks", bool(self.eval_ks) and all(k >= 1 for k in self.eval_ks),
              "must be a non-empty list of integers >= 1")
        for name in ("model", "base_url", "eval_p3", "chat_template", "propose_model", "propose_base_url",
                     "solve_model", "solve_base_url", "train_model"):
            value = getattr(self, name)
            check(name, value is None or bool(value.strip()), "must not be empty (leave it unset for the default)")
        if self.backend not in BACKENDS:
            raise SettingError(
                "backend", f"unknown backend {self.backend!r}: choose {', '.join(BACKENDS[:-1])} or {BACKENDS[-1]}"
            )
        check("api", self.api in APIS, f"must be one of {', '.join(APIS)}")
        if self.chat_template is not None and (self.backend == "openai" or self.api == "completions"):
            raise SettingError(
                "chat_template",
                "chat_template is for a local model prompted through chat (api = auto or chat); "
                "an OpenAI-compatible server applies its own",
            )
        check("eval_split", self.eval_split in EVAL_SPLITS, 'must be "train" or "test"')
        check("objective", self.objective in OBJECTIVES, f"must be one of {', '.join(OBJECTIVES)}")
        check("weighting", self.weighting in WEIGHTINGS, f"must be one of {', '.join(WEIGHTINGS)}")
        if self.backend == "openai" and self.model is None:
            raise SettingError("model", 'model is required with backend = "openai": the name the server serves')
        for name in ("propose_backend", "solve_backend"):
            check(name, getattr(self, name) in (None, *BACKENDS), f"must be one of {', '.join(BACKENDS)}")
        if self.backend == "openai" and self.train and self.train_model is None:
            raise SettingError(
                "train",
                'train = true needs a local model: name the student (train_model), or set train = false with '
                'backend = "openai"',
            )
        if self.price_per_mtok is not None:
            self.prices()  # refuses a malformed value
        if not any(k <= self.eval_samples for k in self.eval_ks):
            raise SettingError(
                "eval_ks", f"eval_ks {list(self.eval_ks)}: every k exceeds eval_samples = {self.eval_samples}"
            )

    def prices(self) -> tuple[float, float] | None:
        """``price_per_mtok`` as (prompt, completion) prices of a million tokens; None when unset."""
        if self.price_per_mtok is None:
            return None
        parts = self.price_per_mtok.split(",")
        try:
            prices = tuple(float(part) for part in parts)
        except ValueError:
            prices = ()
        if len(prices) != 2 or not all(0 <= p < float("inf") for p in prices):
            raise SettingError(
                "price_per_mtok",
                f"price_per_mtok must be two non-negative numbers PROMPT,COMPLETION such as 0.15,0.60 "
                f"(got {self.price_per_mtok!r})",
            )
        return prices[0], prices[1]

    def to_json(self) -> dict:
        data = asdict(self)
        data["eval_ks"] = list(self.eval_ks)
        return data

    @classmethod
    def from_json(cls, data: dict) -> RunConfig:
        """The inverse of ``to_json`` (keys of settings this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "eval_ks" in values:
            values["eval_ks"] = tuple(values["eval_ks"])
        return cls(**values)


def prices_of(data: Mapping[str, object] | None) -> tuple[float, float] | None:
    """The token prices of a run's settings as a store recorded them (None when it set none)."""
    value = (data or {}).get("price_per_mtok")
    return RunConfig(price_per_mtok=str(value)).prices() if value else None


def run_identity(data: Mapping[str, object]) -> dict[str, object]:
    """The ``IDENTITY_FIELDS`` of a run's settings as JSON (as given, or as a store recorded them):
    a setting the record predates has the value it ran with (``BEFORE_SETTING``); which P3 instances
    are evaluated counts only when the run evaluates on P3."""
    values = {name: data.get(name, BEFORE_SETTING.get(name)) for name in IDENTITY_FIELDS}
    if values["eval_p3"] is None:
        values["eval_all_instances"] = None
    return values
