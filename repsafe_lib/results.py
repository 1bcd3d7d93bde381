"""The paper's tables and figures, gathered from one profile's artifacts (notebook 08, the report).

Nothing here computes a result: every table is read from a file that an earlier notebook wrote in
that run, and every figure is redrawn from such files (`FigureSpec`: the `plots` function and the
tables it takes), so restyling a figure needs no notebook rerun. Each item keeps the list of its
files so a reader can trace every number. An item whose files are absent is "not yet run" and
names the notebook that makes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from repsafe_lib import plots, published
from repsafe_lib.artifacts import save_figure, write_json, write_table

METRIC_COLUMNS = ("precision_unsafe_mean", "recall_unsafe_mean", "accuracy_mean", "auroc_mean")


@dataclass(frozen=True)
class TableSource:
    """One table of ours: a CSV written by `producer` (a glob pattern relative to the profile's
    outputs, for names that depend on the run, e.g. the judge), optionally cut to `columns`."""

    caption: str
    pattern: str
    columns: tuple[str, ...] | None = None
    name: str = ""  # file-name suffix in notebook 08's output; "" = the item's key alone


@dataclass(frozen=True)
class FigureTable:
    """A table a figure is drawn from: the drawing function's `argument` and the file's `pattern`
    (relative to the profile's outputs; `{judge}` stands for the run's first judge). Files that a
    `*` matches are stacked, with a `key` column holding what the `*` matched in each."""

    argument: str
    pattern: str
    key: str = ""


@dataclass(frozen=True)
class FigureSpec:
    """A paper figure: `draw` (a `plots` function) given its `tables` as keyword arguments, and
    the run's `labels` it names (fields of `FigureLabels`, e.g. the model in the title)."""

    draw: Callable[..., plt.Figure]
    tables: tuple[FigureTable, ...]
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class FigureLabels:
    """What the figures name besides their tables: the profile's model and its first judge (the
    one notebooks 05 and 06 draw)."""

    model_name: str
    judge: str

    @classmethod
    def of(cls, params) -> FigureLabels:
        return cls(params.model.name, params.evaluation.judges[0])


@dataclass(frozen=True)
class ItemSpec:
    key: str
    title: str
    producer: str
    tables: tuple[TableSource, ...] = ()
    figure: FigureSpec | None = None
    paper: Callable[[], pd.DataFrame] | None = None
    paper_note: str = ""
    when_missing: str = ""  # what a run without the item's files means, when not "run it"


@dataclass(frozen=True)
class Table:
    caption: str
    source: Path  # relative to the profile's outputs
    frame: pd.DataFrame
    name: str = ""


@dataclass(frozen=True)
class Item:
    spec: ItemSpec
    labels: FigureLabels
    tables: list[Table] = field(default_factory=list)
    figure_tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # by argument
    figure_sources: list[Path] = field(default_factory=list)  # relative to the outputs
    missing: list[str] = field(default_factory=list)  # patterns with no file behind them

    @property
    def ran(self) -> bool:
        return not self.missing

    @property
    def has_figure(self) -> bool:
        """Whether the item has a figure and every table it is drawn from was found."""
        figure = self.spec.figure
        return figure is not None and len(self.figure_tables) == len(figure.tables)

    @property
    def sources(self) -> list[Path]:
        """Every file this item's numbers and figure come from, relative to the outputs."""
        return list(dict.fromkeys([t.source for t in self.tables] + self.figure_sources))

    def paper_table(self) -> pd.DataFrame | None:
        return self.spec.paper() if self.spec.paper else None


def _layer_metrics(name: str) -> tuple[str, ...]:
    return (name, *METRIC_COLUMNS)


