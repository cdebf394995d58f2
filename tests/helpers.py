"""Models for tests, reachable as 'tests.helpers:Name' like any user's model."""

import numpy as np

from lipbench.models.base import LipSyncModel


class Interrupting(LipSyncModel):
    """Ground truth that raises KeyboardInterrupt (a user's Ctrl-C) on a chosen clip."""

    name = "interrupting"
    interrupt_on: str | None = None
    calls: list = []

    def stream(self, request):
        Interrupting.calls.append(request.clip_id)
        if request.clip_id == Interrupting.interrupt_on:
            raise KeyboardInterrupt
        yield request.frames.copy()


class FailsOn(LipSyncModel):
    """Fails on one clip, in one of several ways; ground truth elsewhere."""

    name = "fails_on"

    def __init__(self, clip: str = "", how: str = "raise"):
        super().__init__()
        self.clip, self.how = clip, how

    def stream(self, request):
        if request.clip_id != self.clip:
            yield request.frames.copy()
        elif self.how == "raise":
            raise RuntimeError("simulated model failure")
        elif self.how == "short":
            yield request.frames[:-1].copy()
        elif self.how == "float":
            yield request.frames.astype(np.float32)


class Sleeper(LipSyncModel):
    """Known per-chunk work: `first_s` before the first chunk, `chunk_s` before each later one."""

    name = "sleeper"
    causal = True

    def __init__(self, first_s: float = 0.02, chunk_s: float = 0.02, frames_per_chunk: int = 4):
        super().__init__()
        self.first_s, self.chunk_s, self.frames_per_chunk = first_s, chunk_s, frames_per_chunk

    def stream(self, request):
        import time

        for start in range(0, request.n_frames, self.frames_per_chunk):
            with self.stage("sleep"):
                time.sleep(self.first_s if start == 0 else self.chunk_s)
            yield request.frames[start:start + self.frames_per_chunk]
