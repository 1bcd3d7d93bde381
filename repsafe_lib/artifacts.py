"""The artifact contract: atomic writes, run manifests, and clear errors for missing inputs.

Each notebook writes only under `outputs/<profile>/<notebook>/`. Every file is written to a temporary
name in the same directory and renamed into place, so a run killed at any point never leaves a
half-written file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from repsafe_lib.paths import notebook_dir, repo_root

TRACKED_PACKAGES = ("torch", "transformers", "scikit-learn", "numpy", "accelerate", "datasets")


class MissingArtifactError(FileNotFoundError):
    """An upstream artifact is absent: the message says which notebook makes it."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it into place, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name keeps the real suffix: some writers (papermill) check it.
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; artifacts are ordinary files
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, value: Any) -> Path:
    return write_text(path, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str | Path, *, producer: str) -> Any:
    return json.loads(require_artifact(path, producer=producer).read_text(encoding="utf-8"))


def pd_is_numeric(column) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(column) and not is_bool_dtype(column)


class Saved(tuple):
    """Paths just written; shows as one short line when it ends a notebook cell."""

    def __repr__(self) -> str:
        return "saved " + ", ".join(_short(path) for path in self)


def _short(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)


def write_table(
    df, path_stem: str | Path, *, float_format: str = "%.4f", latex: bool = False
) -> Saved:
    """A DataFrame as CSV and Markdown, and LaTeX when asked (fixed decimals, so regenerated
    tables diff cleanly)."""
    stem = Path(path_stem)
    csv = write_text(stem.with_suffix(".csv"), df.to_csv(index=False, float_format=float_format))
    shown = df.copy()
    for column in shown.select_dtypes("float").columns:
        shown[column] = shown[column].map(lambda v: float_format % v)
    align = ["right" if pd_is_numeric(df[c]) else "left" for c in df.columns]
    markdown = shown.to_markdown(index=False, disable_numparse=True, colalign=align)
    written = [csv, write_text(stem.with_suffix(".md"), markdown + "\n")]
    if latex:
        written.append(write_text(stem.with_suffix(".tex"), latex_tabular(shown, align)))
    return Saved(written)


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _latex_row(cells) -> str:
    return " & ".join(latex_escape(str(cell)) for cell in cells) + r" \\"


def latex_tabular(shown, align: list[str]) -> str:
    """A booktabs tabular of already-formatted cells (no pandas Styler: its output varies)."""
    spec = "".join("r" if a == "right" else "l" for a in align)
    body = [_latex_row(shown.columns), r"\midrule", *map(_latex_row, shown.itertuples(False))]
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", *body, r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def save_figure(fig, path_stem: str | Path) -> Saved:
    """A matplotlib figure as PNG (for the report) and PDF (for the paper)."""
    stem, written = Path(path_stem), []
    for suffix, options in ((".png", {"dpi": 150}), (".pdf", {})):
        target = stem.with_suffix(suffix)
        with atomic_path(target) as tmp:
            fig.savefig(
                tmp,
                format=suffix[1:],
                bbox_inches="tight",
                metadata=_figure_metadata(suffix),
                **options,
            )
        written.append(target)
    return Saved(written)


def _figure_metadata(suffix: str) -> dict:
    # Fixed metadata keeps PDFs byte-identical across runs (no creation date).
    return {"CreationDate": None} if suffix == ".pdf" else {"Software": None}


def require_artifact(path: str | Path, *, producer: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError(f"{path} is missing: run notebook {producer} first")
    return path


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo_root(),
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class Run:
    """One notebook's run: its output directory, its clock, and its manifest.

    >>> run = Run(params, "01_representations")   # doctest: +SKIP
    >>> run.path("pca_kde")                       # outputs/<profile>/01_representations/pca_kde
    >>> run.finish(extra={"n_examples": 600})      # writes manifest.json
    """

    def __init__(self, params, notebook: str):
        self.params, self.notebook = params, notebook
        self.dir = notebook_dir(params.profile, notebook)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()

    def path(self, name: str) -> Path:
        return self.dir / name

    def upstream(self, notebook: str, name: str) -> Path:
        """A file written by an earlier notebook of the same profile (must exist)."""
        return require_artifact(
            notebook_dir(self.params.profile, notebook) / name, producer=notebook
        )

    def finish(self, extra: dict | None = None) -> Saved:
        manifest = {
            "notebook": self.notebook,
            "profile": self.params.profile,
            "params_file": self.params.source_file,
            "params_hash": self.params.fingerprint(),
            "seed": self.params.seed,
            "git_commit": git_commit(),
            "versions": package_versions(),
            "python": platform.python_version(),
            "machine": f"{platform.machine()} {platform.system()} ({os.cpu_count()} cores)",
            "wall_time_s": round(time.perf_counter() - self.started, 1),
            **(extra or {}),
        }
        return Saved((write_json(self.path("manifest.json"), manifest),))
