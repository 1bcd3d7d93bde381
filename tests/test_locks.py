"""One writer per outputs directory: a second pipeline on a profile, or a second process running a
notebook that another one is running, stops at once naming the holder; a killed holder leaves no
stale lock (docs/reliability.md)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from test_reliability import kill_process_tree

from repsafe_lib import artifacts, paths, pipeline

ROOT = paths.repo_root()
# A notebook's first lines, run by hand in another kernel: it holds the notebook's Run until killed.
HOLD_RUN = """
import sys
from repsafe_lib.artifacts import Run
from repsafe_lib.params import load_params
Run(load_params("params/tiny.yaml"), sys.argv[1])
print("HOLDING", flush=True)
sys.stdin.read()
"""


def lock_file(name: str):
    return paths.profile_dir("tiny") / ".locks" / f"{name}.lock"


def hold_run(notebook: str) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_RUN, notebook],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "HOLDING\n"
    return holder


def test_a_notebook_another_process_is_running_is_refused_naming_the_holder(tiny_params):
    holder = hold_run("04_training")
    try:
        with pytest.raises(RuntimeError) as refused:
            artifacts.Run(tiny_params, "04_training")
        artifacts.Run(tiny_params, "03_hybrid_reward").finish()  # other notebooks are free
    finally:
        kill_process_tree(holder)
    assert type(refused.value).__name__ == "RunLockedError"
    message = str(refused.value)
    assert message.startswith(
        f"{lock_file('04_training')}: another run holds this lock: pid {holder.pid} on"
        f" {socket.gethostname()}, started "
    ), message
    assert "from repsafe_lib.artifacts import Run" in message  # its command line
    assert message.endswith(
        "; wait for it to finish or stop it, then run again (the lock goes with its process)"
    )
    assert "\n" not in message
    artifacts.Run(tiny_params, "04_training").finish()  # killed with SIGKILL: no stale lock


def test_a_rerun_in_the_same_process_takes_the_lock_again_and_finish_gives_it_back(tiny_params):
    artifacts.Run(tiny_params, "04_training")
    rerun = artifacts.Run(tiny_params, "04_training")  # the notebook run again in its kernel
    other = subprocess.run(
        [sys.executable, "-c", HOLD_RUN, "04_training"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 1 and other.stdout == ""
    assert other.stderr.splitlines()[-1].startswith(
        f"repsafe_lib.locks.RunLockedError: {lock_file('04_training')}: another run holds this"
        f" lock: pid {os.getpid()} on "
    ), other.stderr
    rerun.finish()
    kill_process_tree(hold_run("04_training"))  # finished: another process may run the notebook now


def test_a_second_pipeline_on_the_profile_stops_at_once_naming_the_holder(capsys):
    first = subprocess.Popen(
        [sys.executable, "-m", "repsafe_lib.pipeline", "--params", "params/tiny.yaml"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert first.stdout.readline() == "[repsafe] tiny: running 00_data.ipynb\n"
        assert pipeline.main(["--params", "params/tiny.yaml", "--only", "00"]) == 1
    finally:
        kill_process_tree(first)
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith(
        f"[repsafe] {lock_file('pipeline')}: another run holds this lock: pid {first.pid} on"
        f" {socket.gethostname()}, started "
    ), line
    assert "-m repsafe_lib.pipeline --params params/tiny.yaml)" in line
    assert "running" not in captured.out, "the second run must start no notebook"

    from repsafe_lib import locks  # the holder was killed with SIGKILL: no stale lock is left

    locks.release(locks.acquire(lock_file("pipeline")))
