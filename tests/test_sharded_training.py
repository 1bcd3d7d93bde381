"""Training over several processes (`configs/accelerate/`): the config files, what the loop
refuses under FSDP, and, with 2 gloo processes on CPU, for DDP and FSDP2, for a policy run
(`multiprocess_worker`) and for notebook 05's reward model (`reward_model_worker`): checkpoint ->
resume -> the uninterrupted run's metrics and weights, two processes training as one does, and
FSDP's saved model a full model equal to the gathered shards; and online DPO (`online_worker`),
each process sampling its share, giving one process's samples, metrics and policy."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import load_file
from script_runs import ROOT, run_python
from training_worker import worker_run

from repsafe_lib import training
from repsafe_lib.models import load_model
from repsafe_lib.params import LoraParams, load_params
from repsafe_lib.training import loop

TESTS = Path(__file__).parent
CONFIGS = ROOT / "configs" / "accelerate"
# Each supported layout: its config file and accelerate's distributed type in it.
LAYOUTS = {"one-gpu": "NO", "ddp": "MULTI_GPU", "fsdp": "FSDP"}
PROCESSES = 2


def test_every_accelerate_config_parses_and_names_a_known_layout():
    from accelerate.commands.config.config_args import load_config_from_file

    files = sorted(CONFIGS.glob("*.yaml"))
    assert {f.stem for f in files} == set(LAYOUTS)
    for file in files:
        config = yaml.safe_load(file.read_text(encoding="utf-8"))
        assert config["distributed_type"] == LAYOUTS[file.stem], file.name
        assert config["mixed_precision"] == "no", "precision comes from the profile"
        parsed = load_config_from_file(str(file))  # accelerate's own reader accepts it
        assert str(parsed.distributed_type).endswith(LAYOUTS[file.stem])
    fsdp = yaml.safe_load((CONFIGS / "fsdp.yaml").read_text(encoding="utf-8"))["fsdp_config"]
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_reshard_after_forward"] is True
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    assert fsdp["fsdp_activation_checkpointing"] is False  # the profile's setting does it


def test_the_gpu_guide_gives_the_recipe_of_every_config():
    guide = (ROOT / "docs" / "running-on-gpus.md").read_text(encoding="utf-8")
    for layout in LAYOUTS:
        assert f"--config_file configs/accelerate/{layout}.yaml" in guide, layout


def test_fsdp_refuses_version_1_lora_and_activation_checkpointing_set_twice():
    settings = load_params("params/tiny.yaml").training
    fsdp2 = SimpleNamespace(fsdp_version=2, activation_checkpointing=False)
    loop.check_sharding(fsdp2, settings)
    with pytest.raises(ValueError, match="fsdp_version: 2"):
        loop.check_sharding(
            SimpleNamespace(fsdp_version=1, activation_checkpointing=False), settings
        )
    with pytest.raises(ValueError, match="LoRA under FSDP.*ddp.yaml"):
        loop.check_sharding(fsdp2, dataclasses.replace(settings, lora=LoraParams(r=4, alpha=8.0)))
    twice = SimpleNamespace(fsdp_version=2, activation_checkpointing=True)
    with pytest.raises(ValueError, match="activation checkpointing is set twice"):
        loop.check_sharding(twice, dataclasses.replace(settings, gradient_checkpointing=True))


def test_fsdp_refuses_for_the_reward_model_what_it_refuses_for_the_policy():
    from repsafe_lib.scalar_reward_model import RewardModelRecipe

    recipe = RewardModelRecipe(batch_size=4, mixed_precision="bf16")
    fsdp2 = SimpleNamespace(fsdp_version=2, activation_checkpointing=False)
    loop.check_sharding(fsdp2, recipe)
    with pytest.raises(ValueError, match="fsdp_version: 2"):
        loop.check_sharding(SimpleNamespace(fsdp_version=1, activation_checkpointing=False), recipe)
    with pytest.raises(ValueError, match="LoRA under FSDP.*ddp.yaml"):
        loop.check_sharding(fsdp2, dataclasses.replace(recipe, lora=LoraParams(r=4, alpha=8.0)))
    twice = SimpleNamespace(fsdp_version=2, activation_checkpointing=True)
    with pytest.raises(ValueError, match="activation checkpointing is set twice"):
        loop.check_sharding(twice, dataclasses.replace(recipe, gradient_checkpointing=True))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(
    layout: str, out_dir: Path, stop_after: int | None, worker: str, settings: dict
) -> list[str]:
    """`accelerate launch` of `worker` on 2 CPU processes with the layout's config file."""
    return [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CONFIGS / f"{layout}.yaml"),
        "--num_processes",
        str(PROCESSES),
        "--main_process_port",
        str(_free_port()),
        str(TESTS / worker),
        str(out_dir),
        "all" if stop_after is None else str(stop_after),
        *(f"{key}={json.dumps(value)}" for key, value in settings.items()),
    ]


