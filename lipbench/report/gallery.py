"""A video gallery for a run: watch the references and every model's output side by side.

`write_gallery(run)` writes, from a run directory:

- `previews/`: one small browser-playable MP4 per reference clip and per model video
  (H.264 yuv420p via libx264, at most PREVIEW_HEIGHT pixels high, `+faststart`, a
  keyframe every second for quick seeking; the reference's preview carries the driving
  audio as AAC, the models' previews are video only). Each preview is made once and
  remade only when its source changed (size and mtime, then sha256; `previews/index.json`
  records them). The lossless originals stay the source of every number.
- `gallery/index.html`: one row per clip with each model's metric values for it,
  sortable by any column (the first click on a column puts the worst values first).
- `gallery/<clip>.html`: the reference and every model's output in sync, one play
  button, one scrubber, frame stepping (buttons and keys), the reference's audio (the
  other videos are muted), each model's values under its video, and a close-up toggle
  that shows every video cropped to one fixed box per clip: the median, over sampled
  reference frames, of the box the protocol's face crop (lipbench.faces.face_crop's
  FaceCropper) finds on the reference clip.

Plain HTML with inline CSS and JS, relative links only: it works from file:// offline.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from fractions import Fraction
from pathlib import Path

from lipbench.report.tables import ARROW
from lipbench.storage import atomic_path, file_sha256, read_json, write_json, write_text

PREVIEW_HEIGHT = 256
# anything that changes the preview files: a change remakes every preview
PREVIEW_SETTINGS = {
    "version": 1,
    "codec": "libx264",
    "crf": 23,
    "preset": "veryfast",
    "height": PREVIEW_HEIGHT,
    "audio": "aac 48000 mono 64k",
}
BOX_SAMPLES = 12  # reference frames the close-up box is detected on
INDEX = "index.json"


def _safe_name(name: str) -> str:
    """A file name for a clip or model label (labels are registry-safe already; this only
    guards against path separators and odd characters)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


# ---------------------------------------------------------------------------- previews


def make_preview(source, target, audio_source=None, height: int = PREVIEW_HEIGHT) -> dict:
    """Encode `source`'s video (and `audio_source`'s first audio stream, when given) as a
    small H.264/AAC MP4 at `target`; returns {frames, fps, width, height} of the source."""
    import av

    settings = PREVIEW_SETTINGS
    with av.open(str(source)) as inp:
        if not inp.streams.video:
            raise ValueError(f"{source}: has no video stream")
        vin = inp.streams.video[0]
        rate = Fraction(vin.average_rate or vin.guessed_rate or 25).limit_denominator(1001)
        src_w, src_h = vin.codec_context.width, vin.codec_context.height
        out_h = min(height, src_h) // 2 * 2
        out_w = max(2, round(src_w * out_h / src_h / 2) * 2)
        with atomic_path(target) as tmp:
            with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
                vs = out.add_stream("libx264", rate=rate)
                vs.width, vs.height, vs.pix_fmt = out_w, out_h, "yuv420p"
                vs.options = {
                    "crf": str(settings["crf"]),
                    "preset": settings["preset"],
                    "g": str(max(1, round(float(rate)))),
                    "threads": "1",
                }
                aus = None
                if audio_source is not None:
                    aus = out.add_stream("aac", rate=48000)
                    aus.layout = "mono"
                    aus.bit_rate = 64000
                n = 0
                for frame in inp.decode(vin):
                    small = frame.reformat(width=out_w, height=out_h, format="yuv420p", interpolation="AREA")
                    small.pts, small.time_base = n, 1 / rate
                    out.mux(vs.encode(small))
                    n += 1
                out.mux(vs.encode(None))
                if aus is not None:
                    _encode_audio(out, aus, audio_source)
    return {"frames": n, "fps": float(rate), "width": src_w, "height": src_h}


