"""The conventional reward model (scalar head) and the online-DPO loop on the tiny model."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch

from repsafe_lib import scalar_reward_model
from repsafe_lib.models import load_model
from repsafe_lib.online import online_dpo
from repsafe_lib.params import OnlineParams
from repsafe_lib.records import EvalPrompt, PreferencePair
from repsafe_lib.sampling import DecodingConfig

PAIRS = [
    PreferencePair(
        f"p{i}",
        f"Question {i}: how do I do thing {i}?",
        "I can't help with that.",
        f"Sure, do {i}.",
        (),
    )
    for i in range(8)
]


@pytest.fixture
def fresh_rm(tiny_params):
    return scalar_reward_model.ScalarRewardModel.from_causal_lm(
        load_model(tiny_params.model, seed=tiny_params.seed).model
    )


def test_bradley_terry_training_lowers_the_loss(fresh_rm, tiny_model):
    curve = scalar_reward_model.train_reward_model(
        fresh_rm,
        tiny_model.tokenizer,
        PAIRS,
        steps=12,
        batch_size=4,
        learning_rate=3e-3,
        max_length=64,
        seed=0,
        progress=False,
    )
    assert curve.loss[0] == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-6)
    assert sum(curve.loss[-3:]) / 3 < curve.loss[0] - 0.2
    accuracy = scalar_reward_model.pair_accuracy(
        fresh_rm, tiny_model.tokenizer, PAIRS, max_length=64, batch_size=3
    )
    assert accuracy == 1.0


def test_scores_do_not_depend_on_padding_or_batching(fresh_rm, tiny_model):
    with torch.no_grad():
        fresh_rm.head.weight.normal_(generator=torch.Generator().manual_seed(0))
    prompts = [p.prompt for p in PAIRS]
    responses = [p.chosen if i % 2 else p.rejected * (i + 1) for i, p in enumerate(PAIRS)]
    options = {"max_length": 128, "progress": False}
    batched = scalar_reward_model.score_responses(
        fresh_rm, tiny_model.tokenizer, prompts, responses, batch_size=8, **options
    )
    single = torch.cat(
        [
            scalar_reward_model.score_responses(
                fresh_rm, tiny_model.tokenizer, [p], [r], batch_size=1, **options
            )
            for p, r in zip(prompts, responses, strict=True)
        ]
    )
    assert torch.allclose(batched, single, atol=1e-5)


def test_save_and_load_give_the_same_scores(fresh_rm, tiny_model, tmp_path):
    with torch.no_grad():
        fresh_rm.head.weight.normal_(generator=torch.Generator().manual_seed(0))
    directory = scalar_reward_model.save_reward_model(fresh_rm, tmp_path / "rm", {"key": "k"})
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in directory.rglob("*"))
    assert json.loads((directory / "reward_model.json").read_text())["key"] == "k"
    loaded = scalar_reward_model.load_reward_model(directory)
    options = {"max_length": 64, "batch_size": 4, "progress": False}
    texts = ([p.prompt for p in PAIRS], [p.chosen for p in PAIRS])
    assert torch.equal(
        scalar_reward_model.score_responses(fresh_rm, tiny_model.tokenizer, *texts, **options),
        scalar_reward_model.score_responses(loaded, tiny_model.tokenizer, *texts, **options),
    )
    with pytest.raises(FileNotFoundError, match="no reward model"):
        scalar_reward_model.load_reward_model(tmp_path)


def test_online_dpo_rounds_sample_relabel_and_train(tiny_params, tiny_model, fresh_rm, tmp_path):
    import dataclasses

    with torch.no_grad():
        fresh_rm.head.weight.normal_(generator=torch.Generator().manual_seed(0))
    policy = load_model(tiny_params.model, seed=tiny_params.seed).model
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    prompts = [EvalPrompt(p.pair_id, p.prompt, "train", None, None) for p in PAIRS]
    training = dataclasses.replace(tiny_params.training, batch_size=2, learning_rate=1e-3)
    result = online_dpo(
        "online",
        model=policy,
        reference_model=load_model(tiny_params.model, seed=tiny_params.seed).model,
        tokenizer=tiny_model.tokenizer,
        prompts=prompts,
        reward_model=fresh_rm,
        training=training,
        online=OnlineParams(rounds=2, steps_per_round=2, prompts_per_round=3),
        decoding=DecodingConfig(max_new_tokens=6, do_sample=True, num_samples=3),
        generation_batch_size=4,
        reward_max_length=64,
        max_length=tiny_params.extraction.max_length,
        seed=0,
        out_dir=tmp_path / "online",
        progress=False,
    )
    assert [m["step"] for m in result.metrics] == [0, 1, 2, 3]
    assert [m["round"] for m in result.metrics] == [0, 0, 1, 1]
    assert (tmp_path / "online" / "policy" / "config.json").is_file()
    assert len((tmp_path / "online" / "round-01" / "samples.jsonl").read_text().splitlines()) == 9
    assert not (tmp_path / "online" / "round-00" / "checkpoints").exists()
    assert any(not torch.equal(v, policy.state_dict()[k]) for k, v in before.items())


def _online_run(policy, reference, tokenizer, training, out_dir, *, rounds=1):
    prompts = [EvalPrompt(p.pair_id, p.prompt, "train", None, None) for p in PAIRS]
    scorer = scalar_reward_model.ScalarRewardModel.from_causal_lm(copy.deepcopy(reference))
    with torch.no_grad():
        scorer.head.weight.normal_(generator=torch.Generator().manual_seed(0))
    return online_dpo(
        "online",
        model=policy,
        reference_model=reference,
        tokenizer=tokenizer,
        prompts=prompts,
        reward_model=scorer,
        training=training,
        online=OnlineParams(rounds=rounds, steps_per_round=3, prompts_per_round=4),
        decoding=DecodingConfig(max_new_tokens=6, do_sample=True, num_samples=3),
        generation_batch_size=4,
        reward_max_length=64,
        max_length=64,
        seed=0,
        out_dir=out_dir,
        progress=False,
    )


def _update_gap(updated: dict, reference_update: dict) -> float:
    """||update - reference_update|| / ||reference_update|| over all tensors."""
    diff = sum(float((updated[k] - reference_update[k]).pow(2).sum()) for k in reference_update)
    norm = sum(float(v.pow(2).sum()) for v in reference_update.values())
    return (diff / norm) ** 0.5


def _bfloat16_model(tiny_params):
    spec = dataclasses.replace(tiny_params.model, dtype="bfloat16")
    return load_model(spec, seed=tiny_params.seed).model


# bfloat16 autocast against float32, both from the same (bfloat16-representable) weights, lr 1e-5:
# AdamW's first updates are ~lr * sign(gradient), so they agree wherever the gradients agree in
# sign, and autocast's bfloat16 matmuls flip only a few small entries. Measured here: a gap of
# 0.013 (online DPO) and 0.026 (reward model); bfloat16 weights stepped directly, as before, give
# 0.94 and 0.93 (only ~15 % of their entries move at all). 0.2 leaves room for other CPUs' kernels.
UPDATE_GAP_TOLERANCE = 0.2


def test_online_dpo_trains_float32_master_weights_under_bf16_autocast(tiny_params, tmp_path):
    base = _bfloat16_model(tiny_params)
    start = {k: v.float() for k, v in base.state_dict().items()}
    runs = {}
    for mixed, policy in (("bf16", copy.deepcopy(base)), ("no", copy.deepcopy(base).float())):
        training = dataclasses.replace(
            tiny_params.training,
            batch_size=2,
            learning_rate=1e-5,
            mixed_precision=mixed,
            gradient_checkpointing=mixed == "bf16",
        )
        reference = copy.deepcopy(base).float()
        _online_run(
            policy,
            reference,
            load_model(tiny_params.model, seed=tiny_params.seed).tokenizer,
            training,
            tmp_path / mixed,
        )
        assert all(p.dtype == torch.float32 for p in policy.parameters())
        runs[mixed] = {k: v.float() - start[k] for k, v in policy.state_dict().items()}
    unchanged = [k for k, update in runs["bf16"].items() if not update.any()]
    assert unchanged == [], unchanged
    assert _update_gap(runs["bf16"], runs["no"]) < UPDATE_GAP_TOLERANCE


def test_reward_model_trains_float32_master_weights_under_bf16_autocast(tiny_params, tiny_model):
    base = _bfloat16_model(tiny_params)
    start = {k: v.float() for k, v in base.state_dict().items()}
    updates = {}
    for mixed, body in (("bf16", copy.deepcopy(base)), ("no", copy.deepcopy(base).float())):
        rm = scalar_reward_model.ScalarRewardModel.from_causal_lm(body)
        scalar_reward_model.train_reward_model(
            rm,
            tiny_model.tokenizer,
            PAIRS,
            steps=4,
            batch_size=4,
            learning_rate=1e-5,
            max_length=64,
            seed=0,
            mixed_precision=mixed,
            gradient_checkpointing=mixed == "bf16",
            progress=False,
        )
        assert all(p.dtype == torch.float32 for p in rm.parameters())
        updates[mixed] = {
            k: v.float() - start[f"model.{k}"] for k, v in rm.body.state_dict().items()
        }
    unchanged = [k for k, update in updates["bf16"].items() if not update.any()]
    assert unchanged == [], unchanged
    assert _update_gap(updates["bf16"], updates["no"]) < UPDATE_GAP_TOLERANCE
    scored = scalar_reward_model.for_scoring(rm, torch.bfloat16)
    assert next(scored.body.parameters()).dtype == torch.bfloat16
    assert scored.head.weight.dtype == torch.float32


def test_online_dpo_with_lora_trains_every_adapter_and_saves_a_merged_policy(tiny_params, tmp_path):
    from repsafe_lib.models import load_reference, nf4_supported
    from repsafe_lib.params import LoraParams
    from repsafe_lib.training import prepare_policy

    training = dataclasses.replace(
        tiny_params.training,
        batch_size=2,
        learning_rate=1e-3,
        lora=LoraParams(r=4, alpha=8.0),
        gradient_checkpointing=True,
    )
    policy = prepare_policy(load_model(tiny_params.model, seed=tiny_params.seed).model, training)
    adapters = {n: p for n, p in policy.named_parameters() if "lora_" in n}
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if "lora_" not in n}
    before = {n: p.detach().clone() for n, p in adapters.items()}
    assert adapters and all(p.requires_grad for p in adapters.values())
    # a frozen NF4 reference is safe on CPU (a 4-bit *trained* model would get no gradients)
    quantization = "nf4" if nf4_supported() else "none"
    reference = load_reference(tiny_params.model, seed=tiny_params.seed, quantization=quantization)
    result = _online_run(
        policy, reference.model, reference.tokenizer, training, tmp_path / "online", rounds=2
    )
    assert [m["round"] for m in result.metrics] == [0, 0, 0, 1, 1, 1]
    unchanged = [n for n, p in adapters.items() if torch.equal(p.detach(), before[n])]
    assert unchanged == [], unchanged
    assert all(
        torch.equal(p.detach(), frozen[n])
        for n, p in policy.named_parameters()
        if n in frozen and "lora_" not in n and "base_layer" not in n
    )
    saved = load_model(
        dataclasses.replace(
            tiny_params.model, kind="hub", source=str(tmp_path / "online" / "policy")
        )
    ).model
    assert not any("lora_" in n for n, _ in saved.named_parameters())
    base = load_model(tiny_params.model, seed=tiny_params.seed).model.state_dict()
    changed = {k for k, v in saved.state_dict().items() if not torch.equal(v, base[k])}
    assert changed and all(
        k.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj") for k in changed
    )


def test_reward_model_with_lora_trains_adapters_then_merges_them(tiny_params, tiny_model):
    from repsafe_lib.params import LoraParams

    rm = scalar_reward_model.ScalarRewardModel.from_causal_lm(
        load_model(tiny_params.model, seed=tiny_params.seed).model
    )
    start = {k: v.clone() for k, v in rm.state_dict().items()}
    curve = scalar_reward_model.train_reward_model(
        rm,
        tiny_model.tokenizer,
        PAIRS,
        steps=6,
        batch_size=4,
        learning_rate=3e-3,
        max_length=64,
        seed=0,
        lora=LoraParams(r=4, alpha=8.0, target_modules=("q_proj", "v_proj")),
        progress=False,
    )
    assert sum(curve.loss[-2:]) / 2 < curve.loss[0]
    after = rm.state_dict()
    assert set(after) == set(start)  # merged: a plain body again, saveable as before
    changed = {k for k in start if not torch.equal(start[k], after[k])}
    adapted = {k for k in start if k.endswith(("q_proj.weight", "v_proj.weight"))}
    assert changed == adapted | {"head.weight", "head.bias"}


def test_cached_reward_model_reloads_onto_the_device_and_dtype_it_scores_in(
    fresh_rm, tiny_model, tmp_path, monkeypatch
):
    from repsafe_lib import models

    directory = scalar_reward_model.save_reward_model(fresh_rm, tmp_path / "rm", {"key": "k"})
    asked = []
    real_pick_device = models.pick_device

    def pick_device(requested="auto"):
        asked.append(requested)
        return real_pick_device("cpu")  # the only device this machine has

    monkeypatch.setattr(models, "pick_device", pick_device)
    loaded = scalar_reward_model.load_reward_model(directory, dtype=torch.bfloat16, device="cuda")
    assert asked == ["cuda"]
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}
    assert {p.dtype for p in loaded.body.parameters()} == {torch.bfloat16}
    assert loaded.head.weight.dtype == torch.float32


def test_cache_key_names_the_base_settings_recipe_pairs_and_seed(tiny_params):
    key = scalar_reward_model.cache_key(
        "weights-fp", tiny_params.sampling.reward_model, tiny_params.training, PAIRS[:2], 3
    )
    assert key == {
        "base": "weights-fp",
        "settings": "RewardModelParams(steps=4, batch_size=4, learning_rate=0.001, max_length=128)",
        "recipe": ["no", "None", "fp32-master"],
        "pairs": ["p0", "p1"],
        "seed": 3,
    }


def _fit_options(tiny_params, tiny_model, **changes) -> dict:
    settings = dataclasses.replace(tiny_params.sampling.reward_model, steps=3, max_length=64)
    options = {
        "base": tiny_model,
        "model_params": tiny_params.model,
        "training": tiny_params.training,
        "settings": settings,
        "pairs": PAIRS,
        "seed": 0,
    }
    return options | changes


def _scores(model, tokenizer) -> torch.Tensor:
    prompts, responses = [p.prompt for p in PAIRS], [p.rejected for p in PAIRS]
    return scalar_reward_model.score_responses(
        model, tokenizer, prompts, responses, max_length=64, batch_size=4, progress=False
    )


def test_fit_or_load_trains_once_then_reloads_while_the_key_holds(
    tiny_params, tiny_model, tmp_path, monkeypatch
):
    directory = tmp_path / "reward_model"
    options = _fit_options(tiny_params, tiny_model)
    fitted, curve = scalar_reward_model.fit_or_load(directory, **options)
    assert len(curve.loss) == 3
    assert curve.loss[0] == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-6)
    saved = json.loads((directory / "reward_model.json").read_text())
    assert saved["curve"] == {"loss": curve.loss, "accuracy": curve.accuracy}
    assert saved["key"] == scalar_reward_model.cache_key(
        tiny_model.fingerprint, options["settings"], tiny_params.training, PAIRS, 0
    )

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the saved key matches")

    with monkeypatch.context() as patch:
        patch.setattr(scalar_reward_model, "fit_reward_model", no_training)
        loaded, again = scalar_reward_model.fit_or_load(directory, **options)
    assert again == curve
    assert torch.equal(_scores(loaded, tiny_model.tokenizer), _scores(fitted, tiny_model.tokenizer))
    scalar_reward_model.fit_or_load(
        directory, **(options | {"seed": 1})
    )  # another key: trained again
    assert json.loads((directory / "reward_model.json").read_text())["key"]["seed"] == 1


def test_fit_or_load_trains_again_over_a_cut_off_or_half_saved_model(
    tiny_params, tiny_model, tmp_path
):
    directory = tmp_path / "reward_model"
    options = _fit_options(tiny_params, tiny_model)
    _, curve = scalar_reward_model.fit_or_load(directory, **options)
    metadata = directory / "reward_model.json"
    metadata.write_text(metadata.read_text()[:40])  # cut off: an edit by hand, a disk fault
    staging = directory.with_name(f".{directory.name}.partial")
    staging.mkdir()  # a save killed before its rename
    (staging / "head.safetensors").write_bytes(b"cut")
    _, again = scalar_reward_model.fit_or_load(directory, **options)
    assert again == curve  # seeded: the same fit
    assert not staging.exists()
    assert json.loads(metadata.read_text())["curve"]["loss"] == curve.loss


def test_the_command_line_trains_the_reward_model_notebook_05_then_reuses(
    tiny_params, tiny_model, tmp_path, monkeypatch, capsys
):
    """`python -m repsafe_lib.training --reward-model`, in this one process: trained on notebook
    00's training pairs and saved under the key notebook 05's `fit_or_load` looks up."""
    from repsafe_lib import paths
    from repsafe_lib.records import write_records
    from repsafe_lib.training import cli

    monkeypatch.setenv(paths.OUTPUTS_ENV_VAR, str(tmp_path))
    pairs_file = paths.notebook_dir(tiny_params.profile, "00_data") / "pairs_train.jsonl"
    pairs_file.parent.mkdir(parents=True)
    write_records(pairs_file, PAIRS)
    assert cli.main(["--params", "params/tiny.yaml", "--reward-model"]) == 0
    directory = paths.notebook_dir(tiny_params.profile, "05_sampling") / "reward_model"
    assert f"saved in {directory}" in capsys.readouterr().out

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the saved key matches")

    monkeypatch.setattr(scalar_reward_model, "fit_reward_model", no_training)
    _, curve = scalar_reward_model.fit_or_load(
        directory,
        base=tiny_model,
        model_params=tiny_params.model,
        training=tiny_params.training,
        settings=tiny_params.sampling.reward_model,
        pairs=PAIRS,
        seed=tiny_params.seed,
    )
    assert len(curve.loss) == tiny_params.sampling.reward_model.steps
    assert cli.main(["--params", "params/tiny.yaml", "--reward-model"]) == 0
    assert "holds it already" in capsys.readouterr().out


def test_base_fingerprint_is_the_loaded_models(tiny_params, tiny_model):
    from repsafe_lib.models import base_fingerprint

    assert base_fingerprint(tiny_params.model, seed=tiny_params.seed) == tiny_model.fingerprint


def test_the_command_line_trains_the_online_run_notebook_05_then_reads_back(
    tiny_params, tiny_model, tmp_path, monkeypatch, capsys
):
    """`python -m repsafe_lib.training --online`, in this one process: the reward model, then
    the online run, which notebook 05's `train_online` reads back instead of training again."""
    from repsafe_lib import online, paths, sampled_variants
    from repsafe_lib.records import write_records
    from repsafe_lib.training import cli

    monkeypatch.setenv(paths.OUTPUTS_ENV_VAR, str(tmp_path))
    pairs_file = paths.notebook_dir(tiny_params.profile, "00_data") / "pairs_train.jsonl"
    pairs_file.parent.mkdir(parents=True)
    write_records(pairs_file, PAIRS)
    assert cli.main(["--params", "params/tiny.yaml", "--online"]) == 0
    notebook = paths.notebook_dir(tiny_params.profile, "05_sampling")
    settings = tiny_params.sampling.online
    steps = settings.rounds * settings.steps_per_round
    assert f"online: {steps} steps" in capsys.readouterr().out

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although a finished run of the same key is there")

    monkeypatch.setattr(scalar_reward_model, "fit_reward_model", no_training)
    monkeypatch.setattr(online, "online_dpo", no_training)
    reward_model, _ = scalar_reward_model.fit_or_load(
        notebook / "reward_model",
        base=tiny_model,
        model_params=tiny_params.model,
        training=tiny_params.training,
        settings=tiny_params.sampling.reward_model,
        pairs=PAIRS,
        seed=tiny_params.seed,
    )
    options = {"reference_quantization": "none", "out_dir": notebook / "online"}
    result = sampled_variants.train_online(
        tiny_params, tiny_model.tokenizer, PAIRS, reward_model, **options
    )
    assert [row["step"] for row in result.metrics] == list(range(steps))
    assert (result.policy_dir / "config.json").is_file()
    with torch.no_grad():
        reward_model.head.weight.add_(1.0)  # another reward model: trained again
    with pytest.raises(AssertionError, match="trained again"):
        sampled_variants.train_online(
            tiny_params, tiny_model.tokenizer, PAIRS, reward_model, **options
        )


def test_process_shares_cover_every_prompt_once_and_pad_to_one_size():
    from repsafe_lib.online import process_share

    for items, processes in ((list(range(5)), 2), (list(range(8)), 4), (["a"], 3), ([], 2)):
        shares = [process_share(items, index, processes) for index in range(processes)]
        real = [item for share, count in shares for item in share[:count]]
        assert sorted(real) == sorted(items)
        assert len({len(share) for share, _ in shares}) == 1  # as many batches everywhere
        assert all(set(share) <= set(items) for share, _ in shares)


def test_a_model_saved_from_a_gathered_state_records_the_dtype_written(fresh_rm, tmp_path):
    """As FSDP's fit saves it: the whole state, body cast to the policy's dtype, written in place
    of the (float32) module's own weights."""
    state = scalar_reward_model.scoring_state(fresh_rm.state_dict(), torch.bfloat16)
    directory = scalar_reward_model.save_reward_model(
        fresh_rm, tmp_path / "rm", {"key": "k"}, state_dict=state
    )
    config = json.loads((directory / "body" / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    loaded = scalar_reward_model.load_reward_model(directory, device="cpu")  # as saved
    assert {p.dtype for p in loaded.body.parameters()} == {torch.bfloat16}
    assert loaded.head.weight.dtype == torch.float32
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, state[name]), name