PAPER_ITEMS = (
    ItemSpec(
        "fig2",
        "Fig 2: PCA + KDE of safe vs unsafe last-token states",
        "01_representations",
        (TableSource("separation per layer", "01_representations/pca_separation.csv"),),
        FigureSpec(
            plots.plot_pca_kde,
            (
                FigureTable("points", "01_representations/pca_points.csv"),
                FigureTable("separation", "01_representations/pca_separation.csv"),
            ),
            ("model_name",),
        ),
        paper_note=published.FIGURE_NOTES["fig2"],
    ),
    ItemSpec(
        "fig1",
        "Fig 1: per-layer probe precision before alignment, per-layer reward accuracy after"
        " alignment, the hybrid reward and two text-only controls",
        "02_probes, 03_hybrid_reward, 06_evaluation",
        (
            TableSource(
                "per-layer and hybrid reward accuracy on held-out pairs, before alignment (notebook"
                " 03's R_h, base policy) and after (the cDPO policy and its refreshed R_h)",
                "06_evaluation/fig1_reward_accuracy.csv",
                name="reward_accuracy",
            ),
            TableSource(
                "hybrid reward",
                "03_hybrid_reward/hybrid_metrics.csv",
                _layer_metrics("model"),
                "hybrid_reward",
            ),
            TableSource(
                "controls", "02_probes/control_metrics.csv", _layer_metrics("control"), "controls"
            ),
            TableSource(
                "probe per layer", "02_probes/probe_metrics.csv", _layer_metrics("layer"), "probes"
            ),
        ),
        FigureSpec(
            plots.plot_alignment_layers,
            (
                FigureTable("layer_summary", "02_probes/probe_metrics.csv"),
                FigureTable("reward_accuracy", "06_evaluation/fig1_reward_accuracy.csv"),
            ),
            ("model_name",),
        ),
        paper_note=published.FIGURE_NOTES["fig1"],
    ),
    ItemSpec(
        "fig1_probes",
        "Fig 1, probes alone: precision and accuracy per layer, with the hybrid reward and the"
        " text-only controls (before alignment)",
        "03_hybrid_reward",
        figure=FigureSpec(
            plots.plot_probe_layers,
            (
                FigureTable("layer_summary", "02_probes/probe_metrics.csv"),
                FigureTable("controls", "02_probes/control_metrics.csv"),
                FigureTable("hybrid", "03_hybrid_reward/hybrid_metrics.csv"),
            ),
            ("model_name",),
        ),
        paper_note=published.FIGURE_NOTES["fig1"],
    ),
    ItemSpec(
        "transfer",
        "Transfer: the reward, each layer's probe and the text-only controls, fit on this"
        " profile's pairs, scored on other labelled responses",
        "03_hybrid_reward",
        (
            TableSource(
                "threshold calibrated on the training side; held-out pairs and transfer set",
                "03_hybrid_reward/transfer.csv",
            ),
        ),
        FigureSpec(
            plots.plot_transfer,
            (FigureTable("transfer", "03_hybrid_reward/transfer.csv"),),
            ("model_name",),
        ),
        paper_note="Not in the paper: the suite's check that the reward recognises harm beyond"
        " the data it was fit on (docs/method.md, Transfer).",
        when_missing="no transfer set in this run: set data.transfer in the params (an optional"
        " one is left out when neither the hub nor a local copy can be read)",
    ),
    ItemSpec(
        "fig6",
        "Fig 6: toxic rate of the top-k samples picked by each reward strategy (oracle best layer,"
        " worst, last, random, gated)",
        "06_evaluation",
        (
            TableSource(
                "toxic rate of each strategy's top-k, reference samples of held-out-pair and"
                " red-team prompts",
                "06_evaluation/fig6_top_k.csv",
            ),
        ),
        FigureSpec(
            plots.plot_fig6_toxic_rates,
            (FigureTable("rates", "06_evaluation/fig6_top_k.csv"),),
            ("judge",),
        ),
        paper_note=published.FIGURE_NOTES["fig6"],
    ),
    ItemSpec(
        "fig6_pairwise",
        "Fig 6, pairwise form: held-out pairwise accuracy of each reward strategy",
        "03_hybrid_reward",
        (TableSource("pairwise accuracy", "03_hybrid_reward/fig6_strategies.csv"),),
        FigureSpec(
            plots.plot_reward_strategies,
            (FigureTable("strategy_summary", "03_hybrid_reward/fig6_strategies.csv"),),
        ),
        paper_note="The paper draws Fig 6 as toxic rates only (see Fig 6 above); this form is"
        " the suite's own, on held-out preference pairs, with no judge in the loop.",
    ),
    ItemSpec(
        "fig5",
        "Fig 5: rewards during training (SFT, vanilla DPO, cDPO)",
        "04_training",
        (
            TableSource("last steps of each run", "04_training/run_summary.csv", name="runs"),
            TableSource(
                "held-out implicit reward",
                "04_training/held_out_implicit_reward.csv",
                name="held_out",
            ),
        ),
        FigureSpec(
            plots.plot_training_curves,
            (FigureTable("metrics", "04_training/*/metrics.jsonl", key="run"),),
        ),
        paper_note=published.FIGURE_NOTES["fig5"],
    ),
    ItemSpec(
        "table1",
        "Table 1: toxic rate by policy, benchmark and judge",
        "06_evaluation",
        (TableSource("toxic rate, % [95% CI]", "06_evaluation/table1.csv"),),
        paper=published.table1,
        paper_note="Paper, Llama2-7B rows: toxic rate (%), SG = Llama-Guard-2, MJ = MD-Judge; its"
        " 'average' is the mean of the six cells, this run's 'average · all judges' when both"
        " judges ran.",
    ),
    ItemSpec(
        "table2",
        "Table 2: unsafe categories and toxic rate of the top-k samples, R_h vs a reward model",
        "05_sampling",
        (
            TableSource(
                "top-k by R_h (ours) and by the reward model (rm)", "05_sampling/table2_*.csv"
            ),
        ),
        FigureSpec(
            plots.plot_table2,
            (FigureTable("shares", "05_sampling/table2_{judge}.csv"),),
            ("judge",),
        ),
        paper=published.table2,
        paper_note="Paper, Llama2-7B, 8 samples per prompt: toxic rate (%) and, for sample-8,"
        " category shares (%); the other category cells are not legible in the paper's text.",
    ),
    ItemSpec(
        "fig4",
        "Fig 4: XSTest compliance and refusal on safe and unsafe prompts",
        "06_evaluation",
        (TableSource("shares", "06_evaluation/fig4_xstest.csv"),),
        FigureSpec(plots.plot_xstest, (FigureTable("shares", "06_evaluation/fig4_xstest.csv"),)),
        paper_note=published.FIGURE_NOTES["fig4"],
    ),
    ItemSpec(
        "table3",
        "Table 3: over-alignment (MMLU, general reward model)",
        "06_evaluation",
        (TableSource("MMLU accuracy and general rewards", "06_evaluation/table3.csv"),),
        paper=published.table3,
        paper_note="Paper, Llama2-7B (appendix A.1); 'cdpo_star' is the paper's 'Ours';"
        " RM-deberta = OpenAssistant/reward-model-deberta-v3-large-v2, FsfairX ="
        " sfairXC/FsfairX-LLaMA3-RM-v0.1 (a column each here when configured).",
    ),
    ItemSpec(
        "fig7",
        "Fig 7: extra compute per training sample, ours vs online sampling",
        "07_compute",
        (
            TableSource(
                "measured on this machine", "07_compute/fig7_measured.csv", name="measured"
            ),
            TableSource("analytic, Llama-2-7B", "07_compute/fig7_analytic.csv", name="analytic"),
        ),
        FigureSpec(
            plots.plot_fig7,
            (
                FigureTable("measured", "07_compute/fig7_measured.csv"),
                FigureTable("analytic", "07_compute/fig7_analytic.csv"),
            ),
            ("model_name",),
        ),
        paper_note=published.FIGURE_NOTES["fig7"],
    ),
)


