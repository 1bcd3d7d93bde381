"""Run the numbered notebooks in order with papermill: `python -m repsafe_lib.pipeline --params FILE`.

Only notebooks inside the repository's `notebooks/` directory are run. Executed copies go to
`outputs/<profile>/executed/`, and the wall time of each notebook to `outputs/<profile>/run_times.json`.
A failing notebook stops the run with one line naming its cell and error (exit status 1); its executed
copy, traceback included, is kept as `executed/NN_name.failed.ipynb`. An outputs directory that can't
be written stops the run before any kernel starts. A run that completes ends by writing the HTML
report, `outputs/<profile>/report/index.html` (`repsafe_lib.report`).

`--only NN [NN ...]` runs the notebooks given by number or name, in run order; a notebook named twice
runs once, and a name that matches no notebook stops the run before anything starts (exit status 2,
as does `--only` with no names). Ctrl-C stops the run with exit status 130 and one line naming the
notebook that was running and the `--only` command that resumes from it: its kernel is shut down,
every file written so far is whole (each is written under a temporary name and renamed into place)
and training checkpoints are kept, so the rerun continues from the newest one. A full disk stops the
run with one line naming the file that could not be written (exit status 1).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shlex
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from repsafe_lib.artifacts import DiskFullError, atomic_path, write_json
from repsafe_lib.locks import RunLockedError, acquire, pipeline_lock_path, release
from repsafe_lib.params import ParamsError, load_params
from repsafe_lib.paths import profile_dir, repo_root
from repsafe_lib.report import build_report, read_run_times

NOTEBOOK_NAME = re.compile(r"^\d{2}_[a-z0-9_]+\.ipynb$")


def numbered_notebooks(directory: Path | None = None) -> list[Path]:
    """`notebooks/NN_name.ipynb` in run order."""
    directory = directory or repo_root() / "notebooks"
    return sorted(p for p in directory.iterdir() if NOTEBOOK_NAME.match(p.name))


def select_notebooks(notebooks: list[Path], only: list[str] | None) -> list[Path]:
    """Those whose number or name is in `only` (e.g. ["00", "01_representations"]), in run order and
    each once however often it is named; all of them when `only` is None."""
    if only is None:
        return notebooks
    known = ", ".join(nb.stem for nb in notebooks)
    unknown = [name for name in only if not any(name in (nb.stem[:2], nb.stem) for nb in notebooks)]
    if unknown or not only:
        given = f"unknown notebook {unknown[0]!r}" if unknown else "no notebook given"
        raise ValueError(f"--only: {given}; available: {known}")
    return [nb for nb in notebooks if nb.stem[:2] in only or nb.stem in only]


class NotebookFailed(RuntimeError):
    """A notebook raised: the message is the one line to show."""


# Loggers that report the kernel shutdown a Ctrl-C causes ("Kernel died", and asyncio's "Task
# exception was never retrieved" for the cell that was waiting on it). They stay off after a Ctrl-C:
# asyncio's warning comes only when that task is collected, as the process ends.
SHUTDOWN_LOGGERS = ("papermill", "nbclient", "asyncio")


def _interrupt_quietly(signum, frame):
    for name in SHUTDOWN_LOGGERS:
        logging.getLogger(name).disabled = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def quiet_interrupt():
    """Ctrl-C raises KeyboardInterrupt as usual, but silences what papermill logs as it shuts the
    kernel down, so the pipeline's own line is all that is printed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _interrupt_quietly)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_notebook(notebook: Path, params_file: str, executed_dir: Path) -> float:
    """Execute one notebook with `params_file` injected; returns its wall time in seconds."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    root = (repo_root() / "notebooks").resolve()
    if notebook.resolve().parent != root:
        raise ValueError(f"refusing to run {notebook}: only notebooks in {root} are run")
    started = time.perf_counter()
    failed = executed_dir / f"{notebook.stem}.failed.ipynb"
    with atomic_path(executed_dir / notebook.name) as tmp, quiet_interrupt():
        try:
            papermill.execute_notebook(
                str(notebook),
                str(tmp),
                parameters={"params_file": params_file},
                cwd=str(repo_root()),
                kernel_name="python3",
                progress_bar=False,
                # The kernel's own log (not the notebook's output) only adds noise to the terminal:
                # a transport warning on every start, and a traceback when Ctrl-C shuts it down
                # mid-cell. A kernel that dies is reported here all the same.
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
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
    """Merge this run's wall times into the profile's record (a partial `--only` run keeps the rest).
    A record that can't be read is replaced by this run's times, with a warning: it holds only times."""
    try:
        recorded = read_run_times(path)
    except ValueError as error:
        print(f"[repsafe] warning: {error}; starting a fresh record", file=sys.stderr)
        recorded = {}
    recorded.pop("total", None)
    recorded.update(times)
    recorded["total"] = round(sum(recorded.values()), 1)
    write_json(path, recorded)


def resume_command(params_arg: str, remaining: list[Path]) -> str:
    only = " ".join(nb.stem[:2] for nb in remaining)
    return f"python -m repsafe_lib.pipeline --params {shlex.quote(params_arg)} --only {only}"


def interrupted_message(notebook: Path, remaining: list[Path], params_arg: str) -> str:
    return (
        f"[repsafe] interrupted while running {notebook.name}; files written so far are whole and"
        f" training checkpoints are kept; resume with: {resume_command(params_arg, remaining)}"
    )


def run_selected(params, selected: list[Path], executed: Path, params_arg: str) -> int:
    """Run `selected` in order, then record their times and write the report; the exit status.
    Every fault is one line on stderr: a failing notebook (1), a full disk (1), Ctrl-C (130)."""
    times = {}
    try:
        for position, notebook in enumerate(selected):
            print(f"[repsafe] {params.profile}: running {notebook.name}", flush=True)
            try:
                times[notebook.stem] = round(
                    run_notebook(notebook, params.source_file, executed), 1
                )
            except KeyboardInterrupt:  # papermill has shut the kernel down by now
                remaining = selected[position:]
                print(interrupted_message(notebook, remaining, params_arg), file=sys.stderr)
                return 130
            print(f"[repsafe] {notebook.name} done in {times[notebook.stem]:.1f} s", flush=True)
        print(f"[repsafe] {params.profile}: {len(times)} notebooks in {sum(times.values()):.1f} s")
        record_run_times(profile_dir(params.profile) / "run_times.json", times)
        print(f"[repsafe] report: {build_report(params)}")
    except (NotebookFailed, DiskFullError) as error:
        print(f"[repsafe] {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params/smol.yaml", help="params YAML file")
    parser.add_argument("--only", nargs="+", help="notebook numbers or names to run")
    args = parser.parse_args(argv)
    try:
        selected = select_notebooks(numbered_notebooks(), args.only)
    except ValueError as error:
        print(f"[repsafe] {error}", file=sys.stderr)
        return 2
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
    lock = pipeline_lock_path(params.profile)
    try:
        acquire(lock)  # held until this run ends; a second pipeline on the profile stops here
    except RunLockedError as error:
        print(f"[repsafe] {error}", file=sys.stderr)
        return 1
    try:
        return run_selected(params, selected, executed, args.params)
    finally:
        release(lock)


if __name__ == "__main__":
    sys.exit(main())
