"""The validation every loader shares: required columns, each row through its dataset's parser,
unique record ids, and what ``on_bad_rows`` does with a bad row.

Every record's id (``pair_id``, ``prompt_id``, ``question_id``) is unique within a loaded set:
evaluation keys prompts, labels and responses by it, so a second row with an id already seen is a
bad row naming both rows. ``on_bad_rows: skip`` skips bad rows (every row of a shared id), never a
damaged file (see `files`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from repsafe_lib.loaders.errors import DatasetError, RowError
from repsafe_lib.loaders.files import Malformed, Row, Table
from repsafe_lib.loaders.hub import RepoFile, read_source

logger = logging.getLogger(__name__)

OnBadRows = Literal["raise", "skip"]

T = TypeVar("T")

_MAX_REASONS_LOGGED = 3


@dataclass(frozen=True)
class LoadedDataset(Generic[T]):
    """Records plus the counts that account for every row read.

    ``n_rows == len(records) + n_skipped + n_filtered + n_overlap + n_capped``; ``n_capped``
    counts valid records left out by a size cap (``max_rows`` in params), ``n_overlap`` those of a
    transfer set left out because the preference pairs hold their prompt. (A transfer set read
    from pairs counts responses, two per row, from ``n_overlap`` on.)
    """

    records: tuple[T, ...]
    source: str
    n_rows: int
    n_skipped: int
    n_filtered: int
    n_capped: int = 0
    n_overlap: int = 0
    revision: str | None = None  # `hub.source_revision` of what was read, when recorded


@dataclass(frozen=True)
class DatasetSpec(Generic[T]):
    """What one dataset's loader reads and how each of its rows becomes a record."""

    name: str
    required: tuple[str, ...]
    parse: Callable[[Mapping[str, Any], int, bool], T | None]
    hub_kwargs: Mapping[str, str] = field(default_factory=dict)
    repo_file: RepoFile | None = None
    record_id: Callable[[T], str] = attrgetter("prompt_id")
    id_column: str | None = None  # the column the id is made of (None: the row number)


def _check_columns(table: Table, required: Sequence[str]) -> None:
    if not table.rows:
        raise DatasetError("empty file: no data rows", path=table.source)
    missing = [name for name in required if name not in table.columns]
    if missing:
        reason = (
            f"missing column(s) {missing}; expected {list(required)}, found {sorted(table.columns)}"
        )
        raise DatasetError(reason, path=table.source, field=missing[0])


def _parse_row(spec: DatasetSpec[T], table: Table, row: Row) -> T | None:
    try:
        if isinstance(row.data, Malformed):
            raise RowError(None, row.data.reason)
        if not isinstance(row.data, Mapping):
            raise RowError(None, f"expected an object, got {type(row.data).__name__}")
        return spec.parse(row.data, row.row, table.text_cells)
    except RowError as exc:
        raise DatasetError(
            exc.reason, path=table.source, row=row.row, field=exc.field, line=row.line
        ) from None


def validate(spec: DatasetSpec[T], table: Table, on_bad_rows: OnBadRows) -> LoadedDataset[T]:
    _check_columns(table, spec.required)
    records: list[T] = []
    errors: list[DatasetError] = []
    rows_of_id: dict[str, list[Row]] = {}
    n_filtered = 0
    for row in table.rows:
        try:
            record = _parse_row(spec, table, row)
        except DatasetError as exc:
            if on_bad_rows == "raise":
                raise
            errors.append(exc)
            continue
        if record is None:
            n_filtered += 1
            continue
        rows = rows_of_id.setdefault(spec.record_id(record), [])
        rows.append(row)
        if len(rows) == 2 and on_bad_rows == "raise":
            raise _shared_id_error(spec, table, spec.record_id(record), row, rows[0])
        records.append(record)
    shared = {key: rows for key, rows in rows_of_id.items() if len(rows) > 1}
    if shared:  # skip mode: neither row of a shared id can be trusted, so every one is skipped
        records = [record for record in records if spec.record_id(record) not in shared]
        errors += [
            _shared_id_error(spec, table, key, row, next(r for r in rows if r is not row))
            for key, rows in shared.items()
            for row in rows
        ]
        errors.sort(key=lambda error: error.row or 0)
    _report_skipped(errors, table)
    return LoadedDataset(tuple(records), table.source, len(table.rows), len(errors), n_filtered)


def _shared_id_error(
    spec: DatasetSpec[Any], table: Table, record_id: str, row: Row, other: Row
) -> DatasetError:
    """A row whose record id another row has: evaluation keys prompts, labels and responses by
    id, so one of the two would silently stand for both."""
    where = f"row {other.row}" + (f" (line {other.line})" if other.line is not None else "")
    reason = f"id {record_id!r} is also the id of {where}; ids must be unique within a dataset"
    return DatasetError(reason, path=table.source, row=row.row, field=spec.id_column, line=row.line)


def _report_skipped(errors: Sequence[DatasetError], table: Table) -> None:
    if not errors:
        return
    if len(errors) == len(table.rows):
        first = errors[0]
        reason = f"every one of the {len(errors)} rows is bad; first: {first.reason}"
        raise DatasetError(
            reason, path=first.path, row=first.row, field=first.field, line=first.line
        )
    reasons = "; ".join(str(exc) for exc in errors[:_MAX_REASONS_LOGGED])
    logger.warning(
        "skipped %d of %d rows of %s, e.g. %s", len(errors), len(table.rows), table.source, reasons
    )


def load(
    spec: DatasetSpec[T],
    source: str | Path,
    split: str,
    on_bad_rows: OnBadRows,
    revision: str | None,
) -> LoadedDataset[T]:
    """`spec`'s dataset read from `source` and validated row by row; logs what was kept."""
    if on_bad_rows not in ("raise", "skip"):
        raise ValueError(f"on_bad_rows must be 'raise' or 'skip', got {on_bad_rows!r}")
    table = read_source(source, split, revision, spec.hub_kwargs, spec.repo_file)
    loaded = validate(spec, table, on_bad_rows)
    logger.info(
        "%s: %d records from %s (%d rows, %d skipped, %d filtered)",
        spec.name,
        len(loaded.records),
        loaded.source,
        loaded.n_rows,
        loaded.n_skipped,
        loaded.n_filtered,
    )
    return loaded
