"""Local copies of real hub data kept beside the checkout (`../shared/data`, or
$REPSAFE_SHARED_DATA), as a $REPSAFE_HUB_COPIES mapping for the laptop profile's tests.

Three of the laptop profile's hub datasets have a real copy there, in the hub's schema (or, for
BeaverTails, in a form its loader reads); the evaluation prompt sets without one map to the suite's
bundled synthetic copies, so that nothing reaches for the hub.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from repsafe_lib.paths import repo_root

REAL_COPIES = {
    "PKU-Alignment/PKU-SafeRLHF": "pku_saferlhf_v0_pairs/pku_saferlhf_v0_pairs.jsonl",
    "PKU-Alignment/BeaverTails": "beavertails_30k_test/0_A_beaver_tails.json",
    "walledai/XSTest": "xstest_completions/xstest_prompts.csv",
}
BUNDLED_STAND_INS = {
    "Anthropic/hh-rlhf": "demo:hub/Anthropic/hh-rlhf",
    "LibrAI/do-not-answer": "demo:hub/LibrAI/do-not-answer",
    "OpenSafetyLab/Salad-Data": "demo:hub/OpenSafetyLab/Salad-Data",
    "cais/mmlu": "demo:hub/cais/mmlu",
}


def shared_data_dir() -> Path:
    default = repo_root().parent / "shared" / "data"
    return Path(os.environ.get("REPSAFE_SHARED_DATA", default))


def missing_copies(data_dir: Path) -> list[str]:
    return [
        str(data_dir / path) for path in REAL_COPIES.values() if not (data_dir / path).is_file()
    ]


def write_hub_copies(data_dir: Path, mapping_file: Path) -> Path:
    """The mapping file for the copies in `data_dir` (absolute paths)."""
    mapping = {hub_id: str((data_dir / path).resolve()) for hub_id, path in REAL_COPIES.items()}
    mapping_file.write_text(yaml.safe_dump(mapping | BUNDLED_STAND_INS, sort_keys=False))
    return mapping_file


if __name__ == "__main__":  # python tests/shared_data.py OUT.yaml
    data = shared_data_dir()
    if missing := missing_copies(data):
        sys.exit(f"missing: {', '.join(missing)}")
    print(write_hub_copies(data, Path(sys.argv[1])))
