"""Dataset loaders: PKU-SafeRLHF preference pairs and the safety evaluation prompts (paper Sec 4.1-4.2).

Each loader takes a local file (``.jsonl``, ``.json``, ``.csv``, ``.parquet``; all but parquet
optionally ``.gz``), a Hugging Face hub id, or a local directory laid out like the dataset's hub
repository (read by `datasets.load_dataset` exactly as the hub id is), and runs every row through
the same validation, so a bad row fails with a `DatasetError` that names the file, the 1-based data
row and the field.

Every record's id (``pair_id``, ``prompt_id``, ``question_id``) is unique within a loaded set:
evaluation keys prompts, labels and responses by it, so a second row with an id already seen is a
bad row naming both rows. Text holding a lone surrogate (a JSON ``"\\ud800"`` escape) is a bad row
too: it is not Unicode and could never be written out. ``on_bad_rows: skip`` skips bad rows (every
row of a shared id), never a damaged file: bytes that are not UTF-8, a JSON line that does not
parse (a file cut off mid-line) and a CSV quote that is not closed properly stop the load in
either mode, naming the line.

- PKU-SafeRLHF (`load_pku_saferlhf`) -> `PreferencePair`, chosen = the only safe response.
- hh-rlhf red-team attempts (`load_hh_red_team`), Do-Not-Answer (`load_do_not_answer`),
  Salad-Bench base set (`load_salad_base`), XSTest (`load_xstest`) -> `EvalPrompt`.
- MMLU (`load_mmlu`) -> `MmluQuestion` and AlpacaEval (`load_alpaca_eval`) -> `EvalPrompt`, the
  over-alignment sets (Table 3).
- BeaverTails (`load_beavertails`) -> `LabeledResponse`, real responses with a safety label: the
  other data notebook 03's transfer table scores the reward on.

``split`` applies to hub ids and directories, ``revision`` to hub ids only; a local file is one
split already.
Text fields are stripped of surrounding whitespace: a trailing newline would otherwise change
the last token, whose hidden state is the representation the suite reads (paper Sec 3.2).

Where each part lives:

- `errors`: `DatasetError`, and how it names the file, row, line and field;
- `fields`: the field parsers (text, flags, choices, ids, harm categories);
- `files`: local files into rows (JSON, JSON lines, strict CSV, parquet; gzip);
- `copies`: the local copies of hub datasets that $REPSAFE_HUB_COPIES maps hub ids to;
- `hub`: hub datasets, hub repository files and local copies of hub repositories, and which
  reader a source needs;
- `validation`: the shared driver (columns, row parsing, unique ids, ``on_bad_rows``);
- `sets`: each dataset's row parser, spec and ``load_*`` function, and `LOADERS`;
- `splits`: labelled responses, the split by prompt, the seeded size cap;
- `inputs`: notebook 00's configured inputs (`load_data_inputs`).
"""

from repsafe_lib.loaders.copies import HUB_COPIES_ENV_VAR, hub_copy, read_hub_copies
from repsafe_lib.loaders.errors import DatasetError
from repsafe_lib.loaders.inputs import (
    DataInputs,
    check_usable_pairs,
    configured_prompt_sets,
    configured_revision,
    load_configured,
    load_data_inputs,
)
from repsafe_lib.loaders.sets import (
    LOADERS,
    first_human_turn,
    load_alpaca_eval,
    load_beavertails,
    load_do_not_answer,
    load_hh_red_team,
    load_mmlu,
    load_pku_saferlhf,
    load_salad_base,
    load_xstest,
)
from repsafe_lib.loaders.splits import (
    normalise_prompt,
    split_by_prompt,
    subsample,
    to_labeled_responses,
)
from repsafe_lib.loaders.validation import LoadedDataset, OnBadRows
from repsafe_lib.records import (
    MMLU_LETTERS,
    EvalPrompt,
    LabeledResponse,
    MmluQuestion,
    PreferencePair,
)

__all__ = [
    "HUB_COPIES_ENV_VAR",
    "LOADERS",
    "MMLU_LETTERS",
    "DatasetError",
    "DataInputs",
    "EvalPrompt",
    "LabeledResponse",
    "LoadedDataset",
    "MmluQuestion",
    "OnBadRows",
    "PreferencePair",
    "check_usable_pairs",
    "configured_prompt_sets",
    "configured_revision",
    "first_human_turn",
    "hub_copy",
    "load_alpaca_eval",
    "load_beavertails",
    "load_configured",
    "load_data_inputs",
    "load_do_not_answer",
    "load_hh_red_team",
    "load_mmlu",
    "load_pku_saferlhf",
    "load_salad_base",
    "load_xstest",
    "normalise_prompt",
    "read_hub_copies",
    "split_by_prompt",
    "subsample",
    "to_labeled_responses",
]
