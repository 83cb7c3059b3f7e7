"""The run store: records and status names, the SQLite schema, ``RunStore``, and the read model of a round."""

from factory.store import records, stats
from factory.store.records import *  # noqa: F403 - the package's surface: the records, RunStore, stats
from factory.store.run_store import RunStore
from factory.store.schema import SCHEMA_VERSION, STORE_FILENAME
from factory.store.stats import *  # noqa: F403

__all__ = [*records.__all__, *stats.__all__, "RunStore", "SCHEMA_VERSION", "STORE_FILENAME"]
