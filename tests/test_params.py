"""Params files: the shipped profiles load, and every kind of mistake names the file and the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from repsafe_lib.params import ParamsError, load_params, resolve_layers

PROFILES = ["tiny", "smol", "paper", "paper-80gb", "rehearsal", "rehearsal-80gb"]


_RM = {"kind": "hub", "name": "rm", "source": "OpenAssistant/reward-model-deberta-v3-large-v2"}


def write_variant(tmp_path: Path, edit) -> Path:
    """params/tiny.yaml with `edit(raw_dict)` applied, written to a tmp file."""
    raw = yaml.safe_load(Path("params/tiny.yaml").read_text())
    edit(raw)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_profiles_load(profile):
    params = load_params(f"params/{profile}.yaml")
    assert params.profile == profile
    assert params.training.beta == 1.5 and params.reward.alpha == 7.5 and params.reward.mu == 1.0
    assert dataclasses.is_dataclass(params) and params.source_file.endswith(f"{profile}.yaml")


def test_paper_profile_has_the_paper_settings():
    params = load_params("params/paper.yaml")
    assert params.model.source == "meta-llama/Llama-2-7b-hf"
    assert (params.training.learning_rate, params.training.batch_size) == (1e-5, 4)
    assert params.pca.samples_per_class == 600
    mmlu = params.evaluation
    assert (mmlu.mmlu_shots, mmlu.mmlu_fewshot.source, mmlu.mmlu_fewshot.split) == (
        5,
        "cais/mmlu",
        "dev",
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_trains_the_papers_cdpo_and_the_cross_fitted_one(profile):
    training = load_params(f"params/{profile}.yaml").training
    assert {"cdpo", "cdpo_crossfit"} <= set(training.runs) and training.confidence_folds >= 2
    assert training.refresh == "full"  # Sec 3.4: the refresh moves scorers and gate
    assert not hasattr(training, "max_length")  # one budget: extraction.max_length


def test_params_are_frozen():
    params = load_params("params/tiny.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.seed = 1


def test_fingerprint_is_stable_and_sensitive(tmp_path):
    base = load_params("params/tiny.yaml")
    assert base.fingerprint() == load_params("params/tiny.yaml").fingerprint()
    changed = load_params(write_variant(tmp_path, lambda r: r.update(seed=7)))
    assert changed.fingerprint() != base.fingerprint()


BAD_PARAMS = [
    ("unknown top-level key", lambda r: r.update(sead=1), "sead", "unknown key"),
    (
        "unknown nested key",
        lambda r: r["model"].update(colour="red"),
        "model.colour",
        "unknown key",
    ),
    ("wrong type", lambda r: r["training"].update(beta="big"), "training.beta", "expected float"),
    ("bool is not an int", lambda r: r.update(seed=True), "seed", "expected int"),
    ("missing model", lambda r: r.pop("model"), "model", "missing required key"),
    ("missing beta", lambda r: r["training"].pop("beta"), "training.beta", "missing required key"),
    ("missing layers", lambda r: r["extraction"].pop("layers"), "extraction.layers", "missing"),
    ("beta <= 0", lambda r: r["training"].update(beta=0), "training", "beta must be > 0"),
    ("alpha <= 0", lambda r: r["reward"].update(alpha=-1.0), "reward", "alpha must be > 0"),
    ("negative batch", lambda r: r["training"].update(batch_size=-4), "training", "batch_size"),
    ("bad literal", lambda r: r["model"].update(dtype="float8"), "model.dtype", "one of"),
    ("layer zero", lambda r: r["extraction"].update(layers=[0, 1]), "extraction", "1-based"),
    (
        "layers junk",
        lambda r: r["extraction"].update(layers="some"),
        "extraction.layers",
        "expected",
    ),
    ("test fraction", lambda r: r["data"].update(test_fraction=1.5), "data", "between 0 and 1"),
    (
        "bad on_bad_rows",
        lambda r: r["data"].update(on_bad_rows="ignore"),
        "data.on_bad_rows",
        "one of",
    ),
    ("hub without source", lambda r: r["model"].update(kind="hub"), "model", "needs 'source'"),
    ("section not a mapping", lambda r: r.update(pca=[1, 2]), "pca", "expected a mapping"),
    ("bad gate", lambda r: r["reward"].update(gate="moe"), "reward.gate", "one of"),
    ("epochs <= 0", lambda r: r["reward"].update(epochs=0), "reward", "epochs must be > 0"),
    ("negative mu", lambda r: r["reward"].update(mu=-0.5), "reward", "mu must be >= 0"),
    ("one inner fold", lambda r: r["probes"].update(inner_folds=1), "probes", "inner_folds"),
    ("C <= 0", lambda r: r["probes"].update(c_grid=[0.1, 0.0]), "probes", "c_grid"),
    ("C not a number", lambda r: r["probes"].update(c_grid=["x"]), "probes.c_grid[0]", "expected"),
    ("unknown run", lambda r: r["training"].update(runs=["ppo"]), "training.runs[0]", "one of"),
    ("repeated run", lambda r: r["training"].update(runs=["dpo", "dpo"]), "training", "repeat"),
    (
        "batch vs accumulation",
        lambda r: r["training"].update(batch_size=4, gradient_accumulation_steps=3),
        "training",
        "must divide",
    ),
    ("zero steps", lambda r: r["training"].update(max_steps=0), "training", "max_steps"),
    ("no folds", lambda r: r["training"].update(confidence_folds=0), "training", "confidence_f"),
    ("one fold", lambda r: r["training"].update(confidence_folds=1), "training", ">= 2"),
    (
        "a second token budget for training",
        lambda r: r["training"].update(max_length=512),
        "training.max_length",
        "extraction.max_length",
    ),
    (
        "the refresh's set under reward",
        lambda r: r["reward"].update(train_scorers=True),
        "reward.train_scorers",
        "training.refresh",
    ),
    (
        "bad refresh",
        lambda r: r["training"].update(refresh="scorers"),
        "training.refresh",
        "one of",
    ),
    (
        "negative refresh",
        lambda r: r["training"].update(refresh_steps=-1),
        "training",
        "refresh_steps must be >= 0",
    ),
    (
        "bad reference",
        lambda r: r["training"].update(reference_quantization="int3"),
        "training.reference_quantization",
        "one of",
    ),
    ("lora rank 0", lambda r: r["training"].update(lora={"r": 0}), "training.lora", "r must be"),
    ("one sample", lambda r: r["sampling"].update(num_samples=1), "sampling", "num_samples"),
    (
        "pairs need 2k samples",
        lambda r: r["sampling"].update(num_samples=2, pair_top_k=2),
        "sampling",
        "paired with itself",
    ),
    ("top-k beyond N", lambda r: r["sampling"].update(table2_top_k=[1, 9]), "sampling", "[9]"),
    (
        "Fig 6 top-k beyond N",
        lambda r: r["sampling"].update(fig6_top_k=9),
        "sampling",
        "fig6_top_k",
    ),
    (
        "unknown sampling run",
        lambda r: r["sampling"].update(runs=["rs"]),
        "sampling.runs[0]",
        "one of",
    ),
    (
        "zero online rounds",
        lambda r: r["sampling"]["online"].update(rounds=0),
        "sampling.online",
        "rounds must be > 0",
    ),
    (
        "negative reward-model lr",
        lambda r: r["sampling"]["reward_model"].update(learning_rate=-1e-5),
        "sampling.reward_model",
        "learning_rate",
    ),
    (
        "reward model twice",
        lambda r: r["evaluation"].update(reward_model=_RM, reward_models=[_RM]),
        "evaluation",
        "not both",
    ),
    (
        "repeated reward model",
        lambda r: r["evaluation"].update(reward_models=[_RM, _RM]),
        "evaluation",
        "must not repeat",
    ),
    (
        "reward model without a source",
        lambda r: r["evaluation"].update(reward_models=[{"kind": "hub", "name": "rm"}]),
        "evaluation.reward_models[0]",
        "needs 'source'",
    ),
    (
        "negative MMLU shots",
        lambda r: r["evaluation"].update(mmlu_shots=-1),
        "evaluation",
        "mmlu_shots must be >= 0",
    ),
    (
        "MMLU shots without a dev split",
        lambda r: r["evaluation"].update(mmlu_shots=5),
        "evaluation",
        "needs mmlu_fewshot",
    ),
    ("one Fig 7 sample", lambda r: r["compute"].update(samples=1), "compute", "samples"),
    (
        "unsorted Fig 7 lengths",
        lambda r: r["compute"].update(new_tokens=[8, 4]),
        "compute",
        "increasing",
    ),
    (
        "Fig 7 without lengths",
        lambda r: r["compute"].update(analytic_new_tokens=[]),
        "compute",
        "[]",
    ),
]


@pytest.mark.parametrize("case, edit, key, words", BAD_PARAMS, ids=[c[0] for c in BAD_PARAMS])
def test_bad_params_name_the_file_and_key(tmp_path, case, edit, key, words):
    path = write_variant(tmp_path, edit)
    with pytest.raises(ParamsError) as raised:
        load_params(path)
    message = str(raised.value)
    assert str(path) in message and f"'{key}'" in message and words in message, message
    assert raised.value.key == key


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(broken)


def test_yaml_is_loaded_safely(tmp_path):
    # A python-object tag must be refused by the safe loader, never constructed.
    evil = tmp_path / "evil.yaml"
    evil.write_text("seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(evil)


def test_resolve_layers():
    assert resolve_layers("all", 3, key="k", params_file="f.yaml") == [1, 2, 3]
    assert resolve_layers((1, 3), 3, key="k", params_file="f.yaml") == [1, 3]
    with pytest.raises(
        ParamsError, match=r"f.yaml: key 'extraction.layers': layers \[31\] out of range"
    ):
        resolve_layers((1, 31), 30, key="extraction.layers", params_file="f.yaml")


@settings(max_examples=40, deadline=None)
@given(
    value=st.one_of(
        st.text(max_size=5), st.lists(st.integers(), max_size=2), st.none(), st.booleans()
    )
)
def test_beta_of_any_wrong_type_is_a_params_error(tmp_path_factory, value):
    path = write_variant(tmp_path_factory.mktemp("h"), lambda r: r["training"].update(beta=value))
    with pytest.raises(ParamsError) as raised:
        load_params(path)
    assert raised.value.key in ("training.beta", "training")


@settings(max_examples=40, deadline=None)
@given(beta=st.floats(min_value=1e-6, max_value=1e6), seed=st.integers(0, 2**31))
def test_any_valid_beta_and_seed_round_trip(tmp_path_factory, beta, seed):
    path = write_variant(
        tmp_path_factory.mktemp("h"),
        lambda r: (r["training"].update(beta=beta), r.update(seed=seed)),
    )
    params = load_params(path)
    assert params.training.beta == beta and params.seed == seed
