"""A run's per-step metrics log, `metrics.jsonl`, and its summary.

Each step's row is appended as one whole line and synced to disk before that step's checkpoint,
so a kill cuts off at most the last line; a resumed run keeps the rows its checkpoint took and
drops a cut-off last line with a warning. The notebooks draw Fig 5 from these rows.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from repsafe_lib.artifacts import CorruptArtifactError, atomic_path

log = logging.getLogger(__name__)

# Metrics that measure the machine, not the run: left out when runs are compared.
TIMING_METRICS = ("seconds", "tokens_per_s")


def write_metrics(path: Path, rows: list[dict]) -> None:
    """`rows` as the whole log at `path`, one JSON line each, replacing it atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def append_line(path: Path, line: str) -> None:
    """`line` and a newline at the end of `path`, on disk before this returns, so a kill can cut
    off at most the line being written (which `read_logged_metrics` then drops)."""
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_logged_metrics(path: Path, before_step: int, checkpoint: Path | None) -> list[dict]:
    """The logged rows of steps 0 .. before_step - 1, which `checkpoint` (at `before_step`) took.

    A last line cut off by a killed run (no newline, or not JSON) is dropped with a warning; any
    other bad line, or steps that don't run 0, 1, 2, ... once each, is an error naming the file and
    line (a resumed run's summary and Fig 5 are drawn from these rows)."""
    if before_step == 0:
        return []
    remedy = f"delete {checkpoint.parent} to train this run afresh"
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # a whole log ends with a newline
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = _metrics_row(line)
        except ValueError as error:
            if number == len(lines):
                log.warning("%s, line %d: dropped, cut off by an interrupted run", path, number)
                break
            raise CorruptArtifactError(f"{path}, line {number}: {error}; {remedy}") from None
        if row["step"] >= before_step:
            continue  # logged after the checkpoint: the resumed run logs it again
        if row["step"] != len(rows):
            raise CorruptArtifactError(
                f"{path}, line {number}: step {row['step']} where step {len(rows)} was due"
                f" (did two runs write this log?); {remedy}"
            )
        rows.append(row)
    if len(rows) < before_step:
        raise CorruptArtifactError(
            f"{path}: holds {len(rows)} of the {before_step} steps that {checkpoint} has taken;"
            f" {remedy}"
        )
    return rows


def _metrics_row(line: str) -> dict:
    try:
        row = json.loads(line)
    except ValueError as error:
        raise ValueError(f"not JSON ({error})") from None
    if not isinstance(row, dict) or type(row.get("step")) is not int:
        raise ValueError("not a metrics row (an object with an integer 'step')")
    return row


def run_summary(name: str, metrics: list[dict], training, window: int = 10) -> dict:
    """Steps, time, throughput, and each metric's mean over the last `window` steps."""
    last = metrics[-window:]
    keys = [k for k in metrics[0] if k not in ("step", *TIMING_METRICS)]
    return {
        "run": name,
        "steps": len(metrics),
        "seconds": round(sum(m["seconds"] for m in metrics), 1),
        "tokens_per_s": round(float(np.median([m["tokens_per_s"] for m in metrics])), 1),
        "final": {
            k: float(np.mean([m[k] for m in last if m.get(k) is not None]))
            for k in keys
            if any(m.get(k) is not None for m in last)
        },
        "beta": training.beta,
        "learning_rate": training.learning_rate,
        "batch_size": training.batch_size,
    }
