"""Reading a local file into rows: JSON (an array or JSON lines), strict CSV, parquet; all but
parquet optionally gzipped.

A damaged file stops the load in either ``on_bad_rows`` mode, naming the line: bytes that are not
UTF-8, a JSON line that does not parse (a file cut off mid-line), a CSV quote that is not closed
properly.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from repsafe_lib.loaders.errors import DatasetError

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_DAMAGED_FILE = "on_bad_rows: skip skips bad rows, not a damaged file"


class Malformed(NamedTuple):
    """A row the reader could not turn into a mapping (e.g. a CSV row with too many fields)."""

    reason: str


class Row(NamedTuple):
    row: int
    line: int | None
    data: object


class Table(NamedTuple):
    """Rows as read, before validation. ``text_cells``: every value arrived as a string (CSV)."""

    source: str
    rows: list[Row]
    columns: frozenset[str]
    text_cells: bool


def _decode(raw: bytes, path: str) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        reason = f"not valid UTF-8 (byte offset {exc.start}); {_DAMAGED_FILE}"
        raise DatasetError(reason, path=path, line=line) from None
    if not text.strip():
        raise DatasetError("empty file", path=path)
    return text


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"not a readable gzip file ({exc})", path=str(path)) from None


def _read_json(text: str, path: str) -> list[Row]:
    """A JSON array of objects, or JSON lines; told apart by the first non-space character."""
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except (ValueError, RecursionError) as exc:
            line = getattr(exc, "lineno", None)
            reason = f"invalid JSON ({exc}); {_DAMAGED_FILE}"
            raise DatasetError(reason, path=path, line=line) from None
        return [Row(i, None, item) for i, item in enumerate(items, start=1)]
    return _read_json_lines(text, path)


def _read_json_lines(text: str, path: str) -> list[Row]:
    rows: list[Row] = []
    # Not splitlines(): it also splits on U+2028 and friends, which JSON strings may hold raw.
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as exc:
            reason = f"invalid or truncated JSON line ({exc}); {_DAMAGED_FILE}"
            raise DatasetError(reason, path=path, line=line_no) from None
        rows.append(Row(len(rows) + 1, line_no, data))
    return rows


def _read_csv(text: str, path: str) -> tuple[list[Row], list[str]]:
    """Rows of a CSV file, read strictly (RFC 4180 quoting).

    A quoted field may span lines (real XSTest completions and Do-Not-Answer answers do). A quote
    opens a field and closes it only when followed by a comma, the end of the line or the end of
    the file (a quote inside quoted text is doubled). A field that breaks this, or a quote still
    open at the end of the file, is an error naming the line where that field's quote opened: a
    lenient reader would take the rows after a lone quote into the field and carry on.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[Row] = []
    line_before = 0
    try:
        header = next(reader)
        line_before = reader.line_num
        for values in reader:
            start, line_before = line_before + 1, reader.line_num
            if not values:
                continue
            rows.append(Row(len(rows) + 1, start, _csv_record(header, values)))
    except csv.Error as exc:
        lines = io.StringIO(text, newline="").readlines()[line_before : reader.line_num]
        opened = _open_quote_line(lines, first=line_before + 1)
        if opened is None:
            reason = f"malformed CSV ({exc}); {_DAMAGED_FILE}"
            raise DatasetError(reason, path=path, line=reader.line_num) from None
        reason = (
            "malformed CSV: the quoted field opened on this line does not close properly "
            f"(line {reader.line_num}: {exc}); close the quote, and double any quote inside it; "
            + _DAMAGED_FILE
        )
        raise DatasetError(reason, path=path, line=opened) from None
    return rows, header


def _open_quote_line(lines: Sequence[str], first: int) -> int | None:
    """The line (numbered from `first`) where the quoted field that strict CSV reading rejects
    opened, scanning one record's lines; None when the record has no bad quote."""
    quoted, at_field_start, opened = False, True, None
    for number, line in enumerate(lines, start=first):
        i = 0
        while i < len(line):
            char = line[i]
            if quoted and char == '"' and line[i + 1 : i + 2] == '"':
                i += 2  # a doubled quote inside quoted text
                continue
            if quoted and char == '"':
                quoted = False
                if line[i + 1 : i + 2] not in (",", "\r", "\n", ""):
                    return opened  # closed, then more text: the quote closed was a later one
            elif char == '"' and at_field_start:
                quoted, opened = True, number
            at_field_start = not quoted and char in ",\r\n"
            i += 1
    return opened if quoted else None


def _csv_record(header: list[str], values: list[str]) -> dict[str, str] | Malformed:
    if len(values) != len(header):
        return Malformed(f"row has {len(values)} fields but the header has {len(header)}")
    return dict(zip(header, values, strict=True))


def _read_parquet(path: Path) -> tuple[list[Row], list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"not a readable parquet file ({exc})", path=str(path)) from None
    rows = [Row(i, None, data) for i, data in enumerate(table.to_pylist(), start=1)]
    return rows, table.column_names


def read_file(path: Path) -> Table:
    """Rows of a local file, chosen by suffix (before ``.gz``)."""
    name = str(path)
    kind = path.with_suffix("").suffix if path.suffix == ".gz" else path.suffix
    if kind not in SUFFIXES:
        reason = f"unsupported file type; expected one of {', '.join(SUFFIXES)} (optionally .gz)"
        raise DatasetError(reason, path=name)
    if kind == ".parquet":
        if path.suffix == ".gz":
            raise DatasetError(
                "compressed parquet is not supported; parquet compresses itself", path=name
            )
        rows, columns = _read_parquet(path)
        return Table(name, rows, frozenset(columns), text_cells=False)
    text = _decode(_read_bytes(path), name)
    if kind == ".csv":
        rows, columns = _read_csv(text, name)
        return Table(name, rows, frozenset(columns), text_cells=True)
    rows = _read_json(text, name)
    keys = (data.keys() for _, _, data in rows if isinstance(data, dict))
    return Table(name, rows, frozenset().union(*keys), text_cells=False)
