"""YAML values checked against the sections' type annotations and built into the dataclasses."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from repsafe_lib.params.errors import FieldError, ParamsError, shown


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(v) for v in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


# YAML 1.1 reads a float without a dot (`1e-1`, `2E+3`) as a string; where a float is expected it
# is read as the number it is in YAML 1.2. A string field such as a revision keeps its text.
SCIENTIFIC_NOTATION = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+")


def _convert(value: Any, tp: Any, key: str, path: Path) -> Any:
    """Check `value` against the annotation `tp` and build nested dataclasses."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # `T | None`: T's own error says most
            return _convert(value, options[0], key, path)
        errors = []
        for option in options:
            try:
                return _convert(value, option, key, path)
            except ParamsError as error:
                errors.append(_type_name(option))
                if dataclasses.is_dataclass(option):
                    raise error
        raise ParamsError(path, key, f"expected {' or '.join(errors)}, got {shown(value)}")
    if origin is Literal:
        if value in args:
            return value
        choices = ", ".join(map(repr, args))
        raise ParamsError(path, key, f"must be one of {choices}, got {shown(value)}")
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(path, key, f"expected a list, got {shown(value)}")
        return tuple(_convert(v, args[0], f"{key}[{i}]", path) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key, path)
    if tp is float and isinstance(value, str) and SCIENTIFIC_NOTATION.fullmatch(value):
        value = float(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            value = math.inf if value > 0 else -math.inf
    if tp in (int, float) and isinstance(value, bool) or not isinstance(value, tp):
        raise ParamsError(path, key, f"expected {_type_name(tp)}, got {shown(value)}")
    if tp is float and not math.isfinite(value):
        raise ParamsError(path, key, f"expected a finite number, got {shown(value)}")
    return value


# Keys older files may still carry, and what replaced them.
REPLACED_KEYS = {
    "training.max_length": (
        "removed: training reads the states R_h is fit on, so it uses extraction.max_length"
        " (one token budget for extraction, training and sampling's R_h scores)"
    ),
    "reward.train_scorers": (
        "removed: what the per-batch refresh updates is training.refresh (full | gate)"
    ),
}


def build_dataclass(cls: type, raw: Any, prefix: str, path: Path) -> Any:
    """The dataclass `cls` from the YAML mapping `raw` at the dotted key `prefix`: an unknown,
    replaced or missing key, a value of the wrong type or a failed check is a `ParamsError`."""
    if not isinstance(raw, dict):
        raise ParamsError(path, prefix, f"expected a mapping, got {shown(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "source_file"}
    dotted = (lambda name: f"{prefix}.{name}") if prefix else (lambda name: name)
    for name in raw:
        if dotted(name) in REPLACED_KEYS:
            raise ParamsError(path, dotted(name), REPLACED_KEYS[dotted(name)])
        if name not in fields:
            raise ParamsError(path, dotted(name), f"unknown key (allowed: {', '.join(fields)})")
    values = {}
    for name, spec in fields.items():
        required = (
            spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        )
        if name not in raw:
            if required:
                raise ParamsError(path, dotted(name), "missing required key")
            continue
        values[name] = _convert(raw[name], hints[name], dotted(name), path)
    try:
        return cls(**values)
    except FieldError as error:
        raise ParamsError(path, dotted(error.field_name), str(error)) from None
    except ValueError as error:
        raise ParamsError(path, prefix or "(top level)", str(error)) from None
