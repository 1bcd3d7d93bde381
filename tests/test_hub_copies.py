"""Local copies of hub datasets ($REPSAFE_HUB_COPIES, `loaders.copies`) and the record of what a
load read (`loaders.hub.source_revision`)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest

from repsafe_lib import loaders as rd
from repsafe_lib.loaders import LOADERS, DatasetError, hub
from repsafe_lib.loaders.copies import HUB_COPIES_ENV_VAR, hub_copy, read_hub_copies
from repsafe_lib.loaders.hub import source_revision
from repsafe_lib.params import DatasetParams
from repsafe_lib.paths import bundled_data_dir

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
HUB_FOLDERS = bundled_data_dir() / "hub"

# Every loader, the hub id it reads, a split its bundled copy holds, and how many records.
CASES = [
    ("pku_saferlhf", "PKU-Alignment/PKU-SafeRLHF", "train", 36),
    ("hh_red_team", "Anthropic/hh-rlhf", "train", 16),
    ("do_not_answer", "LibrAI/do-not-answer", "train", 16),
    ("salad_base", "OpenSafetyLab/Salad-Data", "train", 16),
    ("xstest", "walledai/XSTest", "test", 20),
    ("mmlu", "cais/mmlu", "test", 12),
    ("alpaca_eval", "tatsu-lab/alpaca_eval", "eval", 10),
    ("beavertails", "PKU-Alignment/BeaverTails", "30k_test", 24),
]
# A plain file in each loader's schema (the test fixtures), mapped to instead of a folder.
FILE_OF = {
    "pku_saferlhf": "pku_saferlhf.jsonl",
    "hh_red_team": "hh_red_team.json",
    "do_not_answer": "do_not_answer.csv",
    "salad_base": "salad_base.jsonl",
    "xstest": "xstest.csv",
    "mmlu": "mmlu.jsonl",
    "alpaca_eval": "alpaca_eval.json",
    "beavertails": "beavertails.jsonl",
}


class HubCalled(AssertionError):
    pass


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The hub readers replaced by ones that record the call and fail the test's load."""
    calls: list[tuple[Any, ...]] = []

    def read_hub(*args: Any) -> None:
        calls.append(("read_hub", *args))
        raise HubCalled(f"the hub was asked for {args[0]}")

    def download(*args: Any) -> None:
        calls.append(("download", *args))
        raise HubCalled(f"the hub was asked for {args[0]}")

    monkeypatch.setattr(hub, "_read_hub", read_hub)
    monkeypatch.setattr(hub, "_download_repo_file", download)
    return calls


def write_mapping(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv(HUB_COPIES_ENV_VAR, str(path))
    return path


def load(loader: str, source: str, split: str = "train", **kwargs: Any) -> rd.LoadedDataset[Any]:
    spec = DatasetParams(loader=loader, source=source, split=split, **kwargs)
    return rd.load_configured(spec, on_bad_rows="raise", seed=0)


def test_the_cases_cover_every_loader() -> None:
    assert sorted(name for name, *_ in CASES) == sorted(LOADERS) == sorted(FILE_OF)


# ---------------------------------------------------------------------------------------------
# Mapped hub ids are read from their copies, never from the hub.


def test_every_loader_reads_a_mapped_hub_id_from_its_bundled_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_hub: list[Any]
) -> None:
    mapping = "".join(f"{hub_id}: demo:hub/{hub_id}\n" for _, hub_id, _, _ in CASES)
    write_mapping(monkeypatch, tmp_path / "copies.yaml", mapping)
    for loader, hub_id, split, n_records in CASES:
        folder = HUB_FOLDERS / hub_id
        loaded = load(loader, hub_id, split, revision="ignored-for-copies")
        direct = LOADERS[loader](folder, split=split)
        assert loaded.records == direct.records, loader
        assert len(loaded.records) == n_records, loader
        assert loaded.source.startswith(str(folder)), loader
        assert loaded.revision == source_revision(folder, None), loader
        assert loaded.revision is not None and loaded.revision.startswith("sha256:")
    assert no_hub == []


def test_every_loader_reads_a_mapped_hub_id_from_a_file_beside_the_mapping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_hub: list[Any]
) -> None:
    copies = tmp_path / "mirror"
    for name in FILE_OF.values():
        (copies / "files").mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / name, copies / "files" / name)
    mapping = "".join(f"{hub_id}: files/{FILE_OF[loader]}\n" for loader, hub_id, _, _ in CASES)
    write_mapping(monkeypatch, copies / "copies.yaml", mapping)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths resolve from the mapping file, not the cwd
    for loader, hub_id, split, _ in CASES:
        copy = copies / "files" / FILE_OF[loader]
        loaded = load(loader, hub_id, split)
        assert loaded.records == LOADERS[loader](FIXTURES / FILE_OF[loader]).records, loader
        assert loaded.source == str(copy)
        digest = hashlib.sha256(copy.read_bytes()).hexdigest()
        assert loaded.revision == f"sha256:{digest}"
    assert no_hub == []


