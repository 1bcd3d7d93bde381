"""The artifact contract: atomic writes, run manifests, and clear errors for missing inputs.

Each notebook writes only under `outputs/<profile>/<notebook>/`. Every file is written to a temporary
name in the same directory and renamed into place, so a run killed at any point never leaves a
half-written file that a later run would trust. A write that runs out of disk space is a
`DiskFullError` naming the file; an artifact that exists but can't be read is a `CorruptArtifactError`
naming it and the notebook to rerun.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from repsafe_lib.locks import acquire, launched_rank, notebook_lock_path, release
from repsafe_lib.paths import notebook_dir, repo_root

TRACKED_PACKAGES = ("torch", "transformers", "scikit-learn", "numpy", "accelerate", "datasets")


class MissingArtifactError(FileNotFoundError):
    """An upstream artifact is absent: the message says which notebook makes it."""


class CorruptArtifactError(ValueError):
    """An artifact exists but can't be read (cut off, overwritten, edited by hand): the message
    names the file (and line) and the notebook that rewrites it."""


class DiskFullError(OSError):
    """A write ran out of space (ENOSPC, or EDQUOT for a quota); `str()` is one line naming the file."""

    def __init__(self, path: Path, code: int):
        super().__init__(
            code,
            f"{path}: no space left on the device (the file was not replaced); free space on"
            " that disk and rerun",
            str(path),
        )

    def __str__(self) -> str:
        return self.strerror


NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
NOTEBOOK_DIR = re.compile(r"^\d{2}_[a-z0-9_]+$")


def producing_notebook(path: str | Path) -> str | None:
    """The `NN_name` notebook whose directory (`outputs/<profile>/NN_name/...`) holds `path`."""
    return next((p.name for p in Path(path).parents if NOTEBOOK_DIR.match(p.name)), None)


def corrupt_artifact(
    path: str | Path, problem: object, *, producer: str | None = None, line: int | None = None
) -> CorruptArtifactError:
    """The one-line error for an unreadable artifact: where, what, and which notebook rewrites it."""
    where = f"{path}, line {line}" if line is not None else str(path)
    producer = producer or producing_notebook(path)
    remedy = f"rerun notebook {producer}" if producer else "rerun the notebook that wrote it"
    return CorruptArtifactError(f"{where}: {' '.join(str(problem).split())}; {remedy}")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it into place, else delete it.

    Running out of disk space anywhere in between raises `DiskFullError` naming `path`; the file
    that was there before stays as it was.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name keeps the real suffix: some writers (papermill) check it.
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; artifacts are ordinary files
        os.replace(tmp, path)
    except OSError as error:
        if error.errno in NO_SPACE and not isinstance(error, DiskFullError):
            raise DiskFullError(path, error.errno) from error
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | Path, *, shared: bool = False) -> Iterator[Path]:
    """Yield an empty staging directory beside `path`; on success it replaces `path` whole, else
    it is deleted, so the directory is complete or absent.

    One writer (`shared=False`) stages under a fixed name, so a staging directory left by a
    killed writer is cleared by the next. A `shared` cache (one machine-wide model cache) may be
    filled by several processes at once: each stages under its own name and the first to finish
    wins, the others' copies are dropped.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if shared:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    else:
        staging = path.with_name(f".{path.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    try:
        yield staging
        if not shared:
            shutil.rmtree(path, ignore_errors=True)
        try:
            staging.rename(path)
        except OSError:
            if not (shared and path.exists()):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, value: Any) -> Path:
    return write_text(path, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str | Path, *, producer: str) -> Any:
    """A JSON artifact; a missing or unparsable file is an error naming it and `producer`."""
    data = require_artifact(path, producer=producer).read_bytes()
    try:
        return json.loads(data)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise corrupt_artifact(path, f"not valid JSON ({error})", producer=producer) from None


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


_LATEX_ESCAPES = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(c, c) for c in text)


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
    """One notebook's run: its output directory, its lock, its clock, and its manifest.

    The run holds the notebook's lock (`locks.notebook_lock_path`) from here until `finish` or the
    end of the process, so the same notebook of the same profile never runs twice at once; a second
    process stops here with `locks.RunLockedError` naming the holder. Rerunning the notebook in the
    same kernel takes the lock again.

    >>> run = Run(params, "01_representations")   # doctest: +SKIP
    >>> run.path("pca_kde")                       # outputs/<profile>/01_representations/pca_kde
    >>> run.finish(extra={"n_examples": 600})      # writes manifest.json
    """

    def __init__(self, params, notebook: str):
        self.params, self.notebook = params, notebook
        self.dir = notebook_dir(params.profile, notebook)
        self.lock_file = notebook_lock_path(params.profile, notebook)
        if launched_rank() == 0:
            acquire(self.lock_file)
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
        saved = Saved((write_json(self.path("manifest.json"), manifest),))
        release(self.lock_file)
        return saved
