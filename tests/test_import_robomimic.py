"""Importing a robomimic hdf5 file: an exact round trip into a real store, filters, obs_keys, bad files."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from robo_q.data import Episode, EpisodeStore
from robo_q.data.dataset_import import DatasetError, import_dataset
from robo_q.data.robomimic import RobomimicReader

ENV_ARGS = {"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 10, "robots": ["Panda"]}}
LENGTHS = {"demo_0": 5, "demo_2": 6, "demo_10": 7}  # h5py lists demo_10 before demo_2
ORDER = ["demo_0", "demo_2", "demo_10"]
MASKS = {"train": ["demo_10", "demo_0"], "valid": ["demo_2"]}
STATE_NAMES = (*(f"object.{i}" for i in range(10)), *(f"robot0_eef_pos.{i}" for i in range(3)))


def _demo(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    obs = {  # n + 1 observations: obs is the first n, next_obs the last n
        "robot0_eef_pos": rng.normal(size=(n + 1, 3)),
        "object": rng.normal(size=(n + 1, 10)),
        "agentview_image": rng.integers(0, 256, (n + 1, 84, 84, 3), dtype=np.uint8),
    }
    return {
        "actions": rng.uniform(-1, 1, (n, 7)),
        "rewards": (np.arange(n) >= n - 2).astype(np.float64),
        "dones": (np.arange(n) == n - 1).astype(np.int64),
        "states": rng.normal(size=(n, 32)),
        "obs": {k: v[:n] for k, v in obs.items()},
        "next_obs": {k: v[1:] for k, v in obs.items()},
    }


def write_robomimic(path: Path) -> dict[str, dict[str, Any]]:
    """A robomimic file of three demos; returns what each demo holds."""
    demos = {name: _demo(n, int(name.removeprefix("demo_"))) for name, n in LENGTHS.items()}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["total"] = sum(LENGTHS.values())
        data.attrs["env_args"] = json.dumps(ENV_ARGS)
        for name, arrays in demos.items():
            group = data.create_group(name)
            group.attrs["num_samples"] = len(arrays["actions"])
            for key, value in arrays.items():
                for sub, array in value.items() if isinstance(value, dict) else [(None, value)]:
                    group.create_dataset(key if sub is None else f"{key}/{sub}", data=array)
        for name, listed in MASKS.items():
            f.create_dataset(f"mask/{name}", data=np.array(listed, dtype="S"))
    return demos


def _state(obs: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([obs["object"], obs["robot0_eef_pos"]], axis=-1).astype(np.float32)


def _assert_imported(episode: Episode, demo: dict[str, Any], seed: int) -> None:
    eq = np.testing.assert_array_equal
    assert episode.seed == seed and episode.source == "robomimic" and len(episode) == len(demo["actions"])
    eq(episode.steps["action"], demo["actions"].astype(np.float32))
    eq(episode.steps["observation.state"], _state(demo["obs"]))
    eq(episode.steps["observation.images.agentview"], demo["obs"]["agentview_image"])
    eq(episode.steps["reward"], demo["rewards"].astype(np.float32))
    eq(episode.steps["success"], demo["rewards"] > 0)
    eq(episode.steps["terminated"], demo["dones"].astype(bool))
    eq(episode.steps["sim_state"], demo["states"])
    eq(episode.initial_state, demo["states"][0])
    eq(episode.final_observation["state"], _state(demo["next_obs"])[-1])
    eq(episode.final_observation["images.agentview"], demo["next_obs"]["agentview_image"][-1])
    assert episode.success


def test_import_is_exact(tmp_path):
    path, out = tmp_path / "lift.hdf5", tmp_path / "out.zarr"
    demos = write_robomimic(path)
    report = import_dataset(RobomimicReader(path), out, progress=False)
    assert (report.episodes, report.frames) == (3, 18)
    store = EpisodeStore.open(out)
    schema = store.features
    assert schema.keys == ["images.agentview", "state"]
    assert schema.observation["images.agentview"].shape == (84, 84, 3)
    assert schema.observation["state"].names == STATE_NAMES and schema.observation["state"].units == ("",) * 13
    assert schema.action.names == tuple(f"action_{i}" for i in range(7)) and schema.action.mode == "delta"
    assert schema.action.low == (-1.0,) * 7 and schema.action.high == (1.0,) * 7
    assert schema.control_dt == pytest.approx(0.1)
    assert store.task == "robomimic/Lift" and store.attrs["simulator"] == "robosuite"
    assert store.attrs["source"] == "robomimic" and store.attrs["env_config"] == {"env_args": ENV_ARGS}
    assert store.array_spec("sim_state") == ((32,), np.dtype("float64"))
    for i, name in enumerate(ORDER):
        _assert_imported(store.episode(i), demos[name], seed=int(name.removeprefix("demo_")))
    [record] = store.attrs["imports"]
    assert {k: record[k] for k in ("format", "path", "env_name", "filter", "demos", "episodes", "frames")} == {
        "format": "robomimic",
        "path": str(path),
        "env_name": "Lift",
        "filter": None,
        "demos": ORDER,
        "episodes": 3,
        "frames": 18,
    }


def test_filter_imports_only_its_demos(tmp_path):
    path, out = tmp_path / "lift.hdf5", tmp_path / "valid.zarr"
    demos = write_robomimic(path)
    import_dataset(RobomimicReader(path, filter="valid"), out, progress=False)
    store = EpisodeStore.open(out)
    assert store.num_episodes == 1
    _assert_imported(store.episode(0), demos["demo_2"], seed=2)
    assert store.attrs["imports"][0]["filter"] == "valid" and store.attrs["imports"][0]["demos"] == ["demo_2"]
    assert RobomimicReader(path, filter="train").demos == ["demo_0", "demo_10"]


def test_obs_keys_order_the_state_and_last_obs_stands_in_for_next_obs(tmp_path):
    path = tmp_path / "lift.hdf5"
    demos = write_robomimic(path)
    with h5py.File(path, "r+") as f:
        del f["data/demo_0/next_obs"]
        f["data"].attrs["env_args"] = json.dumps({"env_name": "Lift", "env_kwargs": {}})
        for name, n in LENGTHS.items():  # a one-wide key
            for group in ("obs", "next_obs") if name != "demo_0" else ("obs",):
                f.create_dataset(f"data/{name}/{group}/gripper", data=np.arange(n, dtype=np.float64))
    reader = RobomimicReader(path, obs_keys=["robot0_eef_pos", "gripper"])
    assert reader.schema.observation["state"].names == (*(f"robot0_eef_pos.{i}" for i in range(3)), "gripper")
    assert reader.schema.keys == ["images.agentview", "state"] and reader.schema.control_dt == pytest.approx(0.05)
    episode = next(reader.episodes())
    obs = demos["demo_0"]["obs"]
    expected = np.concatenate([obs["robot0_eef_pos"], np.arange(5)[:, None]], axis=1).astype(np.float32)
    np.testing.assert_array_equal(episode.steps["observation.state"], expected)
    np.testing.assert_array_equal(episode.final_observation["state"], expected[-1])
    np.testing.assert_array_equal(episode.final_observation["images.agentview"], obs["agentview_image"][-1])


def _edit(change: Callable[[h5py.File], object]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            change(f)

    return apply


def _replace(f: h5py.File, name: str, value: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=value)


def _nan_at(f: h5py.File, name: str) -> None:
    values = f[name][()]
    values[-1, 0] = np.nan
    _replace(f, name, values)


@pytest.mark.parametrize(
    "damage, options, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), {}, "truncated"),
        (lambda p: p.write_text("not hdf5"), {}, "not a readable hdf5 file"),
        (_edit(lambda f: f.__delitem__("data")), {}, "no 'data' group"),
        (_edit(lambda f: f.__delitem__("data/demo_2/actions")), {}, "/data/demo_2/actions is missing"),
        (_edit(lambda f: f.__delitem__("data/demo_10/obs")), {}, "/data/demo_10/obs/agentview_image is missing"),
        (None, {"filter": "test"}, r"no filter mask/test; available: \['train', 'valid'\]"),
        (_edit(lambda f: _nan_at(f, "data/demo_10/actions")), {}, "/data/demo_10/actions contains NaN"),
        (_edit(lambda f: _nan_at(f, "data/demo_2/obs/object")), {}, "/data/demo_2/obs/object contains NaN"),
        (_edit(lambda f: _replace(f, "data/demo_2/rewards", np.zeros(5))), {}, "/data/demo_2/rewards has shape"),
        (_edit(lambda f: _replace(f, "data/demo_2/obs/object", np.zeros((5, 10)))), {}, "demo_2/obs/object has shape"),
        (
            _edit(lambda f: _replace(f, "data/demo_0/obs/agentview_image", np.zeros((5, 84, 84, 3), np.float32))),
            {},
            "agentview_image is float32 .* images must be uint8",
        ),
        (
            _edit(lambda f: f.create_dataset("data/demo_0/obs/depth", data=np.zeros((5, 8, 8, 1)))),
            {},
            "depth is float64 .* neither a vector nor an RGB image",
        ),
        (None, {"obs_keys": ["object", "nope"]}, "obs_keys names 'nope'"),
    ],
)
def test_bad_input_raises_and_leaves_no_store(tmp_path, damage, options, message):
    path, out = tmp_path / "lift.hdf5", tmp_path / "out.zarr"
    write_robomimic(path)
    if damage:
        damage(path)
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*" + message):
        import_dataset(RobomimicReader(path, **options), out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lift.hdf5"]  # no store, no staging directory
