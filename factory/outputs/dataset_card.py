"""The dataset card (README.md) of an exported dataset: the Hub's YAML front matter, then the facts.

Everything here is a pure function of a :class:`CardFacts` record that ``factory.outputs.export`` gathers
from the run's store, so the card says exactly what the store holds: the run's settings, the filter
funnel and verdicts of every round, pass@k by round, what this export kept and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import yaml

from factory.config import prices_of
from factory.outputs.paper_reference import p3_note, p3_rows
from factory.outputs.status import puzzle_set_line
from factory.store.records import PROPOSAL_STATUSES, TokenUsage
from factory.store.stats import add_usage, describe_usage
from sandbox.canaries import CanaryCounts

DATA_DIR = "data"
SPLIT = "train"
DATA_FILE = f"{DATA_DIR}/{SPLIT}-00000-of-00001.parquet"
DATA_FILES_PATTERN = f"{DATA_DIR}/{SPLIT}-*"
CARD_FILENAME = "README.md"

TAGS = ("code", "python", "programming-puzzles", "p3", "synthetic", "self-play", "verified")
PAPER = "Language Models Can Teach Themselves to Program Better (Haluptzok, Bowers, Kalai; ICLR 2023)"
PAPER_URL = "https://arxiv.org/abs/2207.14502"

WEIGHT_DOC = (
    "the pair's training weight under the run's `weighting` setting (1.0 for seeds and with `none`): its "
    "puzzle's learnability (1 - solve rate, 0 when always or never solved), novelty (1 - the highest "
    "shingle similarity to the seeds and earlier rounds' puzzles) or their product (`both`); the run "
    "with a weighting trains on a generated pair ceil(4 * weight) times"
)

# What each column means, in the order of the dataset's features.
COLUMN_DOCS: dict[str, str] = {
    "puzzle": "source of the puzzle `f(answer: T, ...) -> bool`",
    "solution": "source of the solution `g(...)`, called with no arguments; `f(g())` is True",
    "puzzle_name": "name of the puzzle function in `puzzle`",
    "solution_name": "name of the solution function in `solution`",
    "answer_arg": "name of the puzzle's answer argument",
    "answer_type": "type of the answer (`int`, `str`, `List[int]`, ...): checked with `type(x) is T` rules",
    "round": "self-play round whose attempt produced this pair (0: a seed's reference solution)",
    "model": "model that wrote the solution (null for seed reference solutions)",
    "puzzle_model": "model that proposed the puzzle (null for seed puzzles)",
    "puzzle_hash": "SHA-256 of the puzzle's canonical form (comments, docstrings, names normalised)",
    "solution_hash": "SHA-256 of the solution's AST with its name normalised",
    "verify_seconds": "seconds the sandbox spent verifying this pair (null for seed references)",
    "solve_rate": "verified attempts / attempts on this puzzle in its round (null for seeds)",
    "solution_length": "characters of the stripped solution (shorter solutions are kept first)",
    "origin": "`generated` (proposed by the model) or `seed` (the project's seed puzzles)",
    "seed_key": "key of the seed puzzle (null for generated puzzles)",
    "prompt_seed": "index of the propose prompt that produced the puzzle; the prompt is rebuilt from it",
    "puzzle_round": "round in which the puzzle was proposed (0 for seeds)",
    "pair_id": "id of the pair in the run's store",
    "puzzle_id": "id of the puzzle in the run's store",
    "attempt_id": "id of the solution attempt in the run's store (null for seed references)",
    "weight": WEIGHT_DOC,
}

# The columns of a preference export (``factory.outputs.preference_export``), in order.
PREFERENCE_COLUMN_DOCS: dict[str, str] = {
    "prompt": "the solve prompt the model saw (few-shot pairs, the puzzle, the solution's signature)",
    "chosen": "the model's completion after `prompt` whose solution verified",
    "rejected": "the same model's completion after `prompt` whose solution did not verify",
    "puzzle": "source of the puzzle `f(answer: T, ...) -> bool`",
    "chosen_solution": "the whole verified solution `def g...(...)` (`f(g())` is True)",
    "rejected_solution": "the whole failed solution (it does not verify with `puzzle` as f)",
    "puzzle_hash": "SHA-256 of the puzzle's canonical form",
    "rejected_verdict": "the sandbox verdict of the rejected solution (wrong, error, timeout or memory)",
    "solve_rate": "verified attempts / attempts on this puzzle in its round",
    "round": "self-play round whose attempts these are",
    "model": "model that wrote both solutions",
    "puzzle_id": "id of the puzzle in the run's store",
    "chosen_attempt_id": "id of the chosen solution's attempt in the run's store",
    "rejected_attempt_id": "id of the rejected solution's attempt in the run's store",
    "weight": WEIGHT_DOC,
}
PREFERENCE = "preference"
SFT = "sft"

# The funnel counts of each round in the card's table, in order.
FUNNEL_COLUMNS = ("proposed", *PROPOSAL_STATUSES, "solved_puzzles", "pairs")


@dataclass(frozen=True)
class RoundFacts:
    round: int
    model: str
    finished: bool
    funnel: Mapping[str, int]
    verdicts: Mapping[str, int]
    exported_rows: int
    canaries: CanaryCounts = CanaryCounts()
    usage: Mapping[str, TokenUsage] = field(default_factory=dict)  # tokens by stage


@dataclass(frozen=True)
class EvalFacts:
    round: int
    dataset: str
    k: int
    n: int
    pass_at_k: float
    model: str
    solved: int | None = None  # puzzles with a verified sample
    total: int | None = None  # puzzles evaluated


@dataclass(frozen=True)
class CardFacts:
    """What the card says; ``factory.outputs.export`` fills it from the store and the selection."""

    pretty_name: str
    run_dir: str
    config: Mapping[str, object] | None
    rounds: Sequence[RoundFacts]
    evals: Sequence[EvalFacts]
    num_rows: int
    num_puzzles: int
    rows_by_origin: Mapping[str, int]
    filters: Sequence[str]  # one line per filter in force
    dropped: Mapping[str, int]  # rows removed, by filter
    license: str = "mit"
    models: Sequence[str] = field(default_factory=tuple)
    reverified: str | None = None  # what re-verification at export found, if it ran
    controls: Mapping[str, object] | None = None  # ``factory.loop.experiment.over_seeds_only``, in an experiment
    kind: str = SFT  # SFT: verified pairs; PREFERENCE: (prompt, chosen, rejected) rows
    rejected_verdicts: Mapping[str, int] = field(default_factory=dict)  # preference rows by rejected verdict
    puzzle_sets: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # RunStore.puzzle_sets


def size_category(n: int) -> str:
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return name
    return "1M<n<10M"


def card_metadata(facts: CardFacts, dataset_info: dict) -> dict:
    """The YAML front matter as a dict, in the Hub's layout (``configs`` and ``dataset_info``).

    ``dataset_info`` is the YAML dict of the ``datasets.DatasetInfo`` of the exported split
    (features, splits, sizes), as ``DatasetInfo._to_yaml_dict`` writes it.
    """
    return {
        "license": facts.license,
        "language": ["en"],
        "pretty_name": facts.pretty_name,
        "task_categories": ["text-generation"],
        "tags": list(TAGS),
        "size_categories": [size_category(facts.num_rows)],
        "configs": [{"config_name": "default", "data_files": [{"split": SPLIT, "path": DATA_FILES_PATTERN}]}],
        "dataset_info": dataset_info,
    }


def render_card(facts: CardFacts, dataset_info: dict) -> str:
    """README.md: YAML front matter, then the card's text."""
    front = yaml.safe_dump(
        card_metadata(facts, dataset_info), sort_keys=False, allow_unicode=True, width=1000
    )
    return f"---\n{front}---\n\n{card_body(facts)}"


