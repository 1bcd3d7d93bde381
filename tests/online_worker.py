"""Online DPO on the tiny model (two rounds of sample -> re-label -> DPO) in every process
`accelerate launch` starts with one of the project's config files, or in this one process when
run as a plain script.

`accelerate launch ... tests/online_worker.py OUT_DIR all [KEY=VALUE ...]` trains into OUT_DIR
(KEY=VALUE: training settings to change); the main process prints `RESULT <json>`: the metrics rows
without timings, every round's scored samples, the process count and whether the policy was
sharded. Each round takes 5 prompts, so the processes' shares differ in size. On CPU the FSDP
config's processes are switched to FSDP as `multiprocess_worker` does it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from pathlib import Path

import torch
import yaml
from accelerate.state import PartialState
from multiprocess_worker import fsdp_on_cpu

from repsafe_lib import training
from repsafe_lib.models import load_model
from repsafe_lib.online import online_dpo
from repsafe_lib.params import OnlineParams, load_params
from repsafe_lib.records import EvalPrompt
from repsafe_lib.sampling import DecodingConfig
from repsafe_lib.scalar_reward_model import ScalarRewardModel
from repsafe_lib.training import loop

ROUNDS = 2
PROMPTS = [
    EvalPrompt(f"o{i}", f"Question {i}: how do I do thing {i}?", "train", None, None)
    for i in range(8)
]


def online_run(out_dir: str | Path, **changes) -> training.RunResult:
    params = load_params("params/tiny.yaml")
    settings = dataclasses.replace(params.training, batch_size=2, learning_rate=1e-3, **changes)
    policy = load_model(params.model, seed=params.seed)
    reference = load_model(params.model, seed=params.seed).model
    reward_model = ScalarRewardModel.from_causal_lm(copy.deepcopy(reference))
    with torch.no_grad():
        reward_model.head.weight.normal_(generator=torch.Generator().manual_seed(0))
    return online_dpo(
        "online",
        model=policy.model,
        reference_model=reference,
        tokenizer=policy.tokenizer,
        prompts=PROMPTS,
        reward_model=reward_model,
        training=settings,
        online=OnlineParams(rounds=ROUNDS, steps_per_round=3, prompts_per_round=5),
        decoding=DecodingConfig(max_new_tokens=6, do_sample=True, num_samples=3),
        generation_batch_size=2,
        reward_max_length=64,
        max_length=64,
        seed=0,
        out_dir=Path(out_dir),
        progress=False,
    )


def main(out_dir: str, _: str, *settings: str) -> None:
    torch.set_num_threads(1)
    loop.new_accelerator = fsdp_on_cpu(loop.new_accelerator)
    changes = {}
    for setting in settings:  # KEY=VALUE, the value read as YAML
        key, value = setting.split("=", 1)
        changes[key] = yaml.safe_load(value)
    result = online_run(out_dir, **changes)
    state = PartialState()
    if state.is_main_process:
        rows = [
            {k: v for k, v in row.items() if k not in training.TIMING_METRICS}
            for row in result.metrics
        ]
        samples = [
            [
                json.loads(line)
                for line in (Path(out_dir) / f"round-{r:02d}" / "samples.jsonl")
                .read_text(encoding="utf-8")
                .splitlines()
            ]
            for r in range(ROUNDS)
        ]
        summary = {
            "metrics": rows,
            "samples": samples,
            "policy_dir": str(result.policy_dir),
            "sharded": loop.is_sharded(state),
            "processes": state.num_processes,
        }
        print("RESULT " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(f"usage: {sys.argv[0]} OUT_DIR all [KEY=VALUE ...]")
    main(*sys.argv[1:])
