"""Write local copies of the paper's hub datasets, in each repository's published layout.

``repsafe_lib/data/hub/<owner>/<name>/`` gets, for each dataset the paper profile reads from the
Hugging Face hub, a small folder laid out like that hub repository: the same data file paths and
formats (JSON lines, JSON arrays, gzip, parquet), the same column names and types, and the dataset
card's README.md front matter (`configs:`, `dataset_info:`) where the repository has one. The loaders
read such a folder with `datasets.load_dataset(<folder>, **the hub kwargs)`, the code path the hub
ids take, so the rehearsal profile exercises the hub branch offline. What was looked up for each
repository, and where, is in ``repsafe_lib/data/hub/README.md``.

No row of any real dataset is copied: every text comes from the project's own synthetic demo files
(``repsafe_lib/data/*demo*``, written by ``scripts/make_demo_data.py``) or is written here.

Deterministic (fixed seed, no clock, no network): running it twice gives the same files; parquet
bytes depend on the installed pyarrow version only through its ``created_by`` metadata.

    python scripts/make_hub_fixtures.py            # writes repsafe_lib/data/hub/
    python scripts/make_hub_fixtures.py --out DIR  # writes DIR/
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

SEED = 20261201
DATA = Path(__file__).resolve().parents[1] / "repsafe_lib" / "data"
DEFAULT_OUT = DATA / "hub"

# PKU-SafeRLHF's 19 harm categories (the keys of `response_{0,1}_harm_category`).
PKU_CATEGORIES = (
    "Animal Abuse",
    "Copyright Issues",
    "Cybercrime",
    "Discriminatory Behavior",
    "Disrupting Public Order",
    "Drugs",
    "Economic Crime",
    "Endangering National Security",
    "Endangering Public Health",
    "Environmental Damage",
    "Human Trafficking",
    "Insulting Behavior",
    "Mental Manipulation",
    "Physical Harm",
    "Privacy Violation",
    "Psychological Harm",
    "Sexual Content",
    "Violence",
    "White-Collar Crime",
)
# The demo file tags unsafe responses with MLCommons hazards; each maps to one PKU category.
HAZARD_TO_PKU = {
    "S1: Violent Crimes": "Violence",
    "S2: Non-Violent Crimes": "White-Collar Crime",
    "S3: Sex-Related Crimes": "Sexual Content",
    "S4: Child Sexual Exploitation": "Human Trafficking",
    "S5: Specialized Advice": "Endangering Public Health",
    "S6: Privacy": "Privacy Violation",
    "S7: Intellectual Property": "Copyright Issues",
    "S8: Indiscriminate Weapons": "Endangering National Security",
    "S9: Hate": "Discriminatory Behavior",
    "S10: Suicide & Self-Harm": "Physical Harm",
    "S11: Sexual Content": "Sexual Content",
}
PKU_MODELS = ("Alpaca-7B", "Alpaca2-7B", "Alpaca3-8B")
PKU_TRAIN_PAIRS_PER_MODEL = 12  # exactly one safe response: 36 pairs in the train split
PKU_TRAIN_SAME_PER_MODEL = 2  # both safe or both unsafe: the loader filters them (6 rows)
PKU_TEST_ROWS_PER_MODEL = 3

HH_RED_TEAM_ROWS = 16
DNA_ROWS = 16
SALAD_ROWS = 16
XSTEST_ROWS_PER_LABEL = 10
DNA_MODELS = ("GPT4", "ChatGPT", "Claude", "ChatGLM2", "llama2-7b-chat", "vicuna-7b")
DNA_PARQUET = "data/train-00000-of-00001-6ba0076b818accff.parquet"
MMLU_SUBJECTS = ("elementary_mathematics", "high_school_mathematics")
MMLU_SPLIT_SIZES = {"test": 6, "validation": 2, "dev": 5}  # per subject; dev = the 5 shots

# BeaverTails' 14 harm categories (the keys of `category`); the key order of the real rows was
# not confirmed, so they are in alphabetical order here.
BEAVERTAILS_CATEGORIES = (
    "animal_abuse",
    "child_abuse",
    "controversial_topics,politics",
    "discrimination,stereotype,injustice",
    "drug_abuse,weapons,banned_substance",
    "financial_crime,property_crime,theft",
    "hate_speech,offensive_language",
    "misinformation_regarding_ethics,laws_and_safety",
    "non_violent_unethical_behavior",
    "privacy_violation",
    "self_harm",
    "sexually_explicit,adult_content",
    "terrorism,organized_crime",
    "violence,aiding_and_abetting,incitement",
)
# The demo file's MLCommons hazards, each mapped to one BeaverTails category.
HAZARD_TO_BEAVERTAILS = {
    "S1: Violent Crimes": "violence,aiding_and_abetting,incitement",
    "S2: Non-Violent Crimes": "financial_crime,property_crime,theft",
    "S3: Sex-Related Crimes": "sexually_explicit,adult_content",
    "S4: Child Sexual Exploitation": "child_abuse",
    "S5: Specialized Advice": "misinformation_regarding_ethics,laws_and_safety",
    "S6: Privacy": "privacy_violation",
    "S7: Intellectual Property": "non_violent_unethical_behavior",
    "S8: Indiscriminate Weapons": "drug_abuse,weapons,banned_substance",
    "S9: Hate": "hate_speech,offensive_language",
    "S10: Suicide & Self-Harm": "self_harm",
    "S11: Sexual Content": "sexually_explicit,adult_content",
}
# 30k_test: 20 prompts, the first 4 with both of their demo responses (BeaverTails has several
# answers to many prompts), so 24 rows; 30k_train: 4 more prompts, one response each.
BEAVERTAILS_TEST_PROMPTS = 20
BEAVERTAILS_TEST_TWO_RESPONSES = 4
BEAVERTAILS_TRAIN_PROMPTS = 4

ALPACA_EVAL_INSTRUCTIONS = (
    ("Give three tips for keeping a houseplant alive through the winter.", "helpful_base"),
    ("Explain the difference between weather and climate in two sentences.", "selfinstruct"),
    ("Write a haiku about a quiet library.", "vicuna"),
    ("Suggest a name for a bakery that only sells bread made with rye.", "oasst"),
    ("How do I convert a temperature from Celsius to Fahrenheit?", "helpful_base"),
    ("List four things to pack for a one-day hike.", "koala"),
    ("Summarise the plot of Cinderella in one sentence.", "selfinstruct"),
    ("What is a good way to start learning to play the guitar?", "oasst"),
    ("Rewrite this sentence more formally: the meeting got moved to later.", "selfinstruct"),
    ("Explain what a prime number is to a ten-year-old.", "vicuna"),
)


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


def _json_lines(rows: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def _json_array(rows: Sequence[dict[str, Any]]) -> bytes:
    return (json.dumps(list(rows), ensure_ascii=False, indent=4) + "\n").encode()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)  # mtime=0: the same bytes on every run


def _parquet(rows: Sequence[dict[str, Any]], schema: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), sink)
    return sink.getvalue().to_pybytes()


def _card(front_matter: str, title: str) -> bytes:
    body = (
        f"# {title} (local copy for the rehearsal profile)\n\n"
        "Synthetic rows in the published layout of this hub repository; the front matter above\n"
        "follows the repository's dataset card. See ../../README.md for what was looked up.\n"
    )
    return f"---\n{front_matter.strip()}\n---\n\n{body}".encode()


def _read_jsonl(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _read_csv(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------------------------
# One function per repository: {relative path: bytes}
# --------------------------------------------------------------------------------------------


def _pku_categories(demo: dict[str, bool]) -> dict[str, bool]:
    marked = {HAZARD_TO_PKU[hazard] for hazard, flag in demo.items() if flag}
    return {category: category in marked for category in PKU_CATEGORIES}


def _pku_row(demo: dict[str, Any], model: str) -> dict[str, Any]:
    row = {
        "prompt": demo["prompt"],
        "response_0": demo["response_0"],
        "response_1": demo["response_1"],
        "prompt_source": demo["prompt_source"],
        "response_0_source": model,
        "response_1_source": model,
        "is_response_0_safe": demo["is_response_0_safe"],
        "is_response_1_safe": demo["is_response_1_safe"],
        "response_0_harm_category": _pku_categories(demo["response_0_harm_category"]),
        "response_1_harm_category": _pku_categories(demo["response_1_harm_category"]),
        "response_0_severity_level": demo["response_0_severity_level"],
        "response_1_severity_level": demo["response_1_severity_level"],
        "better_response_id": demo["better_response_id"],
        "safer_response_id": demo["safer_response_id"],
    }
    for i in (0, 1):
        row[f"response_{i}_sha256"] = hashlib.sha256(row[f"response_{i}"].encode()).hexdigest()
    return row


PKU_CARD = """
configs:
- config_name: default
  data_files:
    - split: train
      path:
        - "data/Alpaca-7B/train.jsonl"
        - "data/Alpaca2-7B/train.jsonl"
        - "data/Alpaca3-8B/train.jsonl"
    - split: test
      path:
        - "data/Alpaca-7B/test.jsonl"
        - "data/Alpaca2-7B/test.jsonl"
        - "data/Alpaca3-8B/test.jsonl"
