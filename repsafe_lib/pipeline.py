"""Run the numbered notebooks in order with papermill: `python -m repsafe_lib.pipeline --params FILE`.

Only notebooks inside the repository's `notebooks/` directory are run. Executed copies go to
`outputs/<profile>/executed/`, and the wall time of each notebook to `outputs/<profile>/run_times.json`.
A failing notebook stops the run with one line naming its cell and error (exit status 1); its executed
copy, traceback included, is kept as `executed/NN_name.failed.ipynb`. An outputs directory that can't
be written stops the run before any kernel starts. A run that completes ends by writing the HTML
report, `outputs/<profile>/report/index.html` (`repsafe_lib.report`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from repsafe_lib.artifacts import atomic_path, write_json
from repsafe_lib.params import ParamsError, load_params
from repsafe_lib.paths import profile_dir, repo_root
from repsafe_lib.report import build_report

NOTEBOOK_NAME = re.compile(r"^\d{2}_[a-z0-9_]+\.ipynb$")


def numbered_notebooks(directory: Path | None = None) -> list[Path]:
    """`notebooks/NN_name.ipynb` in run order."""
    directory = directory or repo_root() / "notebooks"
    return sorted(p for p in directory.iterdir() if NOTEBOOK_NAME.match(p.name))


def select_notebooks(notebooks: list[Path], only: list[str] | None) -> list[Path]:
    """Keep those whose number or name is in `only` (e.g. ["00", "01_representations"])."""
    if not only:
        return notebooks
    chosen = [nb for nb in notebooks if nb.stem[:2] in only or nb.stem in only]
    if len(chosen) != len(only):
        known = ", ".join(nb.stem for nb in notebooks)
        raise SystemExit(f"unknown notebook in {only}; available: {known}")
    return chosen


class NotebookFailed(RuntimeError):
    """A notebook raised: the message is the one line to show."""


def run_notebook(notebook: Path, params_file: str, executed_dir: Path) -> float:
    """Execute one notebook with `params_file` injected; returns its wall time in seconds."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    root = (repo_root() / "notebooks").resolve()
    if notebook.resolve().parent != root:
        raise ValueError(f"refusing to run {notebook}: only notebooks in {root} are run")
    started = time.perf_counter()
    failed = executed_dir / f"{notebook.stem}.failed.ipynb"
    with atomic_path(executed_dir / notebook.name) as tmp:
        try:
            papermill.execute_notebook(
                str(notebook),
                str(tmp),
                parameters={"params_file": params_file},
                cwd=str(repo_root()),
                kernel_name="python3",
                progress_bar=False,
            )
        except PapermillExecutionError as error:
            os.replace(tmp, failed)  # the full traceback stays readable; no later run reads it
            raise NotebookFailed(
                f"{notebook.name} failed in cell [{error.exec_count}]: {error.ename}: "
                f"{error.evalue}\n[repsafe] traceback: {failed}"
            ) from error
    failed.unlink(missing_ok=True)
    return time.perf_counter() - started


def check_writable(directory: Path) -> None:
    """Raise OSError now if `directory` can't be created or written (rather than mid-run)."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory):
        pass


def record_run_times(path: Path, times: dict[str, float]) -> None:
    """Merge this run's wall times into the profile's record (a partial `--only` run keeps the rest)."""
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded.pop("total", None)
    recorded.update(times)
    recorded["total"] = round(sum(recorded.values()), 1)
    write_json(path, recorded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params/smol.yaml", help="params YAML file")
    parser.add_argument("--only", nargs="*", help="notebook numbers or names to run")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)  # fail fast on bad params, before any kernel starts
    except ParamsError as error:
        print(f"[repsafe] {error}", file=sys.stderr)
        return 2
    executed = profile_dir(params.profile) / "executed"
    try:
        check_writable(executed)
    except OSError as error:
        print(f"[repsafe] can't write the outputs directory {executed}: {error}", file=sys.stderr)
        return 1
    times = {}
    for notebook in select_notebooks(numbered_notebooks(), args.only):
        print(f"[repsafe] {params.profile}: running {notebook.name}", flush=True)
        try:
            times[notebook.stem] = round(run_notebook(notebook, params.source_file, executed), 1)
        except NotebookFailed as error:
            print(f"[repsafe] {error}", file=sys.stderr)
            return 1
        print(f"[repsafe] {notebook.name} done in {times[notebook.stem]:.1f} s", flush=True)
    print(f"[repsafe] {params.profile}: {len(times)} notebooks in {sum(times.values()):.1f} s")
    record_run_times(profile_dir(params.profile) / "run_times.json", times)
    print(f"[repsafe] report: {build_report(params)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