def test_max_rows_applies_to_a_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_hub: list[Any]
) -> None:
    write_mapping(monkeypatch, tmp_path / "c.yaml", "walledai/XSTest: demo:hub/walledai/XSTest\n")
    loaded = load("xstest", "walledai/XSTest", "test", max_rows=5)
    assert (len(loaded.records), loaded.n_capped, loaded.n_rows) == (5, 15, 20)


def test_unmapped_hub_ids_still_go_to_the_hub(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_hub: list[Any]
) -> None:
    write_mapping(monkeypatch, tmp_path / "c.yaml", "walledai/XSTest: demo:hub/walledai/XSTest\n")
    with pytest.raises(HubCalled):
        load("do_not_answer", "LibrAI/do-not-answer", "train", revision="abc")
    with pytest.raises(HubCalled):
        load("alpaca_eval", "tatsu-lab/alpaca_eval", "eval")
    assert no_hub == [
        ("read_hub", "LibrAI/do-not-answer", "train", "abc", {}),
        ("download", "tatsu-lab/alpaca_eval", hub.RepoFile("alpaca_eval.json", "eval"), None),
    ]
    assert len(load("xstest", "walledai/XSTest", "test").records) == 20
    assert len(no_hub) == 2


def test_without_the_variable_every_hub_id_goes_to_the_hub(
    monkeypatch: pytest.MonkeyPatch, no_hub: list[Any]
) -> None:
    monkeypatch.delenv(HUB_COPIES_ENV_VAR, raising=False)
    assert hub_copy("walledai/XSTest") is None
    with pytest.raises(HubCalled):
        load("xstest", "walledai/XSTest", "test")
    assert [call[:2] for call in no_hub] == [("read_hub", "walledai/XSTest")]


def test_local_sources_are_read_as_they_are_with_a_mapping_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_hub: list[Any]
) -> None:
    # A mapping never redirects a source that is not a mapped hub id.
    write_mapping(monkeypatch, tmp_path / "c.yaml", "walledai/XSTest: demo:hub/walledai/XSTest\n")
    assert len(load("xstest", "demo:xstest_demo.csv").records) == 120
    assert no_hub == []


def test_read_hub_copies_resolves_paths_and_keeps_demo_sources(tmp_path: Path) -> None:
    (tmp_path / "sub" / "folder").mkdir(parents=True)
    (tmp_path / "x.csv").write_text("a\n1\n", encoding="utf-8")
    mapping = tmp_path / "sub" / "copies.yaml"
    mapping.write_text(
        "# comments are fine\n"
        "walledai/XSTest: ../x.csv\n"
        "cais/mmlu: folder\n"
        f"LibrAI/do-not-answer: {tmp_path / 'x.csv'}\n"
        "Anthropic/hh-rlhf: demo:hub/Anthropic/hh-rlhf\n",
        encoding="utf-8",
    )
    assert read_hub_copies(mapping) == {
        "walledai/XSTest": str(tmp_path / "x.csv"),
        "cais/mmlu": str(tmp_path / "sub" / "folder"),
        "LibrAI/do-not-answer": str(tmp_path / "x.csv"),
        "Anthropic/hh-rlhf": "demo:hub/Anthropic/hh-rlhf",
    }


# ---------------------------------------------------------------------------------------------
# A mapping file that can't be used is an error naming it (and the hub id).

BAD_MAPPINGS = [
    ("not valid YAML", "walledai/XSTest: [unclosed\n", None),
    ("expected a mapping", "- walledai/XSTest\n- cais/mmlu\n", None),
    ("expected a mapping", "just a string\n", None),
    ("'not-a-hub-id' is not a hub id", "not-a-hub-id: x.csv\n", None),
    ("'a/b/c' is not a hub id", "a/b/c: x.csv\n", None),
    ("12 is not a hub id", "12: x.csv\n", None),
    ("no such file or folder", "walledai/XSTest: missing/folder\n", "walledai/XSTest"),
    ("expected a file or folder path", "cais/mmlu: 3\n", "cais/mmlu"),
    ("expected a file or folder path", "cais/mmlu:\n", "cais/mmlu"),
    ("no such file or folder", "cais/mmlu: demo:hub/cais/no-such-copy\n", "cais/mmlu"),
    ("inside", "cais/mmlu: demo:../../etc\n", "cais/mmlu"),
]


@pytest.mark.parametrize(("reason", "text", "hub_id"), BAD_MAPPINGS)
def test_bad_mapping_file_names_the_file(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    no_hub: list[Any],
    reason: str,
    text: str,
    hub_id: str | None,
) -> None:
    mapping = write_mapping(monkeypatch, tmp_path / "copies.yaml", text)
    with pytest.raises(DatasetError, match=reason) as info:
        load("xstest", "walledai/XSTest", "test")
    assert str(mapping) in info.value.path and HUB_COPIES_ENV_VAR in info.value.path
    assert info.value.field == hub_id
    if hub_id is not None:
        assert repr(hub_id) in str(info.value)
    assert no_hub == []


