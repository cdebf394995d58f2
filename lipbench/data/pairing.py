"""Cross-audio pairings: which clip's speech drives each clip under the dubbing protocol.

Reconstruction (config `audio: own`, the paper's Table 1) re-voices each clip with its own
speech, so the reference is a ground truth. Dubbing (`audio: cross`) drives each clip with
another clip's speech. The pairing is a derangement of the split's clip ids (no clip keeps
its own speech) drawn with `numpy.random.default_rng(seed)`:

- the synthetic set: from its recipe's seed, so the same recipe gives the same pairing;
- a manifest: the pairing shipped for it by name, `lipbench/data/pairings/<name>.yaml`
  (`hdtf_test33`), written once from its seed and checked against it by the tests.

The driving track is then the other clip's, cut or zero-padded to the reference's duration
(lipbench.io.fit_audio).
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources

import numpy as np

from lipbench.data.manifest import Manifest, ManifestError
from lipbench.storage import parse_yaml

FORMAT_VERSION = 1  # the files' `lipbench_pairing`


def derangement(ids, seed: int) -> dict[str, str]:
    """{clip: the clip whose speech drives it}, no clip mapped to itself: uniform over the
    derangements of `ids` (in their order), by drawing permutations until one has no fixed
    point (about e draws on average)."""
    ids = list(ids)
    if len(ids) < 2:
        raise ManifestError(f"cross audio needs at least 2 clips to pair, got {len(ids)}")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(ids))
        if not (order == np.arange(len(ids))).any():
            return {clip: ids[j] for clip, j in zip(ids, order)}


def _shipped():
    return resources.files("lipbench.data").joinpath("pairings")


def shipped_pairings() -> list[str]:
    return sorted(p.name[:-5] for p in _shipped().iterdir() if p.name.endswith(".yaml"))


def load_pairing(name: str) -> dict:
    """A shipped pairing: {'manifest', 'seed', 'pairs': {clip: driving clip}}."""
    if name not in shipped_pairings():
        raise ManifestError(
            f"no cross-audio pairing is shipped for manifest {name!r} (shipped: {', '.join(shipped_pairings())}); "
            "cross audio runs on the synthetic set or a split with a shipped pairing"
        )
    where = f"lipbench/data/pairings/{name}.yaml"
    data = parse_yaml(_shipped().joinpath(f"{name}.yaml").read_text(encoding="utf-8"), where, ManifestError)
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), dict):
        raise ManifestError(f"{where}: a pairing is a mapping with a 'pairs' mapping")
    if data.get("lipbench_pairing") != FORMAT_VERSION:
        version = data.get("lipbench_pairing")
        raise ManifestError(f"{where}: lipbench_pairing {version!r}, this lipbench reads {FORMAT_VERSION}")
    return data


def pairing_for(manifest: Manifest) -> dict[str, str]:
    """{clip: driving clip} for a split: a synthetic set's from its recipe's seed, else the
    one shipped under the manifest's name."""
    recipe = manifest.extra.get("recipe")
    if isinstance(recipe, dict) and "seed" in recipe:
        return derangement([c.id for c in manifest.clips], int(recipe["seed"]))
    return {str(k): str(v) for k, v in load_pairing(manifest.name)["pairs"].items()}


def cross_audio(manifest: Manifest, pairs: dict[str, str]) -> Manifest:
    """The split with each clip driven by its pair's speech (`Clip.audio_from`, `Clip.audio`)."""
    by_id = {c.id: c for c in manifest.clips}
    problems = [f"{c.id} has no pair" for c in manifest.clips if c.id not in pairs]
    problems += [
        f"{c.id} is paired with {pairs[c.id]}, which is not in the manifest"
        for c in manifest.clips
        if c.id in pairs and pairs[c.id] not in by_id
    ]
    problems += [f"{c.id} is paired with itself" for c in manifest.clips if pairs.get(c.id) == c.id]
    if problems:
        raise ManifestError(f"manifest {manifest.name}: cross audio: " + "; ".join(problems))
    clips = []
    for clip in manifest.clips:
        source = by_id[pairs[clip.id]]
        # fresh caches: a decoded track of the clip's own speech must not carry over
        clips.append(
            replace(
                clip,
                audio=source.audio_source,
                audio_from=source.id,
                audio_rate=source.audio_rate,
                _frames=None,
                _audio={},
            )
        )
    return Manifest(manifest.name, clips, manifest.path, manifest.description, dict(manifest.extra))
