"""The errors a params file raises, and the small checks the sections' dataclasses run.

`ParamsError` names the file and the dotted key; a section's own check raises `ValueError` (or
`FieldError`, to name one field's key), which loading turns into a `ParamsError`. Messages quote at
most a short prefix of any value (`shown`), so a huge value in a file never makes a huge message.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

MAX_KEY_CHARS = 120
MAX_PROBLEM_CHARS = 300
MAX_VALUE_CHARS = 80


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ParamsError(ValueError):
    """A params file that cannot be used; the message names the file and the key.

    Key and problem are cut to a few hundred characters, so that a huge value in a file (quoted by
    a check) never makes a huge message."""

    def __init__(self, path: str | Path, key: str, problem: str):
        key, problem = _shortened(key, MAX_KEY_CHARS), _shortened(problem, MAX_PROBLEM_CHARS)
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: key '{key}': {problem}" if key else f"{path}: {problem}")


def _limited_repr() -> reprlib.Repr:
    limited = reprlib.Repr()
    limited.maxlevel, limited.maxlist, limited.maxdict = 3, 6, 4
    limited.maxstring = limited.maxother = MAX_VALUE_CHARS
    return limited


_LIMITED_REPR = _limited_repr()


def shown(value: Any) -> str:
    """`repr(value)` cut to `MAX_VALUE_CHARS`, built without the repr of a whole huge value."""
    return _shortened(_LIMITED_REPR.repr(value), MAX_VALUE_CHARS)


class FieldError(ValueError):
    """A dataclass check about one field: the `ParamsError` names that field's dotted key, not
    its section's."""

    def __init__(self, field_name: str, problem: str):
        self.field_name = field_name
        super().__init__(problem)


def require_positive(value: float, name: str) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def require_fraction(value: float, name: str) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")
