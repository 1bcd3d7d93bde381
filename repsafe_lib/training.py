"""Training the policy: SFT, vanilla DPO and confidence DPO with the hybrid reward (paper Sec
3.3-3.4, Eq 3-5, 9).

One cDPO step, on a batch of preference pairs:

1. one policy forward over the chosen and the rejected sequences yields the response log-probs
   and, through forward hooks, every layer's last-token state (no second forward);
2. gamma = sigmoid(alpha * (R_h(h_c) - R_h(h_r))), before any refresh. The `cdpo` run takes it
   from the paper's single R_h (notebook 03, fit on every training pair; Sec 3.4, 4.1); the
   `cdpo_crossfit` run from R_h's cross-fitted on folds of the prompts, each pair scored by the
   R_h fit on the other folds (`training.confidence_folds`), so no reward scores a pair it saw;
3. the cDPO loss with that per-pair gamma, backward, one optimiser step;
4. the refresh: `refresh_steps` AdamW steps of the margin-BT loss for every R_h on the batch's
   detached states (the single R_h on every pair, a cross-fitted one only on the other folds'
   pairs), updating scorers and gate (`training.refresh: full`) or the gate alone (`gate`), so
   the rewards track the moving representations.

Vanilla DPO is the same loop with gamma = 1; the single R_h still scores its states (a monitor)
but is not refreshed. SFT minimises the mean token NLL of the chosen responses. Every run starts
from the base policy, is seeded, has dropout off, and writes per-step metrics to `metrics.jsonl`.

The loop is built on `accelerate`: in a notebook it runs in one process (CPU or one GPU); the same
code runs on many GPUs (DDP) with `accelerate launch --multi_gpu -m repsafe_lib.training --params
params/paper.yaml --run cdpo` (README, "Training on several GPUs"; sharded FSDP/ZeRO-3
checkpoints are not supported yet).

Checkpoints (every `checkpoint_every` steps, written to a temporary directory and renamed) hold
the trainable weights, the optimiser state, every R_h and its optimiser, the RNG states and the
step, all as safetensors + JSON; `train_run(..., resume=True)` continues from the newest one and
ends where an uninterrupted run would. Each step's row is appended to `metrics.jsonl` as one whole
line and synced to disk before that step's checkpoint, so a kill cuts off at most the last line,
which a resumed run drops with a warning. Ctrl-C (or interrupting the kernel) during `run_training`
keeps the newest checkpoint and prints one line saying how to resume from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from repsafe_lib.artifacts import CorruptArtifactError, atomic_path, write_json
from repsafe_lib.hidden_states import (
    LastTokenRecorder,
    decoder_parts,
    format_conversation,
    format_prompt,
    pad_batch,
    position_ids_from_mask,
)
from repsafe_lib.losses import (
    confidence_dpo_loss,
    dpo_loss,
    dpo_margin,
    margin_bt_loss,
    preference_confidence,
)
from repsafe_lib.reward import HybridReward, load_hybrid_reward, save_hybrid_reward
from repsafe_lib.seeding import seed_everything, stable_seed

log = logging.getLogger(__name__)

# What a run optimises: token NLL of the chosen responses, the DPO loss, or the cDPO loss with a
# per-pair gamma from R_h. Notebook 04's runs are named after their objective, except the
# cross-fitted cDPO, which differs from `cdpo` only in the rewards gamma comes from.
OBJECTIVES = {"sft": "SFT", "dpo": "vanilla DPO", "cdpo": "cDPO"}
CROSS_FITTED_RUNS = {"cdpo_crossfit": "cdpo"}
RUN_LABELS = {
    "sft": "SFT",
    "dpo": "vanilla DPO",
    "cdpo": "cDPO (dataset pairs)",
    "cdpo_crossfit": "cDPO (dataset pairs, cross-fitted gamma)",
    "dpo_star": "DPO* (re-ranked samples)",
    "cdpo_star": "cDPO* (ours)",
    "online": "online DPO",
}
# Metrics that measure the machine, not the run: left out when runs are compared.
TIMING_METRICS = ("seconds", "tokens_per_s")


# Data: token ids with the response span marked.


@dataclass(frozen=True)
class EncodedPair:
    """A preference pair as token ids; `*_start` is the index of the first response token."""

    pair_id: str
    fold: int
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]
    chosen_start: int
    rejected_start: int


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, max_length: int
) -> tuple[list[int], int]:
    """Token ids of the formatted conversation (exactly as `hidden_states` extracts them, so the
    last token is the one whose states R_h reads) and the index of the first response token.

    Too-long conversations lose tokens from the start, like extraction does.
    """
    add_special = not tokenizer.chat_template
    text = format_conversation(tokenizer, prompt, response)
    response_char = len(text) - len(response) - len(tokenizer.eos_token)
    if tokenizer.is_fast:
        encoded = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
        ids = encoded["input_ids"]
        ends = [end for _, end in encoded["offset_mapping"]]
        start = next((i for i, end in enumerate(ends) if end > response_char), len(ids))
    else:
        ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
        prompt_text = format_prompt(tokenizer, prompt)
        start = len(tokenizer(prompt_text, add_special_tokens=add_special)["input_ids"])
    dropped = max(len(ids) - max_length, 0)
    return ids[dropped:], max(start - dropped, 0)


def prompt_fold(prompt: str, seed: int, folds: int) -> int:
    """Fold of a prompt: a seeded hash, so both sides of a pair and every repeat of a prompt land
    in the same fold."""
    return stable_seed(seed, "confidence-fold", prompt.strip()) % folds


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence, *, max_length: int, seed: int, folds: int
) -> list[EncodedPair]:
    encoded = []
    for pair in pairs:
        chosen, chosen_start = encode_conversation(tokenizer, pair.prompt, pair.chosen, max_length)
        rejected, rejected_start = encode_conversation(
            tokenizer, pair.prompt, pair.rejected, max_length
        )
        fold = prompt_fold(pair.prompt, seed, folds)
        encoded.append(
            EncodedPair(
                pair.pair_id, fold, tuple(chosen), tuple(rejected), chosen_start, rejected_start
            )
        )
    return encoded


@dataclass(frozen=True)
class SequenceBatch:
    """Right-padded sequences `[B, T]` with a mask of the response tokens."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor

    def to(self, device) -> SequenceBatch:
        return SequenceBatch(
            *(t.to(device) for t in (self.input_ids, self.attention_mask, self.response_mask))
        )

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


