"""Dataset loaders: PKU-SafeRLHF preference pairs and the safety evaluation prompts (paper Sec 4.1-4.2).

Each loader takes a local file (``.jsonl``, ``.json``, ``.csv``, ``.parquet``; all but parquet
optionally ``.gz``), a Hugging Face hub id, or a local directory laid out like the dataset's hub
repository (read by `datasets.load_dataset` exactly as the hub id is), and runs every row through
the same validation, so a bad row fails with a `DatasetError` that names the file, the 1-based data
row and the field.

Every record's id (``pair_id``, ``prompt_id``, ``question_id``) is unique within a loaded set:
evaluation keys prompts, labels and responses by it, so a second row with an id already seen is a
bad row naming both rows. Text holding a lone surrogate (a JSON ``"\\ud800"`` escape) is a bad row
too: it is not Unicode and could never be written out. ``on_bad_rows: skip`` skips bad rows (every
row of a shared id), never a damaged file: bytes that are not UTF-8, a JSON line that does not
parse (a file cut off mid-line) and a CSV quote that is not closed properly stop the load in
either mode, naming the line.

- PKU-SafeRLHF (`load_pku_saferlhf`) -> `PreferencePair`, chosen = the only safe response.
- hh-rlhf red-team attempts (`load_hh_red_team`), Do-Not-Answer (`load_do_not_answer`),
  Salad-Bench base set (`load_salad_base`), XSTest (`load_xstest`) -> `EvalPrompt`.

``split`` applies to hub ids and directories, ``revision`` to hub ids only; a local file is one
split already.
Text fields are stripped of surrounding whitespace: a trailing newline would otherwise change
the last token, whose hidden state is the representation the suite reads (paper Sec 3.2).
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import gzip
import hashlib
import io
import json
import logging
import random
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar

logger = logging.getLogger(__name__)

OnBadRows = Literal["raise", "skip"]

T = TypeVar("T")

_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_CSV_BOOLS = {"true": True, "True": True, "1": True, "false": False, "False": False, "0": False}
_MAX_REASONS_LOGGED = 3
_DAMAGED_FILE = "on_bad_rows: skip skips bad rows, not a damaged file"


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


@dataclass(frozen=True)
class LoadedDataset(Generic[T]):
    """Records plus the counts that account for every row read.

    ``n_rows == len(records) + n_skipped + n_filtered + n_capped``; ``n_capped`` counts valid
    records left out by a size cap (``max_rows`` in params).
    """

    records: tuple[T, ...]
    source: str
    n_rows: int
    n_skipped: int
    n_filtered: int
    n_capped: int = 0


class _RowError(Exception):
    """A bad row; the driver adds file, row and line and turns it into a DatasetError."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


class _Malformed(NamedTuple):
    """A row the reader could not turn into a mapping (e.g. a CSV row with too many fields)."""

    reason: str


class _Row(NamedTuple):
    row: int
    line: int | None
    data: object


class _Table(NamedTuple):
    """Rows as read, before validation. ``text_cells``: every value arrived as a string (CSV)."""

    source: str
    rows: list[_Row]
    columns: frozenset[str]
    text_cells: bool


@dataclass(frozen=True)
class _RepoFile:
    """A data file read straight from a hub repository whose loading script `datasets` refuses.

    ``split`` names the one split the file holds (the name the repository's script gave it).
    """

    path: str
    split: str


@dataclass(frozen=True)
class _Spec(Generic[T]):
    name: str
    required: tuple[str, ...]
    parse: Callable[[Mapping[str, Any], int, bool], T | None]
    hub_kwargs: Mapping[str, str] = field(default_factory=dict)
    repo_file: _RepoFile | None = None
    record_id: Callable[[T], str] = attrgetter("prompt_id")
    id_column: str | None = None  # the column the id is made of (None: the row number)


# Field accessors: each returns a clean value or raises _RowError naming the field.


def _value(data: Mapping[str, Any], name: str) -> Any:
    if name not in data:
        raise _RowError(name, "missing field")
    if data[name] is None:
        raise _RowError(name, "missing value")
    return data[name]


