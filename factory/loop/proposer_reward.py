"""The proposer's reward: how much each proposal of a round gives the solver to learn (Absolute Zero's
learnability), and the round's drift report.

A proposal's reward is ``learnability(solve rate)``: 1 - the rate when the round's attempts solved it
sometimes but not always, else 0. The rate leaves crashed attempts out (no verdict, not a failure);
a puzzle with no verdict (every attempt crashed, or none made yet) has no reward (None). Invalid, trivial, duplicate and
contaminated proposals get 0.

Guard against degenerate proposals (proposers drift to artificially long, complex puzzles: SGS, 2026): a
puzzle longer than the longest seed puzzle gets 0 whatever its rate, so the reward never pays for
length beyond the range the seeds show; and each round reports the proposals' mean length, their
distinct canonical forms and their distance to the seeds, so drift shows even where the guard holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from factory.loop.weights import PuzzleDistance, learnability
from factory.store import ACCEPTED, CONTAMINATED, TRIVIAL, RunStore
from sandbox.verdicts import CRASHED, VERIFIED

DISTANCE_PUZZLES = 1000  # accepted puzzles a round's distance to the seeds is measured on, at most


def solve_rates(store: RunStore, round: int) -> dict[int, float | None]:
    """Verified / attempts with a verdict (crashed left out) of each puzzle solved in ``round``, by
    puzzle id; None when every attempt crashed."""
    verdicts: dict[int, Counter[str]] = {}
    for attempt in store.attempts_of_round(round):
        verdicts.setdefault(attempt.puzzle_id, Counter())[attempt.status] += 1
    rates: dict[int, float | None] = {}
    for puzzle_id, counts in verdicts.items():
        judged = sum(counts.values()) - counts[CRASHED]
        rates[puzzle_id] = counts[VERIFIED] / judged if judged else None
    return rates


def proposal_rewards(store: RunStore, round: int, max_chars: int) -> dict[int, float | None]:
    """The reward of each proposal of ``round``, by proposal id (see the module docstring); ``max_chars``:
    the guard's length limit; None where the puzzle has no verdict yet."""
    rates = solve_rates(store, round)
    sources = {p.id: p.source for p in store.puzzles_of_round(round)}
    rewards: dict[int, float | None] = {}
    for proposal in store.proposals_of_round(round):
        if proposal.status != ACCEPTED or proposal.puzzle_id is None:
            rewards[proposal.id] = 0.0
        elif len(sources[proposal.puzzle_id]) > max_chars:
            rewards[proposal.id] = 0.0
        else:
            rate = rates.get(proposal.puzzle_id)
            rewards[proposal.id] = None if rate is None else learnability(rate)
    return rewards


@dataclass(frozen=True)
class ProposerReport:
    """A round's proposer reward and drift: mean reward (over proposals with one), proposals rewarded
    (> 0), masked (no verdict), cut by the length guard; mean length of the accepted puzzles
    (characters); distinct canonical forms the round produced that no stored puzzle or earlier
    proposal had (accepted, trivial, contaminated); mean distance of accepted puzzles to the seeds."""

    proposals: int
    mean_reward: float | None
    rewarded: int
    masked: int
    too_long: int
    mean_length: float | None
    distinct_forms: int
    distance_to_seeds: float | None

    def to_json(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def proposer_report(store: RunStore, round: int) -> ProposerReport:
    """``round``'s ``ProposerReport``, with the guard's limit at the longest seed puzzle."""
    seeds = [p.source for p in store.pool_puzzles(up_to_round=0)]
    max_chars = max((len(s) for s in seeds), default=0)
    rewards = proposal_rewards(store, round, max_chars)
    given = [r for r in rewards.values() if r is not None]
    accepted = [p.source for p in store.puzzles_of_round(round)]
    statuses = Counter(p.status for p in store.proposals_of_round(round))
    distance = PuzzleDistance.of_sources(seeds)
    return ProposerReport(
        proposals=len(rewards),
        mean_reward=mean(given),
        rewarded=sum(r > 0 for r in given),
        masked=len(rewards) - len(given),
        too_long=sum(len(s) > max_chars for s in accepted),
        mean_length=mean([len(s) for s in accepted]),
        distinct_forms=statuses[ACCEPTED] + statuses[TRIVIAL] + statuses[CONTAMINATED],
        distance_to_seeds=mean([distance(s) for s in accepted[:DISTANCE_PUZZLES]]),
    )
