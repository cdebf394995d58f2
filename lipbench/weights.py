"""Every weight file a metric or model loads: one registry, one lookup, no surprises.

Files are looked up, in order, in `--weights-dir`, `$LIPBENCH_WEIGHTS`, and the user
cache (`$LIPBENCH_CACHE/weights`, default ~/.cache/lipbench/weights). Nothing is ever
downloaded implicitly: a missing file is an error that names the file, what needs it
and the command that gets it (`lipbench weights fetch NAME`).

A file whose hash differs from the known one still loads (tests and ablations use
other weights on purpose), but every result records the sha256 it was computed with,
and `lipbench weights verify` says which files are not the published ones.
"""

from __future__ import annotations

import bz2
import difflib
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from lipbench.errors import LipbenchError, UnknownNameError
from lipbench.storage import atomic_path, file_sha256  # noqa: F401 (file_sha256: part of this module's API)


@dataclass(frozen=True)
class WeightFile:
    name: str  # file name, as the upstream tools expect it
    description: str
    needed_by: tuple[str, ...]  # metric keys or model names
    source: str  # the repository (and path) that defines the file
    url: str | None = None  # None: no direct download; `manual` says how to get it
    sha256: str | None = None  # the published file's hash, when known
    manual: str = ""

    @property
    def hash_prefix(self) -> str | None:
        """torch.hub convention: the first hex digits of the sha256 are in the file name."""
        found = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$", self.name)
        return found.group(1) if found else None

    def how_to_get(self) -> str:
        if self.url:
            return f"lipbench weights fetch {self.name}"
        return self.manual or f"download it from {self.source}"