def _unicode(value: str, name: str) -> str:
    """`value` if it is Unicode text; JSON's "\\ud800" escape decodes to a lone surrogate,
    which no file can hold, so the write of a later notebook would fail on it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        surrogate = value[exc.start]
        raise _RowError(
            name, f"lone surrogate {surrogate!r} at character {exc.start + 1}: not Unicode text"
        ) from None
    return value


def _text(data: Mapping[str, Any], name: str) -> str:
    value = _value(data, name)
    if not isinstance(value, str):
        raise _RowError(name, f"expected text, got {type(value).__name__} {value!r:.40}")
    if not value.strip():
        raise _RowError(name, "empty text")
    return _unicode(value.strip(), name)


def _flag(data: Mapping[str, Any], name: str, text_cells: bool) -> bool:
    value = _value(data, name)
    if isinstance(value, bool):
        return value
    if text_cells and isinstance(value, str) and value.strip() in _CSV_BOOLS:
        return _CSV_BOOLS[value.strip()]
    raise _RowError(name, f"expected a boolean, got {type(value).__name__} {value!r:.40}")


def _choice(data: Mapping[str, Any], name: str, allowed: tuple[int, ...], text_cells: bool) -> int:
    value = _value(data, name)
    if text_cells and isinstance(value, str) and value.strip() in {str(a) for a in allowed}:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value in allowed:
        return value
    raise _RowError(name, f"expected one of {list(allowed)}, got {value!r:.40}")


def _ident(data: Mapping[str, Any], name: str) -> str:
    value = _value(data, name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return _unicode(value.strip(), name)
    raise _RowError(name, f"expected an integer or text id, got {value!r:.40}")


def _categories(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """Harm categories marked true; absent or null means none are known."""
    value = data.get(name)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = _parse_mapping_text(value, name)
    if not isinstance(value, Mapping):
        raise _RowError(name, f"expected a mapping of category to bool, got {value!r:.40}")
    for key, flag in value.items():
        # null flags appear when arrow merges dicts with different keys into one struct type
        if not isinstance(key, str) or not isinstance(flag, bool | None):
            raise _RowError(name, f"expected category (text) -> bool, got {key!r}: {flag!r}")
        _unicode(key, name)
    return tuple(sorted(key for key, flag in value.items() if flag))


def _parse_mapping_text(text: str, name: str) -> object:
    # CSV exports carry the dict as JSON, or as a Python repr when written by pandas;
    # literal_eval only builds literals, it never runs code.
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise _RowError(name, f"not a JSON object: {text!r:.40}") from None


# Row parsers, one per dataset.

_HUMAN_TURN = re.compile(r"(?:\A|\n)\s*Human:(.*?)(?=\n\s*(?:Assistant|Human):|\Z)", re.DOTALL)


def first_human_turn(transcript: str) -> str | None:
    """The first ``Human:`` turn of an hh-rlhf transcript, stripped; None when there is none."""
    match = _HUMAN_TURN.search(transcript)
    return match.group(1).strip() if match else None


def _parse_pku(data: Mapping[str, Any], row: int, text_cells: bool) -> PreferencePair | None:
    """PKU-SafeRLHF row -> pair, or None (filtered) unless exactly one response is safe."""
    prompt = _text(data, "prompt")
    responses = (_text(data, "response_0"), _text(data, "response_1"))
    safe = tuple(_flag(data, f"is_response_{i}_safe", text_cells) for i in (0, 1))
    _choice(data, "safer_response_id", (0, 1), text_cells)
    categories = tuple(_categories(data, f"response_{i}_harm_category") for i in (0, 1))
    if safe[0] == safe[1]:
        return None
    chosen = 0 if safe[0] else 1
    rejected = 1 - chosen
    return PreferencePair(
        pair_id=f"pku_saferlhf-{row}",
        prompt=prompt,
        chosen=responses[chosen],
        rejected=responses[rejected],
        categories=categories[rejected],
    )


def _parse_hh(data: Mapping[str, Any], row: int, text_cells: bool) -> EvalPrompt:
    """hh-rlhf red-team row -> its first human turn."""
    prompt = first_human_turn(_text(data, "transcript"))
    if prompt is None:
        raise _RowError("transcript", "no 'Human:' turn in the transcript")
    if not prompt:
        raise _RowError("transcript", "the first 'Human:' turn is empty")
    return EvalPrompt(f"hh_red_team-{row}", prompt, "hh_red_team", None, None)


def _parse_do_not_answer(data: Mapping[str, Any], row: int, text_cells: bool) -> EvalPrompt:
    prompt_id = f"do_not_answer-{_ident(data, 'id')}"
    return EvalPrompt(
        prompt_id, _text(data, "question"), "do_not_answer", _text(data, "risk_area"), None
    )


def _parse_salad_base(data: Mapping[str, Any], row: int, text_cells: bool) -> EvalPrompt:
    prompt_id = f"salad_base-{_ident(data, 'qid')}"
    return EvalPrompt(
        prompt_id, _text(data, "question"), "salad_base", _text(data, "1-category"), None
    )


def _parse_xstest(data: Mapping[str, Any], row: int, text_cells: bool) -> EvalPrompt:
    # Some hub copies of XSTest drop `id`; the row number is then the id (as in the original CSV).
    source_id = _ident(data, "id") if data.get("id") not in (None, "") else str(row)
    label = _text(data, "label")
    if label not in ("safe", "unsafe"):
        raise _RowError("label", f"expected 'safe' or 'unsafe', got {label!r:.40}")
    return EvalPrompt(
        f"xstest-{source_id}", _text(data, "prompt"), "xstest", _text(data, "type"), label
    )


# Reading files and hub splits into rows.


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


def _read_json(text: str, path: str) -> list[_Row]:
    """A JSON array of objects, or JSON lines; told apart by the first non-space character."""
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except (ValueError, RecursionError) as exc:
            line = getattr(exc, "lineno", None)
            reason = f"invalid JSON ({exc}); {_DAMAGED_FILE}"
            raise DatasetError(reason, path=path, line=line) from None
        return [_Row(i, None, item) for i, item in enumerate(items, start=1)]
    return _read_json_lines(text, path)


def _read_json_lines(text: str, path: str) -> list[_Row]:
    rows: list[_Row] = []
    # Not splitlines(): it also splits on U+2028 and friends, which JSON strings may hold raw.
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as exc:
            reason = f"invalid or truncated JSON line ({exc}); {_DAMAGED_FILE}"
            raise DatasetError(reason, path=path, line=line_no) from None
        rows.append(_Row(len(rows) + 1, line_no, data))
    return rows


def _read_csv(text: str, path: str) -> tuple[list[_Row], list[str]]:
    """Rows of a CSV file, read strictly (RFC 4180 quoting).

    A quoted field may span lines (real XSTest completions and Do-Not-Answer answers do). A quote
    opens a field and closes it only when followed by a comma, the end of the line or the end of
    the file (a quote inside quoted text is doubled). A field that breaks this, or a quote still
    open at the end of the file, is an error naming the line where that field's quote opened: a
    lenient reader would take the rows after a lone quote into the field and carry on.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[_Row] = []
    line_before = 0
    try:
        header = next(reader)
        line_before = reader.line_num
        for values in reader:
            start, line_before = line_before + 1, reader.line_num
            if not values:
                continue
            rows.append(_Row(len(rows) + 1, start, _csv_record(header, values)))
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


