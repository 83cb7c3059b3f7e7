"""Push an export (``factory.outputs.export`` or ``preference_export``: its parquet split and its dataset card) to the Hugging Face Hub.

``hub_target`` checks everything a push needs that does not need the network (repository id, offline
mode, token) so a caller can refuse before any work; ``push_to_hub`` uploads, and turns network and Hub
failures into one-line UserErrors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from factory.errors import UserError
from factory.outputs.dataset_card import CARD_FILENAME, DATA_FILE, SPLIT
from factory.outputs.export_row import COLUMNS, features
from factory.outputs.preference_export import PREFERENCE_COLUMNS, preference_features

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class HubTarget:
    repo_id: str
    token: str
    private: bool
    endpoint: str


def hub_target(repo_id: str, *, private: bool = False, token: str | None = None) -> HubTarget:
    """Check everything a push needs that does not need the network; UserError when something is missing.

    The token is ``token``, else the usual Hugging Face one (``HF_TOKEN``, or the file ``hf auth login``
    writes). Nothing here opens a connection.
    """
    from huggingface_hub import constants, get_token

    if not _REPO_ID.match(repo_id):
        raise UserError(
            f"Hub repository {repo_id!r}: expected USER/NAME (or ORG/NAME), e.g. alice/selfplay-pairs"
        )
    if _offline():
        raise UserError(
            "cannot push: HF_HUB_OFFLINE is set, so the Hugging Face Hub is off limits; unset it and push again"
        )
    token = token or get_token()
    if not token:
        raise UserError(
            "cannot push: no Hugging Face token; set HF_TOKEN or run `hf auth login`, then push again"
        )
    return HubTarget(repo_id, token, private, os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)


def push_to_hub(
    export_dir: Path | str, target: HubTarget, log: Callable[[str], None] = lambda m: None
) -> str:
    """Push an export (its parquet split and its card) to ``target.repo_id``; returns the dataset's URL.

    ``Dataset.push_to_hub`` uploads the rows (and writes a default card); the export's own card then
    replaces that card. Network and Hub failures become one-line UserErrors.
    """
    import pyarrow.parquet as pq
    from datasets import Dataset
    from huggingface_hub import HfApi

    export_dir = Path(export_dir)
    data_file, card_file = export_dir / DATA_FILE, export_dir / CARD_FILENAME
    if not data_file.is_file() or not card_file.is_file():
        raise UserError(
            f"{export_dir} is not a factory export (no {DATA_FILE} or {CARD_FILENAME}); export the run there first"
        )
    table = pq.read_table(data_file)
    known = {
        tuple(name for name, _ in COLUMNS): (features, "verified self-play pairs"),
        tuple(name for name, _ in PREFERENCE_COLUMNS): (preference_features, "self-play preference pairs"),
    }
    if tuple(table.column_names) not in known:
        raise UserError(
            f"{data_file} does not have this factory's columns; export the run again"
        )
    features_of, what = known[tuple(table.column_names)]
    dataset = Dataset.from_list(table.to_pylist(), features=features_of())
    api = HfApi(endpoint=target.endpoint, token=target.token)
    with _hub_errors(target):
        user = api.whoami()
        log(f"pushing {len(dataset)} rows to {target.repo_id} as {user.get('name', '?')}")
        dataset.push_to_hub(
            target.repo_id,
            split=SPLIT,
            private=target.private,
            token=target.token,
            commit_message=f"Upload {what} (factory export)",
        )
        api.upload_file(
            path_or_fileobj=str(card_file),
            path_in_repo=CARD_FILENAME,
            repo_id=target.repo_id,
            repo_type="dataset",
            commit_message="Dataset card (factory export)",
        )
    return f"{target.endpoint.rstrip('/')}/datasets/{target.repo_id}"


def _offline() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.upper() in {"1", "ON", "YES", "TRUE"} or bool(constants.HF_HUB_OFFLINE)


@contextmanager
def _hub_errors(target: HubTarget) -> Iterator[None]:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled:
        raise UserError("cannot push: HF_HUB_OFFLINE is set; unset it and push again") from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            raise UserError(
                f"the Hugging Face Hub at {target.endpoint} refused the token (HTTP {status}): check HF_TOKEN or "
                f"run `hf auth login`, and that it may write to {target.repo_id}"
            ) from None
        raise UserError(f"pushing to {target.repo_id} failed: the Hub answered {_first_line(e)}") from None
    except Exception as e:
        if not _is_network_error(e):
            raise
        raise UserError(
            f"cannot reach the Hugging Face Hub at {target.endpoint} ({_first_line(e)}): check the network "
            "or HF_ENDPOINT, then push again (the export on disk is complete)"
        ) from None


def _is_network_error(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return True
    root = type(e).__module__.split(".")[0]
    return root in {"httpx", "httpx2", "requests", "urllib3", "httpcore", "aiohttp"}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
