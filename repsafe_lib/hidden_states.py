"""Last-token hidden states of every decoder layer (paper Sec 3.2).

A conversation is the prompt in the model's chat template (with the assistant turn opened), then the
response, then the end-of-sequence token; its state at layer l is the hidden state of the *last
non-padding token* after decoder layer l (l = 1..L; the embedding output is not a layer).

Convention, kept in this one place: layer L's state is transformers' `hidden_states[L]`, which has
passed the model's final norm; layers 1..L-1 have not. This equals `output_hidden_states=True`'s
`hidden_states[1:]`, but is gathered by forward hooks that keep only the pooled token of each layer,
so no `[B, T, L, d]` tensor ever exists and the LM head is never run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from repsafe_lib.artifacts import read_json
from repsafe_lib.caching import (
    CacheFormat,
    cached,
    canonical_json,
    key_digest,
    key_metadata,
    load_cached,
    tensor_file_key,
    text_digests,
)
from repsafe_lib.loaders import to_labeled_responses
from repsafe_lib.records import PreferencePair
from repsafe_lib.states_file import all_finite, map_states_file, write_states_file

if TYPE_CHECKING:  # at run time these would load all of transformers' modelling code
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# Bump when the meaning of a cached state changes (formatting, pooling, layer convention).
STATE_CONVENTION = "last-nonpad-token/hidden_states[1:]/v1"
PLAIN_FORMAT = "\n\nHuman: {prompt}\n\nAssistant:"


@dataclass(frozen=True)
class StateExample:
    """One response whose states are extracted: a row of the `[n, L, d]` tensor."""

    example_id: str
    prompt: str
    response: str
    is_safe: bool
    split: str  # "train" | "test"


def split_examples(
    train_pairs: Sequence[PreferencePair], test_pairs: Sequence[PreferencePair]
) -> list[StateExample]:
    """Both responses of every pair, train first, each tagged with its split."""
    return [
        StateExample(r.example_id, r.prompt, r.response, r.is_safe, split)
        for split, pairs in (("train", train_pairs), ("test", test_pairs))
        for r in to_labeled_responses(pairs)
    ]


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """The prompt as the model sees it before its answer: chat template with the assistant turn open.

    Models without a chat template (base models such as Llama-2-7b) get the hh-rlhf dialogue format.
    """
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return PLAIN_FORMAT.format(prompt=prompt)


def format_conversation(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str) -> str:
    """Prompt, response and end-of-sequence token: the last token is the one whose state we keep."""
    separator = "" if tokenizer.chat_template else " "
    return f"{format_prompt(tokenizer, prompt)}{separator}{response}{tokenizer.eos_token}"


def tokenize_conversations(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[list[int]]:
    """Token ids per text; too-long texts lose tokens from the *start*, keeping the final token."""
    add_special = not tokenizer.chat_template  # a chat template already writes BOS where it wants
    encoded = tokenizer(list(texts), add_special_tokens=add_special)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in encoded)
    if truncated:
        log.warning(
            "%d of %d texts exceed %d tokens; kept their last %d tokens",
            truncated,
            len(encoded),
            max_length,
            max_length,
        )
    return [ids[-max_length:] for ids in encoded]


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """`input_ids [B, T]` and `attention_mask [B, T]`, padded on `side` ("left" or "right")."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        ids[row, span] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of the last non-padding token per row `[B]`, whichever side was padded."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask * positions).argmax(dim=1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over real tokens, so left padding does not shift the positions."""
    return (attention_mask.cumsum(dim=1) - 1).clamp(min=0)


def decoder_parts(model: PreTrainedModel) -> tuple[nn.Module, nn.ModuleList, nn.Module]:
    """(body without LM head, its decoder layers, its final norm) for decoder-only transformers."""
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    for layers_name, norm_name in (
        ("layers", "norm"),
        ("h", "ln_f"),
        ("layers", "final_layernorm"),
    ):
        layers, norm = getattr(body, layers_name, None), getattr(body, norm_name, None)
        if isinstance(layers, nn.ModuleList) and norm is not None:
            return body, layers, norm
    raise TypeError(f"{type(model).__name__}: can't find its decoder layers and final norm")


class LastTokenRecorder:
    """Forward hooks that pool each requested layer's output at the last real token, as it runs."""

    def __init__(self, model: PreTrainedModel, layers: Sequence[int]):
        _, blocks, norm = decoder_parts(model)
        self.layers, self.pooled = list(layers), {}
        self.index: torch.Tensor | None = None
        last = len(blocks)
        # hidden_states[l] is block l-1's output for l < L; hidden_states[L] is the final norm's.
        modules = {layer: norm if layer == last else blocks[layer - 1] for layer in self.layers}
        self.handles = [m.register_forward_hook(self._hook(layer)) for layer, m in modules.items()]

    def _hook(self, layer: int):
        def pool(module, inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            self.pooled[layer] = hidden[rows, self.index].float()

        return pool

    def stacked(self) -> torch.Tensor:
        """`[B, L, d]` in the order the layers were requested."""
        return torch.stack([self.pooled.pop(layer) for layer in self.layers], dim=1)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so memory peaks early)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


@torch.inference_mode()
def extract_hidden_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    layers: Sequence[int],
    max_length: int,
    batch_size: int,
    padding_side: str = "right",
    progress: bool = True,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """States `[n, len(layers), d]` (on the CPU, in `dtype`) of the last token of each formatted
    text.

    `layers` are 1-based decoder layer numbers. Batches are length-sorted to waste little padding;
    the result is in the order of `texts`. In float16 (the cache's precision, half the memory) a
    state beyond float16's range raises `Float16RangeError` naming its text.
    """
    token_ids = tokenize_conversations(tokenizer, texts, max_length)
    body, _, _ = decoder_parts(model)
    device = next(model.parameters()).device
    recorder = LastTokenRecorder(model, layers)
    states = torch.empty((len(texts), len(layers), model.config.hidden_size), dtype=dtype)
    batches = length_sorted_batches([len(ids) for ids in token_ids], batch_size)
    bar = tqdm(
        total=sum(map(len, token_ids)), unit="tok", desc="hidden states", disable=not progress
    )
    try:
        for batch in batches:
            ids, mask = pad_batch(
                [token_ids[i] for i in batch], tokenizer.pad_token_id, padding_side
            )
            ids, mask = ids.to(device), mask.to(device)
            recorder.index = last_token_index(mask)
            body(
                input_ids=ids,
                attention_mask=mask,
                position_ids=position_ids_from_mask(mask),
                use_cache=False,
            )
            pooled = recorder.stacked()
            if dtype == torch.float16:
                pooled = _within_float16(pooled, batch)
            states[batch] = pooled.cpu().to(dtype)
            bar.update(int(mask.sum()))
    finally:
        recorder.remove()
        bar.close()
    return states


class Float16RangeError(ValueError):
    """A hidden state that float16 (the cache's precision) cannot hold."""


def _within_float16(pooled: torch.Tensor, batch: Sequence[int]) -> torch.Tensor:
    """`pooled [B, L, d]` in float16, or `Float16RangeError` naming the first text whose state
    float16 turns into inf (or that was NaN already)."""
    half = pooled.to(torch.float16)
    finite = torch.isfinite(half).flatten(1).all(dim=1)
    if bool(finite.all()):
        return half
    bad = int((~finite).nonzero()[0, 0])
    peak = pooled[bad].nan_to_num(nan=0.0).abs().max().item()
    raise Float16RangeError(
        f"hidden states of text {batch[bad]} hold NaN or values beyond float16's range"
        f" (largest magnitude {peak:.3g})"
    )


def states_cache_key(
    model_fingerprint: str, texts: Sequence[str], layers: Sequence[int], max_length: int
) -> str:
    """Hash of everything a cached state depends on: weights, exact texts, layers, truncation."""
    header = {
        "model": model_fingerprint,
        "layers": list(layers),
        "max_length": max_length,
        "convention": STATE_CONVENTION,
        "n": len(texts),
    }
    return key_digest(canonical_json(header), text_digests(texts))


def _save_states(tmp: Path, stored: torch.Tensor, key: str) -> torch.Tensor:
    # `write_states_file` is looked up here at call time: the crash tests stop it half-way.
    write_states_file(tmp, stored, key_metadata(key))
    # The mapping outlives the rename of `tmp` into place; the in-memory copy can then be freed.
    return map_states_file(tmp)


def _states_problem(states: torch.Tensor, shape: tuple[int, int, int]) -> str | None:
    """A cache of another shape, or holding NaN or inf under an intact header, is not used."""
    if tuple(states.shape) != shape:
        return f"states of shape {tuple(states.shape)}, not {shape}"
    if not all_finite(states):
        return "holds NaN or inf values"
    return None


def states_cache(shape: tuple[int, int, int]) -> CacheFormat[torch.Tensor]:
    """Float16 safetensors `{"states": [n, L, d]}` with the key in the metadata, memory-mapped
    on load (`states_file`)."""
    return CacheFormat(
        what="hidden-state cache",
        load=map_states_file,
        save=_save_states,
        recorded_key=tensor_file_key,
        problem=lambda states: _states_problem(states, shape),
    )


_FLOAT16_REMEDY = "check the model's weights or choose other extraction.layers"


def _float16(states: torch.Tensor, path: Path) -> torch.Tensor:
    """The states as the cache stores them; refused where float16 can't hold them (such a file
    would be refused on every load)."""
    stored = states.to(torch.float16).contiguous()
    if not all_finite(stored):
        peak = states.nan_to_num(nan=0.0).abs().max().item()
        raise ValueError(
            f"{path}: hidden states hold NaN or values beyond the float16 cache's range (largest"
            f" magnitude {peak:.3g}); {_FLOAT16_REMEDY}"
        )
    return stored


class CachedStates(NamedTuple):
    states: torch.Tensor  # [n, L, d] float16, memory-mapped from the cache file
    path: Path
    key: str


def cached_hidden_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    model_fingerprint: str,
    cache_dir: str | Path,
    layers: Sequence[int],
    max_length: int,
    batch_size: int,
    progress: bool = True,
) -> CachedStates:
    """`extract_hidden_states`, cached on disk as float16 safetensors keyed by `states_cache_key`.

    A second call with the same inputs loads the file without touching the model; a stale, truncated
    or corrupt file, or one holding NaN or inf, is recomputed and replaced (written atomically).
    The states returned are the file's, memory-mapped (float16; readers upcast what they use,
    `states_file`), so the first run and every rerun see the same numbers.
    """
    key = states_cache_key(model_fingerprint, texts, layers, max_length)
    path = Path(cache_dir) / f"states-{key[:24]}.safetensors"
    shape = (len(texts), len(layers), model.config.hidden_size)

    def extract() -> torch.Tensor:
        options = dict(layers=layers, max_length=max_length, batch_size=batch_size)
        try:
            states = extract_hidden_states(
                model, tokenizer, texts, **options, progress=progress, dtype=torch.float16
            )
        except Float16RangeError as error:
            raise ValueError(f"{path}: {error}; {_FLOAT16_REMEDY}") from None
        return _float16(states, path)

    return CachedStates(cached(path, key, states_cache(shape), extract), path, key)


