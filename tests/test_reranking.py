"""Re-ranking samples: best-of-N, top-k, re-ranked pairs, Table 2 selections; R_h scores of text."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from repsafe_lib import plots, reranking, reward_comparison
from repsafe_lib.hidden_states import extract_hidden_states, format_conversation
from repsafe_lib.hybrid_reward import HybridReward, HybridRewardConfig
from repsafe_lib.judges import JudgeRecord
from repsafe_lib.records import PreferencePair
from repsafe_lib.sampling import ResponseRecord


def record(prompt_id: str, index: int, text: str | None = None) -> ResponseRecord:
    text = f"{prompt_id} answer {index}" if text is None else text
    return ResponseRecord(prompt_id, index, text, len(text.split()), True, not text, 0, "sha")


SAMPLES = [record("a", k) for k in range(4)] + [record("b", k) for k in range(4)]
SCORES = [0.1, 2.0, -1.0, 0.5, 3.0, 3.0, -2.0, 1.0]  # b0 and b1 tie
PROMPTS = {"a": "prompt a", "b": "prompt b"}


def test_best_of_n_picks_the_argmax_per_prompt():
    picked = reranking.best_of_n(SAMPLES, SCORES)
    assert picked == [1, 4]  # ties go to the lower sample index
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        scores = torch.randn(len(SAMPLES), generator=generator).tolist()
        expected = [
            int(torch.tensor(scores[:4]).argmax()),
            4 + int(torch.tensor(scores[4:]).argmax()),
        ]
        assert reranking.best_of_n(SAMPLES, scores) == expected


def test_best_of_n_skips_empty_samples_but_answers_every_prompt():
    samples = [record("a", 0, ""), record("a", 1), record("b", 0, ""), record("b", 1, "")]
    assert reranking.best_of_n(samples, [9.0, 1.0, 5.0, 4.0]) == [1, 2]


def test_top_k_takes_the_k_best_of_each_prompt():
    assert reranking.top_k(SAMPLES, SCORES, 1) == [1, 4]
    assert reranking.top_k(SAMPLES, SCORES, 2) == [1, 3, 4, 5]
    assert sorted(reranking.top_k(SAMPLES, SCORES, 4)) == list(range(8))
    with pytest.raises(ValueError, match="k must be"):
        reranking.top_k(SAMPLES, SCORES, 0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rerank_pairs_pair_best_with_worst_never_a_sample_with_itself(k):
    pairs = reranking.rerank_pairs(SAMPLES, SCORES, PROMPTS, k=k)
    by_prompt = {p: [x for x in pairs if x.prompt == PROMPTS[p]] for p in PROMPTS}
    assert all(len(found) == min(k, 2) for found in by_prompt.values())  # 4 samples: 2 pairs max
    assert all(p.chosen != p.rejected for p in pairs)
    assert (by_prompt["a"][0].chosen, by_prompt["a"][0].rejected) == ("a answer 1", "a answer 2")
    if k >= 2:
        assert (by_prompt["a"][1].chosen, by_prompt["a"][1].rejected) == (
            "a answer 3",
            "a answer 0",
        )
    score_of = {s.text: v for s, v in zip(SAMPLES, SCORES, strict=True)}
    assert all(score_of[p.chosen] > score_of[p.rejected] for p in pairs)
    assert len({p.pair_id for p in pairs}) == len(pairs)


def test_rerank_pairs_skip_ties_identical_texts_and_empty_samples():
    samples = [record("a", 0, "same"), record("a", 1, "same"), record("b", 0), record("b", 1)]
    samples += [record("c", 0, ""), record("c", 1)]
    prompts = {"a": "pa", "b": "pb", "c": "pc"}
    pairs = reranking.rerank_pairs(samples, [2.0, 1.0, 1.0, 1.0, 5.0, 0.0], prompts, k=1)
    assert pairs == []  # a: identical texts; b: equal scores; c: one non-empty sample


def test_pair_score_gaps_follow_the_pairs_in_the_scores_dtype():
    scores = torch.tensor(SCORES)
    gaps = reranking.pair_score_gaps(SAMPLES, scores, k=2)
    assert reranking.rerank_indices(SAMPLES, SCORES, k=2) == [(1, 2), (3, 0), (4, 6), (5, 7)]
    expected = [scores[1] - scores[2], scores[3] - scores[0], scores[4] - scores[6]]
    expected.append(scores[5] - scores[7])
    assert gaps.tolist() == [float(g) for g in expected]  # 3.0, 0.4, 5.0, 2.0 in float32
    assert gaps.tolist()[1] == float(torch.tensor(0.5) - torch.tensor(0.1)) != 0.5 - 0.1


def test_best_of_n_responses_answer_each_prompt_of_each_set_once():
    other = [record("c", k) for k in range(2)]
    chosen = reranking.best_of_n_responses(
        {"set1": SAMPLES, "set2": other},
        {"set1": torch.tensor(SCORES), "set2": torch.tensor([0.0, 1.0])},
    )
    assert chosen == [SAMPLES[1], SAMPLES[4], other[1]]


def test_table2_rates_follow_the_selections():
    samples = [
        reward_comparison.ScoredResponse("before", "red_team", p, k, f"{p}{k}", 3, False, h, r)
        for p, rows in {"a": [(1.0, 0.0), (0.0, 1.0)], "b": [(0.0, 0.0), (2.0, 3.0)]}.items()
        for k, (h, r) in enumerate(rows)
    ]
    unsafe = {"a0": True, "a1": False, "b0": True, "b1": False}
    verdicts = [JudgeRecord("refusal", unsafe[s.text], (), "") for s in samples]
    table = reward_comparison.table2(
        samples,
        verdicts,
        judge="refusal",
        categories_available=False,
        codes=("S1",),
        ks=(1,),
        num_samples=2,
    ).set_index("selection")
    assert table.loc["before: top-1-ours", "toxic_rate"] == 0.5  # a0 (unsafe), b1 (safe)
    assert table.loc["before: top-1-rm", "toxic_rate"] == 0.0  # a1, b1
    assert table.loc["before: sample-2", "toxic_rate"] == 0.5
    assert table.loc["before: sample-2", "samples"] == 4
    assert table.loc["before: top-1-ours", "S1"] == "unavailable"


def test_train_prompts_are_distinct_and_seeded():
    pairs = [PreferencePair(f"p{i}", f"prompt {i % 5}", "c", "r", ()) for i in range(12)]
    prompts = reranking.train_prompts(pairs, None, seed=0)
    assert [p.prompt for p in prompts] == [f"prompt {i}" for i in range(5)]
    assert [p.prompt_id for p in prompts] == [f"p{i}" for i in range(5)]
    assert reranking.train_prompts(pairs, 3, seed=1) == reranking.train_prompts(pairs, 3, seed=1)
    assert len(reranking.train_prompts(pairs, 3, seed=1)) == 3


def test_hybrid_reward_scores_equal_the_reward_of_extracted_states(tiny_model):
    model, tokenizer = tiny_model.model, tiny_model.tokenizer
    layers = tuple(range(1, model.config.num_hidden_layers + 1))
    reward = HybridReward(HybridRewardConfig(layers, model.config.hidden_size))
    with torch.no_grad():
        reward.weight.copy_(
            torch.randn(reward.weight.shape, generator=torch.Generator().manual_seed(1))
        )
    scores = reranking.hybrid_reward_scores(
        model, tokenizer, PROMPTS, SAMPLES, reward, max_length=64, batch_size=3, progress=False
    )
    texts = [format_conversation(tokenizer, PROMPTS[s.prompt_id], s.text) for s in SAMPLES]
    for i, text in enumerate(texts):  # one at a time, no padding
        states = extract_hidden_states(
            model,
            tokenizer,
            [text],
            layers=list(layers),
            max_length=64,
            batch_size=1,
            progress=False,
        )
        assert torch.allclose(scores[i], reward(states)[0], atol=1e-5)


def test_fig6_strategy_scores_by_value():
    layer_scores = np.array([[1.0, -2.0, 3.0], [0.0, 5.0, -1.0], [1.0, 2.0, 6.0]])
    unsafe = np.array([0.0, 1.0, np.nan])  # safe, unsafe, unparsed
    scores = reranking.strategy_scores(
        layer_scores, np.array([7.0, 8.0, 9.0]), unsafe, np.array([1, 0, 2])
    )
    assert scores["best_layer"].tolist() == [3.0, -1.0, 3.0]  # safe: max, unsafe: min
    assert scores["worst_layer"].tolist() == [-2.0, 5.0, 3.0]  # unparsed: the mean
    assert scores["last_layer"].tolist() == [3.0, -1.0, 6.0]
    assert scores["random_layer"].tolist() == [-2.0, 0.0, 6.0]
    assert scores["ours"].tolist() == [7.0, 8.0, 9.0]


def _scored(benchmark, prompt_id, index, hybrid, layer_scores):
    return reranking.LayerScoredResponse(
        benchmark, prompt_id, index, "?", f"{prompt_id}{index}", False, hybrid, (1, 2), layer_scores
    )


def test_fig6_toxic_rates_of_the_top_k_by_value():
    # Layer 1 prefers the unsafe answers, layer 2 (the last) the safe ones.
    layer_scores = [(2.0, -1.0), (1.0, -2.0), (-1.0, 1.0), (-2.0, 2.0)]
    samples = [
        *[
            _scored("pku_test", "a", i, h, s)
            for i, (h, s) in enumerate(zip([4, 3, 2, 1], layer_scores, strict=True))
        ],
        *[
            _scored("red_team", "b", i, h, s)
            for i, (h, s) in enumerate(zip([1, 2, 3, 4], layer_scores, strict=True))
        ],
    ]
    unsafe = [True, True, False, False, False, False, False, None]
    table = reranking.fig6_toxic_rates(
        samples, unsafe, k=2, judge="refusal", random_draws=50, seed=0
    ).set_index("strategy")
    rate = table["toxic_rate"]
    assert rate["best layer (oracle)"] == 0.0
    assert rate["worst layer (oracle)"] == pytest.approx(2 / 3)  # a0, a1, b3 (unparsed), b0
    assert rate["last layer"] == 0.0  # a3, a2, b3 (unparsed), b2
    assert rate["ours (gated R_h)"] == pytest.approx(2 / 3)  # a0, a1, b3 (unparsed), b2
    assert table.loc["ours (gated R_h)", "unparsed"] == 1
    assert rate["all samples"] == pytest.approx(2 / 7)
    assert pd.isna(table.loc["all samples", "top_k"])
    random = table.loc["random layer"]
    assert random["draws"] == 50 and random["min"] <= random["toxic_rate"] <= random["max"]
    assert 0.0 < random["toxic_rate"] < 0.5  # between the two layers' extremes
    assert (table["prompts"] == 2).all() and (table["benchmarks"] == "pku_test+red_team").all()
    again = reranking.fig6_toxic_rates(
        samples, unsafe, k=2, judge="refusal", random_draws=50, seed=0
    )
    assert again.set_index("strategy").equals(table)
    # The same prompt id in two sets: each set ranks its own samples.
    renamed = [dataclasses.replace(s, prompt_id="a") for s in samples]
    same_id = reranking.fig6_toxic_rates(
        renamed, unsafe, k=2, judge="refusal", random_draws=50, seed=0
    ).set_index("strategy")
    assert same_id["toxic_rate"].drop("random layer").equals(rate.drop("random layer"))
    with pytest.raises(ValueError, match="random_draws"):
        reranking.fig6_toxic_rates(samples, unsafe, k=2, judge="refusal", random_draws=0, seed=0)
    figure = plots.plot_fig6_toxic_rates(table.reset_index(), judge="refusal")
    assert len(figure.axes[0].patches) == len(reranking.FIG6_STRATEGIES)


def test_layer_scores_mix_into_the_hybrid_reward(tiny_model):
    model, tokenizer = tiny_model.model, tiny_model.tokenizer
    layers = tuple(range(1, model.config.num_hidden_layers + 1))
    reward = HybridReward(HybridRewardConfig(layers, model.config.hidden_size))
    with torch.no_grad():
        reward.weight.copy_(
            torch.randn(reward.weight.shape, generator=torch.Generator().manual_seed(2))
        )
        reward.gate_weight.copy_(torch.eye(len(layers)))
        reward.weight[0] = 0.0
        reward.active[0] = False
    options = dict(max_length=64, batch_size=3, progress=False)
    per_layer = reranking.hybrid_layer_scores(model, tokenizer, PROMPTS, SAMPLES, reward, **options)
    hybrid = reranking.hybrid_reward_scores(model, tokenizer, PROMPTS, SAMPLES, reward, **options)
    assert per_layer.shape == (len(SAMPLES), len(layers))
    assert torch.allclose(reward.mix(per_layer), hybrid, atol=1e-6)
    rows = reranking.layer_scored_responses(
        {"red_team": SAMPLES}, {"red_team": per_layer}, reward, PROMPTS
    )
    assert [r.prompt for r in rows] == [PROMPTS[s.prompt_id] for s in SAMPLES]
    assert [r.layers for r in rows] == [layers[1:]] * len(SAMPLES)  # the inactive layer left out
    assert [r.layer_scores for r in rows] == [tuple(s[1:].tolist()) for s in per_layer]
    assert [r.hybrid_reward for r in rows] == pytest.approx(hybrid.tolist(), abs=1e-6)
    assert [(r.benchmark, r.prompt_id, r.sample_index) for r in rows] == [
        ("red_team", s.prompt_id, s.sample_index) for s in SAMPLES
    ]
