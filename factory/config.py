"""The settings of a self-play run (``RunConfig``) and of where it runs (``SandboxSettings``): defaults,
help, validation and identity, stated once.

``RunConfig`` is read by the round code, built by the CLI from its flags and by the daemon from its
config file's [run] table; both derive their options from its fields (``factory.settings``: each field's
metadata holds its ``help`` and optionally ``choices``, ``flag`` and ``example``). Every rule a value
must satisfy is checked in ``__post_init__``, which raises a ``SettingError`` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from factory.errors import SettingError
from factory.settings import check_declared, setting
from sandbox.backend import KINDS as SANDBOX_KINDS  # docker, process, auto, ray

# Settings that define a run: changing them half-way would mix two experiments in one store.
IDENTITY_FIELDS = (
    "model", "backend", "seed", "seeds", "eval_set", "eval_p3", "eval_split", "eval_all_instances", "eval_limit",
    "objective", "weighting", "proposer_weighting",
)
# What a run recorded before a setting existed ran with: P3 evaluations used every instance, training
# was supervised fine-tuning on unweighted pairs, the seeds were the whole seed split (an oracle regime).
BEFORE_SETTING = {"eval_all_instances": True, "objective": "sft", "weighting": "none", "seeds": "builtin-augmented",
                  "eval_set": None, "variant_share": 0.0, "variants_from_round": 1,
                 "proposer_weighting": "none"}

BACKENDS = ("transformers", "vllm", "openai")
APIS = ("auto", "chat", "completions")
EVAL_SPLITS = ("train", "test")
OBJECTIVES = ("sft", "dpo", "spin", "sft+dpo", "grpo")
WEIGHTINGS = ("none", "learnability", "novelty", "both")
PROPOSER_WEIGHTINGS = ("none", "learnability")


def role_model(role: str, does: str, example: str) -> Any:
    """The setting of the model that works in ``role`` ("propose" or "solve")."""
    return setting(
        None,
        f"the model that {does}, with {role}_backend and {role}_base_url; "
        '"student": the model being trained (default: as model generates)',
        example=example,
    )


def role_backend(role: str) -> Any:
    """The setting of the backend that ``{role}_model`` is reached through."""
    return setting(None, f"{role}_model's backend (default: backend)", choices=BACKENDS, example="openai")


def role_base_url(role: str) -> Any:
    """The setting of the server URL of ``{role}_model``."""
    return setting(None, f"{role}_model's server URL (default: base_url)", example="https://api.openai.com/v1")


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
    propose_model: str | None = role_model("propose", "proposes puzzles (a teacher: it is not trained)", "gpt-4o-mini")
    propose_backend: str | None = role_backend("propose")
    propose_base_url: str | None = role_base_url("propose")
    solve_model: str | None = role_model("solve", "solves the proposed puzzles", "student")
    solve_backend: str | None = role_backend("solve")
    solve_base_url: str | None = role_base_url("solve")
    train_model: str | None = setting(
        None,
        "the student: a local checkpoint dir or Hub id fine-tuned on the verified data and evaluated every "
        "round, while model (the teacher) generates unless propose_model/solve_model say otherwise "
        "(default: the generating model itself, when it can be trained)",
        example="/path/to/student",
    )
    seed: int = setting(0, "the run seed: prompts and sampling seeds derive from it")
    seeds: str = setting(
        "builtin",
        'the seed puzzles: "builtin" (a few instances of 33 task families the embedded model never saw), '
        '"builtin-augmented" (623 instances of 97 families, the embedded model trained on more of each: an '
        'oracle no user has), a JSONL file of {"f": ..., "g": ...} lines (optional "id"), or P3\'s '
        "puzzles.json (its seeds_split); each is checked by the proposals' rules and verified when the run starts",
    )
    seeds_split: str = setting("train", "with a P3 file as seeds: its split (test is for evaluation only)",
                               choices=EVAL_SPLITS)
    skip_bad_seeds: bool = setting(False, "skip and count the seeds that break a rule or do not verify, "
                                   "instead of refusing the file")
    puzzles: int = setting(2048, "puzzles proposed per round")
    variant_share: float = setting(
        0.5,
        "the share of a round's proposals that are seed variants instead of the model's, from round "
        "variants_from_round on: a seed with the numbers and strings of its default arguments perturbed, a "
        "new instance of the seed's family that the model must still solve (puzzles.variants); 0: the model "
        "proposes every puzzle (0.5 from round 2 took the default regime's verified arm above seeds alone "
        "in round 2: docs/loop.md)",
    )
    variants_from_round: int = setting(
        2,
        "the first round whose proposals include seed variants (variant_share): from round 1, a base model "
        "that never saw the seeds' families solved 2 of 951 variants, and the verified arm ended level with "
        "seeds alone",
    )
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
        "samples, from and against the previous round's model), sft+dpo (sft, then a dpo pass), grpo (online RL "
        "from the previous round's model on solve prompts of the round's puzzles and the seeds, rewarded by the "
        "sandbox's verdicts: verified 1, else 0 (flaky too), crashed masked)",
        choices=OBJECTIVES,
    )
    grpo_generations: int = setting(
        4, "objective grpo: samples per solve prompt, the group whose mean reward is each sample's baseline"
    )
    weighting: str = setting(
        "none",
        "how often each generated pair is trained on (its solve block in sft, its preference rows in dpo/spin): "
        "ceil(4 * weight) times, seeds once. learnability: weight 1 - solve rate (a puzzle every attempt "
        "solved is dropped); novelty: 1 - the highest shingle similarity to the seeds and earlier rounds' "
        "puzzles; both: their product; none: every pair once",
        choices=WEIGHTINGS,
    )
    proposer_weighting: str = setting(
        "none",
        "what the listings that teach the model to propose show (factory.loop.proposer_reward): none: every "
        "solved puzzle once; learnability: each generated puzzle ceil(4 * its proposer reward) times (1 - its "
        "solve rate; 0 when every attempt or none solved it, or when it is longer than the longest seed), "
        "seeds once, so the proposer imitates the puzzles at the edge of what the model solves",
        choices=PROPOSER_WEIGHTINGS,
    )
    seed_share: float = setting(
        0.5,
        "the least share of a round's training pairs, and of the puzzles its training listings and propose prompts draw from, that the "
        "seeds make up: each seed repeats as often as that takes, so a few seeds are not drowned by many "
        "generated puzzles (0: each seed once)",
    )
    epochs: float = setting(2.0, "passes over the training texts per round")
    learning_rate: float | None = setting(None, "default: 1e-4 (full) or 1e-3 (LoRA)", example=1e-4)
    eval_samples: int = setting(5, "samples per evaluation puzzle (the n of pass@k)")
    eval_ks: tuple[int, ...] = setting((1, 5), "the k values of pass@k (each at most eval_samples)")
    eval_set: str | None = setting(
        None, "evaluate on this set instead of the held-out seeds: a JSONL file of {\"f\": ...} lines, or P3's "
        "puzzles.json (read with eval_split)", flag="--eval", example="/path/to/puzzles.json",
    )
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
        check("grpo_generations", self.grpo_generations >= 2, "must be at least 2 (a group of one has no baseline)")
        check("top_p", 0 < self.top_p <= 1, "must be in (0, 1]")
        check("timeout_s", self.timeout_s > 0, "must be positive")
        check("epochs", self.epochs > 0, "must be positive")
        check("seed_share", 0 <= self.seed_share < 1, "must be at least 0 and below 1")
        check("variant_share", 0 <= self.variant_share <= 1, "must be between 0 and 1")
        check("variants_from_round", self.variants_from_round >= 1, "must be at least 1")
        check("learning_rate", self.learning_rate is None or self.learning_rate > 0, "must be positive")
        check("eval_limit", self.eval_limit is None or self.eval_limit >= 1, "must be at least 1")
        check("eval_ks", bool(self.eval_ks) and all(k >= 1 for k in self.eval_ks),
              "must be a non-empty list of integers >= 1")
        for name in ("model", "base_url", "eval_p3", "eval_set", "seeds", "chat_template", "propose_model",
                     "propose_base_url", "solve_model", "solve_base_url", "train_model"):
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
        if self.eval_set is not None and self.eval_p3 is not None and self.eval_set != self.eval_p3:
            raise SettingError("eval_set", "give eval_set or its alias eval_p3, not two different files")
        if self.seeds_split != "train":
            raise SettingError("seeds_split", "seeds come from the train split: the test split is for evaluation only")
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


@dataclass(frozen=True)
class SandboxSettings:
    """Where untrusted code runs, and where generation runs: flags of every command that opens a sandbox
    (``--generation-replicas`` of those that generate), keys of the daemon's [run] table."""

    sandbox: str = setting(
        "docker",
        "where untrusted code runs: docker (hardened containers), process (local processes, NO isolation), "
        "auto (docker when an engine is reachable, else process; says which) or ray (the docker sandbox on "
        "every node of a Ray cluster)",
        choices=SANDBOX_KINDS,
    )
    workers: int | None = setting(
        None, "parallel sandbox workers (default: one per CPU; with sandbox ray, per node)", minimum=1, example=4
    )
    ray_address: str | None = setting(
        None,
        "the Ray cluster of sandbox ray and of generation replicas (default: $RAY_ADDRESS, else a local Ray "
        "instance)",
        metavar="ADDRESS", example="10.0.0.1:6379",
    )
    generation_replicas: int = setting(
        0,
        "generate with N copies of the model as Ray actors on the cluster of ray_address; the same samples "
        "for any N >= 1 (not those of 0); 0: no Ray",
        minimum=0,
    )

    def __post_init__(self) -> None:
        check_declared(self)
        if self.ray_address is not None and not self.ray_address.strip():
            raise SettingError("ray_address", "ray_address must not be empty (leave it out for $RAY_ADDRESS)")


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
