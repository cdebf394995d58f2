"""Every weight file a metric or model loads: one registry, one lookup, no surprises.

Files are looked up, in order, in `--weights-dir`, `$LIPBENCH_WEIGHTS`, and the user
cache (`$LIPBENCH_CACHE/weights`, default ~/.cache/lipbench/weights). Nothing is ever
downloaded implicitly: a missing file is an error that names the file, what needs it
and the command that gets it (`lipbench weights fetch NAME`).

A file whose hash differs from the known one still loads (tests and ablations use
other weights on purpose), but every result records the sha256 it was computed with,
and `lipbench weights verify` says which files are not the published ones. A file that
cannot be used at all (empty, cut short, an HTML page, a pickle of Python objects, the
weights of another network) is a BadWeightError naming the file, what is wrong with it
and how to get a good copy; metrics load their networks before the first clip
(`Metric.load`), so such a file stops a run before any work.
"""

from __future__ import annotations

import bz2
import difflib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from lipbench.errors import LipbenchError, UnknownNameError
from lipbench.storage import atomic_path, file_sha256  # noqa: F401 (file_sha256: part of this module's API)
from lipbench.weight_file import WeightFile  # noqa: F401 (part of this module's API)


WEIGHTS: dict[str, WeightFile] = {
    w.name: w
    for w in (
        WeightFile(
            "syncnet_v2.model",
            "SyncNet audio-visual sync network (state_dict)",
            ("sync_c", "sync_d", "av_offset"),
            "joonson/syncnet_python download_model.sh",
            url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
            loader="lipbench.metrics.syncnet.network:load_syncnet",
        ),
        WeightFile(
            "sfd_face.pth",
            "S3FD face detector for the SyncNet face tracks (state_dict)",
            ("sync_c@syncnet_python", "sync_c@latentsync"),
            "joonson/syncnet_python download_model.sh",
            url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",
            loader="lipbench.metrics.syncnet.s3fd:load_s3fd",
        ),
        WeightFile(
            "pt_inception-2015-12-05-6726825d.pth",
            "FID Inception-v3 port (pytorch-fid)",
            ("fid",),
            "pip pytorch-fid 0.3.0, pytorch_fid/inception.py FID_WEIGHTS_URL",
            url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
            loader="lipbench.metrics.fid:fid_inception_from_file",
        ),
        WeightFile(
            "i3d_torchscript.pt",
            "I3D feature extractor for FVD (TorchScript)",
            ("fvd",),
            "universome/stylegan-v src/metrics/frechet_video_distance.py",
            url="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
            format="torchscript",
            loader="lipbench.checkpoints:read_torchscript",
        ),
        WeightFile(
            "alexnet-owt-7be5be79.pth",
            "torchvision AlexNet, the LPIPS trunk",
            ("lpips",),
            "torchvision.models.alexnet (AlexNet_Weights.IMAGENET1K_V1)",
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            loader="lipbench.metrics.lpips_metric:build_lpips",
        ),
        WeightFile(
            "shape_predictor_68_face_landmarks.dat",
            "dlib 68-point face landmark predictor (iBUG 300-W)",
            ("lmd@dlib68",),
            "dlib.net/files (Davis King); eval_metrics eval_ssim_lmd.py --shape_predictor_path",
            url="http://dlib.net/files/shape_predictor_68_face_landmarks.dat.bz2",
            sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
            format="dlib",
            loader="lipbench.faces.dlib68:Dlib68",
        ),
        WeightFile(
            "ms1mv3_arcface_r100_fp16.pth",
            "ArcFace iresnet100 (MS1MV3) for CSIM (state_dict)",
            ("csim",),
            "deepinsight/insightface recognition/arcface_torch model zoo",
            manual="no direct link: get ms1mv3_arcface_r100_fp16/backbone.pth from the insightface "
            "arcface_torch model zoo and save it under this name in the weights directory",
            loader="lipbench.faces.arcface:load_iresnet100",
        ),
        # VBench's dimensions (lipbench.metrics.vbench): the files VBench 0.1.5 downloads
        # (vbench/utils.py init_submodules), under their names; DINO's, CLIP's and MUSIQ's are
        # hundreds of MB (`large`: `weights random` writes them only when named)
        WeightFile(
            "dino_vitbase16_pretrain.pth",
            "DINO ViT-B/16 backbone (state_dict), VBench subject consistency",
            ("subject_consistency",),
            "facebookresearch/dino hubconf.py dino_vitb16 (vbench/utils.py init_submodules)",
            url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
            loader="lipbench.metrics.vbench.subject:load_dino",
            stand_in="lipbench.metrics.vbench.subject:write_stand_in",
            large=True,
        ),
        WeightFile(
            "ViT-B-32.pt",
            "OpenAI CLIP ViT-B/32 (TorchScript archive), VBench background consistency",
            ("background_consistency",),
            "openai/CLIP clip/clip.py _MODELS['ViT-B/32'] (vbench/utils.py init_submodules)",
            url="https://openaipublic.azureedge.net/clip/models/"
            "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
            sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
            format="torchscript",
            loader="lipbench.metrics.vbench.background:load_clip",
            stand_in="lipbench.metrics.vbench.background:write_stand_in",
            large=True,
        ),
        WeightFile(
            "musiq_spaq_ckpt-358bb6af.pth",
            "MUSIQ trained on SPAQ (pyiqa checkpoint), VBench imaging quality",
            ("imaging_quality",),
            "chaofengc/IQA-PyTorch v0.1-weights release (vbench/utils.py init_submodules)",
            url="https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth",
            loader="lipbench.metrics.vbench.imaging:load_musiq",
            stand_in="lipbench.metrics.vbench.imaging:write_stand_in",
            large=True,
        ),
        WeightFile(
            "amt-s.pth",
            "AMT-S frame interpolation ({'state_dict': ...}), VBench motion smoothness",
            ("motion_smoothness",),
            "MCG-NKU/AMT (vbench/utils.py init_submodules: huggingface lalala125/AMT)",
            url="https://huggingface.co/lalala125/AMT/resolve/main/amt-s.pth",
            loader="lipbench.metrics.vbench.motion:load_amt_s",
            stand_in="lipbench.metrics.vbench.motion:write_stand_in",
        ),
    )
}


