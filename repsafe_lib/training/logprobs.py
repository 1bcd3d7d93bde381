"""The policy's training forward: response log-probs `log pi(y|x)` (paper Eq 3) and, from the
same pass, every layer's last-token state that R_h reads (Sec 3.2, 3.4).

Only response tokens are scored (the prompt's tokens are context, not part of `y`), and the LM
head runs only on the positions that predict one. Two autograd functions keep the backward pass
off subnormal floats, which make CPU matmuls up to ~40x slower once the policy grows confident.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from repsafe_lib.hidden_states import LastTokenRecorder, decoder_parts, position_ids_from_mask
from repsafe_lib.training.batches import EncodedPair, SequenceBatch, collate, pair_sequences

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
        # A copy, not a view: an in-place op on a view that FSDP2 returns would drop its hooks.
        return values.clone()

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
    sequences, starts = pair_sequences(pairs)
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
