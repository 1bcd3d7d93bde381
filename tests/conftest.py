"""Shared fixtures: CPU only, seeded, a tiny random Llama built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from repsafe_lib import pipeline
from repsafe_lib.models import LoadedModel, load_model
from repsafe_lib.params import Params, load_params

# The robustness audit, by category: every test of it is listed here (test_reliability.py holds those
# that no other file owns). Listed tests carry the `reliability` marker, so `pytest -m reliability` runs
# the audit, and the counts in docs/reliability.md are checked against this list, not written by hand.
RELIABILITY_TESTS = {
    "audit": [
        "test_reliability.py::test_audit_map_names_existing_tests",
        "test_reliability.py::test_docs_state_the_audit_counts",
    ],
    "determinism": [
        "test_pipeline.py::test_tiny_profile_runs_every_notebook_and_twice_gives_identical_artifacts",
        "test_models.py::test_tiny_model_is_seeded",
        "test_sampling.py::test_sampling_is_seeded_per_prompt_not_per_batch",
        "test_loaders.py::test_split_by_prompt_differs_across_seeds_and_is_stable_across_runs",
        "test_evaluation.py::test_bootstrap_is_seeded_and_skips_unparsed_values",
        "test_artifacts.py::test_manifest_records_the_run",
        "test_artifacts.py::test_figures_are_saved_as_png_and_pdf_identically_twice",
        "test_training.py::test_batch_schedule_is_a_seeded_permutation_per_epoch",
        "test_training.py::test_both_sides_of_a_prompt_share_a_fold_and_folds_are_seeded",
        "test_data_reliability.py::test_response_cache_is_keyed_by_prompt_text_too",
        "test_reliability.py::test_seed_everything_reseeds_python_numpy_and_torch",
        "test_reliability.py::test_every_notebook_seeds_everything_from_params_as_it_loads_them",
        "test_reliability.py::test_sklearn_estimators_get_the_seed",
        "test_reliability.py::test_every_manifest_records_the_seed_and_params_hash",
    ],
    "crash safety": [
        "test_artifacts.py::test_atomic_write_leaves_old_file_on_failure",
        "test_caching.py::test_a_damaged_stale_or_invalid_entry_is_recomputed_and_logged",
        "test_caching.py::test_a_crash_during_compute_or_save_leaves_no_entry_and_keeps_the_old_one",
        "test_caching.py::test_a_directory_entry_is_replaced_whole_and_a_killed_save_is_cleared",
        "test_caching.py::test_a_shared_directory_keeps_the_first_complete_copy",
        "test_hidden_states.py::test_corrupt_or_stale_cache_is_recomputed",
        "test_training.py::test_resume_equals_uninterrupted",
        "test_sharded_training.py::test_a_run_resumed_from_its_checkpoint_equals_the_uninterrupted_run",
        "test_sharded_training.py::test_a_reward_model_resumed_from_its_checkpoint_equals_the_uninterrupted_fit",
        "test_states_file.py::test_damaged_file_is_refused_with_the_reason",
        "test_states_file.py::test_other_layouts_are_refused",
        "test_training.py::test_a_checkpoint_from_other_settings_is_not_resumed",
        "test_reliability.py::test_killed_extraction_leaves_no_cache_a_rerun_would_trust",
        "test_reliability.py::test_killed_training_resumes_to_the_uninterrupted_result",
        "test_reliability.py::test_pipeline_killed_in_notebook_01_leaves_whole_files_and_a_rerun_matches",
        "test_locks.py::test_a_notebook_another_process_is_running_is_refused_naming_the_holder",
        "test_locks.py::test_a_rerun_in_the_same_process_takes_the_lock_again_and_finish_gives_it_back",
        "test_locks.py::test_a_second_pipeline_on_the_profile_stops_at_once_naming_the_holder",
        "test_training.py::test_a_metrics_line_cut_off_by_a_kill_is_dropped_on_resume",
        "test_training.py::test_a_metrics_log_that_disagrees_with_the_checkpoint_names_file_and_line",
        "test_training.py::test_ctrl_c_keeps_the_newest_checkpoint_and_says_how_to_resume",
        "test_messages.py::test_corrupt_run_times_warn_and_start_a_fresh_record",
        "test_messages.py::test_disk_full_names_the_file_and_keeps_the_earlier_one",
        "test_messages.py::test_disk_full_in_the_pipeline_is_one_line_naming_the_file",
        "test_messages.py::test_ctrl_c_in_a_notebook_is_one_line_with_the_command_that_resumes",
        "test_messages.py::test_sigint_stops_the_pipeline_with_one_line_and_shuts_its_kernel_down",
        "test_data_reliability.py::test_bad_input_stops_notebook_00_before_it_writes_any_file",
        "test_data_reliability.py::test_an_unreadable_response_cache_is_generated_again",
    ],
    "bad input": [
        "test_loaders.py::test_pku_bad_row_names_file_row_and_field",
        "test_loaders.py::test_csv_boolean_cells",
        "test_loaders.py::test_eval_bad_row_names_row_and_field",
        "test_loaders.py::test_jsonl_rows_count_data_rows_and_errors_give_the_line",
        "test_loaders.py::test_non_object_json_row_is_a_bad_row",
        "test_loaders.py::test_csv_row_with_too_many_fields",
        "test_loaders.py::test_empty_file",
        "test_loaders.py::test_csv_with_header_only_is_empty",
        "test_loaders.py::test_truncated_json_line_names_the_line",
        "test_loaders.py::test_truncated_json_array_names_the_line",
        "test_loaders.py::test_non_utf8_bytes_name_line_and_offset",
        "test_loaders.py::test_missing_column_is_one_error_naming_it",
        "test_loaders.py::test_field_missing_from_every_json_row_is_a_column_error",
        "test_loaders.py::test_unreadable_files",
        "test_loaders.py::test_neither_file_nor_hub_id",
        "test_loaders.py::test_directory_without_data_is_a_clear_error",
        "test_loaders.py::test_bad_on_bad_rows_value",
        "test_loaders.py::test_skip_mode_with_every_row_bad_still_raises",
        "test_loaders.py::test_raise_mode_stops_at_first_bad_row",
        "test_loaders.py::test_hub_missing_column",
        "test_loaders.py::test_property_valid_pku_rows_round_trip_through_jsonl",
        "test_loaders.py::test_property_junk_raises_dataset_error_only",
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
        "test_reliability.py::test_file_cut_off_mid_line_is_an_error_even_when_skipping_bad_rows",
        "test_reliability.py::test_ten_thousand_character_response_loads_whole_and_extraction_keeps_its_end",
        "test_reliability.py::test_missing_local_model_directory_is_named",
        "test_reliability.py::test_hub_ids_still_go_to_the_hub",
        "test_reliability.py::test_property_any_unknown_key_is_an_error_naming_it",
        "test_reliability.py::test_missing_upstream_through_the_pipeline_is_one_line_naming_the_notebook",
        "test_reliability.py::test_bad_data_row_stops_notebook_00_and_leaves_the_earlier_run_intact",
        "test_reliability.py::test_unwritable_outputs_stop_the_run_with_one_message",
        "test_data_reliability.py::test_xstest_id_shared_by_two_rows_is_an_error_naming_both_rows_and_the_field",
        "test_data_reliability.py::test_every_loader_with_source_ids_rejects_a_repeated_id",
        "test_data_reliability.py::test_skip_mode_skips_every_row_of_a_shared_id_and_counts_them",
        "test_data_reliability.py::test_unclosed_csv_quote_is_an_error_naming_the_line_where_it_opened",
        "test_data_reliability.py::test_unclosed_quote_after_a_multiline_cell_names_the_line_of_its_own_quote",
        "test_data_reliability.py::test_lone_surrogate_in_a_text_field_is_a_bad_row",
        "test_data_reliability.py::test_damaged_lines_stop_skip_mode_too_and_the_message_says_so",
        "test_data_reliability.py::test_zero_usable_pairs_is_an_error_naming_the_file_and_the_filter",
        "test_data_reliability.py::test_a_cap_that_leaves_one_prompt_is_an_error_naming_the_cap_and_the_split",
        "test_data_reliability.py::test_pairs_of_one_prompt_leave_a_side_of_the_split_empty",
        "test_params.py::test_a_key_set_twice_names_the_file_the_lines_and_the_key",
        "test_params.py::test_a_float_field_reads_scientific_notation_without_a_dot",
        "test_params.py::test_with_extends_an_error_names_the_file_that_sets_the_key",
        "test_messages.py::test_cut_off_records_file_names_the_line_and_the_notebook_to_rerun",
        "test_messages.py::test_record_with_a_wrong_field_names_the_line_and_the_field",
        "test_messages.py::test_cut_off_json_artifact_names_it_and_the_notebook_to_rerun",
        "test_messages.py::test_corrupt_probes_file_names_it_and_notebook_02",
        "test_messages.py::test_cut_off_hybrid_reward_names_it_and_the_notebook_that_wrote_it",
        "test_messages.py::test_corrupt_manifest_and_run_times_show_as_unreadable_in_the_report",
        "test_messages.py::test_report_names_a_file_standing_where_the_profile_directory_should_be",
        "test_messages.py::test_only_without_names_is_an_error_not_everything",
        "test_messages.py::test_a_notebook_named_twice_runs_once_in_run_order",
        "test_messages.py::test_unknown_notebook_in_only_is_named_before_anything_runs",
    ],
    "numerics": [
        "test_losses.py::test_extreme_margins_stay_finite",
        "test_losses.py::test_dpo_and_cdpo_stay_finite_with_finite_gradients_for_extreme_margins",
        "test_training.py::test_nan_loss_stops_at_the_step_and_keeps_the_last_good_checkpoint",
        "test_reliability.py::test_property_loss_gamma_and_gradient_stay_finite",
        "test_messages.py::test_states_beyond_float16_are_refused_before_caching",
        "test_messages.py::test_extraction_refuses_a_state_float16_cannot_hold_naming_its_text",
    ],
    "security": [
        "test_security.py::test_sources_found",
        "test_security.py::test_no_forbidden_calls",
        "test_security.py::test_torch_load_only_with_weights_only",
        "test_models.py::test_trust_remote_code_only_when_params_say_so",
        "test_params.py::test_yaml_is_loaded_safely",
        "test_artifacts.py::test_runner_only_runs_notebooks_from_the_notebooks_dir",
        "test_hybrid_reward.py::test_loading_refuses_anything_but_our_safetensors",
        "test_training.py::test_checkpoints_hold_no_pickles",
        "test_models.py::test_saved_policy_naming_custom_code_is_refused_without_a_prompt",
        "test_models.py::test_saved_reward_model_naming_custom_code_is_refused",
        "test_models.py::test_every_from_pretrained_says_whether_to_trust_remote_code",
        "test_params.py::test_an_alias_bomb_is_refused_before_it_is_expanded",
        "test_params.py::test_an_error_quotes_a_short_prefix_of_a_huge_value",
        "test_params.py::test_a_file_too_big_or_too_deep_is_one_short_error",
        "test_params.py::test_a_yaml_alias_inside_the_value_it_names_is_refused",
        "test_data_reliability.py::test_demo_source_outside_the_bundled_data_is_an_error_naming_it",
    ],
}


RELIABILITY_TESTS_LISTED = {name for names in RELIABILITY_TESTS.values() for name in names}

# `make test` spreads the tests over one worker per core (pytest-xdist). A pipeline run that several
# tests read is made once for all workers: the first worker to need it runs it under a file lock in
# the session's shared temporary directory, the others wait for it and read it (`shared_run`). Each
# worker gets its share of the cores, and so do the notebook kernels its pipelines start (they
# inherit OMP_NUM_THREADS).
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    THREADS = max(1, (os.cpu_count() or 1) // WORKERS)
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    torch.set_num_threads(THREADS)


def pytest_itemcollected(item):
    """The audit's marker goes on as each test is collected, before `-m` deselects by it."""
    name = getattr(item, "originalname", None)  # nbval's notebook cells have none
    if name and f"{item.path.name}::{name}" in RELIABILITY_TESTS_LISTED:
        item.add_marker(pytest.mark.reliability)


