"""One line for every fault the pipeline meets: a cut-off or corrupt artifact names the file (and
line) and the notebook to rerun; a corrupt run record is shown or replaced, not a traceback; a full
disk names the file it could not write; Ctrl-C names the notebook and the command that resumes; and
`--only` says exactly what it will run."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from repsafe_lib import hidden_states as hs
from repsafe_lib import hybrid_reward, paths, pipeline, probes, report
from repsafe_lib.artifacts import write_json, write_text
from repsafe_lib.records import PreferencePair, read_records, write_records

pytestmark = pytest.mark.reliability

ROOT = paths.repo_root()
NOTEBOOKS = ", ".join(nb.stem for nb in pipeline.numbered_notebooks())


def one_line(text: str) -> str:
    (line,) = text.strip().splitlines()
    return line


def pair(i: int) -> PreferencePair:
    return PreferencePair(f"p{i}", f"prompt {i}", "a safe answer", "an unsafe answer", ("S1",))


# ---------------------------------------------------------------------------------------------
# Artifacts that exist but can't be read.


def test_cut_off_records_file_names_the_line_and_the_notebook_to_rerun(tmp_path):
    path = tmp_path / "00_data" / "pairs_train.jsonl"
    write_records(path, [pair(0), pair(1), pair(2)])
    whole = path.read_text(encoding="utf-8")
    path.write_text(whole[: whole.index("\n") + 30], encoding="utf-8")  # killed mid-line 2
    with pytest.raises(ValueError) as raised:
        read_records(path, PreferencePair, producer="00_data")
    message = one_line(str(raised.value))
    assert message.startswith(f"{path}, line 2: not JSON (Unterminated string"), message
    assert message.endswith("; rerun notebook 00_data"), message


def test_record_with_a_wrong_field_names_the_line_and_the_field(tmp_path):
    path = tmp_path / "pairs_test.jsonl"
    write_records(path, [pair(0), pair(1)])
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"prompt"', '"promt"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        read_records(path, PreferencePair, producer="00_data")
    assert str(raised.value) == (
        f"{path}, line 2: not a PreferencePair record (PreferencePair.__init__() got an unexpected"
        " keyword argument 'promt'); rerun notebook 00_data"
    )


def test_cut_off_json_artifact_names_it_and_the_notebook_to_rerun(tmp_path):
    index = tmp_path / "01_representations" / "states.json"
    write_text(index, '{"file": "states-0123.safetensors", "ke')
    with pytest.raises(ValueError) as raised:
        hs.load_states(index.parent)
    assert str(raised.value) == (
        f"{index}: not valid JSON (Unterminated string starting at: line 1 column 37 (char 36));"
        " rerun notebook 01_representations"
    )


def test_corrupt_probes_file_names_it_and_notebook_02(tmp_path):
    stem = tmp_path / "02_probes" / "probes"
    split = {"index": 0, "seed": 0, "train_rows": [0, 1], "test_rows": [2, 3]}
    write_json(stem.with_suffix(".json"), {"layers": [1, 2], "splits": [split]})
    weights = stem.with_suffix(".safetensors")
    weights.write_bytes(b"\xff" * 64)  # what "header too large" looks like on disk
    with pytest.raises(ValueError) as raised:
        probes.load_probe_sets(stem)
    assert str(raised.value) == (
        f"{weights}: not a safetensors file (Error while deserializing header: header too large);"
        " rerun notebook 02_probes"
    )


def test_cut_off_hybrid_reward_names_it_and_the_notebook_that_wrote_it(tmp_path):
    config = hybrid_reward.HybridRewardConfig(layers=(1, 2), hidden_size=4)
    stem = tmp_path / "04_training" / "cdpo" / "hybrid_reward-0"
    weights, _ = hybrid_reward.save_hybrid_reward(hybrid_reward.HybridReward(config), stem)
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError) as raised:
        hybrid_reward.load_hybrid_reward(stem)
    message = one_line(str(raised.value))
    assert message.startswith(f"{weights}: not a safetensors file (Error while deserializing")
    assert message.endswith("; rerun notebook 04_training"), message


def test_corrupt_manifest_and_run_times_show_as_unreadable_in_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("REPSAFE_OUTPUTS", str(tmp_path))
    outputs = tmp_path / "tiny"
    write_json(outputs / "00_data" / "manifest.json", {"seed": 7, "git_commit": "0123456789ab"})
    broken = outputs / "02_probes" / "manifest.json"
    write_text(broken, '{"notebook": "02_pro')  # cut off
    times = outputs / "run_times.json"
    write_text(times, '["not", "a", "record"]\n')
    assert report.main(["--params", "params/tiny.yaml"]) == 0
    page = (outputs / "report" / "index.html").read_text(encoding="utf-8")
    assert (
        f"unreadable: {broken}: not valid JSON (Unterminated string starting at: line 1 column 14"
        " (char 13)); rerun notebook 02_probes"
    ) in page
    assert f"unreadable: {times}: a JSON list, not an object;" in page
    assert "0123456789" in page  # the readable manifest is still shown


def test_corrupt_run_times_warn_and_start_a_fresh_record(tmp_path, capsys):
    record = tmp_path / "run_times.json"
    record.write_text('{"00_data": 2.0, "01_repr')  # cut off by hand or by a full disk
    pipeline.record_run_times(record, {"02_probes": 3.5})
    assert json.loads(record.read_text()) == {"02_probes": 3.5, "total": 3.5}
    assert one_line(capsys.readouterr().err) == (
        f"[repsafe] warning: {record}: not valid JSON (Unterminated string starting at: line 1"
        " column 18 (char 17)); starting a fresh record"
    )
    record.write_text('{"00_data": "fast"}')
    pipeline.record_run_times(record, {"02_probes": 3.5})
    assert json.loads(record.read_text()) == {"02_probes": 3.5, "total": 3.5}
    assert "'00_data' is 'fast', not a number of seconds" in capsys.readouterr().err


def test_report_names_a_file_standing_where_the_profile_directory_should_be(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("REPSAFE_OUTPUTS", str(tmp_path))
    (tmp_path / "tiny").write_text("not a directory\n")
    assert report.main(["--params", "params/tiny.yaml"]) == 1
    assert one_line(capsys.readouterr().err) == (
        f"[repsafe] nothing to report: {tmp_path / 'tiny'} is a file, not a directory; move it"
        " away and run `make reproduce PROFILE=tiny`"
    )


# ---------------------------------------------------------------------------------------------
# Hidden-state cache: values beyond float16 are refused before they are cached.


def test_states_beyond_float16_are_refused_before_caching(tiny_model, tmp_path, monkeypatch):
    def overflowing(model, tokenizer, texts, *, layers, **options):
        states = torch.zeros(len(texts), len(layers), model.config.hidden_size)
        states[0, 0, 0] = 1e6
        return states

    monkeypatch.setattr(hs, "extract_hidden_states", overflowing)
    with pytest.raises(ValueError) as raised:
        hs.cached_hidden_states(
            tiny_model.model,
            tiny_model.tokenizer,
            ["a", "b"],
            model_fingerprint="m",
            cache_dir=tmp_path,
            layers=[1],
            max_length=16,
            batch_size=2,
            progress=False,
        )
    message = str(raised.value)
    assert message.startswith(f"{tmp_path}/states-") and "largest magnitude 1e+06" in message
    assert not list(tmp_path.iterdir()), "nothing may be cached"


def test_extraction_refuses_a_state_float16_cannot_hold_naming_its_text(tiny_model, tmp_path):
    _, _, norm = hs.decoder_parts(tiny_model.model)
    texts = ["a", "b", "c"]
    saved = norm.weight.detach().clone()
    try:
        with torch.no_grad():
            norm.weight.fill_(1e6)  # the last layer's state is the final norm's output
        with pytest.raises(ValueError) as raised:
            hs.cached_hidden_states(
                tiny_model.model,
                tiny_model.tokenizer,
                texts,
                model_fingerprint="m",
                cache_dir=tmp_path,
                layers=[1, tiny_model.num_layers],
                max_length=16,
                batch_size=2,
                progress=False,
            )
    finally:
        with torch.no_grad():
            norm.weight.copy_(saved)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path}/states-")
    assert "hidden states of text " in message and "beyond float16's range" in message
    assert "extraction.layers" in message
    assert not list(tmp_path.iterdir()), "nothing may be cached"


# ---------------------------------------------------------------------------------------------
# A full disk.


def disk_full_for(monkeypatch, name: str) -> None:
    """Writes of the temporary file behind `name` fail as on a full disk."""
    original = pathlib.Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.startswith(f".{name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)


def test_disk_full_names_the_file_and_keeps_the_earlier_one(tmp_path, monkeypatch):
    path = tmp_path / "table1.csv"
    write_text(path, "earlier\n")
    disk_full_for(monkeypatch, "table1.csv")
    with pytest.raises(OSError) as raised:
        write_text(path, "new\n")
    assert raised.value.errno == errno.ENOSPC
    assert str(raised.value) == (
        f"{path}: no space left on the device (the file was not replaced); free space on that"
        " disk and rerun"
    )
    assert path.read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table1.csv"]


def test_disk_full_in_the_pipeline_is_one_line_naming_the_file(monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "run_notebook", lambda notebook, params_file, executed: 1.0)
    disk_full_for(monkeypatch, "run_times.json")
    assert pipeline.main(["--params", "params/tiny.yaml", "--only", "00"]) == 1
    record = paths.profile_dir("tiny") / "run_times.json"
    assert one_line(capsys.readouterr().err) == (
        f"[repsafe] {record}: no space left on the device (the file was not replaced); free space"
        " on that disk and rerun"
    )


# ---------------------------------------------------------------------------------------------
# Ctrl-C.


def test_ctrl_c_in_a_notebook_is_one_line_with_the_command_that_resumes(monkeypatch, capsys):
    import papermill

    def interrupted(input_path, output_path, **options):
        Path(output_path).write_text("{}")  # papermill had saved part of the notebook
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    try:
        status = pipeline.main(["--params", "params/tiny.yaml", "--only", "03", "01"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the pipeline")
    assert status == 130
    assert one_line(capsys.readouterr().err) == (
        "[repsafe] interrupted while running 01_representations.ipynb; files written so far are"
        " whole and training checkpoints are kept; resume with: python -m repsafe_lib.pipeline"
        " --params params/tiny.yaml --only 01 03"
    )
    executed = paths.profile_dir("tiny") / "executed"
    assert list(executed.iterdir()) == [], "an interrupted notebook must not look finished"


def kernels_of(process: psutil.Process) -> list[psutil.Process]:
    try:
        children = process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "ipykernel" in " ".join(c.cmdline())]


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigint_stops_the_pipeline_with_one_line_and_shuts_its_kernel_down(tmp_path):
    outputs = tmp_path / "outputs"
    run = subprocess.Popen(
        [sys.executable, "-m", "repsafe_lib.pipeline", "--params", "params/tiny.yaml"],
        cwd=ROOT,
        env={**os.environ, "REPSAFE_OUTPUTS": str(outputs)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (kernels := kernels_of(psutil.Process(run.pid))):
            assert time.monotonic() < deadline and run.poll() is None, "no kernel started"
            time.sleep(0.05)
        time.sleep(1.0)  # the kernel is running notebook 00's cells
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130
    assert stderr.strip() == (
        "[repsafe] interrupted while running 00_data.ipynb; files written so far are whole and"
        " training checkpoints are kept; resume with: python -m repsafe_lib.pipeline --params"
        f" params/tiny.yaml --only {' '.join(nb.stem[:2] for nb in pipeline.numbered_notebooks())}"
    )
    deadline = time.monotonic() + 10
    while any(alive(k) for k in kernels) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(k) for k in kernels), "the kernel outlived the pipeline"
    assert not (outputs / "tiny" / "executed" / "00_data.ipynb").exists()


# ---------------------------------------------------------------------------------------------
# --only.


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """The notebooks `pipeline.main` runs, without running them."""
    names: list[str] = []

    def run_notebook(notebook, params_file, executed):
        names.append(notebook.stem)
        return 0.0

    monkeypatch.setattr(pipeline, "run_notebook", run_notebook)
    return names


def test_only_without_names_is_an_error_not_everything(ran, capsys):
    with pytest.raises(SystemExit) as raised:
        pipeline.main(["--params", "params/tiny.yaml", "--only"])
    assert raised.value.code == 2 and ran == []
    assert "argument --only: expected at least one argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (["00", "00"], ["00_data"]),
        (["00_data", "00"], ["00_data"]),
        (["02", "00", "02_probes"], ["00_data", "02_probes"]),
    ],
)
def test_a_notebook_named_twice_runs_once_in_run_order(ran, only, expected):
    assert pipeline.main(["--params", "params/tiny.yaml", "--only", *only]) == 0
    assert ran == expected


def test_unknown_notebook_in_only_is_named_before_anything_runs(ran, capsys):
    assert pipeline.main(["--params", "params/tiny.yaml", "--only", "00", "0x"]) == 2
    assert ran == [] and not paths.profile_dir("tiny").exists()
    assert one_line(capsys.readouterr().err) == (
        f"[repsafe] --only: unknown notebook '0x'; available: {NOTEBOOKS}"
    )
