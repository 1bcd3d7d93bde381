"""Hidden states on disk: one float16 `[n, L, d]` tensor in a safetensors file, written in blocks of
rows and memory-mapped on load, so that host memory holds neither a second copy of the file while it
is written nor a float32 copy of it while it is read.

At the paper's size (50,000 responses x 32 layers x 4,096 dims) the file is 13 GB; a float32 copy
would be 26 GB. Readers take what they need from the mapping: one layer's slice (`layer_rows`) or
blocks of rows (`row_blocks`), each upcast to float32 on its own.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

TENSOR_NAME = "states"
# Rows per block are chosen so that a float32 block holds at most this many values (64 MB).
BLOCK_ELEMENTS = 1 << 24
_HEADER_LENGTH = struct.Struct("<Q")
_ALIGNMENT = 8  # the data starts on an 8-byte boundary, as safetensors' own writer pads it


class StatesFileError(ValueError):
    """A states file whose layout is not what `write_states_file` writes."""


def rows_per_block(row_shape: Sequence[int], max_elements: int = BLOCK_ELEMENTS) -> int:
    return max(1, max_elements // max(1, math.prod(row_shape)))


def _header(states: torch.Tensor, metadata: dict[str, str]) -> bytes:
    nbytes = states.numel() * states.element_size()
    entry = {"dtype": "F16", "shape": list(states.shape), "data_offsets": [0, nbytes]}
    text = json.dumps({"__metadata__": metadata, TENSOR_NAME: entry}, separators=(",", ":"))
    header = text.encode("utf-8")
    return header + b" " * (-(_HEADER_LENGTH.size + len(header)) % _ALIGNMENT)


def write_states_file(
    path: str | Path,
    states: torch.Tensor,
    metadata: dict[str, str],
    *,
    max_elements: int = BLOCK_ELEMENTS,
) -> None:
    """`states` (float16 `[n, L, d]`) as a safetensors file `{"states": ...}` with `metadata`,
    written a block of rows at a time (safetensors' `save_file` first copies the whole tensor to
    one bytes object)."""
    if states.dtype != torch.float16:
        raise TypeError(f"states file holds float16, got {states.dtype}")
    header = _header(states, metadata)
    step = rows_per_block(states.shape[1:], max_elements)
    with open(path, "wb") as handle:
        handle.write(_HEADER_LENGTH.pack(len(header)))
        handle.write(header)
        for start in range(0, len(states), step):
            block = states[start : start + step].contiguous().cpu()
            handle.write(memoryview(block.numpy()))


def _read_header(path: Path) -> tuple[int, dict]:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(_HEADER_LENGTH.size)
        if len(prefix) < _HEADER_LENGTH.size:
            raise StatesFileError(f"{size} bytes: too short for a safetensors header")
        (length,) = _HEADER_LENGTH.unpack(prefix)
        if _HEADER_LENGTH.size + length > size:
            raise StatesFileError(f"header of {length} bytes in a file of {size}")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StatesFileError(f"header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise StatesFileError("header is not a JSON object")
    return _HEADER_LENGTH.size + length, header


def read_states_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata recorded in a states file's header (reads the header only)."""
    _, header = _read_header(Path(path))
    metadata = header.get("__metadata__") or {}
    return metadata if isinstance(metadata, dict) else {}


def map_states_file(path: str | Path) -> torch.Tensor:
    """The float16 `[n, L, d]` states of a file `write_states_file` wrote (or safetensors'
    `save_file` of `{"states": float16 tensor}`), memory-mapped: pages are read from disk as they
    are used, and writing to the tensor changes neither the file nor other readers (copy on
    write). A file cut short, or of another layout, raises `StatesFileError`."""
    path = Path(path)
    data_start, header = _read_header(path)
    entry = header.get(TENSOR_NAME)
    tensors = [name for name in header if name != "__metadata__"]
    if tensors != [TENSOR_NAME] or not isinstance(entry, dict):
        raise StatesFileError(f"tensors {tensors}, expected ['{TENSOR_NAME}']")
    if entry.get("dtype") != "F16":
        raise StatesFileError(f"states are {entry.get('dtype')}, expected F16")
    try:
        shape = tuple(int(x) for x in entry["shape"])
        begin, end = (int(x) for x in entry["data_offsets"])
    except (KeyError, TypeError, ValueError) as error:
        raise StatesFileError(f"malformed entry for '{TENSOR_NAME}' ({error})") from None
    if len(shape) != 3 or end - begin != 2 * math.prod(shape) or begin < 0:
        raise StatesFileError(f"shape {list(shape)} does not match offsets [{begin}, {end}]")
    size = path.stat().st_size
    if data_start + end != size:
        raise StatesFileError(f"data ends at byte {data_start + end}, the file at {size}")
    if math.prod(shape) == 0:
        return torch.empty(shape, dtype=torch.float16)
    mapped = np.memmap(path, dtype=np.float16, mode="c", offset=data_start + begin, shape=shape)
    return torch.from_numpy(mapped)


def _row_index(rows, device: torch.device) -> torch.Tensor:
    index = torch.as_tensor(np.asarray(rows) if not torch.is_tensor(rows) else rows)
    if index.dtype == torch.bool:
        index = index.nonzero().squeeze(1)
    return index.to(device=device, dtype=torch.long)


def row_blocks(
    states: torch.Tensor,
    rows=None,
    *,
    dtype: torch.dtype | None = torch.float32,
    max_elements: int = BLOCK_ELEMENTS,
) -> Iterator[torch.Tensor]:
    """`states[rows]` (every row when `rows` is None; indices or a boolean mask) in consecutive
    blocks of rows, each gathered and converted to `dtype` (None: as stored) on its own."""
    step = rows_per_block(states.shape[1:], max_elements)
    index = None if rows is None else _row_index(rows, states.device)
    count = len(states) if index is None else len(index)
    for start in range(0, count, step):
        block = (
            states[start : start + step] if index is None else states[index[start : start + step]]
        )
        yield block if dtype is None else block.to(dtype)


def all_finite(states: torch.Tensor) -> bool:
    """No NaN or inf anywhere in `states`, checked a block of rows at a time."""
    return all(bool(torch.isfinite(block).all()) for block in row_blocks(states, dtype=None))


def layer_rows(states, layer: int, rows=None) -> np.ndarray:
    """One layer's states `[len(rows), d]` (every row when `rows` is None) as float32, from
    `[n, L, d]` states (a tensor or an array, float16 or float32)."""
    array = states.numpy() if torch.is_tensor(states) else states
    selected = array[:, layer] if rows is None else array[np.asarray(rows), layer]
    return np.asarray(selected, dtype=np.float32)
