"""Atomic writes, manifests, missing-upstream errors, the notebook runner's guard rails."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repsafe_lib import artifacts, paths, pipeline, projection
from repsafe_lib.params import load_params


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "table.csv"
    artifacts.write_text(target, "old\n")
    with pytest.raises(RuntimeError), artifacts.atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"], "temp file left behind"


def test_write_table_fixed_decimals(tmp_path):
    df = pd.DataFrame({"layer": [1, 2], "accuracy": [0.5, 2 / 3]})
    csv, md = artifacts.write_table(df, tmp_path / "t")
    assert csv.read_text() == "layer,accuracy\n1,0.5000\n2,0.6667\n"
    assert "0.6667" in md.read_text()
    assert repr(artifacts.Saved((csv, md))) == f"saved {csv}, {md}"


def test_missing_upstream_names_the_notebook(tmp_path):
    params = load_params("params/tiny.yaml")
    run = artifacts.Run(params, "01_representations")
    with pytest.raises(artifacts.MissingArtifactError, match="run notebook 00_data first"):
        run.upstream("00_data", "pairs_train.jsonl")


def test_manifest_records_the_run():
    params = load_params("params/tiny.yaml")
    run = artifacts.Run(params, "00_data")
    (manifest_path,) = run.finish({"pairs": 3})
    manifest = json.loads(manifest_path.read_text())
    assert manifest["params_hash"] == params.fingerprint() and manifest["seed"] == params.seed
    assert manifest["pairs"] == 3 and manifest["versions"]["torch"].startswith("2.")
    assert run.dir == paths.outputs_root() / "tiny" / "00_data"


def test_figures_are_saved_as_png_and_pdf_identically_twice(tmp_path):
    import matplotlib.pyplot as plt

    def draw():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        return fig

    first = [p.read_bytes() for p in artifacts.save_figure(draw(), tmp_path / "a")]
    second = [p.read_bytes() for p in artifacts.save_figure(draw(), tmp_path / "a")]
    assert first == second and first[0][:4] == b"\x89PNG" and first[1][:4] == b"%PDF"


def test_runner_only_runs_notebooks_from_the_notebooks_dir(tmp_path):
    outside = tmp_path / "00_evil.ipynb"
    outside.write_text("{}")
    with pytest.raises(ValueError, match="only notebooks in"):
        pipeline.run_notebook(outside, "params/tiny.yaml", tmp_path)


def test_numbered_notebooks_in_order():
    names = [p.name for p in pipeline.numbered_notebooks()]
    assert names == sorted(names) and names[:2] == ["00_data.ipynb", "01_representations.ipynb"]
    with pytest.raises(ValueError, match="unknown notebook '99'"):
        pipeline.select_notebooks(pipeline.numbered_notebooks(), ["99"])


def test_demo_source_resolves_to_the_package():
    assert paths.resolve_data_source("demo:xstest_demo.csv").endswith(
        "repsafe_lib/data/xstest_demo.csv"
    )
    assert paths.resolve_data_source("org/name") == "org/name"


def test_pca_on_planted_direction():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(200, 20))
    is_safe = np.arange(200) < 100
    states[is_safe, :10] += 2.0  # a shift shared by half the dimensions: the dominant direction
    coords, explained = projection.pca_project(states)
    assert coords.shape == (200, 2) and explained[0] > explained[1] > 0
    assert projection.class_separation(coords, is_safe) > 5
    shuffled = rng.permutation(is_safe)
    assert projection.class_separation(coords, shuffled) < 1


def test_spread_layers_and_balanced_sample():
    assert projection.spread_layers(30, 4) == [8, 15, 22, 30]
    assert projection.spread_layers(3, 4) == [1, 2, 3]
    is_safe = np.array([True] * 10 + [False] * 4)
    picked = projection.balanced_sample(is_safe, 3, seed=0)
    assert is_safe[picked].sum() == 3 and (~is_safe[picked]).sum() == 3
    assert np.array_equal(picked, projection.balanced_sample(is_safe, 3, seed=0))


def test_panel_layers():
    assert projection.panel_layers("auto", list(range(1, 31)), 4) == [8, 15, 22, 30]
    assert projection.panel_layers("auto", [2, 4, 6], 2) == [4, 6]
    assert projection.panel_layers((4, 2), [2, 4, 6], 2) == [4, 2]
    with pytest.raises(ValueError, match=r"pca.layers \[5\] were not extracted"):
        projection.panel_layers((5,), [2, 4, 6], 2)
