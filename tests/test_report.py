"""Notebook 08's gathering of the paper's tables and figures, the paper's numbers beside them, and
the HTML report, opened in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from headless_chromium import check_page, chromium_paths

from repsafe_lib import paths, published, report, results
from repsafe_lib.params import load_params

LINK = re.compile(r'href="\.\./([^"#]+)"')
LABELS = results.FigureLabels(model_name="tiny-llama", judge="refusal")


def test_published_table1_averages_are_the_mean_of_their_six_cells():
    # A transcription check: the paper's Avg column is the mean of the six SG/MJ cells, cut to
    # one decimal (its DPO, RS* and DPO* averages are truncated, not rounded: 25.78 -> 25.7).
    for policy, cells in published.TABLE1.items():
        mean = (sum(cells["SG"]) + sum(cells["MJ"])) / 6
        assert cells["average"] - 0.051 < mean < cells["average"] + 0.1, policy
    table = published.table1()
    assert list(table.columns[1:4]) == [f"{b} · SG" for b in published.BENCHMARKS]
    assert table.set_index("policy").loc["cdpo_star", "average"] == 21.4


def test_published_table2_and_table3_shapes():
    table2 = published.table2()
    assert len(table2) == 14 and table2["toxic_rate"].between(0, 100).all()
    sample8 = table2[table2["selection"].str.endswith("sample-8")]
    assert sample8[[f"S{i}" for i in range(1, 12)]].notna().all().all()
    assert table2.loc[table2["selection"] == "after: top-1-rm", "toxic_rate"].item() == 7.0
    assert published.table3().set_index("policy").loc["base", "MMLU"] == 0.45898


@pytest.mark.slow
def test_gathered_items_come_from_the_run_files_and_figures_are_redrawn(tiny_run, tmp_path):
    items = results.gather(tiny_run, results.FigureLabels.of(load_params("params/tiny.yaml")))
    assert [i.spec.key for i in items] == [s.key for s in results.PAPER_ITEMS]
    assert all(item.ran for item in items), [(i.spec.key, i.missing) for i in items]
    for item in items:
        for table in item.tables:
            source = pd.read_csv(tiny_run / table.source)
            assert table.frame.equals(source[list(table.frame.columns)]), table.source
        written = results.write_item(item, tmp_path)
        if item.spec.figure is not None:
            drawn = tmp_path / f"{item.spec.key}.png"
            assert drawn in written and item.figure_sources, item.spec.key
            # notebook 08 drew the same figure from the same tables
            assert drawn.read_bytes() == (tiny_run / "08_results" / drawn.name).read_bytes()
    executed = tiny_run / "08_results"
    assert {p.name for p in executed.iterdir()} >= {p.name for p in tmp_path.iterdir()}


# Per paper figure: a table it is drawn from and a column of it to change.
FIGURE_INPUTS = {
    "fig2": ("01_representations/pca_points.csv", "pc1"),
    "fig1": ("06_evaluation/fig1_reward_accuracy.csv", "pairwise_accuracy"),
    "fig1_probes": ("03_hybrid_reward/hybrid_metrics.csv", "accuracy_mean"),
    "fig6": ("06_evaluation/fig6_top_k.csv", "min"),
    "fig6_pairwise": ("03_hybrid_reward/fig6_strategies.csv", "pairwise_accuracy_min"),
    "fig5": ("04_training/cdpo/metrics.jsonl", "gamma_mean"),
    "table2": ("05_sampling/table2_refusal.csv", "toxic_rate"),
    "fig4": ("06_evaluation/fig4_xstest.csv", "full_compliance"),
    "fig7": ("07_compute/fig7_analytic.csv", "online_flops"),
    "transfer": ("03_hybrid_reward/transfer.csv", "transfer_auroc"),
}


def _halve(path: Path, column: str) -> None:
    """`column` of the table at `path` halved, written back in the table's format."""
    frame = results.read_table(path)
    frame[column] = frame[column] * 0.5
    if path.suffix == ".jsonl":
        path.write_text(frame.to_json(orient="records", lines=True), encoding="utf-8")
    else:
        frame.to_csv(path, index=False)