def policy_states(
    policy, texts: Sequence[str], extraction, layers: Sequence[int], cache_dir: str | Path
) -> CachedStates:
    """`cached_hidden_states` of a loaded policy (`models.LoadedModel`) with the profile's
    `params.ExtractionParams`: what notebook 01 runs on the pairs and on the transfer set."""
    return cached_hidden_states(
        policy.model,
        policy.tokenizer,
        texts,
        model_fingerprint=policy.fingerprint,
        cache_dir=cache_dir,
        layers=layers,
        max_length=extraction.max_length,
        batch_size=extraction.batch_size,
    )


def read_cached_states(path: str | Path, key: str, shape: tuple[int, int, int]) -> torch.Tensor:
    """States written by `cached_hidden_states` (float16, memory-mapped), for notebooks that must
    not reload the model."""
    states = load_cached(path, key, states_cache(shape))
    if states is None:
        raise FileNotFoundError(
            f"{path} is missing, stale or corrupt: rerun notebook 01_representations"
        )
    return states


def states_index(cached: CachedStates, layers: Sequence[int], model) -> dict:
    """What a later notebook needs to find and verify the states without loading the model."""
    return {
        "file": cached.path.name,
        "key": cached.key,
        "layers": list(layers),
        "shape": list(cached.states.shape),
        "model": model.name,
        "model_fingerprint": model.fingerprint,
        "convention": STATE_CONVENTION,
    }


def load_states(
    run_dir: str | Path, index_file: str = "states.json"
) -> tuple[torch.Tensor, list[int]]:
    """States `[n, L, d]` (float16, memory-mapped) and their layer numbers from notebook 01's
    directory (the transfer set's: ``index_file="transfer_states.json"``)."""
    run_dir = Path(run_dir)
    index = read_json(run_dir / index_file, producer="01_representations")
    states = read_cached_states(run_dir / index["file"], index["key"], tuple(index["shape"]))
    return states, index["layers"]
