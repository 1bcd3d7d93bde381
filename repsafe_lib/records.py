"""Reading and writing lists of frozen dataclass records as JSON lines (one artifact format)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from repsafe_lib.artifacts import corrupt_artifact, require_artifact, write_text

T = TypeVar("T")


@dataclass(frozen=True)
class PreferencePair:
    """A safety preference pair: ``chosen`` is the safe response, ``rejected`` the unsafe one.

    ``categories`` are the harm categories marked true for the rejected response, in the
    dataset's own taxonomy, sorted.
    """

    pair_id: str
    prompt: str
    chosen: str
    rejected: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class EvalPrompt:
    """A prompt of a safety benchmark; ``label`` is XSTest's safe/unsafe, else None."""

    prompt_id: str
    prompt: str
    benchmark: str
    category: str | None
    label: str | None


@dataclass(frozen=True)
class LabeledResponse:
    """One side of a preference pair, for hidden-state probes (Fig 1)."""

    example_id: str
    prompt: str
    response: str
    is_safe: bool


MMLU_LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class MmluQuestion:
    """A four-way multiple-choice question; ``answer`` indexes ``choices`` (0-3)."""

    question_id: str
    subject: str
    question: str
    choices: tuple[str, ...]
    answer: int


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
