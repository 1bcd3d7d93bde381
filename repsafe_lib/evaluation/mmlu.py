"""MMLU as lm-evaluation-harness scores it, for over-alignment (paper appendix A.1, Table 3).

The prompt is Hendrycks et al.'s (2021) as the harness builds it (k answered questions of the
subject, then the question); the prediction is the letter " A".." D" with the highest
log-likelihood after it, each letter scored from the joint tokenization of prompt and letter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from repsafe_lib.hidden_states import pad_batch, position_ids_from_mask
from repsafe_lib.records import MMLU_LETTERS, MmluQuestion

MMLU_HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"


def mmlu_question_text(question: MmluQuestion) -> str:
    """One question as lm-evaluation-harness writes it: the question, its options, "Answer:"."""
    options = "".join(
        f"\n{letter}. {choice}"
        for letter, choice in zip(MMLU_LETTERS, question.choices, strict=True)
    )
    return f"{question.question.strip()}{options}\nAnswer:"


def mmlu_shots(
    questions: Sequence[MmluQuestion], dev: Sequence[MmluQuestion], shots: int
) -> list[tuple[MmluQuestion, ...]]:
    """Each question's examples: the first `shots` dev questions of its subject, in dev order."""
    by_subject: dict[str, list[MmluQuestion]] = {}
    for example in dev:
        by_subject.setdefault(example.subject, []).append(example)
    return [tuple(by_subject.get(q.subject, [])[:shots]) for q in questions]


def mmlu_prompt(question: MmluQuestion, shots: Sequence[MmluQuestion] = ()) -> str:
    """The MMLU prompt of Hendrycks et al. (2021) as lm-evaluation-harness builds it: the subject's
    description line, then each shot answered ("Answer: B") and followed by a blank line, then the
    question; the answer follows as " A".." D". Without shots this is the zero-shot prompt."""
    header = MMLU_HEADER.format(subject=question.subject.replace("_", " "))
    examples = "".join(f"{mmlu_question_text(s)} {MMLU_LETTERS[s.answer]}\n\n" for s in shots)
    return f"{header}{examples}{mmlu_question_text(question)}"


