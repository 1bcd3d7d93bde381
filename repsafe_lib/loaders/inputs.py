"""Notebook 00's inputs: every dataset the params name, loaded, capped and checked, and the pairs
split by prompt."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from repsafe_lib.loaders.errors import DatasetError
from repsafe_lib.loaders.sets import LOADERS
from repsafe_lib.loaders.splits import normalise_prompt, split_by_prompt, subsample
from repsafe_lib.loaders.validation import LoadedDataset, OnBadRows
from repsafe_lib.records import EvalPrompt, PreferencePair


def load_configured(spec, *, on_bad_rows: OnBadRows, seed: int) -> LoadedDataset[Any]:
    """Load a `params.DatasetParams` entry: its loader, source (`demo:` files too), split, size cap."""
    from repsafe_lib.paths import resolve_data_source

    if spec.loader not in LOADERS:
        raise ValueError(f"unknown loader '{spec.loader}' (known: {', '.join(LOADERS)})")
    loaded = LOADERS[spec.loader](
        resolve_data_source(spec.source),
        split=spec.split,
        on_bad_rows=on_bad_rows,
        revision=spec.revision,
    )
    records = tuple(subsample(loaded.records, spec.max_rows, seed))
    capped = len(loaded.records) - len(records)
    return dataclasses.replace(loaded, records=records, n_capped=capped)


def configured_prompt_sets(data_params) -> dict[str, Any]:
    """The evaluation prompt sets a `params.DataParams` names, in a fixed order."""
    names = ("red_team", "xstest", "do_not_answer", "salad_base")
    return {name: getattr(data_params, name) for name in names if getattr(data_params, name)}


@dataclass(frozen=True)
class DataInputs:
    """Notebook 00's inputs: the pairs, their split by prompt, and the evaluation prompt sets."""

    pairs: LoadedDataset[PreferencePair]
    train_pairs: list[PreferencePair]
    test_pairs: list[PreferencePair]
    prompt_sets: dict[str, LoadedDataset[EvalPrompt]]


def load_data_inputs(data_params, *, seed: int) -> DataInputs:
    """Load and check every dataset a `params.DataParams` names, and split the pairs by prompt.

    Nothing is written here: a caller that writes only after this returns never leaves new files
    of one dataset beside the previous run's files of another when a later file is bad.
    """
    on_bad_rows = data_params.on_bad_rows
    pairs = load_configured(data_params.pairs, on_bad_rows=on_bad_rows, seed=seed)
    train, test = split_by_prompt(pairs.records, test_fraction=data_params.test_fraction, seed=seed)
    check_usable_pairs(pairs, train, test, data_params)
    prompt_sets = {
        name: load_configured(spec, on_bad_rows=on_bad_rows, seed=seed)
        for name, spec in configured_prompt_sets(data_params).items()
    }
    return DataInputs(pairs, train, test, prompt_sets)


def check_usable_pairs(
    pairs: LoadedDataset[PreferencePair],
    train: Sequence[PreferencePair],
    test: Sequence[PreferencePair],
    data_params,
) -> None:
    """Raise a `DatasetError` naming the file and the step that left the training or the test
    side without pairs: the one-safe filter, the ``max_rows`` cap or the split by prompt."""
    if train and test:
        return
    n_valid = pairs.n_rows - pairs.n_skipped
    if not pairs.records:
        reason = (
            f"no usable pairs: all {n_valid} valid rows have both or neither response safe, and "
            "the one-safe filter keeps only pairs with exactly one safe response"
        )
        raise DatasetError(reason, path=pairs.source)
    n_prompts = len({normalise_prompt(pair.prompt) for pair in pairs.records})
    capped = (
        f"data.pairs.max_rows = {data_params.pairs.max_rows} kept {len(pairs.records)} of "
        f"{len(pairs.records) + pairs.n_capped} usable pairs; "
        if pairs.n_capped
        else ""
    )
    reason = (
        f"{capped}{len(pairs.records)} usable pairs with {n_prompts} distinct prompt(s) leave the "
        f"{'test' if train else 'training'} side of the split by prompt "
        f"(data.test_fraction = {data_params.test_fraction}) empty; it needs pairs of at least "
        "two distinct prompts"
    )
    raise DatasetError(reason, path=pairs.source)