- config_name: alpaca-7b
  data_files:
    - split: train
      path:
        - "data/Alpaca-7B/train.jsonl"
    - split: test
      path:
        - "data/Alpaca-7B/test.jsonl"
- config_name: alpaca2-7b
  data_files:
    - split: train
      path:
        - "data/Alpaca2-7B/train.jsonl"
    - split: test
      path:
        - "data/Alpaca2-7B/test.jsonl"
- config_name: alpaca3-8b
  data_files:
    - split: train
      path:
        - "data/Alpaca3-8B/train.jsonl"
    - split: test
      path:
        - "data/Alpaca3-8B/test.jsonl"
license: cc-by-nc-4.0
task_categories:
- text-generation
language:
- en
"""


def pku_saferlhf(rng: random.Random) -> dict[str, bytes]:
    demo = _read_jsonl("pku_saferlhf_demo.jsonl")
    one_safe = [r for r in demo if r["is_response_0_safe"] != r["is_response_1_safe"]]
    same = [r for r in demo if r["is_response_0_safe"] == r["is_response_1_safe"]]
    n_pairs = len(PKU_MODELS) * (PKU_TRAIN_PAIRS_PER_MODEL + PKU_TEST_ROWS_PER_MODEL)
    pairs = rng.sample(one_safe, n_pairs)
    sames = rng.sample(same, len(PKU_MODELS) * PKU_TRAIN_SAME_PER_MODEL)
    files = {"README.md": _card(PKU_CARD, "PKU-SafeRLHF")}
    for m, model in enumerate(PKU_MODELS):
        block = pairs[m * (n_pairs // len(PKU_MODELS)) : (m + 1) * (n_pairs // len(PKU_MODELS))]
        train = block[:PKU_TRAIN_PAIRS_PER_MODEL]
        train += sames[m * PKU_TRAIN_SAME_PER_MODEL : (m + 1) * PKU_TRAIN_SAME_PER_MODEL]
        rng.shuffle(train)
        test = block[PKU_TRAIN_PAIRS_PER_MODEL:]
        files[f"data/{model}/train.jsonl"] = _json_lines(_pku_row(r, model) for r in train)
        files[f"data/{model}/test.jsonl"] = _json_lines(_pku_row(r, model) for r in test)
    return files


HH_CARD = """
license: mit
tags:
- human-feedback
"""
HH_PREFERENCE_DIRS = (
    "harmless-base",
    "helpful-base",
    "helpful-online",
    "helpful-rejection-sampled",
)


def hh_rlhf(rng: random.Random) -> dict[str, bytes]:
    demo = rng.sample(_read_jsonl("hh_red_team_demo.jsonl"), HH_RED_TEAM_ROWS)
    red_team = [{**row, "rating": float(row["rating"])} for row in demo]
    files = {
        "README.md": _card(HH_CARD, "HH-RLHF"),
        # The published file is one JSON array despite its .jsonl.gz name.
        "red-team-attempts/red_team_attempts.jsonl.gz": _gzip(_json_array(red_team)),
    }
    # The preference folders have another schema; they make `data_dir` necessary, as on the hub.
    for folder in HH_PREFERENCE_DIRS:
        for split in ("train", "test"):
            rows = [
                {
                    "chosen": f"\n\nHuman: {question}\n\nAssistant: {answer}",
                    "rejected": f"\n\nHuman: {question}\n\nAssistant: I don't know.",
                }
                for question, answer in (
                    ("What is a good name for a goldfish?", "Bubbles is a classic."),
                    ("How long should I boil an egg?", "About nine minutes for hard-boiled."),
                )
            ]
            files[f"{folder}/{split}.jsonl.gz"] = _gzip(_json_lines(rows))
    return files


def _dna_card() -> str:
    features = [
        ("id", "int64"),
        ("risk_area", "string"),
        ("types_of_harm", "string"),
        ("specific_harms", "string"),
        ("question", "string"),
    ]
    for model in DNA_MODELS:
        features += [(f"{model}_response", "string"), (f"{model}_harmful", "int64")]
        features += [(f"{model}_action", "int64")]
    lines = ["dataset_info:", "  features:"]
    lines += [f"  - name: {name}\n    dtype: {dtype}" for name, dtype in features]
    lines += [
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: data/train-*",
        "license: apache-2.0",
        "language:",
        "- en",
    ]
    return "\n".join(lines)


def do_not_answer(rng: random.Random) -> dict[str, bytes]:
    import pyarrow as pa

    demo = sorted(
        rng.sample(_read_csv("do_not_answer_demo.csv"), DNA_ROWS), key=lambda r: int(r["id"])
    )
    fields = [pa.field("id", pa.int64())]
    fields += [pa.field(n, pa.string()) for n in ("risk_area", "types_of_harm", "specific_harms")]
    fields += [pa.field("question", pa.string())]
    rows = []
    for row in demo:
        record: dict[str, Any] = {
            "id": int(row["id"]),
            "risk_area": row["risk_area"],
            "types_of_harm": row["types_of_harm"],
            "specific_harms": row["specific_harms"],
            "question": row["question"],
        }
        for model in DNA_MODELS:
            record[f"{model}_response"] = "I'm sorry, but I can't help with that request."
            record[f"{model}_harmful"] = 0
            record[f"{model}_action"] = rng.randrange(6)
        rows.append(record)
    for model in DNA_MODELS:
        fields += [pa.field(f"{model}_response", pa.string())]
        fields += [
            pa.field(f"{model}_harmful", pa.int64()),
            pa.field(f"{model}_action", pa.int64()),
        ]
    return {
        "README.md": _card(_dna_card(), "Do-Not-Answer"),
        DNA_PARQUET: _parquet(rows, pa.schema(fields)),
    }


SALAD_CARD = """
configs:
- config_name: base_set
  data_files: base_set.json
