"""MuseTalk 1.5 (lipbench.models.musetalk) against numbers made by upstream's own code
(tests/fixtures/musetalk, README.md there says how), the published files' layouts, and
the adapter end to end at the tiny size on a small synthetic clip in both modes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lipbench.models.musetalk import audio, bisenet, blending, faces, networks
from lipbench.models.musetalk.adapter import REAL_PARAMETERS, MuseTalk, decode_latents, latents_for_unet
from tests.helpers import fixture_maker

FOLDER, MAKER = fixture_maker("musetalk")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def relative_error(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


@pytest.fixture(scope="module")
def parity():
    return dict(np.load(FOLDER / "parity.npz"))


@pytest.fixture(scope="module")
def cases():
    return json.loads((FOLDER / "cases.json").read_text())


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """The tiny networks' files in the published formats and layout (stand-ins)."""
    folder = tmp_path_factory.mktemp("musetalk_weights")
    networks.write_folder(folder, MAKER.WEIGHT_SEED, "tiny")
    bisenet.write_random(folder / "79999_iter.pth", MAKER.WEIGHT_SEED)
    return folder


# -- layouts -----------------------------------------------------------------------


def test_real_size_layouts_equal_upstreams():
    """UNet (upstream's wrapper on musetalk.json), VAE and whisper at the published size,
    built here with today's diffusers / transformers on the meta device."""
    layouts = json.loads((FOLDER / "state_dict.json").read_text())
    assert layouts["unet_config"] == {
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": "0.6.0.dev0",
        **networks.UNET_CONFIG,
    }
    with torch.device("meta"):
        built = {
            "unet": networks.build_unet(networks.UNET_CONFIG),
            "vae": networks.build_vae(networks.VAE_CONFIG),
            "whisper": networks.build_whisper(networks.WHISPER_CONFIG),
        }
    for name, net in built.items():
        ours = {k: list(v.shape) for k, v in net.state_dict().items()}
        assert ours == dict(layouts[name]["keys"]), name
    counts = {name: sum(p.numel() for p in net.parameters()) for name, net in built.items()}
    assert counts["unet"] == layouts["unet"]["parameters"]
    assert counts["vae"] == layouts["vae"]["parameters"]
    encoder = sum(p.numel() for p in built["whisper"].encoder.parameters())
    assert encoder == layouts["whisper_encoder_parameters"]
    assert counts["unet"] + counts["vae"] + encoder == REAL_PARAMETERS == MuseTalk.parameters


# -- networks ----------------------------------------------------------------------


def test_positional_encoding_matches_upstream(parity):
    out = networks.PositionalEncoding(384)(torch.zeros(1, 50, 384))
    assert relative_error(out, parity["pe384"]) <= 1e-6


def test_unet_step_matches_upstream(parity, tiny_files):
    unet = networks.load_unet(tiny_files / "musetalkV15/unet.pth")
    pe = networks.PositionalEncoding(networks.TINY_WHISPER_CONFIG["d_model"])
    out = networks.unet_step(unet, pe, MAKER.seeded_latents(), MAKER.seeded_tokens())
    assert relative_error(out, parity["unet"]) <= 1e-4


def test_vae_encode_and_decode_match_upstream(parity, tiny_files):
    vae = networks.load_vae(tiny_files / "sd-vae-ft-mse")
    generator = torch.Generator().manual_seed(MAKER.SAMPLE_SEED)  # upstream: torch.manual_seed, then its sampling
    latents = latents_for_unet(vae, MAKER.seeded_crop_rgb(), generator)
    assert latents.shape == (1, 8, 32, 32)
    assert relative_error(latents, parity["vae_latents"]) <= 1e-4
    decoded = decode_latents(vae, MAKER.seeded_decode_latents())
    upstream_rgb = parity["vae_decoded_bgr"][..., ::-1]
    assert decoded.dtype == np.uint8 and decoded.shape == upstream_rgb.shape
    assert np.abs(decoded.astype(int) - upstream_rgb).max() <= 1


