"""Reading a robomimic hdf5 dataset (robosuite demonstrations) as robo_q episodes.

Layout: group ``data`` (attribute ``env_args``, a JSON string) holds ``demo_<N>`` groups of
``actions`` (T, A) in [-1, 1], ``rewards``, ``dones``, ``states`` (T, S) flattened simulator states
and ``obs/<key>`` / ``next_obs/<key>``; ``mask/<filter>`` lists demo names (``train``, ``valid``...).
Demos are read in the order of N.

Mapping: every uint8 (H, W, 3) observation becomes the image feature ``images.<key without
_image>``; the low-dim keys (all, sorted, or ``obs_keys`` in that order) are concatenated into one
``state`` feature with dimensions named ``<key>.<i>`` (``<key>`` for a one-wide key). Actions are
kept as recorded (delta mode, bounds [-1, 1]); ``success`` is ``reward > 0`` (robosuite's sparse
reward is 1 exactly where the task is solved); ``states`` become ``sim_state``, recorded only:
robo_q does not simulate robosuite. The observation after an episode's last action comes from
``next_obs`` (the last ``obs`` stands in when a demo has no ``next_obs``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from policies.features import ActionSpec, FeatureSchema, SchemaError, image_feature, state_feature
from robo_q.data.dataset_import import DatasetError, ImportedEpisode

DEFAULT_CONTROL_DT = 0.05  # robosuite's default control_freq, 20 Hz
_DEMO = re.compile(r"demo_(\d+)")


def _image_name(key: str) -> str:
    return f"images.{key.removesuffix('_image')}"


class RobomimicReader:
    """An opened robomimic hdf5 file; :meth:`episodes` yields its demos (or those of ``filter``)."""

    source = "robomimic"
    simulator = "robosuite"

    def __init__(self, path: str | Path, filter: str | None = None, obs_keys: list[str] | None = None) -> None:
        self.path = Path(path)
        with self._open() as f:
            data = f.get("data")
            if not isinstance(data, h5py.Group):
                raise DatasetError(f"{self.path}: no 'data' group (not a robomimic dataset)")
            env_args = self._env_args(data)
            self.demos = self._demo_names(f, data, filter)
            first = data[self.demos[0]]
            self._images, self._state_keys = self._layout(first, obs_keys)
            self.state_dim = self._state_dim(first)
            self.schema = self._schema(first, env_args)
            lengths = [self._check_demo(data[name]) for name in self.demos]
        env_name = str(env_args.get("env_name") or self.path.stem)
        self.task = f"robomimic/{env_name}"
        self.env_config: dict[str, Any] = {"env_args": env_args}
        self.origin: dict[str, Any] = {
            "format": "robomimic",
            "path": str(self.path),
            "env_name": env_name,
            "filter": filter,
            "demos": self.demos,
        }
        self.num_episodes = len(self.demos)
        self.num_frames = sum(lengths)

    # -- metadata ---------------------------------------------------------------------------------
    def _open(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r")
        except FileNotFoundError as err:
            raise DatasetError(f"{self.path}: no such file") from err
        except OSError as err:
            raise DatasetError(f"{self.path}: not a readable hdf5 file, or truncated ({err})") from err

    def _env_args(self, data: h5py.Group) -> dict[str, Any]:
        raw = data.attrs.get("env_args", "{}")
        try:
            env_args = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DatasetError(f"{self.path}: data.attrs['env_args'] is not valid JSON ({err})") from err
        if not isinstance(env_args, dict) or not isinstance(env_args.get("env_kwargs", {}), dict):
            raise DatasetError(f"{self.path}: data.attrs['env_args'] is not a JSON object with env_kwargs")
        return env_args

    def _demo_names(self, f: h5py.File, data: h5py.Group, filter: str | None) -> list[str]:
        names = [name for name in data if _DEMO.fullmatch(name)]
        if filter is not None:
            masks = f.get("mask")
            available = sorted(masks) if isinstance(masks, h5py.Group) else []
            if filter not in available:
                raise DatasetError(f"{self.path}: no filter mask/{filter}; available: {available or 'none'}")
            listed = [n.decode() if isinstance(n, bytes) else str(n) for n in self._read(masks[filter])]
            unknown = sorted(set(listed) - set(names))
            if unknown:
                raise DatasetError(f"{self.path}: mask/{filter} lists demos that data lacks: {unknown}")
            names = listed
        if not names:
            raise DatasetError(f"{self.path}: no demos in data" + (f" for mask/{filter}" if filter else ""))
        return sorted(names, key=lambda name: int(name.removeprefix("demo_")))

    def _layout(self, demo: h5py.Group, obs_keys: list[str] | None) -> tuple[list[str], list[str]]:
        """The first demo's image keys, and the low-dim keys that form ``state`` in order."""
        obs = demo.get("obs")
        if not isinstance(obs, h5py.Group):
            raise DatasetError(f"{self.path}: {demo.name}/obs is missing")
        images, vectors, unusable = [], [], {}
        for key in sorted(obs):
            ds = obs[key]
            if not isinstance(ds, h5py.Dataset):
                unusable[key] = f"{ds.name} is a group, not an observation"
                continue
            shape, dtype = tuple(ds.shape[1:]), ds.dtype
            if len(shape) == 3 and dtype == np.uint8 and shape[2] == 3:
                images.append(key)
            elif key.endswith("_image") or (len(shape) == 3 and dtype == np.uint8):
                raise DatasetError(f"{self.path}: {ds.name} is {dtype} {shape}; images must be uint8 (H, W, 3)")
            elif len(shape) <= 1 and dtype.kind in "biuf":
                vectors.append(key)
            else:
                unusable[key] = f"{ds.name} is {dtype} {shape}, neither a vector nor an RGB image"
        keys = sorted(vectors + list(unusable)) if obs_keys is None else list(obs_keys)
        for key in keys:
            if key not in vectors:
                reason = unusable.get(key) or f"obs_keys names {key!r}, not a low-dim key of {obs.name}: {vectors}"
                raise DatasetError(f"{self.path}: {reason} (choose the state's keys with obs_keys)")
        if len(set(keys)) != len(keys):
            raise DatasetError(f"{self.path}: obs_keys {keys} names a key twice")
        return images, keys

    def _state_dim(self, demo: h5py.Group) -> int:
        states = demo.get("states")
        if states is None:
            return 0
        if not isinstance(states, h5py.Dataset) or states.ndim != 2:
            raise DatasetError(f"{self.path}: {demo.name}/states is not (steps, state width)")
        return int(states.shape[1])

    def _schema(self, demo: h5py.Group, env_args: dict[str, Any]) -> FeatureSchema:
        obs = demo["obs"]
        features = {_image_name(k): image_feature(_image_name(k), *obs[k].shape[1:3]) for k in self._images}
        if self._state_keys:
            names = []
            for key in self._state_keys:
                width = int(np.prod(obs[key].shape[1:]))
                names += [key] if width == 1 else [f"{key}.{i}" for i in range(width)]
            features["state"] = state_feature("state", names)
        actions = demo.get("actions")
        if not isinstance(actions, h5py.Dataset) or actions.ndim != 2:
            raise DatasetError(f"{self.path}: {demo.name}/actions is missing or not (steps, dims)")
        freq = env_args.get("env_kwargs", {}).get("control_freq")
        try:
            dim = actions.shape[1]
            action = ActionSpec(tuple(f"action_{i}" for i in range(dim)), (-1.0,) * dim, (1.0,) * dim, "delta")
            return FeatureSchema(features, action, DEFAULT_CONTROL_DT if freq is None else 1.0 / float(freq))
        except (SchemaError, TypeError, ValueError, ZeroDivisionError) as err:
            raise DatasetError(f"{self.path}: {err} (control_freq {freq!r})") from err

    def _check_demo(self, demo: h5py.Group) -> int:
        """The demo's length, once every field it needs is there in the first demo's shapes."""
        actions = demo.get("actions")
        if not isinstance(actions, h5py.Dataset):
            raise DatasetError(f"{self.path}: {demo.name}/actions is missing")
        n = actions.shape[0]
        samples = int(demo.attrs.get("num_samples", n))
        if n == 0 or samples != n:
            raise DatasetError(f"{self.path}: {demo.name}/actions has {n} steps, num_samples says {samples}")
        first = demo.parent[self.demos[0]]
        expected = {"actions": (n, self.schema.action.dim), "rewards": (n,), "dones": (n,)}
        if self.state_dim:
            expected["states"] = (n, self.state_dim)
        groups = ["obs", "next_obs"] if "next_obs" in demo else ["obs"]
        for key in self._images + self._state_keys:
            expected.update({f"{g}/{key}": (n, *first["obs"][key].shape[1:]) for g in groups})
        for name, shape in expected.items():
            ds = demo.get(name)
            if not isinstance(ds, h5py.Dataset):
                raise DatasetError(f"{self.path}: {demo.name}/{name} is missing")
            if ds.shape != shape:
                raise DatasetError(f"{self.path}: {ds.name} has shape {ds.shape}, expected {shape} ({n} actions)")
        return n

    # -- episodes ---------------------------------------------------------------------------------
    def episodes(self) -> Iterator[ImportedEpisode]:
        with self._open() as f:
            for name in self.demos:
                yield self._episode(f["data"][name])

    def _episode(self, demo: h5py.Group) -> ImportedEpisode:
        n = demo["actions"].shape[0]
        steps = {f"observation.{k}": v for k, v in self._observation(demo["obs"], slice(None)).items()}
        steps["action"] = self._read(demo["actions"], np.float32)
        steps["reward"] = self._read(demo["rewards"], np.float32)
        steps["success"] = steps["reward"] > 0
        steps["terminated"] = self._read(demo["dones"]).astype(bool)
        steps["sim_state"] = self._read(demo["states"], np.float64) if self.state_dim else np.zeros((n, 0))
        after = demo["next_obs"] if "next_obs" in demo else demo["obs"]
        final = {k: v[0] for k, v in self._observation(after, slice(-1, None)).items()}
        return ImportedEpisode(steps, final, seed=int(demo.name.rsplit("_", 1)[1]))

    def _observation(self, obs: h5py.Group, rows: slice) -> dict[str, np.ndarray]:
        """The schema's features from ``obs[rows]``."""
        out = {_image_name(k): self._read(obs[k], np.uint8, rows) for k in self._images}
        if self._state_keys:
            parts = [self._read(obs[k], np.float32, rows) for k in self._state_keys]
            out["state"] = np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1)
        return out

    def _read(self, ds: h5py.Dataset, dtype: type | None = None, rows: slice = slice(None)) -> np.ndarray:
        """``ds[rows]`` as ``dtype``; DatasetError where it is unreadable or holds NaN or inf."""
        try:
            values = np.asarray(ds[rows], dtype=dtype)
        except (OSError, RuntimeError, TypeError, ValueError) as err:
            raise DatasetError(f"{self.path}: cannot read {ds.name}: truncated or corrupt ({err})") from err
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise DatasetError(f"{self.path}: {ds.name} contains NaN or inf")
        return values
