"""Notebook 04's runs from the command line (`python -m repsafe_lib.training`), e.g. on several
GPUs with `accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 4 -m
repsafe_lib.training --params params/paper.yaml` (`fsdp.yaml`: sharded)."""

from __future__ import annotations

import typing
from collections.abc import Sequence

from repsafe_lib.seeding import seed_everything
from repsafe_lib.training.runs import prepare_training, run_training, training_inputs


def main(argv: Sequence[str] | None = None) -> int:
    """Notebook 04's runs from the command line, e.g. on several GPUs: `accelerate launch
    --config_file configs/accelerate/fsdp.yaml --num_processes 4 -m repsafe_lib.training
    --params params/paper.yaml` (configs/accelerate/: one-gpu, ddp, fsdp).
    """
    import argparse

    from accelerate import PartialState

    from repsafe_lib.artifacts import Run
    from repsafe_lib.params import TrainingRun, default_params_file, load_params

    parser = argparse.ArgumentParser(
        prog="python -m repsafe_lib.training", description=main.__doc__
    )
    parser.add_argument("--params", default=default_params_file(), help="params YAML file")
    parser.add_argument(
        "--run",
        action="append",
        choices=typing.get_args(TrainingRun),
        help="run(s) to train (default: training.runs of the params)",
    )
    parser.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    args = parser.parse_args(argv)
    # Before any model loads: under `accelerate launch` this points each process's "cuda" at its
    # own GPU (else every process would load the reference and the policy onto GPU 0).
    PartialState()
    params = load_params(args.params)
    seed_everything(params.seed)
    run = Run(params, "04_training")
    inputs = training_inputs(run)
    setup, _ = prepare_training(
        params,
        run.dir,
        train_pairs=inputs.train_pairs,
        states=inputs.states,
        examples=inputs.examples,
        layers=inputs.layers,
        hybrid_reward_path=inputs.hybrid_reward_path,
        runs=args.run,
    )
    for name in args.run or params.training.runs:
        result = run_training(name, setup, resume=not args.fresh)
        print(f"{name}: {len(result.metrics)} steps, policy in {result.policy_dir}")
    return 0
