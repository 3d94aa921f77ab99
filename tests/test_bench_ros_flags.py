"""bench/recorder_speed.py and bench/log_convert_speed.py run at --tiny sizes with their flags and
write what they measured to the --out path they are given.

The recorder bench's publisher and recorder are separate processes on a possibly busy machine:
messages lost on the way are what it measures, so no count of drops is asserted here, only that
every count is there and consistent."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDER = ROOT / "bench" / "recorder_speed.py"
CONVERT = ROOT / "bench" / "log_convert_speed.py"
TOPICS = {"/bench/cam0/image_raw", "/bench/cam1/image_raw", "/bench/joint_states"}


def run_bench(script: Path, out: Path, *flags: str, timeout: int = 300) -> dict:
    proc = subprocess.run(
        [sys.executable, str(script), "--tiny", "--out", str(out), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "|---" in proc.stdout  # the markdown table
    return json.loads(out.read_text())


def positive(x) -> bool:
    return isinstance(x, float | int) and math.isfinite(x) and x > 0


def check_machine(doc: dict) -> None:
    assert doc["date"] and doc["machine"]["cpu_model"] and doc["machine"]["logical_cpus"] >= 1
    assert doc["settings"]["tiny"] is True


@pytest.mark.parametrize(
    "flags, cases",
    [
        pytest.param(["--best-effort"], [("reliable", None), ("best_effort", None)], id="best-effort"),
        pytest.param(
            ["--shm-segment-mb", "8", "--seconds", "2"], [("reliable", None), ("reliable", 8)], id="shm-segment"
        ),
    ],
)
def test_recorder_speed(tmp_path, flags, cases):
    doc = run_bench(RECORDER, tmp_path / "recorder_speed.json", *flags)
    check_machine(doc)
    assert doc["machine"]["rmw"]
    seconds = float(flags[flags.index("--seconds") + 1]) if "--seconds" in flags else 3.0
    assert doc["settings"]["seconds"] == seconds
    assert [(r["qos"], r["shm_segment_mb"]) for r in doc["results"]] == cases
    for r in doc["results"]:
        assert r["run"] == 0 and set(r["topics"]) == TOPICS
        for topic, t in r["topics"].items():
            assert t["sent"] > 0 and 0 <= t["recorded"] <= t["sent"], (topic, t)
            assert t["dropped"] == t["sent"] - t["recorded"] and t["duplicates"] >= 0
            assert positive(t["achieved_hz"]) and t["worst_lag_ms"] >= 0
        assert r["sent"] == sum(t["sent"] for t in r["topics"].values()) > 0
        assert 0 < r["recorded"] <= r["sent"]  # something got through, never more than was sent
        assert positive(r["log_mb"]) and positive(r["write_mb_per_s"]) and positive(r["publish_s"])
        assert r["recorder_cpu_percent"] >= 0 and positive(r["recorder_peak_rss_mb"])
        assert r["drain_s"] >= 0 and isinstance(r["drained"], bool)
        assert (r["acked"] is None) == (r["qos"] == "best_effort")
        assert "== record ==" in r["recorder_summary"]


def test_log_convert_speed(tmp_path):
    doc = run_bench(CONVERT, tmp_path / "log_convert_speed.json", "--episodes", "2", "--seconds", "1.5")
    check_machine(doc)
    r = doc["results"]
    assert doc["settings"]["episodes"] == r["episodes"] == 2
    assert r["steps"] == 2 * 15 and r["camera_frames"] == 2 * 45  # 10 Hz steps, a 30 Hz camera
    for key in ("seconds", "episodes_per_s", "steps_per_s", "camera_frames_per_s", "input_mb_per_s", "log_mb"):
        assert positive(r[key]), (key, r[key])


@pytest.mark.parametrize("script", [RECORDER, CONVERT], ids=["recorder", "convert"])
def test_tiny_needs_out(script):
    """--tiny never writes over the committed results."""
    proc = subprocess.run([sys.executable, str(script), "--tiny"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "--tiny needs --out" in proc.stderr
