"""Reading and writing lists of frozen dataclass records as JSON lines (one artifact format)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from repsafe_lib.artifacts import corrupt_artifact, require_artifact, write_text

T = TypeVar("T")


def write_records(path: str | Path, records: Iterable) -> Path:
    """One JSON object per line, keys in field order (atomic)."""
    lines = (json.dumps(dataclasses.asdict(r), ensure_ascii=False) for r in records)
    return write_text(path, "".join(f"{line}\n" for line in lines))


def read_records(path: str | Path, cls: type[T], *, producer: str) -> list[T]:
    """Records written by `write_records`; lists come back as tuples to match frozen fields.

    A line that is not one of `cls`'s records (a file cut off or edited by hand) is a
    `CorruptArtifactError` naming the file, the line and `producer`, the notebook that rewrites it.
    """
    data = require_artifact(path, producer=producer).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise corrupt_artifact(path, "not UTF-8", producer=producer, line=line) from None
    return [
        _record(line, cls, path, number, producer)
        for number, line in enumerate(text.splitlines(), start=1)
        if line
    ]


def _record(line: str, cls: type[T], path, number: int, producer: str) -> T:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:  # typically a file cut off mid-line
        problem = f"not JSON ({error.msg} at column {error.colno})"
        raise corrupt_artifact(path, problem, producer=producer, line=number) from None
    try:
        if not isinstance(row, dict):
            raise TypeError(f"a JSON {type(row).__name__}, not an object")
        return cls(**_lists_to_tuples(row))
    except (ValueError, TypeError) as error:
        problem = f"not a {cls.__name__} record ({error})"
        raise corrupt_artifact(path, problem, producer=producer, line=number) from None


def _lists_to_tuples(row: dict) -> dict:
    return {key: tuple(v) if isinstance(v, list) else v for key, v in row.items()}
