"""Shared fixtures: CPU only, seeded, a tiny random Llama built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repsafe_lib import pipeline
from repsafe_lib.models import LoadedModel, load_model
from repsafe_lib.params import Params, load_params

# The robustness audit spans the suite: these tests, and all of test_reliability.py, carry
# the `reliability` marker, so `pytest -m reliability` runs the audit and `--collect-only -q` counts
# it (README, "Reliability"). A test that owns its topic stays in its own file; it is listed here.
RELIABILITY_TESTS = {
    "determinism": [
        "test_pipeline.py::test_tiny_profile_runs_every_notebook_and_twice_gives_identical_artifacts",
        "test_models.py::test_tiny_model_is_seeded",
        "test_sampling.py::test_sampling_is_seeded_per_prompt_not_per_batch",
        "test_datasets.py::test_split_by_prompt_differs_across_seeds_and_is_stable_across_runs",
        "test_evaluation.py::test_bootstrap_is_seeded_and_skips_unparsed_values",
        "test_artifacts.py::test_manifest_records_the_run",
        "test_artifacts.py::test_figures_are_saved_as_png_and_pdf_identically_twice",
        "test_training.py::test_batch_schedule_is_a_seeded_permutation_per_epoch",
        "test_training.py::test_both_sides_of_a_prompt_share_a_fold_and_folds_are_seeded",
    ],
    "crash safety": [
        "test_artifacts.py::test_atomic_write_leaves_old_file_on_failure",
        "test_hidden_states.py::test_corrupt_or_stale_cache_is_recomputed",
        "test_training.py::test_resume_equals_uninterrupted",
        "test_training.py::test_a_checkpoint_from_other_settings_is_not_resumed",
    ],
    "bad input": [
        "test_datasets.py::test_pku_bad_row_names_file_row_and_field",
        "test_datasets.py::test_csv_boolean_cells",
        "test_datasets.py::test_eval_bad_row_names_row_and_field",
        "test_datasets.py::test_jsonl_rows_count_data_rows_and_errors_give_the_line",
        "test_datasets.py::test_non_object_json_row_is_a_bad_row",
        "test_datasets.py::test_csv_row_with_too_many_fields",
        "test_datasets.py::test_empty_file",
        "test_datasets.py::test_csv_with_header_only_is_empty",
        "test_datasets.py::test_truncated_json_line_names_the_line",
        "test_datasets.py::test_truncated_json_array_names_the_line",
        "test_datasets.py::test_non_utf8_bytes_name_line_and_offset",
        "test_datasets.py::test_missing_column_is_one_error_naming_it",
        "test_datasets.py::test_field_missing_from_every_json_row_is_a_column_error",
        "test_datasets.py::test_unreadable_files",
        "test_datasets.py::test_neither_file_nor_hub_id",
        "test_datasets.py::test_directory_without_data_is_a_clear_error",
        "test_datasets.py::test_bad_on_bad_rows_value",
        "test_datasets.py::test_skip_mode_with_every_row_bad_still_raises",
        "test_datasets.py::test_raise_mode_stops_at_first_bad_row",
        "test_datasets.py::test_hub_missing_column",
        "test_datasets.py::test_property_valid_pku_rows_round_trip_through_jsonl",
        "test_datasets.py::test_property_junk_raises_dataset_error_only",
        "test_evaluation.py::test_mmlu_loader_rejects_bad_rows_naming_the_field",
        "test_params.py::test_bad_params_name_the_file_and_key",
        "test_params.py::test_missing_file_and_bad_yaml",
        "test_params.py::test_resolve_layers",
        "test_params.py::test_beta_of_any_wrong_type_is_a_params_error",
        "test_params.py::test_any_valid_beta_and_seed_round_trip",
        "test_pipeline.py::test_bad_params_stop_before_any_notebook",
        "test_artifacts.py::test_missing_upstream_names_the_notebook",
        "test_models.py::test_missing_gguf_package_and_file",
        "test_hidden_states.py::test_truncation_keeps_the_final_token",
    ],
    "numerics": [
        "test_losses.py::test_extreme_margins_stay_finite",
        "test_losses.py::test_dpo_and_cdpo_stay_finite_with_finite_gradients_for_extreme_margins",
        "test_training.py::test_nan_loss_stops_at_the_step_and_keeps_the_last_good_checkpoint",
    ],
    "security": [
        "test_security.py::test_sources_found",
        "test_security.py::test_no_forbidden_calls",
        "test_security.py::test_torch_load_only_with_weights_only",
        "test_models.py::test_trust_remote_code_only_when_params_say_so",
        "test_params.py::test_yaml_is_loaded_safely",
        "test_artifacts.py::test_runner_only_runs_notebooks_from_the_notebooks_dir",
        "test_reward.py::test_loading_refuses_anything_but_our_safetensors",
        "test_training.py::test_checkpoints_hold_no_pickles",
    ],
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    listed = {name for names in RELIABILITY_TESTS.values() for name in names}
    for item in items:
        name = getattr(item, "originalname", None)  # nbval's notebook cells have none
        if name and f"{item.path.name}::{name}" in listed:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("REPSAFE_OUTPUTS", str(tmp_path / "outputs"))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_params() -> Params:
    return load_params("params/tiny.yaml")


@pytest.fixture(scope="session")
def tiny_model(tiny_params) -> LoadedModel:
    return load_model(tiny_params.model, seed=tiny_params.seed)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """`outputs/tiny/` of one uninterrupted pipeline run from a clean outputs directory (~100 s):
    the reference that the determinism and kill-and-rerun tests compare with. Leave it unchanged."""
    outputs = tmp_path_factory.mktemp("tiny-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPSAFE_OUTPUTS", str(outputs))
        assert pipeline.main(["--params", "params/tiny.yaml"]) == 0
    return outputs / "tiny"