def _csv_record(header: list[str], values: list[str]) -> dict[str, str] | _Malformed:
    if len(values) != len(header):
        return _Malformed(f"row has {len(values)} fields but the header has {len(header)}")
    return dict(zip(header, values, strict=True))


def _read_parquet(path: Path) -> tuple[list[_Row], list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"not a readable parquet file ({exc})", path=str(path)) from None
    rows = [_Row(i, None, data) for i, data in enumerate(table.to_pylist(), start=1)]
    return rows, table.column_names


def _read_file(path: Path) -> _Table:
    """Rows of a local file, chosen by suffix (before ``.gz``)."""
    name = str(path)
    kind = path.with_suffix("").suffix if path.suffix == ".gz" else path.suffix
    if kind not in _SUFFIXES:
        reason = f"unsupported file type; expected one of {', '.join(_SUFFIXES)} (optionally .gz)"
        raise DatasetError(reason, path=name)
    if kind == ".parquet":
        if path.suffix == ".gz":
            raise DatasetError(
                "compressed parquet is not supported; parquet compresses itself", path=name
            )
        rows, columns = _read_parquet(path)
        return _Table(name, rows, frozenset(columns), text_cells=False)
    text = _decode(_read_bytes(path), name)
    if kind == ".csv":
        rows, columns = _read_csv(text, name)
        return _Table(name, rows, frozenset(columns), text_cells=True)
    rows = _read_json(text, name)
    keys = (data.keys() for _, _, data in rows if isinstance(data, dict))
    return _Table(name, rows, frozenset().union(*keys), text_cells=False)


