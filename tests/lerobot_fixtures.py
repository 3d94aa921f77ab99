"""Build LeRobotDataset directories (v3.0 and v2.1) on disk for importer tests.

Written from the published layout, independently of robo_q's importer and without lerobot: synthetic episodes
(`make_episodes`), writers for both codebase versions (`write_v30`, `write_v21`) and corruption helpers for
bad-input tests (`truncate_file`, `drop_last_video_frames`).
"""

from __future__ import annotations

import io
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

CHUNKS_SIZE = 1000
F32, I64, BOOL = ("float32", pa.float32()), ("int64", pa.int64()), ("bool", pa.bool_())
SCALARS = {"next.reward": F32, "next.done": BOOL, "next.success": BOOL, "timestamp": F32}  # (info dtype, arrow type)
SCALARS |= {"frame_index": I64, "episode_index": I64, "index": I64, "task_index": I64}
Episodes = list[dict[str, Any]]


def make_episodes(
    lengths: list[int],
    *,
    state_dim: int = 6,
    action_dim: int = 6,
    cameras: tuple[str, ...] = ("front", "wrist"),
    height: int = 48,
    width: int = 64,
    seed: int = 0,
    tasks: tuple[str, ...] = ("pick the cube", "push the cube"),
) -> Episodes:
    """Deterministic smooth episodes: state/action in [-2, 3], codec-friendly moving gradients and blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    episodes = []
    for e, T in enumerate(lengths):
        t = np.arange(T, dtype=np.float32)[:, None]
        state = 0.5 + 2.5 * np.sin(rng.uniform(0.1, 0.4, state_dim) * t + rng.uniform(0, 6.3, state_dim) + 0.7 * e)
        action = 0.5 + 2.5 * np.cos(rng.uniform(0.1, 0.4, action_dim) * t + rng.uniform(0, 6.3, action_dim) - 0.3 * e)
        images = {}
        for c, cam in enumerate(cameras):
            s = (0.08 * t + 0.37 * e + 0.21 * c)[:, :, None]  # (T, 1, 1): slow drift of every pattern
            cy, cx = height * (0.5 + 0.3 * np.sin(2 * s + c)), width * (0.5 + 0.3 * np.cos(1.3 * s + e))
            blob = 110 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.12 * width) ** 2))
            r = 100 + 60 * np.sin(2 * np.pi * (xx / width + s)) + blob
            g = 110 + 60 * np.cos(2 * np.pi * (yy / height - s)) + 0.5 * blob
            b = 90 + 40 * np.sin(2 * np.pi * ((xx + yy) / (width + height) + 0.5 * s + 0.1 * e)) + 0.8 * blob
            images[cam] = np.clip(np.stack([r, g, b], -1), 0, 255).round().astype(np.uint8)
        last = np.arange(T) == T - 1
        episodes.append(
            {
                "observation.state": state.astype(np.float32),
                "action": action.astype(np.float32),
                "images": images,
                "next.reward": last.astype(np.float32),
                "next.done": last.copy(),
                "next.success": last.copy(),
                "task": tasks[e % len(tasks)],
            }
        )
    return episodes


def _task_table(episodes: Episodes) -> dict[str, int]:
    return {task: i for i, task in enumerate(dict.fromkeys(ep["task"] for ep in episodes))}


def _features(
    episodes: Episodes,
    fps: int,
    image_mode: str,
    chw: bool,
    state_names: list[str] | None,
    action_names: list[str] | None,
) -> dict[str, Any]:
    sd, ad = episodes[0]["observation.state"].shape[1], episodes[0]["action"].shape[1]
    features: dict[str, Any] = {
        "observation.state": {
            "dtype": "float32",
            "shape": [sd],
            "names": state_names or [f"motor_{i}" for i in range(sd)],
        },
        "action": {"dtype": "float32", "shape": [ad], "names": action_names or [f"motor_{i}" for i in range(ad)]},
    }
    for cam, frames in episodes[0]["images"].items():
        h, w = frames.shape[1:3]
        spec: dict[str, Any] = {"dtype": image_mode, "shape": [3, h, w] if chw else [h, w, 3]}
        spec["names"] = ["channels", "height", "width"] if chw else ["height", "width", "channels"]
        if image_mode == "video":
            spec["info"] = {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p"}
            spec["info"] |= {"video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}
        features[f"observation.images.{cam}"] = spec
    return features | {key: {"dtype": dtype, "shape": [1], "names": None} for key, (dtype, _) in SCALARS.items()}


def _png(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def _data_table(
    episodes: Episodes, ep_indices: list[int], start_index: int, tasks: dict[str, int], fps: int, image_mode: str
) -> pa.Table:
    eps = [episodes[e] for e in ep_indices]
    cols: dict[str, pa.Array] = {}
    for key in ("observation.state", "action"):
        arr = np.concatenate([ep[key] for ep in eps]).astype(np.float32)
        cols[key] = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])
    if image_mode == "image":
        image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        for cam in eps[0]["images"]:
            rows = [
                {"bytes": _png(f), "path": f"frame_{i:06d}.png"} for ep in eps for i, f in enumerate(ep["images"][cam])
            ]
            cols[f"observation.images.{cam}"] = pa.array(rows, image_type)
    lengths = [len(ep["action"]) for ep in eps]
    frame_index = np.concatenate([np.arange(n) for n in lengths])
    values = {key: np.concatenate([ep[key] for ep in eps]) for key in ("next.reward", "next.done", "next.success")}
    values |= {
        "timestamp": frame_index / fps,
        "frame_index": frame_index,
        "episode_index": np.repeat(ep_indices, lengths),
    }
    values |= {"index": start_index + np.arange(sum(lengths))}
    values |= {"task_index": np.repeat([tasks[ep["task"]] for ep in eps], lengths)}
    for key, (_, typ) in SCALARS.items():
        cols[key] = pa.array(values[key].astype(typ.to_pandas_dtype()), typ)
    return pa.table(cols)


def _encode_video(path: Path, frames: np.ndarray, fps: int) -> None:
    """H.264 / yuv420p mp4 as LeRobot writes it; frame i has pts i in time base 1/fps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "18", "g": "2"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i, arr in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _stats(x: np.ndarray) -> dict[str, list]:
    x = x.astype(np.float64)
    return {name: getattr(np, name)(x, axis=0).tolist() for name in ("min", "max", "mean", "std")} | {"count": [len(x)]}