def collate(
    sequences: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int
) -> SequenceBatch:
    ids, mask = pad_batch(sequences, pad_id, "right")
    response = mask.clone()
    for row, start in enumerate(starts):
        response[row, :start] = 0
    return SequenceBatch(ids, mask, response)


def collate_pairs(pairs: Sequence[EncodedPair], pad_id: int) -> SequenceBatch:
    """Chosen sequences first, then rejected: rows `i` and `len(pairs) + i` are one pair."""
    sequences = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    starts = [p.chosen_start for p in pairs] + [p.rejected_start for p in pairs]
    return collate(sequences, starts, pad_id)


def batch_schedule(num_pairs: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Pair indices of every step: a fresh seeded permutation per epoch, read as one stream, so
    the schedule of step k is known without replaying steps 0..k-1 (resume needs that)."""
    needed, stream, epoch = steps * batch_size, [], 0
    while len(stream) < needed:
        rng = np.random.default_rng(stable_seed(seed, "epoch", epoch))
        stream.extend(rng.permutation(num_pairs).tolist())
        epoch += 1
    return [stream[k * batch_size : (k + 1) * batch_size] for k in range(steps)]


# The policy's training forward.


# Probabilities (and per-sequence gradients) below this are left out of the gradient. They change
# it by far less than float32's resolution, but as subnormal floats they make CPU matmuls in the
# backward pass up to ~40x slower once the policy grows confident on its training text.
NEGLIGIBLE_PROBABILITY = 1e-20
# Entries of the LM head's input gradient below this are zeroed: products of two small normal
# floats (a small sequence gradient times a small probability) can still be subnormal.
SUBNORMAL_GUARD = 1e-30


class TokenLogprobs(torch.autograd.Function):
    """`log softmax(logits)[target]` per row of `logits [N, V]`, keeping only the logits and their
    log-sum-exp for the backward (not a second `[N, V]` array), with gradient entries below
    `SUBNORMAL_GUARD` flushed to 0."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_norm = torch.logsumexp(logits, dim=-1)
        ctx.save_for_backward(logits, targets, log_norm)
        return logits.gather(-1, targets[:, None]).squeeze(-1) - log_norm

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, targets, log_norm = ctx.saved_tensors
        probs = torch.exp(logits - log_norm[:, None])
        grad_logits = probs.mul_(-grad[:, None])
        grad_logits.scatter_add_(-1, targets[:, None], grad[:, None])
        return grad_logits.masked_fill_(grad_logits.abs() < SUBNORMAL_GUARD, 0.0), None


class FlushNegligibleGradient(torch.autograd.Function):
    """Identity whose backward zeroes gradient entries below `NEGLIGIBLE_PROBABILITY` in size.

    A saturated DPO pair (z of 90 or more) sends back dL/dz = -sigmoid(-z) < 1e-38: left alone,
    the whole backward pass through the model then runs on subnormal floats, ~40x slower on CPU,
    to compute an update that is 0 at float32 precision anyway.
    """

    @staticmethod
    def forward(ctx, values: torch.Tensor) -> torch.Tensor:
        return values.view_as(values)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.masked_fill(grad.abs() < NEGLIGIBLE_PROBABILITY, 0.0)


class ResponseScorer(nn.Module):
    """Wraps a causal LM: `forward(batch) -> (log pi(y|x) [B], last-token states [B, L, d])`.

    The LM head runs only on positions that predict a response token (the rest of the
    `[B, T, V]` logits would be thrown away), and the states are pooled by hooks as the decoder
    runs. Wrapping keeps the whole computation inside one `forward`, which distributed wrappers
    (DDP, FSDP) need.
    """

    def __init__(self, model: PreTrainedModel, layers: Sequence[int] = ()):
        super().__init__()
        self.model = model
        self.layers = list(layers)

    def forward(self, batch: SequenceBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        body, _, _ = decoder_parts(self.model)
        recorder = LastTokenRecorder(self.model, self.layers) if self.layers else None
        mask = batch.attention_mask
        try:
            if recorder is not None:
                recorder.index = (mask.sum(dim=1) - 1).clamp(min=0)  # right padding
            hidden = body(
                input_ids=batch.input_ids,
                attention_mask=mask,
                position_ids=position_ids_from_mask(mask),
                use_cache=False,
            ).last_hidden_state
            states = recorder.stacked() if recorder is not None else None
        finally:
            if recorder is not None:
                recorder.remove()
        predicts = batch.response_mask[:, 1:].bool()  # position t predicts token t + 1
        rows = predicts.nonzero(as_tuple=True)[0]
        logits = self.model.get_output_embeddings()(hidden[:, :-1][predicts]).float()
        targets = batch.input_ids[:, 1:][predicts]
        token_logprobs = TokenLogprobs.apply(logits, targets)
        logprobs = torch.zeros(len(mask), dtype=torch.float32, device=logits.device)
        return FlushNegligibleGradient.apply(logprobs.index_add(0, rows, token_logprobs)), states


@torch.no_grad()
def sequence_logprobs_of(
    model: PreTrainedModel,
    sequences: Sequence[Sequence[int]],
    starts: Sequence[int],
    *,
    pad_id: int,
    batch_size: int,
    progress: bool = False,
    desc: str = "log-probs",
) -> torch.Tensor:
    """`log pi(y|x)` `[n]` of many sequences, in batches (for the reference and for evaluation)."""
    scorer = ResponseScorer(model)
    device = next(model.parameters()).device
    out = torch.empty(len(sequences))
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    for begin in tqdm(
        range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False
    ):
        rows = order[begin : begin + batch_size]
        batch = collate([sequences[i] for i in rows], [starts[i] for i in rows], pad_id)
        out[rows] = scorer(batch.to(device))[0].cpu()
    return out


def pair_logprobs(
    model,
    pairs: Sequence[EncodedPair],
    *,
    pad_id: int,
    batch_size: int,
    progress: bool = False,
    desc: str = "log-probs",
) -> torch.Tensor:
    """`[n, 2]`: log-prob of the chosen and of the rejected response of every pair."""
    sequences = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    starts = [p.chosen_start for p in pairs] + [p.rejected_start for p in pairs]
    flat = sequence_logprobs_of(
        model,
        sequences,
        starts,
        pad_id=pad_id,
        batch_size=batch_size,
        progress=progress,
        desc=desc,
    )
    return torch.stack([flat[: len(pairs)], flat[len(pairs) :]], dim=1)


# The reference policy's log-probs: on the fly, or precomputed once.


class OnTheFlyReference:
    """A reference model scored on each batch; it freezes `model` in place, so pass a copy of the
    base policy, never the policy being trained."""

    def __init__(self, model: PreTrainedModel, pad_id: int):
        self.scorer, self.pad_id = ResponseScorer(model.eval().requires_grad_(False)), pad_id

    @torch.no_grad()
    def __call__(self, pairs: Sequence[EncodedPair], device) -> torch.Tensor:
        logprobs = self.scorer(collate_pairs(pairs, self.pad_id).to(device))[0]
        return torch.stack(logprobs.chunk(2), dim=1)


class PrecomputedReference:
    """Reference log-probs `[n, 2]` computed once, looked up by pair id."""

    def __init__(self, pair_ids: Sequence[str], logprobs: torch.Tensor):
        self.row = {pair_id: i for i, pair_id in enumerate(pair_ids)}
        self.logprobs = logprobs

    def __call__(self, pairs: Sequence[EncodedPair], device) -> torch.Tensor:
        missing = [p.pair_id for p in pairs if p.pair_id not in self.row]
        if missing:
            raise KeyError(f"no precomputed reference log-probs for pairs {missing[:5]}")
        return self.logprobs[[self.row[p.pair_id] for p in pairs]].to(device)


def reference_cache_key(reference_fingerprint: str, pairs: Sequence[EncodedPair]) -> str:
    digest = hashlib.sha256(reference_fingerprint.encode())
    for p in pairs:
        digest.update(
            json.dumps([p.pair_id, p.chosen, p.rejected, p.chosen_start, p.rejected_start]).encode()
        )
    return digest.hexdigest()


def precompute_reference(
    model: PreTrainedModel,
    pairs: Sequence[EncodedPair],
    *,
    fingerprint: str,
    cache_dir: Path,
    pad_id: int,
    batch_size: int,
    progress: bool = True,
) -> PrecomputedReference:
    """Reference log-probs of `pairs`, cached as safetensors keyed by the reference's weights and
    the exact token ids (a stale or unreadable file is recomputed)."""
    key = reference_cache_key(fingerprint, pairs)
    path = Path(cache_dir) / f"reference-{key[:24]}.safetensors"
    if path.is_file():
        try:
            stored = load_file(path)["logprobs"]
            if stored.shape == (len(pairs), 2):
                return PrecomputedReference([p.pair_id for p in pairs], stored)
        except Exception as error:  # noqa: BLE001 - any unreadable cache is recomputed
            log.warning("reference cache %s unreadable (%s); recomputing", path, error)
    logprobs = pair_logprobs(
        model,
        pairs,
        pad_id=pad_id,
        batch_size=batch_size,
        progress=progress,
        desc="reference log-probs",
    )
    with atomic_path(path) as tmp:
        save_file({"logprobs": logprobs.contiguous()}, tmp, metadata={"key": key})
    return PrecomputedReference([p.pair_id for p in pairs], logprobs)


def visited_pairs(schedule: Sequence[Sequence[int]], pairs: Sequence[EncodedPair]) -> list:
    """The pairs a schedule touches, in first-visit order (only they need reference log-probs)."""
    seen = dict.fromkeys(i for batch in schedule for i in batch)
    return [pairs[i] for i in seen]


# The hybrid rewards a run scores with, and their refresh.


@dataclass
class FoldRewards:
    """The R_h's of a run. Cross-fitted (several): a pair of fold f is scored by `rewards[f]` (fit
    without fold f) and refreshes every other fold's reward. Single (one, the paper's): it scores
    and refreshes on every pair, whatever its fold. `train_scorers`: the refresh updates the
    per-layer scorers as well as the gate."""

    rewards: list[HybridReward]
    alpha: float
    mu: float
    train_scorers: bool
    learning_rate: float
    optimisers: list[torch.optim.Optimizer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.optimisers = [
            torch.optim.AdamW(
                r.trainable(train_scorers=self.train_scorers),
                lr=self.learning_rate,
                weight_decay=0.0,
            )
            for r in self.rewards
        ]

    @property
    def cross_fitted(self) -> bool:
        return len(self.rewards) > 1

    def scored_rows(self, fold: int, folds: torch.Tensor) -> torch.Tensor:
        """Rows `[n]` (bool) that reward `fold` scores."""
        return folds == fold if self.cross_fitted else torch.ones_like(folds, dtype=torch.bool)

    def refreshed_rows(self, fold: int, folds: torch.Tensor) -> torch.Tensor:
        """Rows `[n]` (bool) that reward `fold` is refreshed on: never one it scores, when
        cross-fitted."""
        return folds != fold if self.cross_fitted else torch.ones_like(folds, dtype=torch.bool)

    @torch.no_grad()
    def score(self, states: torch.Tensor, folds: torch.Tensor) -> torch.Tensor:
        """R_h of each row `[n]`, from its fold's reward when cross-fitted."""
        out = torch.empty(len(states), device=states.device)
        for f, reward in enumerate(self.rewards):
            rows = self.scored_rows(f, folds)
            if rows.any():
                out[rows] = reward(states[rows])
        return out

    def refresh(
        self, chosen: torch.Tensor, rejected: torch.Tensor, folds: torch.Tensor, steps: int
    ) -> float:
        """`steps` margin-BT AdamW steps of every reward on the pairs it may train on; returns the
        mean loss before the first step (NaN when no reward had pairs)."""
        losses = []
        for f, (reward, optimiser) in enumerate(zip(self.rewards, self.optimisers, strict=True)):
            rows = self.refreshed_rows(f, folds)
            if not rows.any():
                continue
            for step in range(steps):
                loss = margin_bt_loss(reward(chosen[rows]), reward(rejected[rows]), self.mu)
                if step == 0:
                    losses.append(loss.item())
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        return float(np.mean(losses)) if losses else float("nan")


# Checkpoints: safetensors + JSON only.


def _optimizer_tensors(optimiser: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    state = optimiser.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _load_optimizer(optimiser, tensors: dict, meta: dict, prefix: str) -> None:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimiser.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters by name, each storage once (tied embeddings are one tensor)."""
    seen, out = set(), {}
    for name, param in model.named_parameters():
        if param.requires_grad and param.data_ptr() not in seen:
            seen.add(param.data_ptr())
            out[name] = param.detach().cpu().contiguous()
    return out


def _rng_state() -> tuple[dict, dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    np_state = np.random.get_state()
    meta = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, meta


def _set_rng_state(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(t for t in tensors if t.startswith("cuda."))]
        if states:
            torch.cuda.set_rng_state_all(states)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))


def save_checkpoint(
    directory: Path,
    *,
    step: int,
    model: nn.Module,
    optimiser,
    fold_rewards: FoldRewards | None,
    run_key: str = "",
) -> Path:
    """`directory/step-XXXXXX/`, complete or absent: written beside and renamed into place."""
    target = directory / f"step-{step:06d}"
    staging = directory / f".step-{step:06d}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(trainable_state(model), staging / "trainable.safetensors")
    tensors, meta = _optimizer_tensors(optimiser, "policy")
    rng_tensors, rng_meta = _rng_state()
    state = {
        "step": step,
        "run_key": run_key,
        "optimiser": meta,
        "rng": rng_meta,
        "reward_optimisers": [],
    }
    if fold_rewards is not None:
        for f, (reward, opt) in enumerate(
            zip(fold_rewards.rewards, fold_rewards.optimisers, strict=True)
        ):
            save_hybrid_reward(reward, staging / f"reward-{f}")
            reward_tensors, reward_meta = _optimizer_tensors(opt, f"reward{f}")
            tensors.update(reward_tensors)
            state["reward_optimisers"].append(reward_meta)
    save_file(tensors, staging / "optimiser.safetensors")
    save_file({f"rng.{k}": v for k, v in rng_tensors.items()}, staging / "rng.safetensors")
    write_json(staging / "state.json", state)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    for old in sorted(directory.glob("step-*"))[:-1]:  # keep only the newest
        shutil.rmtree(old, ignore_errors=True)
    return target


def run_key(
    name: str,
    training,
    seed: int,
    pairs: Sequence[EncodedPair],
    model: nn.Module,
    fold_rewards: FoldRewards | None,
) -> str:
    """What a checkpoint must match to be resumed: the run, its settings and seed, the pairs, the
    policy's architecture and the rewards it starts from."""
    config = getattr(model, "config", None)
    architecture = config.to_json_string(use_diff=False) if config is not None else ""
    digest = hashlib.sha256(json.dumps([name, repr(training), seed, architecture]).encode())
    for pair in pairs:
        digest.update(json.dumps([pair.pair_id, pair.fold, pair.chosen, pair.rejected]).encode())
    for reward in fold_rewards.rewards if fold_rewards is not None else ():
        for tensor in reward.state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def checkpoint_key(path: Path) -> str | None:
    return json.loads((path / "state.json").read_text(encoding="utf-8")).get("run_key")


def latest_checkpoint(directory: Path) -> Path | None:
    complete = [d for d in sorted(directory.glob("step-*")) if (d / "state.json").is_file()]
    return complete[-1] if complete else None


def load_checkpoint(
    path: Path, *, model: nn.Module, optimiser, fold_rewards: FoldRewards | None
) -> int:
    """Restore what `save_checkpoint` wrote; returns the step to continue from."""
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    weights = load_file(path / "trainable.safetensors")
    expected = trainable_state(model)
    if set(weights) != set(expected):
        raise ValueError(f"{path}: checkpoint weights do not match the model being trained")
    model.load_state_dict(weights, strict=False)
    tensors = load_file(path / "optimiser.safetensors")
    _load_optimizer(optimiser, tensors, state["optimiser"], "policy")
    if fold_rewards is not None:
        for f in range(len(fold_rewards.rewards)):
            loaded = load_hybrid_reward(path / f"reward-{f}")
            fold_rewards.rewards[f].load_state_dict(loaded.state_dict())
            _load_optimizer(
                fold_rewards.optimisers[f], tensors, state["reward_optimisers"][f], f"reward{f}"
            )
    rng = {k.removeprefix("rng."): v for k, v in load_file(path / "rng.safetensors").items()}
    _set_rng_state(rng, state["rng"])
    return int(state["step"])


# The loop.


@dataclass
class RunResult:
    name: str
    metrics: list[dict]
    directory: Path
    policy_dir: Path | None  # None when the run was stopped before its last step
    resumed_from: int  # step a checkpoint restored (0: a fresh start)


def learning_rate_at(step: int, base: float, warmup_steps: int) -> float:
    """Linear warm-up over `warmup_steps`, then constant."""
    return base * min(1.0, (step + 1) / warmup_steps) if warmup_steps else base


def disable_dropout(model: nn.Module) -> None:
    """Dropout off everywhere (DPO compares log-probs of the same weights; noise only hurts)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    config = getattr(model, "config", None)
    for key in list(vars(config)) if config is not None else []:
        if key.endswith("dropout") and isinstance(getattr(config, key), float):
            setattr(config, key, 0.0)


def training_dtype(policy_dtype: str, training) -> str:
    """The dtype a trained copy of the policy is loaded in. Full fine-tuning: float32 master
    weights, always. AdamW steps of lr 1e-5 are below bfloat16's resolution for most weights
    (spacing 2^-8 relative), so bfloat16 weights stepped directly mostly do not move; autocast
    (`training.mixed_precision`) still computes in bfloat16. LoRA: the frozen base keeps the
    policy's dtype (peft keeps the adapters in float32)."""
    return policy_dtype if training.lora is not None else "float32"


def training_spec(spec, training):
    """`spec` (a `ModelParams`) with the dtype a trained copy is loaded in (`training_dtype`)."""
    return dataclasses.replace(spec, dtype=training_dtype(spec.dtype, training))


def lora_config(lora, task_type: str):
    """peft's config for `lora` (a `LoraParams`), dropout off."""
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=0.0,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type=task_type,
    )


def _is_peft(model: nn.Module) -> bool:
    return hasattr(model, "peft_config")


def prepare_policy(model: PreTrainedModel, training) -> PreTrainedModel:
    """LoRA adapters (optional; a model that has them already keeps them), float32 master weights
    for full fine-tuning (`training_dtype`), gradient checkpointing (optional), dropout off,
    train mode."""
    if training.lora is None and not _is_peft(model):
        model.float()  # a no-op for a model loaded with `training_spec`
    if training.lora is not None and not _is_peft(model):
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(training.lora, "CAUSAL_LM"))
    if training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    disable_dropout(model)
    return model.train()


def _new_accelerator(training, device: torch.device):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    if not AcceleratorState._shared_state or AcceleratorState().mixed_precision != (
        training.mixed_precision
    ):
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return Accelerator(mixed_precision=training.mixed_precision, cpu=device.type == "cpu")


def _read_metrics(path: Path, before_step: int, checkpoint: Path | None) -> list[dict]:
    """The logged rows of steps 0 .. before_step - 1, which `checkpoint` (at `before_step`) took.

    A last line cut off by a killed run (no newline, or not JSON) is dropped with a warning; any
    other bad line, or steps that don't run 0, 1, 2, ... once each, is an error naming the file and
    line (a resumed run's summary and Fig 5 are drawn from these rows)."""
    if before_step == 0:
        return []
    remedy = f"delete {checkpoint.parent} to train this run afresh"
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # a whole log ends with a newline
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = _metrics_row(line)
        except ValueError as error:
            if number == len(lines):
                log.warning("%s, line %d: dropped, cut off by an interrupted run", path, number)
                break
            raise CorruptArtifactError(f"{path}, line {number}: {error}; {remedy}") from None
        if row["step"] >= before_step:
            continue  # logged after the checkpoint: the resumed run logs it again
        if row["step"] != len(rows):
            raise CorruptArtifactError(
                f"{path}, line {number}: step {row['step']} where step {len(rows)} was due"
                f" (did two runs write this log?); {remedy}"
            )
        rows.append(row)
    if len(rows) < before_step:
        raise CorruptArtifactError(
            f"{path}: holds {len(rows)} of the {before_step} steps that {checkpoint} has taken;"
            f" {remedy}"
        )
    return rows


def _metrics_row(line: str) -> dict:
    try:
        row = json.loads(line)
    except ValueError as error:
        raise ValueError(f"not JSON ({error})") from None
    if not isinstance(row, dict) or type(row.get("step")) is not int:
        raise ValueError("not a metrics row (an object with an integer 'step')")
    return row


def _append_line(path: Path, line: str) -> None:
    """`line` and a newline at the end of `path`, on disk before this returns, so a kill can cut
    off at most the line being written (which `_read_metrics` then drops)."""
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks(items: list, parts: int) -> list[list]:
    size = math.ceil(len(items) / parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


def train_run(
    name: str,
    *,
    model: PreTrainedModel,
    pad_id: int,
    pairs: Sequence[EncodedPair],
    training,
    seed: int,
    out_dir: Path,
    reference: Callable | None = None,
    fold_rewards: FoldRewards | None = None,
    layers: Sequence[int] = (),
    tokenizer: PreTrainedTokenizerBase | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    progress: bool = True,
    objective: str | None = None,
    write_checkpoints: bool = True,
    save_policy: bool = True,
) -> RunResult:
    """Train `model` (the base policy, loaded fresh) as run `name` with `objective` ("sft", "dpo",
    "cdpo"; default: `run_objective(name)`) for `training.max_steps` steps; write
    `out_dir/metrics.jsonl`, checkpoints and, after the last step, the policy (`out_dir/policy/`,
    merged if LoRA) and `summary.json`.

    `reference(pairs, device) -> [b, 2]` gives reference log-probs (DPO runs). `fold_rewards`
    scores the states (a monitor for "dpo", gamma and refresh for "cdpo"; None: states are
    not recorded). `stop_after` stops after that many steps as if killed (for resume tests).
    `write_checkpoints=False` writes none and `save_policy=False` leaves the trained model in
    memory only (a short inner run, e.g. one online-DPO round).
    """
    objective = objective or run_objective(name)
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {list(OBJECTIVES)}")
    preference = objective != "sft"
    if preference and reference is None:
        raise ValueError(f"run {name!r} needs a reference")
    if objective == "cdpo" and fold_rewards is None:
        raise ValueError(f"run {name!r} (cDPO) needs the hybrid rewards (fold_rewards)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    device = next(model.parameters()).device
    accelerator = _new_accelerator(training, device)
    world, rank = accelerator.num_processes, accelerator.process_index
    if training.batch_size % (world * training.gradient_accumulation_steps):
        raise ValueError(
            f"training.batch_size {training.batch_size} must divide by processes x accumulation"
            f" steps ({world} x {training.gradient_accumulation_steps})"
        )

    model = prepare_policy(model, training)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        trainable, lr=training.learning_rate, weight_decay=training.weight_decay
    )
    watch_states = preference and fold_rewards is not None
    scorer = ResponseScorer(model, layers if watch_states else ())
    scorer, optimiser = accelerator.prepare(scorer, optimiser)
    if fold_rewards is not None:
        for reward in fold_rewards.rewards:
            reward.to(accelerator.device)

    checkpoints = out_dir / "checkpoints"
    key = run_key(f"{name}:{objective}", training, seed, pairs, model, fold_rewards)
    start = 0
    found = latest_checkpoint(checkpoints) if resume else None
    if found is not None and checkpoint_key(found) != key:
        log.warning("%s: %s is from other settings or pairs; starting afresh", name, found)
        found = None
    if found is not None:
        start = load_checkpoint(found, model=model, optimiser=optimiser, fold_rewards=fold_rewards)
        log.info("%s: resumed from %s", name, found)
    else:
        shutil.rmtree(checkpoints, ignore_errors=True)
    metrics_path = out_dir / "metrics.jsonl"
    metrics = _read_metrics(metrics_path, start, found)
    if accelerator.is_main_process:
        with atomic_path(metrics_path) as tmp:
            tmp.write_text("".join(json.dumps(m) + "\n" for m in metrics), encoding="utf-8")

    schedule = batch_schedule(len(pairs), training.batch_size, training.max_steps, seed)
    end = training.max_steps if stop_after is None else min(stop_after, training.max_steps)
    bar = tqdm(
        range(start, end),
        desc=RUN_LABELS.get(name, name),
        unit="step",
        disable=not progress,
        initial=start,
        total=training.max_steps,
    )
    for step in bar:
        began = time.perf_counter()
        batch = [pairs[i] for i in schedule[step]]
        local = batch[rank::world]
        lr = learning_rate_at(step, training.learning_rate, training.warmup_steps)
        for group in optimiser.param_groups:
            group["lr"] = lr
        micro_batches = _chunks(local, training.gradient_accumulation_steps)
        parts, tokens = [], 0
        for index, micro in enumerate(micro_batches):
            last = index == len(micro_batches) - 1
            with accelerator.no_sync(scorer) if not last else contextlib.nullcontext():
                loss, part, n_tokens = _micro_step(
                    objective,
                    scorer,
                    micro,
                    pad_id,
                    reference,
                    fold_rewards,
                    training,
                    accelerator.device,
                )
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"{name}: loss is {loss.item()} at step {step}; nothing was updated"
                        f" (last good checkpoint: {latest_checkpoint(checkpoints)})"
                    )
                accelerator.backward(loss * len(micro) / len(local))
            parts.append(part)
            tokens += n_tokens
        grad_norm = (
            accelerator.clip_grad_norm_(trainable, training.max_grad_norm)
            if training.max_grad_norm is not None
            else None
        )
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        row = _finish_step(objective, parts, accelerator, training, fold_rewards)
        elapsed = time.perf_counter() - began
        total_tokens = int(
            accelerator.reduce(torch.tensor(tokens, device=accelerator.device), "sum")
        )
        row.update(
            step=step,
            learning_rate=lr,
            grad_norm=None if grad_norm is None else float(grad_norm),
            seconds=round(elapsed, 4),
            tokens_per_s=round(total_tokens / elapsed, 1),
        )
        metrics.append(row)
        if accelerator.is_main_process:
            _append_line(metrics_path, json.dumps(row))
            due = (step + 1) % training.checkpoint_every == 0 or step + 1 == training.max_steps
            if write_checkpoints and due:
                save_checkpoint(
                    checkpoints,
                    step=step + 1,
                    model=model,
                    optimiser=optimiser,
                    fold_rewards=fold_rewards,
                    run_key=key,
                )
        accelerator.wait_for_everyone()
        bar.set_postfix(loss=f"{row['loss']:.4f}")
    bar.close()

    if end < training.max_steps:
        accelerator.free_memory()
        return RunResult(name, metrics, out_dir, None, start)
    policy_dir = out_dir / "policy" if save_policy else None
    if accelerator.is_main_process:
        if save_policy:
            _save_policy(accelerator.unwrap_model(scorer).model, tokenizer, policy_dir)
        if fold_rewards is not None and objective == "cdpo":
            for f, reward in enumerate(fold_rewards.rewards):
                save_hybrid_reward(reward.cpu(), out_dir / f"hybrid_reward-{f}")
        write_json(out_dir / "summary.json", run_summary(name, metrics, training))
    accelerator.wait_for_everyone()
    accelerator.free_memory()  # its references to this run's model and optimiser
    return RunResult(name, metrics, out_dir, policy_dir, start)


def _micro_step(objective, scorer, micro, pad_id, reference, fold_rewards, training, device):
    """Loss of one micro-batch and the per-pair tensors its metrics need."""
    if objective == "sft":
        batch = collate([p.chosen for p in micro], [p.chosen_start for p in micro], pad_id)
        batch = batch.to(device)
        logprobs, _ = scorer(batch)
        response_tokens = batch.response_mask[:, 1:].sum()
        loss = -logprobs.sum() / response_tokens
        return (
            loss,
            {"nll_sum": -logprobs.detach().sum(), "tokens": response_tokens},
            batch.num_tokens,
        )
    batch = collate_pairs(micro, pad_id).to(device)
    logprobs, states = scorer(batch)
    policy_chosen, policy_rejected = logprobs.chunk(2)
    ref = reference(micro, device)
    margin = dpo_margin(policy_chosen, policy_rejected, ref[:, 0], ref[:, 1], training.beta)
    part = {
        "margin": margin.detach(),
        "chosen_reward": training.beta * (policy_chosen.detach() - ref[:, 0]),
        "rejected_reward": training.beta * (policy_rejected.detach() - ref[:, 1]),
    }
    if states is not None:
        folds = torch.tensor([p.fold for p in micro], device=device)
        h_chosen, h_rejected = (s.detach().float() for s in states.chunk(2))
        r_chosen = fold_rewards.score(h_chosen, folds).to(device)
        r_rejected = fold_rewards.score(h_rejected, folds).to(device)
        gamma = preference_confidence(r_chosen, r_rejected, fold_rewards.alpha)
        part.update(
            h_chosen=h_chosen,
            h_rejected=h_rejected,
            folds=folds,
            r_chosen=r_chosen,
            r_rejected=r_rejected,
            gamma=gamma,
        )
    loss = confidence_dpo_loss(margin, part["gamma"]) if objective == "cdpo" else dpo_loss(margin)
    return loss, part, batch.num_tokens


def _finish_step(objective, parts, accelerator, training, fold_rewards) -> dict:
    """The step's metrics from every micro-batch of every process; for cDPO, then the R_h
    refresh on the gathered states (every process refreshes identically)."""
    merged = {
        key: accelerator.gather(torch.cat([torch.atleast_1d(p[key]) for p in parts]))
        for key in parts[0]
    }
    if objective == "sft":
        return {"loss": float(merged["nll_sum"].sum() / merged["tokens"].sum())}
    margin = merged["margin"]
    row = {
        "loss": float(
            confidence_dpo_loss(margin, merged["gamma"])
            if objective == "cdpo"
            else dpo_loss(margin)
        ),
        "reward_accuracy": float((margin > 0).float().mean()),
        "reward_margin": float(margin.mean()),
        "chosen_reward": float(merged["chosen_reward"].mean()),
        "rejected_reward": float(merged["rejected_reward"].mean()),
    }
    if "gamma" in merged:
        gamma = merged["gamma"]
        row.update(
            hybrid_accuracy=float((merged["r_chosen"] > merged["r_rejected"]).float().mean()),
            hybrid_margin=float((merged["r_chosen"] - merged["r_rejected"]).mean()),
            gamma_mean=float(gamma.mean()),
            gamma_below_half=float((gamma < 0.5).float().mean()),
        )
        if objective == "cdpo" and training.refresh_steps:
            row["refresh_loss"] = fold_rewards.refresh(
                merged["h_chosen"], merged["h_rejected"], merged["folds"], training.refresh_steps
            )
    return row


def _save_policy(model, tokenizer, directory: Path) -> None:
    """`save_pretrained` (safetensors) into a staging directory renamed into place; LoRA adapters
    are merged first so the result loads as a plain model."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    staging = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(staging)
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)


def run_summary(name: str, metrics: list[dict], training, window: int = 10) -> dict:
    """Steps, time, throughput, and each metric's mean over the last `window` steps."""
    last = metrics[-window:]
    keys = [k for k in metrics[0] if k not in ("step", *TIMING_METRICS)]
    return {
        "run": name,
        "steps": len(metrics),
        "seconds": round(sum(m["seconds"] for m in metrics), 1),
        "tokens_per_s": round(float(np.median([m["tokens_per_s"] for m in metrics])), 1),
        "final": {
            k: float(np.mean([m[k] for m in last if m.get(k) is not None]))
            for k in keys
            if any(m.get(k) is not None for m in last)
        },
        "beta": training.beta,
        "learning_rate": training.learning_rate,
        "batch_size": training.batch_size,
    }


# What notebook 04 and the command line share.


def run_objective(name: str) -> str:
    """What run `name` optimises (a key of `OBJECTIVES`): its name, but "cdpo" for a cross-fitted
    cDPO run."""
    return CROSS_FITTED_RUNS.get(name, name)


@dataclass
class TrainingSetup:
    """Everything the runs share: encoded training pairs, the rewards as fit before training
    (the paper's single R_h; the cross-fitted ones, one per fold, when a run needs them) and the
    reference log-probs."""

    params: object
    tokenizer: PreTrainedTokenizerBase
    pairs: list[EncodedPair]
    layers: list[int]
    reward: HybridReward
    reference: Callable
    reference_quantization: str  # what "auto" resolved to
    directory: Path
    fold_rewards: list[HybridReward] = field(default_factory=list)


def refreshed_rewards(rewards: Sequence[HybridReward], params) -> FoldRewards:
    """`rewards` (used in place) with the refresh training takes: `params.training.refresh`
    ("full": scorers and gate; "gate"), `refresh_learning_rate`, and the reward's alpha and mu.
    Notebook 07 times this same refresh."""
    return FoldRewards(
        list(rewards),
        alpha=params.reward.alpha,
        mu=params.reward.mu,
        train_scorers=params.training.refresh == "full",
        learning_rate=params.training.refresh_learning_rate,
    )


def fold_rewards_for_run(setup: TrainingSetup, name: str) -> FoldRewards:
    """Fresh copies of the rewards run `name` starts from (each run refreshes its own): the
    cross-fitted ones for a cross-fitted run, else the single R_h (gamma for "cdpo", a monitor
    for "dpo")."""
    import copy

    rewards = setup.fold_rewards if name in CROSS_FITTED_RUNS else [setup.reward]
    if not rewards:
        raise ValueError(
            f"run {name!r} needs the cross-fitted rewards: list it in training.runs before"
            " prepare_training fits them"
        )
    return refreshed_rewards([copy.deepcopy(r) for r in rewards], setup.params)


def run_training(
    name: str,
    setup: TrainingSetup,
    *,
    objective: str | None = None,
    resume: bool = True,
    stop_after: int | None = None,
    progress: bool = True,
) -> RunResult:
    """One run (`<setup.directory>/<name>/`) from the base policy on the setup's pairs, with
    `objective` ("sft", "dpo", "cdpo"; default: `run_objective(name)`, as in notebook 04)."""
    from repsafe_lib.models import load_model

    objective = objective or run_objective(name)
    params = setup.params
    loaded = load_model(training_spec(params.model, params.training), seed=params.seed)
    preference = objective != "sft"
    try:
        return train_run(
            name,
            objective=objective,
            model=loaded.model,
            pad_id=setup.tokenizer.pad_token_id,
            pairs=setup.pairs,
            training=params.training,
            seed=params.seed,
            out_dir=setup.directory / name,
            reference=setup.reference if preference else None,
            fold_rewards=fold_rewards_for_run(setup, name) if preference else None,
            layers=setup.layers,
            tokenizer=setup.tokenizer,
            resume=resume,
            stop_after=stop_after,
            progress=progress,
        )
    except KeyboardInterrupt:  # Ctrl-C, or JupyterLab's "interrupt the kernel"
        print(interrupted_message(name, setup), file=sys.stderr, flush=True)
        raise


def interrupted_message(name: str, setup: TrainingSetup) -> str:
    """The line an interrupted run prints: what survives it and how to go on from there."""
    notebook = setup.directory.name  # outputs/<profile>/NN_name, the notebook running the run
    again = (
        f"rerunning notebook {notebook} (or `python -m repsafe_lib.pipeline --params"
        f" {setup.params.source_file} --only {notebook}`)"
    )
    checkpoint = latest_checkpoint(setup.directory / name / "checkpoints")
    if checkpoint is None:
        return f"{name}: interrupted before its first checkpoint; {again} starts it afresh"
    return f"{name}: interrupted; kept its newest checkpoint {checkpoint}: {again} resumes from it"


def row_folds(examples: Sequence, *, seed: int, folds: int) -> np.ndarray:
    """Fold of every state row `[n]`: its prompt's fold for training rows, -1 for the others."""
    return np.array(
        [prompt_fold(e.prompt, seed, folds) if e.split == "train" else -1 for e in examples]
    )


def prepare_training(
    params,
    directory: Path,
    *,
    train_pairs: Sequence,
    states: torch.Tensor,
    examples: Sequence,
    layers: Sequence[int],
    hybrid_reward_path: Path,
    runs: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[TrainingSetup, list]:
    """Encode the training pairs (with their prompt folds), load notebook 03's single R_h (the
    paper's, fit on every training pair), fit the cross-fitted rewards on the base policy's
    states (notebook 01) when `runs` (default: `training.runs`) has a cross-fitted run, and get
    the reference log-probs of every pair the runs will visit. Returns the setup and the
    `FoldReward`s (empty when no run needs them)."""
    from repsafe_lib.models import load_tokenizer
    from repsafe_lib.reward import fit_fold_rewards

    training = params.training
    tokenizer = load_tokenizer(params.model)
    pairs = encode_pairs(
        tokenizer,
        train_pairs,
        max_length=params.extraction.max_length,
        seed=params.seed,
        folds=training.confidence_folds,
    )
    fitted = []
    if any(name in CROSS_FITTED_RUNS for name in (training.runs if runs is None else runs)):
        fitted = fit_fold_rewards(
            states,
            examples,
            row_folds(examples, seed=params.seed, folds=training.confidence_folds),
            layers,
            params.probes,
            params.reward,
            seed=params.seed,
        )
    reward = load_hybrid_reward(hybrid_reward_path)
    if list(reward.config.layers) != list(layers):
        raise ValueError(
            f"{hybrid_reward_path}: R_h reads layers {list(reward.config.layers)}, the states are"
            f" of layers {list(layers)}: rerun notebook 03"
        )
    reference, quantization = reference_for(params, pairs, directory, tokenizer, progress=progress)
    setup = TrainingSetup(
        params,
        tokenizer,
        pairs,
        list(layers),
        reward,
        reference,
        quantization,
        directory,
        fold_rewards=[f.reward for f in fitted],
    )
    return setup, fitted


def reference_for(
    params, pairs: Sequence[EncodedPair], directory: Path, tokenizer, *, progress: bool = True
) -> tuple[Callable, str]:
    """The frozen reference of `training.reference_quantization` ("auto" resolved), as log-probs
    precomputed for the pairs the seeded schedule visits (cached in `directory`) or a model
    scored on the fly; and the quantization it resolved to."""
    from repsafe_lib.models import load_reference, nf4_supported

    training = params.training
    quantization = training.reference_quantization
    if quantization == "auto":
        quantization = "nf4" if nf4_supported() else "none"
    reference_model = load_reference(params.model, seed=params.seed, quantization=quantization)
    pad_id = tokenizer.pad_token_id
    if training.reference == "on_the_fly":
        return OnTheFlyReference(reference_model.model, pad_id), quantization
    schedule = batch_schedule(len(pairs), training.batch_size, training.max_steps, params.seed)
    reference = precompute_reference(
        reference_model.model,
        visited_pairs(schedule, pairs),
        fingerprint=reference_model.fingerprint,
        cache_dir=directory,
        pad_id=pad_id,
        batch_size=params.extraction.batch_size,
        progress=progress,
    )
    return reference, quantization


def reference_drift(
    full: torch.Tensor, quantised: torch.Tensor, policy: torch.Tensor, beta: float
) -> dict[str, float]:
    """How far a 4-bit reference is from a full-precision one, on pairs' log-probs `[n, 2]`
    (chosen, rejected): mean |delta log-ratio| (nats), and the share of pairs whose implicit DPO
    margin against `policy` changes sign."""
    ratio_full = full[:, 0] - full[:, 1]
    ratio_quantised = quantised[:, 0] - quantised[:, 1]
    z_full = dpo_margin(policy[:, 0], policy[:, 1], full[:, 0], full[:, 1], beta)
    z_quantised = dpo_margin(policy[:, 0], policy[:, 1], quantised[:, 0], quantised[:, 1], beta)
    return {
        "mean_abs_log_ratio_shift": float((ratio_full - ratio_quantised).abs().mean()),
        "mean_abs_sequence_logprob_shift": float((full - quantised).abs().mean()),
        "margin_sign_flips": float((torch.sign(z_full) != torch.sign(z_quantised)).float().mean()),
        "pairs": len(full),
    }


def implicit_reward_accuracy(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> dict:
    """Held-out DPO reward accuracy (`z > 0`) and mean margin from log-probs `[n, 2]`."""
    z = dpo_margin(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1], beta)
    return {"reward_accuracy": float((z > 0).float().mean()), "reward_margin": float(z.mean())}


@dataclass(frozen=True)
class TrainingInputs:
    """What notebook 04 reads from notebooks 00, 01 and 03."""

    train_pairs: list
    test_pairs: list
    states: torch.Tensor
    layers: list[int]
    examples: list
    hybrid_reward_path: Path


def training_inputs(run) -> TrainingInputs:
    """Notebook 00's pairs, notebook 01's states and examples, notebook 03's R_h (an `artifacts.Run`
    finds them and names the notebook to rerun when one is missing)."""
    from repsafe_lib.datasets import PreferencePair
    from repsafe_lib.hidden_states import StateExample, load_states
    from repsafe_lib.records import read_records

    states, layers = load_states(run.upstream("01_representations", "states.json").parent)
    examples = read_records(
        run.upstream("01_representations", "examples.jsonl"),
        StateExample,
        producer="01_representations",
    )
    pairs = {
        split: read_records(
            run.upstream("00_data", f"pairs_{split}.jsonl"), PreferencePair, producer="00_data"
        )
        for split in ("train", "test")
    }
    reward = run.upstream("03_hybrid_reward", "hybrid_reward.json").with_suffix("")
    return TrainingInputs(pairs["train"], pairs["test"], states, layers, examples, reward)


def main(argv: Sequence[str] | None = None) -> int:
    """Notebook 04's runs from the command line, e.g. on several GPUs:
    `accelerate launch --multi_gpu -m repsafe_lib.training --params params/paper.yaml`.
    """
    import argparse

    from repsafe_lib.artifacts import Run
    from repsafe_lib.params import default_params_file, load_params

    parser = argparse.ArgumentParser(
        prog="python -m repsafe_lib.training", description=main.__doc__
    )
    parser.add_argument("--params", default=default_params_file(), help="params YAML file")
    parser.add_argument(
        "--run",
        action="append",
        choices=[*OBJECTIVES, *CROSS_FITTED_RUNS],
        help="run(s) to train (default: training.runs of the params)",
    )
    parser.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    seed_everything(params.seed)
    run = Run(params, "04_training")
    inputs = training_inputs(run)
    setup, _ = prepare_training(
        params,
        run.dir,
        train_pairs=inputs.train_pairs,
        states=inputs.states,
        examples=inputs.examples,
        layers=inputs.layers,
        hybrid_reward_path=inputs.hybrid_reward_path,
        runs=args.run,
    )
    for name in args.run or params.training.runs:
        result = run_training(name, setup, resume=not args.fresh)
        print(f"{name}: {len(result.metrics)} steps, policy in {result.policy_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
