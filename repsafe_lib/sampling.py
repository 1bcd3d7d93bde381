"""Responses of a policy to evaluation prompts: batched, deterministic, cached (paper Sec 4.2).

Prompts are rendered with the policy's chat template (`hidden_states.format_prompt`), left-padded
into length-sorted batches and decoded until the end-of-sequence token or `max_new_tokens`. A model
without a chat template (a base model such as Llama-2-7b) sees the hh-rlhf dialogue format, which has
no end-of-turn token: its answer ends where it starts the next `Human:`/`Assistant:` turn, so its
rows also stop there and the response is cut before the marker.

Greedy decoding is the default. Sampled decoding draws each row's next token with its own
`torch.Generator`, seeded from (seed, prompt id, sample index), so a prompt's samples do not depend
on which other prompts share its batch (up to the floating-point effects of padding). It is done in
a logits processor that leaves one finite logit per row, so transformers' greedy search then picks
exactly the sampled token while handling the cache, padding and stopping as usual.

Responses are cached as JSON lines keyed by (model fingerprint, decoding config): one file per pair,
one record per (prompt id, sample index), so judges can be re-run without regenerating.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from repsafe_lib.artifacts import write_json
from repsafe_lib.caching import CacheFormat, canonical_json, key_digest, load_cached
from repsafe_lib.hidden_states import format_prompt, length_sorted_batches, pad_batch
from repsafe_lib.records import EvalPrompt, read_records, write_records
from repsafe_lib.seeding import stable_seed

if TYPE_CHECKING:  # at run time these would load all of transformers' modelling code
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# Bump when the meaning of a cached response changes (prompt formatting, stopping, decoding).
GENERATION_CONVENTION = "chat-template-or-dialogue/left-pad/stop-at-eos-or-next-turn/v2"


@dataclass(frozen=True)
class DecodingConfig:
    """How responses are decoded; its `key()` is part of every cache key."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    num_samples: int = 1

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.num_samples < 1:
            raise ValueError("max_new_tokens and num_samples must be >= 1")
        if self.num_samples > 1 and not self.do_sample:
            raise ValueError("num_samples > 1 needs do_sample=True: greedy samples are identical")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be > 0 and top_p in (0, 1]")

    def key(self) -> str:
        return key_digest(
            canonical_json([GENERATION_CONVENTION, dataclasses.asdict(self)]), length=16
        )


@dataclass(frozen=True)
class Generation:
    """Decoded continuation of one input text."""

    text: str
    num_tokens: int  # generated tokens of the answer: before the end-of-sequence token or turn
    finished: bool  # ended at the end-of-sequence token or a turn marker (else hit max_new_tokens)


@dataclass(frozen=True)
class ResponseRecord:
    """One response of a policy to one prompt; `empty` flags a generation with no visible text."""

    prompt_id: str
    sample_index: int
    text: str
    num_tokens: int
    finished: bool
    empty: bool
    seed: int  # the row's sampling seed (the run's seed under greedy decoding)
    prompt_sha: str  # hash of the formatted prompt: a cached record is reused only if it matches


def row_seed(seed: int, prompt_id: str, sample_index: int) -> int:
    """The sampling seed of one (prompt, sample): independent of the batch it lands in."""
    return stable_seed(seed, prompt_id, sample_index)


def _nucleus(sorted_probs: torch.Tensor, order: torch.Tensor, top_p: float, width: int):
    """Rows of descending probabilities (and their token ids) -> `[b, width]`, zero outside the
    nucleus; the most likely token always stays (the mass before it is 0)."""
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    kept = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    return sorted_probs.new_zeros(len(sorted_probs), width).scatter(-1, order, kept)


