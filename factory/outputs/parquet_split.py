"""The one parquet split of a Hub-layout dataset (``data/train-00000-of-00001.parquet`` and its
``README.md`` card), written a chunk of records at a time in a staging directory and moved into place
at the end, so a failed export leaves nothing half-written."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from factory.errors import UserError
from factory.outputs.dataset_card import CARD_FILENAME, DATA_FILE, SPLIT

# Records turned into one arrow table and appended at a time by ``write_dataset``
RECORDS_PER_WRITE = 2000


def write_dataset(out_dir: Path, records: list[dict], features, card: Callable[[dict], str]) -> None:
    """Write ``records`` as the one parquet split of a Hub-layout dataset in ``out_dir`` with the card
    ``card(dataset_info)`` (the split's ``DatasetInfo`` as YAML); written beside ``out_dir`` and moved in
    at the end, so a failure leaves nothing half-written."""
    with SplitWriter(out_dir, features) as writer:
        for i in range(0, len(records), RECORDS_PER_WRITE):
            writer.write(records[i : i + RECORDS_PER_WRITE])
        writer.finish(card)


class SplitWriter:
    """The one parquet split of a Hub-layout dataset, appended to a chunk of records at a time with
    pyarrow's ``ParquetWriter`` (the schema of ``features``, with its ``huggingface`` metadata), then
    ``finish(card)``: the card ``card(dataset_info)`` (the split's ``DatasetInfo`` as YAML, its sizes
    those written) and the move into ``out_dir``. Everything is written in a staging directory beside
    ``out_dir`` (made at the first write), which leaving the ``with`` block removes: ``out_dir`` gets
    the files only when ``finish`` ran, and a failure leaves nothing half-written."""

    def __init__(self, out_dir: Path, features) -> None:
        self.out_dir, self.features = out_dir, features
        self.schema = features.arrow_schema
        self.rows = self.nbytes = 0
        self._staging: Path | None = None
        self._writer = None

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)

    def _open(self):
        if self._writer is None:
            import pyarrow.parquet as pq

            self.out_dir.parent.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.", dir=self.out_dir.parent))
            data_file = self._staging / DATA_FILE
            data_file.parent.mkdir(parents=True)
            self._writer = pq.ParquetWriter(str(data_file), self.schema)
        return self._writer

    def write(self, records: Sequence[dict], *, even_if_empty: bool = False) -> None:
        if not records and not even_if_empty:
            return
        import pyarrow as pa

        table = pa.Table.from_pylist(list(records), schema=self.schema)
        self._open().write_table(table)
        self.rows += table.num_rows
        self.nbytes += table.nbytes

    def finish(self, card: Callable[[dict], str]) -> None:
        from datasets import DatasetInfo, SplitDict, SplitInfo

        if not self.rows:
            self.write([], even_if_empty=True)  # a file with the schema and no rows
        self._writer.close()
        self._writer = None
        assert self._staging is not None
        data_file = self._staging / DATA_FILE
        splits = SplitDict()
        splits.add(SplitInfo(name=SPLIT, num_bytes=self.nbytes, num_examples=self.rows))
        info = DatasetInfo(
            features=self.features,
            splits=splits,
            download_size=data_file.stat().st_size,
            dataset_size=self.nbytes,
        )
        (self._staging / CARD_FILENAME).write_text(card(info._to_yaml_dict()), encoding="utf-8")
        _move_into(self._staging, self.out_dir)


def check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} is a file: an export needs a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise UserError(
            f"{out_dir} is not empty: choose a new directory, or pass force=True to replace an earlier export"
        )


def _move_into(staging: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = out_dir / Path(DATA_FILE).parent
    if data_dir.exists():
        shutil.rmtree(data_dir)
    (staging / Path(DATA_FILE).parent).replace(data_dir)
    (staging / CARD_FILENAME).replace(out_dir / CARD_FILENAME)
