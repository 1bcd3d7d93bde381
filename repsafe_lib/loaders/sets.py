"""The datasets: each one's row parser, spec and loader (paper Sec 4.1-4.2, Table 3).

- PKU-SafeRLHF (`load_pku_saferlhf`) -> `PreferencePair`, chosen = the only safe response.
- hh-rlhf red-team attempts (`load_hh_red_team`), Do-Not-Answer (`load_do_not_answer`),
  Salad-Bench base set (`load_salad_base`), XSTest (`load_xstest`) -> `EvalPrompt`.
- The over-alignment sets (Table 3): MMLU (`load_mmlu`) -> `MmluQuestion`, AlpacaEval
  (`load_alpaca_eval`) -> `EvalPrompt`.
- BeaverTails (`load_beavertails`) -> `LabeledResponse`: real responses with a safety label, the
  held-out set notebook 03's transfer table scores the reward on.

`LOADERS` names each loader as params name it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from operator import attrgetter
from pathlib import Path
from typing import Any

from repsafe_lib.loaders import fields
from repsafe_lib.loaders.errors import DatasetError, RowError
from repsafe_lib.loaders.hub import RepoFile, read_source
from repsafe_lib.loaders.validation import DatasetSpec, LoadedDataset, OnBadRows, load, validate
from repsafe_lib.records import (
    MMLU_LETTERS,
    EvalPrompt,
    LabeledResponse,
    MmluQuestion,
    PreferencePair,
)

# Row parsers, one per dataset.

_HUMAN_TURN = re.compile(r"(?:\A|\n)\s*Human:(.*?)(?=\n\s*(?:Assistant|Human):|\Z)", re.DOTALL)


def first_human_turn(transcript: str) -> str | None:
    """The first ``Human:`` turn of an hh-rlhf transcript, stripped; None when there is none."""
    match = _HUMAN_TURN.search(transcript)
    return match.group(1).strip() if match else None


def _parse_pku(data: Mapping[str, Any], row: int, text_cells: bool) -> PreferencePair | None:
    """PKU-SafeRLHF row -> pair, or None (filtered) unless exactly one response is safe."""
    prompt = fields.text(data, "prompt")
    responses = (fields.text(data, "response_0"), fields.text(data, "response_1"))
    safe = tuple(fields.flag(data, f"is_response_{i}_safe", text_cells) for i in (0, 1))
    fields.choice(data, "safer_response_id", (0, 1), text_cells)
    categories = tuple(fields.categories(data, f"response_{i}_harm_category") for i in (0, 1))
    if safe[0] == safe[1]:
        return None
    chosen = 0 if safe[0] else 1
    rejected = 1 - chosen
    return PreferencePair(
        pair_id=f"pku_saferlhf-{row}",
        prompt=prompt,
        chosen=responses[chosen],
        rejected=responses[rejected],
        categories=categories[rejected],
    )


def _parse_hh(data: Mapping[str, Any], row: int, text_cells: bool) -> EvalPrompt:
    """hh-rlhf red-team row -> its first human turn."""
    prompt = first_human_turn(fields.text(data, "transcript"))
    if prompt is None:
        raise RowError("transcript", "no 'Human:' turn in the transcript")
    if not prompt:
        raise RowError("transcript", "the first 'Human:' turn is empty")
    return EvalPrompt(f"hh_red_team-{row}", prompt, "hh_red_team", None, None)


def _parse_do_not_answer(data: Mapping[str, Any], row: int, text_cells: bool) -> EvalPrompt:
    prompt_id = f"do_not_answer-{fields.ident(data, 'id')}"
    return EvalPrompt(
        prompt_id,
        fields.text(data, "question"),
        "do_not_answer",
        fields.text(data, "risk_area"),
        None,
    )


def _parse_salad_base(data: Mapping[str, Any], row: int, text_cells: bool) -> EvalPrompt:
    prompt_id = f"salad_base-{fields.ident(data, 'qid')}"
    return EvalPrompt(
        prompt_id,
        fields.text(data, "question"),
        "salad_base",
        fields.text(data, "1-category"),
        None,
    )


def _parse_xstest(data: Mapping[str, Any], row: int, text_cells: bool) -> EvalPrompt:
    # Some hub copies of XSTest drop `id`; the row number is then the id (as in the original CSV).
    source_id = fields.ident(data, "id") if data.get("id") not in (None, "") else str(row)
    label = fields.text(data, "label")
    if label not in ("safe", "unsafe"):
        raise RowError("label", f"expected 'safe' or 'unsafe', got {label!r:.40}")
    return EvalPrompt(
        f"xstest-{source_id}",
        fields.text(data, "prompt"),
        "xstest",
        fields.text(data, "type"),
        label,
    )


def _parse_mmlu(data: Mapping[str, Any], row: int, text_cells: bool) -> MmluQuestion:
    choices = fields.choices(data, "choices", len(MMLU_LETTERS))
    answer = fields.choice(data, "answer", tuple(range(len(MMLU_LETTERS))), text_cells)
    return MmluQuestion(
        f"mmlu-{row}", fields.text(data, "subject"), fields.text(data, "question"), choices, answer
    )


def _parse_alpaca_eval(data: Mapping[str, Any], row: int, text_cells: bool) -> EvalPrompt:
    dataset = data.get("dataset")
    category = fields.unicode_text(dataset, "dataset") if isinstance(dataset, str) else None
    return EvalPrompt(
        f"alpaca_eval-{row}", fields.text(data, "instruction"), "alpaca_eval", category, None
    )


def _parse_beavertails(data: Mapping[str, Any], row: int, text_cells: bool) -> LabeledResponse:
    return LabeledResponse(
        f"beavertails-{row}",
        fields.text(data, "prompt"),
        fields.text(data, "response"),
        fields.flag(data, "is_safe", text_cells),
    )


_GUARD_TURN = "\n\nAI assistant:\n"
_GUARD_VERDICTS = {"Response: unharmful": True, "Response: harmful": False}


def _parse_beavertails_guard_form(
    data: Mapping[str, Any], row: int, text_cells: bool
) -> LabeledResponse:
    """BeaverTails as guard-model benchmarks ship it: ``input`` = "Human user:\\n<prompt>\\n\\nAI
    assistant:\\n<response>", ``output`` ending in "Response: harmful" or "Response: unharmful"."""
    conversation = fields.text(data, "input")
    if not conversation.startswith("Human user:") or _GUARD_TURN not in conversation:
        raise RowError("input", "expected 'Human user:\\n<prompt>\\n\\nAI assistant:\\n<response>'")
    prompt, response = conversation.removeprefix("Human user:").rsplit(_GUARD_TURN, 1)
    verdict = next(
        (
            safe
            for tail, safe in _GUARD_VERDICTS.items()
            if fields.text(data, "output").endswith(tail)
        ),
        None,
    )
    if verdict is None:
        raise RowError(
            "output", "expected it to end in 'Response: harmful' or 'Response: unharmful'"
        )
    if not prompt.strip() or not response.strip():
        raise RowError("input", "empty prompt or response")
    return LabeledResponse(f"beavertails-{row}", prompt.strip(), response.strip(), verdict)


