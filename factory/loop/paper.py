"""The evaluation protocol of "Language Models Can Teach Themselves to Program Better" (Haluptzok,
Bowers, Kalai; ICLR 2023) and the figures it published, for comparison only.

Protocol (the paper's ICLR2023/src/solve.py): P3's test split, one instance per problem (each
problem's first, ``Name:0``: its data/test_228.json holds exactly these 228 puzzles), 100 attempts per
puzzle sampled at temperature 0.8 with 150 new tokens; it reports "solved in <= k attempts out of 228"
for k = 1, 2, 4, ..., 64, 100.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_SAMPLES = 100
PAPER_TEMPERATURE = 0.8
PAPER_MAX_NEW_TOKENS = 150
PAPER_KS = (1, 2, 4, 8, 16, 32, 64, 100)
PAPER_PROBLEMS = 228
PAPER_DATASET = "p3-test"  # factory.loop.corpus's name for the test split's first instances


@dataclass(frozen=True)
class PublishedFigure:
    """One figure the paper's authors published: problems solved of ``total``."""

    model: str
    stage: str
    solved: float
    total: int = PAPER_PROBLEMS


# From the paper's repository, microsoft/PythonProgrammingPuzzles, ICLR2023/README.md: GPT-Neo-125M
# fine-tuned on its own verified puzzles and solutions of self-play iteration 0 and iteration 2.
PUBLISHED = (
    PublishedFigure("GPT-Neo-125M", "fine-tuned on its iteration-0 data", 22.2),
    PublishedFigure("GPT-Neo-125M", "fine-tuned on its iteration-2 data", 26.9),
)
PUBLISHED_SOURCE = "microsoft/PythonProgrammingPuzzles, ICLR2023/README.md"
NOT_COMPARABLE = (
    "Published reference figures, not a result of this run: a 125M-parameter model pretrained on code and "
    "fine-tuned on up to a million generated pairs. A tiny model trained from scratch on the seed puzzles "
    "is not comparable with it."
)
