"""Dataset import / export speed: frames/s of `roboq data export format=lerobot` (store ->
LeRobotDataset v3.0, H.264 videos), of importing that dataset back, and of importing a robomimic
hdf5 file holding the same episodes; plus the frames' PSNR after the video round trip.

    python bench/data_speed.py [--episodes 10] [--length 60] [--size 480x640] [--cameras 2]
                               [--out bench/results/data_speed.json]

A frame is one time step (all cameras, the state and the action); camera frames/s counts each
camera's image. The synthetic episodes have smooth moving images (what a codec sees from a real
camera, not noise), a 14-D state and a 14-D action.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from policies.features import ActionSpec, FeatureSchema, image_feature, state_feature
from robo_q.data import EpisodeStore
from robo_q.data.dataset_import import import_dataset
from robo_q.data.lerobot import LeRobotReader
from robo_q.data.lerobot_export import export_lerobot
from robo_q.data.robomimic import RobomimicReader

DIM = 14


def images(length: int, height: int, width: int, phase: float) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = np.arange(length, dtype=np.float32)[:, None, None] * 0.05 + phase
    r = 120 + 70 * np.sin(2 * np.pi * (xx / width + t))
    g = 110 + 70 * np.cos(2 * np.pi * (yy / height - t))
    b = 100 + 60 * np.sin(2 * np.pi * ((xx + yy) / (width + height) + 0.5 * t))
    return np.stack([r, g, b], -1).astype(np.uint8)


def synthetic_store(path: Path, episodes: int, length: int, size: tuple[int, int], cameras: int) -> EpisodeStore:
    names = [f"joint_{i}" for i in range(DIM)]
    observation = {"state": state_feature("state", names, "rad")}
    for c in range(cameras):
        observation[f"images.cam{c}"] = image_feature(f"images.cam{c}", *size)
    action = ActionSpec(tuple(names), (-3.0,) * DIM, (3.0,) * DIM, "position", ("rad",) * DIM)
    schema = FeatureSchema(observation, action, 1 / 30)
    store = EpisodeStore.create(
        path, task="bench/arm", features=schema, state_dim=0, env_config={}, simulator="none", source="teleop"
    )
    rng = np.random.default_rng(0)
    for e in range(episodes):
        steps = {f"observation.images.cam{c}": images(length, *size, 0.3 * e + c) for c in range(cameras)}
        steps["observation.state"] = rng.normal(size=(length, DIM)).astype(np.float32)
        steps["action"] = rng.uniform(-1, 1, size=(length, DIM)).astype(np.float32)
        done = np.arange(length) == length - 1
        steps.update(reward=done.astype(np.float32), success=done, terminated=done, sim_state=np.zeros((length, 0)))
        final = {k.removeprefix("observation."): v[-1] for k, v in steps.items() if k.startswith("observation.")}
        store.append_episode(steps, final, seed=e)
    return store


def write_robomimic(store: EpisodeStore, path: Path) -> None:
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "BenchArm", "type": 1, "env_kwargs": {"control_freq": 30}})
        for i in range(store.num_episodes):
            episode = store.episode(i)
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = len(episode)
            for key in ("action", "reward"):
                demo[f"{key}s"] = episode.steps[key]
            demo["dones"] = episode.steps["terminated"].astype(np.int64)
            for key in store.observation_keys:
                name = f"{key.removeprefix('images.')}_image" if key.startswith("images.") else "joints"
                demo[f"obs/{name}"] = episode.steps[f"observation.{key}"]
        data.attrs["total"] = store.num_steps


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--length", type=int, default=60)
    parser.add_argument("--size", default="480x640", help="camera height x width")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--codec", default="h264")
    parser.add_argument("--out", default="bench/results/data_speed.json")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    results: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "episodes": args.episodes,
        "length": args.length,
        "cameras": args.cameras,
        "size": [height, width],
        "codec": args.codec,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = synthetic_store(root / "store.zarr", args.episodes, args.length, (height, width), args.cameras)
        frames = store.num_steps
        start = time.perf_counter()
        export_lerobot(store, root / "lerobot", codec=args.codec, progress=False)
        timed = {"export_lerobot": time.perf_counter() - start}
        start = time.perf_counter()
        back = import_dataset(LeRobotReader(root / "lerobot"), root / "back.zarr", progress=False)
        timed["import_lerobot"] = time.perf_counter() - start
        write_robomimic(store, root / "bench.hdf5")
        start = time.perf_counter()
        import_dataset(RobomimicReader(root / "bench.hdf5"), root / "robomimic.zarr", progress=False)
        timed["import_robomimic"] = time.perf_counter() - start
        imported = EpisodeStore.open(back.path)
        scores = [
            psnr(a, b)
            for i in range(store.num_episodes)
            for key in (f"observation.images.cam{c}" for c in range(args.cameras))
            for a, b in zip(store.episode(i).steps[key], imported.episode(i).steps[key], strict=True)
        ]
        video_mb = sum(p.stat().st_size for p in (root / "lerobot/videos").rglob("*.mp4")) / 2**20
    print(f"{frames} frames ({args.episodes} episodes x {args.length}), {args.cameras} cameras {height}x{width}")
    for name, seconds in timed.items():
        results[name] = {
            "seconds": round(seconds, 3),
            "frames_per_s": round(frames / seconds, 1),
            "camera_frames_per_s": round(frames * args.cameras / seconds, 1),
        }
        print(
            f"  {name:<17} {seconds:7.2f} s  {frames / seconds:8.1f} frames/s  "
            f"{frames * args.cameras / seconds:8.1f} camera frames/s"
        )
    results["psnr_db"] = {"min": round(min(scores), 2), "mean": round(float(np.mean(scores)), 2)}
    results["video_mb"] = round(video_mb, 2)
    print(f"  video round trip PSNR: min {min(scores):.2f} dB, mean {np.mean(scores):.2f} dB; videos {video_mb:.1f} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
