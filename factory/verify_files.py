"""`factory verify`: verify (f, g) pairs from a JSONL file or P3's reference solutions."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from factory.errors import UserError
from puzzles.records import NamedPuzzle
from sandbox.backend import Sandbox
from sandbox.verdicts import ALL_VERDICTS, Result
from sandbox.verify import SourcePair, verify_pairs


@dataclass(frozen=True)
class VerifyReport:
    results: list[Result]
    seconds: float
    sandbox: str

    def counts(self) -> Counter:
        return Counter(r.status for r in self.results)

    def table(self) -> str:
        counts = self.counts()
        rows = [f"{status:10s} {counts[status]:8d}" for status in ALL_VERDICTS if counts[status]]
        rate = len(self.results) / self.seconds if self.seconds > 0 else 0.0
        rows.append(
            f"{'total':10s} {len(self.results):8d}   {self.seconds:.1f} s, {rate:.1f} pairs/s ({self.sandbox})"
        )
        return "\n".join(rows)


def read_jsonl_lines(path: Path) -> list[tuple[int, str]]:
    """The lines of a UTF-8 file, numbered from 1, without their line ends; errors name the file.

    Lines end at "\n" (or "\r\n") only: U+2028, U+0085 and the like may stand raw inside a JSON
    string, so ``str.splitlines`` would cut a valid record in two.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read it ({e})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [(number, line.removesuffix("\r")) for number, line in enumerate(lines, start=1)]


def read_pairs_jsonl(path: Path) -> list[dict]:
    """Every line must be a JSON object with string fields ``f`` and ``g``; errors name the line."""
    records = []
    for number, line in read_jsonl_lines(path):
        try:
            record = json.loads(line)
        except ValueError as e:
            raise UserError(f"{path}:{number}: not a JSON object ({e})") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}:{number}: not a JSON object")
        for field in ("f", "g"):
            if not isinstance(record.get(field), str):
                raise UserError(f"{path}:{number}: field {field!r} must be a string of Python source")
        records.append(record)
    return records


def write_jsonl_atomically(path: Path, rows: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    with open(temporary, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)


def progress_bar(total: int, label: str):
    from tqdm import tqdm

    return tqdm(
        total=total, desc=label, unit="pair", file=sys.stderr, disable=not sys.stderr.isatty(), leave=False
    )


def run_verification(
    pairs: Sequence[SourcePair], sandbox: Sandbox, timeout_s: float, trusted_puzzles: bool = False
) -> VerifyReport:
    start = time.perf_counter()
    with progress_bar(len(pairs), "verify") as bar:
        results = verify_pairs(pairs, sandbox, timeout_s, lambda i, r: bar.update(1), trusted_puzzles)
    return VerifyReport(results, time.perf_counter() - start, sandbox.kind)


def verify_records(
    records: Sequence[dict], out_path: Path, sandbox: Sandbox, timeout_s: float
) -> VerifyReport:
    """RESULTS has one line per input record, in order: the input's other fields plus the verdict."""
    report = run_verification([SourcePair(r["f"], r["g"]) for r in records], sandbox, timeout_s)
    rows = []
    for record, result in zip(records, report.results, strict=True):
        row = {k: v for k, v in record.items() if k not in ("f", "g")}
        row.update(id=record.get("id"), status=result.status, seconds=result.seconds, detail=result.detail)
        rows.append(row)
    write_jsonl_atomically(out_path, rows)
    return report


def verify_p3(
    puzzles_path: Path, sandbox: Sandbox, timeout_s: float, split: str | None, out_path: Path | None
) -> tuple[VerifyReport, list[dict]]:
    """Verify every reference solution of every P3 instance; returns the report and per-pair rows."""
    from puzzles.p3 import load_p3

    try:
        named = load_p3(puzzles_path, split)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    keys, pairs = reference_pairs(named)
    report = run_verification(pairs, sandbox, timeout_s, trusted_puzzles=True)
    rows = [
        {"id": key, "status": r.status, "seconds": r.seconds, "detail": r.detail}
        for key, r in zip(keys, report.results, strict=True)
    ]
    if out_path is not None:
        write_jsonl_atomically(out_path, rows)
    return report, rows


def reference_pairs(named: Sequence[NamedPuzzle]) -> tuple[list[str], list[SourcePair]]:
    """Every reference solution of ``named`` as an (f, g) pair, and its key ``"Name:0#i"``."""
    keys, pairs = [], []
    for item in named:
        for i, solution in enumerate(item.solutions):
            keys.append(f"{item.key}#{i}")
            pairs.append(SourcePair(item.puzzle.source, solution.source))
    return keys, pairs
