"""A model without a chat template answers in the dialogue format and must end at the next turn.

The model here is a tiny Llama whose greedy decoding is scripted: each prompt has a fixed
continuation, so a base model's habit of writing the next `Human:` turn itself can be reproduced
exactly and the answer checked through the real `generate_texts`/`generate_responses`.
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaForCausalLM

from repsafe_lib import evaluation
from repsafe_lib.evaluation import PolicySource
from repsafe_lib.hidden_states import format_prompt
from repsafe_lib.models import LoadedModel, build_tiny_llama
from repsafe_lib.records import EvalPrompt, write_records
from repsafe_lib.sampling import (
    DecodingConfig,
    ResponseRecord,
    _prompt_sha,
    cached_responses,
    end_of_turn,
    generate_responses,
    response_cache_path,
)

# prompt -> what the scripted model writes after "Assistant:" (then the end-of-sequence token)
SCRIPTS = {
    "How do I bake bread?": " Knead the dough.\n\nHuman: Thanks!\n\nAssistant: You are welcome.",
    "Capital of France?": " Paris, a city on the Seine with many bridges and old streets to walk",
    "Say nothing.": "\n\nHuman: Why not?",
    "One line?": " Sure.\nHuman: ok\nAssistant: fine",
    "Name a colour.": " Blue.\n\nAssistant: Also green.",
}
# What each answer is once cut at the next turn, and whether it ended (EOS or turn marker).
EXPECTED = {
    "How do I bake bread?": ("Knead the dough.", True),
    "Capital of France?": (
        "Paris, a city on the Seine with many bridges and old streets",
        False,
    ),
    "Say nothing.": ("", True),
    "One line?": ("Sure.", True),
    "Name a colour.": ("Blue.", True),
}
PROMPTS = [EvalPrompt(f"p-{i}", text, "demo", None, None) for i, text in enumerate(SCRIPTS)]
MAX_NEW_TOKENS = 14


class ScriptedLlama(LlamaForCausalLM):
    """Greedy decoding writes each row's script (picked by the prompt in the row), then
    the end-of-sequence token. Records how many tokens each `generate` call asked for."""

    def setup(self, tokenizer, scripts: dict[str, str]):
        self.tokenizer = tokenizer
        self.scripts = {
            prompt: tokenizer(text, add_special_tokens=False)["input_ids"]
            + [tokenizer.eos_token_id]
            for prompt, text in scripts.items()
        }
        self.steps_asked: list[int] = []
        return self

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if input_ids.shape[1] > 1:  # the whole prompt: a new `generate` call (later: one token)
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
            texts = [
                self.tokenizer.decode(ids[m.bool()]) for ids, m in zip(input_ids, mask, strict=True)
            ]
            self.rows = [next(s for p, s in self.scripts.items() if p in t) for t in texts]
            self.steps_asked.append(0)
        step = self.steps_asked[-1]
        self.steps_asked[-1] += 1
        forced = torch.full_like(out.logits, -1e4)
        for row, script in enumerate(self.rows):
            forced[row, -1, script[min(step, len(script) - 1)]] = 0.0
        out.logits = forced
        return out


@pytest.fixture
def base_model(tiny_params, tiny_model):
    """A tokenizer without a chat template (as Llama-2-7b's) and the scripted model."""
    tokenizer = copy.deepcopy(tiny_model.tokenizer)
    tokenizer.chat_template = None
    config = build_tiny_llama(tiny_params.model, len(tokenizer), seed=0).config
    model = ScriptedLlama(config).eval().setup(tokenizer, SCRIPTS)
    return model, tokenizer


def test_turn_marker_variants():
    assert end_of_turn(" Fine.\n\nHuman: more") == len(" Fine.")
    assert end_of_turn("Fine.\nHuman: more") == len("Fine.")
    assert end_of_turn("Fine.\n \n Assistant: more") == len("Fine.")
    assert end_of_turn("\n\nHuman: more") == 0
    assert end_of_turn(" Human: more") == 0
    assert end_of_turn("Human rights: a list") is None
    assert end_of_turn("Ask the Human: politely") is None
    assert end_of_turn("Fine.\n\nHumans: many") is None


def test_dialogue_answers_are_cut_at_the_next_turn(base_model):
    model, tokenizer = base_model
    records = generate_responses(
        model, tokenizer, PROMPTS, max_new_tokens=MAX_NEW_TOKENS, batch_size=5, progress=False
    )
    got = {p.prompt: (r.text, r.finished) for p, r in zip(PROMPTS, records, strict=True)}
    assert got == EXPECTED
    by_prompt = dict(zip(SCRIPTS, records, strict=True))
    answer_tokens = tokenizer(" Knead the dough.", add_special_tokens=False)["input_ids"]
    assert by_prompt["How do I bake bread?"].num_tokens == len(answer_tokens)
    assert by_prompt["Say nothing."].num_tokens == 0 and by_prompt["Say nothing."].empty
    assert by_prompt["Capital of France?"].num_tokens == MAX_NEW_TOKENS


def test_a_row_stops_at_the_marker_while_its_batch_goes_on(base_model):
    model, tokenizer = base_model
    options = {"max_new_tokens": MAX_NEW_TOKENS, "progress": False}
    batched = generate_responses(model, tokenizer, PROMPTS, batch_size=5, **options)
    assert model.steps_asked == [MAX_NEW_TOKENS], "the unfinished row runs to max_new_tokens"
    single = [
        generate_responses(model, tokenizer, [p], batch_size=1, **options)[0] for p in PROMPTS
    ]
    assert batched == single
    through_marker = tokenizer(" Knead the dough.\n\nHuman:", add_special_tokens=False)
    assert model.steps_asked[1] == len(through_marker["input_ids"]), "stops right at the marker"


def test_models_with_a_chat_template_are_not_cut(tiny_params, tiny_model):
    tokenizer = tiny_model.tokenizer
    script = " Knead the dough.\n\nHuman: Thanks!"
    config = build_tiny_llama(tiny_params.model, len(tokenizer), seed=0).config
    model = ScriptedLlama(config).eval().setup(tokenizer, {PROMPTS[0].prompt: script})
    [record] = generate_responses(
        model, tokenizer, PROMPTS[:1], max_new_tokens=40, batch_size=1, progress=False
    )
    assert record.text == script.strip() and record.finished


def test_responses_cached_before_turn_cutting_are_not_reused(base_model, tmp_path, monkeypatch):
    model, tokenizer = base_model
    decoding = DecodingConfig(max_new_tokens=MAX_NEW_TOKENS)
    monkeypatch.setattr(
        "repsafe_lib.sampling.GENERATION_CONVENTION", "chat-template/left-pad/stop-at-eos/v1"
    )
    old_path = response_cache_path(tmp_path, "base", decoding)
    monkeypatch.undo()
    prompt = PROMPTS[0]
    stale = ResponseRecord(
        prompt.prompt_id,
        0,
        "a run-on answer cached before turns were cut",
        20,
        True,
        False,
        0,
        _prompt_sha(format_prompt(tokenizer, prompt.prompt)),
    )
    write_records(old_path, [stale])
    assert response_cache_path(tmp_path, "base", decoding) != old_path
    [record] = cached_responses(
        model,
        tokenizer,
        [prompt],
        model_key="base",
        cache_dir=tmp_path,
        decoding=decoding,
        batch_size=1,
        progress=False,
    )
    assert record.text == "Knead the dough."


def test_evaluation_and_sampled_responses_are_cut_too(base_model, tmp_path):
    """Notebook 06 (`policy_responses`) and the sampled decoding of best-of-N and online DPO."""
    model, tokenizer = base_model
    loaded = LoadedModel(model, tokenizer, "base", "scripted", 3, model.config.hidden_size)
    source = PolicySource("base", "base", None, "base", None)
    responses = evaluation.policy_responses(
        source,
        loaded,
        {"demo": PROMPTS},
        decoding=DecodingConfig(max_new_tokens=MAX_NEW_TOKENS),
        cache_dir=tmp_path,
        batch_size=5,
        progress=False,
    )
    assert [(r.text, r.finished) for r in responses["demo"]] == list(EXPECTED.values())
    sampled = generate_responses(
        model,
        tokenizer,
        PROMPTS,
        max_new_tokens=MAX_NEW_TOKENS,
        batch_size=4,
        do_sample=True,
        num_samples=2,
        seed=3,
        progress=False,
    )
    assert [(r.text, r.finished) for r in sampled] == [
        outcome for outcome in EXPECTED.values() for _ in range(2)
    ]


def test_long_answers_stop_at_a_late_marker_and_not_at_a_name_mid_line(base_model):
    """The stop check reads a window of the last tokens: past its width, a marker is still found
    and a window that happens to start at a mid-line "Human:" does not count as a new turn."""
    scripted, tokenizer = base_model
    filler = " one two three four five six seven eight nine ten" * 4
    scripts = {
        "Long?": " The word Human: names a speaker." + filler + " Done.",
        "Late?": filler + " Done.\n\nHuman: more" + filler,
    }
    model = ScriptedLlama(scripted.config).eval().setup(tokenizer, scripts)
    prompts = [EvalPrompt(f"l-{i}", text, "demo", None, None) for i, text in enumerate(scripts)]
    records = generate_responses(
        model, tokenizer, prompts, max_new_tokens=120, batch_size=1, progress=False
    )

    def length(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    assert (records[0].text, records[0].finished) == (scripts["Long?"].strip(), True)
    assert model.steps_asked[0] == length(scripts["Long?"]) + 1, "runs on to its EOS"
    assert (records[1].text, records[1].finished) == ((filler + " Done.").strip(), True)
    assert model.steps_asked[1] == length(filler + " Done.\n\nHuman:")
