"""The laptop profile's notebooks 00-03 on a small seeded subset of real data, read from local
copies through $REPSAFE_HUB_COPIES, with the hub switched off. Skipped, saying why, where the
copies are not beside the checkout (see `shared_data`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from shared_data import REAL_COPIES, missing_copies, shared_data_dir, write_hub_copies

from repsafe_lib import pipeline
from repsafe_lib.paths import repo_root

pytestmark = pytest.mark.slow

SUBSET = {
    "extends": str(repo_root() / "params" / "laptop.yaml"),
    "profile": "laptop-subset",
    "data": {"pairs": {"max_rows": 48}, "transfer": {"max_rows": 48}},
    "pca": {"samples_per_class": 30},
    "probes": {"num_splits": 2, "c_grid": [1.0e-3, 1.0e-2]},
    "reward": {"epochs": 100},
}


@pytest.fixture(scope="module")
def laptop_subset(tmp_path_factory) -> Path:
    data = shared_data_dir()
    if missing := missing_copies(data):
        pytest.skip(f"no local copies of the laptop profile's real data here ({missing[0]})")
    root = tmp_path_factory.mktemp("laptop")
    params = root / "laptop-subset.yaml"
    params.write_text(yaml.safe_dump(SUBSET, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPSAFE_HUB_COPIES", str(write_hub_copies(data, root / "copies.yaml")))
        patch.setenv("REPSAFE_OUTPUTS", str(root / "outputs"))
        patch.setenv("HF_HUB_OFFLINE", "1")  # any hub id left unmapped fails at once
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        only = ["00", "01", "02", "03"]
        assert pipeline.main(["--params", str(params), "--only", *only]) == 0
    return root / "outputs" / "laptop-subset"


def test_laptop_subset_reads_every_real_copy(laptop_subset: Path) -> None:
    summary = pd.read_csv(laptop_subset / "00_data" / "data_summary.csv").set_index("dataset")
    read = {
        "pairs": "PKU-Alignment/PKU-SafeRLHF",
        "transfer": "PKU-Alignment/BeaverTails",
        "xstest": "walledai/XSTest",
    }
    for dataset, hub_id in read.items():
        copy = shared_data_dir() / REAL_COPIES[hub_id]
        digest = hashlib.sha256(copy.read_bytes()).hexdigest()
        assert summary.loc[dataset, "source"] == hub_id
        assert summary.loc[dataset, "revision"] == f"sha256:{digest[:12]}"
    assert summary.loc["pairs", "used"] == 48 and summary.loc["transfer", "used"] == 48
    manifest = json.loads((laptop_subset / "00_data" / "manifest.json").read_text())
    assert manifest["hub_copies"]["PKU-Alignment/PKU-SafeRLHF"].endswith(
        REAL_COPIES["PKU-Alignment/PKU-SafeRLHF"]
    )


def test_laptop_subset_transfer_table_and_fig1(laptop_subset: Path) -> None:
    transfer = pd.read_csv(laptop_subset / "03_hybrid_reward" / "transfer.csv")
    probes = pd.read_csv(laptop_subset / "02_probes" / "probe_metrics.csv")
    assert len(probes) == 30  # SmolLM2-135M's decoder layers
    assert len(transfer) == 30 + 3
    assert transfer.filter(like="auroc").apply(lambda c: c.between(0, 1)).all().all()
    assert (laptop_subset / "03_hybrid_reward" / "fig1_probes.png").is_file()
    assert (laptop_subset / "03_hybrid_reward" / "transfer.png").is_file()
