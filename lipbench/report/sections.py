"""What report.md and report.html say beyond the main table, built once for both pages:
the Pareto front lines, the timing sections (latency, other harnesses' spans, what was
measured outside the clock) as titled tables, and the rows of a paper comparison."""

from __future__ import annotations

from dataclasses import dataclass, field

from lipbench.report.schema import LATENCY_KEYS


# Said in a report's title and under it when the clips were driven by other clips' speech
CROSS_AUDIO_TITLE = " (cross audio: dubbing)"
CROSS_AUDIO_NOTE = (
    "Cross audio (dubbing): each clip is driven by another clip's speech (the pairs are under `audio` in "
    "results.json), so no ground truth of the new speech exists: only metrics that need none are computed, "
    "and their keys end in `+cross_audio`; they are not comparable with values of the clips' own speech "
    "(reconstruction)."
)


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list]  # names, then numbers (None: no value)
    floatfmt: str = ".4g"  # report.md's number format (report.html: always 4 significant digits)
    title: str | None = None  # a subheading above the table


@dataclass(frozen=True)
class Section:
    title: str
    note: str
    tables: list[Table] = field(default_factory=list)


def front_lines(fronts) -> list[str]:
    """One line per front (reference rows are never on one: they are lines on the plot)."""
    return [
        f"- {x} against {y}: front = {', '.join(sorted(m for m, s in st.items() if s == 'front')) or '-'}"
        + (
            f"; missing values: {', '.join(sorted(m for m, s in st.items() if s == 'missing'))}"
            if any(s == "missing" for s in st.values())
            else ""
        )
        for x, y, st in fronts
    ]


LATENCY_NOTE = (
    "How late the mouth follows the speech (medians over clips, seconds). offline: all audio known when "
    "stream() starts (the paper's protocol); live: the speech arrives at its real pace from the start. "
    "latency: a frame exists minus the time its interval's speech has fully arrived (p50, p95 over the "
    "clip's frames); playback delay: the least delay behind the speech at which a player never waits "
    "for a frame; stalls: frames late at the configured player delay; lookahead: how far past its "
    "frames a model had read the audio (declared by the adapter; 'clip': the whole clip first; "
    "'-': reads no audio); verdict: real-time (no stalls on any clip at that delay) or stalls."
)
LATENCY_HEADERS = [
    "model",
    "protocol",
    "ttff_s (s)",
    "latency p50 (s)",
    "latency p95 (s)",
    "playback delay (s)",
    "stalls (frames)",
    "at delay (s)",
    "lookahead (s)",
    "declared (s)",
    "verdict",
]


def latency_rows(results) -> list[list]:
    """One row per model and timing protocol (live first), from results' `latency`."""
    rows = []
    for protocol in ("live", "offline"):
        for model, agg in results["models"].items():
            figures = agg.get("latency", {}).get(protocol)
            if not figures:
                continue
            value = {key: figures[key].get("value") for key in LATENCY_KEYS}
            declared = figures.get("lookahead_declared_s")
            rows.append(
                [
                    model,
                    protocol,
                    value["ttff_s"],
                    value["latency_p50_s"],
                    value["latency_p95_s"],
                    value["playback_delay_s"],
                    value["stalls"],
                    figures.get("player_delay_s"),
                    value["lookahead_s"],
                    "clip" if declared is None else declared,
                    figures["verdict"],
                ]
            )
    return rows


DERIVED_TIMING_NOTE = (
    "Rebuilt from each unit's stage spans (stage_spans_s), median over clips, beside lipbench's "
    "own; spans in seconds, fps_* frames over that span. FastGen aligns faces before its clock "
    "starts, so alignment is left out of its spans (README, the Lip Forcing family)."
)


def derived_timing_tables(results) -> list[Table]:
    """Other harnesses' spans rebuilt from the units' stages (the Lip Forcing family: the
    authors' FastGen spans), beside lipbench's TTFF and FPS, medians over clips: a table
    per harness, titled with its name."""
    grouped: dict[str, list] = {}
    for model, agg in results["models"].items():
        for harness, figures in agg.get("derived_timing", {}).items():
            own = [agg["timing"].get(k, {}).get("value") for k in ("ttff_s", "fps")]
            grouped.setdefault(harness, []).append((model, own, figures))
    out = []
    for harness, rows in grouped.items():
        keys = list(dict.fromkeys(k for _, _, figures in rows for k in figures))
        out.append(
            Table(
                ["model", "ttff_s (s)", "fps (frames/s)", *keys],
                [[model, *own, *(figures.get(k) for k in keys)] for model, own, figures in rows],
                title=harness,
            )
        )
    return out