def _episode_stats(episodes: Episodes) -> dict[str, dict[str, list]]:
    keys = ("observation.state", "action", "next.reward")
    stats = {k: _stats(np.concatenate([ep[k].reshape(len(ep[k]), -1) for ep in episodes])) for k in keys}
    for cam in episodes[0]["images"]:  # per channel in [0, 1] with shape (3, 1, 1), as LeRobot stores image stats
        px = _stats(np.concatenate([ep["images"][cam].reshape(-1, 3) for ep in episodes]) / 255.0)
        px = {k: [[[c]] for c in v] for k, v in px.items() if k != "count"}
        stats[f"observation.images.{cam}"] = px | {"count": stats["action"]["count"]}
    return stats


def _put(path: Path, obj: Any, lines: bool = False) -> None:
    """Write a pyarrow table as parquet, else `obj` as JSON (one JSON document per line when `lines`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(obj, pa.Table):
        pq.write_table(obj, path)
    else:
        path.write_text("".join(json.dumps(x) + "\n" for x in obj) if lines else json.dumps(obj, indent=4))


def _tasks_table(tasks: dict[str, int]) -> pa.Table:
    """tasks.parquet as `pandas.DataFrame({"task_index": ...}, index=pd.Index(tasks, name="task"))` stores it."""
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": pa.array(list(tasks))})
    columns = [("task_index", "int64", "int64"), ("task", "unicode", "object")]
    keys = ("name", "field_name", "pandas_type", "numpy_type", "metadata")
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [dict(zip(keys, (None, None, "unicode", "object", {"encoding": "UTF-8"}), strict=True))],
        "columns": [dict(zip(keys, (n, n, p, t, None), strict=True)) for n, p, t in columns],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _info(version: str, episodes: Episodes, tasks: dict[str, int], fps: int, robot_type: str) -> dict[str, Any]:
    info = {"codebase_version": version, "robot_type": robot_type, "total_episodes": len(episodes)}
    info |= {"total_frames": sum(len(ep["action"]) for ep in episodes), "total_tasks": len(tasks)}
    return info | {"fps": fps, "splits": {"train": f"0:{len(episodes)}"}}


def write_v30(
    root: str | Path,
    episodes: Episodes,
    *,
    fps: int = 10,
    episodes_per_file: int = 2,
    image_mode: str = "video",
    chw: bool = False,
    robot_type: str = "test_arm",
    state_names: list[str] | None = None,
    action_names: list[str] | None = None,
) -> Path:
    """Write `episodes` as a LeRobotDataset v3.0 (episodes grouped `episodes_per_file` per data/video file)."""
    root = Path(root)
    tasks, lengths = _task_table(episodes), [len(ep["action"]) for ep in episodes]
    cameras = list(episodes[0]["images"])
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    rows: list[dict[str, Any]] = []
    for f, first in enumerate(range(0, len(episodes), episodes_per_file)):
        chunk, file = divmod(f, CHUNKS_SIZE)
        group = list(range(first, min(first + episodes_per_file, len(episodes))))
        data = _data_table(episodes, group, int(starts[first]), tasks, fps, image_mode)
        _put(root / f"data/chunk-{chunk:03d}/file-{file:03d}.parquet", data)
        if image_mode == "video":
            for cam in cameras:
                path = root / f"videos/observation.images.{cam}/chunk-{chunk:03d}/file-{file:03d}.mp4"
                _encode_video(path, np.concatenate([episodes[e]["images"][cam] for e in group]), fps)
        offset = 0
        for e in group:
            row: dict[str, Any] = {"episode_index": e, "tasks": [episodes[e]["task"]], "length": lengths[e]}
            row |= {"data/chunk_index": chunk, "data/file_index": file}
            row |= {"dataset_from_index": int(starts[e]), "dataset_to_index": int(starts[e + 1])}
            if image_mode == "video":
                for cam in cameras:
                    key = f"videos/observation.images.{cam}"
                    row |= {f"{key}/chunk_index": chunk, f"{key}/file_index": file}
                    row |= {f"{key}/from_timestamp": offset / fps, f"{key}/to_timestamp": (offset + lengths[e]) / fps}
            for k in ("observation.state", "action"):
                row |= {f"stats/{k}/{name}": v for name, v in _stats(episodes[e][k]).items()}
            rows.append(row | {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            offset += lengths[e]
    _put(root / "meta/episodes/chunk-000/file-000.parquet", pa.Table.from_pylist(rows))
    _put(root / "meta/tasks.parquet", _tasks_table(tasks))
    _put(root / "meta/stats.json", _episode_stats(episodes))
    info = _info("v3.0", episodes, tasks, fps, robot_type) | {"chunks_size": CHUNKS_SIZE}
    info |= {"data_files_size_in_mb": 100, "video_files_size_in_mb": 500}
    info["data_path"] = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    video_path = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    info["video_path"] = video_path if image_mode == "video" else None
    info["features"] = _features(episodes, fps, image_mode, chw, state_names, action_names)
    _put(root / "meta/info.json", info)
    return root


def write_v21(
    root: str | Path,
    episodes: Episodes,
    *,
    fps: int = 10,
    image_mode: str = "video",
    chw: bool = False,
    robot_type: str = "test_arm",
    state_names: list[str] | None = None,
    action_names: list[str] | None = None,
) -> Path:
    """Write `episodes` as a LeRobotDataset v2.1: one data parquet and one mp4 per camera per episode."""
    root = Path(root)
    tasks, lengths = _task_table(episodes), [len(ep["action"]) for ep in episodes]
    cameras = list(episodes[0]["images"])
    start = 0
    for e, ep in enumerate(episodes):
        chunk = e // CHUNKS_SIZE
        data = _data_table(episodes, [e], start, tasks, fps, image_mode)
        _put(root / f"data/chunk-{chunk:03d}/episode_{e:06d}.parquet", data)
        if image_mode == "video":
            for cam in cameras:
                path = root / f"videos/chunk-{chunk:03d}/observation.images.{cam}/episode_{e:06d}.mp4"
                _encode_video(path, ep["images"][cam], fps)
        start += lengths[e]
    lines = [{"episode_index": e, "tasks": [ep["task"]], "length": lengths[e]} for e, ep in enumerate(episodes)]
    _put(root / "meta/episodes.jsonl", lines, lines=True)
    _put(root / "meta/tasks.jsonl", [{"task_index": i, "task": t} for t, i in tasks.items()], lines=True)
    stats = [{"episode_index": e, "stats": _episode_stats([ep])} for e, ep in enumerate(episodes)]
    _put(root / "meta/episodes_stats.jsonl", stats, lines=True)
    info = _info("v2.1", episodes, tasks, fps, robot_type)
    info |= {"total_videos": len(episodes) * len(cameras) if image_mode == "video" else 0}
    info |= {"total_chunks": (len(episodes) - 1) // CHUNKS_SIZE + 1, "chunks_size": CHUNKS_SIZE}
    info["data_path"] = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    video_path = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    info["video_path"] = video_path if image_mode == "video" else None
    info["features"] = _features(episodes, fps, image_mode, chw, state_names, action_names)
    _put(root / "meta/info.json", info)
    return root


def truncate_file(path: str | Path, keep_fraction: float = 0.5) -> None:
    """Cut a file (parquet, mp4, ...) short, keeping its first `keep_fraction` of bytes."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])


def drop_last_video_frames(root: str | Path, camera: str, n: int) -> None:
    """Re-encode a camera's last video (v3.0: last file, v2.1: last episode) without its last `n` frames."""
    root = Path(root)
    key = camera if camera.startswith("observation.images.") else f"observation.images.{camera}"
    info = json.loads((root / "meta/info.json").read_text())
    v30 = info["codebase_version"] == "v3.0"
    pattern = f"videos/{key}/chunk-*/file-*.mp4" if v30 else f"videos/chunk-*/{key}/episode_*.mp4"
    path = sorted(root.glob(pattern))[-1]
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    _encode_video(path, frames[: len(frames) - n], info["fps"])
