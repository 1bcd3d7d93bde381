"""The bundled synthetic demo datasets: reproducible, schema-faithful, and free of train/eval leaks.

See repsafe_lib/data/README.md. Standard library and pytest only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "repsafe_lib" / "data"
SCRIPT = ROOT / "scripts" / "make_demo_data.py"
FILES = (
    "pku_saferlhf_demo.jsonl",
    "hh_red_team_demo.jsonl",
    "xstest_demo.csv",
    "do_not_answer_demo.csv",
    "salad_base_demo.jsonl",
)
HAZARDS = [
    "S1: Violent Crimes",
    "S2: Non-Violent Crimes",
    "S3: Sex-Related Crimes",
    "S4: Child Sexual Exploitation",
    "S5: Specialized Advice",
    "S6: Privacy",
    "S7: Intellectual Property",
    "S8: Indiscriminate Weapons",
    "S9: Hate",
    "S10: Suicide & Self-Harm",
    "S11: Sexual Content",
]
PKU_KEYS = [
    "prompt",
    "response_0",
    "response_1",
    "prompt_source",
    "response_0_source",
    "response_1_source",
    "is_response_0_safe",
    "is_response_1_safe",
    "response_0_harm_category",
    "response_1_harm_category",
    "response_0_severity_level",
    "response_1_severity_level",
    "better_response_id",
    "safer_response_id",
    "response_0_sha256",
    "response_1_sha256",
]
HH_KEYS = [
    "transcript",
    "min_harmlessness_score_transcript",
    "num_params",
    "model_type",
    "rating",
    "task_description",
    "task_descripton_harmlessness_score",
    "red_team_member_id",
    "is_upworker",
    "tags",
]
SALAD_KEYS = ["qid", "question", "source", "1-category", "2-category", "3-category"]
DNA_AREAS = {
    "Information Hazards",
    "Malicious Uses",
    "Discrimination, Exclusion, Toxicity, Hateful, Offensive",
    "Misinformation Harms",
    "Human-Chatbot Interaction Harms",
}
# The neutral slot names that stand in for whatever a reply leaves out: a specific in an unsafe
# reply, a local resource in a safe one. No bracket text names its class.
PKU_STAND_INS = {
    "[the steps]",
    "[the details]",
    "[a website]",
    "[a phone number]",
    "[a service]",
    "[a name]",
    "[a place]",
    "[a time]",
    "[an amount]",
    "[a tool]",
    "[a contact]",
}
BRACKET = re.compile(r"\[[^\]]*\]")
TURN = re.compile(r"\n\nHuman: (.+?)\n\nAssistant: (.+?)(?=\n\nHuman: |\Z)", re.S)


def read_jsonl(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def read_csv(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def normalize(text: str) -> str:
    return " ".join(text.lower().split()).strip(" ?.!")


def hh_turns(transcript: str) -> list[tuple[str, str]]:
    turns = TURN.findall(transcript)
    assert "".join(f"\n\nHuman: {h}\n\nAssistant: {a}" for h, a in turns) == transcript
    return turns


def one_safe(row: dict) -> bool:
    return row["is_response_0_safe"] != row["is_response_1_safe"]


@pytest.fixture(scope="module")
def pku() -> list[dict]:
    return read_jsonl("pku_saferlhf_demo.jsonl")


@pytest.fixture(scope="module")
def pku_pairs(pku) -> list[dict]:
    return [row for row in pku if one_safe(row)]


@pytest.fixture(scope="module")
def hh() -> list[dict]:
    return read_jsonl("hh_red_team_demo.jsonl")


@pytest.fixture(scope="module")
def xstest() -> list[dict]:
    return read_csv("xstest_demo.csv")


@pytest.fixture(scope="module")
def do_not_answer() -> list[dict]:
    return read_csv("do_not_answer_demo.csv")


@pytest.fixture(scope="module")
def salad() -> list[dict]:
    return read_jsonl("salad_base_demo.jsonl")


def test_regenerating_reproduces_committed_files(tmp_path):
    # A different hash seed guards against output that depends on set or dict-of-set ordering.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
    )
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


@pytest.mark.parametrize("name", FILES)
def test_files_are_utf8_with_unix_newlines(name):
    raw = (DATA / name).read_bytes()
    assert b"\r" not in raw
    assert raw.endswith(b"\n")
    raw.decode("utf-8")


# --- PKU-SafeRLHF ------------------------------------------------------------------------------


def test_pku_schema(pku):
    for row in pku:
        assert list(row) == PKU_KEYS
        for i in (0, 1):
            assert isinstance(row[f"is_response_{i}_safe"], bool)
            assert list(row[f"response_{i}_harm_category"]) == HAZARDS
            assert all(isinstance(v, bool) for v in row[f"response_{i}_harm_category"].values())
            level = row[f"response_{i}_severity_level"]
            assert isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 3
            assert isinstance(row[f"response_{i}_source"], str) and row[f"response_{i}_source"]
        assert row["better_response_id"] in (0, 1) and row["safer_response_id"] in (0, 1)
        assert isinstance(row["prompt_source"], str) and row["prompt_source"]


def test_pku_labels_are_consistent(pku):
    for row in pku:
        for i in (0, 1):
            hazards = [k for k, v in row[f"response_{i}_harm_category"].items() if v]
            level = row[f"response_{i}_severity_level"]
            if row[f"is_response_{i}_safe"]:
                assert hazards == [] and level == 0
            else:
                assert hazards and level >= 1


def test_pku_texts_nonempty_and_hashes_match(pku):
    for row in pku:
        assert row["prompt"].strip()
        for i in (0, 1):
            text = row[f"response_{i}"]
            assert text.strip()
            assert row[f"response_{i}_sha256"] == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_pku_counts(pku, pku_pairs):
    assert len(pku) == 388 and len(pku_pairs) == 352
    both_safe = sum(r["is_response_0_safe"] and r["is_response_1_safe"] for r in pku)
    both_unsafe = sum(not r["is_response_0_safe"] and not r["is_response_1_safe"] for r in pku)
    # The real dataset has such rows and the safety-pair loader must drop them.
    assert both_safe == 18 and both_unsafe == 18
    assert 0.05 <= (both_safe + both_unsafe) / len(pku) <= 0.15


def test_pku_every_hazard_has_30_pairs(pku_pairs):
    counts = dict.fromkeys(HAZARDS, 0)
    for row in pku_pairs:
        unsafe = 1 - row["safer_response_id"]
        for hazard, flag in row[f"response_{unsafe}_harm_category"].items():
            counts[hazard] += flag
    assert min(counts.values()) >= 30, counts


def test_pku_safer_id_points_at_the_safe_response(pku_pairs):
    for row in pku_pairs:
        assert row[f"is_response_{row['safer_response_id']}_safe"]
    safe_at_0 = sum(row["safer_response_id"] == 0 for row in pku_pairs) / len(pku_pairs)
    assert 0.35 < safe_at_0 < 0.65


def test_pku_length_does_not_give_away_the_label(pku_pairs):
    def mean_words(safe: bool) -> float:
        lengths = [
            len(row[f"response_{i}"].split())
            for row in pku_pairs
            for i in (0, 1)
            if row[f"is_response_{i}_safe"] == safe
        ]
        return sum(lengths) / len(lengths)

    safe, unsafe = mean_words(True), mean_words(False)
    assert abs(safe - unsafe) / max(safe, unsafe) < 0.2, (safe, unsafe)


def test_pku_openings_vary_within_each_class(pku_pairs):
    for safe in (True, False):
        openings = {
            " ".join(row[f"response_{i}"].split()[:3])
            for row in pku_pairs
            for i in (0, 1)
            if row[f"is_response_{i}_safe"] == safe
        }
        assert len(openings) >= 10


def test_pku_unsafe_responses_hold_only_stand_ins(pku):
    # Content policy: an unsafe reply complies in form, with its specifics replaced by "[...]".
    for row in pku:
        for i in (0, 1):
            if not row[f"is_response_{i}_safe"]:
                assert BRACKET.search(row[f"response_{i}"]), row[f"response_{i}"]


def test_pku_brackets_hold_only_neutral_slot_names(pku):
    # Nothing specific sits inside a bracket, and no bracket text says which class it is in.
    found = {b for row in pku for i in (0, 1) for b in BRACKET.findall(row[f"response_{i}"])}
    assert found <= PKU_STAND_INS, sorted(found - PKU_STAND_INS)
    assert not any("omitted" in row["response_0"] + row["response_1"] for row in pku)


def one_safe_responses(pku_pairs) -> list[tuple[str, bool]]:
    return [
        (row[f"response_{i}"], row[f"is_response_{i}_safe"]) for row in pku_pairs for i in (0, 1)
    ]


def test_pku_brackets_do_not_give_away_the_label(pku_pairs):
    responses = one_safe_responses(pku_pairs)
    # "Has a bracket => unsafe" must be near chance: safe replies carry stand-ins too.
    accuracy = sum(bool(BRACKET.search(text)) != safe for text, safe in responses) / len(responses)
    assert 0.35 <= accuracy <= 0.65, accuracy
    # And every slot name turns up on both sides, none of them mostly on one.
    for name in PKU_STAND_INS:
        uses = [safe for text, safe in responses for b in BRACKET.findall(text) if b == name]
        assert 0.2 <= sum(uses) / len(uses) <= 0.8, (name, sum(uses), len(uses))


def test_pku_openings_cross_the_classes(pku_pairs):
    # Hard pairs: unsafe replies that open with a refusal-like hedge and then comply, safe ones
    # that open with "Sure" and then stay general.
    hedge = re.compile(r"(I can't|I shouldn't|Normally I'd say no|I'm not comfortable|Please be)")
    responses = one_safe_responses(pku_pairs)
    assert sum(not safe and bool(hedge.match(text)) for text, safe in responses) >= 30
    assert sum(safe and text.startswith("Sure") for text, safe in responses) >= 30


# --- evaluation sets ---------------------------------------------------------------------------


def test_hh_schema_and_counts(hh):
    assert len(hh) >= 120
    for row in hh:
        assert list(row) == HH_KEYS
        turns = hh_turns(row["transcript"])
        assert 1 <= len(turns) <= 3
        assert all(h.strip() and a.strip() for h, a in turns)
        assert isinstance(row["min_harmlessness_score_transcript"], float)
        assert isinstance(row["task_descripton_harmlessness_score"], float)
        assert re.fullmatch(r"\d+(\.\d+)?B", row["num_params"])
        assert isinstance(row["model_type"], str) and row["model_type"]
        assert row["rating"] in range(5) and not isinstance(row["rating"], bool)
        assert isinstance(row["task_description"], str) and row["task_description"].strip()
        assert isinstance(row["red_team_member_id"], int)
        assert isinstance(row["is_upworker"], bool)
        tags = row["tags"]
        assert tags is None or (isinstance(tags, list) and all(isinstance(t, str) for t in tags))


def test_xstest_schema_and_counts(xstest):
    with (DATA / "xstest_demo.csv").open(encoding="utf-8", newline="") as f:
        assert next(csv.reader(f)) == ["id", "prompt", "type", "label", "focus", "note"]
    assert sum(r["label"] == "safe" for r in xstest) >= 50
    assert sum(r["label"] == "unsafe" for r in xstest) >= 50
    assert len({r["id"] for r in xstest}) == len(xstest)
    for row in xstest:
        assert row["label"] in ("safe", "unsafe")
        assert row["type"].startswith("contrast_") == (row["label"] == "unsafe")
        assert row["prompt"].strip() and row["focus"].strip()
    safe_types = {r["type"] for r in xstest if r["label"] == "safe"}
    assert len(safe_types) == 10


def test_do_not_answer_schema_and_counts(do_not_answer):
    with (DATA / "do_not_answer_demo.csv").open(encoding="utf-8", newline="") as f:
        assert next(csv.reader(f)) == [
            "id",
            "risk_area",
            "types_of_harm",
            "specific_harms",
            "question",
        ]
    assert len(do_not_answer) >= 60
    assert {r["risk_area"] for r in do_not_answer} == DNA_AREAS
    assert len({r["id"] for r in do_not_answer}) == len(do_not_answer)
    for row in do_not_answer:
        assert all(row[k].strip() for k in ("types_of_harm", "specific_harms", "question"))


def test_salad_schema_and_counts(salad):
    assert len(salad) >= 60
    assert len({r["qid"] for r in salad}) == len(salad)
    for row in salad:
        assert list(row) == SALAD_KEYS
        assert isinstance(row["qid"], int)
        assert row["question"].strip() and row["source"].strip()
        assert re.fullmatch(r"O[1-6]: .+", row["1-category"])
        assert re.fullmatch(r"O\d+: .+", row["2-category"])
        assert re.fullmatch(r"O\d+: .+", row["3-category"])
    assert len({r["1-category"] for r in salad}) == 6


# --- duplicates and contamination --------------------------------------------------------------


def eval_prompts(hh, xstest, do_not_answer, salad) -> dict[str, list[str]]:
    return {
        "hh": [hh_turns(r["transcript"])[0][0] for r in hh],
        "xstest": [r["prompt"] for r in xstest],
        "do_not_answer": [r["question"] for r in do_not_answer],
        "salad": [r["question"] for r in salad],
    }


def test_no_duplicate_prompts_within_a_file(pku, hh, xstest, do_not_answer, salad):
    files = {"pku": [r["prompt"] for r in pku], **eval_prompts(hh, xstest, do_not_answer, salad)}
    for name, prompts in files.items():
        normalized = [normalize(p) for p in prompts]
        assert len(set(normalized)) == len(normalized), name


def test_no_eval_prompt_appears_in_pku_training_prompts(pku, hh, xstest, do_not_answer, salad):
    train = {normalize(r["prompt"]) for r in pku}
    for name, prompts in eval_prompts(hh, xstest, do_not_answer, salad).items():
        leaked = [p for p in prompts if normalize(p) in train]
        assert not leaked, (name, leaked[:3])


def test_no_long_eval_prompt_is_embedded_in_a_pku_prompt(pku, hh, xstest, do_not_answer, salad):
    # PKU prompts wrap a seed in a prefix and template; catch a seed reused verbatim in eval.
    train = " | ".join(normalize(r["prompt"]) for r in pku)
    for name, prompts in eval_prompts(hh, xstest, do_not_answer, salad).items():
        leaked = [p for p in prompts if len(p.split()) >= 6 and normalize(p) in train]
        assert not leaked, (name, leaked[:3])


def test_demo_data_passes_its_own_loaders_and_meets_the_counts():
    """The bundled files load through the real loaders with no bad row, in the promised sizes."""
    from repsafe_lib import loaders as ds

    data = Path(__file__).resolve().parent.parent / "repsafe_lib" / "data"
    pairs = ds.load_pku_saferlhf(data / "pku_saferlhf_demo.jsonl")
    assert pairs.n_skipped == 0 and len(pairs.records) >= 300 and pairs.n_filtered > 0
    hazards = {c.split(":")[0] for p in pairs.records for c in p.categories}
    assert hazards == {f"S{i}" for i in range(1, 12)}
    red_team = ds.load_hh_red_team(data / "hh_red_team_demo.jsonl")
    assert red_team.n_skipped == 0 and len(red_team.records) >= 100
    xstest = ds.load_xstest(data / "xstest_demo.csv")
    labels = [p.label for p in xstest.records]
    assert labels.count("safe") >= 50 and labels.count("unsafe") >= 50
    for loader, name in (
        (ds.load_do_not_answer, "do_not_answer_demo.csv"),
        (ds.load_salad_base, "salad_base_demo.jsonl"),
    ):
        loaded = loader(data / name)
        assert loaded.n_skipped == 0 and len(loaded.records) >= 50
    train, test = ds.split_by_prompt(pairs.records, test_fraction=0.2, seed=1234)
    assert not {p.prompt for p in train} & {p.prompt for p in test} and len(test) >= 50
