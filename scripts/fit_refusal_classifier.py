"""Fit the offline refusal classifier's weights (`repsafe_lib.refusal`) on human-labelled responses.

    python scripts/fit_refusal_classifier.py --data DIR [--out repsafe_lib/data/refusal_classifier.json]

DIR holds CSV files in the schema of XSTest's released completion files (Röttger et al., NAACL
2024), `xstest_v2_completions_<model>_gpteval.csv`, with a `completion` and a human `final_label`
per row; every file found is used. Deterministic: the same files give byte-identical weights.
How well weights fit this way classify responses of a model they never saw is what
`benchmarks/refusal_judge.py` measures, leave one model out.
"""

from __future__ import annotations

import argparse

from repsafe_lib.refusal import WEIGHTS_PATH, load_model, save_model
from repsafe_lib.refusal_fit import fit_on_frame, read_completions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="directory of the completion CSV files")
    parser.add_argument("--out", default=str(WEIGHTS_PATH))
    args = parser.parse_args()
    data = read_completions(args.data)
    models = sorted(set(data["model"]))
    fit_on = f"{len(data)} human-labelled responses of {len(models)} models: {', '.join(models)}"
    save_model(fit_on_frame(data, fit_on=fit_on), args.out)
    print(f"{args.out}: fit on {fit_on}; classifier version {load_model(args.out)[1]}")


if __name__ == "__main__":
    main()
