"""MMLU as lm-evaluation-harness scores it: the k-shot prompt, and the answer letter's log-prob
from the joint tokenization of prompt and letter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, normalizers, processors
from tokenizers.models import Unigram
from transformers import PreTrainedTokenizerFast

from repsafe_lib import evaluation
from repsafe_lib.loaders import load_mmlu
from repsafe_lib.models import build_tiny_llama
from repsafe_lib.paths import bundled_data_dir
from repsafe_lib.records import MMLU_LETTERS, MmluQuestion

PHYSICS, RELIGIONS = "high_school_physics", "world_religions"
DEV = [
    MmluQuestion("dev-0", PHYSICS, "Unit of force?", ("J", "W", "N", "Pa"), 2),
    MmluQuestion(
        "dev-1", RELIGIONS, "Holy book of Islam?", ("Quran", "Vedas", "Torah", "Bible"), 0
    ),
    MmluQuestion("dev-2", PHYSICS, " Unit of power? ", ("J", "W", "N", "Pa"), 1),
    MmluQuestion("dev-3", PHYSICS, "Unit of energy?", ("J", "W", "N", "Pa"), 0),
]
QUESTION = MmluQuestion("test-0", PHYSICS, "Unit of pressure?", ("J", "W", "N", "Pa"), 3)


def test_zero_shot_prompt():
    assert evaluation.mmlu_prompt(QUESTION) == (
        "The following are multiple choice questions (with answers) about high school physics."
        "\n\nUnit of pressure?\nA. J\nB. W\nC. N\nD. Pa\nAnswer:"
    )


def test_few_shot_prompt_is_the_harness_prompt():
    [shots] = evaluation.mmlu_shots([QUESTION], DEV, 2)
    assert evaluation.mmlu_prompt(QUESTION, shots) == (
        "The following are multiple choice questions (with answers) about high school physics.\n\n"
        "Unit of force?\nA. J\nB. W\nC. N\nD. Pa\nAnswer: C\n\n"
        "Unit of power?\nA. J\nB. W\nC. N\nD. Pa\nAnswer: B\n\n"
        "Unit of pressure?\nA. J\nB. W\nC. N\nD. Pa\nAnswer:"
    )


def test_shots_come_from_the_same_subject_in_dev_order_at_most_k():
    religion = MmluQuestion("test-1", RELIGIONS, "Founder of Sikhism?", ("a", "b", "c", "d"), 0)
    other = MmluQuestion("test-2", "virology", "A virus?", ("a", "b", "c", "d"), 0)
    shots = evaluation.mmlu_shots([QUESTION, religion, other], DEV, 5)
    assert [[s.question_id for s in row] for row in shots] == [
        ["dev-0", "dev-2", "dev-3"],
        ["dev-1"],
        [],
    ]
    assert [len(row) for row in evaluation.mmlu_shots([QUESTION], DEV, 2)] == [2]


def _full_forward_logprobs(model, tokenizer, context: str) -> list[float]:
    """Each letter's log-prob as a plain reference: one unpadded forward over the tokenized
    context + " X", the letter's tokens being what follows the context's own tokens."""
    n_context = len(tokenizer(context)["input_ids"])
    scores = []
    for letter in MMLU_LETTERS:
        ids = tokenizer(f"{context} {letter}")["input_ids"]
        with torch.no_grad():
            logprobs = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        scores.append(sum(logprobs[t - 1, ids[t]].item() for t in range(n_context, len(ids))))
    return scores


def _assert_scores_match_full_forwards(predictions, model, tokenizer, contexts):
    expected = np.array([_full_forward_logprobs(model, tokenizer, c) for c in contexts])
    got = predictions[[f"logp_{x}" for x in MMLU_LETTERS]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (predictions["predicted"] == [MMLU_LETTERS[i] for i in expected.argmax(1)]).all()


def test_few_shot_scores_equal_a_full_forward_per_answer(tiny_params, tiny_model):
    questions = list(load_mmlu(bundled_data_dir() / "mmlu_demo.jsonl").records)
    first = {}
    for q in questions:
        first.setdefault(q.subject, q)
    test = [q for q in questions if first[q.subject] is not q]  # the subjects listed twice
    dev = [*first.values(), *(dataclasses.replace(q, question_id="again") for q in first.values())]
    model = build_tiny_llama(tiny_params.model, len(tiny_model.tokenizer), seed=3).eval()
    predictions = evaluation.mmlu_predictions(
        model, tiny_model.tokenizer, test, batch_size=4, shots=2, fewshot=dev, progress=False
    )
    shots = evaluation.mmlu_shots(test, dev, 2)
    assert [len(row) for row in shots] == [2] * len(test)
    contexts = [evaluation.mmlu_prompt(q, s) for q, s in zip(test, shots, strict=True)]
    _assert_scores_match_full_forwards(predictions, model, tiny_model.tokenizer, contexts)


def test_shots_without_dev_questions_are_refused(tiny_model):
    with pytest.raises(ValueError, match="needs the few-shot"):
        evaluation.mmlu_predictions(None, tiny_model.tokenizer, [QUESTION], batch_size=1, shots=5)


def sentencepiece_like_tokenizer(texts) -> PreTrainedTokenizerFast:
    """A tokenizer that, like Llama-2's (SentencePiece with a dummy prefix), writes a space as "▁",
    puts one before the whole text and has pieces "▁A".."▁D": " A" alone becomes "▁", "▁A" (two
    tokens) while "Answer: A" ends in the single "▁A"."""
    characters = sorted(set("".join(texts)) - {" "})
    pieces = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{x}", -1.0) for x in MMLU_LETTERS] + [(c, -3.0) for c in characters]
    backend = Tokenizer(Unigram(pieces, unk_id=0, byte_fallback=False))
    backend.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)]
    )
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="</s>",
    )


def test_letters_are_scored_as_tokenized_after_the_prompt(tiny_params):
    questions = list(load_mmlu(bundled_data_dir() / "mmlu_demo.jsonl").records[:6])
    contexts = [evaluation.mmlu_prompt(q) for q in questions]
    tokenizer = sentencepiece_like_tokenizer(contexts)
    alone = tokenizer(" A", add_special_tokens=False)["input_ids"]
    after_prompt = tokenizer(f"{contexts[0]} A")["input_ids"]
    assert len(alone) == 2 and after_prompt[-1:] == alone[1:], "the case this test is about"
    model = build_tiny_llama(tiny_params.model, len(tokenizer), seed=1).eval()
    predictions = evaluation.mmlu_predictions(
        model, tokenizer, questions, batch_size=4, progress=False
    )
    _assert_scores_match_full_forwards(predictions, model, tokenizer, contexts)
