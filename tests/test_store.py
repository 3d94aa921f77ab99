"""The zarr episode store: round trip, validation, crash-safe append (real SIGKILL), corrupt stores."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from store_writer import FEATURES, create, synthetic_episode

from policies.features import ActionSpec, FeatureSchema, image_feature, state_feature
from robo_q.data import EpisodeStore, StoreError
from robo_q.data.collect import store_for_env
from sim import make_env


def _assert_episode_matches(store: EpisodeStore, i: int) -> None:
    steps, final = synthetic_episode(i)
    episode = store.episode(i)
    assert len(episode) == len(steps["action"]) and episode.seed == i and episode.success
    for key, values in steps.items():
        np.testing.assert_array_equal(episode.steps[key], values.astype(episode.steps[key].dtype), err_msg=key)
    for key, values in final.items():
        np.testing.assert_array_equal(
            episode.final_observation[key], values.astype(episode.final_observation[key].dtype)
        )
    np.testing.assert_array_equal(episode.initial_state, steps["sim_state"][0])


def _filled(path: Path, n: int) -> EpisodeStore:
    store = create(path)
    for i in range(n):
        store.append_episode(*synthetic_episode(i), seed=i)
    return store


def test_round_trip(tmp_path):
    _filled(tmp_path / "s.zarr", 3)
    store = EpisodeStore.open(tmp_path / "s.zarr")
    assert store.num_episodes == 3 and store.num_steps == 40 + 41 + 42
    np.testing.assert_array_equal(store.episode_ends, [40, 81, 123])
    for i in range(3):
        _assert_episode_matches(store, i)
    _assert_episode_matches(store, -1 + 3)
    data = store.load(["action", "observation.state"])
    assert data["action"].shape == (123, 2) and data["action"].dtype == np.float32
    np.testing.assert_array_equal(data["observation.state"][81:], store.episode(2).steps["observation.state"])
    meta = store.episode_meta()
    np.testing.assert_array_equal(meta["length"], [40, 41, 42])
    assert list(meta["source"]) == ["expert"] * 3
    assert store.attrs["format"] == "robo_q.episodes" and store.attrs["format_version"] == 2
    assert store.features == FEATURES and store.observation_keys == FEATURES.keys
    # images are chunked one frame per chunk
    assert zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["data/observation.images.cam"].chunks == (1, 16, 16, 3)
    with pytest.raises(IndexError):
        store.episode(3)


def test_next_observation_uses_the_final_observation(tmp_path):
    store = _filled(tmp_path / "s.zarr", 1)
    episode = store.episode(0)
    nxt = episode.next_observation("state")
    np.testing.assert_array_equal(nxt[:-1], episode.steps["observation.state"][1:])
    np.testing.assert_array_equal(nxt[-1], episode.final_observation["state"])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s, f: s.pop("reward"), "missing keys"),
        (lambda s, f: s.__setitem__("action", s["action"][:, :1]), "action: expected shape"),
        (lambda s, f: s["observation.state"].__setitem__((3, 1), np.nan), "NaN"),
        (lambda s, f: f.__setitem__("state", np.zeros(5)), "final observation state"),
    ],
)
def test_bad_episodes_are_rejected_and_lose_nothing(tmp_path, mutate, message):
    store = _filled(tmp_path / "s.zarr", 2)
    steps, final = synthetic_episode(2)
    mutate(steps, final)
    with pytest.raises(StoreError, match=message):
        store.append_episode(steps, final, seed=2)
    reopened = EpisodeStore.open(tmp_path / "s.zarr", "a")
    assert reopened.num_episodes == 2
    reopened.append_episode(*synthetic_episode(2), seed=2)
    for i in range(3):
        _assert_episode_matches(EpisodeStore.open(tmp_path / "s.zarr"), i)


def test_crash_safe_append_survives_real_kills(tmp_path):
    """SIGKILL the writer mid-episode, three times; every committed episode stays intact."""
    path = tmp_path / "crash.zarr"
    writer = Path(__file__).with_name("store_writer.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(writer.parent), *sys.path])}
    rng = random.Random(0)
    committed = -1
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, str(writer), str(path)], stdout=subprocess.PIPE, text=True, env=env)
        target = committed + 2
        for line in proc.stdout:
            kind, index = line.split()
            if kind == "committed":
                committed = int(index)
            elif kind == "writing" and committed >= target:
                time.sleep(rng.uniform(0.0, 0.03))  # land somewhere inside this episode's writes
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f"round {round_}: the writer was not killed"
        store = EpisodeStore.open(path)
        assert store.num_episodes >= committed + 1, f"round {round_}: committed episodes lost"
        committed = store.num_episodes - 1  # the kill may have landed just after a commit
        for i in range(store.num_episodes):
            _assert_episode_matches(store, i)
    store = EpisodeStore.open(path, "a")  # appending trims the interrupted episode's leftovers
    store.append_episode(*synthetic_episode(store.num_episodes), seed=store.num_episodes)
    store = EpisodeStore.open(path)
    for i in range(store.num_episodes):
        _assert_episode_matches(store, i)
    assert not list(path.rglob("*.partial"))


def test_trailing_uncommitted_entry_is_ignored_and_trimmed(tmp_path):
    """The state a kill between growing episode_ends and writing it leaves behind."""
    path = tmp_path / "s.zarr"
    _filled(path, 2)
    steps, final = synthetic_episode(2)
    group = zarr.open_group(str(path), mode="r+")
    for key, values in steps.items():  # data written ...
        group[f"data/{key}"].append(values.astype(group[f"data/{key}"].dtype))
    group["meta/episode_ends"].resize((3,))  # ... ends grown, its chunk never rewritten
    ends = group["meta/episode_ends"]
    assert ends[2] == 0 or ends.chunks[0] > 2
    store = EpisodeStore.open(path, "a")
    assert store.num_episodes == 2 and group["data/action"].shape[0] == 40 + 41
    store.append_episode(steps, final, seed=2)
    _assert_episode_matches(EpisodeStore.open(path), 2)


def _corrupt_ends(path: Path) -> None:
    zarr.open_group(str(path), mode="r+")["meta/episode_ends"][1] = 10


def _corrupt_chunk(path: Path) -> None:
    chunk = path / "data" / "observation.images.cam" / "3.0.0.0"
    chunk.write_bytes(b"garbage" * 10)


def _truncate_data(path: Path) -> None:
    zarr.open_group(str(path), mode="r+")["data/action"].resize((50, 2))


def _broken_metadata(path: Path) -> None:
    (path / ".zattrs").write_text("{not json")


def _foreign_version(path: Path) -> None:
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["format_version"] = 99
    (path / ".zattrs").write_text(json.dumps(attrs))


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (_corrupt_ends, "episode_ends is not increasing at episode 1"),
        (_truncate_data, "data/action has 50 rows but the committed episodes need 123"),
        (_broken_metadata, "not a readable zarr store"),
        (_foreign_version, "format version 99 is newer"),
    ],
)
def test_corrupt_stores_fail_to_open_clearly(tmp_path, corrupt, message):
    path = tmp_path / "s.zarr"
    _filled(path, 3)
    corrupt(path)
    with pytest.raises(StoreError, match=message):
        EpisodeStore.open(path)


def test_corrupt_chunk_fails_on_read_naming_the_array(tmp_path):
    path = tmp_path / "s.zarr"
    _filled(path, 1)
    _corrupt_chunk(path)
    store = EpisodeStore.open(path)
    with pytest.raises(StoreError, match=r"cannot read data/observation.images.cam\[slice\(0, 40"):
        store.episode(0)


def test_foreign_and_missing_stores(tmp_path):
    zarr.open_group(str(tmp_path / "dp.zarr"), mode="w").create_group("data")
    with pytest.raises(StoreError, match="not a robo_q episode store"):
        EpisodeStore.open(tmp_path / "dp.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a readable zarr store"):
        EpisodeStore.open(tmp_path / "plain")
    with pytest.raises(StoreError, match="no such episode store"):
        EpisodeStore.open(tmp_path / "missing.zarr")


def test_existing_stores_are_never_replaced_silently(tmp_path):
    path = tmp_path / "s.zarr"
    _filled(path, 1)
    with pytest.raises(StoreError, match="already exists"):
        create(path)
    with pytest.raises(StoreError, match="read-only"):
        EpisodeStore.open(path).append_episode(*synthetic_episode(1), seed=1)
    assert EpisodeStore.open(path).num_episodes == 1


def test_append_requires_matching_task(tmp_path, drawer_store):
    with (
        make_env("metaworld/drawer-close") as env,
        pytest.raises(StoreError, match="holds metaworld/drawer-open episodes"),
    ):
        store_for_env(env, drawer_store, source="expert", append=True)


def test_a_store_carries_its_envs_features(drawer_store):
    with make_env("metaworld/drawer-open") as env:
        assert EpisodeStore.open(drawer_store).features == env.features


def _as_version_1(path: Path) -> None:
    """Rewrite a store's attributes the way format version 1 wrote them (no feature schema)."""
    attrs = json.loads((path / ".zattrs").read_text())
    features = FeatureSchema.from_dict(attrs.pop("features"))
    attrs |= {
        "format_version": 1,
        "action_low": list(features.action.low),
        "action_high": list(features.action.high),
        "observation_spec": {
            k: {"shape": list(f.shape), "dtype": f.dtype.name} for k, f in features.observation.items()
        },
    }
    (path / ".zattrs").write_text(json.dumps(attrs))