def top_p_filter(probs: torch.Tensor, top_p: float, candidates: int = 256) -> torch.Tensor:
    """Zero all but the smallest set of most likely tokens whose mass reaches `top_p` (`[B, V]`).

    A row whose `candidates` most likely tokens already hold `top_p` of the mass is filtered among
    those alone (its nucleus lies inside them); other rows sort the whole vocabulary.
    """
    if top_p >= 1:
        return probs
    width = probs.shape[-1]
    top, order = probs.topk(min(candidates, width), dim=-1)
    covered = top.sum(dim=-1) >= top_p
    out = torch.zeros_like(probs)
    if covered.any():
        out[covered] = _nucleus(top[covered], order[covered], top_p, width)
    if not covered.all():
        sorted_probs, full_order = probs[~covered].sort(dim=-1, descending=True)
        out[~covered] = _nucleus(sorted_probs, full_order, top_p, width)
    return out


class PerRowSampler(LogitsProcessor):
    """Temperature/top-p sampling with one generator per row; returns logits that force the draw."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float().cpu() / self.temperature, dim=-1)
        probs = top_p_filter(probs, self.top_p)
        rows = zip(probs, self.generators, strict=True)
        drawn = [torch.multinomial(p, 1, generator=g) for p, g in rows]
        forced = torch.full_like(scores, float("-inf"))
        forced[torch.arange(len(drawn)), torch.cat(drawn).to(scores.device)] = 0.0
        return forced


# End-of-turn markers of common chat formats: a chat model ends its answer with one of these even
# where the tokenizer's eos_token is another (Llama 3's <|end_of_text|> vs <|eot_id|>).
END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>")


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """End-of-sequence ids: the tokenizer's, the model's generation config's, end-of-turn markers."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = {tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
    vocab = tokenizer.get_vocab()
    ids |= {vocab[token] for token in END_OF_TURN_TOKENS if token in vocab}
    return sorted(i for i in ids if i is not None)


def _generation_config(tokenizer, max_new_tokens: int, stop_ids: list[int]) -> GenerationConfig:
    # Explicit neutral values: a checkpoint's own generation_config (e.g. a repetition penalty)
    # would otherwise fill the unset ones and change what "greedy" means between models.
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_ids,
        bos_token_id=tokenizer.bos_token_id,
    )


# The start of a new turn in the hh-rlhf dialogue format (`hidden_states.PLAIN_FORMAT`): a speaker's
# name and a colon at the start of the answer or of a line, after any whitespace ("\n\nHuman:",
# "\nHuman:", " Human:" right after "Assistant:"), whichever way the tokenizer splits the newlines.
TURN_MARKER = re.compile(r"(?:\A|\n)\s*(?:Human|Assistant):")


def end_of_turn(text: str) -> int | None:
    """Where the answer in `text` ends: the position of the first turn marker, or None."""
    match = TURN_MARKER.search(text)
    return match.start() if match else None