# Model packages keep their weight files beside their code; an installed plug-in adds
# its own through the entry-point group "lipbench.weights" (value "module:TUPLE" of
# WeightFile). A name registered before cannot be taken over.
PACKAGE_WEIGHTS = (
    "lipbench.models.wav2lip.weights:WEIGHT_FILES",
    "lipbench.models.lipforcing.weights:WEIGHT_FILES",
    "lipbench.models.musetalk.weights:WEIGHT_FILES",
    "lipbench.models.latentsync.weights:WEIGHT_FILES",
)


def _register_package_weights() -> None:
    import importlib
    import importlib.metadata
    import sys

    plugins = [(ep.value, True) for ep in importlib.metadata.entry_points(group="lipbench.weights")]
    for target, plugin in [(t, False) for t in PACKAGE_WEIGHTS] + plugins:
        module, _, attribute = target.partition(":")
        try:
            files = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            if not plugin:
                raise
            print(f"lipbench: weight files of plug-in {target} not registered ({exc})", file=sys.stderr)
            continue
        for entry in files:
            WEIGHTS.setdefault(entry.name, entry)


_register_package_weights()


class MissingWeightError(LipbenchError, FileNotFoundError):
    """A weight file not found where lipbench looks, or one with no direct download."""


class DownloadError(LipbenchError, ValueError):
    """`fetch` could not download a file, or got another file than the published one."""


class BadWeightError(LipbenchError, ValueError):
    """A weight file that is there but cannot be used. `kind`: "empty", "truncated",
    "unreadable" (not the file format, or damaged), "refused" (a pickle of Python objects
    other than tensors) or "mismatch" (it reads, but is not the network's weights)."""

    def __init__(self, path, problem: str, kind: str = "unreadable"):
        self.path, self.problem, self.kind = str(path), problem, kind
        super().__init__(f"weight file {path}: {problem}; {fix_for(Path(path).name)}")

    def __reduce__(self):
        return type(self), (self.path, self.problem, self.kind)


def fix_for(name: str) -> str:
    """How to replace a bad copy of the file called `name`."""
    return WEIGHTS[name].fix() if name in WEIGHTS else "replace it with a good copy"


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
        f"get it with: {entry.how_to_get()} (or pass --weights-dir / set LIPBENCH_WEIGHTS)"
    )


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
            raise DownloadError(
                f"{name}: downloaded file has sha256 {digest}, which is not the published file; not saved"
            )
    return target


@dataclass(frozen=True)
class Verdict:
    """What `lipbench weights verify` says about one registered file."""

    name: str
    status: str  # ok | unknown hash | wrong hash | truncated | unreadable | missing
    detail: str  # what was found
    action: str = ""  # what to do about it ("" when nothing)
    path: Path | None = None
    problem: bool = True  # counts against verify's exit code


def load_for_check(name: str, path):
    """Load the file as lipbench does (its network, on the CPU), or only read it when no
    network is registered for it; raises BadWeightError when it cannot be used."""
    import importlib

    from lipbench import checkpoints

    entry = spec(name)
    if entry.large:  # tens of GB: the zip container's structure is checked, not its tensors
        return checkpoints.check_container(Path(path), entry.format)
    if not entry.loader:
        return checkpoints.read_file(path, entry.format)
    module, _, function = entry.loader.partition(":")
    return getattr(importlib.import_module(module), function)(path)


def verify(name: str, weights_dir=None) -> Verdict:
    """Whether the file is there, is the published one (sha256), and loads; with what to
    do when it is not usable. The published file is not loaded (its hash says enough)."""
    from lipbench.errors import MissingDependencyError

    entry = spec(name)
    try:
        path = find_weight(name, weights_dir)
    except MissingWeightError:
        return Verdict(name, "missing", "not found", f"get it: {entry.how_to_get()}")
    published, digest = check(name, path)
    if published:
        return Verdict(name, "ok", f"the published file (sha256 {digest[:16]}...)", path=path, problem=False)
    loads, why = True, ""
    try:
        load_for_check(name, path)
    except BadWeightError as exc:
        if exc.kind != "mismatch":
            status = "truncated" if exc.kind == "truncated" else "unreadable"
            return Verdict(name, status, exc.problem, entry.fix(), path)
        loads, why = False, exc.problem
    except MissingDependencyError as exc:  # dlib not installed: nothing to load it with here
        loads, why = None, str(exc)
    if published is False:
        expected = (entry.sha256 or entry.hash_prefix or "")[:16]
        said = {
            True: "it loads, but results made with it are not the published weights' results",
            False: f"it does not load: {why}",
            None: f"not loaded ({why})",
        }[loads]
        return Verdict(
            name,
            "wrong hash",
            f"sha256 {digest[:16]}..., the published file's is {expected}...; {said}",
            f"for the published file: {entry.how_to_get()}",
            path,
        )
    if loads is False:
        return Verdict(
            name,
            "unknown hash",
            f"no published sha256 to compare with (sha256 {digest[:16]}...); it does not load: {why}",
            entry.fix(),
            path,
        )
    said = "it loads" if loads else f"not loaded ({why})"
    return Verdict(
        name,
        "unknown hash",
        f"no published sha256 to compare with (sha256 {digest[:16]}...); {said}",
        path=path,
        problem=not loads,
    )