# Specs and loaders.

_PKU = DatasetSpec(
    "pku_saferlhf",
    (
        "prompt",
        "response_0",
        "response_1",
        "is_response_0_safe",
        "is_response_1_safe",
        "safer_response_id",
    ),
    _parse_pku,
    record_id=attrgetter("pair_id"),
)
_HH = DatasetSpec("hh_red_team", ("transcript",), _parse_hh, {"data_dir": "red-team-attempts"})
_DNA = DatasetSpec(
    "do_not_answer", ("id", "risk_area", "question"), _parse_do_not_answer, id_column="id"
)
_SALAD = DatasetSpec(
    "salad_base",
    ("qid", "question", "1-category"),
    _parse_salad_base,
    {"name": "base_set"},
    id_column="qid",
)
_XSTEST = DatasetSpec("xstest", ("prompt", "type", "label"), _parse_xstest, id_column="id")
_MMLU = DatasetSpec(
    "mmlu",
    ("question", "subject", "choices", "answer"),
    _parse_mmlu,
    {"name": "all"},
    record_id=attrgetter("question_id"),
)
_BEAVERTAILS = DatasetSpec(
    "beavertails",
    ("prompt", "response", "is_safe"),
    _parse_beavertails,
    record_id=attrgetter("example_id"),
)
_BEAVERTAILS_GUARD_FORM = DatasetSpec(
    "beavertails",
    ("input", "output"),
    _parse_beavertails_guard_form,
    record_id=attrgetter("example_id"),
)
# `datasets` >= 4 refuses tatsu-lab/alpaca_eval's loading script (alpaca_eval.py), so the file
# that script's `alpaca_eval` configuration reads (its `eval` split) is read directly.
_ALPACA_EVAL = DatasetSpec(
    "alpaca_eval",
    ("instruction",),
    _parse_alpaca_eval,
    repo_file=RepoFile("alpaca_eval.json", split="eval"),
)


