"""Where a source's rows come from: a Hugging Face hub dataset (`datasets.load_dataset`), a data
file of a hub repository (`huggingface_hub.hf_hub_download`), a local copy of a hub repository
read by `datasets` exactly as the hub id is, or a local file (`files`).

``split`` applies to hub ids and directories, ``revision`` to hub ids only; a local file is one
split already.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repsafe_lib.loaders.errors import DatasetError
from repsafe_lib.loaders.files import SUFFIXES, Row, Table, read_file

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


@dataclass(frozen=True)
class RepoFile:
    """A data file read straight from a hub repository whose loading script `datasets` refuses.

    ``split`` names the one split the file holds (the name the repository's script gave it).
    """

    path: str
    split: str


def _read_hub(
    hub_id: str, split: str, revision: str | None, hub_kwargs: Mapping[str, str]
) -> Table:
    import datasets  # lazy: the hub client is heavy and not needed for local files

    try:
        dataset = datasets.load_dataset(hub_id, **hub_kwargs, split=split, revision=revision)
    except Exception as exc:  # the hub client raises many types; report them as one
        reason = f"could not load hub dataset (split={split!r}, {dict(hub_kwargs)}): {exc}"
        raise DatasetError(reason, path=hub_id) from exc
    return _dataset_table(dataset, f"{hub_id}[{split}]")


def _read_hub_layout(directory: Path, split: str, hub_kwargs: Mapping[str, str]) -> Table:
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


def _dataset_table(dataset: Any, source: str) -> Table:
    rows = [Row(i, None, data) for i, data in enumerate(dataset, start=1)]
    return Table(source, rows, frozenset(dataset.column_names), text_cells=False)


def _check_repo_file_split(repo_file: RepoFile, split: str, where: str) -> None:
    if split != repo_file.split:
        reason = f"{repo_file.path} holds one split, {repo_file.split!r}; got split={split!r}"
        raise DatasetError(reason, path=where)


def _read_repo_file(local: str, source: str) -> Table:
    """A repository data file read with `datasets`' own reader for its format."""
    import datasets

    kind = Path(local).suffixes[0].lstrip(".") if Path(local).suffixes else ""
    builder = {"jsonl": "json"}.get(kind, kind)
    try:
        dataset = datasets.load_dataset(builder, data_files=local, split="train")
    except Exception as exc:  # the readers raise many types; report them as one
        raise DatasetError(f"could not read {builder} data file: {exc}", path=source) from exc
    return _dataset_table(dataset, source)


def _download_repo_file(hub_id: str, repo_file: RepoFile, revision: str | None) -> str:
    import huggingface_hub

    try:
        return huggingface_hub.hf_hub_download(
            hub_id, repo_file.path, repo_type="dataset", revision=revision
        )
    except Exception as exc:  # the hub client raises many types; report them as one
        reason = f"could not download {repo_file.path} from the hub dataset: {exc}"
        raise DatasetError(reason, path=hub_id) from exc


def _is_hub_id(source: str) -> bool:
    return bool(_HUB_ID.fullmatch(source)) and not source.endswith((*SUFFIXES, ".gz"))


def read_source(
    source: str | Path,
    split: str,
    revision: str | None,
    hub_kwargs: Mapping[str, str],
    repo_file: RepoFile | None,
) -> Table:
    """The rows of a source: a directory or an existing file first, then a hub id."""
    path = Path(source)
    if path.is_dir() and repo_file is not None:
        local = path / repo_file.path
        _check_repo_file_split(repo_file, split, str(path))
        if not local.is_file():
            reason = f"expected the hub repository's data file {repo_file.path} in this directory"
            raise DatasetError(reason, path=str(path))
        return _read_repo_file(str(local), f"{local}[{split}]")
    if path.is_dir():
        return _read_hub_layout(path, split, hub_kwargs)
    if path.exists():
        return read_file(path)
    if isinstance(source, str) and _is_hub_id(source) and repo_file is not None:
        _check_repo_file_split(repo_file, split, source)
        local_copy = _download_repo_file(source, repo_file, revision)
        return _read_repo_file(local_copy, f"{source}/{repo_file.path}[{split}]")
    if isinstance(source, str) and _is_hub_id(source):
        return _read_hub(source, split, revision, hub_kwargs)
    raise DatasetError("no such file and not a hub id (owner/name)", path=str(source))


def _content_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative paths and bytes, in sorted order)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def source_revision(source: str | Path, revision: str | None) -> str:
    """What was read, for the record: ``sha256:<digest>`` of a local file or folder, or the hub
    commit a hub id resolved to (read from the local hub cache that the load filled, so no
    network call; ``unknown`` when the cache doesn't say)."""
    path = Path(source)
    if path.exists():
        return f"sha256:{_content_digest(path)}"
    if revision is not None and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    if not _is_hub_id(str(source)):
        return "unknown"
    from huggingface_hub import constants  # lazy, as for every hub call

    owner, name = str(source).split("/", 1)
    ref = (
        Path(constants.HF_HUB_CACHE) / f"datasets--{owner}--{name}" / "refs" / (revision or "main")
    )
    return ref.read_text().strip() if ref.is_file() else "unknown"
