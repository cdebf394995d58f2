"""MuseTalk 1.5 in-process: `musetalk` (TMElyralab/MuseTalk at 0a89dec).

Two modes, each following one upstream script:

- `normal` (`scripts/inference.py`, fp32, batches of 8): everything per clip is in the
  timed stream, in upstream's order: whisper features of the whole audio
  (`audio_encode`), face boxes (`faces`), VAE latents of every frame's 256 px crop
  (`encode`: lower half masked + reference, one frame at a time as upstream), then per
  batch of 8 the UNet step (`unet`) and the VAE decode (`decode`), then blending every
  frame (`blend`: BiSeNet parsing of each frame, paste-back). Upstream writes frames only
  after all batches and the blending, so the stream yields once, at the end (not causal).
- `realtime` (`scripts/realtime_inference.py`, fp16 on CUDA, batches of 20): `prepare`
  (untimed, called before each stream) makes the avatar as upstream does ahead of time:
  face boxes, VAE latents of the crops, blending masks (BiSeNet, blur 0.1 of the side)
  and their boxes. The stream then encodes the whole audio with whisper
  (`audio_encode`: upstream's clock starts before it) and per batch of 20 runs `unet`,
  `decode`, `blend` (paste through the prepared mask) and yields the batch: causal,
  chunks of 20. Upstream blends in a second thread while the next batch runs; here a
  batch is blended before it is yielded (a frame exists once it is blended). (Upstream's
  blending thread stops at `idx >= video_len - 1`, so its realtime videos lack the last
  frame; lipbench makes all of them.)

Frame count: upstream makes floor(seconds * fps) frames; lipbench asks for exactly the
reference's count, so windows past the audio read zeros (see `audio.frame_windows`), and
frame i uses reference frame i (upstream's ping-pong cycle over frames + reversed frames
only matters past the reference's length). The VAE's posterior is sampled as upstream
does (`latent_dist.sample()`), from a generator seeded with `seed` per clip, so a fixed
seed fixes the output.

Faces: see `faces.py` (S3FD + a MediaPipe stand-in for DWPose's landmarks; what
differs from upstream is written there). Weights: `weights.py`. `random_weights: true`
builds the same networks with seeded weights and reads no file (the output means
nothing; the speed columns do). `size: tiny` (narrow UNet, VAE, whisper) is for CPU tests.
dtype "auto": fp32 in normal mode; fp16 in realtime mode on CUDA, fp32 on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from lipbench.models.base import LipSyncModel
from lipbench.types import Request

MODES = {"normal": 8, "realtime": 20}  # mode -> upstream's default batch size
NETWORK_FILES = (
    "musetalkV15/musetalk.json",
    "musetalkV15/unet.pth",
    "sd-vae-ft-mse/config.json",
    "sd-vae-ft-mse/diffusion_pytorch_model.bin",
    "whisper-tiny/config.json",
    "whisper-tiny/pytorch_model.bin",
    "whisper-tiny/preprocessor_config.json",
)
PARSING_FILE = "79999_iter.pth"
S3FD_FILE = "s3fd.pth"
CROP = 256
# UNet + VAE + whisper encoder at the published size (networks.parameter_counts("real"))
REAL_PARAMETERS = 849_947_844 + 83_653_863 + 8_208_384
WEIGHT_SEED = 0  # random weights never depend on the sampling seed
_COUNTS: dict[str, int] = {}


def _parameters(size: str) -> int:
    if size == "real":
        return REAL_PARAMETERS
    if size not in _COUNTS:
        from lipbench.models.musetalk import networks

        _COUNTS[size] = sum(networks.parameter_counts(size).values())
    return _COUNTS[size]


class MuseTalk(LipSyncModel):
    """MuseTalk 1.5: one UNet pass per frame on VAE latents of the face crop, whisper features.

    One pass at t=0 on masked + reference latents, conditioned on whisper-tiny's hidden
    states; BiSeNet-masked paste-back."""

    name = "musetalk"
    causal = False
    chunk_frames = ()
    parameters = REAL_PARAMETERS
    dtypes = ("fp16", "fp32")

    def __init__(
        self,
        mode: str = "normal",
        size: str = "real",
        random_weights: bool = False,
        seed: int = 0,
        weights_dir=None,
        dtype: str = "auto",
        batch_size: int | None = None,
        faces: str = "mediapipe",
        parsing_mode: str = "jaw",
        extra_margin: int = 10,
    ):
        super().__init__()
        from lipbench.models.musetalk.faces import FACE_PROTOCOLS

        if mode not in MODES:
            raise ValueError(f"musetalk mode must be 'normal' or 'realtime', got {mode!r}")
        if size not in ("real", "tiny"):
            raise ValueError(f"musetalk size must be 'real' or 'tiny', got {size!r}")
        if dtype not in ("auto", *self.dtypes):
            raise ValueError(f"musetalk dtype must be auto, fp16 or fp32, got {dtype!r}")
        if faces not in FACE_PROTOCOLS:
            raise ValueError(f"musetalk faces must be one of {FACE_PROTOCOLS}, got {faces!r}")
        if parsing_mode not in ("jaw", "neck", "raw"):
            raise ValueError(f"musetalk parsing_mode must be jaw, neck or raw, got {parsing_mode!r}")
        self.mode, self.size, self.random_weights, self.seed = mode, size, bool(random_weights), int(seed)
        self.weights_dir = None if weights_dir is None else str(weights_dir)
        self.dtype_name = dtype
        self.batch_size = int(batch_size) if batch_size is not None else MODES[mode]
        if self.batch_size < 1:
            raise ValueError(f"musetalk batch_size must be at least 1, got {batch_size}")
        self.faces_spec, self.parsing_mode, self.extra_margin = faces, parsing_mode, int(extra_margin)
        self.causal = mode == "realtime"
        self.chunk_frames = (self.batch_size,) if self.causal else ()
        self.parameters = _parameters(size)
        self.parts = None
        self._avatar = None
        self.prepared_clips: list[str] = []

    # -- description -------------------------------------------------------------

    @property
    def dtype(self) -> str:
        if self.dtype_name != "auto":
            return self.dtype_name
        return "fp16" if self.mode == "realtime" and str(self.device).startswith("cuda") else "fp32"

    def describe(self) -> dict:
        return {
            **super().describe(),
            "mode": self.mode,
            "size": self.size,
            "seed": self.seed,
            "random_weights": self.random_weights,
            "batch_size": self.batch_size,
            "face_protocol": self.faces_spec,
            "parsing_mode": self.parsing_mode,
            "extra_margin": self.extra_margin,
            "weights_dtype": self.dtype,
        }

    def weight_files(self) -> dict[str, Path]:
        from lipbench.weights import find_weight

        names = [] if self.random_weights else [*NETWORK_FILES, PARSING_FILE]
        if self.faces_spec == "s3fd":
            names.append(S3FD_FILE)
        return {name: find_weight(name, self.weights_dir, needed_by=self.name) for name in names}

    # -- lifecycle ---------------------------------------------------------------

    def load(self, device: str = "cpu") -> None:
        super().load(device)
        import torch

        from lipbench.models.musetalk import audio, bisenet, faces, networks

        dtype = {"fp16": torch.float16, "fp32": torch.float32}[self.dtype]
        files = self.weight_files()
        if self.random_weights:
            unet, vae, whisper = networks.random_networks(self.size, WEIGHT_SEED, device, dtype)
            parse_net = bisenet.BiSeNet()
            parse_net.load_state_dict(bisenet.random_state_dict(WEIGHT_SEED + 3), strict=True)
            parse_net = parse_net.to(device).eval().requires_grad_(False)
            extractor = audio.feature_extractor()
        else:
            unet = networks.load_unet(files["musetalkV15/unet.pth"], files["musetalkV15/musetalk.json"], device, dtype)
            vae = networks.load_vae(files["sd-vae-ft-mse/config.json"].parent, device, dtype)
            whisper = networks.load_whisper(files["whisper-tiny/config.json"].parent, device, dtype)
            parse_net = bisenet.load_bisenet(files[PARSING_FILE], device)
            extractor = audio.feature_extractor(networks.read_json(files["whisper-tiny/preprocessor_config.json"]))
        pe = networks.PositionalEncoding(d_model=whisper.config.d_model).to(device=device, dtype=dtype)
        detector = None
        if self.faces_spec == "s3fd":
            detector = _s3fd(files[S3FD_FILE], device)
        self.parts = dict(
            unet=unet,
            vae=vae,
            whisper=whisper,
            pe=pe,
            extractor=extractor,
            dtype=dtype,
            parser=bisenet.FaceParser(parse_net, device=device),
            faces=faces.FaceBoxes(self.faces_spec, detector, self.extra_margin),
        )

    def close(self) -> None:
        if self.parts is not None:
            self.parts["faces"].close()
        self.parts, self._avatar = None, None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass

    def prepare(self, request: Request) -> None:
        """Realtime mode: the avatar (boxes, crop latents, blending masks), made ahead as
        upstream's Avatar.prepare_material; normal mode: nothing (all of it is timed)."""
        self._check_loaded()
        self._avatar = None
        if self.mode != "realtime":
            return
        frames = request.frames
        boxes = self.parts["faces"](frames)
        latents = [
            self._crop_latents(frame, box, self._generator(i)) for i, (frame, box) in enumerate(zip(frames, boxes))
        ]
        from lipbench.models.musetalk import blending

        masks = [
            blending.blend_mask(frame, box, self.parts["parser"], self.parsing_mode, blur_ratio=0.1)
            for frame, box in zip(frames, boxes)
        ]
        self._avatar = dict(clip_id=request.clip_id, n=len(frames), boxes=boxes, latents=latents, masks=masks)
        self.prepared_clips.append(request.clip_id)

    # -- the stream --------------------------------------------------------------

    def stream(self, request: Request) -> Iterator[np.ndarray]:
        self._check_loaded()
        if self.mode == "realtime":
            yield from self._stream_realtime(request)
        else:
            yield from self._stream_normal(request)

    def _stream_normal(self, request: Request) -> Iterator[np.ndarray]:
        from lipbench.models.musetalk import blending

        frames = request.frames
        with self.stage("audio_encode"):
            tokens = self._tokens(request)
        with self.stage("faces"):
            boxes = self.parts["faces"](frames)
        with self.stage("encode"):
            latents = [
                self._crop_latents(frame, box, self._generator(i)) for i, (frame, box) in enumerate(zip(frames, boxes))
            ]
        faces = []
        for start in range(0, request.n_frames, self.batch_size):
            stop = min(start + self.batch_size, request.n_frames)
            faces.extend(self._generate(tokens, latents, start, stop))
        out = np.empty_like(frames)
        with self.stage("blend"):
            for i in range(request.n_frames):
                j = _cycle(i, len(frames))
                face = blending.resize_face(faces[i], boxes[j])
                out[i] = blending.blend_normal(frames[j], face, boxes[j], self.parts["parser"], self.parsing_mode)
        yield out

    def _stream_realtime(self, request: Request) -> Iterator[np.ndarray]:
        from lipbench.models.musetalk import blending

        avatar = self._avatar
        if avatar is None or avatar["clip_id"] != request.clip_id or avatar["n"] != request.n_frames:
            raise RuntimeError(
                "musetalk realtime: call prepare(request) before stream(request) (the avatar is "
                "made ahead of the timed stream, as upstream's realtime script does)"
            )
        frames = request.frames
        with self.stage("audio_encode"):
            tokens = self._tokens(request)
        for start in range(0, request.n_frames, self.batch_size):
            stop = min(start + self.batch_size, request.n_frames)
            faces = self._generate(tokens, avatar["latents"], start, stop)
            with self.stage("blend"):
                chunk = np.empty((stop - start,) + frames.shape[1:], np.uint8)
                for k, i in enumerate(range(start, stop)):
                    j = _cycle(i, len(frames))
                    box = avatar["boxes"][j]
                    mask, large = avatar["masks"][j]
                    chunk[k] = blending.paste(frames[j], blending.resize_face(faces[k], box), box, mask, large)
            yield chunk

    # -- steps -------------------------------------------------------------------

    def _tokens(self, request: Request):
        from lipbench.models.musetalk import audio

        samples = audio.resample(request.audio, request.audio_rate)
        return audio.whisper_chunks(
            self.parts["whisper"],
            self.parts["extractor"],
            samples,
            request.n_frames,
            request.fps,
            self.device,
            self.parts["dtype"],
        )

    def _generator(self, index: int):
        import torch

        return torch.Generator().manual_seed(self.seed * 1_000_003 + index)

    def _crop_latents(self, frame: np.ndarray, box, generator):
        import cv2

        x1, y1, x2, y2 = box
        crop = cv2.resize(frame[y1:y2, x1:x2], (CROP, CROP), interpolation=cv2.INTER_LANCZOS4)
        return latents_for_unet(self.parts["vae"], crop, generator)

    def _generate(self, tokens, latents, start: int, stop: int) -> np.ndarray:
        """UNet + decode of frames [start, stop): (n, 256, 256, 3) uint8 RGB faces."""
        import torch

        from lipbench.models.musetalk import networks

        n = len(latents)
        with self.stage("unet"):
            batch = torch.cat([latents[_cycle(i, n)] for i in range(start, stop)]).to(self.device)
            pred = networks.unet_step(self.parts["unet"], self.parts["pe"], batch, tokens[start:stop])
        with self.stage("decode"):
            return decode_latents(self.parts["vae"], pred)

    def _check_loaded(self) -> None:
        if self.parts is None:
            raise RuntimeError("musetalk: call load() before prepare() / stream()")