def _encode_audio(out, stream, source) -> None:
    import av

    with av.open(str(source)) as inp:
        if not inp.streams.audio:
            return
        resampler = av.AudioResampler(
            format="fltp", layout="mono", rate=48000, frame_size=stream.codec_context.frame_size or 1024
        )
        samples = 0

        def mux(frames):
            nonlocal samples
            for f in frames:
                f.pts, f.time_base = samples, Fraction(1, 48000)
                samples += f.samples
                out.mux(stream.encode(f))

        for frame in inp.decode(inp.streams.audio[0]):
            frame.pts = None
            mux(resampler.resample(frame))
        mux(resampler.resample(None))
    out.mux(stream.encode(None))


def _source_state(path: Path) -> dict:
    st = path.stat()
    return {"source": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class PreviewCache:
    """`previews/` of a run, with its index: which source (path, size, mtime, sha256) and
    settings each preview was made from."""

    def __init__(self, root: Path):
        self.root = root
        path = root / INDEX
        data = {}
        if path.exists():
            try:
                data = read_json(path)
            except (ValueError, OSError):
                data = {}
        if not isinstance(data, dict) or data.get("settings") != PREVIEW_SETTINGS:
            data = {}
        self.entries: dict = data.get("entries", {})
        self.boxes: dict = data.get("boxes", {})
        self.made = 0
        self.reused = 0

    def fresh(self, rel: str, source: Path) -> dict | None:
        """The entry of a preview that is up to date with `source`, else None."""
        entry = self.entries.get(rel)
        if not entry or not (self.root / rel).exists():
            return None
        state = _source_state(source)
        if entry.get("source") != state["source"]:
            return None
        if entry.get("size") == state["size"] and entry.get("mtime_ns") == state["mtime_ns"]:
            return entry
        if entry.get("size") == state["size"] and entry.get("sha256") == file_sha256(source):
            entry.update(state)  # touched, not changed
            return entry
        return None

    def record(self, rel: str, source: Path, info: dict) -> dict:
        entry = {**_source_state(source), "sha256": file_sha256(source), **info}
        self.entries[rel] = entry
        return entry

    def save(self) -> None:
        write_json(self.root / INDEX, {"settings": PREVIEW_SETTINGS, "entries": self.entries, "boxes": self.boxes})


def face_box(video: Path) -> list[float] | None:
    """The close-up box of a clip, as fractions of the frame (x0, y0, x1, y1): the median
    over up to BOX_SAMPLES evenly spaced frames of the protocol's face box
    (FaceCropper.box); None when no sampled frame has a face. Only the sampled frames
    are kept in memory."""
    import av
    import numpy as np

    from lipbench.faces.face_crop import FaceCropper
    from lipbench.io import probe

    n = max(1, probe(video).n_frames)
    picks = set(np.linspace(0, n - 1, min(BOX_SAMPLES, n)).round().astype(int).tolist())
    frames = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in picks:
                frames.append(frame.to_ndarray(format="rgb24"))
            if i >= max(picks):
                break
    cropper = FaceCropper()
    try:
        boxes = [
            b
            for f in frames
            if (b := cropper.box(np.ascontiguousarray(f))[0]) is not None and b[2] > b[0] and b[3] > b[1]
        ]
    finally:
        cropper.close()
    if not boxes:
        return None
    h, w = frames[0].shape[:2]
    x0, y0, x1, y1 = np.median(np.asarray(boxes, dtype=float), axis=0)
    return [round(x0 / w, 4), round(y0 / h, 4), round(x1 / w, 4), round(y1 / h, 4)]


# ---------------------------------------------------------------------------- pages


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf") else None


def _fmt(v) -> str:
    return "-" if v is None else f"{v:,.3f}"


BASE_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1em 2em;color:#222}a{color:#0645ad}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}small{color:#666}"
)