def _read_hub(
    hub_id: str, split: str, revision: str | None, hub_kwargs: Mapping[str, str]
) -> _Table:
    import datasets  # lazy: the hub client is heavy and not needed for local files

    try:
        dataset = datasets.load_dataset(hub_id, **hub_kwargs, split=split, revision=revision)
    except Exception as exc:  # the hub client raises many types; report them as one
        reason = f"could not load hub dataset (split={split!r}, {dict(hub_kwargs)}): {exc}"
        raise DatasetError(reason, path=hub_id) from exc
    return _dataset_table(dataset, f"{hub_id}[{split}]")


def _read_hub_layout(directory: Path, split: str, hub_kwargs: Mapping[str, str]) -> _Table:
    """A local copy of a hub repository, loaded by `datasets` exactly as the hub id would be."""
    import datasets

    try:
        dataset = datasets.load_dataset(str(directory), **hub_kwargs, split=split)
    except Exception as exc:  # as for the hub: many types, one error
        reason = (
            "expected a copy of the dataset's hub repository (its data files and README.md "
            f"`configs:` as published) with split={split!r}, {dict(hub_kwargs)}; "
            f"datasets could not load it: {exc}"
        )
        raise DatasetError(reason, path=str(directory)) from exc
    return _dataset_table(dataset, f"{directory}[{split}]")


def _dataset_table(dataset: Any, source: str) -> _Table:
    rows = [_Row(i, None, data) for i, data in enumerate(dataset, start=1)]
    return _Table(source, rows, frozenset(dataset.column_names), text_cells=False)


def _check_repo_file_split(repo_file: _RepoFile, split: str, where: str) -> None:
    if split != repo_file.split:
        reason = f"{repo_file.path} holds one split, {repo_file.split!r}; got split={split!r}"
        raise DatasetError(reason, path=where)


def _read_repo_file(local: str, source: str) -> _Table:
    """A repository data file read with `datasets`' own reader for its format."""
    import datasets

    kind = Path(local).suffixes[0].lstrip(".") if Path(local).suffixes else ""
    builder = {"jsonl": "json"}.get(kind, kind)
    try:
        dataset = datasets.load_dataset(builder, data_files=local, split="train")
    except Exception as exc:  # the readers raise many types; report them as one
        raise DatasetError(f"could not read {builder} data file: {exc}", path=source) from exc
    return _dataset_table(dataset, source)


def _download_repo_file(hub_id: str, repo_file: _RepoFile, revision: str | None) -> str:
    import huggingface_hub

    try:
        return huggingface_hub.hf_hub_download(
            hub_id, repo_file.path, repo_type="dataset", revision=revision
        )
    except Exception as exc:  # the hub client raises many types; report them as one
        reason = f"could not download {repo_file.path} from the hub dataset: {exc}"
        raise DatasetError(reason, path=hub_id) from exc


def _is_hub_id(source: str) -> bool:
    return bool(_HUB_ID.fullmatch(source)) and not source.endswith((*_SUFFIXES, ".gz"))


def _read_source(source: str | Path, split: str, revision: str | None, spec: _Spec[Any]) -> _Table:
    path = Path(source)
    repo_file = spec.repo_file
    if path.is_dir() and repo_file is not None:
        local = path / repo_file.path
        _check_repo_file_split(repo_file, split, str(path))
        if not local.is_file():
            reason = f"expected the hub repository's data file {repo_file.path} in this directory"
            raise DatasetError(reason, path=str(path))
        return _read_repo_file(str(local), f"{local}[{split}]")
    if path.is_dir():
        return _read_hub_layout(path, split, spec.hub_kwargs)
    if path.exists():
        return _read_file(path)
    if isinstance(source, str) and _is_hub_id(source) and repo_file is not None:
        _check_repo_file_split(repo_file, split, source)
        local_copy = _download_repo_file(source, repo_file, revision)
        return _read_repo_file(local_copy, f"{source}/{repo_file.path}[{split}]")
    if isinstance(source, str) and _is_hub_id(source):
        return _read_hub(source, split, revision, spec.hub_kwargs)
    raise DatasetError("no such file and not a hub id (owner/name)", path=str(source))