def test_whisper_features_match_upstream(parity, tiny_files):
    whisper = networks.load_whisper(tiny_files / "whisper-tiny")
    extractor = audio.feature_extractor(networks.read_json(tiny_files / "whisper-tiny/preprocessor_config.json"))
    samples = MAKER.seeded_audio()
    mels = audio.mel_segments(samples, extractor)
    assert relative_error(mels[0][0, :, :100], parity["mel_head"]) <= 1e-4
    chunks = audio.whisper_chunks(whisper, extractor, samples, 31, 25, "cpu", torch.float32)
    assert chunks.shape == parity["whisper_chunks"].shape == (31, 30, 32)
    assert relative_error(chunks, parity["whisper_chunks"]) <= 1e-4


@pytest.mark.parametrize("case", sorted(MAKER.CHUNK_CASES))
def test_frame_windows_match_upstream(parity, case):
    samples, fps = MAKER.CHUNK_CASES[case]
    states = MAKER.coded_states(-(-samples // (30 * 16000)))
    windows = audio.frame_windows(states, samples, fps=fps)
    np.testing.assert_array_equal(windows.numpy().astype(np.int32), parity[f"chunks_{case}"])
    # frame i reads rows [floor(i * 50 / fps) - 4, + 10), zeros outside the audio
    rows = windows[:, :: MAKER.CHUNK_LAYERS, 0].numpy() - 1
    assert rows[0, :4].tolist() == [-1] * 4 and rows[0, 4:].tolist() == [0, 1, 2, 3, 4, 5]
    if fps == 25:
        assert rows[10].tolist() == list(range(16, 26))


def test_frame_windows_past_the_audio_read_zeros():
    samples = MAKER.CHUNK_CASES["short"][0]
    states = MAKER.coded_states(1)
    upstream = audio.frame_windows(states, samples, fps=25)
    longer = audio.frame_windows(states, samples, fps=25, n_frames=len(upstream) + 7)
    assert len(longer) == len(upstream) + 7
    torch.testing.assert_close(longer[: len(upstream)], upstream, rtol=0, atol=0)
    assert float(longer[-1].abs().max()) == 0.0


# -- faces, parsing, blending ------------------------------------------------------


@pytest.fixture(scope="module")
def parser():
    net = bisenet.BiSeNet()
    net.load_state_dict(bisenet.random_state_dict(MAKER.WEIGHT_SEED), strict=True)
    return bisenet.FaceParser(net.eval())


def test_bisenet_matches_upstream(parity, parser):
    with torch.no_grad():
        logits = parser.net(MAKER.seeded_parse_input())[0]
    assert relative_error(logits, parity["parsing_logits"]) <= 1e-4


@pytest.mark.parametrize("case", sorted(MAKER.BLEND_BOXES))
def test_parsing_masks_and_blending_equal_upstreams(parity, parser, case):
    from PIL import Image

    frame, box = MAKER.seeded_frame_rgb(), MAKER.BLEND_BOXES[case]
    face = MAKER.seeded_face_rgb(box)
    if case == "inside":  # FaceParsing's mask itself (the other calls below parse again)
        large, _ = blending.crop_box(box)
        parsed = np.array(parser(Image.fromarray(frame).crop(large), mode="jaw"))
        np.testing.assert_array_equal(parsed, parity[f"parsed_{case}"])
        assert 0 < (parsed == 255).mean() < 1
    mask, large = blending.blend_mask(frame, box, parser, "jaw", blur_ratio=0.1)  # realtime: made ahead
    np.testing.assert_array_equal(mask, parity[f"mask_{case}"])
    assert list(large) == parity[f"crop_box_{case}"].tolist()
    pasted = blending.paste(frame, face, box, mask, large)
    np.testing.assert_array_equal(pasted, parity[f"blending_{case}"][..., ::-1])
    normal = blending.blend_normal(frame, face, box, parser, "jaw")  # normal mode: get_image
    np.testing.assert_array_equal(normal, parity[f"get_image_{case}"][..., ::-1])
    assert (normal != frame).any()


def test_box_rule_matches_upstream(cases):
    for case in cases["boxes"]:
        landmarks = np.asarray(case["keypoints"], np.float32)[23:91]
        if case["s3fd"] is None:  # upstream: the placeholder; lipbench: the nearest frame's box
            assert case["upstream_box"] == [0, 0, 0, 0]
            continue
        assert list(faces.box_from_landmarks(landmarks, fallback=case["s3fd"])) == case["upstream_box"], case["kind"]
    assert faces.fill_missing([None, (1, 2, 3, 4), None, (5, 6, 7, 8)]) == [(1, 2, 3, 4)] * 3 + [(5, 6, 7, 8)]
    assert faces.with_margin((1, 2, 3, 90), 95) == (1, 2, 3, 95)


def test_s3fd_protocol_uses_its_boxes_for_presence_and_fallback(clip):
    """faces: "s3fd": a frame S3FD finds no face in takes the nearest frame's box; where
    it finds one, the landmark rule gives the box (S3FD's is only the fallback)."""
    calls = []

    def detector(frames):
        calls.append(len(frames))
        return [(10, 10, 60, 70), None, (12, 12, 61, 71)]

    boxes_s3fd = faces.FaceBoxes("s3fd", s3fd=detector)
    boxes_mesh = faces.FaceBoxes("mediapipe")
    try:
        with_s3fd, mesh_only = boxes_s3fd(clip.frames), boxes_mesh(clip.frames)
    finally:
        boxes_s3fd.close()
        boxes_mesh.close()
    assert calls == [3]
    assert with_s3fd[0] == mesh_only[0] and with_s3fd[2] == mesh_only[2]
    assert with_s3fd[1] == with_s3fd[0]  # no face: the earlier frame's box
    height = clip.frames.shape[1]
    for x1, y1, x2, y2 in mesh_only:
        assert 0 <= x1 < x2 and 0 <= y1 < y2 <= height


# -- files ---------------------------------------------------------------------------


def test_stand_in_files_load_strictly_and_wrong_ones_are_refused(tiny_files, tmp_path):
    from lipbench.weights import BadWeightError

    raw = torch.load(tiny_files / "sd-vae-ft-mse/diffusion_pytorch_model.bin", weights_only=True)
    assert any(k.endswith("attentions.0.query.weight") for k in raw)  # the published file's diffusers-0.4 names
    assert networks.modern_vae_keys(raw).keys() == networks.build_vae(networks.TINY_VAE_CONFIG).state_dict().keys()
    assert all(
        k.startswith("model.") for k in torch.load(tiny_files / "whisper-tiny/pytorch_model.bin", weights_only=True)
    )
    wrong = tmp_path / "musetalkV15"
    wrong.mkdir()
    (wrong / "musetalk.json").write_text((tiny_files / "musetalkV15/musetalk.json").read_text())
    torch.save(networks.random_vae_state_dict(0), wrong / "unet.pth")
    with pytest.raises(BadWeightError, match="not MuseTalk 1.5's UNet"):
        networks.load_unet(wrong / "unet.pth")
    state = networks.random_unet_state_dict(0)
    state["conv_in.weight"] = state["conv_in.weight"][:, :4]
    torch.save(state, wrong / "unet.pth")
    with pytest.raises(BadWeightError, match="does not fit"):
        networks.load_unet(wrong / "unet.pth")
    with pytest.raises(BadWeightError, match="BiSeNet"):
        bisenet.load_bisenet(wrong / "unet.pth")


def test_weight_entries_name_loaders_and_stand_ins(tmp_path):
    import importlib

    from lipbench.models.musetalk.weights import WEIGHT_FILES

    names = {w.name for w in WEIGHT_FILES}
    assert names == {*networks_files(), "79999_iter.pth"}
    for entry in WEIGHT_FILES:
        assert entry.url or entry.manual, entry.name
        assert entry.needed_by == ("musetalk",)
        for target in (entry.loader, entry.stand_in):
            module, _, function = target.partition(":")
            assert callable(getattr(importlib.import_module(module), function)), target
    by_name = {w.name: w for w in WEIGHT_FILES}
    assert by_name["musetalkV15/unet.pth"].large
    for name in (
        "musetalkV15/musetalk.json",
        "sd-vae-ft-mse/config.json",
        "whisper-tiny/config.json",
        "whisper-tiny/preprocessor_config.json",
    ):  # the small ones: written and read back
        entry, target = by_name[name], tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        module, _, function = entry.stand_in.partition(":")
        getattr(importlib.import_module(module), function)(target, 0)
        module, _, function = entry.loader.partition(":")
        assert getattr(importlib.import_module(module), function)(target)
    assert networks.read_json(tmp_path / "musetalkV15/musetalk.json")["in_channels"] == 8
    assert networks.whisper_config(networks.read_json(tmp_path / "whisper-tiny/config.json")).d_model == 384


# -- the adapter ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip():
    from lipbench.check_adapter import synthetic_request

    return synthetic_request(frames=3, size=96)


@pytest.fixture()
def registered(monkeypatch):
    """The package's files in the registry (lipbench.weights registers them; this makes the
    test independent of that)."""
    from lipbench import weights
    from lipbench.models.musetalk.weights import WEIGHT_FILES

    for entry in WEIGHT_FILES:
        monkeypatch.setitem(weights.WEIGHTS, entry.name, weights.WEIGHTS.get(entry.name, entry))


def test_adapter_options_are_checked():
    with pytest.raises(ValueError, match="mode"):
        MuseTalk(mode="fast")
    with pytest.raises(ValueError, match="size"):
        MuseTalk(size="huge")
    assert MuseTalk().batch_size == 8 and MuseTalk(mode="realtime").batch_size == 20
    assert MuseTalk(mode="realtime").causal and MuseTalk(mode="realtime").chunk_frames == (20,)
    assert not MuseTalk().causal and MuseTalk().chunk_frames == ()
    assert MuseTalk(mode="realtime").dtype == "fp32"  # on the CPU
    realtime = MuseTalk(mode="realtime")
    realtime.device = "cuda"
    assert realtime.dtype == "fp16" and MuseTalk(dtype="fp16").dtype == "fp16"
    assert MuseTalk(random_weights=True).weight_files() == {}


def test_normal_mode_from_files_end_to_end(clip, tiny_files, registered):
    model = MuseTalk(mode="normal", size="tiny", weights_dir=tiny_files, batch_size=2)
    assert set(model.weight_files()) == {*networks_files(), "79999_iter.pth"}
    model.load("cpu")
    stages = []
    model.stage_timer = lambda name: _Recorder(stages, name)
    model.prepare(clip)  # nothing ahead in normal mode
    chunks = list(model.stream(clip))
    model.close()
    assert [c.shape for c in chunks] == [clip.frames.shape]  # one chunk, at the end, as upstream writes
    assert chunks[0].dtype == np.uint8
    assert (chunks[0] != clip.frames).any()
    assert stages[:3] == ["audio_encode", "faces", "encode"] and stages[-1] == "blend"
    assert stages.count("unet") == 2 and stages.count("decode") == 2  # batches of 2 over 3 frames


def test_realtime_mode_prepares_then_streams_batches(clip):
    model = MuseTalk(mode="realtime", size="tiny", random_weights=True, batch_size=2, seed=3)
    model.load("cpu")
    with pytest.raises(RuntimeError, match="prepare"):
        next(model.stream(clip))
    stages = []
    model.prepare(clip)
    assert model.prepared_clips == [clip.clip_id]
    model.stage_timer = lambda name: _Recorder(stages, name)
    first = list(model.stream(clip))
    assert [len(c) for c in first] == [2, 1]
    assert all(c.shape[1:] == clip.frames.shape[1:] and c.dtype == np.uint8 for c in first)
    assert "faces" not in stages and "encode" not in stages and stages[0] == "audio_encode"
    from lipbench.runner import run_stream

    # as a unit runs it (prepare untimed, then the stream): the avatar made again from the
    # same seed, the same audio: the same frames
    frames, timing = run_stream(model, clip, "cpu")
    np.testing.assert_array_equal(frames, np.concatenate(first))
    assert timing["prepare_s"] > 0 and model.prepared_clips == [clip.clip_id] * 2
    assert model.describe()["mode"] == "realtime"
    model.close()
    assert model.parts is None


def networks_files():
    from lipbench.models.musetalk.adapter import NETWORK_FILES

    return NETWORK_FILES


class _Recorder:
    def __init__(self, names: list, name: str):
        self.names, self.name = names, name

    def __enter__(self):
        self.names.append(self.name)

    def __exit__(self, *exc):
        return False