OUTSIDE_CLOCK_NOTE = (
    "Measured, and not part of TTFF or FPS (medians over clips, seconds): prepare_s, the "
    "per-clip work an upstream pipeline does ahead of time (MuseTalk's realtime avatar); for "
    "models in a worker process, the shipping of chunks across the boundary and the stream "
    "on lipbench's own clock, shipping included."
)
OUTSIDE_CLOCK_COLUMNS = ("prepare_s", "transfer_per_chunk_s", "transfer_total_s", "harness_ttff_s", "harness_total_s")


def outside_clock_table(results) -> Table | None:
    """When some model prepared for at least a millisecond or ran in a worker; else None
    (the demo's models have nothing outside the clock)."""
    rows = {m: agg.get("outside_clock", {}) for m, agg in results["models"].items()}
    if not any(f.get("prepare_s", 0) >= 1e-3 or "transfer_total_s" in f for f in rows.values()):
        return None
    columns = [c for c in OUTSIDE_CLOCK_COLUMNS if any(c in f for f in rows.values())]
    return Table(["model", *columns], [[m, *(f.get(c) for c in columns)] for m, f in rows.items()])


def timing_sections(results) -> list[Section]:
    """The timing sections a run has, in page order: latency, other harnesses' spans,
    outside the clock."""
    sections = []
    if latency := latency_rows(results):
        sections.append(
            Section(
                "Latency: how late the mouth follows the speech",
                LATENCY_NOTE,
                [Table(LATENCY_HEADERS, latency, floatfmt=".3f")],
            )
        )
    if derived := derived_timing_tables(results):
        sections.append(Section("Timing by other harnesses' definitions", DERIVED_TIMING_NOTE, derived))
    if outside := outside_clock_table(results):
        sections.append(Section("Outside the clock", OUTSIDE_CLOCK_NOTE, [outside]))
    if held := stream_hold_table(results):
        sections.append(Section("Over the whole stream", STREAM_HOLD_NOTE, [held]))
    return sections


STREAM_HOLD_NOTE = (
    "Does a stream keep its pace and its memory as it goes on (offline timing, medians over "
    "clips, 95% CI)? fps_hold: frames per second of the last third of the chunks over the "
    "first third (the first chunk left out); 1 holds, below 1 slows down. Memory growth: "
    "memory in use after the last chunk less after the first (the device's on CUDA, the "
    "process's resident set on a CPU), MB."
)


def stream_hold_table(results) -> Table | None:
    """When some model streamed at least 4 chunks; else None."""
    rows = []
    for model, agg in results["models"].items():
        stream = agg.get("stream", {})
        if "fps_hold" not in stream:
            continue
        hold, memory = stream["fps_hold"], stream.get("memory_growth_bytes")
        rows.append(
            [
                model,
                hold["value"],
                _ci(hold["ci95"]),
                memory["value"] / 1e6 if memory else None,
                _ci(memory["ci95"], 1e-6) if memory else "-",
            ]
        )
    if not rows:
        return None
    return Table(["model", "fps_hold", "95% CI", "memory growth (MB)", "95% CI (MB)"], rows, floatfmt=".3f")


def _ci(ci, scale: float = 1.0) -> str:
    return "-" if not ci else f"{_fmt(ci[0] * scale)}–{_fmt(ci[1] * scale)}"


def _fmt(v, digits=3):
    return "-" if v is None else f"{v:,.{digits}f}"


COMPARISON_HEADERS = ["model", "paper row", "metric", "measured", "95% CI", "paper", "difference", "paper in CI"]


def comparison_rows(comparison) -> list[list[str]]:
    return [
        [
            r["model"],
            r["paper_row"],
            r["metric"],
            _fmt(r["measured"]),
            _ci(r["ci95"]),
            _fmt(r["paper"]),
            _fmt(r["difference"]),
            {True: "yes", False: "no", None: "-"}[r["paper_inside_ci"]],
        ]
        for r in comparison["rows"]
    ]


def floor_lines(comparison) -> list[str]:
    return [
        f"- {c['method']}: TTFF {c['ttff_s']} s against a floor of {c['floor_s'] * 1000:.2f} ms: "
        f"{'BELOW the floor' if c['below_floor_as_seconds'] else 'possible'} as seconds; "
        f"{'impossible (below the floor)' if c['below_floor_if_read_as_ms'] else 'possible'} if read as ms"
        for c in comparison["floor_checks"]
    ]