# Validation driver shared by every loader.


def _check_columns(table: _Table, required: Sequence[str]) -> None:
    if not table.rows:
        raise DatasetError("empty file: no data rows", path=table.source)
    missing = [name for name in required if name not in table.columns]
    if missing:
        reason = (
            f"missing column(s) {missing}; expected {list(required)}, found {sorted(table.columns)}"
        )
        raise DatasetError(reason, path=table.source, field=missing[0])


def _parse_row(spec: _Spec[T], table: _Table, row: _Row) -> T | None:
    try:
        if isinstance(row.data, _Malformed):
            raise _RowError(None, row.data.reason)
        if not isinstance(row.data, Mapping):
            raise _RowError(None, f"expected an object, got {type(row.data).__name__}")
        return spec.parse(row.data, row.row, table.text_cells)
    except _RowError as exc:
        raise DatasetError(
            exc.reason, path=table.source, row=row.row, field=exc.field, line=row.line
        ) from None


def _validate(spec: _Spec[T], table: _Table, on_bad_rows: OnBadRows) -> LoadedDataset[T]:
    _check_columns(table, spec.required)
    records: list[T] = []
    errors: list[DatasetError] = []
    rows_of_id: dict[str, list[_Row]] = {}
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
    spec: _Spec[Any], table: _Table, record_id: str, row: _Row, other: _Row
) -> DatasetError:
    """A row whose record id another row has: evaluation keys prompts, labels and responses by
    id, so one of the two would silently stand for both."""
    where = f"row {other.row}" + (f" (line {other.line})" if other.line is not None else "")
    reason = f"id {record_id!r} is also the id of {where}; ids must be unique within a dataset"
    return DatasetError(reason, path=table.source, row=row.row, field=spec.id_column, line=row.line)


def _report_skipped(errors: Sequence[DatasetError], table: _Table) -> None:
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


def _load(
    spec: _Spec[T],
    source: str | Path,
    split: str,
    on_bad_rows: OnBadRows,
    revision: str | None,
) -> LoadedDataset[T]:
    if on_bad_rows not in ("raise", "skip"):
        raise ValueError(f"on_bad_rows must be 'raise' or 'skip', got {on_bad_rows!r}")
    table = _read_source(source, split, revision, spec)
    loaded = _validate(spec, table, on_bad_rows)
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


# Public loaders.

_PKU = _Spec(
    "pku_saferlhf",
    (
        "prompt",
        "response_0",
        "response_1",
        "is_response_0_safe",
        "is_response_1_safe",
        "safer_response_id",
    ),
    _parse_pku,
    record_id=attrgetter("pair_id"),
)
_HH = _Spec("hh_red_team", ("transcript",), _parse_hh, {"data_dir": "red-team-attempts"})
_DNA = _Spec("do_not_answer", ("id", "risk_area", "question"), _parse_do_not_answer, id_column="id")
_SALAD = _Spec(
    "salad_base",
    ("qid", "question", "1-category"),
    _parse_salad_base,
    {"name": "base_set"},
    id_column="qid",
)
_XSTEST = _Spec("xstest", ("prompt", "type", "label"), _parse_xstest, id_column="id")