class StopAtNextTurn(StoppingCriteria):
    """Per row: stop once the generated text (after `prompt_width` tokens) holds a turn marker.

    Each step decodes only a row's last `window` tokens (a marker completed by the newest token
    starts a few tokens back), which keeps the check near 1 ms per step for 32 rows at any length;
    `_decode` cuts on the whole text.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_width: int, window: int = 32):
        self.tokenizer, self.prompt_width, self.window = tokenizer, prompt_width, window
        self.done: list[bool] | None = None

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        if self.done is None:
            self.done = [False] * len(input_ids)
        generated = input_ids[:, self.prompt_width :]
        clipped = generated.shape[1] > self.window
        for row, ids in enumerate(generated[:, -self.window :].tolist()):
            if not self.done[row]:
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                # A clipped window does not start the answer: its start must not count as one.
                self.done[row] = end_of_turn(f"_{text}" if clipped else text) is not None
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def _tokens_before(tokenizer, tokens: list[int], end: int) -> int:
    """How many leading `tokens` decode to text no longer than `end` characters."""
    count = len(tokens)
    while count and len(tokenizer.decode(tokens[:count], skip_special_tokens=True)) > end:
        count -= 1
    return count


def _decode(
    tokenizer, new_tokens: list[int], stop_ids: list[int], cut_at_turn: bool = False
) -> Generation:
    stops = [i for i, token in enumerate(new_tokens) if token in stop_ids]
    kept = new_tokens[: stops[0]] if stops else new_tokens
    text = tokenizer.decode(kept, skip_special_tokens=True)
    turn_end = end_of_turn(text) if cut_at_turn else None
    if turn_end is None:
        return Generation(text=text.strip(), num_tokens=len(kept), finished=bool(stops))
    answer = text[:turn_end].strip()
    return Generation(answer, num_tokens=_tokens_before(tokenizer, kept, turn_end), finished=True)


@torch.inference_mode()
def generate_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    add_special_tokens: bool,
    end_at_next_turn: bool = False,
    row_seeds: Sequence[int] | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    progress: bool = True,
    desc: str = "generating",
    synced_gpus: bool = False,
) -> list[Generation]:
    """Continue already-formatted `texts`; greedy, or sampled with one seed per row (`row_seeds`).

    Batches are length-sorted and left-padded; the result is in the order of `texts`. With
    `end_at_next_turn` (dialogue-format prompts) each row also stops at, and is cut before, the next
    turn marker; the other rows of its batch go on. `synced_gpus`: every process of a sharded model
    calls this with as many batches, and each batch's forwards go on until every process is done
    (FSDP gathers each layer's weights from all processes in every forward).
    """
    encoded = tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]
    stop_ids = stop_token_ids(model, tokenizer)
    config = _generation_config(tokenizer, max_new_tokens, stop_ids)
    device = next(model.parameters()).device
    results: list[Generation | None] = [None] * len(texts)
    batches = length_sorted_batches([len(ids) for ids in encoded], batch_size)
    for batch in tqdm(batches, desc=desc, disable=not progress):
        input_ids, mask = pad_batch([encoded[i] for i in batch], tokenizer.pad_token_id, "left")
        processors = LogitsProcessorList()
        if row_seeds is not None:
            processors.append(PerRowSampler([row_seeds[i] for i in batch], temperature, top_p))
        stopping = StoppingCriteriaList()
        if end_at_next_turn:
            stopping.append(StopAtNextTurn(tokenizer, input_ids.shape[1]))
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            generation_config=config,
            logits_processor=processors,
            stopping_criteria=stopping,
            synced_gpus=synced_gpus,
        )
        for row, index in enumerate(batch):
            new_tokens = output[row, input_ids.shape[1] :].tolist()
            results[index] = _decode(tokenizer, new_tokens, stop_ids, end_at_next_turn)
    return results


def _prompt_sha(formatted: str) -> str:
    return key_digest(formatted.encode(), length=16)


def generate_responses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[EvalPrompt],
    *,
    max_new_tokens: int,
    batch_size: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    num_samples: int = 1,
    progress: bool = True,
    synced_gpus: bool = False,
) -> list[ResponseRecord]:
    """`num_samples` responses per prompt, prompt-major: [p0 s0, p0 s1, ..., p1 s0, ...]
    (`synced_gpus`: see `generate_texts`)."""
    decoding = DecodingConfig(max_new_tokens, do_sample, temperature, top_p, seed, num_samples)
    return _generate(model, tokenizer, prompts, decoding, batch_size, progress, synced_gpus)


def _generate(
    model, tokenizer, prompts, decoding: DecodingConfig, batch_size, progress, synced_gpus=False
):
    # (prompt, formatted text, sample) by position: two prompts may share an id, never a row
    rows = [
        (p, format_prompt(tokenizer, p.prompt), k)
        for p in prompts
        for k in range(decoding.num_samples)
    ]
    seeds = [row_seed(decoding.seed, p.prompt_id, k) for p, _, k in rows]
    generations = generate_texts(
        model,
        tokenizer,
        [text for _, text, _ in rows],
        max_new_tokens=decoding.max_new_tokens,
        batch_size=batch_size,
        add_special_tokens=not tokenizer.chat_template,  # a chat template writes its own BOS
        end_at_next_turn=not tokenizer.chat_template,  # the dialogue format has no end-of-turn token
        row_seeds=seeds if decoding.do_sample else None,
        temperature=decoding.temperature,
        top_p=decoding.top_p,
        progress=progress,
        synced_gpus=synced_gpus,
    )
    return [
        ResponseRecord(
            prompt_id=p.prompt_id,
            sample_index=k,
            text=g.text,
            num_tokens=g.num_tokens,
            finished=g.finished,
            empty=not g.text,
            seed=seed if decoding.do_sample else decoding.seed,
            prompt_sha=_prompt_sha(text),
        )
        for (p, text, k), g, seed in zip(rows, generations, seeds, strict=True)
    ]


def for_generation(model: PreTrainedModel, dtype_name: str | None) -> PreTrainedModel:
    """`model` itself, or an eval-mode copy in `dtype_name` ("bfloat16", ...) to sample from."""
    dtype = getattr(torch, dtype_name) if dtype_name else None
    if dtype is None or next(model.parameters()).dtype == dtype:
        return model
    import copy

    return copy.deepcopy(model).to(dtype).eval()


def response_cache_path(cache_dir: str | Path, model_key: str, decoding: DecodingConfig) -> Path:
    """`responses-<hash>.jsonl`, the hash covering the model fingerprint and the decoding config."""
    digest = key_digest(f"{model_key}\x00{decoding.key()}".encode(), length=16)
    return Path(cache_dir) / f"responses-{digest}.jsonl"


def cached_responses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[EvalPrompt],
    *,
    model_key: str,
    cache_dir: str | Path,
    decoding: DecodingConfig,
    batch_size: int,
    progress: bool = True,
) -> list[ResponseRecord]:
    """Like `generate_responses`, but only the (prompt, sample) pairs not yet cached are generated.

    A cached record is found by its prompt id, the hash of its formatted prompt and its sample
    index, so a prompt whose text changed, or another prompt with the same id, never gets a
    response to a different text. The cache file keeps every valid record, requested ones first
    in request order.
    """
    path = response_cache_path(cache_dir, model_key, decoding)
    cached = _read_cache(path)
    shas = [_prompt_sha(format_prompt(tokenizer, p.prompt)) for p in prompts]
    samples = range(decoding.num_samples)
    requested = [
        (p.prompt_id, sha, k) for p, sha in zip(prompts, shas, strict=True) for k in samples
    ]
    missing = [
        p
        for p, sha in zip(prompts, shas, strict=True)
        if any((p.prompt_id, sha, k) not in cached for k in samples)
    ]
    if missing:
        for record in _generate(model, tokenizer, missing, decoding, batch_size, progress):
            cached[_cache_key(record)] = record
        _write_cache(path, cached, requested, decoding, model_key)
    return [cached[key] for key in requested]


_CacheKey = tuple[str, str, int]  # (prompt_id, prompt_sha, sample_index)


def _cache_key(record: ResponseRecord) -> _CacheKey:
    return (record.prompt_id, record.prompt_sha, record.sample_index)


def _load_records(path: Path) -> dict[_CacheKey, ResponseRecord]:
    records = read_records(path, ResponseRecord, producer="sampling")
    return {_cache_key(r): r for r in records}


# The file's name carries its key (model, decoding); each record carries its prompt's hash.
RESPONSE_CACHE = CacheFormat(
    what="response cache", load=_load_records, remedy="generating its responses again"
)


def _read_cache(path: Path) -> dict[_CacheKey, ResponseRecord]:
    """The cached responses; a cache that can't be read is a miss (generation is seeded per
    prompt and sample, so regenerating gives the same responses)."""
    return load_cached(path, None, RESPONSE_CACHE) or {}


def _write_cache(path, cached, requested, decoding: DecodingConfig, model_key: str) -> None:
    requested = list(dict.fromkeys(requested))  # a prompt asked for twice is stored once
    requested_set = set(requested)
    others = [key for key in cached if key not in requested_set]
    write_records(path, [cached[key] for key in requested + others])
    header = {"model": model_key, "decoding": dataclasses.asdict(decoding)}
    write_json(path.with_suffix(".json"), {**header, "convention": GENERATION_CONVENTION})
