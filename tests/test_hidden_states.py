"""Hidden-state extraction against a naive per-example forward, padding, pooling and the cache."""

from __future__ import annotations

import pytest
import torch
from memory_maps import mapped_file
from safetensors.torch import save_file

from repsafe_lib import hidden_states as hs
from repsafe_lib.records import PreferencePair

PROMPTS = ["How do I bake bread?", "What is the capital of France?", "Tell me a joke.", "Hi"]
RESPONSES = [
    "Mix flour and water. " * 3,
    "Paris.",
    "Why did the chicken cross the road? " * 2,
    "Hello!",
]


@pytest.fixture(scope="module")
def texts(tiny_model):
    pairs = zip(PROMPTS, RESPONSES, strict=True)
    return [hs.format_conversation(tiny_model.tokenizer, p, r) for p, r in pairs]


def naive_states(loaded, texts: list[str]) -> torch.Tensor:
    """One example at a time through the full causal LM with output_hidden_states: [n, L, d]."""
    rows = []
    with torch.inference_mode():
        for text in texts:
            ids = loaded.tokenizer(text, add_special_tokens=False, return_tensors="pt")
            out = loaded.model(**ids, output_hidden_states=True)
            rows.append(torch.stack([h[0, -1] for h in out.hidden_states[1:]]))
    return torch.stack(rows)


def options_for(loaded, **overrides) -> dict:
    """Extraction options for every layer of `loaded`, small batches, no progress bar."""
    defaults = {
        "layers": list(range(1, loaded.num_layers + 1)),
        "max_length": 256,
        "batch_size": 3,
        "progress": False,
    }
    return {**defaults, **overrides}


def extract(loaded, texts, **options):
    return hs.extract_hidden_states(
        loaded.model, loaded.tokenizer, texts, **options_for(loaded, **options)
    )


def test_extraction_equals_naive_forward(tiny_model, texts):
    batched = extract(tiny_model, texts)
    assert batched.shape == (len(texts), tiny_model.num_layers, tiny_model.hidden_size)
    torch.testing.assert_close(batched, naive_states(tiny_model, texts), atol=1e-5, rtol=1e-4)


def test_left_and_right_padding_agree(tiny_model, texts):
    right = extract(tiny_model, texts, padding_side="right", batch_size=4)
    left = extract(tiny_model, texts, padding_side="left", batch_size=4)
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-4)


def test_layer_subset_and_order(tiny_model, texts):
    every = extract(tiny_model, texts)
    picked = extract(tiny_model, texts, layers=[3, 1])
    torch.testing.assert_close(picked, every[:, [2, 0]])


def test_last_layer_has_passed_the_final_norm(tiny_model, texts):
    # The suite's convention: layer L = hidden_states[L] = final_norm(output of block L).
    _, blocks, norm = hs.decoder_parts(tiny_model.model)
    captured = {}
    handle = blocks[-1].register_forward_hook(
        lambda m, i, o: captured.update(raw=o[0] if isinstance(o, tuple) else o)
    )
    try:
        states = extract(tiny_model, texts[:1], batch_size=1)
    finally:
        handle.remove()
    with torch.inference_mode():
        expected = norm(captured["raw"])[0, -1]
    torch.testing.assert_close(states[0, -1], expected)


def test_pooling_picks_the_last_real_token():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]])
    assert hs.last_token_index(mask).tolist() == [2, 4, 0, 4]
    assert hs.position_ids_from_mask(mask)[1].tolist() == [0, 0, 0, 1, 2]


