"""A model package for a worker interpreter that has NumPy but not lipbench: it echoes the
reference frames in chunks, and on chosen clips fails in each way a worker can."""

import importlib.util
import os
import sys
import time

import numpy as np

import lipbench_worker


class Toy(lipbench_worker.Model):
    """`chunk`: frames per chunk; `delay_s`: work per chunk; `fail`: {clip id: how};
    `isolated`: refuse to load in an interpreter that can import lipbench."""

    parameters = 1234
    dtype = "fp32"

    def __init__(self, chunk=4, delay_s=0.0, fail=None, isolated=False, listen=False):
        self.chunk, self.delay_s, self.fail, self.isolated = int(chunk), float(delay_s), dict(fail or {}), isolated
        self.listen = listen  # read the speech up to each chunk's end (live: wait for it)
        self.prepared = []

    def load(self, device):
        super().load(device)
        if self.isolated and importlib.util.find_spec("lipbench") is not None:
            raise RuntimeError("this worker interpreter can import lipbench; the test needs one that cannot")

    def prepare(self, request):
        self.prepared.append(request.clip_id)

    def stream(self, request):
        if request.clip_id not in self.prepared:
            raise RuntimeError(f"stream({request.clip_id}) before prepare({request.clip_id})")
        how = self.fail.get(request.clip_id)
        frames = np.array(request.frames)
        for start in range(0, request.n_frames, self.chunk):
            if self.listen:
                request.audio_until(min(start + self.chunk, request.n_frames) / request.fps)
            with self.stage("work"):
                time.sleep(self.delay_s)
            part = frames[start : start + self.chunk]
            if how == "crash" and start > 0:
                print("toy worker: simulated crash in native code", file=sys.stderr, flush=True)
                os._exit(3)
            if how == "hang" and start > 0:
                time.sleep(3600)
            if how == "malformed" and start > 0:
                part = part.astype(np.float32)
            if how == "raise" and start > 0:
                raise ValueError("simulated model failure")
            if how == "short" and start == 0:
                part = part[:-1]
            yield part
