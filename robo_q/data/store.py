"""The zarr episode store.

Layout (zarr format 2, readable by zarr 2 and 3)::

    data/observation.<key>            (T, D) float32    a ``state`` feature; all episodes along time
    data/observation.<key>            (T, H, W, 3) uint8, an ``image`` feature; one frame per chunk
    data/action                       (T, A) float32    normalised to [-1, 1]
    data/reward, data/success, data/terminated (T,)     outcome of taking action[t]
    data/sim_state                    (T, S) float64    simulator state before action[t]
    meta/episode_ends                 (E,) int64        cumulative; the commit point
    meta/episode_seed, meta/episode_success, meta/episode_source, meta/initial_state (E, ...)
    meta/final_observation.<key>      (E, ...)          the observation after the last action

The root attributes hold the feature schema (``features``, :class:`policies.features.FeatureSchema`)
that decides each observation array's dtype and chunking; format-version-1 stores, written before
schemas existed, get theirs from :func:`policies.features.legacy_schema` when opened.

Crash safety: chunk and metadata files are replaced atomically (zarr's LocalStore writes a
temporary file and renames it) and an episode's data and per-episode metadata are written before
``meta/episode_ends`` grows, so a process killed at any point leaves every earlier episode intact.
Opening for append trims whatever an interrupted append left behind.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from policies.features import FeatureSchema, SchemaError, legacy_schema

FORMAT = "robo_q.episodes"
FORMAT_VERSION = 2
ROW_CHUNK = 4096
SOURCES = ("expert", "policy", "ros", "teleop", "lerobot", "robomimic")
STEP_ARRAYS = ("action", "reward", "success", "terminated", "sim_state")
_FLOAT_KEYS = ("observation.state", "action", "reward", "sim_state")


class StoreError(RuntimeError):
    """A missing, foreign, corrupt or mismatched episode store, or an episode that does not fit it."""


@dataclass
class Episode:
    """One stored episode: per-step arrays by store key, plus its metadata."""

    index: int
    steps: dict[str, np.ndarray]
    final_observation: dict[str, np.ndarray]
    seed: int
    success: bool
    source: str
    initial_state: np.ndarray

    def __len__(self) -> int:
        return int(self.steps["action"].shape[0])

    def next_observation(self, key: str) -> np.ndarray:
        """Observations o_1..o_T (the one reached by each action) for ``observation.<key>``."""
        return np.concatenate([self.steps[f"observation.{key}"][1:], self.final_observation[key][None]])


def _store_features(attrs: dict[str, Any]) -> FeatureSchema:
    """The schema in a store's attributes (version 1: rebuilt from what those recorded)."""
    if "features" in attrs:
        return FeatureSchema.from_dict(attrs["features"])
    return legacy_schema(
        attrs["observation_spec"], attrs["action_low"], attrs["action_high"], attrs["control_dt"], attrs["task"]
    )


