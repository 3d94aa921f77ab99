"""Replay of stored demos: open loop and by state, report, video."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from robo_q.data import EpisodeStore
from robo_q.data.sim_replay import replay_store


@pytest.mark.parametrize("mode", ["actions", "states"])
def test_replay_reproduces_expert_demos(drawer_store, tmp_path, mode):
    report = replay_store(EpisodeStore.open(drawer_store), mode=mode, out_dir=tmp_path, progress=False)
    assert report["episodes"] == 3
    assert report["success_reproduction_rate"] == 1.0 and report["replayed_success_rate"] == 1.0
    assert report["final_divergence_max"] < 1e-5  # float32 storage rounding only
    saved = json.loads((tmp_path / "replay_info.json").read_text())
    assert [e["seed"] for e in saved["per_episode"]] == [100, 101, 102]
    assert all(e["replayed_steps"] == e["recorded_steps"] for e in saved["per_episode"])


def test_replay_detects_tampered_actions(tmp_path, drawer_store):
    """Replay must notice when the recorded actions do not produce the recorded outcome."""
    import shutil

    import zarr

    copy = tmp_path / "tampered.zarr"
    shutil.copytree(drawer_store, copy)
    actions = zarr.open_group(str(copy), mode="r+")["data/action"]
    actions[:] = np.zeros_like(actions[:])
    report = replay_store(EpisodeStore.open(copy), mode="actions", out_dir=tmp_path / "out", progress=False)
    assert report["replayed_success_rate"] == 0.0 and report["success_reproduction_rate"] == 0.0
    assert report["final_divergence_max"] > 1e-2


def test_replay_video(drawer_store, tmp_path):
    report = replay_store(
        EpisodeStore.open(drawer_store),
        mode="actions",
        out_dir=tmp_path,
        video=True,
        video_episodes=1,
        episodes=2,
        progress=False,
    )
    assert report["episodes"] == 2
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["episode_0000.mp4"]
    frames = imageio.mimread(videos[0], memtest=False)
    first = report["per_episode"][0]
    assert len(frames) == first["replayed_steps"] + 1 and frames[0].shape == (256, 256, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # the scene moved
