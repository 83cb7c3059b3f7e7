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

from factory.loop.weights import LEARNABILITY, NONE, PuzzleDistance, copies, learnability
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


def puzzle_rewards(store: RunStore, round: int, max_chars: int) -> dict[int, float | None]:
    """The reward of each puzzle ``round`` accepted, by puzzle id: its learnability, 0 past the guard's
    length limit ``max_chars``, None while it has no verdict."""
    rates = solve_rates(store, round)
    rewards: dict[int, float | None] = {}
    for puzzle in store.puzzles_of_round(round):
        rate = rates.get(puzzle.id)
        rewards[puzzle.id] = 0.0 if len(puzzle.source) > max_chars else None if rate is None else learnability(rate)
    return rewards


def proposal_rewards(store: RunStore, round: int, max_chars: int) -> dict[int, float | None]:
    """The reward of each proposal of ``round``, by proposal id (see the module docstring); ``max_chars``:
    the guard's length limit; None where the puzzle has no verdict yet."""
    of_puzzle = puzzle_rewards(store, round, max_chars)
    return {
        proposal.id: of_puzzle.get(proposal.puzzle_id) if proposal.status == ACCEPTED and proposal.puzzle_id is not None else 0.0
        for proposal in store.proposals_of_round(round)
    }


def longest_seed(store: RunStore) -> int:
    """The guard's length limit: the longest seed puzzle, in characters."""
    return max((len(p.source) for p in store.pool_puzzles(up_to_round=0)), default=0)


def listing_pool(store: RunStore, up_to_round: int, weighting: str) -> list[str]:
    """The puzzles the recipe's listings draw from, which teach the model what to propose
    (``RunConfig.proposer_weighting``): every puzzle stored so far once (none), or each generated one
    ``copies(reward)`` times and each seed once (learnability), so what no attempt or every attempt
    solved, or what the length guard cut, is never shown as a puzzle to propose: reward-weighted
    imitation, the offline form of Absolute Zero's proposer update."""
    puzzles = store.pool_puzzles(up_to_round=up_to_round)
    if weighting == NONE:
        return [p.source for p in puzzles]
    if weighting != LEARNABILITY:
        raise ValueError(f"unknown proposer weighting {weighting!r}")
    limit = longest_seed(store)
    rewards = {i: r for round in range(1, up_to_round + 1) for i, r in puzzle_rewards(store, round, limit).items()}
    return [p.source for p in puzzles for _ in range(copies(rewards.get(p.id) or 0.0, weighting, seed=p.round == 0))]


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
    limit = longest_seed(store)
    rewards = proposal_rewards(store, round, limit)
    given = [r for r in rewards.values() if r is not None]
    accepted = [p.source for p in store.puzzles_of_round(round)]
    statuses = Counter(p.status for p in store.proposals_of_round(round))
    distance = PuzzleDistance.of_sources(seeds)
    return ProposerReport(
        proposals=len(rewards),
        mean_reward=mean(given),
        rewarded=sum(r > 0 for r in given),
        masked=len(rewards) - len(given),
        too_long=sum(len(s) > limit for s in accepted),
        mean_length=mean([len(s) for s in accepted]),
        distinct_forms=statuses[ACCEPTED] + statuses[TRIVIAL] + statuses[CONTAMINATED],
        distance_to_seeds=mean([distance(s) for s in accepted[:DISTANCE_PUZZLES]]),
    )
