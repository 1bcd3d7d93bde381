"""Shared fixtures: CPU only, seeded, a tiny random Llama built once per session."""

from __future__ import annotations

import pytest
import torch

from repsafe_lib.models import LoadedModel, load_model
from repsafe_lib.params import Params, load_params


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("REPSAFE_OUTPUTS", str(tmp_path / "outputs"))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_params() -> Params:
    return load_params("params/tiny.yaml")


@pytest.fixture(scope="session")
def tiny_model(tiny_params) -> LoadedModel:
    return load_model(tiny_params.model, seed=tiny_params.seed)
