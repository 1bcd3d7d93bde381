"""Which policies notebook 06 evaluates: read off the outputs tree (paper Sec 4.2, Table 1 rows).

The convention:

- `base` is always present: the params' `model`.
- `outputs/<profile>/<NN_notebook>/<run>/policy/config.json`: a saved policy (`save_pretrained`;
  tokenizer files beside it, else the base tokenizer is used), named `<run>`.
- `outputs/<profile>/<NN_notebook>/<run>/responses.jsonl`: a policy given by its responses
  (`sampling.ResponseRecord`s, e.g. best-of-N picks), named `<run>`.
- A run named `<name>-seed<k>` is seed `k` of policy `<name>`: intervals then resample seeds too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from repsafe_lib.models import LoadedModel, load_model, load_saved_policy

POLICY_ORDER = (
    "base",
    "sft",
    "dpo",
    "cdpo",
    "cdpo_crossfit",
    "rs_star",
    "dpo_star",
    "cdpo_star",
    "online",
)

_SEED_SUFFIX = re.compile(r"^(?P<name>.+)-seed(?P<seed>\d+)$")
_NOTEBOOK_DIR = re.compile(r"^\d{2}_[a-z0-9_]+$")


@dataclass(frozen=True)
class PolicySource:
    """A policy to evaluate: the base model, saved weights, or a file of responses."""

    run: str  # unique: the directory name (`base` for the base model)
    policy: str  # the row it belongs to: `run` without a `-seed<k>` suffix
    seed: int | None
    kind: Literal["base", "weights", "responses"]
    path: Path | None


def policy_of_run(run: str) -> str:
    """The policy a run belongs to: `run` without a `-seed<k>` suffix."""
    return _SEED_SUFFIX.sub(r"\g<name>", run)


def _policy_rank(name: str) -> tuple:
    return (POLICY_ORDER.index(name), "") if name in POLICY_ORDER else (len(POLICY_ORDER), name)


def _source(run_dir: Path, kind: str, path: Path) -> PolicySource:
    match = _SEED_SUFFIX.match(run_dir.name)
    policy, seed = (match["name"], int(match["seed"])) if match else (run_dir.name, None)
    return PolicySource(run_dir.name, policy, seed, kind, path)


def discover_policies(profile_dir: str | Path, exclude: Sequence[str] = ()) -> list[PolicySource]:
    """`base`, then every saved policy or response file under `profile_dir` (see module doc),
    in the paper's row order (unknown names after, alphabetically); duplicate runs are an error.
    Notebook directories named in `exclude` are not searched."""
    found = [PolicySource("base", "base", None, "base", None)]
    root = Path(profile_dir)
    notebooks = sorted(
        p
        for p in root.glob("*")
        if p.is_dir() and _NOTEBOOK_DIR.match(p.name) and p.name not in exclude
    )
    for run_dir in sorted(d for notebook in notebooks for d in notebook.iterdir() if d.is_dir()):
        if (run_dir / "policy" / "config.json").is_file():
            found.append(_source(run_dir, "weights", run_dir / "policy"))
        elif (run_dir / "responses.jsonl").is_file():
            found.append(_source(run_dir, "responses", run_dir / "responses.jsonl"))
    runs = [source.run for source in found]
    duplicates = sorted({run for run in runs if runs.count(run) > 1})
    if duplicates:
        raise ValueError(f"{root}: policy run names must be unique, found twice: {duplicates}")
    return sorted(found, key=lambda s: (_policy_rank(s.policy), s.seed or 0, s.run))


def load_policy(source: PolicySource, base_spec, *, seed: int) -> LoadedModel | None:
    """The policy's model in eval mode (None for a responses-only policy)."""
    if source.kind == "responses":
        return None
    if source.kind == "base":
        return load_model(base_spec, seed=seed)
    return load_saved_policy(source.path, base_spec, name=source.run)