def joint_tokens(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of `context` (with the tokenizer's special tokens) and of `continuation` after it,
    split from one tokenization of the two together, as lm-evaluation-harness does: a SentencePiece
    tokenizer writes " A" alone as two pieces ("▁", "▁A") but after "Answer:" as one. Whitespace
    that ends the context moves to the continuation; the split is where the joint ids stop
    matching the context's own (its length, whenever the context's ids are a prefix)."""
    kept = context.rstrip()
    whole = tokenizer(kept + context[len(kept) :] + continuation)["input_ids"]
    alone = tokenizer(kept)["input_ids"]
    split = 0
    while split < min(len(alone), len(whole) - 1) and alone[split] == whole[split]:
        split += 1
    return whole[:split], whole[split:]


def _forward_last_logprobs(model, sequences: Sequence[Sequence[int]], pad_id: int, keep: int):
    """Log-probabilities at the last `keep` positions of left-padded `sequences`, `[B, keep, V]`."""
    device = next(model.parameters()).device
    ids, mask = pad_batch(sequences, pad_id, side="left")
    logits = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=position_ids_from_mask(mask).to(device),
        logits_to_keep=keep,
    ).logits.float()
    return torch.log_softmax(logits, dim=-1).cpu()


@torch.inference_mode()
def pair_logprobs(
    model,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    pad_id: int,
    batch_size: int,
    progress: bool = True,
) -> np.ndarray:
    """log p(continuation ids | context ids) summed over the continuation, per pair, `[n]`."""
    scores = np.zeros(len(pairs))
    starts = range(0, len(pairs), batch_size)
    for start in tqdm(starts, desc="log-likelihoods", disable=not progress):
        batch = pairs[start : start + batch_size]
        keep = max(len(x) for _, x in batch) + 1
        logprobs = _forward_last_logprobs(model, [[*c, *x] for c, x in batch], pad_id, keep)
        for row, (_, continuation) in enumerate(batch):
            steps = range(keep - len(continuation) - 1, keep - 1)
            scores[start + row] = sum(
                logprobs[row, s, t].item() for s, t in zip(steps, continuation, strict=True)
            )
    return scores


def continuation_logprobs(
    model,
    tokenizer,
    contexts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int,
    progress: bool = True,
) -> np.ndarray:
    """log p(continuation | context) summed over the continuation's tokens, `[n]`.

    Context and continuation are tokenized together and split (`joint_tokens`). Left padding with
    positions counted over real tokens; only the last logits are computed.
    """
    pairs = [joint_tokens(tokenizer, c, x) for c, x in zip(contexts, continuations, strict=True)]
    return pair_logprobs(
        model, pairs, pad_id=tokenizer.pad_token_id, batch_size=batch_size, progress=progress
    )


@torch.inference_mode()
def next_token_rows(
    model,
    contexts: Sequence[Sequence[int]],
    token_ids: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int,
    progress: bool = False,
) -> np.ndarray:
    """log p(token | context) for each context's own candidate tokens, `[n, k]`: one forward per
    context."""
    scores = []
    starts = range(0, len(contexts), batch_size)
    for start in tqdm(starts, desc="next-token log-likelihoods", disable=not progress):
        logprobs = _forward_last_logprobs(model, contexts[start : start + batch_size], pad_id, 1)
        candidates = torch.as_tensor(token_ids[start : start + batch_size], dtype=torch.long)
        scores.append(logprobs[:, -1].gather(1, candidates).numpy())
    return np.concatenate(scores).astype(float)


def next_token_logprobs(
    model,
    tokenizer,
    contexts: Sequence[str],
    token_ids: Sequence[int],
    *,
    batch_size: int,
    progress: bool = False,
) -> np.ndarray:
    """log p(token | context) for each context and each of `token_ids`, `[n, len(token_ids)]`:
    `continuation_logprobs` for one-token continuations, with one forward per context."""
    encoded = [tokenizer(c)["input_ids"] for c in contexts]
    return next_token_rows(
        model,
        encoded,
        [list(token_ids)] * len(encoded),
        pad_id=tokenizer.pad_token_id,
        batch_size=batch_size,
        progress=progress,
    )


def _letter_scores(model, pairs, **options) -> np.ndarray:
    """`[n, 4]` log-likelihoods of the letters from each question's (context, letter) id pairs:
    one forward per question when each letter is one token after the same context ids (as in
    Llama and SmolLM2 tokenizers), otherwise each letter's tokens in turn."""
    one_forward = all(
        all(ctx == row[0][0] and len(letter) == 1 for ctx, letter in row) for row in pairs
    )
    if one_forward:
        contexts = [row[0][0] for row in pairs]
        return next_token_rows(
            model, contexts, [[letter[0] for _, letter in row] for row in pairs], **options
        )
    flat = [pair for row in pairs for pair in row]
    return pair_logprobs(model, flat, **options).reshape(len(pairs), len(MMLU_LETTERS))


def mmlu_predictions(
    model,
    tokenizer,
    questions: Sequence[MmluQuestion],
    *,
    batch_size: int,
    shots: int = 0,
    fewshot: Sequence[MmluQuestion] = (),
    progress: bool = True,
) -> pd.DataFrame:
    """Per question: the letter with the highest log-likelihood after the prompt, and the answer.

    `shots` > 0: each prompt starts with that many answered questions of its subject from
    `fewshot` (MMLU's dev split), the paper's 5-shot setting. Each letter " A".." D" is scored from
    the joint tokenization of prompt and letter (`_letter_scores`).
    """
    if shots and not fewshot:
        raise ValueError(f"{shots}-shot MMLU needs the few-shot (dev) questions")
    examples = mmlu_shots(questions, fewshot, shots)
    contexts = [mmlu_prompt(q, s) for q, s in zip(questions, examples, strict=True)]
    pairs = [[joint_tokens(tokenizer, c, f" {x}") for x in MMLU_LETTERS] for c in contexts]
    options = {"pad_id": tokenizer.pad_token_id, "batch_size": batch_size, "progress": progress}
    scores = _letter_scores(model, pairs, **options)
    predicted = scores.argmax(axis=1)
    return pd.DataFrame(
        {
            "question_id": [q.question_id for q in questions],
            "subject": [q.subject for q in questions],
            "answer": [MMLU_LETTERS[q.answer] for q in questions],
            "predicted": [MMLU_LETTERS[i] for i in predicted],
            "correct": [int(i) == q.answer for i, q in zip(predicted, questions, strict=True)],
            **{f"logp_{letter}": scores[:, i] for i, letter in enumerate(MMLU_LETTERS)},
        }
    )


def predictions_by_run(mmlu: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every run's `mmlu_predictions` in one table, with a `run` column last."""
    return pd.concat([p.assign(run=name) for name, p in mmlu.items()], ignore_index=True)
