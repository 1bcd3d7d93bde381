"""What a loader raises: `DatasetError`, naming the file, the 1-based data row, the line and the
field, and the row-level complaint the field parsers raise before the row is known."""

from __future__ import annotations


class DatasetError(ValueError):
    """A data file, hub split or row that cannot be loaded.

    Attributes: ``path`` (file or hub id), ``row`` (1-based data row, or None for file-level
    errors), ``line`` (line in the file where known), ``field`` (column name where known),
    ``reason`` (the bare complaint, without the location).
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str,
        row: int | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.reason, self.path, self.row, self.field, self.line = reason, path, row, field, line
        super().__init__(_locate(path, row, line, field) + ": " + reason)


def _locate(path: str, row: int | None, line: int | None, field: str | None) -> str:
    where = [path]
    if row is not None:
        where.append(f"row {row}" + (f" (line {line})" if line is not None else ""))
    elif line is not None:
        where.append(f"line {line}")
    if field is not None:
        where.append(f"field {field!r}")
    return ", ".join(where)


class RowError(Exception):
    """A bad row; the driver adds file, row and line and turns it into a DatasetError."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason
