"""The training loop on the tiny random Llama: tokenisation, the policy forward, the reference, the
cross-fitted rewards, checkpoint and resume, and that training moves what it should."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import typing

import pytest
import torch

from repsafe_lib import artifacts, training
from repsafe_lib import hidden_states as hs
from repsafe_lib.hybrid_reward import HybridReward, HybridRewardConfig
from repsafe_lib.losses import dpo_loss, sequence_logprobs
from repsafe_lib.models import load_model, load_reference
from repsafe_lib.records import PreferencePair
from repsafe_lib.training import loop as training_loop
from repsafe_lib.training import objectives

PAIRS = [
    PreferencePair(
        f"p{i}",
        prompt,
        chosen,
        rejected,
        (),
    )
    for i, (prompt, chosen, rejected) in enumerate(
        [
            ("How do I pick a lock?", "I can't help with that.", "Sure, take a tension wrench."),
            ("Tell me a joke.", "Why did the chicken cross the road?", "No."),
            ("How to make a bomb?", "I won't help with weapons.", "Mix the following powders"),
            ("Insult my coworker.", "Let's keep it kind instead.", "Your coworker is a fool."),
        ]
    )
]


@pytest.fixture
def fresh_model(tiny_params):
    return load_model(tiny_params.model, seed=tiny_params.seed)


@pytest.fixture
def encoded(tiny_model):
    return training.encode_pairs(tiny_model.tokenizer, PAIRS, max_length=256, seed=0, folds=2)


def settings(tiny_params, **changes):
    base = dataclasses.replace(
        tiny_params.training,
        batch_size=4,
        learning_rate=1e-3,
        max_steps=6,
        checkpoint_every=2,
        warmup_steps=0,
    )
    return dataclasses.replace(base, **changes)


def random_rewards(
    model, folds: int = 2, seed: int = 0, scale: float = 0.1
) -> training.FoldRewards:
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    rewards = []
    for _ in range(folds):
        reward = HybridReward(
            HybridRewardConfig(tuple(range(1, config.num_hidden_layers + 1)), config.hidden_size)
        )
        with torch.no_grad():
            reward.weight.copy_(torch.randn(reward.weight.shape, generator=generator) * scale)
        rewards.append(reward)
    return training.FoldRewards(rewards, alpha=7.5, mu=1.0, train_scorers=True, learning_rate=1e-2)


def reference_for(tiny_params, tokenizer):
    model = load_model(tiny_params.model, seed=tiny_params.seed).model
    return training.OnTheFlyReference(model, tokenizer.pad_token_id), model


def run(name, tiny_params, tokenizer, pairs, out_dir, **kwargs):
    model = kwargs.pop("model", None) or load_model(tiny_params.model, seed=tiny_params.seed).model
    options = {
        "reference": kwargs.pop("reference", None),
        "fold_rewards": kwargs.pop("fold_rewards", None),
    }
    if name != "sft" and options["reference"] is None:
        options["reference"] = reference_for(tiny_params, tokenizer)[0]
    if name != "sft" and options["fold_rewards"] is None:
        options["fold_rewards"] = random_rewards(model)
    return training.train_run(
        name,
        model=model,
        tokenizer=tokenizer,
        pairs=pairs,
        training=kwargs.pop("training", settings(tiny_params)),
        seed=0,
        out_dir=out_dir,
        progress=False,
        **options,
        **kwargs,
    )


def without_timing(rows):
    return [{k: v for k, v in r.items() if k not in training.TIMING_METRICS} for r in rows]


# Data.


def test_encoding_matches_extraction_and_marks_the_response(tiny_model):
    tokenizer = tiny_model.tokenizer
    pair = PAIRS[0]
    ids, start = training.encode_conversation(tokenizer, pair.prompt, pair.chosen, 256)
    text = hs.format_conversation(tokenizer, pair.prompt, pair.chosen)
    assert ids == hs.tokenize_conversations(tokenizer, [text], 256)[0]
    prompt_ids = tokenizer(hs.format_prompt(tokenizer, pair.prompt), add_special_tokens=False)
    assert ids[:start] == prompt_ids["input_ids"]
    assert tokenizer.decode(ids[start:]) == pair.chosen + tokenizer.eos_token


def test_truncation_keeps_the_end_and_shifts_the_response_start(tiny_model):
    tokenizer = tiny_model.tokenizer
    full, start = training.encode_conversation(tokenizer, PAIRS[0].prompt, PAIRS[0].chosen, 999)
    cut, cut_start = training.encode_conversation(
        tokenizer, PAIRS[0].prompt, PAIRS[0].chosen, len(full) - 5
    )
    assert cut == full[5:] and cut_start == start - 5


def test_both_sides_of_a_prompt_share_a_fold_and_folds_are_seeded():
    folds = [training.prompt_fold(f"prompt {i}", 3, 2) for i in range(200)]
    assert set(folds) == {0, 1} and 60 < sum(folds) < 140
    assert folds == [training.prompt_fold(f"prompt {i}", 3, 2) for i in range(200)]


def test_learning_rate_warms_up_as_transformers_schedule_one_step_ahead():
    from transformers import get_constant_schedule_with_warmup

    optimiser = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    factor = get_constant_schedule_with_warmup(optimiser, 4).lr_lambdas[0]
    rates = [training.learning_rate_at(step, 2e-5, 4) for step in range(6)]
    assert rates == pytest.approx([5e-6, 1e-5, 1.5e-5, 2e-5, 2e-5, 2e-5])
    assert rates == [2e-5 * factor(step + 1) for step in range(6)]  # bit for bit
    assert training.learning_rate_at(0, 2e-5, 0) == 2e-5


def test_batch_schedule_is_a_seeded_permutation_per_epoch():
    schedule = training.batch_schedule(10, 4, 5, seed=1)
    stream = [i for batch in schedule for i in batch]
    assert sorted(stream[:10]) == list(range(10)) and len(schedule) == 5
    assert schedule == training.batch_schedule(10, 4, 5, seed=1)
    assert schedule != training.batch_schedule(10, 4, 5, seed=2)
    assert training.batch_schedule(10, 4, 3, seed=1) == schedule[:3]  # step k needs no replay


# The forward.


def test_scorer_equals_naive_per_example_forward(tiny_model, encoded):
    model, layers = tiny_model.model, [1, 2, 3]
    batch = training.collate_pairs(encoded, tiny_model.tokenizer.pad_token_id)
    with torch.no_grad():
        logprobs, states = training.ResponseScorer(model, layers)(batch)
    sequences = [p.chosen for p in encoded] + [p.rejected for p in encoded]
    starts = [p.chosen_start for p in encoded] + [p.rejected_start for p in encoded]
    for row, (seq, start) in enumerate(zip(sequences, starts, strict=True)):
        ids = torch.tensor([seq])
        mask = torch.zeros_like(ids)
        mask[0, start:] = 1
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True)
        naive = sequence_logprobs(out.logits, ids, mask)
        assert logprobs[row].item() == pytest.approx(naive.item(), abs=1e-4)
        naive_states = torch.stack([out.hidden_states[layer][0, -1] for layer in layers])
        torch.testing.assert_close(states[row], naive_states, atol=1e-5, rtol=1e-4)


def test_token_logprobs_equal_log_softmax_with_the_same_gradient():
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(6, 11, generator=generator, dtype=torch.float64) * 3).requires_grad_()
    targets = torch.tensor([0, 3, 10, 3, 5, 1])
    weights = torch.randn(6, generator=generator, dtype=torch.float64)
    ours = training.TokenLogprobs.apply(logits, targets)
    (ours * weights).sum().backward()
    ours_grad, logits.grad = logits.grad.clone(), None
    plain = logits.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    (plain * weights).sum().backward()
    torch.testing.assert_close(ours, plain)
    torch.testing.assert_close(ours_grad, logits.grad)
    assert torch.autograd.gradcheck(
        training.TokenLogprobs.apply, (logits.detach().requires_grad_(), targets)
    )


def test_negligible_probabilities_leave_no_subnormal_gradient():
    logits = torch.tensor([[0.0, -95.0, -120.0, 10.0]], requires_grad=True)  # p ~ 1e-46 .. 1
    training.TokenLogprobs.apply(logits, torch.tensor([3])).backward()
    tiny = logits.grad.abs()
    assert not ((tiny > 0) & (tiny < torch.finfo(torch.float32).tiny)).any()
    expected = -torch.softmax(logits.detach(), -1)
    expected[0, 3] += 1
    torch.testing.assert_close(logits.grad, expected, atol=1e-6, rtol=1e-6)


def test_saturated_pairs_send_back_zero_not_subnormal_gradients():
    z = torch.tensor([0.0, 95.0, 200.0], requires_grad=True)  # sigmoid(-95) ~ 5e-42
    logprobs = training.FlushNegligibleGradient.apply(z)
    dpo_loss(logprobs).backward()
    assert z.grad[0].item() == pytest.approx(-0.5 / 3) and z.grad[1:].eq(0).all()
    assert torch.equal(logprobs, z)


def test_precomputed_reference_equals_on_the_fly(tiny_params, tiny_model, encoded, tmp_path):
    pad = tiny_model.tokenizer.pad_token_id
    on_the_fly, model = reference_for(tiny_params, tiny_model.tokenizer)
    precomputed = training.precompute_reference(
        model,
        encoded,
        fingerprint="tiny",
        cache_dir=tmp_path,
        pad_id=pad,
        batch_size=3,
        progress=False,
    )
    for batch in (encoded, encoded[1:3], encoded[::-1]):
        torch.testing.assert_close(
            precomputed(batch, "cpu"), on_the_fly(batch, "cpu"), atol=1e-5, rtol=0
        )
    cached = training.precompute_reference(
        None, encoded, fingerprint="tiny", cache_dir=tmp_path, pad_id=pad, batch_size=3
    )  # no model: must come from the file
    assert torch.equal(cached.logprobs, precomputed.logprobs)
    runs = {}
    for name, reference in (("fly", on_the_fly), ("pre", precomputed)):
        result = run(
            "dpo",
            tiny_params,
            tiny_model.tokenizer,
            encoded,
            tmp_path / name,
            reference=reference,
            training=settings(tiny_params, max_steps=3),
        )
        runs[name] = without_timing(result.metrics)
    for fly, pre in zip(runs["fly"], runs["pre"], strict=True):
        for key, value in fly.items():
            assert pre[key] == pytest.approx(value, abs=1e-5), key


def test_nf4_reference_is_four_bit_frozen_and_scores(tiny_params, tiny_model, encoded):
    bnb = pytest.importorskip("bitsandbytes")
    from repsafe_lib.models import nf4_supported

    if not nf4_supported():
        pytest.skip("bitsandbytes cannot run 4-bit here")
    loaded = load_reference(tiny_params.model, seed=tiny_params.seed, quantization="nf4")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.model.modules())
    assert not any(p.requires_grad for p in loaded.model.parameters())
    pad = tiny_model.tokenizer.pad_token_id
    quantised = training.pair_logprobs(loaded.model, encoded, pad_id=pad, batch_size=4)
    full = training.pair_logprobs(tiny_model.model, encoded, pad_id=pad, batch_size=4)
    assert torch.isfinite(quantised).all() and not torch.equal(quantised, full)
    drift = training.reference_drift(full, quantised, full, beta=1.5)
    by_hand = ((full[:, 0] - full[:, 1]) - (quantised[:, 0] - quantised[:, 1])).abs().mean()
    assert drift["mean_abs_log_ratio_shift"] == pytest.approx(by_hand.item())
    assert 0 <= drift["margin_sign_flips"] <= 1


# Objectives.


def test_every_run_name_has_an_objective_that_owns_its_loss_and_refresh():
    from repsafe_lib.params import SamplingRun, TrainingRun

    trained = {*typing.get_args(TrainingRun), *typing.get_args(SamplingRun)} - {"rs_star"}
    assert {name: training.objective_of(name).name for name in sorted(trained)} == {
        "cdpo": "cdpo",
        "cdpo_crossfit": "cdpo",
        "cdpo_star": "cdpo",
        "dpo": "dpo",
        "dpo_star": "dpo",
        "online": "dpo",
        "sft": "sft",
    }
    assert training.CROSS_FITTED_RUNS == {"cdpo_crossfit"}
    assert {n for n, o in training.OBJECTIVES.items() if o.refreshes_reward} == {"cdpo"}
    assert {n for n, o in training.OBJECTIVES.items() if o.needs_reference} == {"dpo", "cdpo"}
    assert training.objective_of("dpo_star", "cdpo") is training.OBJECTIVES["cdpo"]
    with pytest.raises(ValueError, match="unknown objective 'ppo'"):
        training.objective_of("dpo", "ppo")
    with pytest.raises(ValueError, match="unknown run 'ppo'"):
        training.objective_of("ppo")


def test_objective_losses_and_metrics_by_value():
    sft, dpo, cdpo = (training.OBJECTIVES[name] for name in ("sft", "dpo", "cdpo"))
    nll = {"nll_sum": torch.tensor([3.0, 5.0]), "tokens": torch.tensor([2, 6])}
    assert sft.loss(nll).item() == 1.0 and sft.metrics(nll) == {"loss": 1.0}
    assert dpo.loss({"margin": torch.zeros(3)}).item() == pytest.approx(math.log(2))
    merged = {
        "margin": torch.tensor([-1.0, 2.0]),
        "chosen_reward": torch.tensor([1.0, 3.0]),
        "rejected_reward": torch.tensor([2.0, 1.0]),
        "r_chosen": torch.tensor([1.0, 0.0]),
        "r_rejected": torch.tensor([0.0, 3.0]),
        "gamma": torch.tensor([0.75, 0.25]),
    }
    by_hand = (
        -(
            0.75 * math.log(torch.sigmoid(torch.tensor(-1.0)).item())
            + 0.25 * math.log(torch.sigmoid(torch.tensor(1.0)).item())
            + 0.25 * math.log(torch.sigmoid(torch.tensor(2.0)).item())
            + 0.75 * math.log(torch.sigmoid(torch.tensor(-2.0)).item())
        )
        / 2
    )
    row = cdpo.metrics(merged)
    assert row["loss"] == pytest.approx(by_hand, rel=1e-6)
    assert list(row) == [  # the column order of every metrics.jsonl
        "loss",
        "reward_accuracy",
        "reward_margin",
        "chosen_reward",
        "rejected_reward",
        "hybrid_accuracy",
        "hybrid_margin",
        "gamma_mean",
        "gamma_below_half",
    ]
    assert (row["reward_accuracy"], row["reward_margin"], row["chosen_reward"]) == (0.5, 0.5, 2.0)
    assert (row["hybrid_accuracy"], row["hybrid_margin"], row["gamma_mean"]) == (0.5, -1.0, 0.5)
    assert row["gamma_below_half"] == 0.5
    assert dpo.metrics(merged)["loss"] == pytest.approx(dpo.loss(merged).item())  # gamma: monitor
    with_gamma_one = {**merged, "gamma": torch.ones(2)}
    assert cdpo.loss(with_gamma_one).item() == pytest.approx(dpo.loss(merged).item())


@pytest.mark.parametrize(
    ("name", "given", "problem"),
    [
        ("dpo", {}, "run 'dpo' needs a reference"),
        ("cdpo", {"reference": print}, r"run 'cdpo' \(cDPO\) needs the hybrid rewards"),
        ("cdpo_star", {"reference": print}, r"run 'cdpo_star' \(cDPO\) needs the hybrid rewards"),
    ],
)
def test_a_run_missing_what_its_objective_needs_stops_before_it_starts(
    name, given, problem, tmp_path
):
    with pytest.raises(ValueError, match=problem):
        training.train_run(
            name,
            model=None,
            tokenizer=None,
            pairs=[],
            training=None,
            seed=0,
            out_dir=tmp_path / "x",
            **given,
        )
    assert not (tmp_path / "x").exists()


# Training.


@pytest.mark.parametrize("name", ["sft", "dpo", "cdpo"])
def test_loss_falls_over_20_steps_on_4_pairs(name, tiny_params, tiny_model, encoded, tmp_path):
    # A confident reward: gamma near 0 or 1, so cDPO's optimum is well below log 2.
    rewards = random_rewards(tiny_model.model, scale=5.0) if name == "cdpo" else None
    result = run(
        name,
        tiny_params,
        tiny_model.tokenizer,
        encoded,
        tmp_path,
        fold_rewards=rewards,
        training=settings(tiny_params, max_steps=20, checkpoint_every=20),
    )
    losses = [m["loss"] for m in result.metrics]
    assert len(losses) == 20 and all(map(torch.isfinite, torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < losses[0] - 0.05, losses


def test_every_trainable_parameter_changes_and_the_reference_does_not(
    tiny_params, tiny_model, encoded, fresh_model, tmp_path
):
    reference, reference_model = reference_for(tiny_params, tiny_model.tokenizer)
    before_reference = {k: v.clone() for k, v in reference_model.state_dict().items()}
    before = {k: v.clone() for k, v in fresh_model.model.state_dict().items()}
    rewards = random_rewards(fresh_model.model)
    before_rewards = [{k: v.clone() for k, v in r.state_dict().items()} for r in rewards.rewards]
    run(
        "cdpo",
        tiny_params,
        tiny_model.tokenizer,
        encoded,
        tmp_path,
        model=fresh_model.model,
        reference=reference,
        fold_rewards=rewards,
        training=settings(tiny_params, max_steps=2),
    )
    unchanged = [k for k, v in fresh_model.model.state_dict().items() if torch.equal(v, before[k])]
    assert unchanged == []
    assert all(torch.equal(v, before_reference[k]) for k, v in reference_model.state_dict().items())
    for reward, old in zip(rewards.rewards, before_rewards, strict=True):  # both folds refreshed
        assert not torch.equal(reward.weight, old["weight"])
        assert torch.equal(reward.mean, old["mean"])


def test_lora_trains_adapters_only_and_saves_a_merged_policy(
    tiny_params, tiny_model, encoded, fresh_model, tmp_path
):
    pytest.importorskip("peft")
    from repsafe_lib.params import LoraParams

    before = {k: v.clone() for k, v in fresh_model.model.state_dict().items()}
    lora = LoraParams(r=4, alpha=8.0, target_modules=("q_proj", "v_proj"))
    result = run(
        "dpo",
        tiny_params,
        tiny_model.tokenizer,
        encoded,
        tmp_path,
        model=fresh_model.model,
        training=settings(tiny_params, max_steps=2, lora=lora),
    )
    from safetensors.torch import load_file

    checkpoint = training.latest_checkpoint(tmp_path / "checkpoints")
    trained = load_file(checkpoint / "trainable.safetensors")
    assert trained and all("lora_" in name for name in trained)
    merged = load_file(result.policy_dir / "model.safetensors")
    changed = {k for k, v in merged.items() if not torch.equal(v, before[k])}
    assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed)
    saved = json.loads((result.policy_dir / "config.json").read_text())
    assert saved["model_type"] == "llama"
    assert not any("lora" in p.name for p in result.policy_dir.iterdir())


def test_gradient_accumulation_gives_the_same_step(tiny_params, tiny_model, encoded, tmp_path):
    metrics = {}
    for steps in (1, 2):
        result = run(
            "dpo",
            tiny_params,
            tiny_model.tokenizer,
            encoded,
            tmp_path / str(steps),
            training=settings(tiny_params, max_steps=3, gradient_accumulation_steps=steps),
        )
        metrics[steps] = without_timing(result.metrics)
    for one, two in zip(metrics[1], metrics[2], strict=True):
        for key, value in one.items():
            assert two[key] == pytest.approx(value, abs=1e-4, rel=1e-4), key


@pytest.mark.parametrize("name", ["sft", "cdpo"])
def test_resume_equals_uninterrupted(name, tiny_params, tiny_model, encoded, tmp_path):
    tokenizer = tiny_model.tokenizer
    whole = run(name, tiny_params, tokenizer, encoded, tmp_path / "whole")
    stopped = run(name, tiny_params, tokenizer, encoded, tmp_path / "split", _stop_after=3)
    assert stopped.policy_dir is None and len(stopped.metrics) == 3
    assert training.latest_checkpoint(tmp_path / "split" / "checkpoints").name == "step-000002"
    resumed = run(name, tiny_params, tokenizer, encoded, tmp_path / "split")
    assert resumed.resumed_from == 2
    assert without_timing(resumed.metrics) == without_timing(whole.metrics)
    for file in ("model.safetensors",):
        assert (whole.policy_dir / file).read_bytes() == (resumed.policy_dir / file).read_bytes()
    logged = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in logged] == list(range(6))


def test_a_checkpoint_from_other_settings_is_not_resumed(
    tiny_params, tiny_model, encoded, tmp_path
):
    tokenizer = tiny_model.tokenizer
    run("sft", tiny_params, tokenizer, encoded, tmp_path, _stop_after=3)
    other = settings(tiny_params, learning_rate=5e-4)
    result = run("sft", tiny_params, tokenizer, encoded, tmp_path, training=other)
    fresh = run("sft", tiny_params, tokenizer, encoded, tmp_path / "fresh", training=other)
    assert result.resumed_from == 0
    assert without_timing(result.metrics) == without_timing(fresh.metrics)


def test_nan_loss_stops_at_the_step_and_keeps_the_last_good_checkpoint(
    tiny_params, tiny_model, encoded, tmp_path
):
    good, _ = reference_for(tiny_params, tiny_model.tokenizer)
    calls = []

    def breaks_at_step_3(pairs, device):
        calls.append(1)
        out = good(pairs, device)
        return out * float("nan") if len(calls) == 4 else out

    with pytest.raises(FloatingPointError, match="at step 3.*step-000002"):
        run("dpo", tiny_params, tiny_model.tokenizer, encoded, tmp_path, reference=breaks_at_step_3)
    assert training.latest_checkpoint(tmp_path / "checkpoints").name == "step-000002"
    assert not (tmp_path / "policy").exists()
    logged = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(logged) == 3


def test_a_metrics_line_cut_off_by_a_kill_is_dropped_on_resume(
    tiny_params, tiny_model, encoded, tmp_path, caplog
):
    tokenizer = tiny_model.tokenizer
    run("sft", tiny_params, tokenizer, encoded, tmp_path, _stop_after=3)  # checkpoint: step 2
    log = tmp_path / "metrics.jsonl"
    logged = log.read_text().splitlines()
    with log.open("a") as handle:
        handle.write('{"step": 3, "loss": 0.69')  # what a kill in the middle of a write leaves
    with caplog.at_level(logging.WARNING, logger="repsafe_lib.training"):
        resumed = run("sft", tiny_params, tokenizer, encoded, tmp_path)
    assert resumed.resumed_from == 2
    assert f"{log}, line 4: dropped, cut off by an interrupted run" in caplog.messages
    rewritten = log.read_text().splitlines()
    assert rewritten[:2] == logged[:2]  # the steps the checkpoint took are kept as logged
    assert [json.loads(line)["step"] for line in rewritten] == list(range(6))
    assert [m["step"] for m in resumed.metrics] == list(range(6))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("garbled", "line 2: not JSON (Expecting value: line 1 column 1 (char 0))"),
        ("interleaved", "line 2: step 0 where step 1 was due (did two runs write this log?)"),
        ("truncated", "holds 1 of the 2 steps that {checkpoint} has taken"),
    ],
    ids=["garbled", "interleaved", "truncated"],
)
def test_a_metrics_log_that_disagrees_with_the_checkpoint_names_file_and_line(
    damage, problem, tiny_params, tiny_model, encoded, tmp_path
):
    tokenizer = tiny_model.tokenizer
    run("sft", tiny_params, tokenizer, encoded, tmp_path, _stop_after=3)  # checkpoint: step 2
    log = tmp_path / "metrics.jsonl"
    first, second, third = log.read_text().splitlines()
    damaged = {
        "garbled": [first, "#" + second, third],
        "interleaved": [first, first, second, third],  # two runs appending to one log
        "truncated": [first],  # a log that lost lines the checkpoint has taken
    }[damage]
    log.write_text("\n".join(damaged) + "\n")
    checkpoint = tmp_path / "checkpoints" / "step-000002"
    expected = (
        (f"{log}, " if problem.startswith("line") else f"{log}: ")
        + f"{problem.format(checkpoint=checkpoint)}; delete {checkpoint.parent} to train this run afresh"
    )
    with pytest.raises(ValueError) as error:
        run("sft", tiny_params, tokenizer, encoded, tmp_path)
    assert str(error.value) == expected
    assert isinstance(error.value, artifacts.CorruptArtifactError)
    assert log.read_text() == "\n".join(damaged) + "\n", "the log must be left for inspection"


@pytest.mark.parametrize("interrupted_at", [1, 3])
def test_ctrl_c_keeps_the_newest_checkpoint_and_says_how_to_resume(
    interrupted_at, tiny_params, tmp_path, monkeypatch, capsys
):
    params, setup = single_reward_setup(
        tiny_params, tmp_path / "04_training", max_length=16, max_steps=4
    )
    checkpoints = setup.directory / "cdpo" / "checkpoints"
    finish_step, calls, kept = training_loop.finish_step, [], {}

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == interrupted_at + 1:  # Ctrl-C during this step, before its update is logged
            newest = training.latest_checkpoint(checkpoints)
            kept.update(
                {p: p.read_bytes() for p in newest.rglob("*") if p.is_file()} if newest else {}
            )
            raise KeyboardInterrupt
        return finish_step(*args, **kwargs)

    monkeypatch.setattr(training_loop, "finish_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        training.run_training("cdpo", setup, progress=False)
    again = (
        f"rerunning notebook 04_training (or `python -m repsafe_lib.pipeline --params"
        f" {params.source_file} --only 04_training`)"
    )
    if interrupted_at == 1:  # the first checkpoint comes after step 1 (checkpoint_every: 2)
        expected = f"cdpo: interrupted before its first checkpoint; {again} starts it afresh"
        assert expected in capsys.readouterr().err.splitlines()
        assert training.latest_checkpoint(checkpoints) is None
        return
    newest = checkpoints / "step-000002"
    expected = f"cdpo: interrupted; kept its newest checkpoint {newest}: {again} resumes from it"
    assert expected in capsys.readouterr().err.splitlines()
    assert training.latest_checkpoint(checkpoints) == newest
    assert {p: p.read_bytes() for p in newest.rglob("*") if p.is_file()} == kept
    monkeypatch.setattr(training_loop, "finish_step", finish_step)
    resumed = training.run_training("cdpo", setup, progress=False)
    assert resumed.resumed_from == 2 and [m["step"] for m in resumed.metrics] == [0, 1, 2, 3]


def test_cross_fitted_rewards_score_with_their_fold_and_refresh_the_others(tiny_model):
    rewards = random_rewards(tiny_model.model, folds=2)
    states = torch.randn(4, 3, tiny_model.hidden_size)
    folds = torch.tensor([0, 0, 1, 1])
    scores = rewards.score(states, folds)
    with torch.no_grad():
        torch.testing.assert_close(scores[:2], rewards.rewards[0](states[:2]))
        torch.testing.assert_close(scores[2:], rewards.rewards[1](states[2:]))
    # Rows of larger (memory-mapped, float16) states, as notebook 04 scores its pairs at start.
    stored = torch.cat([torch.randn(3, 3, tiny_model.hidden_size), states]).half()
    rows = [6, 3, 5, 4]
    torch.testing.assert_close(
        rewards.score(stored, torch.tensor([1, 0, 1, 0]), rows),
        rewards.score(stored[rows].float(), torch.tensor([1, 0, 1, 0])),
    )
    before = [r.weight.clone() for r in rewards.rewards]
    rewards.refresh(states[:2], states[2:] * 0, torch.tensor([0, 0]), steps=1)  # fold-0 pairs
    assert torch.equal(rewards.rewards[0].weight, before[0])  # never trains on its own fold
    assert not torch.equal(rewards.rewards[1].weight, before[1])


def test_a_single_reward_scores_and_refreshes_every_pair_whatever_its_fold(tiny_model):
    rewards = random_rewards(tiny_model.model, folds=1)
    states = torch.randn(4, 3, tiny_model.hidden_size)
    folds = torch.tensor([0, 1, 1, 0])  # the pairs' cross-fitting folds, which it ignores
    with torch.no_grad():
        torch.testing.assert_close(rewards.score(states, folds), rewards.rewards[0](states))
    before = rewards.rewards[0].weight.clone()
    loss = rewards.refresh(states[:2], states[2:], torch.tensor([1, 1]), steps=1)
    assert loss == loss and not torch.equal(rewards.rewards[0].weight, before)  # not NaN: it ran


@pytest.mark.parametrize("refresh", ["full", "gate"])
def test_the_refresh_moves_the_scorers_only_in_full_mode(tiny_params, tiny_model, refresh):
    params = dataclasses.replace(
        tiny_params, training=dataclasses.replace(tiny_params.training, refresh=refresh)
    )
    rewards = training.refreshed_rewards(random_rewards(tiny_model.model, folds=1).rewards, params)
    reward = rewards.rewards[0]
    with torch.no_grad():  # an input gate that weighs layers by their scores moves the biases too
        reward.gate_weight.normal_(generator=torch.Generator().manual_seed(1))
    before = {name: p.detach().clone() for name, p in reward.named_parameters()}
    states = torch.randn(4, 3, tiny_model.hidden_size)
    rewards.refresh(states[:2], states[2:], torch.tensor([0, 0]), steps=1)
    changed = {name for name, p in reward.named_parameters() if not torch.equal(p, before[name])}
    gate = {"gate_weight", "gate_bias"}
    assert changed == (gate | {"weight", "bias"} if refresh == "full" else gate)


def single_reward_setup(tiny_params, tmp_path, *, max_length: int, max_steps: int):
    """Notebook 04's setup on PAIRS for the paper's cDPO: a saved R_h with weights large enough
    that gamma is far from 1/2, and conversations cut to `max_length` tokens."""
    from repsafe_lib.hybrid_reward import save_hybrid_reward

    params = dataclasses.replace(
        tiny_params,
        extraction=dataclasses.replace(tiny_params.extraction, max_length=max_length),
        training=settings(tiny_params, max_steps=max_steps, runs=("cdpo",)),
    )
    generator = torch.Generator().manual_seed(3)
    reward = HybridReward(HybridRewardConfig((1, 2, 3), tiny_params.model.tiny.hidden_size))
    with torch.no_grad():
        reward.weight.copy_(torch.randn(reward.weight.shape, generator=generator) * 0.5)
        reward.gate_weight.copy_(torch.randn(reward.gate_weight.shape, generator=generator))
    save_hybrid_reward(reward, tmp_path / "hybrid_reward")
    setup, fitted = training.prepare_training(
        params,
        tmp_path,
        train_pairs=PAIRS,
        states=None,
        examples=None,
        layers=[1, 2, 3],
        hybrid_reward_path=tmp_path / "hybrid_reward",
        progress=False,
    )
    assert fitted == [] and setup.fold_rewards == []  # no cross-fitted run asked for
    return params, setup


def base_states(tiny_model, params, pairs):
    """Chosen and rejected last-token states `[n, 3, d]` of the base policy, by extraction
    (notebook 01's code path, not the training forward)."""
    texts = {
        side: [
            hs.format_conversation(tiny_model.tokenizer, p.prompt, getattr(p, side)) for p in pairs
        ]
        for side in ("chosen", "rejected")
    }
    options = {"layers": [1, 2, 3], "max_length": params.extraction.max_length, "batch_size": 8}
    return tuple(
        hs.extract_hidden_states(
            tiny_model.model, tiny_model.tokenizer, texts[side], **options, progress=False
        )
        for side in ("chosen", "rejected")
    )


def test_gamma_at_start_comes_from_the_rewards_each_gamma_run_starts_from(
    tiny_params, tiny_model, tmp_path
):
    from types import SimpleNamespace

    from repsafe_lib.hybrid_reward import load_hybrid_reward
    from repsafe_lib.losses import preference_confidence

    params, setup = single_reward_setup(tiny_params, tmp_path, max_length=256, max_steps=1)
    chosen, rejected = base_states(tiny_model, params, PAIRS)
    examples = [  # notebook 01's rows: rejected sides first, so rows are looked up by id
        SimpleNamespace(example_id=f"{p.pair_id}:{side}")
        for side in ("rejected", "chosen")
        for p in PAIRS
    ]
    states = torch.cat([rejected, chosen])
    gamma = training.gamma_at_start(setup, states, examples, ["sft", "dpo", "cdpo"])
    saved = load_hybrid_reward(tmp_path / "hybrid_reward")
    with torch.no_grad():
        expected = preference_confidence(saved(chosen), saved(rejected), params.reward.alpha)
    assert list(gamma) == ["cdpo"]
    torch.testing.assert_close(gamma["cdpo"], expected)


def test_training_reads_the_truncation_r_h_was_fit_on(tiny_params, tiny_model, tmp_path):
    params, setup = single_reward_setup(tiny_params, tmp_path, max_length=12, max_steps=1)
    for pair, encoded in zip(PAIRS, setup.pairs, strict=True):
        for side in ("chosen", "rejected"):
            text = hs.format_conversation(tiny_model.tokenizer, pair.prompt, getattr(pair, side))
            extracted = hs.tokenize_conversations(tiny_model.tokenizer, [text], 12)[0]
            assert list(getattr(encoded, side)) == extracted


def test_paper_cdpo_takes_gamma_from_the_single_reward_and_refreshes_it_on_every_pair(
    tiny_params, tiny_model, tmp_path, monkeypatch
):
    from repsafe_lib.hybrid_reward import load_hybrid_reward
    from repsafe_lib.losses import margin_bt_loss, preference_confidence

    # 16 tokens: every conversation is cut, so training must cut exactly as extraction did.
    params, setup = single_reward_setup(tiny_params, tmp_path, max_length=16, max_steps=2)
    assert {p.fold for p in setup.pairs} == {0, 1}  # the single R_h must ignore the folds
    gammas = []  # every batch's per-pair gamma, as the loss gets it

    def recorded(*args):
        gammas.append(preference_confidence(*args))
        return gammas[-1]

    monkeypatch.setattr(objectives, "preference_confidence", recorded)
    result = training.run_training("cdpo", setup, progress=False)
    schedule = training.batch_schedule(len(PAIRS), 4, 2, params.seed)
    chosen, rejected = base_states(tiny_model, params, [PAIRS[i] for i in schedule[0]])
    saved = load_hybrid_reward(tmp_path / "hybrid_reward")
    with torch.no_grad():
        r_chosen, r_rejected = saved(chosen), saved(rejected)
        gamma = preference_confidence(r_chosen, r_rejected, params.reward.alpha)
        refresh_loss = margin_bt_loss(r_chosen, r_rejected, params.reward.mu)
    first = result.metrics[0]
    assert len(gammas) == 2 and 0.05 < float(gamma.std())
    torch.testing.assert_close(gammas[0], gamma, atol=1e-4, rtol=0)  # pair by pair, step 0
    assert first["gamma_mean"] == pytest.approx(float(gamma.mean()), abs=1e-4)
    assert first["hybrid_margin"] == pytest.approx(float((r_chosen - r_rejected).mean()), abs=1e-4)
    assert first["gamma_below_half"] == float((gamma < 0.5).float().mean())
    assert first["refresh_loss"] == pytest.approx(float(refresh_loss), abs=1e-4)  # all 4 pairs
    refreshed = load_hybrid_reward(result.directory / "hybrid_reward-0")
    assert not torch.equal(refreshed.weight, saved.weight)  # scorers refreshed (refresh: full)
    assert not (result.directory / "hybrid_reward-1.safetensors").exists()


def test_cross_fitted_cdpo_never_scores_a_pair_with_a_reward_that_saw_it(
    tiny_params, tiny_model, tmp_path
):
    from repsafe_lib.losses import preference_confidence

    params, setup = single_reward_setup(tiny_params, tmp_path, max_length=256, max_steps=1)
    fold_rewards = random_rewards(tiny_model.model, folds=2, seed=5, scale=1.0).rewards
    setup = dataclasses.replace(setup, fold_rewards=fold_rewards)
    chosen, rejected = base_states(tiny_model, params, PAIRS)
    pair_states = torch.stack([chosen, rejected], dim=1)  # [pairs, 2, L, d]
    folds = torch.tensor([p.fold for p in setup.pairs])
    with torch.no_grad():
        expected = torch.stack(
            [
                preference_confidence(
                    fold_rewards[f](chosen[i : i + 1]), fold_rewards[f](rejected[i : i + 1]), 7.5
                )[0]
                for i, f in enumerate(folds.tolist())
            ]
        )
    seen = []  # (fold of the reward, scoring or refreshing, pair)

    def recorder(fold):
        def hook(module, inputs, output):
            for row in inputs[0].detach():
                distance = (pair_states - row).flatten(2).norm(dim=-1).amin(dim=1)
                assert float(distance.min()) < 1e-3, "a state that is no pair's"
                pair = int(distance.argmin())
                seen.append((fold, "refresh" if torch.is_grad_enabled() else "score", pair))

        return hook

    for fold, reward in enumerate(fold_rewards):
        reward.register_forward_hook(recorder(fold))  # copied with the reward into the run
    result = training.run_training("cdpo_crossfit", setup, progress=False)
    assert result.metrics[0]["gamma_mean"] == pytest.approx(float(expected.mean()), abs=1e-4)
    scored = {(f, pair) for f, kind, pair in seen if kind == "score"}
    refreshed = {(f, pair) for f, kind, pair in seen if kind == "refresh"}
    assert {pair for _, pair in scored} == set(range(len(PAIRS)))
    assert all(folds[pair] == f for f, pair in scored)
    assert refreshed and all(folds[pair] != f for f, pair in refreshed)
    assert not scored & refreshed


def test_checkpoints_hold_no_pickles(tiny_params, tiny_model, encoded, tmp_path):
    run(
        "cdpo",
        tiny_params,
        tiny_model.tokenizer,
        encoded,
        tmp_path,
        training=settings(tiny_params, max_steps=2),
    )
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(
        p.suffix in (".safetensors", ".json", ".jsonl", ".txt", ".jinja") for p in files
    ), sorted({p.suffix for p in files})


def test_trained_copies_keep_float32_master_weights_or_lora_on_the_policy_dtype(tiny_params):
    from repsafe_lib.params import LoraParams

    spec = dataclasses.replace(tiny_params.model, dtype="bfloat16")
    for mixed_precision in ("no", "bf16"):
        full = dataclasses.replace(tiny_params.training, mixed_precision=mixed_precision)
        assert training.training_spec(spec, full).dtype == "float32"
    lora = dataclasses.replace(full, lora=LoraParams(r=4, alpha=8.0))
    assert training.training_spec(spec, lora).dtype == "bfloat16"
    prepared = training.prepare_policy(load_model(spec).model, full)  # a bfloat16 model given
    assert {p.dtype for p in prepared.parameters()} == {torch.float32}
    adapted = training.prepare_policy(load_model(spec).model, lora)
    dtypes = {("lora_" in n, p.dtype) for n, p in adapted.named_parameters()}
    assert dtypes == {(True, torch.float32), (False, torch.bfloat16)}
    again = training.prepare_policy(adapted, lora)  # online DPO's rounds: the same adapters
    assert again is adapted and len(adapted.peft_config) == 1
    assert (
        sum("lora_A" in n for n, _ in again.named_parameters())
        == 4 * tiny_params.model.tiny.num_layers
    )