def test_version_1_stores_open_with_a_migrated_schema(tmp_path, drawer_store):
    path = tmp_path / "v1.zarr"
    shutil.copytree(drawer_store, path)
    _as_version_1(path)
    before = sorted((p.relative_to(path), p.read_bytes()) for p in path.rglob("*") if p.is_file())
    store = EpisodeStore.open(path)
    with make_env("metaworld/drawer-open") as env:
        expected = env.features
    migrated = store.features
    assert migrated.keys == expected.keys and migrated.control_dt == expected.control_dt
    assert {k: (f.kind, f.shape) for k, f in migrated.observation.items()} == {
        k: (f.kind, f.shape) for k, f in expected.observation.items()
    }
    action = migrated.action
    assert (action.low, action.high, action.mode) == (expected.action.low, expected.action.high, "delta")
    assert store.num_episodes == 3 and len(store.episode(0)) > 0
    EpisodeStore.open(path, "a")  # appending to it works too ...
    assert (
        sorted((p.relative_to(path), p.read_bytes()) for p in path.rglob("*") if p.is_file()) == before
    )  # ... unchanged


def test_version_1_camera_stores_migrate_images_by_their_key(tmp_path):
    path = tmp_path / "s.zarr"
    _filled(path, 1)
    _as_version_1(path)
    store = EpisodeStore.open(path)
    assert [f.kind for f in store.features.observation.values()] == ["image", "state"]
    assert store.features.action.mode == "effort"  # every non-Meta-World task of version 1 drove motors
    _assert_episode_matches(store, 0)