INDEX_JS = r"""
(function(){
  const table = document.getElementById('clips'), body = table.tBodies[0];
  let current = null, dir = 1;
  function value(row, col){
    const v = row.cells[col].dataset.v;
    return v === undefined ? row.cells[col].textContent : (v === '' ? null : parseFloat(v));
  }
  function sortBy(th){
    const col = parseInt(th.dataset.col), hib = th.dataset.hib;
    if (current === th) dir = -dir;
    else dir = hib === 'lower' ? -1 : 1;  // first click: the worst values first
    current = th;
    const rows = Array.from(body.rows);
    rows.sort(function(a, b){
      const x = value(a, col), y = value(b, col);
      if (x === null && y === null) return 0;
      if (x === null) return 1;  // missing values last, whichever direction
      if (y === null) return -1;
      if (typeof x === 'string') return dir * x.localeCompare(y);
      return dir * (x - y);
    });
    rows.forEach(function(r){ body.appendChild(r); });
    table.querySelectorAll('th[data-col]').forEach(function(h){ h.classList.remove('asc', 'desc'); });
    th.classList.add(dir > 0 ? 'asc' : 'desc');
  }
  table.querySelectorAll('th[data-col]').forEach(function(th){
    th.addEventListener('click', function(){ sortBy(th); });
  });
})();
"""


def _index_html(title, clips, models, columns, values, status) -> str:
    head1 = (
        "<tr><th rowspan='2' data-col='0' class='clip'>clip</th>"
        + "".join(f"<th colspan='{len(columns)}' class='model'>{html.escape(m)}</th>" for m in models)
        + "</tr>"
    )
    head2, col = "<tr>", 1
    for _model in models:
        for c in columns:
            hib = {True: "higher", False: "lower", None: ""}[c.higher_is_better]
            head2 += (
                f"<th data-col='{col}' data-hib='{hib}' title='click to sort (first click: worst first)'>"
                f"{html.escape(c.label)}{ARROW[c.higher_is_better]}</th>"
            )
            col += 1
    head2 += "</tr>"
    rows = []
    for clip in clips:
        cells = [f"<td class='clip'><a href='{html.escape(_safe_name(clip))}.html'>{html.escape(clip)}</a></td>"]
        for m in models:
            for c in columns:
                v = _num(values.get((m, clip), {}).get(c.key))
                text = _fmt(v) if v is not None or status.get((m, clip)) in (None, "ok") else "failed"
                cells.append(f"<td data-v='{'' if v is None else repr(float(v))}'>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    style = BASE_STYLE + (
        "th[data-col]{cursor:pointer;user-select:none;background:#f4f4f4}"
        "th.asc::after{content:' ▲'}th.desc::after{content:' ▼'}"
        "th.model{background:#e8eef8;text-align:center;border-left:2px solid #999}"
        ".clip{position:sticky;left:0;background:#fff;z-index:1;text-align:left}"
        "tbody tr:hover{background:#fafae0}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}: gallery</title>"
        f"<style>{style}</style></head><body>"
        f"<h1>{html.escape(title)}: gallery</h1>"
        "<p><a href='../report.html'>report</a> · one row per clip, each model's values for it; click a column "
        "header to sort (first click: worst first, again: reverse); a clip opens its side-by-side player.</p>"
        f"<table id='clips'><thead>{head1}{head2}</thead><tbody>{''.join(rows)}</tbody></table>"
        f"<script>{INDEX_JS}</script></body></html>\n"
    )


