"""What subject and background consistency share: VBench's first-and-previous rule over
the per-frame features of a network (subject.py: DINO, background.py: CLIP)."""

from __future__ import annotations

import torch

from lipbench.metric_keys import metric_key
from lipbench.metrics.base import ClipContext, NetworkMetric
from lipbench.metrics.vbench import first_and_previous_consistency, video_tensor


class ConsistencyMetric(NetworkMetric):
    """Subject and background consistency: VBench's first-and-previous rule over the
    per-frame features of a subclass's network (`frame_features`: net, (T, 3, H, W) uint8
    video, device, batch size -> (T, D) features)."""

    needs_reference = False  # the generated video alone

    @staticmethod
    def frame_features(net, video: torch.Tensor, device: str, batch_size: int) -> torch.Tensor:
        raise NotImplementedError

    def compute(self, ctx: ClipContext) -> dict[str, float]:
        video = ctx.generated
        key = metric_key(self.name, self.protocol)
        frames = video_tensor(video.frames, f"{video.source or ctx.clip_id} ({key})")
        features = self.frame_features(self.net, frames, self.device, self.batch_size)
        return {key: first_and_previous_consistency(features)}
