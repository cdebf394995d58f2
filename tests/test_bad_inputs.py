"""A bad-input suite (issue 11, part 7): malformed files driven through the real CLI.

Every case puts one bad input beside good clips in one invocation of `lipbench eval
--fake`, `lipbench run` or `lipbench data verify`, and checks that
(a) the message names the file and the problem,
(b) the other inputs of the same invocation still get their results, and
(c) nothing already written is lost (the eval JSON holds the good clips, a run
    directory keeps its completed units across a rerun).
Errors found before any work (duplicate clip ids, an --out that is a folder, a missing
config) exit with 2 and one `lipbench: error:` line, and write nothing.

The media are made once per session from the session's synthetic set (tests/conftest.py):
64x64 clips for the cases that need only the weight-free reference metrics, its first 30
frames at 256x256 for the few that need a face the face mesh can read (lmd, avsync).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import yaml
from scipy.signal import resample_poly

from lipbench import io
from lipbench.cli import main

GOOD = ("synth_000", "synth_001")  # the good clips put beside every bad one
BAD = "synth_002"  # the clip id of the bad input
N = 49  # frames of every reference
N_BIG = 30  # frames of the 256x256 references (avsync scores lags up to 10 frames, with 10 frames overlap)
FPS = 25
REF_METRICS = "psnr,ssim@full"
PSNR, SSIM, LMD, NCC, LAG = "psnr@full", "ssim@full", "lmd@mediapipe", "av_ncc@mesh_energy", "av_lag@mesh_energy"


# ------------------------------------------------------------------ making bad media


def write_av(
    path,
    frames,
    *,
    fps=FPS,
    pix_fmt="bgr0",
    codec="ffv1",
    fmt=None,
    audio=None,
    audio_rate=16000,
    audio_codec="pcm_s16le",
    video=True,
    pts_ms=None,
):
    """Frames (T, H, W, 3) RGB and audio (n,) mono or (n, 2) stereo in any container,
    codec and pixel format PyAV writes. `pts_ms`: each frame's time in milliseconds
    (a variable frame rate), written into the packets."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = None
        if video:
            stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.pix_fmt = pix_fmt
            stream.height, stream.width = frames.shape[1:3]
        sound = None
        if audio is not None:
            sound = out.add_stream(audio_codec, rate=audio_rate)
            sound.layout = "mono" if audio.ndim == 1 else "stereo"
        if stream is not None:
            packets = []
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format=pix_fmt)
                frame.pts, frame.time_base = i, 1 / Fraction(fps).limit_denominator(1001)
                packets += stream.encode(frame)
            packets += stream.encode(None)
            for i, packet in enumerate(packets):
                if pts_ms is not None:  # ffv1 is intra-only: one packet per frame, in order
                    packet.pts = packet.dts = int(pts_ms[i])
                    packet.time_base = Fraction(1, 1000)
                out.mux(packet)
        if sound is not None:
            io._encode_audio(out, sound, audio[:, None] if audio.ndim == 1 else audio, audio_rate)


def corrupt_audio(src, dst, seed=0):
    """A copy of `src` whose audio packets are random bytes: the stream is there, its
    codec (AAC) cannot decode it."""
    rng = np.random.default_rng(seed)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        video_in, audio_in = inp.streams.video[0], inp.streams.audio[0]
        video_out, audio_out = out.add_stream_from_template(video_in), out.add_stream_from_template(audio_in)
        for packet in inp.demux():
            if packet.dts is None:
                continue
            if packet.stream is audio_in:
                garbage = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                garbage.pts, garbage.dts, garbage.duration = packet.pts, packet.dts, packet.duration
                garbage.time_base, garbage.stream = packet.time_base, audio_out
                out.mux(garbage)
            else:
                packet.stream = video_out
                out.mux(packet)


def resized(frames, width, height):
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


@dataclass
class Media:
    small: dict[str, Path]  # clip id -> 64x64 reference (mkv, 49 frames, 16 kHz mono)
    big: dict[str, Path]  # clip id -> 256x256 reference with a readable face (30 frames)
    files: dict[str, Path]  # kind -> bad (or odd) file


