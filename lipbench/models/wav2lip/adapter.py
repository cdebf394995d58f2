"""Wav2Lip (Prajwal et al. 2020), run as Rudrabha/Wav2Lip inference.py runs it, chunk by chunk.

The generator is written here with upstream's module names, so `wav2lip.pth` and
`wav2lip_gan.pth` (torch.save({"state_dict": ...}), keys with or without DataParallel's
`module.` prefix) load with strict=True. Per frame, as inference.py:

1. face box: Wav2Lip's S3FD on the full frame, padded (0, 10, 0, 0) and smoothed over
   5 frames (`lipbench.models.wav2lip.detect`);
2. the box's crop resized to 96x96 (cv2 INTER_LINEAR), in BGR as upstream reads
   frames with cv2; a copy with the lower half (rows 48..95) zeroed, concatenated in
   front of it (6 channels), / 255;
3. 16 columns of the 80-bin mel starting at int(i * 80 / fps) (`lipbench.models.wav2lip.mel`);
4. the generator; its output * 255, truncated to uint8, resized back to the box
   (INTER_LINEAR) and pasted into the frame. Nothing outside the box changes.

lipbench frames are RGB: crops are flipped to BGR for the network and its output
flipped back, which gives upstream's pixels (resizing works per channel).

Streaming. The adapter is causal in chunks of `chunk_frames` frames. For a chunk
[s, e) it needs (a) the face boxes of frames up to e + 3, because the smoothing
averages each box with the next four (so the boxes of a chunk are upstream's
whole-clip boxes, exactly, including the last frames' rule): 4 frames of reference
video ahead; and (b) the audio up to half an STFT window past the last column of
frame e - 1's mel window: Wav2Lip's window starts at the frame and spans 16 columns,
so that is 15 hops (187.5 ms) + 25 ms = 212.5 ms past the start of frame e - 1. The
mel columns are computed from just those samples and equal the whole-clip
spectrogram's. A live system would run that far behind its inputs.

Length. inference.py makes one frame per mel window and stops after the first window
that would run past the last column (that window is replaced by the last 16 columns),
cutting the video there (or looping it when the audio is longer). lipbench answers
with exactly the reference's frames: frame i always uses upstream's window rule, so
frames past upstream's last one use the last 16 columns, as upstream's last frame does.

Frames without a face: upstream stops with an error; so does this adapter, naming the
clip and the frame.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
import torch.nn as nn

from lipbench.models.wav2lip import detect as wav2lip_detect, mel as audio_mel
from lipbench.checkpoints import load_into, read_state_dict
from lipbench.models.base import LipSyncModel, chunk_bounds
from lipbench.types import Request
from lipbench.weights import BadWeightError

IMG_SIZE = 96
CHECKPOINTS = ("wav2lip.pth", "wav2lip_gan.pth")
DETECTOR_FILE = "s3fd.pth"
GENERATOR_PARAMETERS = 36_298_035  # Wav2Lip() learned parameters (BatchNorm running stats excluded)


class ConvBN(nn.Module):
    """Conv (or transposed conv) + BatchNorm + ReLU, with an optional identity skip
    added before the ReLU (upstream conv.py Conv2d / Conv2dTranspose)."""

    def __init__(self, conv: nn.Module, residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x):
        out = self.conv_block(x)
        return self.act(out + x if self.residual else out)


def _conv(cin, cout, kernel, stride, padding) -> ConvBN:
    return ConvBN(nn.Conv2d(cin, cout, kernel, stride, padding))


def _same(channels: int, count: int) -> list[ConvBN]:
    """`count` residual 3x3 convs that keep the shape."""
    return [ConvBN(nn.Conv2d(channels, channels, 3, 1, 1), residual=True) for _ in range(count)]


def _up(cin, cout, stride, padding, output_padding) -> ConvBN:
    return ConvBN(nn.ConvTranspose2d(cin, cout, 3, stride, padding, output_padding))


class Wav2LipGenerator(nn.Module):
    """forward(mel (B, 1, 80, 16), faces (B, 6, 96, 96) in [0, 1], BGR) -> (B, 3, 96, 96) BGR in [0, 1].

    A U-Net: the face encoder's seven levels (96 -> 1 px) are concatenated to the
    decoder's levels, which start from the audio encoder's 512-d embedding."""

    def __init__(self):
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(_conv(6, 16, 7, 1, 3)),  # 96
                nn.Sequential(_conv(16, 32, 3, 2, 1), *_same(32, 2)),  # 48
                nn.Sequential(_conv(32, 64, 3, 2, 1), *_same(64, 3)),  # 24
                nn.Sequential(_conv(64, 128, 3, 2, 1), *_same(128, 2)),  # 12
                nn.Sequential(_conv(128, 256, 3, 2, 1), *_same(256, 2)),  # 6
                nn.Sequential(_conv(256, 512, 3, 2, 1), *_same(512, 1)),  # 3
                nn.Sequential(_conv(512, 512, 3, 1, 0), _conv(512, 512, 1, 1, 0)),  # 1
            ]
        )
        self.audio_encoder = nn.Sequential(  # 80x16 -> 1x1
            _conv(1, 32, 3, 1, 1),
            *_same(32, 2),
            _conv(32, 64, 3, (3, 1), 1),
            *_same(64, 2),
            _conv(64, 128, 3, 3, 1),
            *_same(128, 2),
            _conv(128, 256, 3, (3, 2), 1),
            *_same(256, 1),
            _conv(256, 512, 3, 1, 0),
            _conv(512, 512, 1, 1, 0),
        )
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(_conv(512, 512, 1, 1, 0)),  # 1
                nn.Sequential(_up(1024, 512, 1, 0, 0), *_same(512, 1)),  # 3
                nn.Sequential(_up(1024, 512, 2, 1, 1), *_same(512, 2)),  # 6
                nn.Sequential(_up(768, 384, 2, 1, 1), *_same(384, 2)),  # 12
                nn.Sequential(_up(512, 256, 2, 1, 1), *_same(256, 2)),  # 24
                nn.Sequential(_up(320, 128, 2, 1, 1), *_same(128, 2)),  # 48
                nn.Sequential(_up(160, 64, 2, 1, 1), *_same(64, 2)),  # 96
            ]
        )
        self.output_block = nn.Sequential(_conv(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, mel: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 4 or faces.dim() != 4:
            raise ValueError(
                f"Wav2Lip takes mel (B, 1, 80, 16) and faces (B, 6, 96, 96), "
                f"got {tuple(mel.shape)} and {tuple(faces.shape)}"
            )
        skips, x = [], faces
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)
        x = self.audio_encoder(mel)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)
        return self.output_block(x)


def load_generator(path, device: str = "cpu") -> Wav2LipGenerator:
    """A Wav2Lip checkpoint ({"state_dict": ...}, keys with or without `module.`)."""
    checkpoint = read_state_dict(path, "a Wav2Lip checkpoint")
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise BadWeightError(
            path, f"a Wav2Lip checkpoint holds {{'state_dict': ...}}; found {sorted(checkpoint)[:5]}", "mismatch"
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    net = load_into(
        Wav2LipGenerator(),
        state,
        path,
        "a Wav2Lip generator state_dict (upstream models/wav2lip.py Wav2Lip)",
        "Wav2Lip",
    )
    return net.to(device).eval()


class Wav2Lip(LipSyncModel):
    """Wav2Lip's inference.py, streamed in chunks of `chunk_frames` frames.

    `detector`: "s3fd" (upstream's, needs s3fd.pth), "mediapipe" (a stand-in that
    needs no weights; not upstream's boxes) or any callable taking RGB uint8 frames
    (n, H, W, 3) and returning per frame a raw box (x1, y1, x2, y2) or None; the
    pads and the smoothing apply to whatever it returns."""

    name = "wav2lip"
    # a frame's mel window reaches 212.5 ms past the frame's start: 172.5 ms past its end at 25 fps
    audio_lookahead_s = 0.2125 - 1 / 25
    causal = True
    chunk_frames = (16,)
    parameters = GENERATOR_PARAMETERS
    dtype = "fp32"

    def __init__(
        self,
        checkpoint: str = "wav2lip.pth",
        weights_dir=None,
        batch_size: int = 128,
        chunk_frames: int = 16,
        face_det_batch_size: int = wav2lip_detect.BATCH_SIZE,
        detector="s3fd",
    ):
        super().__init__()
        if checkpoint not in CHECKPOINTS:
            raise ValueError(f"wav2lip checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}")
        if not (isinstance(detector, str) and detector in ("s3fd", "mediapipe")) and not callable(detector):
            raise ValueError(f"wav2lip detector must be 's3fd', 'mediapipe' or a callable, got {detector!r}")
        if int(chunk_frames) < 1 or int(batch_size) < 1 or int(face_det_batch_size) < 1:
            raise ValueError("wav2lip chunk_frames, batch_size and face_det_batch_size must be >= 1")
        self.checkpoint, self.weights_dir = checkpoint, weights_dir
        self.batch_size, self.face_det_batch_size = int(batch_size), int(face_det_batch_size)
        self.chunk_frames = (int(chunk_frames),)
        # generator passes before each chunk exists (the latency floor counts these)
        self.forward_passes_first_chunk = self.forward_passes_per_chunk = math.ceil(int(chunk_frames) / self.batch_size)
        self.detector_spec = detector
        self.detector = self.generator = None
        self.weight_hashes: dict[str, str] = {}
        # the last stream's detector boxes (x1, y1, x2, y2), padded and smoothed boxes and
        # first mel column of each frame, for inspection
        self.last_stream: dict = {}

    def weight_files(self) -> dict[str, Path]:
        from lipbench.weights import find_weight

        names = [self.checkpoint] + ([DETECTOR_FILE] if self.detector_spec == "s3fd" else [])
        return {name: find_weight(name, self.weights_dir, needed_by="wav2lip") for name in names}

    def load(self, device: str = "cpu") -> None:
        from lipbench.weights import file_sha256

        super().load(device)
        paths = self.weight_files()
        self.generator = load_generator(paths[self.checkpoint], device)
        self.weight_hashes = {name: file_sha256(path) for name, path in paths.items()}
        if self.detector_spec == "s3fd":
            self.detector = wav2lip_detect.Wav2LipS3FD(paths[DETECTOR_FILE], device, self.face_det_batch_size)
        elif self.detector_spec == "mediapipe":
            self.detector = wav2lip_detect.MediaPipeBoxes()
        else:
            self.detector = self.detector_spec

    def stream(self, request: Request) -> Iterator[np.ndarray]:
        if self.generator is None:
            raise RuntimeError("wav2lip: call load() before stream()")
        clip = request.clip_id
        if request.audio_rate != audio_mel.SAMPLE_RATE:
            raise ValueError(f"{clip}: Wav2Lip needs 16 kHz audio, the request has {request.audio_rate} Hz")
        n_samples = request.n_samples  # the track's length is known up front; its samples are not
        total = audio_mel.n_columns(n_samples)
        if total < audio_mel.MEL_STEP:
            raise ValueError(
                f"{clip}: {n_samples} audio samples give {total} mel columns; "
                f"Wav2Lip needs {audio_mel.MEL_STEP} (0.2 s)"
            )
        frames = request.frames
        n, height, width = frames.shape[:3]
        smoother = wav2lip_detect.BoxSmoother(n)
        self.last_stream = {
            "clip": clip,
            "detected": np.zeros((n, 4), np.int64),
            "boxes": np.zeros((n, 4), np.int64),
            "mel_starts": np.zeros(n, np.int64),
        }
        for start, end in chunk_bounds(n, self.chunk_frames):
            with self.stage("detect"):
                self._detect_until(min(n, end + wav2lip_detect.SMOOTH_WINDOW - 1), frames, smoother, clip)
                boxes = smoother.take(end)
            with self.stage("generate"):
                mel_starts = [audio_mel.window_start(i, request.fps, total) for i in range(start, end)]
                first, stop = min(mel_starts), max(mel_starts) + audio_mel.MEL_STEP
                # the samples these columns need, and no more (live: waits for them)
                audio = np.asarray(
                    request.audio_until(audio_mel.samples_needed(stop) / audio_mel.SAMPLE_RATE), np.float32
                )
                if not np.isfinite(audio).all():
                    raise ValueError(f"{clip}: the audio has NaN or infinite samples")  # upstream: "Mel contains nan"
                mel = audio_mel.mel_columns(audio, first, stop)
                windows = np.stack([mel[:, s - first : s - first + audio_mel.MEL_STEP] for s in mel_starts])
                crops = np.stack(
                    [
                        cv2.resize(frame[y1:y2, x1:x2], (IMG_SIZE, IMG_SIZE))
                        for frame, (x1, y1, x2, y2) in zip(frames[start:end], boxes)
                    ]
                )
                faces = self._generate(windows, crops)
            with self.stage("composite"):
                out = frames[start:end].copy()
                for frame, face, (x1, y1, x2, y2) in zip(out, faces, boxes):
                    frame[y1:y2, x1:x2] = cv2.resize(face, (x2 - x1, y2 - y1))
            self.last_stream["boxes"][start:end] = boxes
            self.last_stream["mel_starts"][start:end] = mel_starts
            yield out

    def declared_lookahead_s(self, fps: float) -> float:
        """212.5 ms past a frame's start, whatever the frame rate: 0.2125 - 1/fps past its end."""
        return 0.2125 - 1 / fps

    def _detect_until(self, stop: int, frames: np.ndarray, smoother, clip: str) -> None:
        """Detect frames [arrived, stop) and hand their padded boxes to the smoother."""
        first = smoother.arrived
        if first >= stop:
            return
        height, width = frames.shape[1:3]
        padded = []
        for k, raw in enumerate(self.detector(frames[first:stop]), first):
            if raw is None:
                raise ValueError(
                    f"{clip}: no face detected in frame {k} (Wav2Lip's face detection; upstream stops here too)"
                )
            box = wav2lip_detect.padded_box(raw, height, width)
            if box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError(
                    f"{clip}: frame {k}: the face box {tuple(int(v) for v in raw)} is empty "
                    f"inside the {width}x{height} frame"
                )
            padded.append(box)
            self.last_stream["detected"][k] = raw
        smoother.push(padded)

    @torch.no_grad()
    def _generate(self, windows: np.ndarray, crops: np.ndarray) -> np.ndarray:
        """Mel windows (k, 80, 16) and RGB crops (k, 96, 96, 3) -> RGB uint8 faces (k, 96, 96, 3)."""
        out = []
        for b in range(0, len(crops), self.batch_size):
            face = torch.from_numpy(np.ascontiguousarray(crops[b : b + self.batch_size, ..., ::-1])).to(self.device)
            masked = face.clone()
            masked[:, IMG_SIZE // 2 :] = 0
            x = torch.cat((masked, face), dim=3).permute(0, 3, 1, 2).float() / 255.0
            mel = torch.from_numpy(windows[b : b + self.batch_size, None]).to(self.device)
            pred = self.generator(mel, x)
            # upstream: (pred * 255.).astype(np.uint8), i.e. truncation; then back to RGB
            out.append((pred * 255.0).to(torch.uint8).permute(0, 2, 3, 1).flip(-1).cpu().numpy())
        return np.concatenate(out)

    def describe(self) -> dict:
        spec = self.detector_spec
        detector = spec if isinstance(spec, str) else getattr(spec, "__qualname__", type(spec).__qualname__)
        return {
            **super().describe(),
            "checkpoint": self.checkpoint,
            "batch_size": self.batch_size,
            "face_det_batch_size": self.face_det_batch_size,
            "detector": detector,
            "weights_sha256": dict(self.weight_hashes),
        }


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded generator weights with upstream's key names and shapes, drawn with NumPy so
    every machine makes the same file. Scaled to keep activations of order one through
    the residual stacks (He-scaled convs, BatchNorm statistics near the identity with
    some spread) and the output logits of order one, so the sigmoid is not saturated."""
    from lipbench.random_weights import seeded_state

    net = Wav2LipGenerator()
    kinds = {name: type(module) for name, module in net.named_modules()}

    def draw(key, shape, rng):
        kind = kinds[key.rsplit(".", 1)[0]]
        if key.endswith("num_batches_tracked"):
            return rng.integers(1000, 100000)
        if key.endswith(("running_mean", ".bias")):
            return rng.normal(0.0, 0.1, shape)
        if key.endswith("running_var"):
            return rng.uniform(0.5, 2.0, shape)
        if kind is nn.BatchNorm2d:
            return rng.uniform(0.3, 0.7, shape)
        # fan in: what one output sums over; a stride-2 transposed conv (in, out, k, k)
        # sums over about a quarter of its taps
        if kind is nn.ConvTranspose2d:
            fan_in = shape[0] * shape[2] * shape[3] / (4 if key.endswith(".weight") else 1)
        else:
            fan_in = int(np.prod(shape[1:]))
        array = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        return array * 10.0 if key == "output_block.1.weight" else array  # logits of order one at the sigmoid

    return seeded_state(net.state_dict(), np.random.default_rng(seed), draw)
