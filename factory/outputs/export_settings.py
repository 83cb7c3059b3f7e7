"""The settings of an export (`factory export`'s options, derived from these fields): what is exported,
which generated pairs the filters keep, whether the pairs are verified again, and where it is pushed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from factory.errors import SettingError
from factory.outputs.dataset_card import PREFERENCE, SFT
from factory.settings import check_declared, setting
from puzzles.canonical import NEAR_DUPLICATE_THRESHOLD

SFT_ONLY = ("include_seeds", "min_solve_rate", "max_per_puzzle", "exclude_near", "exclude_near_p3", "reverify_sample")
P3_SPLITS = ("test", "train", "all")


@dataclass(frozen=True)
class ExportSettings:
    force: bool = setting(False, "replace an earlier export in the output directory")
    format: str = setting(
        SFT,
        "sft: verified (puzzle, solution) pairs; preference: prompt/chosen/rejected rows for DPO, a verified "
        "solution over a failed attempt at the same puzzle (rounds applies)",
        choices=(SFT, PREFERENCE),
    )
    include_seeds: bool = setting(False, "also export the seed puzzles' pairs")
    rounds: str | None = setting(None, "only pairs of these rounds, e.g. 1-3 or 2,3 or 1-2,5", metavar="SPEC")
    min_solve_rate: float | None = setting(
        None, "only puzzles whose attempts in their round were verified at least this often (0..1)"
    )
    max_per_puzzle: int | None = setting(None, "at most N solutions per puzzle, shortest first", minimum=1)
    exclude_near: tuple[str, ...] = setting(
        (), "drop puzzles equal or near to an evaluation set: seeds-test (repeatable)", repeat=True, metavar="NAME"
    )
    exclude_near_p3: tuple[Path, ...] = setting(
        (), "drop puzzles equal or near to P3's puzzles (puzzles.json; repeatable)", repeat=True, metavar="PATH"
    )
    p3_split: str = setting("test", "which P3 split exclude_near_p3 compares with", choices=P3_SPLITS)
    near_threshold: float = setting(
        NEAR_DUPLICATE_THRESHOLD,
        "similarity at or above which a puzzle counts as near (the decontamination threshold)", metavar="S",
    )
    license: str = setting("mit", "licence identifier for the card")
    push_to_hub: str | None = setting(
        None, "also push the dataset and card to the Hugging Face Hub", metavar="USER/NAME"
    )
    private: bool = setting(False, "with push_to_hub: create the Hub repository private")
    reverify: bool = setting(
        True, "verify every exported pair again in a fresh sandbox and leave out any that fails"
    )
    reverify_sample: int | None = setting(None, "re-verify only a random sample of N pairs", minimum=1)
    timeout: float | None = setting(
        None, "re-verification: seconds each of g and f may run (default: the run's timeout_s)", metavar="S"
    )

    def __post_init__(self) -> None:
        check_declared(self)
        if self.private and not self.push_to_hub:
            raise SettingError("private", "private only applies with push_to_hub USER/NAME")
        if not 0.0 < self.near_threshold <= 1.0:
            raise SettingError("near_threshold", f"near_threshold must be in (0, 1] (got {self.near_threshold})")
        if self.timeout is not None and self.timeout <= 0:
            raise SettingError("timeout", f"timeout must be positive (got {self.timeout})")
        if self.format == PREFERENCE:
            for name in SFT_ONLY:
                if getattr(self, name) not in (None, False, ()):
                    raise SettingError(name, f"{name} only applies with format {SFT}")
