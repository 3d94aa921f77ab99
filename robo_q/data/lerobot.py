"""Reading a LeRobotDataset (codebase versions v3.0, v2.1, v2.0) as robo_q episodes.

- ``meta/info.json`` gives the fps, the features (dtype, shape, names) and the file path patterns.
- v3.0: episodes are listed in ``meta/episodes/chunk-*/file-*.parquet`` (their data file, and per
  camera their video file and ``from_timestamp``); ``data/`` and ``videos/<key>/`` files hold many
  episodes each, and a frame is at its episode's ``from_timestamp`` plus its ``timestamp``.
- v2.x: ``meta/episodes.jsonl`` and ``meta/tasks.jsonl``; one parquet and one mp4 per episode.

Features map onto the schema: ``observation.<name>`` becomes the feature ``<name>`` (``video`` and
``image`` dtypes an image feature, CHW or HWC as the ``names`` say; float vectors a state
feature keeping their names), ``action`` the action, whose native bounds are the data's range
unless given. ``next.reward`` / ``next.success`` / ``next.done`` become reward / success /
terminated (without ``next.success``, ``mark_success`` makes each episode's last step a success;
without ``next.reward`` the reward is the success). LeRobot keeps no observation after an
episode's last action, so the last one stands in for it. A dataset exported by robo_q
(``meta/robo_q.json``) gets its schema, task, seeds and simulator state
back, so it replays in its simulator.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from policies.features import ActionSpec, Feature, FeatureSchema, SchemaError, image_feature, state_feature
from robo_q.data.dataset_import import DatasetError, ImportedEpisode
from robo_q.data.video_codec import decode_frames

VERSIONS = ("v3.0", "v2.1", "v2.0")
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
OUTCOMES = {"next.reward": "reward", "next.success": "success", "next.done": "terminated"}
ROBO_Q_META = "meta/robo_q.json"  # written by robo_q's export next to LeRobot's own metadata
SIM_STATE = "sim_state"  # the simulator-state column of a robo_q export


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: missing") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from err


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: missing") from err
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON lines ({err})") from err


def read_parquet(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: missing") from err
    except (pa.ArrowException, OSError) as err:
        raise DatasetError(f"{path}: unreadable parquet, truncated or corrupt ({err})") from err


def column_array(table: pa.Table, name: str, width: int | None, where: Path) -> np.ndarray:
    """A column as (rows,) or, for list columns of ``width`` values, (rows, width)."""
    if name not in table.column_names:
        raise DatasetError(f"{where}: no column {name!r}")
    column = table.column(name).combine_chunks()
    nested = pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type)
    values = np.asarray((column.flatten() if nested else column).to_numpy(zero_copy_only=False))
    if values.size != len(column) * (width or 1):
        raise DatasetError(f"{where}: column {name!r} has {values.size} values for {len(column)} rows of {width or 1}")
    return values if width is None else values.reshape(len(column), width)


def _image_size(key: str, spec: dict[str, Any]) -> tuple[int, int]:
    """(height, width) of an image feature whose shape is CHW or HWC, as its ``names`` say."""
    shape, names = list(spec.get("shape", [])), spec.get("names") or []
    if len(shape) != 3:
        raise DatasetError(f"meta/info.json: features.{key}.shape {shape} is not an image shape")
    axes = [str(n).lower().rstrip("s") for n in names]
    if axes[:1] == ["channel"] or (not axes and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4)):
        channels, height, width = shape
    else:
        height, width, channels = shape
    if channels != 3:
        raise DatasetError(
            f"meta/info.json: features.{key} has {channels} channels; robo_q's images are RGB "
            f"(leave it out with exclude=[{key}])"
        )
    return int(height), int(width)


def _names(spec: dict[str, Any], dim: int, prefix: str) -> list[str]:
    names = spec.get("names")
    if isinstance(names, dict):  # v2.0 style {"motors": [...]}
        names = [n for group in names.values() for n in (group if isinstance(group, list) else [group])]
    if isinstance(names, list) and len(names) == dim:
        return [str(n) for n in names]
    return [f"{prefix}_{i}" for i in range(dim)]


def _vector_dim(key: str, spec: dict[str, Any]) -> int:
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) != 1 or spec.get("dtype") not in ("float32", "float64"):
        raise DatasetError(
            f"meta/info.json: features.{key} is {spec.get('dtype')} {shape}; robo_q holds float vectors and RGB "
            f"images (leave it out with exclude=[{key}])"
        )
    return int(shape[0])


class LeRobotReader:
    """An opened LeRobotDataset directory; :meth:`episodes` yields its episodes in index order."""

    source = "lerobot"

    def __init__(
        self,
        path: str | Path,
        *,
        action_mode: str = "position",
        action_low: Sequence[float] | None = None,
        action_high: Sequence[float] | None = None,
        exclude: Sequence[str] = (),
        task: str | None = None,
        mark_success: bool = False,
        tolerance: float | None = None,
    ) -> None:
        self.root = Path(path)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset directory")
        self.info = read_json(self.root / "meta/info.json")
        self.version = str(self.info.get("codebase_version"))
        if self.version not in VERSIONS:
            raise DatasetError(
                f"{self.root / 'meta/info.json'}: codebase_version {self.version!r}; robo_q imports {VERSIONS}"
            )
        try:
            self.fps = float(self.info["fps"])
            features: dict[str, dict[str, Any]] = dict(self.info["features"])
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"{self.root / 'meta/info.json'}: no valid fps / features ({err})") from err
        self.tolerance = tolerance if tolerance is not None else 0.25 / self.fps
        self.mark_success = mark_success
        self.features = {k: v for k, v in features.items() if k not in exclude}
        if "action" not in self.features:
            raise DatasetError(f"{self.root / 'meta/info.json'}: no 'action' feature")
        self.robo_q = read_json(self.root / ROBO_Q_META) if (self.root / ROBO_Q_META).exists() else None
        self.task_strings = self._tasks()
        self._episodes = self._episode_rows()
        self.num_episodes = len(self._episodes)
        self.num_frames = int(sum(e["length"] for e in self._episodes))
        self.cameras = {
            k: _image_size(k, v)
            for k, v in self.features.items()
            if k.startswith("observation.") and v.get("dtype") in ("video", "image")
        }
        for key in self.cameras:
            video_fps = self.features[key].get("info", {}).get("video.fps")
            if video_fps is not None and abs(float(video_fps) - self.fps) > 1e-6:
                raise DatasetError(
                    f"{self.root / 'meta/info.json'}: features.{key}.info.video.fps {video_fps} "
                    f"does not match the dataset's fps {self.fps}"
                )
        self.schema = self._schema(action_mode, action_low, action_high)
        self.state_dim = int(self.features[SIM_STATE]["shape"][0]) if self.robo_q and SIM_STATE in self.features else 0
        rq = self.robo_q or {}
        self.task = task or rq.get("task") or f"lerobot/{self.root.name}"
        self.env_config: dict[str, Any] = rq.get("env_config", {})
        self.simulator = str(rq.get("simulator", "none"))
        self.origin: dict[str, Any] = {
            "format": "lerobot",
            "codebase_version": self.version,
            "path": str(self.root.resolve()),
            "robot_type": self.info.get("robot_type"),
            "fps": self.fps,
            "tasks": self.task_strings,
            "episode_task": [
                self.task_strings.index(e["task"]) if e["task"] in self.task_strings else -1 for e in self._episodes
            ]
            if len(self.task_strings) > 1
            else None,
            "excluded": sorted(set(features) - set(self.features)),
        }

    # -- metadata ---------------------------------------------------------------------------------
    def _tasks(self) -> list[str]:
        if self.version == "v3.0":
            path = self.root / "meta/tasks.parquet"
            table = read_parquet(path)
            text = [c for c in table.column_names if pa.types.is_string(table.column(c).type)]
            if "task_index" not in table.column_names or not text:
                raise DatasetError(f"{path}: needs a task_index column and the task strings")
            index = column_array(table, "task_index", None, path)
            strings = table.column("task" if "task" in text else text[0]).to_pylist()
        else:
            rows = _read_jsonl(self.root / "meta/tasks.jsonl")
            index, strings = np.array([r["task_index"] for r in rows]), [r["task"] for r in rows]
        tasks = [""] * (int(index.max()) + 1 if len(index) else 0)
        for i, s in zip(index, strings, strict=True):
            tasks[int(i)] = str(s)
        return tasks

    def _episode_rows(self) -> list[dict[str, Any]]:
        """Per episode: index, length, task, data file and per camera (video file, from_timestamp)."""
        rows: list[dict[str, Any]] = []
        if self.version == "v3.0":
            files = sorted((self.root / "meta/episodes").glob("chunk-*/file-*.parquet"))
            if not files:
                raise DatasetError(f"{self.root / 'meta/episodes'}: no episode metadata files")
            for path in files:
                table = read_parquet(path)
                for row in table.to_pylist():
                    try:
                        data = self.root / self.info["data_path"].format(
                            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
                        )
                        videos = {
                            key: (
                                self.root
                                / self.info["video_path"].format(
                                    video_key=key,
                                    chunk_index=row[f"videos/{key}/chunk_index"],
                                    file_index=row[f"videos/{key}/file_index"],
                                ),
                                float(row[f"videos/{key}/from_timestamp"]),
                            )
                            for key, spec in self.features.items()
                            if spec.get("dtype") == "video"
                        }
                        tasks = row.get("tasks") or []
                        rows.append(
                            {
                                "index": int(row["episode_index"]),
                                "length": int(row["length"]),
                                "task": str(tasks[0]) if tasks else "",
                                "data": data,
                                "videos": videos,
                            }
                        )
                    except (KeyError, TypeError, AttributeError) as err:
                        raise DatasetError(f"{path}: episode row lacks {err}") from err
        else:
            chunk = int(self.info.get("chunks_size", 1000))
            for row in _read_jsonl(self.root / "meta/episodes.jsonl"):
                try:
                    e = int(row["episode_index"])
                    where = {"episode_chunk": e // chunk, "episode_index": e}
                    videos = {
                        key: (self.root / self.info["video_path"].format(video_key=key, **where), 0.0)
                        for key, spec in self.features.items()
                        if spec.get("dtype") == "video"
                    }
                    tasks = row.get("tasks") or []
                    rows.append(
                        {
                            "index": e,
                            "length": int(row["length"]),
                            "task": str(tasks[0]) if tasks else "",
                            "data": self.root / self.info["data_path"].format(**where),
                            "videos": videos,
                        }
                    )
                except (KeyError, TypeError) as err:
                    raise DatasetError(f"{self.root / 'meta/episodes.jsonl'}: episode row lacks {err}") from err
        return sorted(rows, key=lambda r: r["index"])

    def _schema(self, mode: str, low: Sequence[float] | None, high: Sequence[float] | None) -> FeatureSchema:
        observation: dict[str, Feature] = {}
        for key, spec in self.features.items():
            if not key.startswith("observation."):
                continue
            name = key.removeprefix("observation.")
            if key in self.cameras:
                observation[name] = image_feature(name, *self.cameras[key])
            else:
                dim = _vector_dim(key, spec)
                observation[name] = state_feature(name, _names(spec, dim, name))
        if self.robo_q:
            schema = FeatureSchema.from_dict(self.robo_q["features"])
            if set(schema.keys) != set(observation):
                raise DatasetError(
                    f"{self.root / ROBO_Q_META}: features {schema.keys} do not match info.json's {sorted(observation)}"
                )
            return schema
        dim = _vector_dim("action", self.features["action"])
        if low is None or high is None:
            lo, hi = self._action_range(dim)
            low = lo if low is None else low
            high = hi if high is None else high
        try:
            action = ActionSpec(tuple(_names(self.features["action"], dim, "action")), tuple(low), tuple(high), mode)
            return FeatureSchema(observation, action, 1.0 / self.fps)
        except SchemaError as err:
            raise DatasetError(f"{self.root}: {err}") from err

    def _action_range(self, dim: int) -> tuple[list[float], list[float]]:
        """The recorded actions' range per dimension (widened where it is a single value)."""
        lo, hi = np.full(dim, np.inf), np.full(dim, -np.inf)
        for path in sorted({e["data"] for e in self._episodes}):
            actions = column_array(read_parquet(path, ["action"]), "action", dim, path)
            if not np.all(np.isfinite(actions)):
                raise DatasetError(f"{path}: column 'action' contains NaN or inf")
            lo, hi = np.minimum(lo, actions.min(axis=0)), np.maximum(hi, actions.max(axis=0))
        pad = np.where(hi - lo > 0, 0.0, 1e-3 * np.maximum(1.0, np.abs(lo)))
        return (lo - pad).tolist(), (hi + pad).tolist()

    # -- episodes ---------------------------------------------------------------------------------
    def episodes(self) -> Iterator[ImportedEpisode]:
        table, table_path = None, None
        extras = (self.robo_q or {}).get("episodes", [])
        for n, episode in enumerate(self._episodes):
            if episode["data"] != table_path:
                table_path = episode["data"]
                table = read_parquet(table_path)
            assert table is not None and table_path is not None
            rows = table.filter(pc.equal(table.column("episode_index"), episode["index"]))
            yield self._episode(episode, rows, table_path, extras[n] if n < len(extras) else {})

    def _episode(self, episode: dict[str, Any], rows: pa.Table, path: Path, extra: dict[str, Any]) -> ImportedEpisode:
        where = f"{path} (episode {episode['index']})"
        frame_index = column_array(rows, "frame_index", None, path)
        order = np.argsort(frame_index, kind="stable")
        rows, frame_index = rows.take(pa.array(order)), frame_index[order]
        length = episode["length"]
        if len(rows) != length or not np.array_equal(frame_index, np.arange(length)):
            raise DatasetError(f"{where}: {len(rows)} frames, the episode metadata says {length}: truncated")
        timestamps = column_array(rows, "timestamp", None, path).astype(np.float64)
        if np.abs(timestamps - frame_index / self.fps).max() > self.tolerance:
            raise DatasetError(f"{where}: column 'timestamp' does not advance at the dataset's fps {self.fps}")
        steps: dict[str, np.ndarray] = {}
        for name, feature in self.schema.observation.items():
            key = f"observation.{name}"
            if feature.kind == "state":
                steps[key] = column_array(rows, key, feature.shape[0], path).astype(np.float32)
            elif self.features[key]["dtype"] == "video":
                video, start = episode["videos"][key]
                steps[key] = decode_frames(video, start + timestamps, self.cameras[key], self.tolerance)
            else:
                steps[key] = self._images(rows, key, feature.shape, where)
        native = column_array(rows, "action", self.schema.action.dim, path).astype(np.float64)
        for key, values in {"action": native, **{k: v for k, v in steps.items() if v.dtype != np.uint8}}.items():
            if not np.all(np.isfinite(values)):
                raise DatasetError(f"{where}: column {key!r} contains NaN or inf")
        steps["action"] = self.schema.action.from_native(native).astype(np.float32)
        for column, store_key in OUTCOMES.items():
            present = column in rows.column_names
            steps[store_key] = column_array(rows, column, None, path) if present else np.zeros(length)
        if self.mark_success and "next.success" not in rows.column_names:
            steps["success"] = np.arange(length) == length - 1  # demonstrations that end in success
        if "next.reward" not in rows.column_names:
            steps["reward"] = steps["success"].astype(np.float32)
        sim_state = column_array(rows, SIM_STATE, self.state_dim, path) if self.state_dim else np.zeros((length, 0))
        steps["sim_state"] = sim_state
        final = {k: steps[f"observation.{k}"][-1] for k in self.schema.keys}
        final.update({k: np.asarray(v) for k, v in extra.get("final_observation", {}).items()})
        return ImportedEpisode(steps, final, seed=int(extra.get("seed", episode["index"])), source=extra.get("source"))

    @staticmethod
    def _images(rows: pa.Table, key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
        """``image``-dtype frames stored in the parquet as {bytes, path} structs (PNG, JPEG...)."""
        column = rows.column(key).combine_chunks()
        out = np.empty((len(rows), *shape), np.uint8)
        for i, data in enumerate(column.field("bytes").to_pylist()):
            try:
                image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            except Exception as err:  # Pillow raises several types for undecodable bytes
                raise DatasetError(f"{where}: frame {i} of {key!r} cannot be decoded ({err})") from err
            if image.shape != shape:
                raise DatasetError(f"{where}: frame {i} of {key!r} is {image.shape}, the dataset declares {shape}")
            out[i] = image
        return out
