"""Hidden-state extraction in a child process that `test_reliability` kills with SIGKILL.

`python tests/extraction_worker.py CACHE_DIR STAGE` runs `cached_hidden_states` on the tiny model and,
at STAGE, prints `READY` and waits to be killed, so the kill lands at a known point rather than after a
guessed sleep:

- `extracting`: after the second batch's forward pass, before anything is written;
- `writing`: with half of the cache file's bytes on disk under its temporary name.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from repsafe_lib import hidden_states as hs
from repsafe_lib.models import LoadedModel, load_model
from repsafe_lib.params import load_params

N_TEXTS, BATCH_SIZE, MAX_LENGTH = 24, 4, 64
STAGES = ("extracting", "writing")


def worker_texts(loaded: LoadedModel) -> list[str]:
    return [
        hs.format_conversation(
            loaded.tokenizer, f"How do I do task {i}?", "Step one. " * (1 + i % 7)
        )
        for i in range(N_TEXTS)
    ]


def run_extraction(loaded: LoadedModel, cache_dir: str | Path) -> hs.CachedStates:
    """The call under test; the test repeats it in-process to compare with an uninterrupted run."""
    return hs.cached_hidden_states(
        loaded.model,
        loaded.tokenizer,
        worker_texts(loaded),
        model_fingerprint=loaded.fingerprint,
        cache_dir=cache_dir,
        layers=list(range(1, loaded.num_layers + 1)),
        max_length=MAX_LENGTH,
        batch_size=BATCH_SIZE,
        progress=False,
    )


def wait_to_be_killed() -> None:
    print("READY", flush=True)
    while True:
        time.sleep(60)


def stop_after_batches(loaded: LoadedModel, count: int) -> None:
    _, blocks, _ = hs.decoder_parts(loaded.model)
    seen = []

    def after_forward(module, inputs, output):
        seen.append(1)
        if len(seen) == count:
            wait_to_be_killed()

    blocks[-1].register_forward_hook(after_forward)


def stop_half_way_through_writing() -> None:
    real_write = hs.write_states_file

    def half_written(filename, states, metadata):
        real_write(filename, states, metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])
        wait_to_be_killed()

    hs.write_states_file = half_written


def main(cache_dir: str, stage: str) -> None:
    params = load_params("params/tiny.yaml")
    loaded = load_model(params.model, seed=params.seed)
    if stage == "extracting":
        stop_after_batches(loaded, 2)
    else:
        stop_half_way_through_writing()
    run_extraction(loaded, cache_dir)
    print("FINISHED", flush=True)  # never reached when the test kills us


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in STAGES:
        raise SystemExit(f"usage: {sys.argv[0]} CACHE_DIR {{{','.join(STAGES)}}}")
    main(*sys.argv[1:])
