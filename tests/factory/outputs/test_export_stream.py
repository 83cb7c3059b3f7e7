"""The streaming export: many small chunks give exactly what one chunk gives (rows, order, card, counts)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from factory.errors import UserError
from factory.outputs import export
from factory.outputs.dataset_card import DATA_FILE
from factory.outputs.export import Reverify, export_dataset, pair_rows
from factory.outputs.export_filters import ChunkSelector, ExportFilters, near_set
from factory.outputs.export_row import COLUMNS, features
from factory.outputs.parquet_split import SplitWriter
from factory.store import RunStore
from factory.store.export_reads import pair_chunks
from sandbox.verdicts import VERIFIED

FILTERS = [
    ExportFilters(),
    ExportFilters(include_seeds=True),
    ExportFilters(include_seeds=True, max_per_puzzle=1),
    ExportFilters(rounds=frozenset({1}), min_solve_rate=0.25, max_per_puzzle=2),
]


def exported(run_dir: Path, out: Path, monkeypatch, chunk: int, filters: ExportFilters, **kwargs):
    monkeypatch.setattr(export, "CHUNK_ROWS", chunk)
    result = export_dataset(run_dir, out, filters, **kwargs)
    return result, pq.read_table(out / DATA_FILE), (out / "README.md").read_text()


def same_except_dir(a, b) -> bool:
    return {**vars(a), "out_dir": None, "data_file": None, "card_file": None} == {
        **vars(b), "out_dir": None, "data_file": None, "card_file": None
    }


@pytest.mark.parametrize("filters", FILTERS, ids=["default", "seeds", "seeds-max1", "rounds-rate-max2"])
def test_many_chunks_export_exactly_what_one_chunk_exports(run_dir, tmp_path, monkeypatch, filters):
    one = exported(run_dir, tmp_path / "one", monkeypatch, 10**6, filters)
    many = exported(run_dir, tmp_path / "many", monkeypatch, 3, filters)
    assert one[0].rows > 3  # more rows than one small chunk
    assert many[1].to_pylist() == one[1].to_pylist()
    assert many[1].schema == one[1].schema
    assert same_except_dir(many[0], one[0])
    one_card = one[2].replace(str(tmp_path / "one"), "OUT")
    many_card = many[2].replace(str(tmp_path / "many"), "OUT")
    # the split's byte size counts each chunk's arrow buffers: the same within a few bytes a chunk
    strip = lambda text: "\n".join(line for line in text.splitlines() if "_size" not in line and "num_bytes" not in line)  # noqa: E731
    assert strip(many_card) == strip(one_card)


def test_chunk_selector_keeps_the_same_rows_and_counts_in_chunks_of_two_as_in_one(run_dir):
    near = near_set("seeds-test")
    with RunStore.open(run_dir, create=False) as store:
        every = pair_rows(store)
        dropped_by = set()
        for filters in [*FILTERS, ExportFilters(include_seeds=True, near=(near,), max_per_puzzle=1)]:
            whole = ChunkSelector(store, filters)
            want = whole.select(every)
            selector = ChunkSelector(store, filters)
            got = [row for i in range(0, len(every), 2) for row in selector.select(every[i : i + 2])]
            assert got and got == want
            assert selector.dropped == whole.dropped
            assert (selector.seen, selector.kept) == (len(every), len(want))
            dropped_by.update(name for name, n in whole.dropped.items() if n)
        assert dropped_by >= {"seeds", "rounds", "max_per_puzzle"}  # each filter had work


def test_pair_chunks_read_every_stored_pair_once_in_order(run_dir):
    with RunStore.open(run_dir, create=False) as store:
        chunks = list(pair_chunks(store, 4))
        assert all(len(c) == 4 for c in chunks[:-1]) and 1 <= len(chunks[-1]) <= 4
        assert [r["pair_id"] for c in chunks for r in c] == [p.id for p in store.stored_pairs()]


def test_a_reverify_sample_checks_the_same_pairs_whatever_the_chunks(run_dir, tmp_path, monkeypatch):
    calls = []

    def fake_verify(pairs, sandbox, timeout_s):
        calls.extend(pairs)
        return [SimpleNamespace(status="wrong" if len(p.g) % 2 == 0 else VERIFIED) for p in pairs]

    monkeypatch.setattr(export, "verify_pairs", fake_verify)
    reverify = Reverify(sandbox=None, timeout_s=1.0, sample=5, seed=7)
    one = exported(run_dir, tmp_path / "one", monkeypatch, 10**6, ExportFilters(), reverify=reverify)
    checked_one, calls[:] = list(calls), []
    many = exported(run_dir, tmp_path / "many", monkeypatch, 2, ExportFilters(), reverify=reverify)
    assert calls == checked_one and len(calls) == 5
    assert many[1].to_pylist() == one[1].to_pylist()
    assert many[0].reverified == one[0].reverified and many[0].dropped == one[0].dropped


def test_nothing_left_leaves_no_directory(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "CHUNK_ROWS", 3)
    out = tmp_path / "deep" / "out"
    with pytest.raises(UserError, match="nothing to export"):
        export_dataset(run_dir, out, ExportFilters(rounds=frozenset({99})))
    assert not (tmp_path / "deep").exists()


def test_split_writer_leaves_nothing_when_it_fails_midway(tmp_path):
    row = {name: None for name, _ in COLUMNS}
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), SplitWriter(out, features()) as writer:
        writer.write([row, row])
        raise RuntimeError("midway")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_split_writer_output_loads_with_datasets(tmp_path):
    from datasets import load_dataset

    rows = [{**{name: None for name, _ in COLUMNS}, "puzzle": f"p{i}", "round": i} for i in range(7)]
    with SplitWriter(tmp_path / "out", features()) as writer:
        for i in range(0, 7, 3):
            writer.write(rows[i : i + 3])
        writer.finish(lambda info: "---\n" + __import__("yaml").safe_dump({"dataset_info": info}) + "---\n")
    loaded = load_dataset(str(tmp_path / "out"), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.features == features() and loaded.to_list() == rows