WEIGHTS: dict[str, WeightFile] = {w.name: w for w in (
    WeightFile("syncnet_v2.model", "SyncNet audio-visual sync network (state_dict)",
               ("sync_c", "sync_d", "av_offset"), "joonson/syncnet_python download_model.sh",
               url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model"),
    WeightFile("sfd_face.pth", "S3FD face detector for the SyncNet face tracks (state_dict)",
               ("sync_c@syncnet_python", "sync_c@latentsync"), "joonson/syncnet_python download_model.sh",
               url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth"),
    WeightFile("pt_inception-2015-12-05-6726825d.pth", "FID Inception-v3 port (pytorch-fid)",
               ("fid",), "pip pytorch-fid 0.3.0, pytorch_fid/inception.py FID_WEIGHTS_URL",
               url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth"),
    WeightFile("i3d_torchscript.pt", "I3D feature extractor for FVD (TorchScript)",
               ("fvd",), "universome/stylegan-v src/metrics/frechet_video_distance.py",
               url="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"),
    WeightFile("alexnet-owt-7be5be79.pth", "torchvision AlexNet, the LPIPS trunk",
               ("lpips",), "torchvision.models.alexnet (AlexNet_Weights.IMAGENET1K_V1)",
               url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    WeightFile("wav2lip.pth", "Wav2Lip generator ({'state_dict': ...})", ("wav2lip",),
               "Rudrabha/Wav2Lip README (Google Drive folder 153HLrqlBNxzZcHi17PEvP09kkAfzRshM)",
               manual="no direct link: download wav2lip.pth from the Wav2Lip README's Google Drive link "
                      "(https://drive.google.com/drive/folders/153HLrqlBNxzZcHi17PEvP09kkAfzRshM) into the "
                      "weights directory"),
    WeightFile("wav2lip_gan.pth", "Wav2Lip + GAN generator ({'state_dict': ...})", ("wav2lip",),
               "Rudrabha/Wav2Lip README (Google Drive file 15G3U08c8xsCkOqQxE38Z2XXDnPcOptNk)",
               manual="no direct link: download wav2lip_gan.pth from https://drive.google.com/file/d/"
                      "15G3U08c8xsCkOqQxE38Z2XXDnPcOptNk into the weights directory"),
    WeightFile("s3fd.pth", "Wav2Lip's S3FD face detector (face-alignment s3fd-619a316812.pth, state_dict)",
               ("wav2lip",), "Rudrabha/Wav2Lip README -> face_detection/detection/sfd/s3fd.pth",
               url="https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth"),
    WeightFile("shape_predictor_68_face_landmarks.dat", "dlib 68-point face landmark predictor (iBUG 300-W)",
               ("lmd@dlib68",), "dlib.net/files (Davis King); eval_metrics eval_ssim_lmd.py --shape_predictor_path",
               url="http://dlib.net/files/shape_predictor_68_face_landmarks.dat.bz2",
               sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"),
    WeightFile("ms1mv3_arcface_r100_fp16.pth", "ArcFace iresnet100 (MS1MV3) for CSIM (state_dict)",
               ("csim",), "deepinsight/insightface recognition/arcface_torch model zoo",
               manual="no direct link: get ms1mv3_arcface_r100_fp16/backbone.pth from the insightface "
                      "arcface_torch model zoo and save it under this name in the weights directory"),
)}


class MissingWeightError(LipbenchError, FileNotFoundError):
    """A weight file not found where lipbench looks, or one with no direct download."""


class DownloadError(LipbenchError, ValueError):
    """`fetch` could not download a file, or got another file than the published one."""


def search_dirs(weights_dir=None) -> list[Path]:
    dirs = [Path(weights_dir)] if weights_dir else []
    if os.environ.get("LIPBENCH_WEIGHTS"):
        dirs.append(Path(os.environ["LIPBENCH_WEIGHTS"]))
    from lipbench.config import cache_dir

    dirs.append(cache_dir() / "weights")
    return dirs


def spec(name: str) -> WeightFile:
    if name not in WEIGHTS:
        close = difflib.get_close_matches(name, WEIGHTS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"unknown weight file {name!r}.{hint} Known: {', '.join(sorted(WEIGHTS))}")
    return WEIGHTS[name]


def find_weight(name: str, weights_dir=None, needed_by: str = "") -> Path:
    """Path of a registered weight file, or MissingWeightError saying how to get it."""
    entry = spec(name)
    dirs = search_dirs(weights_dir)
    for folder in dirs:
        if (folder / name).is_file():
            return folder / name
    who = f" (needed by {needed_by})" if needed_by else ""
    raise MissingWeightError(
        f"weight file {name}{who} not found in {', '.join(str(d) for d in dirs)}; "
        f"get it with: {entry.how_to_get()} (or pass --weights-dir / set LIPBENCH_WEIGHTS)")


def check(name: str, path) -> tuple[bool | None, str]:
    """(True: the published file / False: another file / None: no known hash, sha256)."""
    entry, digest = spec(name), file_sha256(path)
    if entry.sha256:
        return digest == entry.sha256, digest
    if entry.hash_prefix:
        return digest.startswith(entry.hash_prefix), digest
    return None, digest


def fetch(name: str, dest_dir=None, progress: bool = True) -> Path:
    """Download a registered file into dest_dir (default: the user cache), then check it."""
    entry = spec(name)
    if not entry.url:
        raise MissingWeightError(f"{name} has no direct download: {entry.manual}")
    dest = Path(dest_dir) if dest_dir else search_dirs()[-1]
    target = dest / name
    # dlib publishes its models bz2-compressed; the hash is the decompressed file's
    decompress = bz2.BZ2Decompressor().decompress if entry.url.endswith(".bz2") else (lambda block: block)
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(entry.url, timeout=60) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                    while block := response.read(1 << 20):
                        out.write(decompress(block))
                        bar.update(len(block))
        except OSError as exc:  # URLError, a timeout, a full disk: the user's network or machine
            raise DownloadError(f"{name}: download from {entry.url} failed ({exc})") from exc
        ok, digest = check(name, tmp)
        if ok is False:
            raise DownloadError(f"{name}: downloaded file has sha256 {digest}, which is not the published file; "
                             f"not saved")
    return target
