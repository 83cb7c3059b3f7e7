"""The run store: records and status names, the SQLite schema, ``RunStore``, and the read model of a round."""

from factory.store.records import (
    ACCEPTED,
    GENERATED,
    PROPOSAL_STATUSES,
    PROPOSE_STAGE,
    SEED,
    SELECT_STAGE,
    SOLVE_STAGE,
    AttemptRow,
    CheckpointInfo,
    EvalRecord,
    ProposalRow,
    RoundInfo,
    StoredAttempt,
    StoredPair,
    StoredProposal,
    StoredPuzzle,
    solution_hash,
    solution_length,
)
from factory.store.run_store import RunStore
from factory.store.schema import SCHEMA_VERSION, STORE_FILENAME

__all__ = [
    "ACCEPTED",
    "GENERATED",
    "PROPOSAL_STATUSES",
    "PROPOSE_STAGE",
    "SCHEMA_VERSION",
    "SEED",
    "SELECT_STAGE",
    "SOLVE_STAGE",
    "STORE_FILENAME",
    "AttemptRow",
    "CheckpointInfo",
    "EvalRecord",
    "ProposalRow",
    "RoundInfo",
    "RunStore",
    "StoredAttempt",
    "StoredPair",
    "StoredProposal",
    "StoredPuzzle",
    "solution_hash",
    "solution_length",
]