def test_missing_mapping_file_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_hub: list[Any]
) -> None:
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv(HUB_COPIES_ENV_VAR, str(missing))
    with pytest.raises(DatasetError, match="cannot read the hub-copies file") as info:
        load("xstest", "walledai/XSTest", "test")
    assert str(missing) in info.value.path
    assert no_hub == []


# ---------------------------------------------------------------------------------------------
# source_revision: what a load read.


def test_revision_of_a_file_is_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"a": 1}\n' * 1000)
    assert source_revision(path, None) == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert source_revision(str(path), "abc") == source_revision(path, None)  # revision is ignored


def test_revision_of_a_folder_follows_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("card", encoding="utf-8")
    (folder / "data" / "train.jsonl").write_text('{"a": 1}\n', encoding="utf-8")
    first = source_revision(folder, None)
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64

    moved = tmp_path / "elsewhere"
    shutil.copytree(folder, moved)
    assert source_revision(moved, None) == first  # content, not location

    (folder / "data" / "train.jsonl").write_text('{"a": 2}\n', encoding="utf-8")
    changed = source_revision(folder, None)
    assert changed != first

    (folder / "data" / "train.jsonl").rename(folder / "data" / "test.jsonl")
    assert source_revision(folder, None) not in (first, changed)  # a renamed file counts too


def test_a_full_commit_hash_is_returned_as_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    commit = "8401fe6" + "0" * 33
    assert source_revision("PKU-Alignment/BeaverTails", commit) == commit


def test_hub_id_without_a_cache_ref_is_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert source_revision("PKU-Alignment/BeaverTails", None) == "unknown"
    assert source_revision("PKU-Alignment/BeaverTails", "v1.0") == "unknown"
    # a short hash is no full commit: looked up as a ref like any other revision
    assert source_revision("PKU-Alignment/BeaverTails", "8401fe6") == "unknown"


def test_hub_id_revision_comes_from_the_cache_ref(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    refs = tmp_path / "datasets--PKU-Alignment--BeaverTails" / "refs"
    refs.mkdir(parents=True)
    main, tagged = "a" * 40, "b" * 40
    (refs / "main").write_text(main, encoding="utf-8")  # as huggingface_hub writes it: no newline
    (refs / "v1.0").write_text(tagged + "\n", encoding="utf-8")
    assert source_revision("PKU-Alignment/BeaverTails", None) == main
    assert source_revision("PKU-Alignment/BeaverTails", "main") == main
    assert source_revision("PKU-Alignment/BeaverTails", "v1.0") == tagged
    assert source_revision("PKU-Alignment/PKU-SafeRLHF", None) == "unknown"  # another repository


def test_neither_path_nor_hub_id_is_unknown(tmp_path: Path) -> None:
    assert source_revision(tmp_path / "missing.jsonl", None) == "unknown"
    assert source_revision("not a hub id", None) == "unknown"


def test_the_params_mapping_file_wins_over_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_hub: list[Any]
) -> None:
    # The variable maps XSTest to a file that is not there to be read; the params' file (the
    # rehearsal's bundled one) maps it to the bundled folder, and that is what is read.
    write_mapping(monkeypatch, tmp_path / "copies.yaml", "cais/mmlu: demo:hub/cais/mmlu\n")
    spec = DatasetParams(loader="xstest", source="walledai/XSTest", split="test")
    loaded = rd.load_configured(
        spec, on_bad_rows="raise", seed=0, hub_copies="demo:hub-copies.yaml"
    )
    assert len(loaded.records) == 20 and no_hub == []
    assert hub_copy("walledai/XSTest", "demo:hub-copies.yaml").endswith("hub/walledai/XSTest")
    assert hub_copy("walledai/XSTest") is None  # the variable's file doesn't map it


def test_the_bundled_mapping_covers_every_hub_id_the_paper_profile_reads() -> None:
    from repsafe_lib.params import load_params

    paper = load_params("params/paper.yaml")
    sources = [s.source for s in vars(paper.data).values() if isinstance(s, DatasetParams)]
    evaluation = paper.evaluation
    sources += [evaluation.mmlu.source, evaluation.mmlu_fewshot.source]
    sources += [evaluation.instruction_prompts.source]
    copies = read_hub_copies(bundled_data_dir() / "hub-copies.yaml")
    assert set(sources) == set(copies)
    assert all(Path(copy).is_dir() for copy in copies.values())


def test_a_bad_params_mapping_file_is_named_as_the_params_key(tmp_path: Path) -> None:
    bad = tmp_path / "copies.yaml"
    bad.write_text("- not a mapping\n")
    with pytest.raises(DatasetError, match="expected a mapping") as info:
        hub_copy("cais/mmlu", str(bad))
    assert str(bad) in info.value.path and "data.hub_copies" in info.value.path
