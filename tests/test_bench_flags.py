"""bench/train_speed.py runs with each of its flags (at --tiny sizes) and writes both sides of every
comparison, with ratios from that run only, to the --out path it is given."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "train_speed.py"
OFFICIAL_FILES = ("rlbench_src/cqn.py", "rlbench_src/cqn_as.py")


def official_repo() -> Path | None:
    """A checkout of github.com/younggyoseo/CQN-AS: $ROBOQ_OFFICIAL_REPO, else /tmp/CQN-AS."""
    repo = Path(os.environ.get("ROBOQ_OFFICIAL_REPO", "/tmp/CQN-AS"))
    return repo if all((repo / f).is_file() for f in OFFICIAL_FILES) else None


def official_skip_reason() -> str | None:
    if official_repo() is None:
        return (
            "no checkout of the authors' code: git clone https://github.com/younggyoseo/CQN-AS to /tmp/CQN-AS "
            "or set ROBOQ_OFFICIAL_REPO"
        )
    try:
        import tensordict  # noqa: F401  (the official code's dependency, not robo_q's)
    except ImportError:
        return "the official code needs tensordict (pip install tensordict)"
    return None


def run_bench(tmp_path: Path, *flags: str, timeout: int = 600) -> dict:
    out = tmp_path / "train_speed.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--tiny", "--out", str(out), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| agent | preset | obs |" in proc.stdout  # the markdown summary table
    return json.loads(out.read_text())


def positive(x) -> bool:
    return isinstance(x, float | int) and math.isfinite(x) and x > 0


def check(doc: dict, agents: list[str], presets: list[str], obs: list[str], impls: set[str], official: bool) -> None:
    machine = doc["machine"]
    assert machine["cpu_model"] and machine["torch_threads"] >= 1 and machine["logical_cpus"] >= 1
    assert doc["date"] and positive(doc["wall_s"])
    assert doc["settings"]["tiny"] is True
    peak = doc["matmul_peak_gflops"]["cpu"]
    assert positive(peak["start"]) and positive(peak["end"]) and peak["used"] == max(peak["start"], peak["end"])
    assert (doc["official"] is not None) == official
    if official:
        assert doc["official"]["agent_files_sha256"] and doc["official"]["tensordict"]
    rows = {(r["impl"], r["agent"], r["preset"], r["obs"]): r for r in doc["results"]}
    expected = {
        (impl, a, p, o)
        for a in agents
        for p in presets
        for o in obs
        for impl in impls
        if impl != "official" or p == "paper"  # the official code has the paper size only
    }
    assert set(rows) == expected
    for (impl, _, _, _), r in rows.items():
        for key in (
            "seconds_per_update",
            "min_seconds_per_update",
            "updates_per_s",
            "gflop_per_update",
            "gflops_achieved",
            "act_ms_p50",
            "peak_fraction",
            "floor_seconds_per_update",
        ):
            assert positive(r[key]), (impl, key, r[key])
        assert r["updates_timed"] >= 3
        if impl.startswith("robo_q"):
            has_plain = "straightforward" in impls
            has_official = official and r["preset"] == "paper"
            assert ("speedup_vs_plain" in r) == has_plain
            assert ("speedup_vs_official" in r) == has_official
            if has_plain:
                plain = rows[("straightforward", r["agent"], r["preset"], r["obs"])]
                assert r["speedup_vs_plain"] == pytest.approx(plain["seconds_per_update"] / r["seconds_per_update"])
            if has_official:
                off = rows[("official", r["agent"], r["preset"], r["obs"])]
                assert r["speedup_vs_official"] == pytest.approx(off["seconds_per_update"] / r["seconds_per_update"])
        else:
            assert not any(k.startswith("speedup") for k in r)
    assert len(doc["cases"]) == len({k[1:] for k in expected})
    for case in doc["cases"]:
        assert all(positive(v) for v in case["speedup"].values())


ALL = (["cqn", "cqn_as"], ["small", "paper"])


@pytest.mark.parametrize(
    "flags, agents, presets, obs, impls",
    [
        pytest.param([], *ALL, ["state", "pixels"], {"straightforward", "robo_q"}, id="defaults"),
        pytest.param(["--no-baseline", "--obs", "state"], *ALL, ["state"], {"robo_q"}, id="no-baseline"),
        pytest.param(
            ["--presets", "paper", "--obs", "pixels", "--agents", "cqn_as"],
            ["cqn_as"],
            ["paper"],
            ["pixels"],
            {"straightforward", "robo_q"},
            id="presets-obs-agents",
        ),
        pytest.param(
            ["--default-allocator", "--obs", "state", "--presets", "small"],
            ["cqn", "cqn_as"],
            ["small"],
            ["state"],
            {"straightforward", "robo_q"},
            id="default-allocator",
        ),
        pytest.param(
            ["--devices", "cpu,cuda", "--seconds", "0.05", "--rounds", "1", "--obs", "state", "--presets", "small"],
            ["cqn", "cqn_as"],
            ["small"],
            ["state"],
            {"straightforward", "robo_q"},
            id="devices-seconds-rounds",
        ),
    ],
)
def test_bench_flags(tmp_path, flags, agents, presets, obs, impls):
    doc = run_bench(tmp_path, *flags)
    check(doc, agents, presets, obs, impls, official=False)
    if "--default-allocator" in flags:
        assert doc["machine"]["robo_q_allocator"] is False


@pytest.mark.parametrize(
    "flags, impls",
    [
        pytest.param([], {"straightforward", "robo_q", "official"}, id="official"),
        pytest.param(["--no-baseline"], {"robo_q", "official"}, id="official-no-baseline"),
    ],
)
def test_bench_official(tmp_path, flags, impls):
    """The authors' agents, timed in the same run; state and pixels at the paper preset."""
    reason = official_skip_reason()
    if reason:
        pytest.skip(reason)
    doc = run_bench(tmp_path, "--official", str(official_repo()), *flags)
    check(doc, *ALL, ["state", "pixels"], impls, official=True)


