"""Reading and writing lists of frozen dataclass records as JSON lines (one artifact format)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from repsafe_lib.artifacts import require_artifact, write_text

T = TypeVar("T")


def write_records(path: str | Path, records: Iterable) -> Path:
    """One JSON object per line, keys in field order (atomic)."""
    lines = (json.dumps(dataclasses.asdict(r), ensure_ascii=False) for r in records)
    return write_text(path, "".join(f"{line}\n" for line in lines))


def read_records(path: str | Path, cls: type[T], *, producer: str) -> list[T]:
    """Records written by `write_records`; lists come back as tuples to match frozen fields."""
    text = require_artifact(path, producer=producer).read_text(encoding="utf-8")
    rows = (json.loads(line) for line in text.splitlines() if line)
    return [cls(**_lists_to_tuples(row)) for row in rows]


def _lists_to_tuples(row: dict) -> dict:
    return {key: tuple(v) if isinstance(v, list) else v for key, v in row.items()}
