"""Params files: the shipped profiles load, and every kind of mistake names the file and the key."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from repsafe_lib.params import ParamsError, load_params, raw_params, resolve_layers

PROFILES = ["tiny", "smol", "laptop", "paper", "paper-80gb", "rehearsal", "rehearsal-80gb"]


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


def test_laptop_profile_is_smol_on_real_hub_data():
    """Only the data differ from the smol profile: the laptop numbers answer what the demo's
    can't, with the same model, sizes and steps."""
    laptop, smol = (raw_params(Path(f"params/{p}.yaml")) for p in ("laptop", "smol"))
    for section in set(laptop) | set(smol):
        if section not in ("profile", "data", "evaluation"):
            assert laptop[section] == smol[section], section
    assert {k: v for k, v in laptop["evaluation"].items() if k != "mmlu"} == {
        k: v for k, v in smol["evaluation"].items() if k != "mmlu"
    }
    sources = [spec["source"] for spec in laptop["data"].values() if isinstance(spec, dict)]
    assert not any(source.startswith("demo:") for source in sources)
    assert laptop["data"]["transfer"]["source"] == "PKU-Alignment/BeaverTails"


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
    (
        "optional pairs",
        lambda r: r["data"]["pairs"].update(optional=True),
        "data.pairs.optional",
        "only data.transfer may be optional",
    ),
    (
        "transfer without labels",
        lambda r: r["data"]["transfer"].update(loader="xstest"),
        "data.transfer.loader",
        "labelled responses",
    ),
    ("section not a mapping", lambda r: r.update(pca=[1, 2]), "pca", "expected a mapping"),
    ("bad gate", lambda r: r["reward"].update(gate="moe"), "reward.gate", "one of"),
    ("epochs <= 0", lambda r: r["reward"].update(epochs=0), "reward", "epochs must be > 0"),
    ("negative mu", lambda r: r["reward"].update(mu=-0.5), "reward", "mu must be >= 0"),
    ("one inner fold", lambda r: r["probes"].update(inner_folds=1), "probes", "inner_folds"),
    ("C <= 0", lambda r: r["probes"].update(c_grid=[0.1, 0.0]), "probes", "c_grid"),
    ("unknown solver", lambda r: r["probes"].update(solver="svm"), "probes.solver", "one of"),
    ("unknown device", lambda r: r["probes"].update(device="tpu"), "probes", "device"),
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
    # Every float field is finite: NaN slips past `x <= 0` checks and fails much later.
    ("NaN beta", lambda r: r["training"].update(beta=math.nan), "training.beta", "finite"),
    ("NaN alpha", lambda r: r["reward"].update(alpha=math.nan), "reward.alpha", "finite"),
    ("infinite mu", lambda r: r["reward"].update(mu=math.inf), "reward.mu", "finite"),
    (
        "infinite learning rate",
        lambda r: r["training"].update(learning_rate=math.inf),
        "training.learning_rate",
        "finite",
    ),
    (
        "NaN refresh learning rate",
        lambda r: r["training"].update(refresh_learning_rate=math.nan),
        "training.refresh_learning_rate",
        "finite",
    ),
    (
        "NaN gate learning rate",
        lambda r: r["reward"].update(learning_rate=math.nan),
        "reward.learning_rate",
        "finite",
    ),
    (
        "NaN reward-model learning rate",
        lambda r: r["sampling"]["reward_model"].update(learning_rate=math.nan),
        "sampling.reward_model.learning_rate",
        "finite",
    ),
    ("NaN C", lambda r: r["probes"].update(c_grid=[math.nan, 1.0]), "probes.c_grid[0]", "finite"),
    ("infinite C", lambda r: r["probes"].update(c_grid=[0.1, math.inf]), "probes.c_grid[1]", "fin"),
    (
        "minus infinite grad norm",
        lambda r: r["training"].update(max_grad_norm=-math.inf),
        "training.max_grad_norm",
        "finite",
    ),
    ("NaN top-p", lambda r: r["sampling"].update(top_p=math.nan), "sampling.top_p", "finite"),
    ("int beyond a float", lambda r: r["training"].update(beta=10**400), "training.beta", "finite"),
    # numpy takes 32-bit seeds.
    ("negative seed", lambda r: r.update(seed=-1), "seed", "0..4294967295"),
    ("seed beyond 32 bits", lambda r: r.update(seed=2**32), "seed", "0..4294967295"),
    # The profile names the folder outputs/<profile>/.
    ("profile climbs out", lambda r: r.update(profile="../../x"), "profile", "plain name"),
    ("absolute profile", lambda r: r.update(profile="/tmp/x"), "profile", "plain name"),
    ("empty profile", lambda r: r.update(profile=""), "profile", "plain name"),
    ("profile with a slash", lambda r: r.update(profile="a/b"), "profile", "plain name"),
    ("profile '..'", lambda r: r.update(profile=".."), "profile", "plain name"),
    ("profile with '..'", lambda r: r.update(profile="a..b"), "profile", "plain name"),
    ("hidden profile", lambda r: r.update(profile=".tiny"), "profile", "plain name"),
    ("profile with a newline", lambda r: r.update(profile="tiny\n"), "profile", "plain name"),
    ("profile of 65 characters", lambda r: r.update(profile="p" * 65), "profile", "plain name"),
    # Attention heads of a tiny model.
    (
        "heads that do not divide the hidden size",
        lambda r: r["model"]["tiny"].update(num_attention_heads=3, num_key_value_heads=1),
        "model.tiny.num_attention_heads",
        "3 must divide hidden_size 64",
    ),
    (
        "key/value heads that do not divide the heads",
        lambda r: r["model"]["tiny"].update(num_key_value_heads=3),
        "model.tiny.num_key_value_heads",
        "3 must divide num_attention_heads 4",
    ),
    (
        "no key/value heads",
        lambda r: r["model"]["tiny"].update(num_key_value_heads=0),
        "model.tiny.num_key_value_heads",
        "must be > 0",
    ),
    (
        "unknown loader",
        lambda r: r["data"]["xstest"].update(loader="xs_test"),
        "data.xstest.loader",
        "unknown loader 'xs_test' (known: pku_saferlhf,",
    ),
    (
        "unknown MMLU loader",
        lambda r: r["evaluation"]["mmlu"].update(loader="mmlu_pro"),
        "evaluation.mmlu.loader",
        "unknown loader 'mmlu_pro'",
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


# A float field reads `1e5` as 100000.0.
LOOKS_SCIENTIFIC = re.compile(r"[-+]?[0-9.]*[eE][-+]?[0-9]+")


@settings(max_examples=40, deadline=None)
@given(
    value=st.one_of(
        st.text(max_size=5).filter(lambda text: not LOOKS_SCIENTIFIC.fullmatch(text)),
        st.lists(st.integers(), max_size=2),
        st.none(),
        st.booleans(),
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


@pytest.mark.parametrize("profile", ["tiny", "paper-80gb", "rehearsal_2.b", "A0"])
def test_plain_profile_names_are_accepted(tmp_path, profile):
    assert load_params(write_variant(tmp_path, lambda r: r.update(profile=profile))).profile == (
        profile
    )


TINY_TEXT = Path("params/tiny.yaml").read_text()


def write_text_variant(tmp_path: Path, old: str, new: str, name: str = "variant.yaml") -> Path:
    """params/tiny.yaml's text with `old` (found once) replaced by `new`, written to a tmp file."""
    assert TINY_TEXT.count(old) == 1, old
    path = tmp_path / name
    path.write_text(TINY_TEXT.replace(old, new))
    return path


def lines_starting(path: Path, prefix: str) -> list[int]:
    return [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(prefix)]


@pytest.mark.parametrize(
    ("old", "new", "key", "prefix"),
    [
        ("seed: 0\n", "seed: 0\nseed: 7\n", "seed", "seed:"),
        ("  beta: 1.5\n", "  beta: 1.5\n  beta: 0.5\n", "training.beta", "  beta:"),
        ("training:\n", "training: {beta: 2.0}\ntraining:\n", "training", "training:"),
        ("{loader: xstest,", "{loader: xstest, loader: xstest,", "data.xstest.loader", "  xstest:"),
    ],
    ids=["top level", "nested", "section", "flow mapping"],
)
def test_a_key_set_twice_names_the_file_the_lines_and_the_key(tmp_path, old, new, key, prefix):
    # YAML keeps the later value without a word; a params file says each value once.
    path = write_text_variant(tmp_path, old, new)
    first, second = (lines_starting(path, prefix) * 2)[:2]
    with pytest.raises(ParamsError) as raised:
        load_params(path)
    message = str(raised.value)
    assert message == f"{path}: key '{key}': set twice, at lines {first} and {second}: keep one"


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-1", 0.1), ("1.0e-1", 0.1), ("1E+3", 1000.0), ("2e0", 2.0), (".5e1", 5.0)],
)
def test_a_float_field_reads_scientific_notation_without_a_dot(tmp_path, text, value):
    # YAML 1.1 reads `1e-1` (no dot) as a string; YAML 1.2 and every other reader as 0.1.
    path = write_text_variant(tmp_path, "  beta: 1.5\n", f"  beta: {text}\n")
    assert load_params(path).training.beta == value
    path = write_text_variant(tmp_path, "c_grid: [1.0e-2, 1.0]", f"c_grid: [{text}, 1e1]")
    assert load_params(path).probes.c_grid == (value, 10.0)


def test_a_string_field_keeps_text_that_looks_like_a_number(tmp_path):
    path = write_text_variant(
        tmp_path, "  name: tiny-random-llama\n", "  name: tiny-random-llama\n  revision: 12e45\n"
    )
    assert load_params(path).model.revision == "12e45"


def test_a_yaml_alias_reads_as_the_value_it_names(tmp_path):
    path = write_text_variant(
        tmp_path, "  beta: 1.5\n  learning_rate: 1.0e-4\n", "  beta: &b 1.5\n  learning_rate: *b\n"
    )
    assert load_params(path).training.learning_rate == 1.5


def test_a_yaml_alias_inside_the_value_it_names_is_refused(tmp_path):
    path = write_text_variant(tmp_path, "c_grid: [1.0e-2, 1.0]", "c_grid: &c [1.0, *c]")
    with pytest.raises(ParamsError) as raised:
        load_params(path)
    line = lines_starting(path, "  c_grid:")[0]
    expected = f"{path}: key 'probes.c_grid[1]': an alias inside the value it names (line {line})"
    assert str(raised.value) == expected


# "Billion laughs" as the value of training.beta: nine levels of ten aliases each, 10**9 strings
# once expanded (as the repr of an error message quoting the value would).
BILLION_LAUGHS = "\n".join(
    [
        "  beta:",
        "    - &l0 [" + ", ".join(["lol"] * 10) + "]",
        *(f"    - &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)),
    ]
)


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    path = write_text_variant(tmp_path, "  beta: 1.5\n", BILLION_LAUGHS + "\n")
    # In a child capped at 512 MiB of address space: expanding it fails fast there, never swaps.
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2**29, 2**29))\n"
        "from repsafe_lib.params import ParamsError, load_params\n"
        "try:\n    load_params(sys.argv[1])\n"
        "except ParamsError as error:\n    print(error)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    line = lines_starting(path, "    - &l5")[0]
    expected = f"{path}: key 'training.beta[5]': line {line}: more than 1000000 values once its"
    assert run.stdout.startswith(expected) and len(run.stdout) < len(str(path)) + 400, run.stdout


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        ("  beta: 1.5\n", "  beta: " + "x" * 10**6 + "\n", "training.beta", "expected float"),
        ("profile: tiny\n", "profile: " + "p" * 10**6 + "\n", "profile", "plain name"),
        ("seed: 0\n", "seed: 0\n? " + "k" * 10**6 + "\n: 1\n", "kkkk", "unknown key"),
        ("  layers: all\n", "  layers: [" + "0," * 50_000 + "0]\n", "extraction", "1-based"),
    ],
    ids=["a string of 10**6 characters", "a profile name", "a key", "a list of 50 000 items"],
)
def test_an_error_quotes_a_short_prefix_of_a_huge_value(tmp_path, old, new, key, words):
    path = write_text_variant(tmp_path, old, new)
    with pytest.raises(ParamsError) as raised:
        load_params(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: key '{key}") and words in message, message[:500]
    assert len(message) <= len(str(path)) + 450, message[:500]


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("  layers: all\n", "  layers: [" + "0," * 10**6 + "0]\n", "larger than 1048576 bytes"),
        ("seed: 0\n", "seed: " + "1" * 5000 + "\n", "a value YAML cannot read"),
        ("seed: 0\n", "seed: " + "[" * 30 + "]" * 30 + "\n", "nested deeper than 16 levels"),
        ("seed: 0\n", "seed: " + "[" * 5000 + "]" * 5000 + "\n", "nest"),
    ],
    ids=["a file of 2 MB", "an int of 5000 digits", "30 levels", "5000 levels"],
)
def test_a_file_too_big_or_too_deep_is_one_short_error(tmp_path, old, new, words):
    path = write_text_variant(tmp_path, old, new)
    with pytest.raises(ParamsError) as raised:
        load_params(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and words in message, message[:500]
    assert len(message) <= len(str(path)) + 450, message[:500]


@pytest.mark.parametrize(
    ("base_edit", "child", "owner", "key", "words"),
    [
        (("  alpha: 7.5\n", "  alpha: .nan\n"), "profile: child\n", "base", "reward.alpha", "fin"),
        (None, "reward: {alpha: .inf}\n", "child", "reward.alpha", "finite"),
        (("  c_grid: [1.0e-2, 1.0]", "  c_grid: [.nan]"), "", "base", "probes.c_grid[0]", "fin"),
        (
            ("  c_grid: [1.0e-2, 1.0]", "  c_grid: [.nan]"),
            "probes: {c_grid: [1.0, .inf]}\n",
            "child",
            "probes.c_grid[1]",
            "finite",
        ),
        (("profile: tiny\n", "profile: ../up\n"), "seed: 1\n", "base", "profile", "plain"),
        (("seed: 0\n", "seed: 0\nsead: 1\n"), "profile: child\n", "base", "sead", "unknown"),
        (("seed: 0\n", "seed: 0\nseed: 1\n"), "profile: child\n", "base", "seed", "twice"),
        (None, "profile: child\nmodel: {dtype: float8}\n", "child", "model.dtype", "one of"),
    ],
    ids=[
        "bad value in the base",
        "bad value in the child",
        "bad list item in the base",
        "the child's list replaces the base's",
        "bad profile in the base",
        "unknown key in the base",
        "key twice in the base",
        "bad literal in the child",
    ],
)
def test_with_extends_an_error_names_the_file_that_sets_the_key(
    tmp_path, base_edit, child, owner, key, words
):
    old, new = base_edit or ("seed: 0\n", "seed: 0\n")
    files = {"base": write_text_variant(tmp_path, old, new, "base.yaml")}
    files["child"] = tmp_path / "child.yaml"
    files["child"].write_text("extends: base.yaml\n" + child)
    with pytest.raises(ParamsError) as raised:
        load_params(files["child"])
    message = str(raised.value)
    assert raised.value.path == str(files[owner]) and raised.value.key.startswith(key), message
    assert message.startswith(f"{files[owner]}: key '{key}") and words in message, message