def pytest_collection_modifyitems(items):
    """Under `--dist worksteal` each worker starts on one contiguous half of this list, so the two
    longest chains lead the halves: the determinism test (the tiny run, then its rerun) the first,
    the rehearsal's tests the second. The order changes nothing else."""
    determinism = [i for i in items if i.name.startswith("test_tiny_profile_runs_every_notebook")]
    rehearsal = [i for i in items if "rehearsal_run" in getattr(i, "fixturenames", ())]
    rest = [i for i in items if i not in determinism and i not in rehearsal]
    half = max(0, len(items) // 2 - len(determinism))
    items[:] = determinism + rest[:half] + rehearsal + rest[half:]


def shared_run(tmp_path_factory, profile: str) -> Path:
    """`outputs/<profile>/` of one uninterrupted pipeline run of params/<profile>.yaml from a clean
    outputs directory, made once per test session however many workers read it."""
    session_root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        session_root = session_root.parent  # shared by the workers of this session
    outputs, done = session_root / f"{profile}-run", session_root / f"{profile}-run.done"
    with FileLock(session_root / f"{profile}-run.lock"):
        if not done.exists():
            shutil.rmtree(outputs, ignore_errors=True)  # what a failed attempt left
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("REPSAFE_OUTPUTS", str(outputs))
                assert pipeline.main(["--params", f"params/{profile}.yaml"]) == 0
            done.touch()
    return outputs / profile


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
    """`outputs/tiny/` of one uninterrupted pipeline run from a clean outputs directory (~2 min):
    the reference that the determinism and kill-and-rerun tests compare with. Leave it unchanged."""
    return shared_run(tmp_path_factory, "tiny")
