"""The `roboq` command line, run as a user runs it: collect -> info -> replay, and its errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest


def roboq(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "robo_q.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_collect_info_replay_end_to_end(tmp_path):
    out = roboq(
        "demos",
        "collect",
        "task=metaworld/drawer-open",
        "episodes=2",
        "out=demos/d.zarr",
        "progress=false",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "expert success  100.0% (2/2 attempts)" in out.stdout
    info = roboq("demos", "info", "path=demos/d.zarr", "episodes=true", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "metaworld/drawer-open" in info.stdout and "data/observation.state  (39,) float32" in info.stdout
    for mode in ("actions", "states"):
        replay = roboq(
            "demos", "replay", "path=demos/d.zarr", f"mode={mode}", f"out=run-{mode}", "progress=false", cwd=tmp_path
        )
        assert replay.returncode == 0, replay.stderr
        report = json.loads((tmp_path / f"run-{mode}" / "replay_info.json").read_text())
        assert report["success_reproduction_rate"] == 1.0 and report["episodes"] == 2
        assert (tmp_path / f"run-{mode}" / "config.yaml").exists()
    bad_mode = roboq("demos", "replay", "path=demos/d.zarr", "mode=backwards", cwd=tmp_path)
    assert bad_mode.returncode == 2 and "mode must be one of actions, states; got 'backwards'" in bad_mode.stderr
    again = roboq(
        "demos",
        "collect",
        "task=metaworld/drawer-open",
        "episodes=1",
        "out=demos/d.zarr",
        "progress=false",
        cwd=tmp_path,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    more = roboq(
        "demos",
        "collect",
        "task=metaworld/drawer-open",
        "episodes=1",
        "out=demos/d.zarr",
        "append=true",
        "progress=false",
        cwd=tmp_path,
    )
    assert more.returncode == 0 and "store now holds 3" in more.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["demos", "collect", "task=metaworld/drawer-opn"], "Did you mean metaworld/drawer-open"),
        (["demos", "collect", "episodes=2", "colour=red"], "bad settings: Could not override 'colour'"),
        (["demos", "info", "path=nowhere.zarr"], "no such episode store"),
        (["demos", "info"], "bad settings"),
        (["demos", "replay", "path=x.zarr"], "no such episode store"),
        (["fly"], "unknown command 'fly'"),
    ],
)
def test_errors_are_clear(tmp_path, args, message):
    result = roboq(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["demos", "--help"],
        ["demos", "collect", "--help"],
        ["demos", "replay", "-h"],
        ["pipeline", "--help"],
    ],
)
def test_help(tmp_path, args):
    result = roboq(*args, cwd=tmp_path)
    assert result.returncode == 0 and "roboq" in result.stdout


def test_tasks_listing(tmp_path):
    result = roboq("tasks", "family=dmc", cwd=tmp_path)
    assert (
        result.returncode == 0
        and "dmc/reacher-hard  (expert)" in result.stdout
        and "dmc/walker-walk\n" in result.stdout
    )


def test_pipeline_main_job_end_to_end(tmp_path):
    """`make run`'s job, shortened: demos -> replay -> training -> evaluation -> bundle -> ROS 2, one run dir."""
    result = roboq(
        "pipeline",
        "episodes=2",
        "train_steps=40",
        "eval_every=40",
        "eval_episodes=1",
        "video_episodes=1",
        "ros_episodes=1",
        "out=run",
        "progress=false",
        "device=cpu",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    stages = json.loads((run / "pipeline.json").read_text())
    assert stages["collect"]["kept"] == 2 and stages["replay_actions"]["success_reproduction_rate"] == 1.0
    assert stages["train"]["steps"] == 40 and stages["train"]["eval"]["episodes"] == 1
    assert (run / "train" / "checkpoints" / "last" / "model.safetensors").exists()
    assert stages["bundle"]["eval"]["episodes"] == 1 and (run / "bundle" / "policy.onnx").exists()
    assert stages["ros"]["episodes"] == 1 and (run / "ros" / "policy_node.log").exists()
    assert (
        len(list((run / "train" / "videos").rglob("*.mp4"))) == 1
        and len(list((run / "replay-actions" / "videos").glob("*.mp4"))) == 1
    )
    assert re.search(r"status\s+ok", result.stdout)