class EpisodeStore:
    """Append-only store of episodes; use :meth:`create` or :meth:`open`."""

    _ends: np.ndarray  # committed episode ends, int64; set by _validate

    def __init__(self, group: zarr.Group, path: Path, writable: bool) -> None:
        self._group = group
        self.path = path
        self.writable = writable
        self.attrs: dict[str, Any] = dict(group.attrs)
        try:
            self.features = _store_features(self.attrs)
        except (SchemaError, KeyError, TypeError) as err:
            raise StoreError(
                f"{path}: bad feature schema in a format version {self.attrs.get('format_version')} store ({err})"
            ) from err
        self.observation_keys: list[str] = self.features.keys
        self._n = 0
        self._validate()

    # -- creation and opening -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        task: str,
        features: FeatureSchema,
        state_dim: int,
        env_config: dict[str, Any],
        simulator: str,
        source: str,
        overwrite: bool = False,
    ) -> EpisodeStore:
        """A new, empty store of ``features``' observations and action; refuses to replace an
        existing path unless ``overwrite``."""
        path = Path(path)
        if source not in SOURCES:
            raise StoreError(f"source must be one of {SOURCES}, got {source!r}")
        if path.exists():
            if not overwrite:
                raise StoreError(
                    f"{path} already exists (pass append=true to add episodes, overwrite=true to replace it)"
                )
            shutil.rmtree(path)
        group = zarr.open_group(store=LocalStore(path), mode="w-", zarr_format=2)
        data, meta = group.create_group("data"), group.create_group("meta")
        for key, feature in features.observation.items():
            frame = feature.shape
            chunks = (1, *frame) if feature.kind == "image" else (ROW_CHUNK, *frame)
            data.create_array(f"observation.{key}", shape=(0, *frame), chunks=chunks, dtype=feature.dtype, fill_value=0)
            meta.create_array(
                f"final_observation.{key}", shape=(0, *frame), chunks=(1, *frame), dtype=feature.dtype, fill_value=0
            )
        for key, shape, dtype in [
            ("action", (features.action.dim,), "float32"),
            ("reward", (), "float32"),
            ("success", (), "bool"),
            ("terminated", (), "bool"),
            ("sim_state", (state_dim,), "float64"),
        ]:
            data.create_array(key, shape=(0, *shape), chunks=(ROW_CHUNK, *shape), dtype=dtype, fill_value=0)
        for key, shape, dtype in [
            ("episode_ends", (), "int64"),
            ("episode_seed", (), "int64"),
            ("episode_success", (), "bool"),
            ("episode_source", (), "<U16"),
            ("initial_state", (state_dim,), "float64"),
        ]:
            meta.create_array(
                key, shape=(0, *shape), chunks=(ROW_CHUNK, *shape), dtype=dtype, fill_value=0 if dtype != "<U16" else ""
            )
        group.attrs.update(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "task": task,
                "control_dt": features.control_dt,  # also in features; kept for `roboq demos info`
                "features": features.to_dict(),
                "env_config": env_config,
                "simulator": simulator,
                "source": source,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        )
        return cls(group, path, writable=True)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> EpisodeStore:
        """Open an existing store read-only (``r``) or for appending (``a``)."""
        path = Path(path)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        if not path.exists():
            raise StoreError(f"{path}: no such episode store")
        try:
            group = zarr.open_group(store=LocalStore(path, read_only=mode == "r"), mode="r" if mode == "r" else "r+")
            attrs: dict[str, Any] = dict(group.attrs)
        except Exception as err:  # zarr raises several unrelated types for unreadable metadata
            raise StoreError(f"{path}: not a readable zarr store ({type(err).__name__}: {err})") from err
        if attrs.get("format") != FORMAT:
            raise StoreError(
                f"{path}: a zarr store but not a robo_q episode store (its 'format' attribute is not {FORMAT!r})"
            )
        if int(attrs.get("format_version", -1)) > FORMAT_VERSION:
            raise StoreError(
                f"{path}: format version {attrs['format_version']} is newer than this robo_q reads "
                f"({FORMAT_VERSION}); upgrade robo_q"
            )
        store = cls(group, path, writable=mode == "a")
        if store.writable:
            store._trim_uncommitted()
        return store

    # -- reading ----------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return str(self.attrs["task"])

    @property
    def num_episodes(self) -> int:
        return self._n

    @property
    def num_steps(self) -> int:
        return int(self._ends[-1]) if self._n else 0

    @property
    def episode_ends(self) -> np.ndarray:
        return self._ends.copy()

    @property
    def data_keys(self) -> list[str]:
        return [f"observation.{k}" for k in self.observation_keys] + list(STEP_ARRAYS)

    def array_spec(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """Per-step shape and dtype of ``data/<key>``."""
        array = self._array(f"data/{key}")
        return tuple(array.shape[1:]), array.dtype

    def episode_bounds(self, index: int) -> tuple[int, int]:
        if not -self._n <= index < self._n:
            raise IndexError(f"episode {index} out of range: the store holds {self._n} episodes")
        index %= self._n
        return (int(self._ends[index - 1]) if index else 0), int(self._ends[index])

    def episode(self, index: int, observation_keys: list[str] | None = None) -> Episode:
        """Read one episode (all observation keys unless ``observation_keys`` names some)."""
        start, end = self.episode_bounds(index)
        index %= self._n
        obs_keys = self.observation_keys if observation_keys is None else observation_keys
        keys = [f"observation.{k}" for k in obs_keys] + list(STEP_ARRAYS)
        steps = {key: self._read(f"data/{key}", slice(start, end)) for key in keys}
        final = {key: self._read(f"meta/final_observation.{key}", index) for key in obs_keys}
        return Episode(
            index=index,
            steps=steps,
            final_observation=final,
            seed=int(self._read("meta/episode_seed", index)),
            success=bool(self._read("meta/episode_success", index)),
            source=str(self._read("meta/episode_source", index)),
            initial_state=self._read("meta/initial_state", index),
        )

    def load(self, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """All committed steps of ``keys`` (default: every data key) in memory, for training."""
        return {key: self._read(f"data/{key}", slice(0, self.num_steps)) for key in keys or self.data_keys}

    def episode_meta(self) -> dict[str, np.ndarray]:
        """Per-episode seed, success, source and length for all committed episodes."""
        n = self._n
        return {
            "seed": self._read("meta/episode_seed", slice(0, n)),
            "success": self._read("meta/episode_success", slice(0, n)),
            "source": self._read("meta/episode_source", slice(0, n)),
            "length": np.diff(self._ends, prepend=0),
        }

    # -- writing ----------------------------------------------------------------------------------
    def append_episode(
        self,
        steps: dict[str, np.ndarray],
        final_observation: dict[str, np.ndarray],
        *,
        seed: int,
        source: str | None = None,
    ) -> int:
        """Validate and append one episode; it becomes visible only once fully written."""
        if not self.writable:
            raise StoreError(f"{self.path}: opened read-only")
        source = source or str(self.attrs["source"])
        if source not in SOURCES:
            raise StoreError(f"source must be one of {SOURCES}, got {source!r}")
        steps = self._check_episode(steps, final_observation)
        for key, values in steps.items():
            self._array(f"data/{key}").append(values, axis=0)
        for key in self.observation_keys:
            final = np.asarray(final_observation[key], dtype=self.features.observation[key].dtype)[None]
            self._array(f"meta/final_observation.{key}").append(final, axis=0)
        self._array("meta/episode_seed").append(np.array([seed], np.int64))
        self._array("meta/episode_success").append(np.array([bool(steps["success"].any())]))
        self._array("meta/episode_source").append(np.array([source], "<U16"))
        self._array("meta/initial_state").append(steps["sim_state"][:1])
        new_end = self.num_steps + len(steps["action"])
        self._array("meta/episode_ends").append(np.array([new_end], np.int64))  # commit
        self._ends = np.append(self._ends, new_end)
        self._n += 1
        return self._n - 1

    def update_attrs(self, **attrs: Any) -> None:
        """Set root attributes (e.g. the ``imports`` that record where episodes came from)."""
        if not self.writable:
            raise StoreError(f"{self.path}: opened read-only")
        self._group.attrs.update(attrs)
        self.attrs.update(attrs)

    def rollback(self, num_episodes: int) -> None:
        """Drop every episode after the first ``num_episodes`` (an import that failed midway).

        The commit point shrinks first, so a crash during the rollback leaves the same result once
        the store is next opened for appending.
        """
        if not self.writable:
            raise StoreError(f"{self.path}: opened read-only")
        if not 0 <= num_episodes <= self._n:
            raise StoreError(f"cannot roll back to {num_episodes} episodes: the store holds {self._n}")
        self._array("meta/episode_ends").resize((num_episodes,))
        self._ends, self._n = self._ends[:num_episodes], num_episodes
        self._trim_uncommitted()

    # -- internals --------------------------------------------------------------------------------
    def _array(self, name: str) -> zarr.Array:
        """The array at ``name``; StoreError if the store holds a group there."""
        node = self._group[name]
        if not isinstance(node, zarr.Array):
            raise StoreError(f"{self.path}: {name} is a group, not an array: the store is corrupt")
        return node

    def _read(self, name: str, index: int | slice) -> np.ndarray:
        try:
            return np.asarray(self._array(name)[index])
        except Exception as err:  # codec, JSON and missing-key errors all mean the same here
            raise StoreError(
                f"{self.path}: cannot read {name}[{index}]: the store is corrupt ({type(err).__name__}: {err})"
            ) from err

    def _array_lengths(self) -> dict[str, int]:
        names = [f"data/{k}" for k in self.data_keys]
        names += [f"meta/final_observation.{k}" for k in self.observation_keys]
        names += [f"meta/{k}" for k in ("episode_seed", "episode_success", "episode_source", "initial_state")]
        lengths: dict[str, int] = {}
        for name in names:
            try:
                lengths[name] = int(self._array(name).shape[0])
            except Exception as err:
                raise StoreError(
                    f"{self.path}: array {name} is missing or unreadable: the store is corrupt ({err})"
                ) from err
        return lengths

    def _validate(self) -> None:
        ends = self._read("meta/episode_ends", slice(None)).astype(np.int64)
        # A crash between growing episode_ends and writing its chunk leaves one trailing fill value.
        if len(ends) and ends[-1] == 0:
            ends = ends[:-1]
        bad = np.flatnonzero(np.diff(ends, prepend=0) <= 0)
        if len(bad):
            raise StoreError(
                f"{self.path}: meta/episode_ends is not increasing at episode {bad[0]}: the store is corrupt"
            )
        self._ends, self._n = ends, len(ends)
        for name, length in self._array_lengths().items():
            need = self.num_steps if name.startswith("data/") else self._n
            if length < need:
                raise StoreError(
                    f"{self.path}: {name} has {length} rows but the committed episodes need {need}: "
                    "the store is corrupt"
                )

    def _trim_uncommitted(self) -> None:
        """Drop what an interrupted append wrote past the last committed episode."""
        for name, length in self._array_lengths().items():
            keep = self.num_steps if name.startswith("data/") else self._n
            if length > keep:
                array = self._array(name)
                array.resize((keep, *array.shape[1:]))
        episode_ends = self._array("meta/episode_ends")
        if episode_ends.shape[0] > self._n:
            episode_ends.resize((self._n,))
        for partial in self.path.rglob("*.partial"):
            partial.unlink()

    def _check_episode(
        self, steps: dict[str, np.ndarray], final_observation: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        missing = set(self.data_keys) - set(steps)
        if missing:
            raise StoreError(f"episode is missing keys {sorted(missing)}")
        length = len(steps["action"])
        if length == 0:
            raise StoreError("episode has no steps")
        checked = {}
        for key in self.data_keys:
            target = self._array(f"data/{key}")
            values = np.asarray(steps[key])
            if values.shape != (length, *target.shape[1:]):
                raise StoreError(f"episode key {key}: expected shape {(length, *target.shape[1:])}, got {values.shape}")
            if key in _FLOAT_KEYS and not np.all(np.isfinite(values)):
                raise StoreError(f"episode key {key} contains NaN or inf")
            checked[key] = values.astype(target.dtype, copy=False)
        for key in self.observation_keys:
            expected = tuple(self._array(f"meta/final_observation.{key}").shape[1:])
            final = np.asarray(final_observation.get(key))
            if final.shape != expected:
                raise StoreError(f"final observation {key}: expected shape {expected}, got {final.shape}")
        return checked
