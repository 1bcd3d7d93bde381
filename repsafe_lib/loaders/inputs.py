"""Notebook 00's inputs: every dataset the params name, loaded, capped and checked, and the pairs
split by prompt."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from repsafe_lib.loaders.copies import hub_copy
from repsafe_lib.loaders.errors import DatasetError
from repsafe_lib.loaders.hub import source_revision
from repsafe_lib.loaders.sets import LOADERS
from repsafe_lib.loaders.splits import (
    normalise_prompt,
    split_by_prompt,
    subsample,
    to_labeled_responses,
)
from repsafe_lib.loaders.validation import LoadedDataset, OnBadRows
from repsafe_lib.records import EvalPrompt, LabeledResponse, PreferencePair


def load_configured(
    spec, *, on_bad_rows: OnBadRows, seed: int, hub_copies: str | None = None
) -> LoadedDataset[Any]:
    """Load a `params.DatasetParams` entry: its loader, source (`demo:` files, and the local copy
    a hub-copies file maps a hub id to: `hub_copies`, the params' `data.hub_copies`, or
    $REPSAFE_HUB_COPIES), split, size cap; what was read is recorded in ``revision``."""
    from repsafe_lib.paths import resolve_data_source

    if spec.loader not in LOADERS:
        raise ValueError(f"unknown loader '{spec.loader}' (known: {', '.join(LOADERS)})")
    source = resolve_data_source(hub_copy(spec.source, hub_copies) or spec.source)
    loaded = LOADERS[spec.loader](
        source, split=spec.split, on_bad_rows=on_bad_rows, revision=spec.revision
    )
    records = tuple(subsample(loaded.records, spec.max_rows, seed))
    capped = len(loaded.records) - len(records)
    revision = source_revision(source, spec.revision)
    return dataclasses.replace(loaded, records=records, n_capped=capped, revision=revision)


def configured_revision(spec, hub_copies: str | None = None) -> str:
    """`hub.source_revision` of what `load_configured` reads for a `params.DatasetParams` entry
    (call it after the load, which fills the hub cache)."""
    from repsafe_lib.paths import resolve_data_source

    source = resolve_data_source(hub_copy(spec.source, hub_copies) or spec.source)
    return source_revision(source, spec.revision)


def configured_prompt_sets(data_params) -> dict[str, Any]:
    """The evaluation prompt sets a `params.DataParams` names, in a fixed order."""
    names = ("red_team", "xstest", "do_not_answer", "salad_base")
    return {name: getattr(data_params, name) for name in names if getattr(data_params, name)}


def load_transfer(
    spec,
    pairs: Sequence[PreferencePair],
    *,
    on_bad_rows: OnBadRows,
    seed: int,
    hub_copies: str | None = None,
) -> LoadedDataset[LabeledResponse]:
    """The transfer set (`data.transfer`): labelled responses whose prompt none of `pairs` has
    (a reward scored on prompts it was trained on would not show transfer), then capped."""
    uncapped = dataclasses.replace(spec, max_rows=None)
    loaded = load_configured(uncapped, on_bad_rows=on_bad_rows, seed=seed, hub_copies=hub_copies)
    responses = loaded.records
    if responses and isinstance(responses[0], PreferencePair):
        responses = to_labeled_responses(responses)
    pair_prompts = {normalise_prompt(pair.prompt) for pair in pairs}
    kept = [r for r in responses if normalise_prompt(r.prompt) not in pair_prompts]
    records = tuple(subsample(kept, spec.max_rows, seed))
    return dataclasses.replace(
        loaded,
        records=records,
        n_overlap=len(responses) - len(kept),
        n_capped=len(kept) - len(records),
    )


def _hub_unreachable(error: DatasetError, spec, hub_copies: str | None) -> bool:
    """A hub id that could not be read at all (no network, no local copy), not a bad row."""
    unmapped = hub_copy(spec.source, hub_copies) is None
    return error.path == spec.source and error.row is None and unmapped


@dataclass(frozen=True)
class DataInputs:
    """Notebook 00's inputs: the pairs, their split by prompt, the evaluation prompt sets and the
    transfer set (None when there is none; `transfer_unavailable` says why an optional one is
    missing)."""

    pairs: LoadedDataset[PreferencePair]
    train_pairs: list[PreferencePair]
    test_pairs: list[PreferencePair]
    prompt_sets: dict[str, LoadedDataset[EvalPrompt]]
    transfer: LoadedDataset[LabeledResponse] | None = None
    transfer_unavailable: str | None = None


def load_data_inputs(data_params, *, seed: int) -> DataInputs:
    """Load and check every dataset a `params.DataParams` names, and split the pairs by prompt.

    Nothing is written here: a caller that writes only after this returns never leaves new files
    of one dataset beside the previous run's files of another when a later file is bad.
    """
    load = {
        "on_bad_rows": data_params.on_bad_rows,
        "seed": seed,
        "hub_copies": data_params.hub_copies,
    }
    pairs = load_configured(data_params.pairs, **load)
    train, test = split_by_prompt(pairs.records, test_fraction=data_params.test_fraction, seed=seed)
    check_usable_pairs(pairs, train, test, data_params)
    prompt_sets = {
        name: load_configured(spec, **load)
        for name, spec in configured_prompt_sets(data_params).items()
    }
    transfer, unavailable = None, None
    if (spec := data_params.transfer) is not None:
        try:
            transfer = load_transfer(spec, pairs.records, **load)
        except DatasetError as error:
            if not (spec.optional and _hub_unreachable(error, spec, data_params.hub_copies)):
                raise
            unavailable = str(error)
    return DataInputs(pairs, train, test, prompt_sets, transfer, unavailable)


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
