import json

from lipbench.cli import main


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--clips", "2", "--frames", "41"]) == 0
    printed = capsys.readouterr().out
    for name in ("report.md", "report.html", "results.json", "per_clip.jsonl", "pareto.png", "gallery/index.html"):
        assert (out / name).stat().st_size > 0
    assert "| ground_truth" in printed and "fps (frames/s)" in printed and "ttff_s (s)" in printed
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    results = json.loads((out / "results.json").read_text())
    m = {name: agg["metrics"] for name, agg in results["models"].items()}
    mean = lambda model, key: m[model][key]["value"]  # noqa: E731
    for key, higher in (("psnr@full", True), ("ssim@full", True), ("lmd@mediapipe", False)):
        others = [mean(x, key) for x in ("still", "av_shift", "procedural")]
        assert mean("ground_truth", key) == (
            max(others + [mean("ground_truth", key)]) if higher else min(others + [mean("ground_truth", key)])
        )
    sync = {x: mean(x, "av_ncc@mesh_energy") for x in m}
    assert sync["still"] == min(sync.values())
    assert mean("av_shift", "av_lag@mesh_energy") == 3.0
    assert sync["still"] < sync["procedural"] <= sync["ground_truth"]
    assert mean("still", "psnr@full") < mean("procedural", "psnr@full") < mean("ground_truth", "psnr@full")
    assert results["models"]["procedural"]["timing"]["ttff_s"]["value"] > 0
    assert results["data"]["n_clips"] == 2 and len(results["data"]["input_hash"]) == 64
    assert results["environment"]["packages"]["av"]

    rows = [json.loads(line) for line in (out / "per_clip.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)

    # both timing protocols: live, the procedural model waits for each chunk's speech
    latency = results["models"]["procedural"]["latency"]
    assert set(latency) == {"offline", "live"}
    assert latency["live"]["ttff_s"]["value"] >= 9 / 25.0 > latency["offline"]["ttff_s"]["value"]
    assert latency["live"]["lookahead_s"]["value"] == 0.0 == latency["live"]["lookahead_declared_s"]
    report = (out / "report.md").read_text()
    assert "## Latency: how late the mouth follows the speech" in report and (out / "live_latency.png").exists()
    # 9 + 12 + 12 + 8 frames: two whole chunks after the first, too few to say whether the pace holds
    hold = results["models"]["procedural"]["stream"]
    assert "fps_hold" not in hold and hold["memory_growth_bytes"]["n"] == 2
    assert "## Over the whole stream" not in report

    # the oracles are references: marked, never bold, never on a front (lines on the plot)
    assert [m for m, agg in results["models"].items() if agg["reference"]] == ["ground_truth", "still", "av_shift"]
    assert "- fps against ssim@full: front = procedural" in report
    table = report.split("## Pareto fronts")[0]
    truth = next(line for line in table.splitlines() if line.startswith("| ground_truth (reference)"))
    assert "**" not in truth and "**" not in next(line for line in table.splitlines() if line.startswith("| still"))

    # a second run finds everything done and rebuilds the same numbers
    assert main(["demo", "--out", str(out), "--clips", "2", "--frames", "41"]) == 0
    assert "generate: 0 made, 8 already done" in capsys.readouterr().out
    again = json.loads((out / "results.json").read_text())
    assert again["models"] == results["models"]


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["data", "verify", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: manifest not found" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert "nope.yaml: no such config file" in capsys.readouterr().err