@pytest.mark.slow
def test_each_paper_figure_is_drawn_from_its_tables_alone(tiny_run, tmp_path):
    # Only the tables a figure names, no PNG of any notebook: notebook 08's drawing writes the
    # figure, the one notebook 08 wrote; a changed value in a table changes the figure.
    labels = results.FigureLabels.of(load_params("params/tiny.yaml"))
    figures = [spec for spec in results.PAPER_ITEMS if spec.figure is not None]
    assert {spec.key for spec in figures} == set(FIGURE_INPUTS)
    for spec in figures:
        outputs = tmp_path / spec.key / "outputs"
        for source in results.gather_item(tiny_run, spec, labels).figure_sources:
            (outputs / source).parent.mkdir(parents=True, exist_ok=True)
            (outputs / source).write_bytes((tiny_run / source).read_bytes())
        assert not list(outputs.rglob("*.png"))
        item = results.gather_item(outputs, spec, labels)
        drawn = tmp_path / spec.key / f"{spec.key}.png"
        assert drawn in results.write_item(item, drawn.parent), spec.key
        assert drawn.read_bytes() == (tiny_run / "08_results" / drawn.name).read_bytes()
        table, column = FIGURE_INPUTS[spec.key]
        _halve(outputs / table, column)
        changed = results.write_item(results.gather_item(outputs, spec, labels), outputs)
        assert (outputs / drawn.name).read_bytes() != drawn.read_bytes(), spec.key
        assert outputs / drawn.name in changed


def test_missing_artifacts_show_as_not_yet_run(tmp_path, monkeypatch):
    monkeypatch.setenv("REPSAFE_OUTPUTS", str(tmp_path))
    params = load_params("params/tiny.yaml")
    (tmp_path / "tiny").mkdir()
    items = results.gather(tmp_path / "tiny", results.FigureLabels.of(params))
    assert not any(item.ran for item in items)
    assert results.overview(items)["status"].eq("not yet run").all()
    page = report.build_report(params).read_text(encoding="utf-8")
    assert "not yet run: run notebook 06_evaluation" in page
    assert "not yet run: run notebook 07_compute" in page


def _write_fig7_tables(compute: Path, online_flops: float) -> None:
    compute.mkdir(parents=True, exist_ok=True)
    tokens, orders = [64, 128], [3.0, 3.3]
    pd.DataFrame(
        {
            "new_tokens": tokens,
            "online_s": [1.0, 2.0],
            "ours_s": [1e-3] * 2,
            "orders_of_magnitude": orders,
        }
    ).to_csv(compute / "fig7_measured.csv", index=False)
    pd.DataFrame(
        {
            "new_tokens": tokens,
            "online_flops": [online_flops, 2 * online_flops],
            "ours_flops": [1e9] * 2,
            "orders_of_magnitude": orders,
        }
    ).to_csv(compute / "fig7_analytic.csv", index=False)


def test_a_figure_is_redrawn_from_its_tables_and_follows_their_values(tmp_path, monkeypatch):
    # Only notebook 07's two tables, no PNG: the figure is drawn, the same twice, and a changed
    # value changes it; the report shows it while every other item is "not yet run".
    spec = next(s for s in results.PAPER_ITEMS if s.key == "fig7")
    profile = tmp_path / "tiny"
    drawn = []
    for online_flops in (1e15, 1e15, 3e15):
        _write_fig7_tables(profile / "07_compute", online_flops)
        item = results.gather_item(profile, spec, LABELS)
        assert item.ran and [str(p) for p in item.figure_sources] == [
            "07_compute/fig7_measured.csv",
            "07_compute/fig7_analytic.csv",
        ]
        out = tmp_path / f"drawn-{len(drawn)}"
        assert out / "fig7.png" in results.write_item(item, out)
        drawn.append((out / "fig7.png").read_bytes())
    assert drawn[0] == drawn[1] != drawn[2]
    monkeypatch.setenv("REPSAFE_OUTPUTS", str(tmp_path))
    page = report.build_report(load_params("params/tiny.yaml")).read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == 1
    assert 'drawn from: <a href="../07_compute/fig7_measured.csv">' in page
    assert "not yet run: run notebook 06_evaluation" in page


