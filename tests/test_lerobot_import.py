"""`roboq data import format=lerobot` on LeRobotDatasets written here with pyarrow and PyAV (v3.0, v2.1)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lerobot_fixtures import drop_last_video_frames, make_episodes, truncate_file, write_v21, write_v30
from test_lerobot_roundtrip import psnr

from robo_q.data import EpisodeStore, StoreError
from robo_q.data.dataset_import import DatasetError, import_dataset
from robo_q.data.lerobot import LeRobotReader

LENGTHS = [7, 9, 11, 13, 15]
STATE_NAMES = [f"joint_{i}" for i in range(6)]


@pytest.fixture(scope="module")
def episodes():
    return make_episodes(LENGTHS)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, episodes):
    root = tmp_path_factory.mktemp("lerobot")
    return {
        "v3.0": write_v30(root / "v30", episodes, episodes_per_file=2, state_names=STATE_NAMES),
        "v2.1": write_v21(root / "v21", episodes, state_names=STATE_NAMES),
        "v3.0-images-chw": write_v30(root / "v30_chw", episodes, image_mode="image", chw=True),
    }


def roboq(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robo_q.cli", *args], capture_output=True, text=True)


def check_store(store: EpisodeStore, episodes: list[dict], exact_images: bool) -> float:
    """Every state, outcome and action as written (actions to float32 rounding of the [-1, 1]
    scaling); returns the worst frame PSNR."""
    action = store.features.action
    span = action.high_array - action.low_array
    worst = np.inf
    assert store.num_episodes == len(episodes)
    for i, written in enumerate(episodes):
        got = store.episode(i)
        np.testing.assert_array_equal(got.steps["observation.state"], written["observation.state"])
        native = action.to_native(got.steps["action"])
        np.testing.assert_allclose(native, written["action"], rtol=0, atol=float(span.max()) * 2e-7)
        np.testing.assert_array_equal(got.steps["reward"], written["next.reward"])
        np.testing.assert_array_equal(got.steps["success"], written["next.success"])
        np.testing.assert_array_equal(got.steps["terminated"], written["next.done"])
        for camera, frames in written["images"].items():
            stored = got.steps[f"observation.images.{camera}"]
            assert stored.shape == frames.shape
            if exact_images:
                np.testing.assert_array_equal(stored, frames)
            worst = min(worst, min(psnr(a, b) for a, b in zip(stored, frames, strict=True)))
    return worst


@pytest.mark.parametrize("version", ["v3.0", "v2.1"])
def test_import_keeps_every_state_action_and_frame(datasets, episodes, tmp_path, version):
    out = tmp_path / "x.zarr"
    result = roboq("data", "import", "format=lerobot", f"path={datasets[version]}", f"out={out}")
    assert result.returncode == 0, result.stderr
    assert f"lerobot {version}" in result.stdout and "frames/s" in result.stdout
    store = EpisodeStore.open(out)
    schema = store.features
    assert schema.keys == ["images.front", "images.wrist", "state"]
    assert schema.observation["state"].names == tuple(STATE_NAMES)
    assert schema.observation["images.front"].shape == (48, 64, 3) and schema.control_dt == pytest.approx(0.1)
    assert schema.action.mode == "position" and schema.action.names == tuple(f"motor_{i}" for i in range(6))
    recorded = np.concatenate([e["action"] for e in episodes])
    np.testing.assert_allclose(schema.action.low, recorded.min(axis=0))  # bounds: the recorded range
    worst = check_store(store, episodes, exact_images=False)
    assert worst > 30.0, f"H.264 crf 18 frames measured above 37 dB; worst here {worst:.1f} dB"
    origin = store.attrs["imports"][0]
    assert origin["codebase_version"] == version and origin["tasks"] == ["pick the cube", "push the cube"]
    assert origin["episode_task"] == [0, 1, 0, 1, 0] and store.task == f"lerobot/{datasets[version].name}"
    info = roboq("demos", "info", f"path={out}")
    assert f"5 episodes, 55 frames from lerobot {version}" in info.stdout and "pick the cube" in info.stdout


def test_images_stored_in_the_parquet_and_declared_chw_import_exactly(datasets, episodes, tmp_path):
    store = EpisodeStore.open(import_dataset(LeRobotReader(datasets["v3.0-images-chw"]), tmp_path / "x.zarr").path)
    assert store.features.observation["images.wrist"].shape == (48, 64, 3)
    assert check_store(store, episodes, exact_images=True) == np.inf  # PNG: lossless


def test_an_imported_dataset_trains_offline_and_exports(datasets, tmp_path):
    out, run = tmp_path / "x.zarr", tmp_path / "run"
    assert roboq("data", "import", "format=lerobot", f"path={datasets['v3.0']}", f"out={out}").returncode == 0
    train = roboq(
        "train",
        f"store={out}",
        "agent=cqn_as",
        "train.offline=true",
        "train.steps=20",
        "eval.every=20",
        "eval.episodes=1",
        "agent.batch_size=8",
        "agent.demo_batch_size=8",
        "progress=false",
        f"out={run}",
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert json.loads((run / "eval_info.json").read_text())["episodes"] == 1
    export = roboq("export", f"checkpoint={run / 'checkpoints' / 'last'}", f"out={tmp_path / 'bundle'}")
    assert export.returncode == 0, export.stderr[-3000:]


def broken(datasets: dict[str, Path], tmp_path: Path, version: str = "v3.0") -> Path:
    copy = tmp_path / f"broken_{version}"
    shutil.copytree(datasets[version], copy)
    return copy


def edit_info(root: Path, edit) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    edit(info)
    (root / "meta/info.json").write_text(json.dumps(info))


def test_bad_datasets_are_refused_by_name_and_leave_nothing_behind(datasets, tmp_path):
    cases: dict[str, tuple[Path, str]] = {}

    root = broken(datasets, tmp_path)
    edit_info(root, lambda info: info.update(codebase_version="v9.9"))
    cases["unknown version"] = root, r"info\.json: codebase_version 'v9\.9'"

    root = broken(datasets, tmp_path / "a")
    truncate_file(root / "data/chunk-000/file-001.parquet")
    cases["truncated parquet"] = root, r"file-001\.parquet: unreadable parquet"

    root = broken(datasets, tmp_path / "b")
    (root / "videos/observation.images.wrist/chunk-000/file-002.mp4").unlink()
    cases["missing mp4"] = root, r"observation\.images\.wrist/chunk-000/file-002\.mp4"

    root = broken(datasets, tmp_path / "c")
    drop_last_video_frames(root, "front", 3)
    cases["video shorter than its episode"] = root, r"file-002\.mp4: the video ends before .* shorter than its episode"

    root = broken(datasets, tmp_path / "d", "v2.1")
    truncate_file(root / "videos/chunk-000/observation.images.front/episode_000003.mp4")
    cases["truncated mp4"] = root, r"episode_000003\.mp4"

    root = broken(datasets, tmp_path / "e")
    edit_info(root, lambda info: info["features"]["observation.images.front"]["info"].update({"video.fps": 30}))
    cases["mismatched fps"] = root, r"features\.observation\.images\.front\.info\.video\.fps 30"

    root = broken(datasets, tmp_path / "f")
    edit_info(root, lambda info: info["features"].update({"observation.depth": {"dtype": "int64", "shape": [4, 4]}}))
    cases["feature the schema cannot hold"] = root, r"features\.observation\.depth .* exclude=\[observation\.depth\]"

    for what, (root, message) in cases.items():
        out = tmp_path / f"{what.replace(' ', '_')}.zarr"
        with pytest.raises(DatasetError, match=message):
            import_dataset(LeRobotReader(root), out, progress=False)
        assert not out.exists() and not list(tmp_path.glob(f".{out.name}*")), what

    # left out, the feature no longer stops the import
    root, _ = cases["feature the schema cannot hold"]
    store = import_dataset(LeRobotReader(root, exclude=["observation.depth"]), tmp_path / "ok.zarr", progress=False)
    assert store.episodes == 5


def test_a_failed_append_rolls_the_store_back(datasets, tmp_path):
    out = tmp_path / "x.zarr"
    import_dataset(LeRobotReader(datasets["v2.1"]), out, progress=False)
    root = broken(datasets, tmp_path, "v2.1")
    drop_last_video_frames(root, "wrist", 2)
    with pytest.raises(DatasetError, match="shorter than its episode"):
        import_dataset(LeRobotReader(root), out, append=True, progress=False)
    store = EpisodeStore.open(out)
    assert store.num_episodes == 5 and len(store.attrs["imports"]) == 1
    import_dataset(LeRobotReader(datasets["v2.1"]), out, append=True, progress=False)
    assert EpisodeStore.open(out).num_episodes == 10
    with pytest.raises(StoreError, match=r"features .* differ"):
        import_dataset(LeRobotReader(datasets["v3.0-images-chw"], action_mode="velocity"), out, append=True)
