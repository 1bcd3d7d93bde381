"""Notebook 04's runs from the command line (`python -m repsafe_lib.training`), e.g. on several
GPUs with `accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 4 -m
repsafe_lib.training --params params/paper.yaml` (`fsdp.yaml`: sharded); with `--reward-model` or
`--online`, notebook 05's reward model or online DPO run instead, saved where notebook 05 reuses
them."""

from __future__ import annotations

import typing
from collections.abc import Sequence

from repsafe_lib.seeding import seed_everything
from repsafe_lib.training.runs import prepare_training, run_training, training_inputs


def main(argv: Sequence[str] | None = None) -> int:
    """Notebook 04's runs from the command line, e.g. on several GPUs: `accelerate launch
    --config_file configs/accelerate/fsdp.yaml --num_processes 4 -m repsafe_lib.training
    --params params/paper.yaml` (configs/accelerate/: one-gpu, ddp, fsdp). With --reward-model or
    --online: notebook 05's reward model or online DPO run instead.
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
    notebook_05 = parser.add_mutually_exclusive_group()
    notebook_05.add_argument(
        "--reward-model",
        action="store_true",
        help="train notebook 05's reward model (after notebook 00), not notebook 04's runs",
    )
    notebook_05.add_argument(
        "--online",
        action="store_true",
        help="train notebook 05's online DPO run (and its reward model, where not yet saved)",
    )
    args = parser.parse_args(argv)
    if (args.reward_model or args.online) and args.run:
        parser.error("--run names notebook 04's runs, not notebook 05's")
    # Before any model loads: under `accelerate launch` this points each process's "cuda" at its
    # own GPU (else every process would load the reference and the policy onto GPU 0).
    PartialState()
    params = load_params(args.params)
    seed_everything(params.seed)
    if args.reward_model:
        print(train_notebook_reward_model(params, resume=not args.fresh))
        return 0
    if args.online:
        print(train_notebook_online_run(params))
        return 0
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


def notebook_05_inputs(params):
    """Notebook 05's run, notebook 00's training pairs and the base policy's fingerprint and
    tokenizer (its weights are not loaded)."""
    from repsafe_lib.artifacts import Run
    from repsafe_lib.models import base_fingerprint, load_tokenizer
    from repsafe_lib.records import PreferencePair, read_records
    from repsafe_lib.scalar_reward_model import BaseWeights

    run = Run(params, "05_sampling")
    pairs = read_records(
        run.upstream("00_data", "pairs_train.jsonl"), PreferencePair, producer="00_data"
    )
    base = BaseWeights(
        base_fingerprint(params.model, seed=params.seed), load_tokenizer(params.model)
    )
    return run, pairs, base


def train_notebook_reward_model(params, *, resume: bool) -> str:
    """Notebook 05's reward model, trained on notebook 00's training pairs and saved where
    notebook 05's `scalar_reward_model.fit_or_load` finds it under the same key (left as it is
    where it is there already); returns a line saying which."""
    from repsafe_lib import scalar_reward_model

    run, pairs, base = notebook_05_inputs(params)
    directory = run.path("reward_model")
    fit = scalar_reward_model.fit_and_save(
        directory,
        base=base,
        model_params=params.model,
        training=params.training,
        settings=params.sampling.reward_model,
        pairs=pairs,
        seed=params.seed,
        resume=resume,
    )
    if fit is None:
        return f"reward model: {directory} holds it already (same settings, pairs and base)"
    return f"reward model: {len(fit.curve.loss)} steps, saved in {directory}"


def train_notebook_online_run(params) -> str:
    """Notebook 05's online DPO run (its reward model first, reloaded where saved, else trained
    and saved), written where notebook 05 reads it back; returns a line saying where."""
    from repsafe_lib import sampled_variants, scalar_reward_model
    from repsafe_lib.models import nf4_supported

    run, pairs, base = notebook_05_inputs(params)
    reward_model, _ = scalar_reward_model.fit_or_load(
        run.path("reward_model"),
        base=base,
        model_params=params.model,
        training=params.training,
        settings=params.sampling.reward_model,
        pairs=pairs,
        seed=params.seed,
    )
    quantization = params.training.reference_quantization
    if quantization == "auto":  # as notebook 05's reranked runs resolve it
        quantization = "nf4" if nf4_supported() else "none"
    result = sampled_variants.train_online(
        params,
        base.tokenizer,
        pairs,
        reward_model,
        reference_quantization=quantization,
        out_dir=run.path("online"),
    )
    return f"online: {len(result.metrics)} steps, policy in {result.policy_dir}"
