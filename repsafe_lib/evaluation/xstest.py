"""XSTest: over-refusal on safe prompts and refusal on unsafe ones (paper Sec 4.6, Fig 4).

Each response is classified as full compliance, partial refusal or full refusal by the offline
refusal classifier (`repsafe_lib.refusal`, through `judges.classify_xstest`) or by an LLM judge
(`xstest_judge.XSTestLLMJudge`, the paper's setting), and Fig 4 (`plots.plot_xstest`) stacks the
three shares per policy, safe and unsafe prompts apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from repsafe_lib.evaluation.judging import XSTEST
from repsafe_lib.evaluation.policies import PolicySource
from repsafe_lib.judges import RESPONSE_CLASSES, XSTestRecord, classify_xstest
from repsafe_lib.records import EvalPrompt

if TYPE_CHECKING:
    from repsafe_lib.evaluation.responses import PolicyOutputs


def xstest_rows(
    source: PolicySource, prompts: Sequence[EvalPrompt], responses, records: Sequence[XSTestRecord]
) -> list[dict]:
    label_of = {p.prompt_id: p.label for p in prompts}
    return [
        {
            "run": source.run,
            "policy": source.policy,
            "prompt_id": response.prompt_id,
            "prompt_label": label_of[response.prompt_id],
            "classifier": record.classifier,
            "classifier_version": record.version,
            "response_class": record.label,
        }
        for response, record in zip(responses, records, strict=True)
    ]


def xstest_all(
    policies: Sequence[PolicySource],
    prompts: Sequence[EvalPrompt],
    outputs: Mapping[str, PolicyOutputs],
    llm_judge=None,
) -> pd.DataFrame:
    """Every policy's XSTest responses classified (the offline classifier unless `llm_judge`)."""
    text_of = {p.prompt_id: p.prompt for p in prompts}
    rows = []
    for source in policies:
        responses = outputs[source.run].responses[XSTEST]
        records = classify_xstest(
            [text_of[r.prompt_id] for r in responses], [r.text for r in responses], llm_judge
        )
        rows += xstest_rows(source, prompts, responses, records)
    return pd.DataFrame(rows)


def xstest_shares(rows: pd.DataFrame) -> pd.DataFrame:
    """Per policy x prompt label: share of each response class among non-empty responses."""
    out = []
    for (policy, label), group in rows.groupby(["policy", "prompt_label"], sort=False):
        classified = group["response_class"].dropna()
        row = {"policy": policy, "prompts": label, "classifier": group["classifier"].iloc[0]}
        row |= {"responses": len(group), "empty": int(group["response_class"].isna().sum())}
        for name in RESPONSE_CLASSES:
            row[name] = float((classified == name).mean()) if len(classified) else np.nan
        out.append(row)
    return pd.DataFrame(out)