CLIP_JS = r"""
(function(){
  const D = JSON.parse(document.getElementById('gallery-data').textContent);
  const vids = Array.from(document.querySelectorAll('video'));
  if (!vids.length) return;
  const master = document.querySelector('video.master') || vids[0];
  const fps = D.fps, N = D.frames;
  const play = document.getElementById('play'), scrub = document.getElementById('scrub');
  const label = document.getElementById('frame');
  scrub.max = N - 1;
  function frameOf(t){ return Math.max(0, Math.min(N - 1, Math.floor(t * fps + 1e-4))); }
  function show(k){
    scrub.value = k;
    label.textContent = 'frame ' + (k + 1) + ' / ' + N + '  (' + (k / fps).toFixed(2) + ' s)';
  }
  function seek(k){
    k = Math.max(0, Math.min(N - 1, k));
    const t = (k + 0.5) / fps;  // the middle of frame k: every browser shows frame k there
    vids.forEach(function(v){ v.pause(); v.currentTime = t; });
    play.textContent = '▶ play'; show(k);
  }
  function toggle(){
    if (master.paused){
      if (master.ended || master.currentTime >= master.duration - 0.5 / fps) {
        vids.forEach(function(v){ v.currentTime = 0; });
      }
      vids.forEach(function(v){ v.currentTime = master.currentTime; });
      vids.forEach(function(v){ const p = v.play(); if (p) p.catch(function(){}); });
      play.textContent = '❚❚ pause';
    } else {
      seek(frameOf(master.currentTime));
    }
  }
  function tick(){
    if (!master.paused){
      vids.forEach(function(v){
        if (v === master || v.ended) return;
        if (Math.abs(v.currentTime - master.currentTime) > 1.5 / fps) v.currentTime = master.currentTime;
        if (v.paused){ const p = v.play(); if (p) p.catch(function(){}); }
      });
      show(frameOf(master.currentTime));
    }
    requestAnimationFrame(tick);
  }
  master.addEventListener('ended', function(){
    vids.forEach(function(v){ v.pause(); });
    play.textContent = '▶ play';
    show(N - 1);
  });
  play.addEventListener('click', toggle);
  document.getElementById('prev').addEventListener('click', function(){ seek(frameOf(master.currentTime) - 1); });
  document.getElementById('next').addEventListener('click', function(){ seek(frameOf(master.currentTime) + 1); });
  scrub.addEventListener('input', function(){ seek(parseInt(scrub.value)); });
  const close = document.getElementById('closeup');
  close.addEventListener('change', function(){ document.body.classList.toggle('closeup', close.checked); });
  document.addEventListener('keydown', function(e){
    if (e.target.tagName === 'INPUT' && e.target.type !== 'range' && e.target.type !== 'checkbox') return;
    if (e.key === ' ' || e.key === 'k'){ e.preventDefault(); toggle(); }
    else if (e.key === 'ArrowLeft' || e.key === ','){ e.preventDefault(); seek(frameOf(master.currentTime) - 1); }
    else if (e.key === 'ArrowRight' || e.key === '.'){ e.preventDefault(); seek(frameOf(master.currentTime) + 1); }
    else if (e.key === 'Home'){ e.preventDefault(); seek(0); }
    else if (e.key === 'c'){ close.checked = !close.checked; document.body.classList.toggle('closeup', close.checked); }
  });
  if (location.hash === '#closeup'){ close.checked = true; document.body.classList.add('closeup'); }
  show(0);
  requestAnimationFrame(tick);
})();
"""


