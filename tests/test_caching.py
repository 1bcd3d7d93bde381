"""The one "compute once, keyed, atomically cached" helper, and the digests every cache's key
function produces (they are recorded in artifacts, so they must not change)."""

from __future__ import annotations

import dataclasses
import json
import logging
import types
from pathlib import Path

import pytest
import torch

from repsafe_lib import artifacts, caching
from repsafe_lib import hidden_states as hs
from repsafe_lib.models import file_sha256
from repsafe_lib.sampling import DecodingConfig, _prompt_sha, response_cache_path
from repsafe_lib.training.batches import EncodedPair
from repsafe_lib.training.checkpoints import run_key
from repsafe_lib.training.references import reference_cache_key


def _save(tmp: Path, value: float, key: str) -> float:
    stored = round(value, 2)  # the file's precision: the caller gets what a reload gives
    tmp.write_text(json.dumps({"key": key, "value": stored}))
    return stored


NUMBER = caching.CacheFormat(
    what="number cache",
    load=lambda path: json.loads(path.read_text())["value"],
    save=_save,
    recorded_key=lambda path: json.loads(path.read_text())["key"],
    problem=lambda value: "negative" if value < 0 else None,
)


class Counted:
    """`compute` that counts its calls."""

    def __init__(self, value: float):
        self.value, self.calls = value, 0

    def __call__(self) -> float:
        self.calls += 1
        return self.value


def test_the_value_returned_is_the_one_stored_and_a_second_call_loads_it(tmp_path):
    path, compute = tmp_path / "n.json", Counted(1.23456)
    assert caching.cached(path, "k", NUMBER, compute) == 1.23
    assert caching.cached(path, "k", NUMBER, compute) == 1.23
    assert compute.calls == 1
    assert [p.name for p in tmp_path.iterdir()] == ["n.json"]


@pytest.mark.parametrize(
    ("damage", "logged"),
    [
        ("cut off", "is unreadable ("),
        ("another key", "is stale (written under another key)"),
        ("invalid payload", "is invalid (negative)"),
    ],
)
def test_a_damaged_stale_or_invalid_entry_is_recomputed_and_logged(
    tmp_path, caplog, damage, logged
):
    path = tmp_path / "n.json"
    caching.cached(path, "k", NUMBER, Counted(1.0))
    if damage == "cut off":
        path.write_text(path.read_text()[:10])
    elif damage == "another key":
        path.write_text(json.dumps({"key": "other", "value": 5.0}))
    else:
        path.write_text(json.dumps({"key": "k", "value": -1.0}))
    compute = Counted(2.0)
    with caplog.at_level(logging.WARNING, logger="repsafe_lib.caching"):
        assert caching.cached(path, "k", NUMBER, compute) == 2.0
    assert compute.calls == 1
    assert f"number cache {path} {logged}" in caplog.text and caplog.text.count("\n") == 1
    assert caplog.text.rstrip().endswith("; recomputing")
    assert caching.load_cached(path, "k", NUMBER) == 2.0


def test_a_first_computation_logs_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        caching.cached(tmp_path / "n.json", "k", NUMBER, Counted(1.0))
    assert caplog.text == ""


