"""The robustness audit where no other file owns the topic: where seeds come from, runs
killed with SIGKILL and rerun, bad input through the pipeline, an unwritable outputs directory.

The tests that already live beside their topic (bad rows in test_datasets, bad params in test_params,
the security grep, the numerics of the losses, ...) are listed in conftest.RELIABILITY_TESTS; all of
them and every test here carry the `reliability` marker.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import inspect
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import yaml
from conftest import RELIABILITY_TESTS
from extraction_worker import MAX_LENGTH, STAGES, run_extraction
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from training_worker import COMPLETE
from training_worker import STAGES as TRAINING_STAGES

from repsafe_lib import hidden_states as hs
from repsafe_lib import models, paths, pipeline, training
from repsafe_lib.loaders import DatasetError, load_pku_saferlhf
from repsafe_lib.losses import margin_bt_loss, preference_confidence
from repsafe_lib.params import ParamsError, load_params
from repsafe_lib.records import PreferencePair, read_records, write_records
from repsafe_lib.seeding import seed_everything

pytestmark = pytest.mark.reliability

ROOT = paths.repo_root()
TESTS = Path(__file__).parent
WORKER = TESTS / "extraction_worker.py"
TRAINING_WORKER = TESTS / "training_worker.py"
PKU_FIXTURE = TESTS / "fixtures" / "datasets" / "pku_saferlhf.jsonl"
ARTIFACTS = ("*.csv", "*.md", "*.jsonl", "*.png", "*.pdf", "*.safetensors")
TEMP_NAME = re.compile(r"\..+\.\w{8}\.tmp(\.\w+)?")  # artifacts.atomic_path's temporary files


def whole_artifacts(root: Path) -> dict[str, bytes]:
    """Bytes of every deterministic artifact under `root`, leaving out executed notebooks and the
    temporary files a killed run may leave (no loader ever opens those names)."""
    files = {p for pattern in ARTIFACTS for p in root.rglob(pattern)}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(files)
        if "executed" not in p.parts and not p.name.startswith(".")
    }


def leftover_names(root: Path) -> list[str]:
    """Hidden files under `root`: what a killed write can leave. The run locks are not among them
    (`.locks/pipeline.lock`, `.locks/NN_name.lock` stay on purpose and don't start with a dot)."""
    return sorted(p.name for p in root.rglob(".*") if p.is_file()) if root.exists() else []


def repsafe_lines(stderr: str) -> list[str]:
    """The pipeline's own lines (a kernel may add its own warnings to the same stream)."""
    return [line for line in stderr.splitlines() if line.startswith("[repsafe]")]


# ---------------------------------------------------------------------------------------------
# The audit itself: conftest's list names real tests, and docs/reliability.md's counts come from it.


def test_audit_map_names_existing_tests():
    for names in RELIABILITY_TESTS.values():
        for name in names:
            file, function = name.split("::")
            tree = ast.parse((TESTS / file).read_text(encoding="utf-8"))
            defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
            assert function in defined, f"conftest.RELIABILITY_TESTS names a missing test: {name}"


# How docs/reliability.md names each category, in the order it lists them.
DOC_CATEGORIES = {
    "bad input": "bad input",
    "crash safety": "crash safety and resume",
    "determinism": "determinism",
    "numerics": "numerics",
    "security": "security",
    "audit": "that check the audit itself",
}


def audit_counts(collected: list[str]) -> dict[str, int]:
    """Collected test ids (`tests/test_x.py::test_y[case]`) per audit category."""
    category = {name: cat for cat, names in RELIABILITY_TESTS.items() for name in names}
    counts = dict.fromkeys(DOC_CATEGORIES, 0)
    for node in collected:
        name = f"{Path(node.split('::')[0]).name}::{node.split('::')[1].split('[')[0]}"
        assert name in category, f"{name} carries the reliability marker but no audit category"
        counts[category[name]] += 1
    return counts


def counts_sentence(counts: dict[str, int]) -> str:
    parts = [f"{counts[key]} {label}" for key, label in DOC_CATEGORIES.items()]
    return f"({sum(counts.values())} collected: {', '.join(parts[:-1])}, and {parts[-1]})"


def test_docs_state_the_audit_counts():
    collect = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "reliability"]
    listing = subprocess.run(
        [*collect, "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    collected = [line for line in listing.splitlines() if line.startswith("tests/")]
    listed = {name for names in RELIABILITY_TESTS.values() for name in names}
    found = {f"{Path(n.split('::')[0]).name}::{n.split('::')[1].split('[')[0]}" for n in collected}
    assert listed <= found, f"listed but not collected: {sorted(listed - found)}"
    sentence = counts_sentence(audit_counts(collected))
    page = " ".join((ROOT / "docs" / "reliability.md").read_text(encoding="utf-8").split())
    assert sentence in page, f"docs/reliability.md should say {sentence}"


# ---------------------------------------------------------------------------------------------
# Determinism: every source of randomness is seeded from params, and the manifest says with what.


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_seed_everything_reseeds_python_numpy_and_torch(monkeypatch):
    monkeypatch.setenv("PYTHONHASHSEED", "0")  # seed_everything sets it; restore it afterwards
    seed_everything(3)
    first = draws()
    seed_everything(3)
    assert draws() == first
    seed_everything(4)
    assert all(a != b for a, b in zip(draws(), first, strict=True))
    assert os.environ["PYTHONHASHSEED"] == "4"


SEED_LINE = "seed_everything(params.seed)"


def code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


@pytest.mark.parametrize("notebook", pipeline.numbered_notebooks(), ids=lambda p: p.stem)
def test_every_notebook_seeds_everything_from_params_as_it_loads_them(notebook):
    (setup,) = [cell for cell in code_cells(notebook) if "load_params(params_file)" in cell]
    lines = [line.strip() for line in setup.splitlines()]
    loaded, seeded = lines.index("params = load_params(params_file)"), lines.index(SEED_LINE)
    first_run = next(i for i, line in enumerate(lines) if line.startswith("run = Run("))
    assert loaded < seeded < first_run, "seed right after loading params, before any work"


def sklearn_calls_missing_random_state(source: str) -> list[str]:
    """Calls of sklearn estimators that take `random_state` but are not given it (a splitter that
    takes `shuffle` is exempt unless asked to shuffle)."""
    tree = ast.parse(source)
    imported = {
        alias.asname or alias.name: (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sklearn")
        for alias in node.names
    }
    missing = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if not (isinstance(call.func, ast.Name) and call.func.id in imported):
            continue
        module, name = imported[call.func.id]
        accepted = inspect.signature(getattr(importlib.import_module(module), name)).parameters
        given_kw = {k.arg: k.value for k in call.keywords}
        shuffles = "shuffle" not in accepted or (
            isinstance(given_kw.get("shuffle"), ast.Constant) and given_kw["shuffle"].value
        )
        if "random_state" in accepted and shuffles and "random_state" not in given_kw:
            missing.append(f"line {call.lineno}: {name}")
    return missing


def test_sklearn_estimators_get_the_seed():
    library = sorted((ROOT / "repsafe_lib").glob("*.py"))
    missing = {
        p.name: hits for p in library if (hits := sklearn_calls_missing_random_state(p.read_text()))
    }
    assert not missing, f"sklearn estimators without random_state: {missing}"
    assert sklearn_calls_missing_random_state(
        "from sklearn.svm import LinearSVC\nLinearSVC(C=1.0)\n"
    ) == ["line 2: LinearSVC"], "the check itself must catch a missing seed"


@pytest.mark.slow
def test_every_manifest_records_the_seed_and_params_hash(tiny_run, tiny_params):
    manifests = sorted(tiny_run.glob("*/manifest.json"))
    assert [m.parent.name for m in manifests] == [n.stem for n in pipeline.numbered_notebooks()]
    for path in manifests:
        manifest = json.loads(path.read_text())
        assert manifest["seed"] == tiny_params.seed, path
        assert manifest["params_hash"] == tiny_params.fingerprint(), path
        assert manifest["versions"]["torch"] and manifest["versions"]["scikit-learn"], path


# ---------------------------------------------------------------------------------------------
# Crash safety: kill with SIGKILL, look at what is on disk, rerun, compare with an uninterrupted run.


def start_worker(stage: str, cache_dir: Path, log: Path, worker: Path = WORKER) -> subprocess.Popen:
    with open(log, "w") as stderr:
        return subprocess.Popen(
            [sys.executable, str(worker), str(cache_dir), stage],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


def kill_when_ready(worker: subprocess.Popen, log: Path) -> None:
    """Wait until the worker reports reaching its stage, then SIGKILL it."""
    watchdog = threading.Timer(180, worker.kill)  # a worker that never gets there fails the test
    watchdog.start()
    try:
        ready = any(line.strip() == "READY" for line in iter(worker.stdout.readline, ""))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        watchdog.cancel()
        worker.stdout.close()
    assert ready, f"the worker never reached its kill point:\n{log.read_text()[-2000:]}"
    assert worker.returncode == -signal.SIGKILL


def test_killed_extraction_leaves_no_cache_a_rerun_would_trust(tiny_model, tmp_path):
    """Killed while extracting (nothing written yet) and half-way through writing the cache. Both
    workers run at once: each spends most of its time importing transformers."""
    cache_dirs = {stage: tmp_path / stage for stage in STAGES}
    logs = {stage: tmp_path / f"{stage}.log" for stage in STAGES}
    workers = {stage: start_worker(stage, cache_dirs[stage], logs[stage]) for stage in STAGES}
    for stage, worker in workers.items():
        kill_when_ready(worker, logs[stage])
    uninterrupted = run_extraction(tiny_model, tmp_path / "uninterrupted")
    cache_name, shape = uninterrupted.path.name, tuple(uninterrupted.states.shape)

    for stage, cache_dir in cache_dirs.items():
        left = sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []
        if stage == "writing":  # the half-written file is there, under a name no reader opens
            assert len(left) == 1 and TEMP_NAME.fullmatch(left[0]), left
            assert left[0].startswith(f".{cache_name}.") and left[0] != cache_name
        else:
            assert left == []
        with pytest.raises(FileNotFoundError, match="rerun notebook 01_representations"):
            hs.read_cached_states(cache_dir / cache_name, uninterrupted.key, shape)

        rerun = run_extraction(tiny_model, cache_dir)
        assert (rerun.path, rerun.key) == (cache_dir / cache_name, uninterrupted.key)
        assert torch.equal(rerun.states, uninterrupted.states)
        reread = hs.read_cached_states(rerun.path, rerun.key, shape)
        assert torch.equal(reread, uninterrupted.states)


def run_training_to_the_end(out_dirs: list[Path], log_dir: Path) -> list[int]:
    """Run (or resume) the worker's training to its end in each directory, in parallel fresh
    processes; the step each resumed from."""
    logs = [log_dir / f"{out_dir.name}-complete.log" for out_dir in out_dirs]
    workers = [
        start_worker(COMPLETE, out_dir, log, TRAINING_WORKER)
        for out_dir, log in zip(out_dirs, logs, strict=True)
    ]
    resumed_from = []
    for worker, log in zip(workers, logs, strict=True):
        out, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, f"the training worker failed:\n{log.read_text()[-2000:]}"
        resumed_from.append(int(re.fullmatch(r"RESUMED_FROM (\d+)", out.strip()).group(1)))
    return resumed_from


def timeless_metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in training.TIMING_METRICS} for row in rows]


def test_killed_training_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL in the middle of a cDPO step (after the step-2 checkpoint) and half-way through
    writing the step-4 checkpoint; rerunning resumes from the newest complete checkpoint and ends
    with the uninterrupted run's metrics and byte-identical weights and rewards."""
    out_dirs = {stage: tmp_path / stage for stage in TRAINING_STAGES}
    logs = {stage: tmp_path / f"{stage}.log" for stage in TRAINING_STAGES}
    workers = {
        stage: start_worker(stage, out_dirs[stage], logs[stage], TRAINING_WORKER)
        for stage in TRAINING_STAGES
    }
    for stage, worker in workers.items():
        kill_when_ready(worker, logs[stage])
    for out_dir in out_dirs.values():
        assert training.latest_checkpoint(out_dir / "checkpoints").name == "step-000002"
        assert not (out_dir / "policy").exists()

    whole = tmp_path / "uninterrupted"
    resumed_from = run_training_to_the_end([whole, *out_dirs.values()], tmp_path)
    assert resumed_from == [0] + [2] * len(out_dirs)
    for out_dir in out_dirs.values():
        assert timeless_metrics(out_dir) == timeless_metrics(whole)
        assert len(timeless_metrics(out_dir)) == 6
        for name in (
            "policy/model.safetensors",
            "hybrid_reward-0.safetensors",
            "hybrid_reward-1.safetensors",
        ):
            assert (out_dir / name).read_bytes() == (whole / name).read_bytes(), name


def kill_process_tree(process: subprocess.Popen) -> None:
    """SIGKILL the pipeline and the kernel it started, each by its pid, as a crash would."""
    kernels = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    for kernel in kernels:
        with contextlib.suppress(psutil.NoSuchProcess):
            kernel.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while not all(map(is_gone, kernels)) and time.monotonic() < deadline:
        time.sleep(0.05)


def is_gone(member: psutil.Process) -> bool:
    try:
        return (
            member.status() == psutil.STATUS_ZOMBIE
        )  # dead, waiting for its new parent to reap it
    except psutil.NoSuchProcess:
        return True


def wait_until(condition, process: subprocess.Popen, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                kill_process_tree(process)
            pytest.fail(f"the kill point was never reached:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)


# The killed run and the rerun start from the uninterrupted run's notebook 00 and run 01-02.
RERUN = ("01_representations", "02_probes")
COMPARED = ("00_data", *RERUN)


@pytest.mark.slow
def test_pipeline_killed_in_notebook_01_leaves_whole_files_and_a_rerun_matches(
    tiny_run, tmp_path, monkeypatch
):
    """Kill point: notebook 01 has just written its hidden-state cache and is still running. The
    rerun covers notebooks 01-02 on the uninterrupted run's notebook 00; 03 and 06 read only their
    files (and the determinism test compares all five)."""
    outputs, log = tmp_path / "killed", tmp_path / "pipeline.log"
    shutil.copytree(tiny_run / "00_data", outputs / "tiny" / "00_data")
    states_dir = outputs / "tiny" / "01_representations"
    command = [sys.executable, "-m", "repsafe_lib.pipeline", "--params", "params/tiny.yaml"]
    with open(log, "w") as out:
        run = subprocess.Popen(
            [*command, "--only", *RERUN],
            cwd=ROOT,
            env={**os.environ, "REPSAFE_OUTPUTS": str(outputs)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: any(states_dir.glob("states-*.safetensors")), run, log)
    kill_process_tree(run)
    assert run.returncode == -signal.SIGKILL

    reference, partial = whole_artifacts(tiny_run), whole_artifacts(outputs / "tiny")
    assert any(name.startswith("01_representations/states-") for name in partial)
    assert not (outputs / "tiny" / "02_probes").exists()
    # Every file a later run could read is whole: byte-equal to the uninterrupted run's.
    assert set(partial) <= set(reference), set(partial) - set(reference)
    assert [name for name in partial if partial[name] != reference[name]] == []
    assert all(TEMP_NAME.fullmatch(n) for n in leftover_names(outputs)), leftover_names(outputs)

    monkeypatch.setenv("REPSAFE_OUTPUTS", str(outputs))
    assert pipeline.main(["--params", "params/tiny.yaml", "--only", *RERUN]) == 0
    rerun = whole_artifacts(outputs / "tiny")
    expected = {name: data for name, data in reference.items() if name.split("/")[0] in COMPARED}
    assert rerun.keys() == expected.keys()
    assert [name for name in rerun if rerun[name] != expected[name]] == []


# ---------------------------------------------------------------------------------------------
# Bad input: one clear message naming the file/row/field or key, a non-zero exit, earlier
# artifacts intact.


def pku_rows() -> list[dict]:
    return [json.loads(line) for line in PKU_FIXTURE.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("on_bad_rows", ["raise", "skip"])
def test_file_cut_off_mid_line_is_an_error_even_when_skipping_bad_rows(tmp_path, on_bad_rows):
    text = PKU_FIXTURE.read_text(encoding="utf-8").rstrip("\n")
    path = tmp_path / "cut.jsonl"
    path.write_text(text[:-40], encoding="utf-8")  # what a writer killed mid-line leaves
    last = text.count("\n") + 1
    with pytest.raises(DatasetError, match="invalid or truncated JSON line") as info:
        load_pku_saferlhf(path, on_bad_rows=on_bad_rows)
    assert str(info.value).startswith(f"{path}, line {last}: ")


def test_ten_thousand_character_response_loads_whole_and_extraction_keeps_its_end(
    tiny_model, tmp_path
):
    """Decision: no length limit when loading; extraction keeps the last `max_length` tokens."""
    long = ("Here is a very long answer. " * 400)[:9_999] + "!"
    rows = pku_rows()
    rows[0]["response_0"] = rows[0]["response_1"] = long  # whichever side is the safe one
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pair = load_pku_saferlhf(path).records[0]
    assert len(long) == 10_000 and pair.chosen == pair.rejected == long
    records = write_records(tmp_path / "pairs.jsonl", [pair])
    assert read_records(records, PreferencePair, producer="00_data") == [pair]

    text = hs.format_conversation(tiny_model.tokenizer, pair.prompt, long)
    (ids,) = hs.tokenize_conversations(tiny_model.tokenizer, [text], MAX_LENGTH)
    assert len(ids) == MAX_LENGTH and ids[-1] == tiny_model.tokenizer.eos_token_id


@pytest.mark.parametrize("source", ["/no/such/model", "./models/llama", "~/nope", "a/b/c"])
def test_missing_local_model_directory_is_named(tiny_params, source):
    spec = dataclasses.replace(tiny_params.model, kind="hub", source=source, tiny=None)
    with pytest.raises(FileNotFoundError, match=f"model.source: directory {re.escape(source)} "):
        models.load_model(spec)


def test_hub_ids_still_go_to_the_hub(tiny_params, monkeypatch):
    asked = []

    def from_pretrained(source, **options):
        asked.append(source)
        raise OSError("offline")

    monkeypatch.setattr(models.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    for source in ("gpt2", "meta-llama/Llama-2-7b-hf"):
        spec = dataclasses.replace(tiny_params.model, kind="hub", source=source, tiny=None)
        with pytest.raises(OSError, match="offline"):
            models.load_model(spec)
    assert asked == ["gpt2", "meta-llama/Llama-2-7b-hf"]


TINY = yaml.safe_load(Path("params/tiny.yaml").read_text())
SECTIONS = ["", "model", "data", "training", "reward"]  # "" = top level


@settings(max_examples=40, deadline=None)
@given(
    section=st.sampled_from(SECTIONS),
    key=st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
)
def test_property_any_unknown_key_is_an_error_naming_it(
    tmp_path_factory, tiny_params, section, key
):
    owner = getattr(tiny_params, section) if section else tiny_params
    assume(key not in {f.name for f in dataclasses.fields(owner)} - {"source_file"})
    raw = json.loads(json.dumps(TINY))  # a deep copy
    (raw[section] if section else raw)[key] = 1
    path = tmp_path_factory.mktemp("p") / "unknown.yaml"
    path.write_text(yaml.safe_dump(raw))
    dotted = f"{section}.{key}" if section else key
    with pytest.raises(ParamsError, match="unknown key") as raised:
        load_params(path)
    assert raised.value.key == dotted and str(raised.value).startswith(f"{path}: key '{dotted}'")


@pytest.mark.slow
def test_missing_upstream_through_the_pipeline_is_one_line_naming_the_notebook(capsys):
    assert pipeline.main(["--params", "params/tiny.yaml", "--only", "02"]) == 1
    err = capsys.readouterr().err
    failure, where = repsafe_lines(err)
    assert failure.startswith(
        "[repsafe] 02_probes.ipynb failed in cell [3]: MissingArtifactError: "
    )
    assert failure.endswith("states.json is missing: run notebook 01_representations first")
    assert "Traceback" not in err
    executed = paths.profile_dir("tiny") / "executed"
    assert where == f"[repsafe] traceback: {executed / '02_probes.failed.ipynb'}"
    assert (
        "run notebook 01_representations first" in (executed / "02_probes.failed.ipynb").read_text()
    )
    assert not (executed / "02_probes.ipynb").exists(), "a failed run must not look finished"


@pytest.mark.slow
def test_bad_data_row_stops_notebook_00_and_leaves_the_earlier_run_intact(
    tiny_run, tmp_path, capsys
):
    earlier = paths.profile_dir("tiny") / "00_data"
    shutil.copytree(tiny_run / "00_data", earlier)
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    lines = (ROOT / "repsafe_lib" / "data" / "pku_saferlhf_demo.jsonl").read_text().splitlines()
    lines[6] = json.dumps({**json.loads(lines[6]), "safer_response_id": 2})
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    params_file = tmp_path / "bad-data.yaml"
    params_file.write_text(
        Path("params/tiny.yaml").read_text().replace('"demo:pku_saferlhf_demo.jsonl"', f'"{data}"')
    )

    assert pipeline.main(["--params", str(params_file), "--only", "00"]) == 1
    failure, _ = repsafe_lines(capsys.readouterr().err)
    assert failure.endswith(
        f"DatasetError: {data}, row 7 (line 7), field 'safer_response_id': expected one of [0, 1]"
        ", got 2"
    ), failure
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before


@pytest.mark.parametrize("how", ["below_a_file", "read_only"])
def test_unwritable_outputs_stop_the_run_with_one_message(how, tmp_path):
    if how == "below_a_file":  # fails for root too: no directory can be made inside a file
        blocker = tmp_path / "a-file"
        blocker.write_text("earlier\n")
        outputs, earlier = blocker / "outputs", blocker
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories; 'below_a_file' covers root")
        outputs = tmp_path / "outputs"
        earlier = outputs / "tiny" / "00_data" / "data_summary.csv"
        earlier.parent.mkdir(parents=True)
        earlier.write_text("earlier\n")
        (outputs / "tiny").chmod(0o500)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "repsafe_lib.pipeline", "--params", "params/tiny.yaml"],
            cwd=ROOT,
            env={**os.environ, "REPSAFE_OUTPUTS": str(outputs)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        if how == "read_only":
            (outputs / "tiny").chmod(0o700)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    executed = outputs / "tiny" / "executed"
    assert line.startswith(f"[repsafe] can't write the outputs directory {executed}: "), line
    assert earlier.read_text() == "earlier\n"


# ---------------------------------------------------------------------------------------------
# Numerics beyond the fixed cases of test_losses: any margin a reward can produce.

finite_reward = st.floats(-1e4, 1e4, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(
    chosen=st.lists(finite_reward, min_size=1, max_size=4),
    shift=finite_reward,
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32]),
)
def test_property_loss_gamma_and_gradient_stay_finite(chosen, shift, dtype):
    chosen_rewards = torch.tensor(chosen, dtype=dtype, requires_grad=True)
    rejected_rewards = torch.full_like(chosen_rewards, shift).detach()
    loss = margin_bt_loss(chosen_rewards, rejected_rewards, mu=1.0)
    gamma = preference_confidence(chosen_rewards, rejected_rewards, alpha=7.5)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() >= 0
    assert torch.isfinite(gamma).all() and ((gamma >= 0) & (gamma <= 1)).all()
    assert torch.isfinite(chosen_rewards.grad).all()