def _clip_page(title, clip, nav, fps, n_frames, box, bw, bh, x0, y0, parts, width=None, height=None) -> str:
    w, h = width or 1, height or 1
    data = json.dumps({"clip": clip, "fps": fps, "frames": n_frames, "box": box})
    box_note = (
        "the protocol's face box (lipbench.faces.face_crop FaceCropper, median over sampled reference frames)"
        if box
        else "no face found on the reference: close-up shows the whole frame"
    )
    style = BASE_STYLE + (
        "#videos{display:flex;flex-wrap:wrap;gap:14px}figure{margin:0;width:240px}"
        "figcaption{font-weight:600;margin-bottom:4px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
        f".frame{{position:relative;overflow:hidden;width:100%;aspect-ratio:{w}/{h};background:#000}}"
        ".frame video{display:block;width:100%;height:100%}"
        ".missing{color:#eee;display:flex;align-items:center;justify-content:center;font-size:13px}"
        f"body.closeup .frame{{aspect-ratio:{bw * w:.4f}/{bh * h:.4f}}}"
        f"body.closeup .frame video{{position:absolute;width:{100 / bw:.4f}%;height:auto;"
        f"left:{-100 * x0 / bw:.4f}%;top:{-100 * y0 / bh:.4f}%}}"
        ".vals{margin-top:4px;width:100%}.vals td{border:none;border-bottom:1px solid #eee;padding:1px 4px}"
        "#controls{margin:10px 0;display:flex;align-items:center;gap:8px;flex-wrap:wrap}"
        "#controls button{font-size:15px;padding:4px 10px}#scrub{width:420px}#frame{font-variant-numeric:tabular-nums}"
    )
    prev_link, next_link = nav
    links = ["<a href='index.html'>all clips</a>"]
    if prev_link:
        links.append(f"<a href='{html.escape(_safe_name(prev_link))}.html'>← {html.escape(prev_link)}</a>")
    if next_link:
        links.append(f"<a href='{html.escape(_safe_name(next_link))}.html'>{html.escape(next_link)} →</a>")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(clip)}: {html.escape(title)}</title>"
        f"<style>{style}</style></head><body>"
        f"<p>{' · '.join(links)}</p><h1>{html.escape(clip)}</h1>"
        "<div id='controls'><button id='prev' title='previous frame (← or ,)'>◀ frame</button>"
        "<button id='play' title='play / pause (space)'>▶ play</button>"
        "<button id='next' title='next frame (→ or .)'>frame ▶</button>"
        "<input id='scrub' type='range' min='0' step='1' value='0' aria-label='frame'>"
        "<span id='frame'></span>"
        f"<label title='{html.escape(box_note)}'><input id='closeup' type='checkbox'> mouth close-up (c)</label></div>"
        f"<div id='videos'>{''.join(parts)}</div>"
        f"<p><small>Previews: H.264 at most {PREVIEW_HEIGHT} px high, made from the run's lossless videos (every "
        f"number comes from those). Close-up box: {html.escape(box_note)}. Keys: space play/pause, ← → "
        "frame step, Home first frame, c close-up.</small></p>"
        f"<script type='application/json' id='gallery-data'>{html.escape(data, quote=False)}</script>"
        f"<script>{CLIP_JS}</script></body></html>\n"
    )


# ---------------------------------------------------------------------------- the gallery


