"""`training_worker`'s cDPO run on the tiny model in every process `accelerate launch` starts with
one of the project's config files: `configs/accelerate/ddp.yaml` (each process the whole policy)
or `fsdp.yaml` (the policy sharded with FSDP2), e.g. `--num_processes 2`.

`accelerate launch ... tests/multiprocess_worker.py OUT_DIR STOP_AFTER [KEY=VALUE ...]` trains
(resuming where OUT_DIR has a checkpoint; KEY=VALUE: training settings to change, e.g.
`mixed_precision=bf16`) and stops after STOP_AFTER steps as if killed (`all`: runs to the end);
the main process prints `RESULT <json>`: the step it resumed from, the metrics rows without
timings, the saved policy's directory (null when stopped), the process count and whether the
policy was sharded.

On a machine without GPUs the launched processes talk over gloo. accelerate 1.15 turns FSDP on
only for accelerator devices: on CPU the processes of the FSDP config come up as plain multi-CPU
data parallel with the FSDP plugin dropped. This worker puts it back (`fsdp_on_cpu`) right after
the loop builds its `Accelerator`, so everything after that, from `prepare` (torch's
`fully_shard`) to `save_state`/`load_state` and `get_state_dict`, runs accelerate's own FSDP2 code
on CPU tensors.
"""

from __future__ import annotations

import json
import os
import sys

import torch
import yaml
from accelerate import FullyShardedDataParallelPlugin
from accelerate.state import PartialState
from accelerate.utils import DistributedType
from training_worker import worker_run

from repsafe_lib import training
from repsafe_lib.training import loop


def fsdp_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"  # set by the launcher


def fsdp_on_cpu(new_accelerator):
    def sharded(training_params, device):
        accelerator = new_accelerator(training_params, device)
        if accelerator.distributed_type == DistributedType.MULTI_CPU and fsdp_requested():
            plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables the launcher set
            accelerator.state.fsdp_plugin = plugin
            accelerator.state.distributed_type = DistributedType.FSDP
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            loop.configure_sharding(plugin, training_params)
        return accelerator

    return sharded


def main(out_dir: str, stop_after: str, *settings: str) -> None:
    torch.set_num_threads(1)
    loop.new_accelerator = fsdp_on_cpu(loop.new_accelerator)
    changes = {}
    for setting in settings:  # KEY=VALUE, the value read as YAML
        key, value = setting.split("=", 1)
        changes[key] = yaml.safe_load(value)
    result = worker_run(
        out_dir, stop_after=None if stop_after == "all" else int(stop_after), **changes
    )
    if PartialState().is_main_process:
        rows = [
            {k: v for k, v in row.items() if k not in training.TIMING_METRICS}
            for row in result.metrics
        ]
        summary = {
            "resumed_from": result.resumed_from,
            "metrics": rows,
            "policy_dir": None if result.policy_dir is None else str(result.policy_dir),
            "sharded": loop.is_sharded(PartialState()),
            "processes": PartialState().num_processes,
        }
        print("RESULT " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(f"usage: {sys.argv[0]} OUT_DIR {{STOP_AFTER,all}} [KEY=VALUE ...]")
    main(*sys.argv[1:])
