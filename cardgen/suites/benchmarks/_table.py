"""Reading a benchmark's published file: CSV, JSONL, a JSON list or Parquet, row by row, with the
line (and column) every error names."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardgen._io import jsonl_objects
from cardgen.errors import CardgenError


@dataclass(frozen=True)
class Row:
    """One record and where it is: ``line`` is the file line (CSV, JSONL) or the 1-based record
    number (JSON list, Parquet); ``columns`` the header, in order, for column numbers."""

    path: Path
    line: int
    values: dict[str, Any]
    columns: tuple[str, ...] = ()

    def where(self, column: str | None = None) -> str:
        if column is not None and column in self.columns:
            return f"{self.path}:{self.line}:{self.columns.index(column) + 1}"
        return f"{self.path}:{self.line}"

    def text(self, column: str, *, required: bool = True) -> str:
        """The cell as text; a missing or empty required cell is an error naming line/column."""
        value = self.values.get(column)
        text = "" if value is None else str(value).strip()
        if required and not text:
            what = "missing" if column not in self.values else "empty"
            raise CardgenError(f"{self.where(column)}: column {column!r} is {what}.")
        return text


def read_rows(path: Path, required: Sequence[str] = ()) -> list[Row]:
    """Every record of ``path`` (by its suffix). Raises CardgenError naming the line and column
    of the first problem: unreadable bytes, a malformed line, a missing header column."""
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CardgenError(f"{path}: cannot read ({e.strerror or e}).") from None
    if suffix == ".parquet":
        rows = _parquet(path, raw)
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise CardgenError(f"{path}:{line}: not UTF-8 (byte {e.start}).") from None
        if suffix in (".csv", ".tsv"):
            rows = list(_csv(path, text, "\t" if suffix == ".tsv" else ","))
        elif suffix == ".jsonl":
            rows = list(_jsonl(path, text))
        elif suffix == ".json":
            rows = _json_list(path, text)
        else:
            raise CardgenError(
                f"{path}: unknown format {suffix or '(no suffix)'}; give a .csv, "
                ".tsv, .jsonl, .json or .parquet file."
            )
    if not rows:
        raise CardgenError(f"{path}: no records.")
    header = rows[0].columns or tuple(rows[0].values)
    for col in required:
        if col not in header:
            raise CardgenError(
                f"{path}:1: column {col!r} is missing (the file has: {', '.join(header)}).",
                hint="Is this the benchmark's published file? See `cardgen suite list`.",
            )
    return rows


def _csv(path: Path, text: str, delimiter: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = tuple(h.strip() for h in next(reader))
    except StopIteration:
        return
    except csv.Error as e:
        raise CardgenError(f"{path}:1: not a CSV header ({e}).") from None
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise CardgenError(f"{path}:{reader.line_num}: malformed CSV ({e}).") from None
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise CardgenError(
                f"{path}:{line}:{len(header) + 1}: {len(cells)} cells under a "
                f"{len(header)}-column header."
            )
        yield Row(path, line, dict(zip(header, cells, strict=False)), header)


def _jsonl(path: Path, text: str) -> Iterator[Row]:
    for lineno, value in jsonl_objects(text, path):
        yield Row(path, lineno, value, tuple(value))


def _json_list(path: Path, text: str) -> list[Row]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise CardgenError(f"{path}:{e.lineno}:{e.colno}: not JSON ({e.msg}).") from None
    if not isinstance(value, list):
        raise CardgenError(f"{path}:1:1: expected a JSON list of records.")
    rows = []
    for i, item in enumerate(value, 1):
        record = item if isinstance(item, dict) else {"text": item}
        rows.append(Row(path, i, record, tuple(record)))
    return rows


def _parquet(path: Path, raw: bytes) -> list[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CardgenError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow)."
        ) from None
    try:
        table = pq.read_table(io.BytesIO(raw))
    except Exception as e:  # pyarrow raises its own error types for a damaged file
        raise CardgenError(f"{path}: not a readable Parquet file ({type(e).__name__}).") from None
    columns = tuple(table.column_names)
    return [Row(path, i, rec, columns) for i, rec in enumerate(table.to_pylist(), 1)]