def write_gallery(run, results: dict | None = None, progress: bool = True) -> dict:
    """Make the previews (those not up to date) and write gallery/index.html and one page
    per clip. Returns {'made': n, 'reused': n, 'index': path}."""
    import av
    from tqdm import tqdm

    from lipbench.io import MediaError
    from lipbench.report import tables

    root = Path(run.root)
    manifest = run.load_manifest()
    if results is None:
        results = read_json(root / "results.json")
    models = list(results["models"])
    columns = [c for c in tables.default_columns(results) if c.group == "metrics"]
    values, status = {}, {}
    per_clip = root / "per_clip.jsonl"
    if per_clip.exists():
        for line in per_clip.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                values[(row["model"], row["clip"])] = row
                status[(row["model"], row["clip"])] = row.get("status")
    clips = [c.id for c in manifest.clips]
    cache = PreviewCache(root / "previews")

    # (preview path relative to previews/, source, audio source or None)
    jobs = []
    for clip in manifest.clips:
        jobs.append((f"reference/{_safe_name(clip.id)}.mp4", Path(clip.video), Path(clip.audio or clip.video)))
        for model in models:
            video = run.video(model, clip.id)
            if video.exists():
                jobs.append((f"models/{_safe_name(model)}/{_safe_name(clip.id)}.mp4", video, None))
    todo = [j for j in jobs if j[1].exists() and cache.fresh(j[0], j[1]) is None]
    info, problems = {}, {}
    cache.reused = len([j for j in jobs if j[1].exists()]) - len(todo)
    # PyAV decodes and encodes without the GIL: a few threads use the cores (1.6x on 2)
    workers = max(1, min(4, os.cpu_count() or 1, len(todo)))
    with (
        tqdm(total=len(todo), desc="gallery previews", unit="video", disable=not (progress and todo)) as bar,
        ThreadPoolExecutor(workers) as pool,
    ):
        futures = {
            pool.submit(make_preview, source, cache.root / rel, audio): (rel, source) for rel, source, audio in todo
        }
        for future in as_completed(futures):
            rel, source = futures[future]
            try:
                cache.record(rel, source, future.result())
                cache.made += 1
            except (MediaError, OSError, ValueError, av.error.FFmpegError) as exc:
                problems[rel] = str(exc)  # one bad file leaves a placeholder, not a failed report
                cache.entries.pop(rel, None)
            bar.update(1)
    for rel, _source, _audio in jobs:
        if rel in cache.entries and (cache.root / rel).exists():
            info[rel] = cache.entries[rel]

    # one close-up box per clip, from the reference's frames; cached by the reference's hash
    boxes = {}
    for clip in manifest.clips:
        rel = f"reference/{_safe_name(clip.id)}.mp4"
        sha = info.get(rel, {}).get("sha256")
        if sha is None:
            boxes[clip.id] = None
            continue
        if sha not in cache.boxes:
            try:
                cache.boxes[sha] = face_box(Path(clip.video))
            except Exception as exc:  # noqa: BLE001 - the close-up is a convenience: no box, whole frame
                print(f"gallery: no close-up box for {clip.id} ({exc})", file=sys.stderr)
                cache.boxes[sha] = None
        boxes[clip.id] = cache.boxes[sha]
    cache.save()

    gallery = root / "gallery"
    gallery.mkdir(exist_ok=True)
    title = (results.get("config") or {}).get("name") or root.name
    for i, clip in enumerate(clips):
        ref_rel = f"reference/{_safe_name(clip)}.mp4"
        ref = info.get(ref_rel)
        tiles = [("reference", f"../previews/{ref_rel}" if ref else None, None, True, problems.get(ref_rel, ""))]
        first = ref
        for model in models:
            rel = f"models/{_safe_name(model)}/{_safe_name(clip)}.mp4"
            note = problems.get(rel) or (
                "" if status.get((model, clip)) in (None, "ok") else f"unit {status.get((model, clip))}"
            )
            tiles.append(
                (
                    tables.row_label(results, model),
                    f"../previews/{rel}" if rel in info else None,
                    values.get((model, clip), {}),
                    False,
                    note,
                )
            )
            first = first or info.get(rel)
        fps = (first or {}).get("fps") or 25.0
        n_frames = (first or {}).get("frames") or 1
        width, height = (first or {}).get("width") or 1, (first or {}).get("height") or 1
        x0, y0, x1, y1 = boxes[clip] or (0.0, 0.0, 1.0, 1.0)
        page = _clip_page(
            title,
            clip,
            (clips[i - 1] if i else None, clips[i + 1] if i + 1 < len(clips) else None),
            fps,
            n_frames,
            boxes[clip],
            max(x1 - x0, 1e-3),
            max(y1 - y0, 1e-3),
            x0,
            y0,
            [_tile_html(t, columns) for t in tiles],
            width,
            height,
        )
        write_text(gallery / f"{_safe_name(clip)}.html", page)
    index = gallery / "index.html"
    write_text(index, _index_html(title, clips, models, columns, values, status))
    return {"made": cache.made, "reused": cache.reused, "index": index, "problems": problems}


def _tile_html(tile, columns) -> str:
    label, src, values, is_ref, note = tile
    if src:
        attrs = "class='master' " if is_ref else "muted "
        media = f"<div class='frame'><video {attrs}preload='auto' playsinline src='{html.escape(src)}'></video></div>"
    else:
        media = f"<div class='frame missing'>no video{(': ' + html.escape(note)) if note else ''}</div>"
    table = ""
    if values is not None:
        table = (
            "<table class='vals'>"
            + "".join(
                f"<tr><td>{html.escape(c.key)}{ARROW[c.higher_is_better]}</td>"
                f"<td>{html.escape(_fmt(_num(values.get(c.key))))}</td></tr>"
                for c in columns
            )
            + "</table>"
        )
    caption = html.escape(label) + (" <small>(driving audio)</small>" if is_ref else "")
    return f"<figure><figcaption>{caption}</figcaption>{media}{table}</figure>"
