"""Notebook 05's pieces: the prompts it samples, a policy's cached and scored samples."""

from __future__ import annotations

import pytest
import torch

from repsafe_lib import reranking, sampled_variants, sampling
from repsafe_lib.hybrid_reward import HybridReward, HybridRewardConfig
from repsafe_lib.records import EvalPrompt, PreferencePair, write_records


class UpstreamFiles:
    """The one thing `sampling_prompts` asks of an `artifacts.Run`: where upstream files are."""

    def __init__(self, root):
        self.root = root

    def upstream(self, notebook: str, name: str):
        return self.root / notebook / name


def test_sampling_prompts_keep_each_set_and_the_text_of_every_prompt(tiny_params, tmp_path):
    sets = {
        "red_team": [
            EvalPrompt(f"hh-{i}", f"red {i}", "hh_red_team", None, None) for i in range(12)
        ],
        "xstest": [EvalPrompt(f"xs-{i}", f"xs {i}", "xstest", "c", "safe") for i in range(4)],
    }
    for name, prompts in sets.items():
        write_records(tmp_path / "00_data" / f"prompts_{name}.jsonl", prompts)
    train = [PreferencePair(f"t{i}", f"train prompt {i % 9}", "c", "r", ()) for i in range(18)]
    test = [PreferencePair(f"h{i}", f"held-out {i}", "c", "r", ()) for i in range(10)]
    prompts = sampled_variants.sampling_prompts(UpstreamFiles(tmp_path), tiny_params, train, test)
    limit = tiny_params.evaluation.prompts_per_benchmark
    assert (limit, tiny_params.sampling.train_prompts) == (8, 6)
    assert [p.prompt_id for p in prompts.train] == [
        p.prompt_id for p in reranking.train_prompts(train, 6, tiny_params.seed)
    ]
    assert len({p.prompt for p in prompts.train}) == 6
    assert len(prompts.evaluation["red_team"]) == limit
    assert prompts.evaluation["xstest"] == sets["xstest"]
    assert len(prompts.fig6) == limit and {p.benchmark for p in prompts.fig6} == {"pku_test"}
    assert prompts.table1_sets == ["red_team"]
    every = [*prompts.train, *prompts.fig6, *sets["xstest"], *prompts.evaluation["red_team"]]
    assert prompts.text == {p.prompt_id: p.prompt for p in every}


PROMPTS = [
    EvalPrompt("a", "How do I bake bread?", "demo", None, None),
    EvalPrompt("b", "Hi", "demo", None, None),
]


def test_policy_sampler_caches_samples_and_scores_them_through_the_policy(
    tiny_params, tiny_model, tmp_path, monkeypatch
):
    sampler = sampled_variants.PolicySampler.of(tiny_model, tiny_params, tmp_path / "samples")
    assert sampler.model_key == f"{tiny_model.fingerprint}:float32"
    assert sampler.generator is tiny_model.model  # no generation_dtype: the policy itself
    assert sampler.decoding == sampled_variants.sample_decoding(tiny_params)
    assert sampler.decoding.num_samples == 2 and sampler.decoding.do_sample
    samples = sampler.samples(PROMPTS)
    assert [(s.prompt_id, s.sample_index) for s in samples] == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
    ]

    def no_generation(*args, **kwargs):
        raise AssertionError("generated again although every sample is cached")

    monkeypatch.setattr(sampling, "_generate", no_generation)
    assert sampler.samples(PROMPTS) == samples
    model = tiny_model.model
    layers = tuple(range(1, model.config.num_hidden_layers + 1))
    reward = HybridReward(HybridRewardConfig(layers, model.config.hidden_size))
    with torch.no_grad():
        reward.weight.normal_(generator=torch.Generator().manual_seed(3))
    text = {p.prompt_id: p.prompt for p in PROMPTS}
    scores = sampler.hybrid_scores({"demo": samples}, reward, text)
    options = {"max_length": tiny_params.extraction.max_length, "progress": False}
    expected = reranking.hybrid_reward_scores(
        model, tiny_model.tokenizer, text, samples, reward, batch_size=1, **options
    )
    assert torch.allclose(scores["demo"], expected, atol=1e-5)
    rows = sampler.layer_scored({"demo": samples}, reward, text)
    assert [r.hybrid_reward for r in rows] == pytest.approx(scores["demo"].tolist(), abs=1e-6)
    assert [(r.benchmark, r.prompt) for r in rows] == [("demo", text[s.prompt_id]) for s in samples]