def test_fig5_is_drawn_from_every_runs_metrics_log(tmp_path):
    for run, accuracy in (("dpo", 0.5), ("cdpo", 0.75)):
        directory = tmp_path / "04_training" / run
        directory.mkdir(parents=True)
        rows = [
            {"loss": 0.7 - step / 100, "reward_accuracy": accuracy, "gamma_mean": 0.8, "step": step}
            for step in range(6)
        ]
        (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = results.read_tables(tmp_path, "04_training/*/metrics.jsonl", key="run")
    assert metrics.groupby("run").size().to_dict() == {"cdpo": 6, "dpo": 6}
    assert metrics.loc[metrics["run"] == "cdpo", "reward_accuracy"].eq(0.75).all()
    spec = next(s for s in results.PAPER_ITEMS if s.key == "fig5")
    item = results.gather_item(tmp_path, spec, LABELS)
    assert not item.ran and item.has_figure  # its tables are missing, its figure is not
    assert [str(p) for p in item.figure_sources] == [
        "04_training/cdpo/metrics.jsonl",
        "04_training/dpo/metrics.jsonl",
    ]
    legend = results.draw_figure(item).axes[0].get_legend_handles_labels()[1]
    assert legend == ["cDPO implicit reward", "vanilla DPO implicit reward"]


def test_a_table_per_judge_keeps_its_own_source(tmp_path):
    sampling = tmp_path / "05_sampling"
    sampling.mkdir()
    for judge, rate in (("llama_guard_2", 0.2), ("md_judge", 0.3)):
        pd.DataFrame({"selection": ["before: top-1-ours"], "toxic_rate": [rate]}).to_csv(
            sampling / f"table2_{judge}.csv", index=False
        )
    spec = next(s for s in results.PAPER_ITEMS if s.key == "table2")
    labels = results.FigureLabels(model_name="tiny-llama", judge="md_judge")
    item = results.gather_item(tmp_path, spec, labels)
    assert [str(t.source) for t in item.tables] == [
        "05_sampling/table2_llama_guard_2.csv",
        "05_sampling/table2_md_judge.csv",
    ]
    assert [t.frame["toxic_rate"].item() for t in item.tables] == [0.2, 0.3]
    # the figure is the first judge's, as notebook 05 draws it
    assert item.ran and [str(p) for p in item.figure_sources] == ["05_sampling/table2_md_judge.csv"]
    assert item.figure_tables["shares"]["toxic_rate"].item() == 0.3
    written = {p.name for p in results.write_item(item, tmp_path / "out")}
    assert {
        "table2_llama_guard_2.csv",
        "table2_md_judge.csv",
        "table2.png",
        "table2.pdf",
    } <= written


def test_fig1_and_fig6_come_in_the_papers_form_beside_the_suites_own(tmp_path):
    # Fig 1's after-alignment series and Fig 6's toxic rates of the top-k are the paper's items;
    # the probe figure and the pairwise form stay beside them as items of their own.
    keys = [s.key for s in results.PAPER_ITEMS]
    assert keys.index("fig1") + 1 == keys.index("fig1_probes")
    assert keys.index("fig6") + 1 == keys.index("fig6_pairwise")
    evaluation_dir = tmp_path / "06_evaluation"
    evaluation_dir.mkdir()
    pd.DataFrame({"strategy": ["ours (gated R_h)"], "toxic_rate": [0.25]}).to_csv(
        evaluation_dir / "fig6_top_k.csv", index=False
    )
    spec = {s.key: s for s in results.PAPER_ITEMS}
    fig6 = results.gather_item(tmp_path, spec["fig6"], LABELS)
    assert fig6.ran and [str(p) for p in fig6.sources] == ["06_evaluation/fig6_top_k.csv"]
    fig1 = results.gather_item(tmp_path, spec["fig1"], LABELS)
    assert not fig1.ran and not fig1.has_figure and results.draw_figure(fig1) is None
    assert fig1.missing[0] == "06_evaluation/fig1_reward_accuracy.csv"
    assert {t.pattern for t in spec["fig1"].figure.tables} <= set(fig1.missing)
    assert "after alignment" in spec["fig1"].title and "06_evaluation" in spec["fig1"].producer


def _numbers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\d+", text)}


def test_readme_says_exactly_which_paper_items_are_regenerated():
    # The paper has Figs 1-8 and Tables 1-3; the README lists those the suite regenerates (every
    # paper item of the results page) and those it does not, and the two lists cover the paper.
    readme = " ".join((paths.repo_root() / "README.md").read_text(encoding="utf-8").split())
    listed = re.search(r"regenerated — Tables ([\d, and]+) and Figs ([\d, and]+) —", readme)
    assert listed, "the README's sentence on what is regenerated"
    tables, figures = _numbers(listed.group(1)), _numbers(listed.group(2))
    titles = (re.match(r"(Fig|Table) \d+", s.title) for s in results.PAPER_ITEMS)
    items = {title.group(0) for title in titles if title}  # not the suite's own (Transfer)
    assert items == {f"Table {n}" for n in tables} | {f"Fig {n}" for n in figures}
    not_regenerated = readme[listed.end() :].split("Not regenerated:", 1)[1].split(". ", 1)[0]
    missing = {int(n) for n in re.findall(r"Fig (\d+)\b", not_regenerated)}
    assert {3, 8} <= missing and (figures | {3, 8}) == set(range(1, 9))
    assert tables == {1, 2, 3}


def test_report_on_a_missing_profile_says_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REPSAFE_OUTPUTS", str(tmp_path))
    assert report.main(["--params", "params/tiny.yaml"]) == 1
    assert "make reproduce PROFILE=tiny" in capsys.readouterr().err


@pytest.mark.slow
def test_report_rebuilds_from_artifacts_and_lists_every_source(tiny_run, monkeypatch):
    page_path = tiny_run / "report" / "index.html"
    built_by_pipeline = page_path.read_bytes()
    monkeypatch.setenv("REPSAFE_OUTPUTS", str(tiny_run.parent))
    assert report.main(["--params", "params/tiny.yaml"]) == 0
    assert page_path.read_bytes() == built_by_pipeline  # nothing reran: same artifacts, same page
    page = built_by_pipeline.decode("utf-8")
    links = LINK.findall(page)
    assert all((tiny_run / link).is_file() for link in links), links
    for item in results.gather(tiny_run, results.FigureLabels.of(load_params("params/tiny.yaml"))):
        assert all(str(source) in links for source in item.sources), item.spec.key
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == sum(
        spec.figure is not None for spec in results.PAPER_ITEMS
    )
    assert "executed/08_results.ipynb" in links and "not yet run" not in page


@pytest.mark.slow
def test_report_loads_in_headless_chromium_without_errors(tiny_run):
    if chromium_paths() is None:
        pytest.skip("Chromium/chromedriver not installed: apt-get install chromium chromium-driver")
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[dev]'")
    screenshot = paths.outputs_root() / "report-tiny-screenshot.png"
    check = check_page(tiny_run / "report" / "index.html", screenshot)
    assert check.console_errors == []
    assert check.images == sum(spec.figure is not None for spec in results.PAPER_ITEMS)
    assert check.broken_images == []
    assert check.title == "repsafe report: tiny"
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
    assert Path(check.screenshot) == screenshot


def _transfer_table(path: Path, hybrid_auroc: float) -> None:
    path.mkdir(parents=True, exist_ok=True)
    rows = [
        {"scorer": "hybrid reward", "layer": None, "transfer_auroc": hybrid_auroc},
        {"scorer": "layer 1 probe", "layer": 1, "transfer_auroc": 0.7},
    ]
    pd.DataFrame(rows).to_csv(path / "transfer.csv", index=False)


def test_data_note_says_what_the_demo_is_with_the_measured_transfer(tmp_path: Path) -> None:
    smol = load_params("params/smol.yaml")
    unmeasured = report.data_note(tmp_path, smol)
    assert "synthetic demo data" in unmeasured and "not measured in this run" in unmeasured
    assert "laptop profile" in unmeasured
    _transfer_table(tmp_path / "03_hybrid_reward", 0.4612)
    measured = report.data_note(tmp_path, smol)
    assert "PKU-Alignment/BeaverTails" in measured and "AUROC 0.461" in measured
    assert "does not recognise harm" in measured
    _transfer_table(tmp_path / "03_hybrid_reward", 0.81)
    assert "the reward transfers" in report.data_note(tmp_path, smol)


def test_data_note_for_other_profiles(tmp_path: Path) -> None:
    _transfer_table(tmp_path / "03_hybrid_reward", 0.81)
    # tiny's transfer set is demo data itself: no transfer claim from it.
    tiny = report.data_note(tmp_path, load_params("params/tiny.yaml"))
    assert "synthetic demo data" in tiny and "AUROC" not in tiny
    assert report.data_note(tmp_path, load_params("params/laptop.yaml")) == ""
    assert "synthetic copies" in report.data_note(tmp_path, load_params("params/rehearsal.yaml"))


def test_transfer_item_without_a_transfer_set_says_why(tmp_path: Path) -> None:
    spec = next(s for s in results.PAPER_ITEMS if s.key == "transfer")
    item = results.gather_item(tmp_path, spec, LABELS)
    assert not item.ran
    page = report.item_html(item)
    assert "no transfer set in this run" in page and "run notebook 03" not in page