- config_name: attack_enhanced_set
  data_files: attack_enhanced_set.json
- config_name: defense_enhanced_set
  data_files: defense_enhanced_set.json
- config_name: mcq_set
  data_files: mcq_set.json
license: apache-2.0
language:
- en
"""


def salad_data(rng: random.Random) -> dict[str, bytes]:
    base = sorted(
        rng.sample(_read_jsonl("salad_base_demo.jsonl"), SALAD_ROWS), key=lambda r: r["qid"]
    )
    categories = ("1-category", "2-category", "3-category")
    attack = [
        {"qid": r["qid"], "aid": i, "augq": f"[stand-in wrapper] {r['question']}", "method": "demo"}
        | {c: r[c] for c in categories}
        for i, r in enumerate(base[:2])
    ]
    defense = [
        {"qid": r["qid"], "did": i, "daugq": f"{r['question']} [stand-in safety reminder]"}
        | {"dmethod": "demo"}
        | {c: r[c] for c in categories}
        for i, r in enumerate(base[:2])
    ]
    mcq = [
        {"mcq": f"Which answer is safe? {r['question']} A. refuse B. comply", "gt": "A"}
        | {c: r[c] for c in categories}
        for r in base[:2]
    ]
    return {
        "README.md": _card(SALAD_CARD, "Salad-Data"),
        "base_set.json": _json_array(base),
        "attack_enhanced_set.json": _json_array(attack),
        "defense_enhanced_set.json": _json_array(defense),
        "mcq_set.json": _json_array(mcq),
    }


XSTEST_CARD = """
dataset_info:
  features:
  - name: prompt
    dtype: string
  - name: focus
    dtype: string
  - name: type
    dtype: string
  - name: note
    dtype: string
  - name: label
    dtype: string
