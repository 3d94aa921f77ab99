"""Writing an episode store as a LeRobotDataset v3.0, so other tools can use robo_q's demonstrations.

Actions are written in native units (the schema's bounds), cameras as mp4 videos (PyAV) holding
many episodes each, statistics in ``meta/stats.json``. What LeRobot's layout has no place for (the
schema's bounds, units and control mode, seeds, simulator state, the observation after the last
action) goes into ``meta/robo_q.json`` and a ``sim_state`` column, so that importing the export
gives the store back. The dataset is built under a hidden name and renamed into place when done.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from robo_q.data.lerobot import ROBO_Q_META, SIM_STATE
from robo_q.data.store import EpisodeStore
from robo_q.data.video_codec import VideoWriter

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"


@dataclass
class ExportReport:
    path: Path
    episodes: int
    frames: int
    videos: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


class _Stats:
    """Running min / max / mean / std of one feature (images per channel, scaled to [0, 1])."""

    def __init__(self, image: bool) -> None:
        self.image, self.frames, self.values = image, 0, 0
        self.low = self.high = self.total = self.squares = np.zeros(0)

    def add(self, frames: np.ndarray) -> None:
        if self.image:  # every 4th pixel per row and column: LeRobot's image statistics are estimates too
            frames = frames[:, ::4, ::4]
        x = frames.reshape(-1, frames.shape[-1]).astype(np.float64) / (255.0 if self.image else 1.0)
        if not self.frames:
            self.low, self.high = x.min(0), x.max(0)
            self.total, self.squares = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        self.low, self.high = np.minimum(self.low, x.min(0)), np.maximum(self.high, x.max(0))
        self.total, self.squares = self.total + x.sum(0), self.squares + np.square(x).sum(0)
        self.frames, self.values = self.frames + len(frames), self.values + len(x)

    def to_dict(self) -> dict[str, Any]:
        mean = self.total / self.values
        std = np.sqrt(np.maximum(self.squares / self.values - mean**2, 0.0))
        shape = (-1, 1, 1) if self.image else (-1,)  # LeRobot keeps image stats per channel as (C, 1, 1)
        out = {"min": self.low, "max": self.high, "mean": mean, "std": std}
        return {k: v.reshape(shape).tolist() for k, v in out.items()} | {"count": [self.frames]}


class _Files:
    """Rolls one stream of files (data, or one camera's videos) to a new file past a size limit."""

    def __init__(self, limit_mb: float) -> None:
        self.limit, self.chunk, self.file, self.used = limit_mb * 2**20, 0, 0, 0.0

    def place(self, size: float) -> tuple[int, int]:
        """The (chunk, file) indices an item of ``size`` bytes goes into."""
        if self.used and self.used + size > self.limit:
            self.file += 1
            if self.file == CHUNKS_SIZE:
                self.chunk, self.file = self.chunk + 1, 0
            self.used = 0.0
        self.used += size
        return self.chunk, self.file


def export_lerobot(
    store: EpisodeStore,
    out: str | Path,
    *,
    codec: str = "h264",
    crf: int = 18,
    data_file_mb: float = 100.0,
    video_file_mb: float = 200.0,
    overwrite: bool = False,
    progress: bool = True,
) -> ExportReport:
    """Write every episode of ``store`` as a LeRobotDataset v3.0 at ``out``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (overwrite=true replaces it)")
    if not store.num_episodes:
        raise ValueError(f"{store.path}: no episodes to export")
    staging = out.with_name(f".{out.name}.exporting")
    shutil.rmtree(staging, ignore_errors=True)
    start = time.perf_counter()
    try:
        frames, videos = _write(store, staging, codec, crf, data_file_mb, video_file_mb, progress)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(out, store.num_episodes, frames, videos, time.perf_counter() - start)


def _write(
    store: EpisodeStore, root: Path, codec: str, crf: int, data_mb: float, video_mb: float, progress: bool
) -> tuple[int, int]:
    schema, fps = store.features, 1.0 / store.features.control_dt
    cameras = [f.key for f in schema.of_kind("image")]
    state_dim = store.array_spec("sim_state")[0][0]
    stats = {f"observation.{k}": _Stats(f.kind == "image") for k, f in schema.observation.items()}
    stats["action"] = _Stats(False)
    data_files, video_files = _Files(data_mb), {c: _Files(video_mb) for c in cameras}
    writers: dict[str, VideoWriter] = {}
    videos = 0
    pending: list[pa.Table] = []
    data_at: tuple[int, int] | None = None
    episodes: list[dict[str, Any]] = []
    extras: list[dict[str, Any]] = []
    index = 0

    def flush_data() -> None:
        if pending and data_at is not None:
            path = root / DATA_PATH.format(chunk_index=data_at[0], file_index=data_at[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.concat_tables(pending), path)
            pending.clear()

    with tqdm(total=store.num_steps, unit="frame", desc="export", disable=not progress) as bar:
        for e in range(store.num_episodes):
            episode = store.episode(e)
            length = len(episode)
            row_bytes = sum(v[0].nbytes for k, v in episode.steps.items() if v.dtype != np.uint8) + 48
            placed = data_files.place(length * row_bytes)
            if placed != data_at:
                flush_data()
                data_at = placed
            native = schema.action.to_native(episode.steps["action"]).astype(np.float32)
            columns: dict[str, pa.Array] = {}
            for key, feature in schema.observation.items():
                values = episode.steps[f"observation.{key}"]
                stats[f"observation.{key}"].add(values)
                if feature.kind == "state":
                    columns[f"observation.{key}"] = _vectors(values.astype(np.float32))
            stats["action"].add(native)
            columns["action"] = _vectors(native)
            if state_dim:
                columns[SIM_STATE] = _vectors(episode.steps["sim_state"].astype(np.float64))
            frame_index = np.arange(length, dtype=np.int64)
            columns.update(
                {
                    "timestamp": pa.array((frame_index / fps).astype(np.float32)),
                    "frame_index": pa.array(frame_index),
                    "episode_index": pa.array(np.full(length, e, np.int64)),
                    "index": pa.array(index + frame_index),
                    "task_index": pa.array(np.zeros(length, np.int64)),
                    "next.reward": pa.array(episode.steps["reward"].astype(np.float32)),
                    "next.done": pa.array(episode.steps["terminated"].astype(bool)),
                    "next.success": pa.array(episode.steps["success"].astype(bool)),
                }
            )
            pending.append(pa.table(columns))
            row: dict[str, Any] = {
                "episode_index": e,
                "tasks": [store.task],
                "length": length,
                "data/chunk_index": data_at[0],
                "data/file_index": data_at[1],
                "dataset_from_index": index,
                "dataset_to_index": index + length,
            }
            for camera in cameras:
                images = episode.steps[f"observation.{camera}"]
                key = f"observation.{camera}"
                chunk, file = video_files[camera].place(images.nbytes / 50)  # about 50:1 compression
                path = root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
                if camera not in writers or writers[camera].path != path:
                    if camera in writers:
                        writers[camera].close()
                    writers[camera] = VideoWriter(path, fps, images.shape[1:3], codec, crf)
                    videos += 1
                writer = writers[camera]
                begin = writer.frames / fps
                writer.write(images)
                row.update(
                    {
                        f"videos/{key}/chunk_index": chunk,
                        f"videos/{key}/file_index": file,
                        f"videos/{key}/from_timestamp": begin,
                        f"videos/{key}/to_timestamp": begin + length / fps,
                    }
                )
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            episodes.append(row)
            extras.append(
                {
                    "seed": episode.seed,
                    "source": episode.source,
                    "final_observation": {
                        f.key: episode.final_observation[f.key].tolist() for f in schema.of_kind("state")
                    },
                }
            )
            index += length
            bar.update(length)
    flush_data()
    for writer in writers.values():
        writer.close()
    _write_meta(store, root, fps, codec, episodes, extras, stats, index, state_dim)
    return index, videos


def _vectors(values: np.ndarray) -> pa.Array:
    flat = pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _write_meta(
    store: EpisodeStore,
    root: Path,
    fps: float,
    codec: str,
    episodes: list[dict[str, Any]],
    extras: list[dict[str, Any]],
    stats: dict[str, _Stats],
    frames: int,
    state_dim: int,
) -> None:
    schema = store.features
    features: dict[str, Any] = {}
    for key, feature in schema.observation.items():
        if feature.kind == "image":
            height, width, channels = feature.shape
            features[f"observation.{key}"] = {
                "dtype": "video",
                "shape": [height, width, channels],
                "names": ["height", "width", "channels"],
                "info": {
                    "video.height": height,
                    "video.width": width,
                    "video.codec": codec,
                    "video.pix_fmt": "yuv420p",
                    "video.is_depth_map": False,
                    "video.fps": fps,
                    "video.channels": channels,
                    "has_audio": False,
                },
            }
        else:
            features[f"observation.{key}"] = {"dtype": "float32", "shape": list(feature.shape), "names": feature.names}
    features["action"] = {"dtype": "float32", "shape": [schema.action.dim], "names": list(schema.action.names)}
    if state_dim:
        features[SIM_STATE] = {"dtype": "float64", "shape": [state_dim], "names": None}
    for key, dtype in [
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("episode_index", "int64"),
        ("index", "int64"),
        ("task_index", "int64"),
        ("next.reward", "float32"),
        ("next.done", "bool"),
        ("next.success", "bool"),
    ]:
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    cameras = schema.of_kind("image")
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": store.attrs.get("simulator", "unknown"),
        "total_episodes": len(episodes),
        "total_frames": frames,
        "total_tasks": 1,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if cameras else None,
        "features": features,
    }
    meta = root / "meta"
    (meta / "episodes/chunk-000").mkdir(parents=True, exist_ok=True)
    (meta / "info.json").write_text(json.dumps(info, indent=4))
    (meta / "stats.json").write_text(json.dumps({k: s.to_dict() for k, s in stats.items()}, indent=4))
    pq.write_table(pa.Table.from_pylist(episodes), root / EPISODES_PATH)
    pq.write_table(_tasks_table(store.task), meta / "tasks.parquet")
    robo_q = {
        "format": "robo_q.lerobot_export",
        "task": store.task,
        "features": schema.to_dict(),
        "env_config": store.attrs.get("env_config", {}),
        "simulator": store.attrs.get("simulator", "none"),
        "source": store.attrs.get("source"),
        "episodes": extras,
    }
    (root / ROBO_Q_META).write_text(json.dumps(robo_q))


def _tasks_table(task: str) -> pa.Table:
    """``meta/tasks.parquet``: task_index with the task string as the pandas index, as LeRobot reads it."""
    table = pa.table({"task_index": pa.array([0], pa.int64()), "task": pa.array([task])})
    pandas = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {"name": name, "field_name": name, "pandas_type": pandas_type, "numpy_type": numpy_type, "metadata": None}
            for name, pandas_type, numpy_type in [("task_index", "int64", "int64"), ("task", "unicode", "object")]
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas).encode()})
