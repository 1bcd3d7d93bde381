"""The conventional reward model (scalar head) and the online-DPO loop on the tiny model."""

from __future__ import annotations

import json

import pytest
import torch

from repsafe_lib import reward_model
from repsafe_lib.datasets import EvalPrompt, PreferencePair
from repsafe_lib.models import load_model
from repsafe_lib.online import online_dpo
from repsafe_lib.params import OnlineParams
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
    return reward_model.ScalarRewardModel.from_causal_lm(
        load_model(tiny_params.model, seed=tiny_params.seed).model
    )


def test_bradley_terry_training_lowers_the_loss(fresh_rm, tiny_model):
    curve = reward_model.train_reward_model(
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
    accuracy = reward_model.pair_accuracy(
        fresh_rm, tiny_model.tokenizer, PAIRS, max_length=64, batch_size=3
    )
    assert accuracy == 1.0


def test_scores_do_not_depend_on_padding_or_batching(fresh_rm, tiny_model):
    with torch.no_grad():
        fresh_rm.head.weight.normal_(generator=torch.Generator().manual_seed(0))
    prompts = [p.prompt for p in PAIRS]
    responses = [p.chosen if i % 2 else p.rejected * (i + 1) for i, p in enumerate(PAIRS)]
    options = {"max_length": 128, "progress": False}
    batched = reward_model.score_responses(
        fresh_rm, tiny_model.tokenizer, prompts, responses, batch_size=8, **options
    )
    single = torch.cat(
        [
            reward_model.score_responses(
                fresh_rm, tiny_model.tokenizer, [p], [r], batch_size=1, **options
            )
            for p, r in zip(prompts, responses, strict=True)
        ]
    )
    assert torch.allclose(batched, single, atol=1e-5)


def test_save_and_load_give_the_same_scores(fresh_rm, tiny_model, tmp_path):
    with torch.no_grad():
        fresh_rm.head.weight.normal_(generator=torch.Generator().manual_seed(0))
    directory = reward_model.save_reward_model(fresh_rm, tmp_path / "rm", {"key": "k"})
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in directory.rglob("*"))
    assert json.loads((directory / "reward_model.json").read_text())["key"] == "k"
    loaded = reward_model.load_reward_model(directory)
    options = {"max_length": 64, "batch_size": 4, "progress": False}
    texts = ([p.prompt for p in PAIRS], [p.chosen for p in PAIRS])
    assert torch.equal(
        reward_model.score_responses(fresh_rm, tiny_model.tokenizer, *texts, **options),
        reward_model.score_responses(loaded, tiny_model.tokenizer, *texts, **options),
    )
    with pytest.raises(FileNotFoundError, match="no reward model"):
        reward_model.load_reward_model(tmp_path)


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