def test_bench_compile(tmp_path):
    """--compile on the smallest case (one torch.compile of a tiny CQN update, ~20 s on 2 cores)."""
    doc = run_bench(tmp_path, "--compile", "--agents", "cqn", "--presets", "small", "--obs", "state")
    check(doc, ["cqn"], ["small"], ["state"], {"straightforward", "robo_q", "robo_q+compile"}, official=False)


def test_tiny_needs_out():
    """--tiny never writes over the committed results."""
    proc = subprocess.run([sys.executable, str(BENCH), "--tiny"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "--tiny needs --out" in proc.stderr


def test_train_loop_bench_times_variants_and_a_baseline_side_by_side(tmp_path):
    """bench/train_loop.py at --tiny size: this tree, a variant with more settings and a baseline
    checkout (this one again) in one invocation, each with a breakdown that adds up to its wall time."""
    out = tmp_path / "train_loop.json"
    flags = ["--tiny", "--runs", "1", "--out", str(out), "--variant", "bf16=agent.precision=bf16"]
    flags += ["--baseline", str(ROOT)]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train_loop.py"), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert [r["code"] for r in doc["results"]] == ["this tree", "bf16", "baseline"]
    assert doc["results"][1]["overrides"] == "agent.precision=bf16"
    for r in doc["results"]:
        run = r["runs"][0]
        assert run["steps"] == 60 and positive(run["steps_per_s"]) and positive(run["first_update_s"])
        assert run["calls"]["update"] >= 60 and run["calls"]["eval"] >= 1
        assert sum(run["seconds"].values()) == pytest.approx(run["wall_s"], rel=1e-6)
    assert set(doc["speedup_over_baseline"]) == {"this tree", "bf16"}