# ---------------------------------------------------------------------------------------------------
# the text


def card_body(facts: CardFacts) -> str:
    preference = facts.kind == PREFERENCE
    parts = [
        f"# {facts.pretty_name}\n",
        _preference_summary(facts) if preference else _summary(facts),
        _preference_loading() if preference else _loading(),
        _columns(PREFERENCE_COLUMN_DOCS if preference else COLUMN_DOCS),
        _pairing(facts) if preference else "",
        _contents(facts),
        _settings(facts),
        _puzzle_sets(facts),
        _rounds(facts),
        _evaluation(facts),
        _controls(facts),
        _verification(facts),
        _licence(facts),
        _citation(),
    ]
    return "\n".join(part for part in parts if part)


def _summary(facts: CardFacts) -> str:
    finished = sum(1 for r in facts.rounds if r.finished)
    generated = facts.rows_by_origin.get("generated", 0)
    seeds = facts.rows_by_origin.get("seed", 0)
    models = ", ".join(f"`{m}`" for m in facts.models) or "none recorded"
    return (
        f"Verified programming puzzles and solutions in the P3 format, made by a self-play loop after "
        f"[{PAPER}]({PAPER_URL}): a language model proposes puzzles `f(answer) -> bool`, samples solutions "
        f"`g()`, a sandbox keeps the pairs with `f(g()) == True`, and those pairs fine-tune the next model.\n\n"
        f"This export holds **{facts.num_rows} verified pairs** over **{facts.num_puzzles} distinct puzzles** "
        f"({generated} generated, {seeds} from seed puzzles) from a run with {len(facts.rounds)} rounds "
        f"({finished} finished). Models: {models}. One row per distinct (puzzle, solution): "
        f"`puzzle_hash` is unique per puzzle, `solution_hash` per solution of a puzzle.\n"
    )