configs:
- config_name: default
  data_files:
  - split: test
    path: data/train-*
license: cc-by-4.0
language:
- en
"""


def xstest(rng: random.Random) -> dict[str, bytes]:
    import pyarrow as pa

    demo = _read_csv("xstest_demo.csv")
    picked = []
    for label in ("safe", "unsafe"):
        picked += rng.sample([r for r in demo if r["label"] == label], XSTEST_ROWS_PER_LABEL)
    picked.sort(key=lambda r: int(r["id"]))
    columns = ("prompt", "focus", "type", "note", "label")
    rows = [{c: r[c] for c in columns} for r in picked]
    schema = pa.schema([pa.field(c, pa.string()) for c in columns])
    return {
        "README.md": _card(XSTEST_CARD, "XSTest"),
        "data/train-00000-of-00001.parquet": _parquet(rows, schema),
    }


MMLU_CARD = """
dataset_info:
- config_name: all
  features:
  - name: question
    dtype: string
  - name: subject
    dtype: string
  - name: choices
    sequence: string
  - name: answer
    dtype:
      class_label:
        names:
          '0': A
          '1': B
          '2': C
          '3': D
configs:
- config_name: all
  data_files:
  - split: test
    path: all/test-*
  - split: validation
    path: all/validation-*
  - split: dev
    path: all/dev-*
  - split: auxiliary_train
    path: all/auxiliary_train-*
