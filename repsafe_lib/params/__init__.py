"""Run parameters: one YAML file per profile, loaded into frozen dataclasses.

Every value a notebook uses lives in `params/<profile>.yaml`. Loading validates the whole file at
once: an unknown key, a value of the wrong type, a missing required key, an out-of-range or
non-finite value, a key set twice is a `ParamsError` that names the file (with `extends:`, the one
that sets the key) and the dotted key. YAML is read with the safe loader only; a float field also
takes YAML 1.2's `1e-1`. A params file is at most 1 MiB and holds at most a million values once its
aliases are expanded; an error message quotes at most a short prefix of any value.

Modules: `errors` (the error types), `representation_sections` and `alignment_sections` (the
sections' dataclasses), `profile` (the whole file), `conversion` (values checked against the
dataclasses' types), `yaml_files` (safe reading, limits, `extends:`), `loading` (`load_params`).
"""

from repsafe_lib.params.alignment_sections import (
    ComputeParams,
    EvaluationParams,
    LoraParams,
    OnlineParams,
    RefreshKind,
    RewardModelParams,
    SamplingParams,
    SamplingRun,
    TrainingParams,
    TrainingRun,
)
from repsafe_lib.params.errors import FieldError, ParamsError, shown
from repsafe_lib.params.loading import (
    DEFAULT_PARAMS_FILE,
    PARAMS_ENV_VAR,
    default_params_file,
    load_params,
    resolve_layers,
)
from repsafe_lib.params.profile import Params
from repsafe_lib.params.representation_sections import (
    DataParams,
    DatasetParams,
    DeviceName,
    DtypeName,
    ExtractionParams,
    ModelKind,
    ModelParams,
    PcaParams,
    ProbeParams,
    RewardParams,
    TinyArchitecture,
    TinyModelParams,
)
from repsafe_lib.params.yaml_files import merge_overlay, raw_params

__all__ = [
    "DEFAULT_PARAMS_FILE",
    "PARAMS_ENV_VAR",
    "ComputeParams",
    "DataParams",
    "DatasetParams",
    "DeviceName",
    "DtypeName",
    "EvaluationParams",
    "ExtractionParams",
    "FieldError",
    "LoraParams",
    "ModelKind",
    "ModelParams",
    "OnlineParams",
    "Params",
    "ParamsError",
    "PcaParams",
    "ProbeParams",
    "RefreshKind",
    "RewardModelParams",
    "RewardParams",
    "SamplingParams",
    "SamplingRun",
    "TinyArchitecture",
    "TinyModelParams",
    "TrainingParams",
    "TrainingRun",
    "default_params_file",
    "load_params",
    "merge_overlay",
    "raw_params",
    "resolve_layers",
    "shown",
]
