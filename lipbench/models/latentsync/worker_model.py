"""LatentSync 1.6, worker side: runs inside LatentSync's own environment.

Imported by lipbench's worker (lipbench/models/worker_side.py, module `lipbench_worker`)
from the user's LatentSync checkout (bytedance/LatentSync a229c39) and this folder; it
imports NumPy, the standard library, torch and the checkout's own packages, never
lipbench. It drives upstream's components the way `LipsyncPipeline.__call__`
(latentsync/pipelines/lipsync_pipeline.py) does, calling upstream's own methods for
every step:

1. audio: `Audio2Feature._audio2feat` (whisper tiny encoder, every layer's embeddings,
   50 Hz) on the request's waveform (upstream passes a file path there; its whisper
   `transcribe` takes a waveform as well), then `feature2chunks`: frame i takes features
   [2i - 4, 2i + 6), clamped at the ends;
2. length: upstream makes one frame per whisper chunk (`feature2chunks` returns a few
   more than the audio's frames) and loops the reference video back and forth to cover
   them (`loop_video`); this file keeps that schedule, so every chunk sees exactly
   upstream's frames, faces and noise, and answers with the first `n_frames` frames
   (chunks that start past them are not computed; upstream computes and then drops
   nothing, but nothing it computes there changes the frames kept). When the audio is
   shorter than the reference, frames past the last chunk take the clamped last
   features (upstream would cut the video there);
3. faces: `ImageProcessor.affine_transform` per frame, in order (its `AlignRestore` keeps
   an EMA of the nose offset across frames): InsightFace SCRFD + 106 landmarks through
   upstream's `FaceDetector.__call__`, then the 3-point similarity warp and a Lanczos
   resize to the resolution;
4. per chunk of 16 frames: `prepare_masks_and_masked_images` (mask.png), the VAE
   encodes of the masked and the reference faces (`prepare_mask_latents`,
   `prepare_image_latents`, each a sample of the latent distribution), 20 DDIM steps
   with classifier-free guidance 1.5 (unconditional = zero audio embeddings),
   `decode_latents`, `paste_surrounding_pixels_back`;
5. `restore_img` per frame: the face resized back to the crop and inverse-warped into
   the frame with upstream's eroded, blurred mask.

Noise: one latent frame drawn once and repeated over every frame (`prepare_latents`),
and the two latent-distribution samples per chunk, all from one torch.Generator on the
device seeded with `seed` (upstream's scripts/inference.py seeds the global generators
with `set_seed(seed)` and passes none; a fresh generator with the same seed draws the
same numbers, in the same order). Chunks depend on each other only through that shared
noise, so `causal=True` yields each chunk (aligned, denoised, decoded, restored) as soon
as it exists, and `causal=False` aligns every frame first and yields once at the end, as
upstream does. Both give the same frames.

What differs from upstream, and why:
- face detection: upstream's `FaceDetector.__init__` hard-codes
  `providers=["CUDAExecutionProvider"]`, `root="checkpoints/auxiliary"` (relative to the
  working directory, downloading buffalo_l when missing) and `cuda_to_int(device)`, which
  raises for "cpu"; and `ImageProcessor(device="cpu")` has no detector at all. This file
  builds the same `FaceAnalysis(allowed_modules=["detection", "landmark_2d_106"])` on
  the same two buffalo_l files (det_10g.onnx, 2d106det.onnx, from `face_models`), with
  the CUDA provider on a CUDA device and the CPU provider (ctx_id -1) on the CPU, at
  det_size 512, and hands it to upstream's own `FaceDetector.__call__` (box checks, the
  largest face, rounding of the landmarks). `faces="fixed"` replaces detection by one
  fixed 106-point layout centred in the frame, for smoke and timing runs without the
  buffalo_l files (its crops are not faces' crops: never for reported numbers);
- `AlignRestore` runs in float16 on a CUDA device (upstream's default) and in float32 on
  the CPU (its float16 warp is not implemented there);
- DeepCache (inference.sh's --enable_deepcache, which reuses cached UNet features on two
  of every three steps) is not applied: every step runs the full UNet;
- the output is not written to an mp4 (lipbench gets the frames).

Arguments (JSON from the adapter): checkout (the LatentSync checkout), causal, steps,
guidance, seed, size ("real": configs/unet/stage2_512.yaml at 512 px; "tiny": the same
UNet structure with widths (32, 64, 64, 64), one layer per block, at 64 px, with a
small VAE, for CPU tests), random_weights (UNet from its config with seeded random
init, zero-initialised weights redrawn so every block takes part; VAE from the
sd-vae-ft-mse config or the tiny one; whisper tiny), unet_path, whisper_path, vae_path
(a diffusers folder, or {file name: path} of its config.json and
diffusion_pytorch_model.safetensors), face_models (the folder holding det_10g.onnx and
2d106det.onnx, or {file name: path}), faces ("insightface" or "fixed").
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import lipbench_worker

UNET_CONFIG = "configs/unet/stage2_512.yaml"
SCHEDULER_DIR = "configs"  # configs/scheduler_config.json (DDIMScheduler)
MASK_PNG = "latentsync/utils/mask.png"
FACE_FILES = ("det_10g.onnx", "2d106det.onnx")
VAE_SCALING, VAE_SHIFT = 0.18215, 0  # scripts/inference.py sets both on the VAE's config
NUM_FRAMES = 16  # config.data.num_frames
VIDEO_FPS = 25.0  # config.data.video_fps; read_video(change_fps=True) resamples to it
AUDIO_FEAT_LENGTH = [2, 2]  # config.data.audio_feat_length

# stabilityai/sd-vae-ft-mse config.json (the architecture; for random weights)
SD_VAE_FT_MSE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    sample_size=256,
    act_fn="silu",
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    norm_num_groups=32,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
)
TINY_VAE = {**SD_VAE_FT_MSE, "block_out_channels": [32, 32, 64, 64], "layers_per_block": 1, "sample_size": 64}
# the UNet of stage2_512.yaml, narrower and shallower (same blocks, motion modules, audio attention)
TINY_UNET = dict(block_out_channels=[32, 64, 64, 64], layers_per_block=1, sample_size=8)
TINY_RESOLUTION = 64
# openai whisper "tiny" (LatentSync's checkpoints/whisper/tiny.pt)
WHISPER_TINY_DIMS = dict(
    n_mels=80,
    n_vocab=51865,
    n_audio_ctx=1500,
    n_audio_state=384,
    n_audio_head=6,
    n_audio_layer=4,
    n_text_ctx=448,
    n_text_state=384,
    n_text_head=6,
    n_text_layer=4,
)


def unet_config(checkout: Path, size: str) -> tuple[dict, int]:
    """The UNet's config (the model section of stage2_512.yaml, or its tiny variant) and
    the resolution it runs at."""
    from omegaconf import OmegaConf

    config = OmegaConf.load(Path(checkout) / UNET_CONFIG)
    model = OmegaConf.to_container(config.model)
    if size == "real":
        return model, int(config.data.resolution)
    if size == "tiny":
        return {**model, **TINY_UNET}, TINY_RESOLUTION
    raise ValueError(f"latentsync: size must be 'real' or 'tiny', got {size!r}")


def redraw_zero_weights(module, generator) -> int:
    """Draw N(0, 1/fan_in) values into every all-zero weight matrix or kernel (the
    zero-initialised conv_in and motion-module outputs of a fresh UNet3DConditionModel),
    so a random-weight UNet depends on all its inputs. Returns how many were redrawn."""
    import torch

    redrawn = 0
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.dim() > 1 and not parameter.any():
                fan_in = parameter[0].numel()
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / math.sqrt(fan_in))
                redrawn += 1
    return redrawn


def fixed_landmarks(height: int, width: int) -> np.ndarray:
    """A 106-point layout whose brows and nose (the points LatentSync's alignment reads)
    put the template's face box over the middle half of the frame."""
    scale = 0.5 * min(width, height) / 75.0
    left, top = width / 2 - 37.5 * scale, height / 2 - 50 * scale
    points = np.tile([width / 2, height / 2], (106, 1)).astype(np.float64)
    template = {"left": (17, 20), "right": (58, 20), "nose": (37.5, 40)}
    to_frame = {k: (left + x * scale, top + y * scale) for k, (x, y) in template.items()}
    points[[43, 48, 49, 51, 50]] = to_frame["left"]
    points[101:106] = to_frame["right"]
    points[[74, 77, 83, 86]] = to_frame["nose"]
    return points


class FixedFaces:
    """Stands in for upstream's FaceDetector (same call and answer) without a detector."""

    def __call__(self, frame, threshold=0.5):
        height, width = frame.shape[:2]
        return (0, 0, width, height), np.round(fixed_landmarks(height, width)).astype(np.int_)


class LatentSyncWorker(lipbench_worker.Model):
    def __init__(
        self,
        checkout: str,
        causal: bool = True,
        steps: int = 20,
        guidance: float = 1.5,
        seed: int = 1247,
        size: str = "real",
        random_weights: bool = False,
        unet_path: str | None = None,
        whisper_path: str | None = None,
        vae_path: str | None = None,
        face_models: str | None = None,
        faces: str = "insightface",
    ):
        self.checkout = Path(checkout).resolve()
        if not (self.checkout / "latentsync" / "pipelines" / "lipsync_pipeline.py").is_file():
            raise FileNotFoundError(f"{self.checkout} is not a LatentSync checkout")
        if str(self.checkout) not in sys.path:
            sys.path.insert(0, str(self.checkout))
        if size not in ("real", "tiny"):
            raise ValueError(f"latentsync: size must be 'real' or 'tiny', got {size!r}")
        if faces not in ("insightface", "fixed"):
            raise ValueError(f"latentsync: faces must be 'insightface' or 'fixed', got {faces!r}")
        if not random_weights:
            missing = [
                n
                for n, p in (("unet_path", unet_path), ("whisper_path", whisper_path), ("vae_path", vae_path))
                if not p
            ]
            if missing:
                raise ValueError(f"latentsync: real weights need {', '.join(missing)} (or random_weights: true)")
        self.causal, self.steps, self.guidance = bool(causal), int(steps), float(guidance)
        self.seed, self.size, self.random_weights = int(seed), size, bool(random_weights)
        self.unet_path, self.whisper_path, self.vae_path = unet_path, whisper_path, vae_path
        self.face_models, self.faces = face_models, faces
        self.scratch = None

    # ------------------------------------------------------------------ loading

    def load(self, device: str) -> None:
        import torch
        from diffusers import AutoencoderKL, DDIMScheduler
        from latentsync.models.unet import UNet3DConditionModel
        from latentsync.pipelines.lipsync_pipeline import LipsyncPipeline

        self.device = device
        self.torch = torch
        cuda = str(device).startswith("cuda")
        # scripts/inference.py: float16 where the GPU supports it, else float32
        fp16 = cuda and torch.cuda.get_device_capability(torch.device(device))[0] > 7
        self.weight_dtype = torch.float16 if fp16 else torch.float32
        self.dtype = "fp16" if fp16 else "fp32"
        self.scratch = tempfile.mkdtemp(prefix="lipbench-latentsync-")

        config, self.resolution = unet_config(self.checkout, self.size)
        scheduler = DDIMScheduler.from_pretrained(str(self.checkout / SCHEDULER_DIR))
        audio_encoder = self._audio_encoder(device)
        if self.random_weights:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                unet = UNet3DConditionModel.from_config(config)
                redraw_zero_weights(unet, torch.Generator().manual_seed(self.seed))
                torch.manual_seed(self.seed + 2)
                vae = AutoencoderKL(**(TINY_VAE if self.size == "tiny" else SD_VAE_FT_MSE))
            vae = vae.to(self.weight_dtype)
        else:
            unet, _ = UNet3DConditionModel.from_pretrained(config, self.unet_path, device="cpu")
            vae = AutoencoderKL.from_pretrained(self._folder(self.vae_path, "vae"), torch_dtype=self.weight_dtype)
        vae.config.scaling_factor = VAE_SCALING
        vae.config.shift_factor = VAE_SHIFT
        unet = unet.to(dtype=self.weight_dtype)
        self.pipeline = LipsyncPipeline(vae=vae, audio_encoder=audio_encoder, unet=unet, scheduler=scheduler).to(device)
        self.pipeline.set_progress_bar_config(disable=True)
        self.pipeline.unet.eval()
        self.parameters = sum(p.numel() for p in unet.parameters())
        self.image_processor = self._image_processor(device)

    def _audio_encoder(self, device):
        import torch
        from latentsync.whisper.audio2feature import Audio2Feature

        path = self.whisper_path
        if self.random_weights:
            from latentsync.whisper.whisper.model import ModelDimensions, Whisper

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed + 1)
                whisper = Whisper(ModelDimensions(**WHISPER_TINY_DIMS))
            path = os.path.join(self.scratch, "whisper-tiny-random.pt")
            torch.save({"dims": WHISPER_TINY_DIMS, "model_state_dict": whisper.state_dict()}, path)
        return Audio2Feature(
            model_path=path, device=device, num_frames=NUM_FRAMES, audio_feat_length=list(AUDIO_FEAT_LENGTH)
        )

    def _image_processor(self, device):
        import torch
        from latentsync.utils.affine_transform import AlignRestore
        from latentsync.utils.image_processor import ImageProcessor, load_fixed_mask

        mask = load_fixed_mask(self.resolution, str(self.checkout / MASK_PNG))
        # device="cpu" here only skips upstream's CUDA-only FaceDetector; the restorer and
        # the detector are set below for the real device
        processor = ImageProcessor(self.resolution, device="cpu", mask_image=mask)
        cuda = str(device).startswith("cuda")
        processor.restorer = AlignRestore(
            resolution=self.resolution, device=device, dtype=torch.float16 if cuda else torch.float32
        )
        processor.face_detector = FixedFaces() if self.faces == "fixed" else self._face_detector(device)
        return processor

    def _face_detector(self, device):
        """Upstream's FaceDetector with its FaceAnalysis built for `device` (see the docstring)."""
        import torch
        from insightface.app import FaceAnalysis
        from latentsync.utils.face_detector import INSIGHTFACE_DETECT_SIZE, FaceDetector

        if not self.face_models:
            raise ValueError(
                "latentsync: faces='insightface' needs face_models (the folder with " + " and ".join(FACE_FILES) + ")"
            )
        # FaceAnalysis loads every .onnx under root/models/buffalo_l: a folder of just the two
        self._folder(self.face_models, "insightface/models/buffalo_l", FACE_FILES)
        cuda = str(device).startswith("cuda")
        if cuda:
            import onnxruntime

            if hasattr(onnxruntime, "preload_dlls"):  # CUDA/cuDNN from torch's nvidia wheels
                onnxruntime.preload_dlls()
        detector = FaceDetector.__new__(FaceDetector)
        detector.app = FaceAnalysis(
            allowed_modules=["detection", "landmark_2d_106"],
            root=str(Path(self.scratch) / "insightface"),
            providers=["CUDAExecutionProvider"] if cuda else ["CPUExecutionProvider"],
        )
        ctx_id = (torch.device(device).index or 0) if cuda else -1
        detector.app.prepare(ctx_id=ctx_id, det_size=(INSIGHTFACE_DETECT_SIZE, INSIGHTFACE_DETECT_SIZE))
        return detector

    def _folder(self, files, name: str, required=()) -> str:
        """A folder holding `files` ({file name: path}, or a folder), as symlinks under the
        scratch folder (`from_pretrained` and FaceAnalysis read folders)."""
        if isinstance(files, (str, os.PathLike)):
            files = (
                {entry.name: entry for entry in Path(files).iterdir()}
                if not required
                else {n: Path(files) / n for n in required}
            )
        folder = Path(self.scratch) / name
        folder.mkdir(parents=True, exist_ok=True)
        for file_name in required:
            if file_name not in files:
                raise FileNotFoundError(f"latentsync: {file_name} not given")
        for file_name, source in files.items():
            if not Path(source).is_file():
                raise FileNotFoundError(f"latentsync: {source} not found ({file_name})")
            (folder / file_name).unlink(missing_ok=True)
            os.symlink(Path(source).resolve(), folder / file_name)
        return str(folder)

    def close(self) -> None:
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    # ------------------------------------------------------------------ one clip

    def audio_chunks(self, audio: np.ndarray, fps: float, n_frames: int) -> list:
        """Upstream's whisper chunks for the waveform (one per output frame), at least
        `n_frames` of them (later ones clamp to the last features)."""
        encoder = self.pipeline.audio_encoder
        features = encoder._audio2feat(np.ascontiguousarray(audio, dtype=np.float32))
        chunks = encoder.feature2chunks(feature_array=features, fps=fps)
        for index in range(len(chunks), n_frames):
            chunks.append(encoder.get_sliced_feature(feature_array=features, vid_idx=index, fps=fps)[0])
        return chunks

    @staticmethod
    def source_index(position: int, n_frames: int) -> int:
        """Which reference frame upstream's loop_video puts at `position` (the video played
        forwards, then backwards, then forwards ...)."""
        loop, offset = divmod(position, n_frames)
        return offset if loop % 2 == 0 else n_frames - 1 - offset

    def stream(self, request):
        """The clip's frames, chunk by chunk (causal) or at the end; without autograd, as
        upstream's __call__ (torch.no_grad wraps a generator so that it holds only while
        the generator runs, not while it waits at a yield)."""
        return self.torch.no_grad()(self._stream)(request)

    def _stream(self, request):
        torch = self.torch
        pipeline, processor = self.pipeline, self.image_processor
        device, dtype = torch.device(self.device), self.weight_dtype
        n_frames, fps = request.n_frames, float(request.fps)
        if abs(fps - VIDEO_FPS) > 1e-6:
            raise ValueError(
                f"latentsync runs at {VIDEO_FPS:g} fps (upstream re-encodes every video to it first); "
                f"clip {request.clip_id} is {fps:g} fps"
            )
        cfg = self.guidance > 1.0
        height = width = self.resolution
        generator = torch.Generator(device=device).manual_seed(self.seed)
        processor.restorer.p_bias = None  # upstream makes a fresh ImageProcessor per video

        with self.stage("audio_encode"):
            whisper_chunks = self.audio_chunks(request.audio, fps, n_frames)
        total = len(whisper_chunks)  # upstream's frame count (the video looped to it)
        faces, boxes, matrices = [], [], []

        def align_up_to(end: int):
            while len(faces) < min(end, n_frames):
                frame = np.array(request.frames[len(faces)])
                face, box, matrix = processor.affine_transform(frame)
                faces.append(face)
                boxes.append(box)
                matrices.append(matrix)

        if not self.causal:
            with self.stage("faces"):
                align_up_to(n_frames)
        pipeline.scheduler.set_timesteps(self.steps, device=device)
        timesteps = pipeline.scheduler.timesteps
        extra_step_kwargs = pipeline.prepare_extra_step_kwargs(generator, 0.0)
        all_latents = pipeline.prepare_latents(
            total, pipeline.vae.config.latent_channels, height, width, dtype, device, generator
        )
        done = []
        for start in range(0, min(total, n_frames), NUM_FRAMES):
            end = min(start + NUM_FRAMES, total)
            positions = [self.source_index(p, n_frames) for p in range(start, end)]
            if self.causal:
                with self.stage("faces"):
                    align_up_to(end)
            with self.stage("encode"):
                audio_embeds = None
                if pipeline.unet.add_audio_layer:
                    audio_embeds = torch.stack(whisper_chunks[start:end]).to(device, dtype=dtype)
                    if cfg:
                        audio_embeds = torch.cat([torch.zeros_like(audio_embeds), audio_embeds])
                chunk_faces = torch.stack([faces[i] for i in positions])
                ref_pixel_values, masked_pixel_values, masks = processor.prepare_masks_and_masked_images(
                    chunk_faces, affine_transform=False
                )
                mask_latents, masked_image_latents = pipeline.prepare_mask_latents(
                    masks, masked_pixel_values, height, width, dtype, device, generator, cfg
                )
                ref_latents = pipeline.prepare_image_latents(ref_pixel_values, device, dtype, generator, cfg)
            latents = all_latents[:, :, start:end]
            with self.stage("denoise"):
                for t in timesteps:
                    unet_input = torch.cat([latents] * 2) if cfg else latents
                    unet_input = pipeline.scheduler.scale_model_input(unet_input, t)
                    unet_input = torch.cat([unet_input, mask_latents, masked_image_latents, ref_latents], dim=1)
                    noise_pred = pipeline.unet(unet_input, t, encoder_hidden_states=audio_embeds).sample
                    if cfg:
                        uncond, audio_cond = noise_pred.chunk(2)
                        noise_pred = uncond + self.guidance * (audio_cond - uncond)
                    latents = pipeline.scheduler.step(noise_pred, t, latents, **extra_step_kwargs).prev_sample
            with self.stage("decode"):
                decoded = pipeline.decode_latents(latents)
                decoded = pipeline.paste_surrounding_pixels_back(decoded, ref_pixel_values, 1 - masks, device, dtype)
            keep = min(end, n_frames) - start
            if self.causal:
                with self.stage("restore"):
                    frames = self.restore(decoded[:keep], positions[:keep], request, boxes, matrices)
                yield frames
            else:
                done.append((decoded[:keep], positions[:keep]))
        if not self.causal:
            with self.stage("restore"):
                frames = np.concatenate([self.restore(d, p, request, boxes, matrices) for d, p in done])
            yield frames

    def restore(self, decoded, positions, request, boxes, matrices) -> np.ndarray:
        """LipsyncPipeline.restore_video for one chunk's faces."""
        import torchvision
        from torchvision import transforms

        out = []
        for face, index in zip(decoded, positions):
            x1, y1, x2, y2 = boxes[index]
            face = torchvision.transforms.functional.resize(
                face,
                size=(int(y2 - y1), int(x2 - x1)),
                interpolation=transforms.InterpolationMode.BICUBIC,
                antialias=True,
            )
            frame = np.array(request.frames[index])
            out.append(self.image_processor.restorer.restore_img(frame, face, matrices[index]))
        return np.stack(out)