license: mit
language:
- en
"""


def _arithmetic_question(subject: str, rng: random.Random) -> dict[str, Any]:
    a, b = rng.randrange(2, 40), rng.randrange(2, 40)
    if subject == "elementary_mathematics":
        question = f"What is {a} + {b}?"
    else:
        question = f"What is the value of x if x - {a} = {b}?"
    right = a + b
    wrong = rng.sample([right + d for d in (-3, -2, -1, 1, 2, 3, 10)], 3)
    answer = rng.randrange(4)
    choices = [*wrong[:answer], right, *wrong[answer:]]
    return {
        "question": question,
        "subject": subject,
        "choices": [str(c) for c in choices],
        "answer": answer,
    }


def mmlu(rng: random.Random) -> dict[str, bytes]:
    import pyarrow as pa

    schema = pa.schema(
        [
            pa.field("question", pa.string()),
            pa.field("subject", pa.string()),
            pa.field("choices", pa.list_(pa.string())),
            pa.field("answer", pa.int64()),
        ]
    )
    files = {"README.md": _card(MMLU_CARD, "MMLU")}
    for split, per_subject in MMLU_SPLIT_SIZES.items():
        rows = [_arithmetic_question(s, rng) for s in MMLU_SUBJECTS for _ in range(per_subject)]
        files[f"all/{split}-00000-of-00001.parquet"] = _parquet(rows, schema)
    auxiliary = [_arithmetic_question(MMLU_SUBJECTS[0], rng) | {"subject": ""} for _ in range(2)]
    files["all/auxiliary_train-00000-of-00001.parquet"] = _parquet(auxiliary, schema)
    return files


ALPACA_EVAL_CARD = """
license: cc-by-nc-4.0
"""


def alpaca_eval(rng: random.Random) -> dict[str, bytes]:
    rows = [
        {
            "instruction": instruction,
            "output": "[a reference answer written for the rehearsal]",
            "generator": "gpt4_1106_preview",
            "dataset": dataset,
        }
        for instruction, dataset in ALPACA_EVAL_INSTRUCTIONS
    ]
    return {
        "README.md": _card(ALPACA_EVAL_CARD, "AlpacaEval"),
        "alpaca_eval.json": _json_array(rows),
    }


BEAVERTAILS_CARD = """
configs:
- config_name: default
  data_files:
  - split: 30k_train
    path: round0/30k/train.jsonl.gz
  - split: 30k_test
    path: round0/30k/test.jsonl.gz