def _matched(pattern: str, relative: Path) -> str:
    """What the `*` of `pattern` matched in the path `relative` ("04_training/*/metrics.jsonl"
    and "04_training/dpo/metrics.jsonl" -> "dpo")."""
    part, name = next(
        (p, n) for p, n in zip(Path(pattern).parts, relative.parts, strict=True) if "*" in p
    )
    head, tail = part.split("*", 1)
    return name[len(head) : len(name) - len(tail)]


def read_table(path: Path) -> pd.DataFrame:
    """A table as its notebook wrote it: CSV, or JSON lines (one row per line)."""
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        return pd.DataFrame([json.loads(line) for line in lines if line])
    return pd.read_csv(path)


def read_tables(outputs: Path, pattern: str, key: str = "") -> pd.DataFrame | None:
    """The files under `outputs` matching `pattern` as one table, stacked in name order, with a
    `key` column (when named) holding what the pattern's `*` matched in each; None if none."""
    outputs = Path(outputs)
    matches = sorted(outputs.glob(pattern))
    frames = [read_table(path) for path in matches]
    if key:
        frames = [
            frame.assign(**{key: _matched(pattern, path.relative_to(outputs))})
            for frame, path in zip(frames, matches, strict=True)
        ]
    return pd.concat(frames, ignore_index=True) if frames else None


def _read_tables(outputs: Path, source: TableSource) -> list[Table]:
    """One table per file matching the source's pattern (several when the name depends on the
    run, e.g. one Table 2 per judge), each naming its own file."""
    matches = sorted(outputs.glob(source.pattern))
    tables = []
    for path in matches:
        frame = pd.read_csv(path)
        if source.columns:
            frame = frame[[c for c in source.columns if c in frame.columns]]
        caption, name = source.caption, source.name
        if len(matches) > 1:
            varying = _matched(source.pattern, path.relative_to(outputs))
            caption, name = f"{caption} ({varying})", "_".join(filter(None, [name, varying]))
        tables.append(Table(caption, path.relative_to(outputs), frame, name))
    return tables


