"""Over-alignment (paper appendix A.1, Table 3): MMLU accuracy with its interval, and the mean score
general reward models (the paper: OpenAssistant's deberta-v3-large-v2 and FsfairX-LLaMA3-RM) give
each policy's responses to instruction prompts (AlpacaEval's in the paper).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from transformers import AutoTokenizer

from repsafe_lib import published
from repsafe_lib.evaluation.policies import policy_of_run
from repsafe_lib.evaluation.statistics import bootstrap_ci
from repsafe_lib.evaluation.toxicity import UNAVAILABLE
from repsafe_lib.models import DTYPES, pick_device, pretrained_source
from repsafe_lib.records import EvalPrompt
from repsafe_lib.seeding import stable_seed

if TYPE_CHECKING:
    from repsafe_lib.evaluation.responses import PolicyOutputs

PAPER_MMLU = published.MMLU


def _reward_inputs(tokenizer, questions: list[str], answers: list[str]):
    """With a chat template, a user/assistant conversation; without one, a text pair (question,
    answer), the input of reward models such as OpenAssistant's deberta-v3-large-v2."""
    if not tokenizer.chat_template:
        return tokenizer(questions, answers, padding=True, truncation=True, return_tensors="pt")
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            tokenize=False,
        )
        for q, a in zip(questions, answers, strict=True)
    ]
    return tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")


@torch.inference_mode()
def reward_scores(
    model, tokenizer, prompts: Sequence[str], responses: Sequence[str], *, batch_size: int
) -> np.ndarray:
    """Scalar scores of a sequence-classification reward model (logit 0), `[n]`; each pair is
    rendered by `_reward_inputs`."""
    device = next(model.parameters()).device
    scores = []
    for start in range(0, len(prompts), batch_size):
        questions = list(prompts[start : start + batch_size])
        answers = list(responses[start : start + batch_size])
        inputs = _reward_inputs(tokenizer, questions, answers)
        scores.extend(_classifier_scores(model, inputs.to(device)))
    return np.asarray(scores)


@torch.inference_mode()
def _classifier_scores(model, inputs) -> list[float]:
    """Logit 0 of each text. A decoder classifier reads the last token that is not its pad id;
    where that id also ends a text (a pad token borrowed from EOS, with a chat template that ends
    the turn with EOS, as Llama-3's does), it would read the token before, so those texts are
    scored alone, unpadded, at their true last token."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    pad_token_id = model.config.pad_token_id
    last = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)
    if pad_token_id is None or not (ids[torch.arange(len(ids)), last] == pad_token_id).any():
        return model(**inputs).logits.float()[:, 0].cpu().tolist()
    model.config.pad_token_id = None
    try:  # without a pad id, a classifier reads a lone text's last token
        return [
            float(model(input_ids=ids[i, mask[i].bool()][None]).logits.float()[0, 0])
            for i in range(len(ids))
        ]
    finally:
        model.config.pad_token_id = pad_token_id


def load_reward_model(spec):
    """A hub or local sequence-classification reward model and its tokenizer, in eval mode."""
    from transformers import AutoModelForSequenceClassification

    options = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    source = pretrained_source(spec)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, dtype=DTYPES[spec.dtype], **options
    )
    tokenizer = AutoTokenizer.from_pretrained(spec.tokenizer_source or source, **options)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:  # a decoder classifier finds each row's last token by it
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(pick_device(spec.device)).eval(), tokenizer


def general_reward(
    spec,
    instruction_prompts: Sequence[EvalPrompt],
    outputs: Mapping[str, PolicyOutputs],
    *,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Reward-model scores of each policy's responses to the instruction prompts."""
    model, tokenizer = load_reward_model(spec)
    text_of = {p.prompt_id: p.prompt for p in instruction_prompts}
    scores = {}
    for run, produced in outputs.items():
        if produced.instruction_responses is None:
            continue
        records = produced.instruction_responses
        scores[run] = reward_scores(
            model,
            tokenizer,
            [text_of[r.prompt_id] for r in records],
            [r.text for r in records],
            batch_size=batch_size,
        )
    return scores


def general_rewards(
    specs: Sequence,
    instruction_prompts: Sequence[EvalPrompt],
    outputs: Mapping[str, PolicyOutputs],
    *,
    batch_size: int,
) -> dict[str, dict[str, np.ndarray]]:
    """`general_reward` of every reward model `specs` names (none without instruction prompts),
    one model in memory at a time."""
    if not instruction_prompts:
        return {}
    return {
        spec.name: general_reward(spec, instruction_prompts, outputs, batch_size=batch_size)
        for spec in specs
    }


def table3(
    mmlu: Mapping[str, pd.DataFrame],
    general_rewards: Mapping[str, Mapping[str, np.ndarray]],
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Per run: MMLU accuracy with its interval, the mean score of each general reward model
    (`general_rewards[model name][run]`; a column per model, as the paper's RM-deberta and FsfairX,
    "unavailable" where a run has no scores or no model is configured), and the paper's MMLU
    numbers beside."""
    rows = []
    for run, predictions in mmlu.items():
        correct = predictions["correct"].to_numpy(dtype=float)
        interval = bootstrap_ci(
            correct, resamples=resamples, confidence=confidence, seed=stable_seed(seed, run)
        )
        rewards = {
            f"general_reward · {model}": _mean_text(scores.get(run))
            for model, scores in general_rewards.items()
        }
        rows.append(
            {
                "policy": run,
                "mmlu_questions": len(predictions),
                "mmlu_accuracy": interval.estimate,
                "mmlu_ci_low": interval.low,
                "mmlu_ci_high": interval.high,
                **(rewards or {"general_reward": UNAVAILABLE}),
                "paper_mmlu_llama2_7b": PAPER_MMLU.get(policy_of_run(run), np.nan),
            }
        )
    return pd.DataFrame(rows)


def _mean_text(scores: np.ndarray | None) -> str:
    return UNAVAILABLE if scores is None else f"{np.mean(scores):.3f}"