@pytest.fixture(scope="session")
def media(tmp_path_factory, synth_set) -> Media:
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "small").mkdir()
    small = {}
    for source in synth_set.clips:  # the 64x64 references: the synthetic clips downscaled, and one mirrored
        small[source.id] = root / "small" / f"{source.id}.mkv"
        io.write_video(small[source.id], resized(source.frames(), 64, 64), FPS, source.driving_audio())
    frames, audio = resized(synth_set.clips[0].frames(), 64, 64)[:, :, ::-1], synth_set.clips[0].driving_audio()
    small[BAD] = root / "small" / f"{BAD}.mkv"
    io.write_video(small[BAD], frames, FPS, audio)
    frames, audio = io.read_video(small[BAD])[0], io.read_audio(small[BAD])  # as decoded
    big = {}  # the face cases' references: the synthetic clips' first N_BIG frames (the face mesh is slow)
    for source in synth_set.clips:
        big[source.id] = root / "big" / f"{source.id}.mkv"
        big[source.id].parent.mkdir(exist_ok=True)
        io.write_video(big[source.id], source.frames()[:N_BIG], FPS, source.driving_audio()[: N_BIG * 640])
    big[BAD] = root / "big" / f"{BAD}.mkv"  # the bad clip's reference: a copy of synth_001's
    shutil.copy(big["synth_001"], big[BAD])
    big_frames, big_audio = io.read_video(big[BAD])[0], io.read_audio(big[BAD])
    bad = root / "files"
    bad.mkdir()
    files = {}

    def path(kind, suffix=".mkv"):
        files[kind] = bad / f"{kind}{suffix}"
        return files[kind]

    path("zero_byte").write_bytes(b"")
    path("text_mp4", ".mp4").write_text("this is a text file, not a video\n")
    path("garbage").write_bytes(np.random.default_rng(1).integers(0, 256, 30000, dtype=np.uint8).tobytes())
    write_av(path("audio_only"), frames, audio=audio, video=False)
    write_av(path("zero_frames"), frames[:0], audio=audio)
    write_av(path("one_frame"), frames[:1], audio=audio[:640])
    write_av(path("twenty_frames"), frames[:20], audio=audio[: 20 * 640])
    write_av(path("ref_41_frames"), frames[:41], audio=audio[: 41 * 640])
    write_av(path("longer"), np.concatenate([frames, frames[-11:]]), audio=audio)
    data = small[BAD].read_bytes()
    path("half_truncated").write_bytes(data[: len(data) // 2])
    damaged, third = bytearray(data), len(data) // 3  # 2000 random bytes there: packets that fail to decode
    damaged[third : third + 2000] = np.random.default_rng(2).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    path("corrupt_video").write_bytes(bytes(damaged))
    at_60 = np.minimum(np.round(np.arange(round(N * 60 / FPS)) * FPS / 60).astype(int), N - 1)
    write_av(path("fps60"), frames[at_60], fps=60, audio=audio)
    times = np.cumsum([0] + [20 if k % 2 == 0 else 60 for k in range(N - 1)])  # 20/60 ms: 25 fps on average
    write_av(path("vfr"), frames[np.minimum((times * FPS / 1000 + 1e-6).astype(int), N - 1)], audio=audio, pts_ms=times)
    for w, h in ((63, 47), (8, 8), (2, 2), (96, 96)):
        write_av(path(f"size_{w}x{h}"), resized(frames, w, h), audio=audio)
    write_av(path("ref_63x47"), resized(frames, 63, 47), audio=audio)  # the same frames: a reference
    shutil.copy(files["size_8x8"], path("ref_8x8"))
    shutil.copy(files["size_2x2"], path("ref_2x2"))
    write_av(path("yuv420p10le_ffv1"), frames, pix_fmt="yuv420p10le", audio=audio)
    write_av(path("yuv420p10le_x264", ".mp4"), frames, codec="libx264", pix_fmt="yuv420p10le")
    write_av(path("gray"), frames, pix_fmt="gray", audio=audio)
    # the resolution changes at frame 10: two MPEG-TS files back to back
    write_av(bad / "part1.ts", frames[:10], codec="libx264", pix_fmt="yuv420p", fmt="mpegts")
    write_av(bad / "part2.ts", resized(frames[10:], 80, 48), codec="libx264", pix_fmt="yuv420p", fmt="mpegts")
    path("size_change", ".ts").write_bytes((bad / "part1.ts").read_bytes() + (bad / "part2.ts").read_bytes())
    # the big (face) set: audio problems and a clip without a face
    write_av(path("no_audio"), big_frames)
    write_av(bad / "aac.mkv", big_frames, audio=big_audio, audio_codec="aac")
    corrupt_audio(bad / "aac.mkv", path("bad_audio"))
    write_av(path("audio_8k"), big_frames, audio=resample_poly(big_audio, 1, 2).astype(np.float32), audio_rate=8000)
    stereo = resample_poly(big_audio, 3, 1).astype(np.float32)
    write_av(path("audio_48k_stereo"), big_frames, audio=np.stack([stereo, 0.5 * stereo], 1), audio_rate=48000)
    write_av(path("no_face"), np.full_like(big_frames, 128), audio=big_audio)
    write_av(path("small_no_audio"), frames)
    return Media(small, big, files)


def put(media: Media, kind: str, dest: Path) -> None:
    """Make `dest` the input `kind`: a copy of a file of `media.files`, or a link or
    folder where a file is expected."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return
    if kind == "folder":
        dest.mkdir()
    elif kind == "broken_symlink":
        dest.symlink_to(dest.parent / "deleted_long_ago.mkv")
    elif kind == "symlink_loop":  # dest -> b.mkv -> dest; b.mkv outside the folder of videos
        other = dest.parent.parent / f"loop_b{dest.suffix}"
        other.symlink_to(dest)
        dest.symlink_to(other)
    else:
        shutil.copy(media.files[kind], dest)


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------ lipbench eval --fake


@dataclass
class EvalCase:
    fake: str | None  # kind of the bad clip's fake video (None: a good copy of its reference)
    fails: tuple[str, ...] = ()  # metric keys that must fail for the bad clip
    says: tuple[str, ...] = ()  # what each of their errors must say (regexes), besides the file
    scored: tuple[str, ...] = ()  # metric keys the bad clip must still get
    metrics: str = REF_METRICS
    real: str | None = None  # kind of the bad clip's reference (None: the good one)
    blame: str | None = "fake"  # whose file the errors name: 'fake', 'real', or 'clip' (the clip id: a
    #                            metric that cannot score the frames it was given), or None
    fake_name: str = BAD + ".mkv"
    real_name: str = BAD + ".mkv"
    big: bool = False  # the 256 px set (lmd, avsync need a readable face)
    explicit: bool = False  # pass the bad fake file on the command line (.ts is not listed in folders)
    args: tuple[str, ...] = ()
    notes: dict = field(default_factory=dict)  # expected clip_notes entries of the bad clip
    never: tuple[str, ...] = ()  # what its errors must not say
    psnr_min: float | None = None  # the bad clip's PSNR must reach this (decoded as the reference)
    like_good: tuple[str, ...] = ()  # keys whose value must equal the good clip's (the same content): av
    #                                  sync of audio resampled to 16 kHz mono as the original's


def keys_of(metrics: str) -> list[str]:
    out = []
    for spec in metrics.split(","):
        out += {"psnr": [PSNR], "ssim@full": [SSIM], "lmd": [LMD], "avsync": [NCC, LAG]}[spec]
    return out


EVAL_CASES = {
    "zero_byte": EvalCase("zero_byte", (PSNR, SSIM), (r"is empty \(0 bytes\)",)),
    "text_file_named_mp4": EvalCase("text_mp4", (PSNR, SSIM), (r"cannot be opened as media",), fake_name=BAD + ".mp4"),
    "random_bytes": EvalCase("garbage", (PSNR, SSIM), (r"cannot be opened as media",)),
    "no_audio_stream": EvalCase(
        "no_audio", (NCC, LAG), (r"has no audio stream",), scored=(PSNR,), metrics="psnr,avsync", big=True
    ),
    "audio_only": EvalCase("audio_only", (PSNR, SSIM), (r"has no video stream",)),
    "undecodable_audio": EvalCase(
        "bad_audio",
        (NCC, LAG),
        (r"audio decoding failed",),
        scored=(PSNR,),
        metrics="psnr,avsync",
        big=True,
        never=("no audio stream",),
    ),
    "zero_frames": EvalCase("zero_frames", (PSNR, SSIM), (r"decodes to no frames",)),
    "one_frame": EvalCase(
        "one_frame", (PSNR, SSIM), (re.escape("1 frames for the reference's 49 (2% covered, 90% required"),)
    ),
    "20_of_41_frames": EvalCase(
        "twenty_frames",
        (PSNR, SSIM),
        (re.escape("20 frames for the reference's 41 (49% covered, 90% required"),),
        real="ref_41_frames",
    ),
    "corrupt_video_packets": EvalCase("corrupt_video", (PSNR, SSIM), (r"video decoding failed after \d+ frames",)),
    "half_truncated": EvalCase(
        "half_truncated", (PSNR, SSIM), (r"decod\w* fail|\d+ frames for the reference's 49 \(\d+% covered",)
    ),
    "60fps_vs_25fps": EvalCase(
        "fps60", (PSNR, SSIM), (re.escape("frame rate 60 fps, the reference's is 25 fps; pass --resample-fps"),)
    ),
    "60fps_resampled": EvalCase(
        "fps60",
        scored=(PSNR, SSIM),
        args=("--resample-fps",),
        psnr_min=100,
        notes={"generated_resampled": {"from_fps": 60.0, "to_fps": 25.0}},
    ),
    "variable_frame_rate": EvalCase("vfr", (PSNR, SSIM), (r"variable frame rate.*pass --resample-fps",)),
    "variable_frame_rate_resampled": EvalCase(
        "vfr",
        scored=(PSNR, SSIM),
        args=("--resample-fps",),
        psnr_min=40,
        notes={"generated_resampled": {"from_fps": 25.0, "to_fps": 25.0}},
    ),
    "longer_than_reference": EvalCase(
        "longer", scored=(PSNR, SSIM), psnr_min=100, notes={"frames_trimmed_from": {"reference": 49, "generated": 60}}
    ),
    "audio_8khz": EvalCase("audio_8k", scored=(PSNR, NCC, LAG), metrics="psnr,avsync", big=True, like_good=(NCC, LAG)),
    "audio_48khz_stereo": EvalCase(
        "audio_48k_stereo", scored=(PSNR, NCC, LAG), metrics="psnr,avsync", big=True, like_good=(NCC, LAG)
    ),
    "odd_size_63x47": EvalCase("size_63x47", scored=(PSNR, SSIM), real="ref_63x47", psnr_min=100),
    "tiny_8x8": EvalCase("size_8x8", scored=(PSNR, SSIM), real="ref_8x8", psnr_min=100),
    "tiny_2x2": EvalCase(
        "size_2x2",
        (SSIM,),
        (r"frames are 2x2; SSIM's 7x7 window needs at least 7x7",),
        scored=(PSNR,),
        real="ref_2x2",
        blame="clip",
        psnr_min=100,
    ),
    "tiny_2x2_vs_64x64_reference": EvalCase("size_2x2", scored=(PSNR, SSIM), notes={"generated_resized_from": [2, 2]}),
    "other_size_96x96": EvalCase(
        "size_96x96", scored=(PSNR, SSIM), notes={"generated_resized_from": [96, 96]}, psnr_min=30
    ),
    "10bit_yuv420p10le_ffv1": EvalCase("yuv420p10le_ffv1", scored=(PSNR, SSIM), psnr_min=35),
    "10bit_yuv420p10le_x264": EvalCase("yuv420p10le_x264", scored=(PSNR, SSIM), fake_name=BAD + ".mp4", psnr_min=30),
    "grayscale": EvalCase("gray", scored=(PSNR, SSIM), psnr_min=20),  # the colour is gone, not the picture
    "non_ascii_name": EvalCase(
        None, scored=(PSNR, SSIM), fake_name="clip_é_日本.mkv", real_name="clip_é_日本.mkv", psnr_min=100
    ),
    "symlink_loop": EvalCase("symlink_loop", (PSNR, SSIM), (r"is a broken or looping symlink",)),
    "broken_symlink": EvalCase("broken_symlink", (PSNR, SSIM), (r"is a broken or looping symlink",)),
    "folder_named_like_a_fake_video": EvalCase("folder", (PSNR, SSIM), (r"is a folder",)),
    "folder_named_like_a_real_video": EvalCase(None, (PSNR, SSIM), (r"is a folder",), real="folder", blame="real"),
    "zero_byte_reference": EvalCase(None, (PSNR, SSIM), (r"is empty \(0 bytes\)",), real="zero_byte", blame="real"),
    "resolution_changes_midway": EvalCase(
        "size_change",
        (PSNR, SSIM),
        (re.escape("frame size changes midway: frame 10 is 80x48, the frames before are 64x64"),),
        fake_name=BAD + ".ts",
        explicit=True,
    ),
    "no_face": EvalCase(
        "no_face", (LMD, NCC, LAG), (r"face",), scored=(PSNR,), metrics="psnr,lmd,avsync", big=True, blame="clip"
    ),
}


def good_clips(case: EvalCase) -> tuple[str, ...]:
    """The good clips beside the bad one: one for the face cases (the face mesh is slow),
    the one whose content the bad clip was made from."""
    return ("synth_001",) if case.big else GOOD


def eval_setup(media: Media, case: EvalCase, tmp_path: Path) -> tuple[Path, Path, list[str], Path, str]:
    """(fake folder, real folder, --fake arguments, the file the errors must name, bad clip id)."""
    refs = media.big if case.big else media.small
    fake_dir, real_dir = tmp_path / "fake", tmp_path / "real"
    fake_dir.mkdir(), real_dir.mkdir()
    for cid in good_clips(case):
        shutil.copy(refs[cid], fake_dir / f"{cid}.mkv")
        shutil.copy(refs[cid], real_dir / f"{cid}.mkv")
    fake, real = fake_dir / case.fake_name, real_dir / case.real_name
    if case.fake is None:
        shutil.copy(refs[BAD], fake)
    else:
        put(media, case.fake, fake)
    if case.real is None:
        shutil.copy(refs[BAD], real)
    else:
        put(media, case.real, real)
    args = [str(fake_dir)] + ([str(fake)] if case.explicit else [])
    stem = Path(case.fake_name).stem
    return fake_dir, real_dir, args, {"fake": fake, "real": real, "clip": f"{stem}:", None: None}[case.blame], stem


@pytest.mark.parametrize("case", EVAL_CASES.values(), ids=EVAL_CASES.keys())
def test_eval_bad_input(case: EvalCase, media, tmp_path, capsys):
    fake_dir, real_dir, fake_args, blamed, bad = eval_setup(media, case, tmp_path)
    out = tmp_path / "eval.json"
    code = main(
        [
            "eval",
            "--fake",
            *fake_args,
            "--real",
            str(real_dir),
            "--metrics",
            case.metrics,
            "--out",
            str(out),
            *case.args,
        ]
    )
    printed = capsys.readouterr()
    assert code == (1 if case.fails else 0), printed.err
    assert "Traceback" not in printed.err

    text = out.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    result = json.loads(text)  # (c) written, complete
    assert result["complete"] is True
    model = result["models"]["fake"]
    keys = keys_of(case.metrics)
    good = good_clips(case)
    assert model["n_clips"] == len(good) + 1 and set(model["clips"]) == {*good, bad}
    for cid in good:  # (b) the good clips beside the bad one are scored
        assert all(finite(model["clips"][cid].get(key)) for key in keys), (cid, model["clips"][cid])
        if PSNR in keys:
            assert model["clips"][cid][PSNR] == 100.0
    for key in case.scored:
        assert finite(model["clips"][bad].get(key)), (key, model["clips"][bad], model["metrics"][key]["failed"])
        assert model["metrics"][key]["n"] == len(good) + 1 and bad not in model["metrics"][key]["failed"]
    for key in case.fails:  # (a) the bad clip fails with the file and the problem named
        agg = model["metrics"][key]
        assert key not in model["clips"][bad]  # no number stands in (no NaN, no 0.0, no PSNR 100)
        assert agg["n"] == len(good) and list(agg["failed"]) == [bad]  # left out of the aggregate
        assert agg["value"] == pytest.approx(np.mean([model["clips"][cid][key] for cid in good]))
        reason = agg["failed"][bad]
        if blamed is not None:
            assert str(blamed) in reason, reason
        for pattern in case.says:
            assert re.search(pattern, reason), (pattern, reason)
        for text in case.never:
            assert text not in reason, reason
        assert {"model": "fake", "clip": bad, "metric": key, "error": reason} in result["failures"]["metric_values"]
        assert any(
            line.startswith(f"failed values: fake/{bad}: ") and key in line and reason in line
            for line in printed.err.splitlines()
        ), printed.err
    assert result["failures"]["counts"]["metric_values"] == len(case.fails)
    assert result["failures"]["counts"]["units"] == 0
    if case.psnr_min is not None:
        assert model["clips"][bad][PSNR] >= case.psnr_min, model["clips"][bad]
    for key in case.like_good:
        assert model["clips"][bad][key] == pytest.approx(model["clips"][good[0]][key], abs=0.03), model["clips"]
    notes = model["clip_notes"].get(bad, {})
    for name, expected in case.notes.items():
        got = notes.get(name)
        if isinstance(expected, dict):
            assert got is not None and {k: got.get(k) for k in expected} == expected, notes
        else:
            assert got == expected, notes
    if not case.notes:
        assert "generated_resampled" not in notes and "generated_resized_from" not in notes


# ------------------------------------------------------------------ eval: errors before any work


def _previous(out: Path) -> str:
    out.write_text('{"previous": "results"}', encoding="utf-8")
    return out.read_text(encoding="utf-8")


def usage_dup_real(media, tmp_path):
    fake_dir, real_dir, args, _, _ = eval_setup(media, EvalCase(None), tmp_path)
    shutil.copy(media.small[BAD], real_dir / f"{BAD}_cfr25.mkv")
    return (
        ["--fake", *args, "--real", str(real_dir)],
        [str(real_dir / f"{BAD}.mkv"), str(real_dir / f"{BAD}_cfr25.mkv"), f"clip id '{BAD}'", "real videos"],
    )


def usage_dup_fake(media, tmp_path):
    fake_dir, real_dir, args, _, _ = eval_setup(media, EvalCase(None), tmp_path)
    shutil.copy(media.small[BAD], fake_dir / f"{BAD}_synced.mkv")
    return (
        ["--fake", *args, "--real", str(real_dir)],
        [str(fake_dir / f"{BAD}.mkv"), str(fake_dir / f"{BAD}_synced.mkv"), f"clip id '{BAD}'", "fake videos"],
    )


def usage_missing_fake_file(media, tmp_path):
    fake_dir, real_dir, _, _, _ = eval_setup(media, EvalCase(None), tmp_path)
    missing = fake_dir / "synth_003.mkv"
    return (
        ["--fake", *(str(fake_dir / f"{c}.mkv") for c in GOOD), str(missing), "--real", str(real_dir)],
        [str(missing), "no such file"],
    )


def usage_missing_real_folder(media, tmp_path):
    fake_dir, _, args, _, _ = eval_setup(media, EvalCase(None), tmp_path)
    return ["--fake", *args, "--real", str(tmp_path / "no_such_real")], [str(tmp_path / "no_such_real"), "no such"]


def usage_broken_symlink_argument(media, tmp_path):
    fake_dir, real_dir, _, _, _ = eval_setup(media, EvalCase(None), tmp_path)
    link = tmp_path / "elsewhere" / f"{BAD}.mkv"
    put(media, "broken_symlink", link)
    return (
        ["--fake", *(str(fake_dir / f"{c}.mkv") for c in GOOD), str(link), "--real", str(real_dir)],
        [str(link), "broken or looping symlink"],
    )


USAGE_CASES = {
    "two_real_files_with_one_clip_id": usage_dup_real,
    "two_fake_files_with_one_clip_id": usage_dup_fake,
    "missing_fake_file": usage_missing_fake_file,
    "missing_real_folder": usage_missing_real_folder,
    "broken_symlink_as_fake_argument": usage_broken_symlink_argument,
}


@pytest.mark.parametrize("setup", USAGE_CASES.values(), ids=USAGE_CASES.keys())
def test_eval_input_errors_stop_before_scoring(setup, media, tmp_path, capsys):
    argv, says = setup(media, tmp_path)
    out = tmp_path / "eval.json"
    before = _previous(out)  # (c) a previous result there is not touched
    code = main(["eval", *argv, "--metrics", REF_METRICS, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("lipbench: error: "), err
    for text in says:
        assert text in err[0], (text, err[0])
    assert out.read_text(encoding="utf-8") == before


def test_eval_out_is_a_folder(media, tmp_path, capsys):
    _, real_dir, args, _, _ = eval_setup(media, EvalCase(None), tmp_path)
    out = tmp_path / "results"
    out.mkdir()
    (out / "old.json").write_text("{}")
    code = main(["eval", "--fake", *args, "--real", str(real_dir), "--metrics", REF_METRICS, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"lipbench: error: --out {out}: is a folder"), err
    assert [p.name for p in out.iterdir()] == ["old.json"] and (out / "old.json").read_text() == "{}"


# ------------------------------------------------------------------ lipbench run / data verify


def write_manifest(media: Media, folder: Path, kind: str, name: str = BAD + ".mkv") -> tuple[Path, Path]:
    """A manifest of the two good clips and a third whose file is `kind`, recorded with
    the values its good file had (frames, size, sha256): a damaged data set.
    Returns (manifest path, the bad file's path)."""
    from lipbench.data.manifest import describe_clip

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for cid in (*GOOD, BAD):
        dest = folder / (name if cid == BAD else f"{cid}.mkv")
        shutil.copy(media.small[cid], folder / f"{cid}.expected.mkv")
        expected = describe_clip(cid, folder / f"{cid}.expected.mkv")
        (folder / f"{cid}.expected.mkv").unlink()
        if cid == BAD:
            put(media, kind, dest)
        else:
            shutil.copy(media.small[cid], dest)
        entries.append(
            {
                "id": cid,
                "video": dest.name,
                "frames": expected.n_frames,
                "fps": expected.fps,
                "width": expected.width,
                "height": expected.height,
                "audio_rate": expected.audio_rate,
                "sha256": expected.sha256,
            }
        )
    path = folder / "manifest.yaml"
    path.write_text(
        yaml.safe_dump({"lipbench_manifest": 1, "name": "bad_inputs", "clips": entries}, allow_unicode=True),
        encoding="utf-8",
    )
    return path, folder / name


RUN_CASES = {
    "zero_byte": ("zero_byte", r"is empty \(0 bytes\)"),
    "text_file_named_mp4": ("text_mp4", r"cannot be opened as media"),
    "missing_file": ("missing", r"file not found|missing|no such file"),
    "folder": ("folder", r"is a folder"),
    "broken_symlink": ("broken_symlink", r"is a broken or looping symlink"),
    "symlink_loop": ("symlink_loop", r"is a broken or looping symlink"),
    "audio_only": ("audio_only", r"has no video stream"),
    "no_audio_stream": ("small_no_audio", r"has no audio stream"),
    "zero_frames": ("zero_frames", r"decodes to no frames"),
    "resolution_changes_midway": ("size_change", r"frame size changes midway: frame 10 is 80x48"),
}


@pytest.fixture
def no_figures(monkeypatch):
    """Empty figure files instead of drawn ones: the report's plots take seconds per run
    and are not what this suite checks (results.json and the run directory are)."""
    from lipbench.report import plots
    from lipbench.report.pareto import pareto_status

    def touch(stem):
        for suffix in (".png", ".svg"):
            stem.with_suffix(suffix).write_bytes(b"")

    def pareto_plot(points, stem, x_label, y_label, x_higher, y_higher, *args, **kwargs):
        touch(stem)
        return pareto_status(points, x_higher, y_higher)

    monkeypatch.setattr(plots, "pareto_plot", pareto_plot)
    monkeypatch.setattr(plots, "distribution_plot", lambda by_model, stem, *args, **kwargs: touch(stem))
    monkeypatch.setattr(plots, "latency_timeline", lambda data, stem, *args, **kwargs: touch(stem))


def write_config(path: Path, manifest: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "name": "bad_inputs",
                "data": {"manifest": str(manifest)},
                "models": ["ground_truth", "still"],
                "metrics": ["psnr"],
                "warmup_clips": 1,
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("kind, says", RUN_CASES.values(), ids=RUN_CASES.keys())
def test_run_with_a_bad_clip(kind, says, media, tmp_path, capsys, no_figures):
    """The bad clip's units fail with the file named; the good clips' units and metrics
    are produced (exit 1), and a rerun keeps them as they are."""
    manifest, bad_file = write_manifest(media, tmp_path / "clips", kind)
    config = write_config(tmp_path / "bench.yaml", manifest)
    run = tmp_path / "run"
    code = main(["run", str(config), "--out", str(run)])
    printed = capsys.readouterr()
    assert code == 1, printed.err
    assert "Traceback" not in printed.err
    result = json.loads((run / "results.json").read_text(encoding="utf-8"))
    failed = {(u["model"], u["clip"]): u["error"] for u in result["failures"]["units"]}
    assert set(failed) == {("ground_truth", BAD), ("still", BAD)}, failed
    for error in failed.values():
        assert str(bad_file) in error and re.search(says, error), error
    for model in ("ground_truth", "still"):  # listed at the end on stderr, with the file and the problem
        assert any(
            line.strip().startswith(f"{model}/{BAD} (generate): MediaError: {bad_file}: ") and re.search(says, line)
            for line in printed.err.splitlines()
        ), printed.err
        summary = result["models"][model]
        assert summary["n_ok"] == 2 and summary["n_failed"] == 1
        assert all(finite(summary["clips"][cid][PSNR]) for cid in GOOD)
        assert summary["metrics"][PSNR]["n"] == 2 and BAD in summary["metrics"][PSNR]["failed"]
    assert result["models"]["ground_truth"]["clips"]["synth_000"][PSNR] == 100.0
    units = {
        p: p.stat().st_mtime_ns for p in (run / "units").rglob("*.json") if json.loads(p.read_text())["status"] == "ok"
    }
    assert len(units) == 4
    # (c) a rerun keeps the completed units and retries only the failed ones
    assert main(["run", str(config), "--out", str(run)]) == 1
    rerun = capsys.readouterr()
    assert "generate: 0 made, 4 already done" in rerun.out or "4 already done" in rerun.out, rerun.out
    assert {p: p.stat().st_mtime_ns for p in units} == units
    again = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert again["models"]["ground_truth"]["clips"] == result["models"]["ground_truth"]["clips"]


VERIFY_CASES = {
    "zero_byte": ("zero_byte", r"is empty \(0 bytes\)"),
    "text_file_named_mp4": ("text_mp4", r"cannot be opened as media"),
    "missing_file": ("missing", r"file not found"),
    "folder": ("folder", r"is a folder"),
    "broken_symlink": ("broken_symlink", r"is a broken or looping symlink"),
    "symlink_loop": ("symlink_loop", r"is a broken or looping symlink"),
    "audio_only": ("audio_only", r"has no video stream"),
    "zero_frames": ("zero_frames", r"decodes to no frames"),
    "half_truncated": ("half_truncated", r"frames is 24, manifest says 49|decod"),
    "corrupt_video_packets": ("corrupt_video", r"video decoding failed after \d+ frames"),
    "resolution_changes_midway": ("size_change", r"frame size changes midway: frame 10 is 80x48"),
    "undecodable_audio": ("bad_audio", r"audio decoding failed"),
    "no_audio_stream": ("small_no_audio", r"has no audio stream"),
}


@pytest.mark.parametrize("kind, says", VERIFY_CASES.values(), ids=VERIFY_CASES.keys())
def test_data_verify_names_the_bad_clip(kind, says, media, tmp_path, capsys):
    manifest, bad_file = write_manifest(media, tmp_path / "clips", kind)
    code = main(["data", "verify", str(manifest)])
    printed = capsys.readouterr()
    assert code == 1 and "Traceback" not in printed.err
    lines = printed.out.splitlines()
    problems = [line for line in lines if line.startswith(f"{BAD}: ")]
    assert problems and all(str(bad_file) in line for line in problems), lines
    assert any(re.search(says, line) for line in problems), problems
    assert not any(line.startswith(GOOD) for line in lines), lines  # the good clips are fine
    assert "2/3 clips OK" in printed.out


# ------------------------------------------------------------------ missing config, manifest


def missing_config(media, tmp_path):
    path = tmp_path / "no_such_bench.yaml"
    return ["run", str(path), "--out", str(tmp_path / "run")], [str(path), "no such config file"]


def missing_manifest_in_config(media, tmp_path):
    manifest = tmp_path / "no_such_manifest.yaml"
    config = write_config(tmp_path / "bench.yaml", manifest)
    return ["run", str(config), "--out", str(tmp_path / "run")], [str(manifest), "manifest not found"]


def missing_manifest_to_verify(media, tmp_path):
    manifest = tmp_path / "no_such_manifest.yaml"
    return ["data", "verify", str(manifest)], [str(manifest), "manifest not found"]


def manifest_with_a_clip_id_twice(media, tmp_path):
    manifest, _ = write_manifest(media, tmp_path / "clips", "zero_byte")
    data = yaml.safe_load(manifest.read_text())
    data["clips"].append(dict(data["clips"][0]))
    manifest.write_text(yaml.safe_dump(data))
    config = write_config(tmp_path / "bench.yaml", manifest)
    return ["run", str(config), "--out", str(tmp_path / "run")], [str(manifest), "'synth_000' appears twice"]


MISSING_CASES = {
    "config_does_not_exist": missing_config,
    "manifest_of_config_does_not_exist": missing_manifest_in_config,
    "manifest_to_verify_does_not_exist": missing_manifest_to_verify,
    "manifest_lists_a_clip_id_twice": manifest_with_a_clip_id_twice,
}


@pytest.mark.parametrize("setup", MISSING_CASES.values(), ids=MISSING_CASES.keys())
def test_missing_config_or_manifest(setup, media, tmp_path, capsys):
    argv, says = setup(media, tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("lipbench: error: "), err
    for text in says:
        assert text in err[0], (text, err[0])
    assert not (tmp_path / "run").exists()  # nothing started


def test_non_ascii_clip_through_run_and_verify(media, tmp_path, capsys, no_figures):
    """A non-ASCII file name and clip id pass through a run and data verify."""
    folder = tmp_path / "clips"
    manifest, _ = write_manifest(media, folder, "zero_byte")
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    os.replace(folder / f"{BAD}.mkv", folder / "ignored.bin")
    shutil.copy(media.small[BAD], folder / "clip_é_日本.mkv")
    data["clips"][2] = {"id": "clip_é_日本", "video": "clip_é_日本.mkv"}
    manifest.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert main(["data", "verify", str(manifest)]) == 0
    assert "3/3 clips OK" in capsys.readouterr().out
    config = write_config(tmp_path / "bench.yaml", manifest)
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    result = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    assert result["models"]["ground_truth"]["clips"]["clip_é_日本"][PSNR] == 100.0
