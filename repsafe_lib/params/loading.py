"""Loading a profile's params file, the file a notebook uses by default, and layer numbers checked
against the model's depth."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal

from repsafe_lib.params.conversion import build_dataclass
from repsafe_lib.params.errors import ParamsError
from repsafe_lib.params.profile import Params
from repsafe_lib.params.yaml_files import extends_chain, file_that_sets, merged_chain
from repsafe_lib.paths import repo_root

DEFAULT_PARAMS_FILE = "params/smol.yaml"
PARAMS_ENV_VAR = "REPSAFE_PARAMS"


def load_params(path: str | Path) -> Params:
    """Read and validate a params YAML file (relative paths resolve from the repository root).

    A file may start from another with `extends: other.yaml` and set only what differs; an error
    names the file of the chain that sets the key."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = repo_root() / path
    chain = extends_chain(path)
    try:
        params = build_dataclass(Params, merged_chain(chain), "", path)
    except ParamsError as error:
        owner = file_that_sets(error.key, chain)
        if owner == path:
            raise
        raise ParamsError(owner, error.key, error.problem) from None
    return dataclasses.replace(params, source_file=str(path))


def default_params_file() -> str:
    """The params file a notebook uses when none is injected: $REPSAFE_PARAMS, else smol."""
    return os.environ.get(PARAMS_ENV_VAR, DEFAULT_PARAMS_FILE)


def resolve_layers(
    layers: Literal["all"] | tuple[int, ...], num_layers: int, *, key: str, params_file: str
) -> list[int]:
    """1-based decoder layer numbers; one beyond the model's depth is an error naming the key."""
    if layers == "all":
        return list(range(1, num_layers + 1))
    bad = [layer for layer in layers if not 1 <= layer <= num_layers]
    if bad:
        problem = f"layers {bad} out of range: the model has decoder layers 1..{num_layers}"
        raise ParamsError(params_file, key, problem)
    return list(layers)
