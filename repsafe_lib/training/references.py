"""The frozen reference policy `pi_ref` of the DPO losses (paper Eq 3, 5): its response log-probs
scored on each batch, or precomputed once for every pair the seeded schedule visits and cached;
and what its log-probs say about a trained policy (implicit reward accuracy, the drift of a 4-bit
reference from a full-precision one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from repsafe_lib.caching import (
    CacheFormat,
    cached,
    canonical_json,
    key_digest,
    key_metadata,
    tensor_file_key,
)
from repsafe_lib.losses import dpo_margin
from repsafe_lib.training.batches import EncodedPair, batch_schedule, collate_pairs, visited_pairs
from repsafe_lib.training.logprobs import ResponseScorer, pair_logprobs


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
    """Hash of the reference's weights and the exact token ids of every pair, in order."""
    encoded = (
        canonical_json([p.pair_id, p.chosen, p.rejected, p.chosen_start, p.rejected_start])
        for p in pairs
    )
    return key_digest(reference_fingerprint.encode(), encoded)


def _save_logprobs(tmp: Path, logprobs: torch.Tensor, key: str) -> torch.Tensor:
    save_file({"logprobs": logprobs.contiguous()}, tmp, metadata=key_metadata(key))
    return logprobs


def reference_cache(rows: int) -> CacheFormat[torch.Tensor]:
    """Safetensors `{"logprobs": [rows, 2]}` (chosen, rejected) with the key in the metadata."""
    return CacheFormat(
        what="reference log-prob cache",
        load=lambda path: load_file(path)["logprobs"],
        save=_save_logprobs,
        recorded_key=tensor_file_key,
        problem=lambda logprobs: (
            None if logprobs.shape == (rows, 2) else f"shape {tuple(logprobs.shape)}"
        ),
    )


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

    def score() -> torch.Tensor:
        options = dict(pad_id=pad_id, batch_size=batch_size, progress=progress)
        return pair_logprobs(model, pairs, **options, desc="reference log-probs")

    logprobs = cached(path, key, reference_cache(len(pairs)), score)
    return PrecomputedReference([p.pair_id for p in pairs], logprobs)


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
