"""The float16 states file: streamed writer, memory-mapped reader, block-wise readers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from memory_maps import mapped_file
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from repsafe_lib import states_file as sf


def random_states(n=10, layers=3, d=8, seed=0) -> torch.Tensor:
    return torch.randn(n, layers, d, generator=torch.Generator().manual_seed(seed)).half()


@pytest.mark.parametrize("max_elements", [1, 24, 1 << 24])  # a row per block, 1 row, one block
def test_written_file_is_what_safetensors_reads(tmp_path, max_elements):
    states = random_states()
    path = tmp_path / "s.safetensors"
    sf.write_states_file(path, states, {"key": "abc"}, max_elements=max_elements)
    assert torch.equal(load_file(path)["states"], states)
    with safe_open(path, framework="pt") as handle:
        assert handle.metadata() == {"key": "abc"}
    assert sf.read_states_metadata(path) == {"key": "abc"}
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    assert (8 + header_length) % 8 == 0  # the data is aligned


def test_safetensors_own_file_maps_to_the_same_values(tmp_path):
    states = random_states(n=7)
    path = tmp_path / "s.safetensors"
    save_file({"states": states}, path, metadata={"key": "k"})
    assert torch.equal(sf.map_states_file(path), states)


def test_mapped_states_are_backed_by_the_file_and_writes_stay_private(tmp_path):
    states = random_states()
    path = tmp_path / "s.safetensors"
    sf.write_states_file(path, states, {})
    before = path.read_bytes()
    mapped = sf.map_states_file(path)
    assert mapped.dtype == torch.float16 and mapped.shape == states.shape
    assert mapped_file(mapped) == path.resolve()
    mapped[0, 0, 0] = 123.0
    assert path.read_bytes() == before
    assert torch.equal(sf.map_states_file(path), states)


def damage(path, how):
    data = path.read_bytes()
    if how == "cut_short":
        path.write_bytes(data[:-2])
    elif how == "too_long":
        path.write_bytes(data + b"\0\0")
    elif how == "header_only":
        path.write_bytes(data[:8])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage_header":
        path.write_bytes((16).to_bytes(8, "little") + b"\xff" * 16 + data[24:])


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("cut_short", "data ends at byte"),
        ("too_long", "data ends at byte"),
        ("header_only", "header of"),
        ("empty", "too short"),
        ("garbage_header", "not JSON"),
    ],
)
def test_damaged_file_is_refused_with_the_reason(tmp_path, how, message):
    path = tmp_path / "s.safetensors"
    sf.write_states_file(path, random_states(), {})
    damage(path, how)
    with pytest.raises(sf.StatesFileError, match=message):
        sf.map_states_file(path)


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"states": torch.zeros(2, 3, 4)}, "F32, expected F16"),
        ({"states": torch.zeros(2, 3, 4).half(), "extra": torch.zeros(1).half()}, "tensors"),
        ({"other": torch.zeros(2, 3, 4).half()}, "tensors"),
        ({"states": torch.zeros(6, 4).half()}, "shape"),
    ],
)
def test_other_layouts_are_refused(tmp_path, tensors, message):
    path = tmp_path / "s.safetensors"
    save_file(tensors, path)
    with pytest.raises(sf.StatesFileError, match=message):
        sf.map_states_file(path)


def test_only_float16_is_written(tmp_path):
    with pytest.raises(TypeError, match="float16"):
        sf.write_states_file(tmp_path / "s", torch.zeros(2, 3, 4), {})


@pytest.mark.parametrize(
    "rows",
    [None, [7, 0, 3, 3], np.array([9, 1]), torch.tensor([2, 5, 8]), np.arange(10) % 3 == 0, []],
)
def test_row_blocks_are_the_rows_upcast_a_block_at_a_time(rows):
    states = random_states()
    blocks = list(sf.row_blocks(states, rows, max_elements=2 * 3 * 8))
    assert all(b.dtype == torch.float32 and len(b) <= 2 for b in blocks)
    index = None if rows is None else np.asarray(rows)
    if index is None:
        expected = states
    elif index.dtype == bool:
        expected = states[torch.as_tensor(index)]
    else:
        expected = states[torch.as_tensor(index).long()] if len(index) else states[:0]
    joined = torch.cat(blocks) if blocks else torch.zeros(0, 3, 8)
    assert torch.equal(joined, expected.float())


def test_all_finite_finds_a_nan_or_inf_in_any_block():
    states = random_states(n=50)
    assert sf.all_finite(states)
    for value in (float("nan"), float("inf")):
        damaged = states.clone()
        damaged[49, 2, 7] = value
        assert not sf.all_finite(damaged)


def test_layer_rows_is_one_layer_upcast():
    states = random_states()
    rows = np.array([4, 1, 1])
    for source in (states, states.numpy()):
        got = sf.layer_rows(source, 2, rows)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, states[rows, 2].float().numpy())
    np.testing.assert_array_equal(sf.layer_rows(states, 0), states[:, 0].float().numpy())
