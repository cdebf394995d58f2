"""Reading weight files into networks, with errors that say which file and what is wrong.

Every torch.load and torch.jit.load of a weight file in lipbench goes through
`read_file` (or `read_state_dict` / `read_torchscript`, built on it), always with
torch's safe loader (`weights_only=True`: tensors and containers, no Python objects, so
no code from a file ever runs). A file that cannot be used raises
lipbench.weights.BadWeightError naming the file, what is wrong with it in words (empty,
truncated with its size, an HTML page, a pickle of Python objects, ...) rather than
torch's internal message, and how to get a good copy.

Every network lipbench loads (S3FD, SyncNet, Wav2Lip, ArcFace, ...) is strict about key
names and shapes: a file of another network, a truncated download or an HTML page saved
under a weight file's name fails here with the file named, never later as nonsense.
"""

from __future__ import annotations

import pickletools
import re
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from lipbench.weights import BadWeightError

REFUSED = "holds Python objects other than tensors; refused (lipbench never runs code from weight files)"

ZIP_MAGIC = b"PK\x03\x04"  # torch.save (since PyTorch 1.6) and torch.jit.save write zip archives
# torch.save's older format: a pickle of this magic number, then the data (PyTorch < 1.6)
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_FORMATS = {"torch": "a PyTorch file (torch.save)", "torchscript": "a TorchScript file (torch.jit.save)"}


def read_file(path, fmt: str = "torch", map_location="cpu"):
    """The object in a weight file: torch.load(weights_only=True) for fmt "torch",
    torch.jit.load for "torchscript"; BadWeightError when the file cannot be used."""
    path = Path(path)
    if fmt not in _FORMATS:
        raise ValueError(f"unknown weight file format {fmt!r}; one of {sorted(_FORMATS)}")
    check_container(path, fmt)
    try:
        with warnings.catch_warnings():
            # torch 2.10+ calls TorchScript deprecated; pickle protocol notes; nothing a user can act on
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*pickle protocol.*", category=UserWarning)
            if fmt == "torchscript":
                return torch.jit.load(str(path), map_location=map_location)
            return torch.load(path, map_location=map_location, weights_only=True)
    except BadWeightError:
        raise
    except Exception as exc:  # torch's own errors, in words
        raise load_error(path, exc, fmt) from None


def read_state_dict(path, expected: str) -> dict:
    """torch.load of a file that must hold a dict (safe loader: tensors and containers only)."""
    state = read_file(path)
    if not isinstance(state, dict):
        raise BadWeightError(path, f"expected a state_dict ({expected}), found {type(state).__name__}", "mismatch")
    return state


def read_torchscript(path, device: str = "cpu") -> torch.jit.ScriptModule:
    """A TorchScript module in eval mode on `device`."""
    return read_file(path, "torchscript", map_location=device).eval()


def check_container(path: Path, fmt: str = "torch") -> None:
    """What can be told from the file itself before torch reads it: empty, cut short, a
    text or HTML page, a zip archive of the other kind. Raises BadWeightError."""
    size = path.stat().st_size
    if size == 0:
        raise BadWeightError(path, "empty file (0 bytes)", "empty")
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(ZIP_MAGIC):
        _check_zip(path, size, fmt)
        return
    if fmt == "torchscript":
        what = describe_other_format(path) or "it is not a zip archive"
        raise BadWeightError(path, f"cannot be read: not {_FORMATS[fmt]}: {what}")
    if head.startswith(LEGACY_MAGIC) or len(head) < len(LEGACY_MAGIC) and LEGACY_MAGIC.startswith(head):
        return  # torch's older format: torch.load tells the rest (a cut one: load_error)
    what = _describe_content(path, head)
    if what is not None:
        raise BadWeightError(path, f"cannot be read: not {_FORMATS[fmt]}: {what}")


def _check_zip(path: Path, size: int, fmt: str) -> None:
    cut = f"truncated ({size} bytes; "
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            directory = archive.start_dir
    except zipfile.BadZipFile as exc:
        if "central directory" in str(exc) or "not a zip file" in str(exc).lower() or "Truncated" in str(exc):
            raise BadWeightError(
                path,
                cut + "a zip archive whose central directory, at its end, is missing or "
                "incomplete: the file was cut short, e.g. by an interrupted download)",
                "truncated",
            ) from None
        raise BadWeightError(path, f"cannot be read: a damaged zip archive ({exc})") from None
    need = max((e.header_offset + e.compress_size for e in entries), default=0)
    if need > directory or directory > size:
        raise BadWeightError(
            path,
            cut + f"its zip directory lists data up to byte {max(need, directory)}: the file was cut short)",
            "truncated",
        )
    names = [e.filename for e in entries]
    scripted = any(n.endswith("/constants.pkl") or "/code/" in n for n in names)
    if fmt == "torch" and scripted:
        raise BadWeightError(
            path, "cannot be read: a TorchScript module (torch.jit.save), not a torch.save file of tensors"
        )
    if fmt == "torchscript" and not scripted:
        raise BadWeightError(
            path, "cannot be read: a torch.save file of tensors (no TorchScript code in it), not a TorchScript module"
        )


def _describe_content(path: Path, head: bytes) -> str | None:
    """A few words on a file that is not a torch file, or None when it may be a pickle
    (which torch's safe loader then judges)."""
    if head[:1] == b"\x80" or _is_pickle(path):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head[: exc.start].decode("utf-8") if exc.start > len(head) - 4 else None
    if text is not None and text.strip() and "\x00" not in text:
        start = " ".join(text.split())[:40]
        stripped = text.lstrip().lower()
        if stripped.startswith(("<!doctype html", "<html", "<?xml", "<head", "<body")) or "<html" in stripped[:200]:
            return f"an HTML page (e.g. an error or sign-in page saved in place of the download; starts {start!r})"
        if stripped.startswith("version https://git-lfs"):
            return "a Git LFS pointer, not the file itself (`git lfs pull` fetches it)"
        return f"a text file (starts {start!r})"
    return f"unknown content (starts with bytes {head[:8].hex(' ')})"


