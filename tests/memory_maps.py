"""Which file, if any, backs a tensor's memory: read from the process's own memory map (Linux)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

MAPS = Path("/proc/self/maps")

needs_proc_maps = pytest.mark.skipif(not MAPS.exists(), reason="needs /proc/self/maps (Linux)")


def mapped_file(tensor: torch.Tensor) -> Path | None:
    """The file mapped at the address of `tensor`'s first element, or None (anonymous memory)."""
    if not MAPS.exists():
        pytest.skip("needs /proc/self/maps (Linux)")
    address = tensor.data_ptr()
    for line in MAPS.read_text().splitlines():
        fields = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if start <= address < end:
            return Path(fields[5]) if len(fields) == 6 and fields[5].startswith("/") else None
    return None