def test_a_crash_during_compute_or_save_leaves_no_entry_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "n.json"

    def crash() -> float:
        raise RuntimeError("killed while computing")

    with pytest.raises(RuntimeError):
        caching.cached(path, "k", NUMBER, crash)
    assert list(tmp_path.iterdir()) == []

    caching.cached(path, "old", NUMBER, Counted(1.0))
    broken = dataclasses.replace(NUMBER, save=lambda tmp, value, key: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        caching.cached(path, "new", broken, Counted(2.0))
    assert [p.name for p in tmp_path.iterdir()] == ["n.json"]
    assert caching.load_cached(path, "old", NUMBER) == 1.0


def _save_in_directory(staging: Path, value: str, key: str) -> str:
    (staging / "key").write_text(key)
    (staging / "payload").write_text(value)
    return value


TEXT_DIRECTORY = caching.CacheFormat(
    what="text directory",
    load=lambda path: (path / "payload").read_text(),
    save=_save_in_directory,
    recorded_key=lambda path: (path / "key").read_text(),
    directory=True,
)


def test_a_directory_entry_is_replaced_whole_and_a_killed_save_is_cleared(tmp_path):
    path = tmp_path / "entry"
    assert caching.cached(path, "a", TEXT_DIRECTORY, lambda: "first") == "first"
    left_by_a_kill = tmp_path / ".entry.partial"
    left_by_a_kill.mkdir()
    (left_by_a_kill / "payload").write_text("half")
    assert caching.cached(path, "b", TEXT_DIRECTORY, lambda: "second") == "second"
    assert sorted(p.name for p in path.iterdir()) == ["key", "payload"]
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_a_shared_directory_keeps_the_first_complete_copy(tmp_path):
    path = tmp_path / "model"
    with artifacts.atomic_directory(path, shared=True) as first:
        (first / "config.json").write_text("first")
        with artifacts.atomic_directory(path, shared=True) as second:
            (second / "config.json").write_text("second")
    assert (path / "config.json").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the loser's copy is dropped


def test_a_key_digest_streams_its_parts_in_order():
    assert caching.key_digest(b"ab", [b"c", b"d"]) == caching.key_digest(b"abcd")
    assert caching.key_digest(b"abcd", length=8) == caching.key_digest(b"abcd")[:8]
    assert caching.canonical_json({"b": 1, "a": [2]}) == b'{"a": [2], "b": 1}'


# Digests of fixed inputs, as the caches wrote them before they shared one helper: the states
# key and file name are in notebook 01's states.json, checkpoints record their run key, cached
# responses and reference log-probs are found by these names.
PAIRS = [
    EncodedPair("p0", 0, (1, 2, 3), (1, 2, 4, 5), 2, 2),
    EncodedPair("p1", 1, (7,), (8, 9), 0, 1),
]


def test_hidden_state_and_response_keys_are_unchanged():
    texts = ["first text", "zweiter Text \u00e9", ""]
    assert (
        hs.states_cache_key("tiny-random:abc|float32", texts, [1, 3], 64)
        == "08ba17380a94afc403c66c16ee8fc986bf942a5bd2378255a70e39b36f0cad9b"
    )
    sampled = DecodingConfig(7, do_sample=True, temperature=0.7, top_p=0.9, seed=3, num_samples=2)
    assert sampled.key() == "f12eb3b14df2ba49"
    assert DecodingConfig(max_new_tokens=5).key() == "193b088565508255"
    path = response_cache_path("/c", "tiny-random:abc|float32", sampled)
    assert path.name == "responses-4f3512e7c78f0ae3.jsonl"
    assert _prompt_sha("<|im_start|>user\nhi\u00e9<|im_end|>") == "c4b44e12cf5bc8d1"


class _Config:
    def to_json_string(self, use_diff: bool = False) -> str:
        return '{"hidden_size": 8}\n'


def test_reference_run_and_file_keys_are_unchanged(tmp_path):
    assert (
        reference_cache_key("nf4:tiny|float32", PAIRS)
        == "81528d8adf53cd4decf7b8e5ced0e7719fb37054903eb3b46219c69182271e89"
    )
    reward = torch.nn.Linear(2, 1)
    with torch.no_grad():
        reward.weight.copy_(torch.tensor([[0.5, -1.0]]))
        reward.bias.fill_(0.25)
    model, rewards = (
        types.SimpleNamespace(config=_Config()),
        types.SimpleNamespace(rewards=[reward]),
    )
    key = run_key("sft:cdpo", "TrainingParams(beta=0.1)", 7, PAIRS, model, rewards)
    assert key == "25be7481f3713c0c"
    assert run_key("sft:sft", "T", 0, PAIRS, types.SimpleNamespace(), None) == "692e330ded8986b5"
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 40000)
    assert (
        file_sha256(blob, chunk_size=1 << 16)
        == "19d6d9faf9ce166abeb8452ff274241877eb1c09580f7ef62ff77696a6bee1fc"
    )