def _cycle(i: int, n: int) -> int:
    """Upstream's frame cycle (frames, then the frames reversed, repeated): index of frame i."""
    k = i % (2 * n)
    return k if k < n else 2 * n - 1 - k


def _s3fd(path, device: str):
    from lipbench.models.wav2lip.detect import Wav2LipS3FD

    return Wav2LipS3FD(path, device, batch_size=1)  # upstream detects one frame per batch


# -- VAE steps (musetalk/models/vae.py) ----------------------------------------------


def crop_tensor(crop_rgb: np.ndarray, half_mask: bool):
    """VAE.preprocess_img on a 256 px RGB crop: /255 (in float64, then float32), the
    lower half zeroed when `half_mask`, then (x - 0.5) / 0.5: (1, 3, 256, 256)."""
    import torch

    x = torch.from_numpy((np.asarray(crop_rgb, np.float64) / 255.0).astype(np.float32)).permute(2, 0, 1)
    if half_mask:
        keep = torch.zeros(x.shape[1:])
        keep[: x.shape[1] // 2] = 1
        x = x * (keep > 0.5)
    return ((x - 0.5) / 0.5)[None]


def latents_for_unet(vae, crop_rgb: np.ndarray, generator=None):
    """VAE.get_latents_for_unet: (1, 8, 32, 32) = [masked crop, whole crop] latents,
    each sampled from the posterior (masked first) and scaled by 0.18215."""
    import torch

    out = []
    with torch.no_grad():
        for half in (True, False):
            x = crop_tensor(crop_rgb, half).to(device=vae.device, dtype=vae.dtype)
            out.append(vae.config.scaling_factor * vae.encode(x).latent_dist.sample(generator=generator))
    return torch.cat(out, dim=1)


def decode_latents(vae, latents) -> np.ndarray:
    """VAE.decode_latents without its final RGB -> BGR flip: (n, 256, 256, 3) uint8 RGB."""
    import torch

    with torch.no_grad():
        image = vae.decode((1 / vae.config.scaling_factor * latents).to(vae.dtype)).sample
    image = (image / 2 + 0.5).clamp(0, 1)
    image = image.detach().cpu().permute(0, 2, 3, 1).float().numpy()
    return (image * 255).round().astype(np.uint8)
