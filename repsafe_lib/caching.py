"""Compute once, keyed, atomically cached: the one pattern behind every cache of the suite (hidden
states, responses, reference log-probs, GGUF conversions and tiny models, the scalar reward model)
and behind the key a training checkpoint must match to be resumed.

A cache entry is a file or a directory, recorded under a key: a digest of everything its value
depends on (`key_digest`), kept in the file's metadata, in a JSON file beside the payload, or in the
entry's name. `cached` looks the entry up; where it is present, readable, recorded under the same
key and its payload valid, it is loaded. Otherwise the value is computed, written atomically (a
run killed at any point leaves no entry a later run would trust) and returned as stored, so the
first run and every rerun see the same values. Each miss over an entry that is there is logged
in one format: "<what> <path> is stale / unreadable / invalid (...); <remedy>".
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from safetensors import SafetensorError, safe_open

from repsafe_lib.artifacts import atomic_directory, atomic_path

log = logging.getLogger(__name__)

V = TypeVar("V")
# What reading a damaged entry raises: cut off, overwritten, edited by hand, a missing part.
UNREADABLE = (OSError, ValueError, KeyError, SafetensorError)
KEY_FIELD = "key"


def canonical_json(value: Any) -> bytes:
    """The key contents as bytes that do not depend on dict order."""
    return json.dumps(value, sort_keys=True).encode()


def text_digests(texts: Iterable[str]) -> Iterator[bytes]:
    """One SHA-256 per text, streamed: a long list of texts enters a key at 32 bytes each."""
    return (hashlib.sha256(text.encode()).digest() for text in texts)


def file_chunks(path: str | Path, chunk_size: int = 1 << 22) -> Iterator[bytes]:
    """A file's bytes in chunks, so a multi-gigabyte weights file is hashed without loading it."""
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def key_digest(*parts: bytes | Iterable[bytes], length: int | None = None) -> str:
    """Hex SHA-256 over `parts` in order, each one chunk of bytes or an iterable of chunks
    (streamed); the first `length` hex digits where given."""
    digest = hashlib.sha256()
    for part in parts:
        for chunk in (part,) if isinstance(part, bytes) else part:
            digest.update(chunk)
    return digest.hexdigest()[:length]


def key_metadata(key: str) -> dict[str, str]:
    """The safetensors metadata that records a cached tensor file's key."""
    return {KEY_FIELD: key}


def tensor_file_key(path: Path) -> str | None:
    """The key recorded in a safetensors file's metadata (reads the header only)."""
    with safe_open(path, framework="pt") as handle:
        return (handle.metadata() or {}).get(KEY_FIELD)


def _no_problem(value: Any) -> None:
    return None


@dataclass(frozen=True)
class CacheFormat(Generic[V]):
    """How one kind of cache entry is kept on disk.

    `load(path)` reads a value (raising one of `UNREADABLE` where it can't); `save(tmp, value, key)`
    writes one to the temporary path and returns the value as a later `load` will see it.
    `recorded_key(path)` reads the key the entry was written under (None: the entry's name
    carries the key). `problem(value)` says what makes a loaded value invalid, or None. `what`
    and `remedy` make the log line of a miss; `directory` entries are directories, `shared` ones
    may be written by several processes at once (`artifacts.atomic_directory`).
    """

    what: str
    load: Callable[[Path], V]
    save: Callable[[Path, V, Any], V] | None = None  # None: written elsewhere (a checkpoint)
    recorded_key: Callable[[Path], Any] | None = None
    problem: Callable[[V], str | None] = _no_problem
    remedy: str = "recomputing"
    directory: bool = False
    shared: bool = False


def note_miss(cache: CacheFormat, path: Path, problem: str) -> None:
    """The one log line for an entry that is there but not used."""
    log.warning("%s %s is %s; %s", cache.what, path, " ".join(problem.split()), cache.remedy)


def load_cached(path: str | Path, key: Any, cache: CacheFormat[V]) -> V | None:
    """The value of the entry at `path` if it is there, readable, recorded under `key` and
    valid; else None (a miss over an entry that is there is logged)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        recorded = key if cache.recorded_key is None else cache.recorded_key(path)
        if recorded != key:
            note_miss(cache, path, "stale (written under another key)")
            return None
        value = cache.load(path)
    except UNREADABLE as error:
        note_miss(cache, path, f"unreadable ({error})")
        return None
    problem = cache.problem(value)
    if problem is not None:
        note_miss(cache, path, f"invalid ({problem})")
        return None
    return value


def cached(path: str | Path, key: Any, cache: CacheFormat[V], compute: Callable[[], V]) -> V:
    """The value cached at `path` under `key`, or `compute()`'s, saved there atomically.

    `compute` runs before anything is written, so a crash in it leaves no file; the value
    returned is the one `cache.save` stored (e.g. rounded to the file's precision)."""
    found = load_cached(path, key, cache)
    if found is not None:
        return found
    value = compute()
    target = atomic_directory(path, shared=cache.shared) if cache.directory else atomic_path(path)
    with target as tmp:
        stored = cache.save(tmp, value, key)
    return stored


def _complete(directory: Path, marker: str) -> Path:
    if not (directory / marker).is_file():
        raise FileNotFoundError(f"no {marker} in it")
    return directory


def _save_pretrained(staging: Path, parts: tuple, key: str) -> None:
    # Nothing to return: the caller holds the directory's path, the value of this cache.
    for part in parts:
        part.save_pretrained(staging)


def pretrained_cache(what: str, marker: str) -> CacheFormat[Path]:
    """A `save_pretrained` directory (model and tokenizer) in the machine-wide cache: its name
    carries its key, it is complete once `marker` is in it, and several processes may fill it at
    once (the first to finish wins)."""
    return CacheFormat(
        what=what,
        load=lambda directory: _complete(directory, marker),
        save=_save_pretrained,
        directory=True,
        shared=True,
    )
