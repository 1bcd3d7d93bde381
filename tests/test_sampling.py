"""Batched generation: equal to one-at-a-time, seeded per prompt, cached on disk."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from repsafe_lib.models import build_tiny_llama
from repsafe_lib.records import EvalPrompt
from repsafe_lib.sampling import (
    DecodingConfig,
    cached_responses,
    generate_responses,
    response_cache_path,
    top_p_filter,
)

PROMPTS = [
    EvalPrompt(f"demo-{i}", text, "demo", None, None)
    for i, text in enumerate(
        [
            "How do I bake bread?",
            "Tell me a long joke about cats, dogs and a very confused parrot.",
            "Hi",
            "What is the capital of France?",
            "Write two lines about the sea at night, please.",
        ]
    )
]


def test_left_padded_batches_equal_one_at_a_time(tiny_model):
    options = {"max_new_tokens": 8, "progress": False}
    batched = generate_responses(
        tiny_model.model, tiny_model.tokenizer, PROMPTS, batch_size=5, **options
    )
    single = generate_responses(
        tiny_model.model, tiny_model.tokenizer, PROMPTS, batch_size=1, **options
    )
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.num_tokens for r in batched] == [r.num_tokens for r in single]
    assert [r.prompt_id for r in batched] == [p.prompt_id for p in PROMPTS]
    assert len({r.text for r in batched}) > 1, "the model answers every prompt the same"


def test_sampling_is_seeded_per_prompt_not_per_batch(tiny_model):
    options = {"max_new_tokens": 6, "do_sample": True, "seed": 7, "progress": False}
    together = generate_responses(
        tiny_model.model, tiny_model.tokenizer, PROMPTS, batch_size=8, num_samples=3, **options
    )
    alone = generate_responses(
        tiny_model.model, tiny_model.tokenizer, PROMPTS[1:2], batch_size=1, num_samples=3, **options
    )
    assert [(r.prompt_id, r.sample_index) for r in together[:3]] == [
        ("demo-0", k) for k in range(3)
    ]
    assert [r.text for r in together[3:6]] == [r.text for r in alone]
    assert len({r.text for r in alone}) == 3, "three samples of one prompt should differ"
    assert len({r.seed for r in together}) == len(together)
    again = generate_responses(
        tiny_model.model, tiny_model.tokenizer, PROMPTS, batch_size=8, num_samples=3, **options
    )
    assert [r.text for r in again] == [r.text for r in together]


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    probs = torch.tensor([[0.2, 0.5, 0.3]])
    assert torch.equal(top_p_filter(probs.clone(), 0.6), torch.tensor([[0.0, 0.5, 0.3]]))
    assert torch.equal(top_p_filter(probs.clone(), 0.5), torch.tensor([[0.0, 0.5, 0.0]]))
    assert torch.equal(top_p_filter(probs.clone(), 1.0), probs)


def test_greedy_with_several_samples_is_refused():
    with pytest.raises(ValueError, match="num_samples > 1 needs do_sample"):
        DecodingConfig(max_new_tokens=4, num_samples=2)


def test_cache_skips_generation_on_the_second_call(tiny_model, tmp_path, monkeypatch):
    decoding = DecodingConfig(max_new_tokens=5)
    options = {"model_key": "tiny", "cache_dir": tmp_path, "decoding": decoding, "batch_size": 4}
    first = cached_responses(
        tiny_model.model, tiny_model.tokenizer, PROMPTS[:3], progress=False, **options
    )

    def fail(*args, **kwargs):
        raise AssertionError("generate called although every response is cached")

    monkeypatch.setattr(tiny_model.model, "generate", fail)
    second = cached_responses(
        tiny_model.model, tiny_model.tokenizer, PROMPTS[:3], progress=False, **options
    )
    assert second == first
    monkeypatch.undo()

    calls = []
    original = tiny_model.model.generate
    monkeypatch.setattr(
        tiny_model.model,
        "generate",
        lambda **kwargs: calls.append(kwargs["input_ids"].shape[0]) or original(**kwargs),
    )
    grown = cached_responses(
        tiny_model.model, tiny_model.tokenizer, PROMPTS, progress=False, **options
    )
    assert calls == [2], "only the two new prompts are generated"
    assert grown[:3] == first
    path = response_cache_path(tmp_path, "tiny", decoding)
    assert [json.loads(line)["prompt_id"] for line in path.read_text().splitlines()] == [
        p.prompt_id for p in PROMPTS
    ]


def test_cache_key_separates_models_and_decoding(tmp_path):
    greedy, longer = DecodingConfig(max_new_tokens=5), DecodingConfig(max_new_tokens=6)
    paths = {
        response_cache_path(tmp_path, model, decoding)
        for model in ("a", "b")
        for decoding in (greedy, longer)
    }
    assert len(paths) == 4


def test_empty_generation_is_kept_and_flagged(tiny_params, tiny_model):
    model = build_tiny_llama(tiny_params.model, len(tiny_model.tokenizer), seed=0).eval()
    hidden, vocab = model.config.hidden_size, model.config.vocab_size
    head = nn.Linear(hidden, vocab, bias=True)
    nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.zero_()
        head.bias[tiny_model.tokenizer.eos_token_id] = 50.0  # end the answer at once
    model.lm_head = head
    records = generate_responses(
        model, tiny_model.tokenizer, PROMPTS[:2], max_new_tokens=4, batch_size=2, progress=False
    )
    assert [(r.text, r.num_tokens, r.finished, r.empty) for r in records] == [
        ("", 0, True, True)
    ] * 2


def test_top_p_among_candidates_equals_the_full_sort():
    """Rows whose nucleus fits in the candidates and rows that need the whole vocabulary give the
    same filter as sorting everything (a plain reference written out here)."""

    def full_sort(probs, top_p):
        ordered, order = probs.sort(dim=-1, descending=True)
        ordered[(ordered.cumsum(dim=-1) - ordered) >= top_p] = 0
        return torch.zeros_like(probs).scatter(-1, order, ordered)

    generator = torch.Generator().manual_seed(0)
    sharpness = torch.tensor([0.3, 8.0, 2.0, 12.0])[:, None]
    probs = torch.softmax(torch.randn(4, 5000, generator=generator) * sharpness, dim=-1)
    for top_p in (0.5, 0.9, 0.99):
        expected = full_sort(probs.clone(), top_p)
        assert torch.equal(top_p_filter(probs.clone(), top_p, candidates=64), expected)
        assert torch.equal(top_p_filter(probs.clone(), top_p, candidates=5000), expected)