def load_pku_saferlhf(
    source: str | Path,
    *,
    split: str = "train",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[PreferencePair]:
    """PKU-SafeRLHF (``PKU-Alignment/PKU-SafeRLHF``) as safety preference pairs.

    Schema: ``prompt, response_0, response_1`` (text), ``is_response_0_safe,
    is_response_1_safe`` (bool), ``safer_response_id`` (0/1), optional
    ``response_{0,1}_harm_category`` (category -> bool; a JSON string in CSV). Only rows with
    exactly one safe response become pairs (chosen = the safe one); the others count in
    ``n_filtered``. ``pair_id`` is ``pku_saferlhf-<row>``. ``split``/``revision`` apply to the hub.
    """
    return _load(_PKU, source, split, on_bad_rows, revision)


def load_hh_red_team(
    source: str | Path,
    *,
    split: str = "train",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[EvalPrompt]:
    """hh-rlhf red-team attempts (``Anthropic/hh-rlhf``, ``data_dir="red-team-attempts"``).

    Schema: ``transcript`` ("\\n\\nHuman: … \\n\\nAssistant: …"); the prompt is the first human
    turn. The real ``red_team_attempts.jsonl.gz`` is a JSON array, which is read as such.
    ``prompt_id`` is ``hh_red_team-<row>``; no category or label.
    """
    return _load(_HH, source, split, on_bad_rows, revision)


def load_do_not_answer(
    source: str | Path,
    *,
    split: str = "train",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[EvalPrompt]:
    """Do-Not-Answer (``LibrAI/do-not-answer``).

    Schema: ``id, risk_area, types_of_harm, specific_harms, question``; uses ``id``,
    ``question`` and ``risk_area`` (-> ``category``). ``prompt_id`` is ``do_not_answer-<id>``;
    a repeated ``id`` is a bad row.
    """
    return _load(_DNA, source, split, on_bad_rows, revision)


def load_salad_base(
    source: str | Path,
    *,
    split: str = "train",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[EvalPrompt]:
    """Salad-Bench base set (``OpenSafetyLab/Salad-Data``, config ``base_set``).

    Schema: ``qid, question, source, 1-category, 2-category, 3-category``; uses ``qid``,
    ``question`` and ``1-category`` (-> ``category``). ``prompt_id`` is ``salad_base-<qid>``;
    a repeated ``qid`` is a bad row.
    """
    return _load(_SALAD, source, split, on_bad_rows, revision)


def load_xstest(
    source: str | Path,
    *,
    split: str = "train",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[EvalPrompt]:
    """XSTest (250 safe + 200 unsafe prompts).

    Schema: ``id, prompt, type, label, focus, note`` with ``label`` in {safe, unsafe};
    ``type`` -> ``category``. ``id`` may be absent (some hub copies), then the row number
    stands in. ``prompt_id`` is ``xstest-<id>``; a repeated id (one a row number may stand in for
    too) is a bad row, since Fig 4 counts each id's label once.
    """
    return _load(_XSTEST, source, split, on_bad_rows, revision)


LOADERS: dict[str, Callable[..., LoadedDataset[Any]]] = {
    "pku_saferlhf": load_pku_saferlhf,
    "hh_red_team": load_hh_red_team,
    "do_not_answer": load_do_not_answer,
    "salad_base": load_salad_base,
    "xstest": load_xstest,
}


# Derived views.


def to_labeled_responses(pairs: Sequence[PreferencePair]) -> list[LabeledResponse]:
    """Both sides of each pair, chosen (safe) then rejected (unsafe), for hidden-state probes."""
    labeled: list[LabeledResponse] = []
    for pair in pairs:
        labeled.append(LabeledResponse(f"{pair.pair_id}:chosen", pair.prompt, pair.chosen, True))
        labeled.append(
            LabeledResponse(f"{pair.pair_id}:rejected", pair.prompt, pair.rejected, False)
        )
    return labeled


class _HasPrompt(Protocol):
    @property
    def prompt(self) -> str: ...


P = TypeVar("P", bound=_HasPrompt)


def normalise_prompt(prompt: str) -> str:
    """Casefolded, whitespace-collapsed prompt: the key that decides a prompt's side."""
    return " ".join(prompt.split()).casefold()


def _prompt_rank(prompt: str, seed: int) -> bytes:
    # blake2b, not hash(): builtin str hashes are salted per process (PYTHONHASHSEED).
    return hashlib.blake2b(f"{seed}\x00{prompt}".encode(), digest_size=16).digest()


def _n_test_prompts(n_prompts: int, test_fraction: float) -> int:
    n_test = round(test_fraction * n_prompts)
    if 0 < test_fraction < 1 and n_prompts >= 2:
        n_test = min(max(n_test, 1), n_prompts - 1)  # both sides non-empty when possible
    return n_test


def split_by_prompt(
    records: Sequence[P], *, test_fraction: float, seed: int
) -> tuple[list[P], list[P]]:
    """Split records (anything with ``.prompt``) into (train, test), never sharing a prompt.

    Distinct normalised prompts are ranked by a seeded blake2b hash and the first
    ``round(test_fraction * n_prompts)`` go to test (at least one on each side when there are two
    or more prompts and 0 < test_fraction < 1). So the fraction is exact over prompts, only
    approximate over records; deterministic across Python runs; input order is kept.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    keys = [normalise_prompt(record.prompt) for record in records]
    prompts = sorted(set(keys), key=lambda key: _prompt_rank(key, seed))
    test_prompts = set(prompts[: _n_test_prompts(len(prompts), test_fraction)])
    train = [r for r, key in zip(records, keys, strict=True) if key not in test_prompts]
    test = [r for r, key in zip(records, keys, strict=True) if key in test_prompts]
    return train, test


def subsample(records: Sequence[T], max_rows: int | None, seed: int) -> list[T]:
    """At most `max_rows` records, a seeded choice kept in file order (all of them if None)."""
    if max_rows is None or len(records) <= max_rows:
        return list(records)
    keep = sorted(random.Random(seed).sample(range(len(records)), max_rows))
    return [records[i] for i in keep]


def load_configured(spec, *, on_bad_rows: OnBadRows, seed: int) -> LoadedDataset[Any]:
    """Load a `params.DatasetParams` entry: its loader, source (`demo:` files too), split, size cap."""
    from repsafe_lib.paths import resolve_data_source

    if spec.loader not in LOADERS:
        raise ValueError(f"unknown loader '{spec.loader}' (known: {', '.join(LOADERS)})")
    loaded = LOADERS[spec.loader](
        resolve_data_source(spec.source),
        split=spec.split,
        on_bad_rows=on_bad_rows,
        revision=spec.revision,
    )
    records = tuple(subsample(loaded.records, spec.max_rows, seed))
    capped = len(loaded.records) - len(records)
    return dataclasses.replace(loaded, records=records, n_capped=capped)


def configured_prompt_sets(data_params) -> dict[str, Any]:
    """The evaluation prompt sets a `params.DataParams` names, in a fixed order."""
    names = ("red_team", "xstest", "do_not_answer", "salad_base")
    return {name: getattr(data_params, name) for name in names if getattr(data_params, name)}


@dataclass(frozen=True)
class DataInputs:
    """Notebook 00's inputs: the pairs, their split by prompt, and the evaluation prompt sets."""

    pairs: LoadedDataset[PreferencePair]
    train_pairs: list[PreferencePair]
    test_pairs: list[PreferencePair]
    prompt_sets: dict[str, LoadedDataset[EvalPrompt]]


def load_data_inputs(data_params, *, seed: int) -> DataInputs:
    """Load and check every dataset a `params.DataParams` names, and split the pairs by prompt.

    Nothing is written here: a caller that writes only after this returns never leaves new files
    of one dataset beside the previous run's files of another when a later file is bad.
    """
    on_bad_rows = data_params.on_bad_rows
    pairs = load_configured(data_params.pairs, on_bad_rows=on_bad_rows, seed=seed)
    train, test = split_by_prompt(pairs.records, test_fraction=data_params.test_fraction, seed=seed)
    check_usable_pairs(pairs, train, test, data_params)
    prompt_sets = {
        name: load_configured(spec, on_bad_rows=on_bad_rows, seed=seed)
        for name, spec in configured_prompt_sets(data_params).items()
    }
    return DataInputs(pairs, train, test, prompt_sets)


def check_usable_pairs(
    pairs: LoadedDataset[PreferencePair],
    train: Sequence[PreferencePair],
    test: Sequence[PreferencePair],
    data_params,
) -> None:
    """Raise a `DatasetError` naming the file and the step that left the training or the test
    side without pairs: the one-safe filter, the ``max_rows`` cap or the split by prompt."""
    if train and test:
        return
    n_valid = pairs.n_rows - pairs.n_skipped
    if not pairs.records:
        reason = (
            f"no usable pairs: all {n_valid} valid rows have both or neither response safe, and "
            "the one-safe filter keeps only pairs with exactly one safe response"
        )
        raise DatasetError(reason, path=pairs.source)
    n_prompts = len({normalise_prompt(pair.prompt) for pair in pairs.records})
    capped = (
        f"data.pairs.max_rows = {data_params.pairs.max_rows} kept {len(pairs.records)} of "
        f"{len(pairs.records) + pairs.n_capped} usable pairs; "
        if pairs.n_capped
        else ""
    )
    reason = (
        f"{capped}{len(pairs.records)} usable pairs with {n_prompts} distinct prompt(s) leave the "
        f"{'test' if train else 'training'} side of the split by prompt "
        f"(data.test_fraction = {data_params.test_fraction}) empty; it needs pairs of at least "
        "two distinct prompts"
    )
    raise DatasetError(reason, path=pairs.source)


__all__ = [
    "LOADERS",
    "DatasetError",
    "DataInputs",
    "EvalPrompt",
    "LabeledResponse",
    "LoadedDataset",
    "OnBadRows",
    "PreferencePair",
    "check_usable_pairs",
    "configured_prompt_sets",
    "first_human_turn",
    "load_configured",
    "load_data_inputs",
    "load_do_not_answer",
    "load_hh_red_team",
    "load_pku_saferlhf",
    "load_salad_base",
    "load_xstest",
    "normalise_prompt",
    "split_by_prompt",
    "subsample",
    "to_labeled_responses",
]


# Over-alignment sets (Table 3): MMLU questions and instruction prompts.

MMLU_LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class MmluQuestion:
    """A four-way multiple-choice question; ``answer`` indexes ``choices`` (0-3)."""

    question_id: str
    subject: str
    question: str
    choices: tuple[str, ...]
    answer: int


def _choices(data: Mapping[str, Any], name: str, count: int) -> tuple[str, ...]:
    value = _value(data, name)
    if isinstance(value, str):
        value = _parse_mapping_text(value, name)  # a JSON (or Python) list in CSV exports
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != count:
        raise _RowError(name, f"expected a list of {count} answer texts, got {value!r:.60}")
    if not all(isinstance(choice, str) and choice.strip() for choice in value):
        raise _RowError(name, f"every choice must be non-empty text, got {value!r:.60}")
    return tuple(_unicode(choice.strip(), name) for choice in value)


def _parse_mmlu(data: Mapping[str, Any], row: int, text_cells: bool) -> MmluQuestion:
    choices = _choices(data, "choices", len(MMLU_LETTERS))
    answer = _choice(data, "answer", tuple(range(len(MMLU_LETTERS))), text_cells)
    return MmluQuestion(
        f"mmlu-{row}", _text(data, "subject"), _text(data, "question"), choices, answer
    )


def _parse_alpaca_eval(data: Mapping[str, Any], row: int, text_cells: bool) -> EvalPrompt:
    dataset = data.get("dataset")
    category = _unicode(dataset, "dataset") if isinstance(dataset, str) else None
    return EvalPrompt(
        f"alpaca_eval-{row}", _text(data, "instruction"), "alpaca_eval", category, None
    )


_MMLU = _Spec(
    "mmlu",
    ("question", "subject", "choices", "answer"),
    _parse_mmlu,
    {"name": "all"},
    record_id=attrgetter("question_id"),
)
# `datasets` >= 4 refuses tatsu-lab/alpaca_eval's loading script (alpaca_eval.py), so the file
# that script's `alpaca_eval` configuration reads (its `eval` split) is read directly.
_ALPACA_EVAL = _Spec(
    "alpaca_eval",
    ("instruction",),
    _parse_alpaca_eval,
    repo_file=_RepoFile("alpaca_eval.json", split="eval"),
)


def load_mmlu(
    source: str | Path,
    *,
    split: str = "test",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[MmluQuestion]:
    """MMLU (``cais/mmlu``, config ``all``).

    Schema: ``question, subject`` (text), ``choices`` (a list of 4 texts; a JSON list in CSV),
    ``answer`` (0-3). ``question_id`` is ``mmlu-<row>``.
    """
    return _load(_MMLU, source, split, on_bad_rows, revision)


def load_alpaca_eval(
    source: str | Path,
    *,
    split: str = "eval",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[EvalPrompt]:
    """AlpacaEval instructions (``tatsu-lab/alpaca_eval``): ``instruction`` (+ ``dataset``).

    The hub repository's loading script is refused by `datasets` >= 4, so a hub id (or a local
    copy of the repository) is read from its published ``alpaca_eval.json`` (a JSON array of
    ``instruction, output, generator, dataset``), which holds the one split ``eval``.
    ``prompt_id`` is ``alpaca_eval-<row>``; ``dataset`` (the instruction's origin) -> ``category``.
    """
    return _load(_ALPACA_EVAL, source, split, on_bad_rows, revision)


LOADERS["mmlu"] = load_mmlu
LOADERS["alpaca_eval"] = load_alpaca_eval
__all__ += ["MMLU_LETTERS", "MmluQuestion", "load_alpaca_eval", "load_mmlu"]