def _loading() -> str:
    return (
        "## Loading\n\n"
        "```python\n"
        "from datasets import load_dataset\n\n"
        'pairs = load_dataset("PATH_OR_HUB_ID", split="train")\n'
        "row = pairs[0]\n"
        "namespace = {}\n"
        'exec("from typing import List\\n" + row["puzzle"] + "\\n" + row["solution"], namespace)\n'
        'assert namespace[row["puzzle_name"]](namespace[row["solution_name"]]()) is True\n'
        "```\n\n"
        "The code is model-written: run it in a sandbox, as the factory did, not in your own process.\n"
    )


def _preference_summary(facts: CardFacts) -> str:
    models = ", ".join(f"`{m}`" for m in facts.models) or "none recorded"
    return (
        f"Preference pairs for DPO-style training, from a verified self-play run on programming puzzles in the "
        f"P3 format (after [{PAPER}]({PAPER_URL})): for one puzzle and the prompt the model saw, a solution "
        f"the sandbox verified (`chosen`) and one it rejected (`rejected`), both written by the same model.\n\n"
        f"This export holds **{facts.num_rows} preference pairs** over **{facts.num_puzzles} distinct puzzles** "
        f"from a run with {len(facts.rounds)} rounds. Models: {models}.\n"
    )


def _preference_loading() -> str:
    return (
        "## Loading\n\n"
        "```python\n"
        "from datasets import load_dataset\n"
        "from trl import DPOConfig, DPOTrainer\n\n"
        'pairs = load_dataset("PATH_OR_HUB_ID", split="train")\n'
        'trainer = DPOTrainer(model, args=DPOConfig(output_dir="out"), train_dataset=pairs, processing_class=tokenizer)\n'
        "```\n\n"
        "`prompt`, `chosen` and `rejected` are the columns TRL's DPOTrainer reads (standard, not conversational, "
        "format). The code is model-written: run it in a sandbox, not in your own process.\n"
    )


def _pairing(facts: CardFacts) -> str:
    verdicts = ", ".join(f"{v} {n}" for v, n in sorted(facts.rejected_verdicts.items())) or "none"
    return (
        "## How the pairs were made\n\n"
        "- Every row is one generated puzzle of one round: `chosen` is a solution the round stored as a verified "
        "pair, `rejected` an attempt of the same round at the same puzzle whose verdict was `wrong`, `error`, "
        "`timeout` or `memory`. Attempts the sandbox lost (`crashed`), that never ran (`invalid`: does not "
        "parse or breaks the P3 rules) or that verified once but not again (`flaky`: not a wrong answer) are "
        "never used: they say nothing about the solution.\n"
        "- Each distinct failed solution (by solution hash) appears once, paired with the puzzle's verified "
        "solutions in turn; puzzles without a verified solution or without a failed one give no row.\n"
        "- `prompt` is the solve prompt exactly as the round built it (the run seed, the round, the puzzle and "
        "the pairs stored before the round determine it), ending in the solution's signature; `chosen` and "
        "`rejected` are what the model wrote after it.\n"
        f"- Rejected verdicts in this export: {verdicts}.\n"
    )


def _columns(docs: Mapping[str, str]) -> str:
    lines = ["## Columns\n", "| column | meaning |", "| --- | --- |"]
    lines += [f"| `{name}` | {_cell(doc)} |" for name, doc in docs.items()]
    return "\n".join(lines) + "\n"


def _contents(facts: CardFacts) -> str:
    lines = ["## What this export kept\n"]
    lines += [f"- {_cell(line)}" for line in facts.filters] or ["- every stored pair (no filter)"]
    removed = {k: v for k, v in facts.dropped.items() if v}
    if removed:
        lines.append("")
        lines.append(
            "Rows removed, by filter (in the order applied): "
            + ", ".join(f"{k} {v}" for k, v in removed.items())
            + "."
        )
    return "\n".join(lines) + "\n"