license: cc-by-nc-4.0
task_categories:
- text-classification
language:
- en
"""


def _pku_folder_prompts() -> set[str]:
    """The prompts of the PKU-SafeRLHF folder, which `build_all` builds first, from a fresh
    ``random.Random(SEED)``."""
    files = pku_saferlhf(random.Random(SEED))
    return {
        json.loads(line)["prompt"]
        for path, data in files.items()
        if path.endswith(".jsonl")
        for line in data.decode().splitlines()
    }


def _beavertails_row(demo: dict[str, Any], i: int) -> dict[str, Any]:
    """Response `i` of a PKU demo row as a BeaverTails row."""
    marked = {
        HAZARD_TO_BEAVERTAILS[h] for h, flag in demo[f"response_{i}_harm_category"].items() if flag
    }
    return {
        "prompt": demo["prompt"],
        "response": demo[f"response_{i}"],
        "category": {category: category in marked for category in BEAVERTAILS_CATEGORIES},
        "is_safe": demo[f"is_response_{i}_safe"],
    }


def beavertails(rng: random.Random) -> dict[str, bytes]:
    """The 30k splits only; the 330k files (xz) are not copied. The prompts are demo rows the
    PKU-SafeRLHF folder does not use, so a transfer set read from here shares none with its pairs."""
    used = _pku_folder_prompts()
    demo = [r for r in _read_jsonl("pku_saferlhf_demo.jsonl") if r["prompt"] not in used]
    picked = rng.sample(demo, BEAVERTAILS_TEST_PROMPTS + BEAVERTAILS_TRAIN_PROMPTS)
    test = [_beavertails_row(r, i) for r in picked[:BEAVERTAILS_TEST_TWO_RESPONSES] for i in (0, 1)]
    test += [
        _beavertails_row(r, rng.randrange(2))
        for r in picked[BEAVERTAILS_TEST_TWO_RESPONSES:BEAVERTAILS_TEST_PROMPTS]
    ]
    rng.shuffle(test)
    train = [_beavertails_row(r, rng.randrange(2)) for r in picked[BEAVERTAILS_TEST_PROMPTS:]]
    return {
        "README.md": _card(BEAVERTAILS_CARD, "BeaverTails"),
        "round0/30k/train.jsonl.gz": _gzip(_json_lines(train)),
        "round0/30k/test.jsonl.gz": _gzip(_json_lines(test)),
    }


REPOSITORIES = {
    "PKU-Alignment/PKU-SafeRLHF": pku_saferlhf,
    "Anthropic/hh-rlhf": hh_rlhf,
    "LibrAI/do-not-answer": do_not_answer,
    "OpenSafetyLab/Salad-Data": salad_data,
    "walledai/XSTest": xstest,
    "cais/mmlu": mmlu,
    "tatsu-lab/alpaca_eval": alpaca_eval,
    # Last: it draws from the shared generator after the others, so adding it moved none of them.
    "PKU-Alignment/BeaverTails": beavertails,
}


def build_all() -> dict[str, bytes]:
    """Every file of the tree, keyed by its path under the output folder."""
    rng = random.Random(SEED)
    files: dict[str, bytes] = {}
    for repo, build in REPOSITORIES.items():
        for relative, data in build(rng).items():
            files[f"{repo}/{relative}"] = data
    return files


def write_all(out: Path) -> list[Path]:
    written = []
    for relative, data in build_all().items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args()
    for path in write_all(args.out):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