def worker_result(done) -> dict:
    """The `RESULT <json>` line a worker's main process printed."""
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and len(results) == 1, done.stdout[-3000:] + done.stderr[-6000:]
    return json.loads(results[0].removeprefix("RESULT "))


def launch_worker(
    layout: str,
    out_dir: Path,
    stop_after: int | None = None,
    worker: str = "multiprocess_worker.py",
    **settings,
) -> dict:
    """`worker` (`multiprocess_worker`, or `reward_model_worker`) on 2 CPU processes, launched as a
    user would, with the layout's config file; `settings`: training settings to change."""
    command = launch_command(layout, out_dir, stop_after, worker, settings)
    result = worker_result(run_python(command, timeout=300, extra_paths=[TESTS]))
    assert result["processes"] == PROCESSES and result["sharded"] == (layout == "fsdp")
    return {**result, "out_dir": out_dir}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """`layout -> ` the uninterrupted 2-process run of that layout, launched once per module."""
    runs = {}

    def run_of(layout: str) -> dict:
        if layout not in runs:
            runs[layout] = launch_worker(layout, tmp_path_factory.mktemp(layout) / "whole")
        return runs[layout]

    return run_of


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> training.RunResult:
    """The same run in this one process, unsharded."""
    return worker_run(tmp_path_factory.mktemp("one-process"))


def policy_weights(policy_dir) -> dict[str, torch.Tensor]:
    return load_file(Path(policy_dir) / "model.safetensors")


def assert_rows_close(rows, expected_rows, tolerance: float) -> None:
    for row, expected in zip(rows, expected_rows, strict=True):
        for key, value in row.items():
            assert value == pytest.approx(expected[key], abs=tolerance, rel=tolerance), key


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["ddp", "fsdp"])
def test_a_run_resumed_from_its_checkpoint_equals_the_uninterrupted_run(
    layout, uninterrupted, tmp_path
):
    whole = uninterrupted(layout)
    assert whole["resumed_from"] == 0
    stopped = launch_worker(layout, tmp_path, stop_after=3)  # as if killed in step 3
    assert stopped["policy_dir"] is None and len(stopped["metrics"]) == 3
    checkpoint = training.latest_checkpoint(tmp_path / "checkpoints")
    assert checkpoint.name == "step-000002"
    if layout == "fsdp":  # accelerate's sharded state: one file of shards per process
        shards = checkpoint / "accelerate" / "pytorch_model_fsdp_0"
        assert sorted(p.name for p in shards.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
        assert not (checkpoint / "trainable.safetensors").exists()
    else:
        assert (checkpoint / "trainable.safetensors").is_file()
    resumed = launch_worker(layout, tmp_path)
    assert resumed["resumed_from"] == 2
    assert resumed["metrics"] == whole["metrics"]
    whole_policy = Path(whole["policy_dir"]) / "model.safetensors"
    resumed_policy = Path(resumed["policy_dir"]) / "model.safetensors"
    assert resumed_policy.read_bytes() == whole_policy.read_bytes()
    for f in range(2):  # the R_h's, refreshed every step, whole in every process
        name = f"hybrid_reward-{f}.safetensors"
        assert (tmp_path / name).read_bytes() == (whole["out_dir"] / name).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["ddp", "fsdp"])