def _settings(facts: CardFacts) -> str:
    if not facts.config:
        return "## Generation settings\n\nThe run's store holds no configuration.\n"
    lines = [
        "## Generation settings\n",
        "The run's configuration as stored at its start:\n",
        "| setting | value |",
        "| --- | --- |",
    ]
    lines += [f"| `{key}` | {_cell(_value(value))} |" for key, value in sorted(facts.config.items())]
    return "\n".join(lines) + "\n"


def _puzzle_sets(facts: CardFacts) -> str:
    if not facts.puzzle_sets:
        return ""
    lines = ["## Seeds and evaluation set\n"]
    for key, what in (("seed_set", "Seeds (the examples of round 1's prompts, and training data)"),
                      ("eval_set", "Evaluation set (kept out of prompts and data)")):
        if key in facts.puzzle_sets:
            lines.append(f"- {what}: {_cell(puzzle_set_line(facts.puzzle_sets[key]))}")
    return "\n".join(lines) + "\n"


def _rounds(facts: CardFacts) -> str:
    if not facts.rounds:
        return "## Rounds\n\nThe run has no rounds yet.\n"
    head = ["round", "model", *FUNNEL_COLUMNS, "rows here"]
    lines = [
        "## Rounds\n",
        "The filter funnel of each round: raw proposals, what the filters rejected (unparsable or rule-breaking, "
        "trivially solved by probe answers, duplicate of a stored puzzle by canonical hash, too close to an "
        "evaluation puzzle), the puzzles accepted, the puzzles with at least one verified solution, the pairs "
        "stored (shortest distinct solutions, a few per puzzle) and the rows of this export.\n",
        _row(head),
        _row(["---"] * len(head)),
    ]
    for r in facts.rounds:
        status = "" if r.finished else " (unfinished)"
        cells = [
            f"{r.round}{status}",
            f"`{r.model}`",
            *(str(r.funnel.get(k, 0)) for k in FUNNEL_COLUMNS),
            str(r.exported_rows),
        ]
        lines.append(_row(cells))
    verdicts = list(dict.fromkeys(v for r in facts.rounds for v in r.verdicts))
    if verdicts:
        lines += [
            "",
            "Sandbox verdicts of every sampled solution, by round:\n",
            _row(["round", *verdicts]),
            _row(["---"] * (len(verdicts) + 1)),
        ]
        lines += [_row([str(r.round), *(str(r.verdicts.get(v, 0)) for v in verdicts)]) for r in facts.rounds]
    usage = add_usage(r.usage for r in facts.rounds)
    if usage:
        lines += ["", f"Tokens the rounds generated with: {describe_usage(usage, prices_of(facts.config))}."]
    return "\n".join(lines) + "\n"


def _evaluation(facts: CardFacts) -> str:
    if not facts.evals:
        return "## Evaluation\n\nNo pass@k was recorded.\n"
    columns = sorted({(e.dataset, e.k) for e in facts.evals})
    by_round: dict[int, dict[tuple[str, int], float]] = {}
    for e in facts.evals:
        by_round.setdefault(e.round, {})[(e.dataset, e.k)] = e.pass_at_k
    samples = sorted({e.n for e in facts.evals})
    lines = [
        "## Evaluation\n",
        f"pass@k on held-out puzzles that never reach prompts or training data (unbiased estimator, "
        f"n = {', '.join(map(str, samples))} samples per puzzle). Round 0 is the base model; round r is the "
        f"model fine-tuned after round r.\n",
        _row(["round", *(f"{d} pass@{k}" for d, k in columns)]),
        _row(["---"] * (len(columns) + 1)),
    ]
    for r in sorted(by_round):
        values = by_round[r]
        label = "0 (base)" if r == 0 else str(r)
        lines.append(_row([label, *(f"{values[c]:.3f}" if c in values else "" for c in columns)]))
    return "\n".join(lines) + "\n" + _p3_reference(facts)


def _p3_reference(facts: CardFacts) -> str:
    """The run's P3 figure beside the paper's published ones, when it evaluated on P3."""
    rows = p3_rows(facts.evals)
    if not rows:
        return ""
    head = ["who", "set", "problems solved", "samples per problem"]
    lines = ["", "P3 beside the paper:\n", _row(head), _row(["---"] * len(head))]
    for r in rows:
        samples = "as published" if r.samples is None else str(r.samples)
        lines.append(_row([r.who, f"`{r.dataset}`", f"{r.solved:g} of {r.total}", samples]))
    return "\n".join(lines) + f"\n\n{p3_note(rows)}\n"


