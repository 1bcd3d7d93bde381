"""Local copies of hub datasets, for machines that can't reach the hub (firewalls, CI).

One YAML file maps hub ids to local copies; the environment variable ``REPSAFE_HUB_COPIES`` names
it (or a profile's ``data.hub_copies``, which wins: the rehearsal names the suite's bundled
copies there). Every loader then reads a mapped hub id from its copy, and every other hub id from
the hub::

    # REPSAFE_HUB_COPIES=/data/hub-copies.yaml
    PKU-Alignment/PKU-SafeRLHF: pku/train.jsonl            # a file in the dataset's schema
    walledai/XSTest: /mirror/walledai/XSTest               # a folder in the hub repository's layout
    cais/mmlu: demo:hub/cais/mmlu                          # a copy bundled with the suite

Relative paths resolve from the mapping file's folder. A copy is read exactly as a local source
named in params is (a file, or a folder laid out like the hub repository), so its schema is the
hub's. ``split`` applies to folders; a file is one split already, so map a hub id to the file of
the split the params ask for. The copy actually read is recorded in notebook 00's data table.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from repsafe_lib.loaders.errors import DatasetError
from repsafe_lib.paths import resolve_data_source

HUB_COPIES_ENV_VAR = "REPSAFE_HUB_COPIES"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def read_hub_copies(
    mapping_file: str | Path, named_by: str = f"${HUB_COPIES_ENV_VAR}"
) -> dict[str, str]:
    """Hub id -> local copy (an absolute path, or a `demo:` source) from a mapping file; errors
    name the file and what named it (`named_by`)."""
    mapping_file = Path(mapping_file)
    where = f"{mapping_file} (named by {named_by})"
    try:
        mapping = yaml.safe_load(mapping_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"cannot read the hub-copies file: {exc.strerror}", path=where) from None
    except yaml.YAMLError as exc:
        raise DatasetError(f"not valid YAML: {exc}", path=where) from None
    if not isinstance(mapping, dict):
        reason = "expected a mapping of hub ids (owner/name) to local files or folders"
        raise DatasetError(reason, path=where)
    copies = {}
    for hub_id, copy in mapping.items():
        if not isinstance(hub_id, str) or not _HUB_ID.fullmatch(hub_id):
            raise DatasetError(f"{hub_id!r} is not a hub id (owner/name)", path=where)
        if not isinstance(copy, str) or not copy.strip():
            raise DatasetError("expected a file or folder path", path=where, field=hub_id)
        if copy.startswith("demo:"):
            _check_demo_copy(copy, where, hub_id)
            copies[hub_id] = copy
            continue
        local = (mapping_file.parent / copy).resolve()
        if not local.exists():
            raise DatasetError(f"no such file or folder: {local}", path=where, field=hub_id)
        copies[hub_id] = str(local)
    return copies


def _check_demo_copy(copy: str, where: str, hub_id: str) -> None:
    """A `demo:` copy must name a bundled file or folder that exists, as a path must."""
    try:
        local = Path(resolve_data_source(copy))
    except DatasetError as exc:
        raise DatasetError(exc.reason, path=where, field=hub_id) from None
    if not local.exists():
        raise DatasetError(f"no such file or folder: {local}", path=where, field=hub_id)


def hub_copy(source: str, configured: str | None = None) -> str | None:
    """The local copy that the mapping file in force maps the hub id `source` to: the params'
    `data.hub_copies` (`configured`: a path from the repository root, or `demo:<file>`), else the
    file ``$REPSAFE_HUB_COPIES`` names. None when neither is set or the file doesn't map it."""
    if configured:
        return read_hub_copies(resolve_data_source(configured), "data.hub_copies").get(source)
    mapping_file = os.environ.get(HUB_COPIES_ENV_VAR)
    return read_hub_copies(mapping_file).get(source) if mapping_file else None