def describe_other_format(path) -> str | None:
    """For a file that is not in a torch format (a dlib model, ...): a few words when it
    is a torch file, a pickle or text instead, else None."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(ZIP_MAGIC) or head.startswith(LEGACY_MAGIC):
        return "a PyTorch file (torch.save)"
    if head[:1] == b"\x80" or _is_pickle(path):
        return "a Python pickle"
    what = _describe_content(path, head)
    return what if what and not what.startswith("unknown content") else None


def _is_pickle(path: Path) -> bool:
    """True when the file starts with a complete pickle (parsed, never run)."""
    try:
        with open(path, "rb") as f:
            for opcode, _, _ in pickletools.genops(f):
                if opcode.name == "STOP":
                    return True
    except Exception:
        return False
    return False


def _pickle_globals(path: Path) -> list[str]:
    """The globals (module.name) a pickle asks for, read without running it: the first
    pickle of the file, or of a torch zip archive's data.pkl."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                data = archive.read(name)
        else:
            with open(path, "rb") as f:
                data = f.read(1 << 20)
        found, strings = [], []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in (
                "SHORT_BINUNICODE",
                "BINUNICODE",
                "UNICODE",
                "BINUNICODE8",
                "SHORT_BINSTRING",
                "BINSTRING",
                "STRING",
            ):
                strings.append(str(arg))
            elif opcode.name == "GLOBAL":
                found.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif opcode.name == "STOP":
                break
    except Exception:  # a damaged pickle: whatever was found before
        pass
    return [g for g in dict.fromkeys(found) if not g.startswith(("torch.", "collections.OrderedDict", "_codecs."))]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message less torch's advice on loading unsafely
    (`weights_only=False`) and miniz boilerplate; the exception's type when empty."""
    text = str(exc)
    text = re.sub(r"In PyTorch 2\.6, we changed.*?trusted source\.", "", text, flags=re.S)
    text = re.sub(r"(?i)[^.\n]*weights_only[^.\n]*(False|=False)[^.\n]*\.?", "", text)
    text = re.sub(r"\s*This is an internal miniz error.*", "", text, flags=re.S)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else ""
    if len(line) > 200:
        line = line[:197] + "..."
    kind = type(exc).__name__ if type(exc).__module__ == "builtins" else f"{type(exc).__module__}.{type(exc).__name__}"
    return f"{kind}: {line}" if line else kind


def load_error(path, exc: BaseException, fmt: str = "torch") -> BadWeightError:
    """torch's error on reading `path`, as a BadWeightError that says what is wrong."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    text = str(exc)
    if "Weights only load failed" in text or "WeightsUnpickler" in text:
        named = _pickle_globals(path)
        return BadWeightError(path, REFUSED + (f"; it asks for {', '.join(named[:3])}" if named else ""), "refused")
    if (
        isinstance(exc, EOFError)
        or "unexpected EOF" in text
        or "truncated" in text.lower()
        or "unpack requires a buffer" in text
        or "Ran out of input" in text
    ):
        return BadWeightError(path, f"truncated ({size} bytes; the data ends early: {first_line(exc)})", "truncated")
    if "Invalid magic number" in text:
        return BadWeightError(path, f"cannot be read: a pickle, but not {_FORMATS[fmt]} ({first_line(exc)})")
    return BadWeightError(path, f"cannot be read as {_FORMATS[fmt]} ({first_line(exc)})")


def load_into(
    net: nn.Module, state: dict, path, description: str, short: str, optional_suffixes: tuple[str, ...] = ()
) -> nn.Module:
    """Load `state` into `net` strictly. `description` completes "not ..." when the key
    names differ; `short` names the network when shapes do not fit; keys ending in
    `optional_suffixes` may be absent (e.g. BatchNorm counters of pre-0.4.1 files)."""
    expected = set(net.state_dict())
    missing = sorted(k for k in expected - set(state) if not k.endswith(optional_suffixes or ("\0",)))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise BadWeightError(
            path,
            f"not {description}; missing keys: {missing[:5] or 'none'}, unexpected keys: {unexpected[:5] or 'none'}",
            "mismatch",
        )
    try:
        net.load_state_dict(state, strict=not optional_suffixes)
    except RuntimeError as exc:  # shapes
        details = " ".join(line.strip() for line in str(exc).splitlines()[1:] if line.strip())
        raise BadWeightError(
            path, f"{short} state_dict does not fit the network: {details[:400] or first_line(exc)}", "mismatch"
        ) from None
    return net


def for_inference(net: nn.Module, device: str = "cpu") -> nn.Module:
    """`net` in eval mode on `device`. On a CPU its convolution weights also go
    channels-last (Conv2d: NHWC, Conv3d: NDHWC), which lets oneDNN pick faster kernels:
    measured on 2 cores, InceptionV3 30%, S3FD 20%, SyncNet's lip stream 20% and
    iresnet100 8% less time per image, outputs equal up to float rounding (<= 2e-5
    absolute). GPUs keep the default layout (not measured here)."""
    net = net.to(device).eval()
    if str(device).split(":")[0] == "cpu":
        for module in net.modules():
            if isinstance(module, nn.Conv3d):
                module.to(memory_format=torch.channels_last_3d)
            elif isinstance(module, nn.Conv2d):
                module.to(memory_format=torch.channels_last)
    return net
