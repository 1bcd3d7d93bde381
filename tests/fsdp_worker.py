"""`training_worker`'s cDPO run on the tiny model, sharded with FSDP2 over the processes that
`accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 2` starts.

`accelerate launch ... tests/fsdp_worker.py OUT_DIR STOP_AFTER` trains (resuming where OUT_DIR has
a checkpoint) and stops after STOP_AFTER steps as if killed (`all`: runs to the end); the main
process prints `RESULT <json>`: the step it resumed from, the metrics rows without timings and the
saved policy's directory (null when stopped).

accelerate 1.15 turns FSDP on only for accelerator devices: on CPU (gloo) the launched processes
come up as plain multi-CPU data parallel and the FSDP plugin is dropped. This worker puts it back
(`fsdp_on_cpu`) right after the loop builds its `Accelerator`, so everything after that, from
`prepare` (torch's `fully_shard`) to `save_state`/`load_state` and `get_state_dict`, runs
accelerate's own FSDP2 code on CPU tensors.
"""

from __future__ import annotations

import json
import sys

import torch
from accelerate import FullyShardedDataParallelPlugin
from accelerate.state import PartialState
from accelerate.utils import DistributedType
from training_worker import worker_run

from repsafe_lib import training
from repsafe_lib.training import loop


def fsdp_on_cpu(new_accelerator):
    def sharded(training_params, device):
        accelerator = new_accelerator(training_params, device)
        if accelerator.distributed_type == DistributedType.MULTI_CPU:
            plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables the launcher set
            accelerator.state.fsdp_plugin = plugin
            accelerator.state.distributed_type = DistributedType.FSDP
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            loop.check_sharding(plugin, training_params)
        return accelerator

    return sharded


def main(out_dir: str, stop_after: str) -> None:
    torch.set_num_threads(1)
    loop.new_accelerator = fsdp_on_cpu(loop.new_accelerator)
    result = worker_run(out_dir, stop_after=None if stop_after == "all" else int(stop_after))
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
        }
        print("RESULT " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} OUT_DIR {{STOP_AFTER,all}}")
    main(*sys.argv[1:])
