"""The propose stage's filters, as plain functions: raw model text in, one ``ProposalRow`` per text out.

In order: parse and the P3 rules (``invalid``), bool answers (``trivial``), the same canonical form as
a stored puzzle or an earlier one of the batch (``duplicate``), the evaluation set (``contaminated``),
then probes in the sandbox: a cheap answer that solves the puzzle (``trivial``), or a puzzle that can
never be solved because it uses an undefined name or never returns a bool (``invalid``).
"""

from __future__ import annotations

from collections.abc import Container, Sequence

from factory.store.records import ACCEPTED, CONTAMINATED, DUPLICATE, INVALID, TRIVIAL, ProposalRow
from puzzles.canonical import canonical_form
from puzzles.filters import EvalIndex, probe_answers
from puzzles.parse import parse_puzzle
from puzzles.records import InvalidProgram, Puzzle
from sandbox.backend import Sandbox
from sandbox.verify import PROBE_NOT_BOOL, PROBE_SOLVED, PROBE_UNDEFINED_NAME, probe_job, probe_outcome

PROBE_TIMEOUT_S = 1.0  # at most; a probe is one call of f on a small answer


def filter_proposals(
    indices: Sequence[int],
    raws: Sequence[str],
    known_hashes: Container[str],
    eval_index: EvalIndex,
    sandbox: Sandbox,
    timeout_s: float,
) -> list[ProposalRow]:
    """The filters' verdict on each raw proposal (``raws[i]`` is item ``indices[i]`` of the round).

    ``known_hashes`` (canonical hashes of every stored puzzle: a set, or the store's live view
    ``RunStore.known_hashes()``) is only asked about the batch's hashes, never copied or changed; puzzles
    accepted earlier in the same call count as known for the later ones.
    """
    batch_hashes: set[str] = set()  # accepted so far in this call; copying known_hashes would cost O(store)
    rows: dict[int, ProposalRow] = {}
    candidates: list[tuple[int, str, Puzzle, str]] = []
    for idx, raw in zip(indices, raws, strict=True):
        try:
            puzzle = parse_puzzle(raw)
            form = canonical_form(puzzle.source)  # its hash and shingles serve every check below
            digest = form.hash
        except InvalidProgram as e:
            rows[idx] = ProposalRow(idx, raw, INVALID, str(e), prompt_seed=idx)
            continue
        if puzzle.answer_type == "bool":
            rows[idx] = ProposalRow(idx, raw, TRIVIAL, "a bool answer is found by trying True and False", idx)
        elif digest in batch_hashes or digest in known_hashes:
            rows[idx] = ProposalRow(idx, raw, DUPLICATE, "same canonical form as an earlier puzzle", idx)
        elif (why := eval_index.contamination_of(form)) is not None:
            rows[idx] = ProposalRow(idx, raw, CONTAMINATED, why, idx)
        else:
            batch_hashes.add(digest)
            candidates.append((idx, raw, puzzle, digest))
    probed = probe([puzzle for _, _, puzzle, _ in candidates], sandbox, min(PROBE_TIMEOUT_S, timeout_s))
    for (idx, raw, puzzle, digest), (status, why) in zip(candidates, probed, strict=True):
        if status:
            rows[idx] = ProposalRow(idx, raw, status, why, idx)
        else:
            rows[idx] = ProposalRow(idx, raw, ACCEPTED, "", idx, puzzle, digest)
    return [rows[idx] for idx in indices]


def probe(puzzles: Sequence[Puzzle], sandbox: Sandbox, timeout_s: float) -> list[tuple[str, str]]:
    """Run each puzzle on cheap answers of its type in the sandbox (``f`` is untrusted): ("trivial", why)
    when one solves it, ("invalid", why) when every probe hits a name the puzzle never defines or gets
    something other than a bool back (it can never be solved), ("", "") otherwise."""
    jobs, owners, answers = [], [], []
    for p_index, puzzle in enumerate(puzzles):
        for answer in probe_answers(puzzle.answer_type):
            jobs.append(probe_job(len(jobs), puzzle, answer, timeout_s))
            owners.append(p_index)
            answers.append(answer)
    outcomes: list[list[tuple[str, object]]] = [[] for _ in puzzles]
    for result, owner, answer in zip(sandbox.run(jobs), owners, answers, strict=True):
        outcomes[owner].append((probe_outcome(result), answer))
    verdicts = []
    for seen in outcomes:
        kinds = [kind for kind, _ in seen]
        solved_by = [answer for kind, answer in seen if kind == PROBE_SOLVED]
        if solved_by:
            verdicts.append((TRIVIAL, f"solved by the probe answer {solved_by[0]!r}"))
        elif kinds and all(kind == PROBE_UNDEFINED_NAME for kind in kinds):
            verdicts.append((INVALID, "uses a name it never defines (NameError on every probe)"))
        elif kinds and all(kind == PROBE_NOT_BOOL for kind in kinds):
            verdicts.append((INVALID, "returns something other than a bool on every probe"))
        else:
            verdicts.append(("", ""))
    return verdicts
