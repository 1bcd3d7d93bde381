"""Field parsers: each reads one field of a row and returns a clean value, or raises `RowError`
naming the field.

``text_cells`` is true when every value arrived as a string (CSV), so booleans and integers are
read from their text.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from typing import Any

from repsafe_lib.loaders.errors import RowError

_CSV_BOOLS = {"true": True, "True": True, "1": True, "false": False, "False": False, "0": False}


def present(data: Mapping[str, Any], name: str) -> Any:
    if name not in data:
        raise RowError(name, "missing field")
    if data[name] is None:
        raise RowError(name, "missing value")
    return data[name]


def unicode_text(value: str, name: str) -> str:
    """`value` if it is Unicode text; JSON's "\\ud800" escape decodes to a lone surrogate,
    which no file can hold, so the write of a later notebook would fail on it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        surrogate = value[exc.start]
        raise RowError(
            name, f"lone surrogate {surrogate!r} at character {exc.start + 1}: not Unicode text"
        ) from None
    return value


def text(data: Mapping[str, Any], name: str) -> str:
    value = present(data, name)
    if not isinstance(value, str):
        raise RowError(name, f"expected text, got {type(value).__name__} {value!r:.40}")
    if not value.strip():
        raise RowError(name, "empty text")
    return unicode_text(value.strip(), name)


def flag(data: Mapping[str, Any], name: str, text_cells: bool) -> bool:
    value = present(data, name)
    if isinstance(value, bool):
        return value
    if text_cells and isinstance(value, str) and value.strip() in _CSV_BOOLS:
        return _CSV_BOOLS[value.strip()]
    raise RowError(name, f"expected a boolean, got {type(value).__name__} {value!r:.40}")


def choice(data: Mapping[str, Any], name: str, allowed: tuple[int, ...], text_cells: bool) -> int:
    value = present(data, name)
    if text_cells and isinstance(value, str) and value.strip() in {str(a) for a in allowed}:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value in allowed:
        return value
    raise RowError(name, f"expected one of {list(allowed)}, got {value!r:.40}")


def ident(data: Mapping[str, Any], name: str) -> str:
    value = present(data, name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return unicode_text(value.strip(), name)
    raise RowError(name, f"expected an integer or text id, got {value!r:.40}")


def categories(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """Harm categories marked true; absent or null means none are known."""
    value = data.get(name)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = parse_literal(value, name)
    if not isinstance(value, Mapping):
        raise RowError(name, f"expected a mapping of category to bool, got {value!r:.40}")
    for key, marked in value.items():
        # null flags appear when arrow merges dicts with different keys into one struct type
        if not isinstance(key, str) or not isinstance(marked, bool | None):
            raise RowError(name, f"expected category (text) -> bool, got {key!r}: {marked!r}")
        unicode_text(key, name)
    return tuple(sorted(key for key, marked in value.items() if marked))


def choices(data: Mapping[str, Any], name: str, count: int) -> tuple[str, ...]:
    """A list of `count` answer texts (MMLU's ``choices``)."""
    value = present(data, name)
    if isinstance(value, str):
        value = parse_literal(value, name)  # a JSON (or Python) list in CSV exports
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != count:
        raise RowError(name, f"expected a list of {count} answer texts, got {value!r:.60}")
    if not all(isinstance(option, str) and option.strip() for option in value):
        raise RowError(name, f"every choice must be non-empty text, got {value!r:.60}")
    return tuple(unicode_text(option.strip(), name) for option in value)


def parse_literal(cell: str, name: str) -> object:
    # CSV exports carry the dict as JSON, or as a Python repr when written by pandas;
    # literal_eval only builds literals, it never runs code.
    try:
        return json.loads(cell)
    except ValueError:
        pass
    try:
        return ast.literal_eval(cell.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise RowError(name, f"not a JSON object: {cell!r:.40}") from None