def load_pku_saferlhf(
    source: str | Path,
    *,
    split: str = "train",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[PreferencePair]:
    """PKU-SafeRLHF (``PKU-Alignment/PKU-SafeRLHF``) as safety preference pairs.

    Schema: ``prompt, response_0, response_1`` (text), ``is_response_0_safe,
    is_response_1_safe`` (bool), ``safer_response_id`` (0/1), optional
    ``response_{0,1}_harm_category`` (category -> bool; a JSON string in CSV). Only rows with
    exactly one safe response become pairs (chosen = the safe one); the others count in
    ``n_filtered``. ``pair_id`` is ``pku_saferlhf-<row>``. ``split``/``revision`` apply to the hub.
    """
    return load(_PKU, source, split, on_bad_rows, revision)


def load_hh_red_team(
    source: str | Path,
    *,
    split: str = "train",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[EvalPrompt]:
    """hh-rlhf red-team attempts (``Anthropic/hh-rlhf``, ``data_dir="red-team-attempts"``).

    Schema: ``transcript`` ("\\n\\nHuman: … \\n\\nAssistant: …"); the prompt is the first human
    turn. The real ``red_team_attempts.jsonl.gz`` is a JSON array, which is read as such.
    ``prompt_id`` is ``hh_red_team-<row>``; no category or label.
    """
    return load(_HH, source, split, on_bad_rows, revision)


def load_do_not_answer(
    source: str | Path,
    *,
    split: str = "train",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[EvalPrompt]:
    """Do-Not-Answer (``LibrAI/do-not-answer``).

    Schema: ``id, risk_area, types_of_harm, specific_harms, question``; uses ``id``,
    ``question`` and ``risk_area`` (-> ``category``). ``prompt_id`` is ``do_not_answer-<id>``;
    a repeated ``id`` is a bad row.
    """
    return load(_DNA, source, split, on_bad_rows, revision)


def load_salad_base(
    source: str | Path,
    *,
    split: str = "train",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[EvalPrompt]:
    """Salad-Bench base set (``OpenSafetyLab/Salad-Data``, config ``base_set``).

    Schema: ``qid, question, source, 1-category, 2-category, 3-category``; uses ``qid``,
    ``question`` and ``1-category`` (-> ``category``). ``prompt_id`` is ``salad_base-<qid>``;
    a repeated ``qid`` is a bad row.
    """
    return load(_SALAD, source, split, on_bad_rows, revision)


def load_xstest(
    source: str | Path,
    *,
    split: str = "train",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[EvalPrompt]:
    """XSTest (250 safe + 200 unsafe prompts).

    Schema: ``id, prompt, type, label, focus, note`` with ``label`` in {safe, unsafe};
    ``type`` -> ``category``. ``id`` may be absent (some hub copies), then the row number
    stands in. ``prompt_id`` is ``xstest-<id>``; a repeated id (one a row number may stand in for
    too) is a bad row, since Fig 4 counts each id's label once.
    """
    return load(_XSTEST, source, split, on_bad_rows, revision)


def load_mmlu(
    source: str | Path,
    *,
    split: str = "test",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[MmluQuestion]:
    """MMLU (``cais/mmlu``, config ``all``).

    Schema: ``question, subject`` (text), ``choices`` (a list of 4 texts; a JSON list in CSV),
    ``answer`` (0-3). ``question_id`` is ``mmlu-<row>``.
    """
    return load(_MMLU, source, split, on_bad_rows, revision)


def load_alpaca_eval(
    source: str | Path,
    *,
    split: str = "eval",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[EvalPrompt]:
    """AlpacaEval instructions (``tatsu-lab/alpaca_eval``): ``instruction`` (+ ``dataset``).

    The hub repository's loading script is refused by `datasets` >= 4, so a hub id (or a local
    copy of the repository) is read from its published ``alpaca_eval.json`` (a JSON array of
    ``instruction, output, generator, dataset``), which holds the one split ``eval``.
    ``prompt_id`` is ``alpaca_eval-<row>``; ``dataset`` (the instruction's origin) -> ``category``.
    """
    return load(_ALPACA_EVAL, source, split, on_bad_rows, revision)


def load_beavertails(
    source: str | Path,
    *,
    split: str = "30k_test",
    on_bad_rows: OnBadRows = "raise",
    revision: str | None = None,
) -> LoadedDataset[LabeledResponse]:
    """BeaverTails (``PKU-Alignment/BeaverTails``): question-answer pairs with a response-level
    safety label, as `LabeledResponse` (``example_id`` ``beavertails-<row>``).

    Schema: ``prompt, response`` (text), ``is_safe`` (bool), ``category`` (unused). A file in the
    form guard-model benchmarks ship it (``instruction, input, output``: ``input`` holds "Human
    user:" and "AI assistant:" turns, ``output`` ends in "Response: harmful" or "Response:
    unharmful") is read too; which form a file is in is told by its columns.
    """
    if on_bad_rows not in ("raise", "skip"):
        raise ValueError(f"on_bad_rows must be 'raise' or 'skip', got {on_bad_rows!r}")
    table = read_source(source, split, revision, {}, None)
    for spec in (_BEAVERTAILS, _BEAVERTAILS_GUARD_FORM):
        if set(spec.required) <= table.columns:
            return validate(spec, table, on_bad_rows)
    reason = (
        f"expected the columns {list(_BEAVERTAILS.required)} (or {list(_BEAVERTAILS_GUARD_FORM.required)}"
        f" of the guard-benchmark form), found {sorted(table.columns)}"
    )
    raise DatasetError(reason, path=table.source, field=_BEAVERTAILS.required[0])


LOADERS: dict[str, Callable[..., LoadedDataset[Any]]] = {
    "pku_saferlhf": load_pku_saferlhf,
    "hh_red_team": load_hh_red_team,
    "do_not_answer": load_do_not_answer,
    "salad_base": load_salad_base,
    "xstest": load_xstest,
    "mmlu": load_mmlu,
    "alpaca_eval": load_alpaca_eval,
    "beavertails": load_beavertails,
}
