"""Model registry: short names resolve lazily to adapter classes; anywhere a model name
is accepted, `package.module:Class` works too."""

from __future__ import annotations

from lipbench.models.base import LipSyncModel
from lipbench.registry import Registry

MODELS = Registry(
    "model",
    LipSyncModel,
    {
        "ground_truth": "lipbench.models.oracles:GroundTruth",
        "still": "lipbench.models.oracles:Still",
        "av_shift": "lipbench.models.oracles:AVShift",
        "procedural": "lipbench.models.procedural:Procedural",
        "precomputed": "lipbench.models.precomputed:Precomputed",
        "wav2lip": "lipbench.models.wav2lip.adapter:Wav2Lip",
        "worker": "lipbench.models.worker:WorkerModel",
        "latentsync": "lipbench.models.latentsync.adapter:LatentSync",
        "musetalk": "lipbench.models.musetalk.adapter:MuseTalk",
        "lipforcing": "lipbench.models.lipforcing.adapters:LipForcing",
        "self_forcing": "lipbench.models.lipforcing.adapters:SelfForcing",
        "omniavatar_ls": "lipbench.models.lipforcing.adapters:OmniAvatarLS",
    },
    entry_point_group="lipbench.models",
)


def create(name: str, **args) -> LipSyncModel:
    return MODELS.resolve(name)(**args)