def test_two_processes_train_as_one_does(layout, uninterrupted, one_process):
    """Up to summation order: each process takes half of every batch."""
    whole = uninterrupted(layout)
    assert_rows_close(whole["metrics"], one_process.metrics, 1e-4)
    expected = policy_weights(one_process.policy_dir)
    weights = policy_weights(whole["policy_dir"])
    assert set(weights) == set(expected)
    for name, value in weights.items():
        torch.testing.assert_close(value, expected[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.slow
def test_fsdp_saved_policy_is_a_full_model_equal_to_the_gathered_shards(uninterrupted, tmp_path):
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
    from transformers import AutoModelForCausalLM

    whole = uninterrupted("fsdp")
    policy_dir = Path(whole["policy_dir"])
    saved = AutoModelForCausalLM.from_pretrained(policy_dir, trust_remote_code=False)
    params = load_params("params/tiny.yaml")
    base = load_model(params.model, seed=params.seed).model
    shapes = {n: p.shape for n, p in saved.named_parameters()}
    assert shapes == {n: p.shape for n, p in base.named_parameters()}
    weights = policy_weights(policy_dir)
    assert set(weights) == {n for n, _ in base.named_parameters()}  # tied: saved once

    # The final sharded checkpoint, assembled offline from both processes' shards.
    final = training.latest_checkpoint(whole["out_dir"] / "checkpoints")
    assert final.name == "step-000006"
    assembled = tmp_path / "assembled.pt"
    dcp_to_torch_save(final / "accelerate" / "pytorch_model_fsdp_0", assembled)
    shards = torch.load(assembled, weights_only=True)["model"]
    for name, value in weights.items():
        assert torch.equal(shards[f"model.{name}"], value), name
    assert any(not torch.equal(weights[n], p) for n, p in base.named_parameters())


@pytest.mark.slow
def test_fsdp_with_the_paper_precision_settings_trains_as_one_process_does(tmp_path):
    """bf16 autocast and gradient checkpointing, as `paper.yaml` trains. float32 through FSDP,
    bf16 autocast around the forward: step 0 (policy = reference) is the one-process bf16 step.
    accelerate's own bf16 FSDP policy (bf16 weights, outputs cast to bf16) is 0.06 off in the
    step-0 loss here, 0.34 by step 5."""
    paper = {"mixed_precision": "bf16", "gradient_checkpointing": True}
    sharded = launch_worker("fsdp", tmp_path / "fsdp", **paper)
    single = worker_run(tmp_path / "one", **paper)
    assert_rows_close(sharded["metrics"][:1], single.metrics[:1], 1e-3)
    losses = [row["loss"] for row in single.metrics]  # later steps drift apart by bf16 rounding
    assert [row["loss"] for row in sharded["metrics"]] == pytest.approx(losses, abs=0.05)


# Notebook 05's reward model (`reward_model_worker`, what `--reward-model` runs): the same layouts.
RM_WORKER = "reward_model_worker.py"


def launch_reward_model(layout: str, out_dir: Path, stop_after: int | None = None, **settings):
    return launch_worker(layout, out_dir, stop_after, worker=RM_WORKER, **settings)


def reward_model_in_one_process(out_dir: Path, stop_after: int | None = None, **settings) -> dict:
    """The same fit in one fresh process: the worker run as a plain script."""
    command = [
        str(TESTS / RM_WORKER),
        str(out_dir),
        "all" if stop_after is None else str(stop_after),
    ]
    command += [f"{key}={json.dumps(value)}" for key, value in settings.items()]
    result = worker_result(run_python(command, timeout=300, extra_paths=[TESTS]))
    assert result["processes"] == 1 and not result["sharded"]
    return {**result, "out_dir": out_dir}


@pytest.fixture(scope="module")
def uninterrupted_reward_model(tmp_path_factory):
    """`layout -> ` the uninterrupted 2-process fit of that layout, launched once per module."""
    fits = {}

    def fit_of(layout: str) -> dict:
        if layout not in fits:
            fits[layout] = launch_reward_model(layout, tmp_path_factory.mktemp(f"rm-{layout}"))
        return fits[layout]

    return fit_of


@pytest.fixture(scope="module")
def one_process_reward_model(tmp_path_factory) -> dict:
    return reward_model_in_one_process(tmp_path_factory.mktemp("rm-one-process"))


def saved_reward_model(out_dir: Path) -> dict[str, torch.Tensor]:
    """The saved reward model's tensors by their name in the model (`body.*`, `head.*`)."""
    directory = Path(out_dir) / "reward_model"
    body = load_file(directory / "body" / "model.safetensors")
    head = load_file(directory / "head.safetensors")
    return {f"body.{k}": v for k, v in body.items()} | {f"head.{k}": v for k, v in head.items()}


def assert_curves_close(curve: dict, expected: dict, tolerance: float) -> None:
    for key in ("loss", "accuracy"):
        assert curve[key] == pytest.approx(expected[key], abs=tolerance, rel=tolerance), key


def fit_reward_model(layout: str, out_dir: Path, stop_after: int | None = None) -> dict:
    if layout == "one-process":
        return {**reward_model_in_one_process(out_dir, stop_after), "out_dir": out_dir}
    return launch_reward_model(layout, out_dir, stop_after)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["one-process", "fsdp"])
def test_a_reward_model_resumed_from_its_checkpoint_equals_the_uninterrupted_fit(
    layout, uninterrupted_reward_model, one_process_reward_model, tmp_path
):
    """Whole-weight checkpoints (one process, as DDP writes them) and FSDP's sharded ones."""
    whole = (
        one_process_reward_model if layout == "one-process" else uninterrupted_reward_model(layout)
    )
    assert whole["resumed_from"] == 0 and whole["finished"]
    stopped = fit_reward_model(layout, tmp_path, stop_after=3)  # as if killed in step 3
    assert not stopped["finished"] and len(stopped["curve"]["loss"]) == 3
    assert not (tmp_path / "reward_model").exists()  # saved only once finished
    checkpoint = training.latest_checkpoint(tmp_path / "reward_model-checkpoints")
    assert checkpoint.name == "step-000002"
    if layout == "fsdp":  # accelerate's sharded state: one file of shards per process
        shards = checkpoint / "accelerate" / "pytorch_model_fsdp_0"
        assert sorted(p.name for p in shards.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
        assert not (checkpoint / "trainable.safetensors").exists()
    else:
        assert (checkpoint / "trainable.safetensors").is_file()
    resumed = fit_reward_model(layout, tmp_path)
    assert resumed["resumed_from"] == 2 and resumed["finished"]
    assert resumed["curve"] == whole["curve"]
    for name in ("body/model.safetensors", "head.safetensors", "reward_model.json"):
        saved = (tmp_path / "reward_model" / name).read_bytes()
        assert saved == (whole["out_dir"] / "reward_model" / name).read_bytes(), name


@pytest.mark.slow
def test_two_processes_fit_the_reward_model_as_one_does(
    uninterrupted_reward_model, one_process_reward_model
):
    """Up to summation order: each process takes half of every batch. All but the head's bias:
    the BT loss reads reward differences only, so the bias's gradient is zero up to rounding,
    and AdamW, which normalises each step, moves it by about the learning rate each step in the
    direction of that rounding (one process and two end with opposite signs here)."""
    from reward_model_worker import SETTINGS

    whole = uninterrupted_reward_model("fsdp")
    assert_curves_close(whole["curve"], one_process_reward_model["curve"], 1e-4)
    expected = saved_reward_model(one_process_reward_model["out_dir"])
    weights = saved_reward_model(whole["out_dir"])
    assert set(weights) == set(expected)
    for name, value in weights.items():
        if name != "head.bias":
            torch.testing.assert_close(value, expected[name], atol=1e-5, rtol=1e-4, msg=name)
    most = SETTINGS.steps * SETTINGS.learning_rate * 1.01
    assert weights["head.bias"].abs().max() <= most
    assert expected["head.bias"].abs().max() <= most


@pytest.mark.slow
def test_fsdp_saved_reward_model_is_whole_equal_to_the_shards_and_reused_by_notebook_05(
    uninterrupted_reward_model, tmp_path, monkeypatch
):
    from reward_model_worker import fit_options
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    from repsafe_lib import scalar_reward_model

    whole = uninterrupted_reward_model("fsdp")
    directory = whole["out_dir"] / "reward_model"
    weights = saved_reward_model(whole["out_dir"])
    params = load_params("params/tiny.yaml")
    base = scalar_reward_model.ScalarRewardModel.from_causal_lm(
        load_model(params.model, seed=params.seed).model
    )
    assert {n: v.shape for n, v in weights.items()} == {
        n: v.shape for n, v in base.state_dict().items()
    }
    assert any(not torch.equal(weights[n], v) for n, v in base.state_dict().items())

    # The final sharded checkpoint, assembled offline from both processes' shards.
    final = training.latest_checkpoint(whole["out_dir"] / "reward_model-checkpoints")
    assert final.name == "step-000006"
    assembled = tmp_path / "assembled.pt"
    dcp_to_torch_save(final / "accelerate" / "pytorch_model_fsdp_0", assembled)
    shards = torch.load(assembled, weights_only=True)["model"]
    assert set(shards) == set(weights)
    for name, value in weights.items():
        assert torch.equal(shards[name], value), name

    loaded = scalar_reward_model.load_reward_model(directory, device="cpu")
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, weights[name]), name

    def no_training(*args, **kwargs):
        raise AssertionError("notebook 05 trained again although the saved key matches")

    monkeypatch.setattr(scalar_reward_model, "fit_reward_model", no_training)
    reused, curve = scalar_reward_model.fit_or_load(directory, **fit_options())
    assert dataclasses.asdict(curve) == whole["curve"]
    assert all(torch.equal(v, weights[n]) for n, v in reused.state_dict().items())


@pytest.mark.slow
def test_fsdp_reward_model_with_the_paper_precision_settings_fits_as_one_process_does(tmp_path):
    """bf16 autocast around the forward of a float32 FSDP model, gradient checkpointing: step 0
    is the one-process bf16 step; later steps drift apart by bf16 rounding only."""
    paper = {"mixed_precision": "bf16", "gradient_checkpointing": True}
    sharded = launch_reward_model("fsdp", tmp_path / "fsdp", **paper)
    single = reward_model_in_one_process(tmp_path / "one", **paper)
    assert sharded["curve"]["loss"][0] == pytest.approx(single["curve"]["loss"][0], abs=1e-3)
    assert sharded["curve"]["loss"] == pytest.approx(single["curve"]["loss"], abs=0.05)


# Online DPO (`online_worker`): each process samples its share of a round's prompts.
ONLINE_WORKER = "online_worker.py"


@pytest.fixture(scope="module")
def online_in_one_process(tmp_path_factory) -> dict:
    """The online run in one fresh process: the worker run as a plain script."""
    out_dir = tmp_path_factory.mktemp("online-one-process")
    done = run_python(
        [str(TESTS / ONLINE_WORKER), str(out_dir), "all"], timeout=300, extra_paths=[TESTS]
    )
    result = worker_result(done)
    assert result["processes"] == 1 and not result["sharded"]
    return result


@pytest.mark.slow
def test_online_dpo_on_two_fsdp_processes_samples_pairs_and_trains_as_one_process_does(
    online_in_one_process, tmp_path
):
    """Every round's scored samples (hence its pairs), the metrics and the saved policy; the
    shares differ in size (5 prompts per round), so under FSDP the shorter one pads to sample in
    lockstep."""
    from transformers import AutoModelForCausalLM

    two = launch_worker("fsdp", tmp_path, worker=ONLINE_WORKER)
    one = online_in_one_process
    for round_samples, expected in zip(two["samples"], one["samples"], strict=True):
        assert [(s["prompt_id"], s["sample_index"], s["text"]) for s in round_samples] == [
            (s["prompt_id"], s["sample_index"], s["text"]) for s in expected
        ]
        rewards = [s["reward"] for s in round_samples]
        assert rewards == pytest.approx([s["reward"] for s in expected], abs=1e-4)
    assert [row["pairs"] for row in two["metrics"]] == [row["pairs"] for row in one["metrics"]]
    assert_rows_close(two["metrics"], one["metrics"], 1e-4)
    saved = AutoModelForCausalLM.from_pretrained(two["policy_dir"], trust_remote_code=False)
    params = load_params("params/tiny.yaml")
    base = load_model(params.model, seed=params.seed).model
    assert {n: p.shape for n, p in saved.named_parameters()} == {
        n: p.shape for n, p in base.named_parameters()
    }
    # Each round restarts AdamW, whose first steps are about lr * sign(gradient): weights whose
    # gradient is near zero take summation-order differences up to 1e-4 (4e-5 at most here, in 3
    # of 3.3M weights); the update as a whole agrees to 1.5e-5 of its norm.
    expected = policy_weights(one["policy_dir"])
    weights = policy_weights(two["policy_dir"])
    assert set(weights) == set(expected)
    for name, value in weights.items():
        torch.testing.assert_close(value, expected[name], atol=1e-4, rtol=1e-4, msg=name)
    start = base.state_dict()
    gap = sum(float((weights[n] - expected[n]).pow(2).sum()) for n in expected)
    update = sum(float((expected[n] - start[n]).pow(2).sum()) for n in expected)
    assert (gap / update) ** 0.5 < 1e-4
