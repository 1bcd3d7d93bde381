"""The sections of a params file that notebooks 00-03 read: the model, the data, hidden-state
extraction, the PCA figure, the probes and the hybrid reward R_h (paper Sec 3.1-3.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from repsafe_lib.loaders import LOADERS, OnBadRows
from repsafe_lib.params.errors import FieldError, require_fraction, require_positive, shown

ModelKind = Literal["hub", "gguf", "tiny-random"]
DtypeName = Literal["float32", "bfloat16", "float16"]
DeviceName = Literal["auto", "cpu", "cuda", "mps"]

TinyArchitecture = Literal["llama", "mistral", "deberta-v2"]


@dataclass(frozen=True)
class TinyModelParams:
    """A randomly initialised model of a few layers: a Llama policy (the tiny profile), or, for the
    rehearsal of the paper profile, models of the paper's architectures (a Llama or a Mistral
    causal LM; with `scalar_head`, a reward model: a sequence classifier with one output, always so
    for DeBERTa-v2). `chat_template: false` drops the borrowed tokenizer's chat template, as for a
    base model such as Llama-2-7b. `verdicts: [safe, unsafe]` makes a judge-shaped model whose
    first generated token is always one of the two (which one depends on the input), so that a
    guard judge's verdict parser, rates and agreement statistics get real input."""

    num_layers: int = 3
    hidden_size: int = 64
    intermediate_size: int = 128
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    architecture: TinyArchitecture = "llama"
    chat_template: bool = True
    scalar_head: bool = False
    verdicts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.verdicts and (len(self.verdicts) != 2 or self.scalar_head):
            raise ValueError("verdicts: a causal LM's two possible answers, e.g. [safe, unsafe]")
        if self.architecture == "deberta-v2" and not self.scalar_head:
            raise ValueError("a tiny deberta-v2 is a reward model: set scalar_head: true")
        sizes = ("num_layers", "hidden_size", "intermediate_size", "num_attention_heads")
        for name in (*sizes, "num_key_value_heads", "max_position_embeddings"):
            if getattr(self, name) <= 0:
                raise FieldError(name, f"must be > 0, got {getattr(self, name)}")
        # Each attention head takes hidden_size / heads dimensions; grouped-query attention shares
        # each key/value head among heads / kv_heads query heads.
        if self.hidden_size % self.num_attention_heads:
            raise FieldError(
                "num_attention_heads",
                f"{self.num_attention_heads} must divide hidden_size {self.hidden_size}",
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise FieldError(
                "num_key_value_heads",
                f"{self.num_key_value_heads} must divide num_attention_heads"
                f" {self.num_attention_heads}",
            )


@dataclass(frozen=True)
class ModelParams:
    """Which policy model to load and how.

    kind: `hub` (hub id or local directory, `source`), `gguf` (a GGUF file at `source`, or the one
    shipped inside the installed distribution `gguf_package`), `tiny-random` (built from `tiny`).
    """

    kind: ModelKind
    name: str
    source: str | None = None
    gguf_package: str | None = None
    tokenizer_source: str | None = None
    revision: str | None = None
    dtype: DtypeName = "float32"
    device: DeviceName = "auto"
    trust_remote_code: bool = False
    tiny: TinyModelParams | None = None

    def __post_init__(self) -> None:
        if self.kind == "hub" and not self.source:
            raise ValueError("kind 'hub' needs 'source' (a hub id or a local directory)")
        if self.kind == "gguf" and not (self.source or self.gguf_package):
            raise ValueError("kind 'gguf' needs 'source' (a .gguf file) or 'gguf_package'")
        if self.kind == "tiny-random" and self.tiny is None:
            raise ValueError("kind 'tiny-random' needs a 'tiny' architecture block")


@dataclass(frozen=True)
class DatasetParams:
    """One dataset: a loader name from `repsafe_lib.loaders.LOADERS` and where to read it.

    source: a hub id, a path (relative paths resolve from the repository root), or
    `demo:<file>` for a file bundled in `repsafe_lib/data/`. A hub id that the file named by
    $REPSAFE_HUB_COPIES maps to a local copy is read from that copy (`loaders.copies`).
    optional: only for `data.transfer`: when the source can't be read (no hub, no local copy),
    notebook 00 says so and the transfer table is left out, instead of stopping the run.
    """

    loader: str
    source: str
    split: str = "train"
    revision: str | None = None
    max_rows: int | None = None
    optional: bool = False

    def __post_init__(self) -> None:
        if self.loader not in LOADERS:
            problem = f"unknown loader {shown(self.loader)} (known: {', '.join(LOADERS)})"
            raise FieldError("loader", problem)
        if self.max_rows is not None:
            require_positive(self.max_rows, "max_rows")


# Loaders whose records give labelled responses (a pair gives its two), for data.transfer.
TRANSFER_LOADERS = ("beavertails", "pku_saferlhf")


@dataclass(frozen=True)
class DataParams:
    pairs: DatasetParams
    test_fraction: float = 0.2
    on_bad_rows: OnBadRows = "raise"
    red_team: DatasetParams | None = None
    xstest: DatasetParams | None = None
    do_not_answer: DatasetParams | None = None
    salad_base: DatasetParams | None = None
    transfer: DatasetParams | None = None
    # A file mapping hub ids to local copies (`loaders.copies`): a path from the repository root
    # or `demo:<file>`; when unset, the file $REPSAFE_HUB_COPIES names, if any.
    hub_copies: str | None = None

    def __post_init__(self) -> None:
        require_fraction(self.test_fraction, "test_fraction")
        for name in ("pairs", "red_team", "xstest", "do_not_answer", "salad_base"):
            spec = getattr(self, name)
            if spec is not None and spec.optional:
                problem = "only data.transfer may be optional: the pipeline needs this dataset"
                raise FieldError(f"{name}.optional", problem)
        if self.transfer is not None and self.transfer.loader not in TRANSFER_LOADERS:
            problem = (
                f"the transfer set needs labelled responses: loader one of {list(TRANSFER_LOADERS)},"
                f" got {shown(self.transfer.loader)}"
            )
            raise FieldError("transfer.loader", problem)


@dataclass(frozen=True)
class ExtractionParams:
    """Hidden-state extraction (paper Sec 3.2): which decoder layers (1-based, or "all") and batching.

    States are computed in the model's dtype (`model.dtype`) and cached as float16.
    max_length: the one token budget of every conversation whose last-token states R_h reads —
    the states it is fit on (notebook 01), the policy's training sequences whose states give gamma
    and feed the refresh (notebooks 04-05, online DPO too), and the samples it ranks (notebook 05).
    Longer conversations lose tokens from the start, so the last token stays the real one; with
    two budgets a long pair would be scored on a state from a shorter context than R_h was fit
    on. It also bounds training memory (sequences of up to this many tokens); the scalar reward
    model keeps its own `sampling.reward_model.max_length`, as it reads no states of the policy.
    """

    layers: Literal["all"] | tuple[int, ...]
    max_length: int = 512
    batch_size: int = 8

    def __post_init__(self) -> None:
        require_positive(self.max_length, "max_length")
        require_positive(self.batch_size, "batch_size")
        if isinstance(self.layers, tuple) and (not self.layers or min(self.layers) < 1):
            raise ValueError(f"layers are 1-based decoder layer numbers, got {list(self.layers)}")


@dataclass(frozen=True)
class PcaParams:
    """Fig 2/8: PCA + KDE of safe vs unsafe states on a few layers spread shallow to deep."""

    layers: Literal["auto"] | tuple[int, ...] = "auto"
    num_panels: int = 4
    samples_per_class: int = 300

    def __post_init__(self) -> None:
        require_positive(self.num_panels, "num_panels")
        require_positive(self.samples_per_class, "samples_per_class")


@dataclass(frozen=True)
class ProbeParams:
    """Fig 1: per-layer linear SVM probes, refit on `num_splits` prompt-grouped splits.

    Split 0 is the canonical split of notebook 00; the others re-split all pairs by prompt with
    seeds `seed + 1, seed + 2, ...`. The SVM's C is picked per layer from `c_grid` by an inner
    cross-validation (`inner_folds` folds, grouped by prompt) on the training side only.
    """

    num_splits: int = 3
    c_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    inner_folds: int = 3
    max_iter: int = 10000  # liblinear's iteration cap (solver: sklearn)
    # sklearn: liblinear's LinearSVC, one fit at a time on the CPU. torch: the same problem solved
    # for every C and fold of a layer at once (docs/method.md), on `device` ("auto": the GPU if any).
    solver: Literal["sklearn", "torch"] = "sklearn"
    device: str = "auto"

    def __post_init__(self) -> None:
        require_positive(self.num_splits, "num_splits")
        require_positive(self.max_iter, "max_iter")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.inner_folds < 2:
            raise ValueError(f"inner_folds must be >= 2, got {self.inner_folds}")
        if not self.c_grid or min(self.c_grid) <= 0:
            raise ValueError(f"c_grid must be non-empty and > 0, got {list(self.c_grid)}")


@dataclass(frozen=True)
class RewardParams:
    """Hybrid reward and preference confidence (Eq 7-8).

    gate: `input` (softmax over a linear map of the layer scores, the method) or `static`
    (a learned softmax over layers that ignores the input, the ablation). Training: full-batch
    AdamW on the training pairs for `epochs` steps, on the probes' out-of-fold layer scores
    (`gate_fit: out_of_fold`: each pair scored by probes that never saw it) or on their in-sample
    scores (`in_sample`, where every layer looks perfect on separable training data); the SVM
    scorers stay as the probes fit them (training's per-batch refresh moves them:
    `training.refresh`).
    """

    mu: float = 1.0
    alpha: float = 7.5
    gate: Literal["input", "static"] = "input"
    gate_fit: Literal["out_of_fold", "in_sample"] = "out_of_fold"
    epochs: int = 300
    learning_rate: float = 1e-2
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        require_positive(self.alpha, "alpha")
        require_positive(self.epochs, "epochs")
        require_positive(self.learning_rate, "learning_rate")
        if self.mu < 0:
            raise ValueError(f"mu must be >= 0, got {self.mu}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