def _figure_tables(
    outputs: Path, figure: FigureSpec, labels: FigureLabels
) -> tuple[dict[str, pd.DataFrame], list[Path], list[str]]:
    """The tables a figure is drawn from, by argument; their files; the patterns matching none."""
    frames, sources, missing = {}, [], []
    for table in figure.tables:
        pattern = table.pattern.format(judge=labels.judge)
        frame = read_tables(outputs, pattern, table.key)
        if frame is None:
            missing.append(pattern)
            continue
        frames[table.argument] = frame
        sources += [path.relative_to(outputs) for path in sorted(outputs.glob(pattern))]
    return frames, sources, missing


def gather_item(outputs: Path, spec: ItemSpec, labels: FigureLabels) -> Item:
    """One paper item from the files under `outputs` (a profile's outputs directory)."""
    tables, missing = [], []
    for source in spec.tables:
        found = _read_tables(outputs, source)
        tables += found
        if not found:
            missing.append(source.pattern)
    frames, sources = {}, []
    if spec.figure is not None:
        frames, sources, absent = _figure_tables(outputs, spec.figure, labels)
        missing += [pattern for pattern in absent if pattern not in missing]
    return Item(spec, labels, tables, frames, sources, missing)


def gather(outputs: Path, labels: FigureLabels) -> list[Item]:
    """Every paper item in the paper's order of discussion (see `PAPER_ITEMS`)."""
    return [gather_item(Path(outputs), spec, labels) for spec in PAPER_ITEMS]


def draw_figure(item: Item) -> plt.Figure | None:
    """The item's figure drawn from its tables alone; None without a figure or its tables."""
    if not item.has_figure:
        return None
    figure = item.spec.figure
    labels = {name: getattr(item.labels, name) for name in figure.labels}
    return figure.draw(**item.figure_tables, **labels)


def write_item(item: Item, directory: Path) -> list[Path]:
    """Our tables (CSV + Markdown + LaTeX), the paper's beside them, and the figure (PNG + PDF,
    redrawn from its tables) under `directory`, named after the item."""
    written = []
    for table in item.tables:
        name = f"{item.spec.key}_{table.name}" if table.name else item.spec.key
        written += write_table(table.frame, directory / name, latex=True)
    paper = item.paper_table()
    if paper is not None:
        written += write_table(paper, directory / f"{item.spec.key}_paper", latex=True)
    figure = draw_figure(item)
    if figure is not None:
        written += save_figure(figure, directory / item.spec.key)
        plt.close(figure)
    return written


def write_index(items: list[Item], directory: Path) -> Path:
    """`results.json`: per item its title, the notebook that makes it, whether it ran, and the
    source files behind it (relative to the profile's outputs)."""
    index = [
        {
            "key": item.spec.key,
            "title": item.spec.title,
            "producer": item.spec.producer,
            "ran": item.ran,
            "sources": [str(p) for p in item.sources],
            "missing": item.missing,
        }
        for item in items
    ]
    return write_json(directory / "results.json", index)


def missing_note(item: Item) -> str:
    """Why an item has no files: its own note, or the notebook to run."""
    return item.spec.when_missing or f"run notebook {item.spec.producer} first"


def overview(items: list[Item]) -> pd.DataFrame:
    """One row per paper item: which notebook makes it, whether it ran, its source files."""
    return pd.DataFrame(
        [
            {
                "item": item.spec.title.split(":")[0],
                "notebook": item.spec.producer,
                "status": "ran" if item.ran else "not yet run",
                "sources": ", ".join(map(str, item.sources)) or "-",
            }
            for item in items
        ]
    )


def show(item: Item, directory: Path) -> None:
    """Display an item in a notebook: our tables with their sources, the paper's, and the figure
    `write_item` drew into `directory`."""
    from IPython.display import Image, Markdown, display

    display(Markdown(f"### {item.spec.title}"))
    if not item.ran:
        display(Markdown(f"**not yet run**: {missing_note(item)}"))
    for table in item.tables:
        display(Markdown(f"This run, {table.caption} (`{table.source}`):"), table.frame)
    display(Markdown(f"Paper: {item.spec.paper_note}"))
    paper = item.paper_table()
    if paper is not None:
        display(paper)
    figure = Path(directory) / f"{item.spec.key}.png"
    if item.has_figure and figure.is_file():
        sources = ", ".join(f"`{source}`" for source in item.figure_sources)
        display(Markdown(f"Drawn from {sources}:"), Image(filename=str(figure)))