def test_feature_kind_decides_dtype_and_chunks(tmp_path):
    """An image feature not named ``images.*`` is stored as uint8 frames, one per chunk."""
    features = FeatureSchema(
        {"rgb": image_feature("rgb", 8, 8), "joints": state_feature("joints", ["a", "b"], "rad")},
        ActionSpec(("u",), (-1.0,), (1.0,), "velocity"),
        0.1,
    )
    EpisodeStore.create(
        tmp_path / "s.zarr",
        task="test/kinds",
        features=features,
        state_dim=1,
        env_config={},
        simulator="none",
        source="teleop",
    )
    store = EpisodeStore.open(tmp_path / "s.zarr")
    assert store.features == features and store.observation_keys == ["joints", "rgb"]
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    rgb, joints = group["data/observation.rgb"], group["data/observation.joints"]
    assert (rgb.dtype, rgb.chunks) == (np.uint8, (1, 8, 8, 3))
    assert joints.dtype == np.float32 and joints.chunks[0] > 1


def test_a_broken_schema_fails_naming_the_format_version(tmp_path):
    path = tmp_path / "s.zarr"
    _filled(path, 1)
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["features"]["observation"]["state"]["kind"] = "lidar"
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(StoreError, match="bad feature schema in a format version 2 store"):
        EpisodeStore.open(path)