def control_line(controls: Mapping[str, object]) -> str:
    """"trained on this data: +x pass@1 over seeds-only, CI [a, b]" from ``over_seeds_only``'s record."""
    low, high = controls["ci"]  # type: ignore[misc]
    return (
        f"trained on this data: {controls['difference']:+.3f} pass@{controls['k']} over seeds-only, "
        f"CI [{low:+.3f}, {high:+.3f}]"
    )


def _controls(facts: CardFacts) -> str:
    c = facts.controls
    if not c:
        return ""
    return (
        "## Control arms\n\n"
        f"**{control_line(c)}** (round {c['round']}, {c['dataset']}, {c['puzzles']} puzzles; 95% paired "
        f"bootstrap interval over puzzles). This run is the `{c['arm']}` arm of an experiment "
        "(`factory experiment`): arms with the same base model, optimizer steps and evaluation that differ "
        "only in what they fine-tune on; the seeds-only arm trains on the seed pairs alone.\n"
    )


def _verification(facts: CardFacts) -> str:
    timeout = (facts.config or {}).get("timeout_s")
    limit = f" ({timeout} s each for `g` and for `f`)" if timeout else ""
    return (
        "## How verification works\n\n"
        "- Puzzles are parsed and checked against the P3 rules before anything runs: one typed answer argument, "
        "every other argument a literal default, an allowed answer type, no I/O, no `eval`/`exec`, no imports "
        'beyond a small allow-list. Puzzles solved by cheap probe answers (0, "", [], ...) are dropped as trivial.\n'
        "- Duplicates are removed by the SHA-256 of the canonical form (AST with comments, docstrings and the "
        "function name normalised); puzzles equal or near (token 5-gram Jaccard >= 0.8) to an evaluation puzzle "
        "are rejected.\n"
        f"- Each (f, g) pair runs in the factory's sandbox{limit}, a hardened, network-less Docker container "
        "(or local processes, with weaker isolation, where no Docker engine was available): `g()` runs in one process, its "
        "answer crosses back as plain JSON, is type-checked (`type(x) is T`: a bool is not an int, 5.0 is not an "
        "int), and `f` runs on it in a fresh process that `g` never touched. Wall-clock limits are enforced from "
        "outside with SIGKILL; exit codes and printed output never decide a verdict.\n"
        "- Only pairs whose verdict is `verified` (`f` returned exactly `True`) are stored as pairs, and a pair "
        "is `verified` only when a second run in fresh processes verified the same answer (else `flaky`).\n"
        f"- Verifier canaries: {_canaries(facts)}. With every verification batch the sandbox also ran known "
        "cheats (a bool or a float for an int, an object equal to everything, a forged result, an exit that "
        "prints True...), which must not verify, and known good pairs, which must; a flip would have stopped "
        "the round before anything of its batch was stored.\n"
        + (
            f"- Re-verified at export, in a fresh sandbox: {facts.reverified}; any pair that failed was left out.\n"
            if facts.reverified
            else "- Not re-verified at export.\n"
        )
    )


def _canaries(facts: CardFacts) -> str:
    total = sum((r.canaries for r in facts.rounds), CanaryCounts())
    if not total.cheats and not total.good:
        return "none were run in this run's rounds"
    return total.describe()


def _licence(facts: CardFacts) -> str:
    why = " (the licence of the self-play factory and of its seed puzzles)" if facts.license == "mit" else ""
    return (
        "## Licence\n\n"
        f"Released under `{facts.license}`{why}. "
        "The generated puzzles and solutions are outputs of the models named above: check those models' "
        "licences for terms on their outputs before you redistribute or train on them.\n"
    )


def _citation() -> str:
    return (
        "## Citation\n\n"
        "```bibtex\n"
        "@inproceedings{haluptzok2023language,\n"
        "  title     = {Language Models Can Teach Themselves to Program Better},\n"
        "  author    = {Haluptzok, Patrick and Bowers, Matthew and Kalai, Adam Tauman},\n"
        "  booktitle = {International Conference on Learning Representations},\n"
        "  year      = {2023}\n"
        "}\n"
        "```\n"
    )


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "(none)"
    return "(default)" if value is None else str(value)