def test_pad_batch_sides():
    ids, mask = hs.pad_batch([[5, 6, 7], [8]], pad_id=0, side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = hs.pad_batch([[5, 6, 7], [8]], pad_id=0, side="right")
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_length_sorted_batches_cover_every_index_once():
    batches = hs.length_sorted_batches([3, 9, 1, 7, 5], batch_size=2)
    assert batches == [[1, 3], [4, 0], [2]]


def test_truncation_keeps_the_final_token(tiny_model):
    text = hs.format_conversation(tiny_model.tokenizer, "q " * 50, "a " * 50)
    full = tiny_model.tokenizer(text, add_special_tokens=False)["input_ids"]
    kept = hs.tokenize_conversations(tiny_model.tokenizer, [text], max_length=16)[0]
    assert kept == full[-16:] and kept[-1] == tiny_model.tokenizer.eos_token_id


def test_conversation_format_ends_with_eos_after_the_response(tiny_model):
    text = hs.format_conversation(tiny_model.tokenizer, "Is tea hot?", "Usually.")
    assert text.endswith(f"Usually.{tiny_model.tokenizer.eos_token}")
    assert "Is tea hot?" in text and text.index("Is tea hot?") < text.index("Usually.")


def cache_call(loaded, texts, cache_dir, **overrides):
    options = options_for(loaded, batch_size=4, **overrides)
    return hs.cached_hidden_states(
        loaded.model,
        loaded.tokenizer,
        texts,
        model_fingerprint=loaded.fingerprint,
        cache_dir=cache_dir,
        **options,
    )


class ForbiddenForward(torch.nn.Module):
    """Stands in for the model's body on a cache hit: any forward call fails the test."""

    def forward(self, *args, **kwargs):
        raise AssertionError("the model was run although the cache should have been used")


def test_second_call_hits_the_cache_without_the_model(tiny_model, texts, tmp_path, monkeypatch):
    first = cache_call(tiny_model, texts, tmp_path)
    assert first.path.exists()
    monkeypatch.setattr(hs, "extract_hidden_states", lambda *a, **k: pytest.fail("recomputed"))
    body, _, _ = hs.decoder_parts(tiny_model.model)
    monkeypatch.setattr(body, "forward", ForbiddenForward().forward)
    monkeypatch.setattr(tiny_model.model, "forward", ForbiddenForward().forward)
    second = cache_call(tiny_model, texts, tmp_path)
    assert torch.equal(first.states, second.states) and second.path == first.path


def test_cache_holds_the_float16_of_the_extraction_memory_mapped(tiny_model, texts, tmp_path):
    first = cache_call(tiny_model, texts, tmp_path)
    assert first.states.dtype == torch.float16
    assert torch.equal(first.states, extract(tiny_model, texts).half())
    again = cache_call(tiny_model, texts, tmp_path)
    for states in (first.states, again.states):  # the first run's too, after the rename
        assert mapped_file(states) == first.path.resolve()


def test_cache_key_changes_with_every_input(tiny_model, texts):
    key = hs.states_cache_key("m", texts, [1, 2], 256)
    assert key != hs.states_cache_key("other-model", texts, [1, 2], 256)
    assert key != hs.states_cache_key("m", texts[:-1] + ["changed"], [1, 2], 256)
    assert key != hs.states_cache_key("m", texts, [1], 256)
    assert key != hs.states_cache_key("m", texts, [1, 2], 128)


@pytest.mark.parametrize(
    "damage", ["truncate", "garbage", "wrong_key", "wrong_shape", "nan_payload", "inf_payload"]
)
def test_corrupt_or_stale_cache_is_recomputed(tiny_model, texts, tmp_path, damage):
    good = cache_call(tiny_model, texts, tmp_path)
    # The damage below rewrites the file in place, under the mapping; the suite only ever
    # replaces a cache file by renaming a new one over it.
    good = good._replace(states=good.states.clone())
    if damage == "truncate":
        good.path.write_bytes(good.path.read_bytes()[:100])
    elif damage == "garbage":
        good.path.write_bytes(b"\x00" * 64)
    elif damage in ("nan_payload", "inf_payload"):  # an intact header over a bad payload
        states = good.states.clone()
        states[1, 0, 2] = float("nan") if damage == "nan_payload" else float("inf")
        save_file({"states": states}, good.path, metadata={"key": good.key})
    elif damage == "wrong_key":
        save_file({"states": good.states.half()}, good.path, metadata={"key": "not-this-one"})
    else:
        save_file({"states": good.states[:2].half()}, good.path, metadata={"key": good.key})
    again = cache_call(tiny_model, texts, tmp_path)
    assert torch.equal(again.states, good.states)
    assert (
        hs.read_cached_states(good.path, good.key, tuple(good.states.shape)).shape
        == good.states.shape
    )


def test_split_examples_tags_both_sides_of_each_pair():
    pair = lambda i: PreferencePair(f"p{i}", f"prompt {i}", "safe answer", "unsafe answer", ("S1",))  # noqa: E731
    examples = hs.split_examples([pair(0), pair(1)], [pair(2)])
    assert [(e.example_id, e.is_safe, e.split) for e in examples] == [
        ("p0:chosen", True, "train"),
        ("p0:rejected", False, "train"),
        ("p1:chosen", True, "train"),
        ("p1:rejected", False, "train"),
        ("p2:chosen", True, "test"),
        ("p2:rejected", False, "test"),
    ]


def test_states_index_round_trip(tiny_model, texts, tmp_path):
    from repsafe_lib.artifacts import write_json

    cached = cache_call(tiny_model, texts, tmp_path)
    write_json(tmp_path / "states.json", hs.states_index(cached, [1, 2, 3], tiny_model))
    states, layers = hs.load_states(tmp_path)
    assert layers == [1, 2, 3] and torch.equal(states, cached.states)
