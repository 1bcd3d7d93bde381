"""The whole params file of one profile: its name, the run's seed and every section."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field

from repsafe_lib.params.alignment_sections import (
    ComputeParams,
    EvaluationParams,
    SamplingParams,
    TrainingParams,
)
from repsafe_lib.params.errors import FieldError, shown
from repsafe_lib.params.representation_sections import (
    DataParams,
    ExtractionParams,
    ModelParams,
    PcaParams,
    ProbeParams,
    RewardParams,
)

# A profile names the folder outputs/<profile>/: one plain path component.
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit


@dataclass(frozen=True)
class Params:
    profile: str
    seed: int
    model: ModelParams
    data: DataParams
    extraction: ExtractionParams
    training: TrainingParams
    pca: PcaParams = field(default_factory=PcaParams)
    probes: ProbeParams = field(default_factory=ProbeParams)
    reward: RewardParams = field(default_factory=RewardParams)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    compute: ComputeParams = field(default_factory=ComputeParams)
    source_file: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not PROFILE_NAME.fullmatch(self.profile) or ".." in self.profile:
            raise FieldError(
                "profile",
                "must be a plain name of at most 64 letters, digits, '.', '_' or '-', starting"
                f" with a letter or digit, without '..' (it names outputs/<profile>/),"
                f" got {shown(self.profile)}",
            )
        if not 0 <= self.seed <= MAX_SEED:
            raise FieldError("seed", f"must lie in 0..{MAX_SEED} (2**32 - 1), got {self.seed}")

    def fingerprint(self) -> str:
        """Short hash of every value, for manifests and cache keys."""
        values = dataclasses.asdict(self)
        values.pop("source_file")
        blob = json.dumps(values, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
