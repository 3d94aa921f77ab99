"""`roboq logs convert` speed: a robot's rosbag2 MCAP log -> zarr episodes, in episodes/s, steps/s,
camera frames/s and MB/s of log read.

    python bench/log_convert_speed.py [--episodes 20] [--seconds 4] [--size 480x640] [--feature-size 84]
                                      [--out bench/results/log_convert_speed.json]

The log is tests/log_fixtures.py's two-joint arm, written with rosbags alone (not timed): per episode
``--seconds`` of JointState at 500 Hz, one ``bgr8`` camera at 30 Hz (``--size``), JointTrajectory
commands at 10 Hz, and episode start / end topics. The conversion is `roboq logs convert`'s path:
:class:`~ros_nodes.log_episodes.LogEpisodes` (the profile's features: joint positions and velocities,
the camera resized to ``--feature-size`` squared, steps on the 10 Hz grid) into
:func:`~robo_q.data.dataset_import.import_dataset`, timed from opening the log to the store renamed
into place. The log has just been written, so it is read from the page cache. The fixture's frames
are flat colour: the store's size is no guide to real frames' (its compression time hardly is either:
the stored images are small).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the log writer of the conversion tests
from log_fixtures import PROFILE, write_arm_log  # noqa: E402
from machine import cpu_model  # noqa: E402

from robo_q.data.dataset_import import import_dataset  # noqa: E402
from ros_nodes.log_episodes import LogEpisodes  # noqa: E402
from ros_nodes.profile import RobotProfile  # noqa: E402

JOINT_HZ, CAMERA_HZ, COMMAND_HZ = 500.0, 30.0, 10.0  # COMMAND_HZ: the profile's rate (10 Hz steps)
EPISODE_START, EPISODE_END = "/teleop/episode", "/teleop/done"  # the fixture's episode topics


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def convert(bag: Path, profile_file: Path, out: Path) -> dict[str, Any]:
    """`roboq logs convert path=<bag> robot=<profile> out=<out>` as a function call, timed."""
    cpu0, start = time.process_time(), time.perf_counter()
    reader = LogEpisodes(bag, RobotProfile.load(profile_file), episode_start=EPISODE_START, episode_end=EPISODE_END)
    opened = time.perf_counter()
    report = import_dataset(reader, out, progress=False)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "open_s": opened - start,  # reading the episode boundaries
        "cpu_percent": 100 * (time.process_time() - cpu0) / seconds,
        "episodes": report.episodes,
        "steps": report.frames,
        "dropped_steps": sum(w.dropped for w in reader.windows),
        "camera_frames": reader.message_counts["/arm/wrist/image_raw"],
        "joint_states": reader.message_counts["/arm/joint_states"],
        "commands": reader.message_counts["/arm_controller/joint_trajectory"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=None, help="episodes in the log (default 20; --tiny 3)")
    parser.add_argument("--seconds", type=float, default=None, help="length of each episode (default 4; --tiny 2)")
    parser.add_argument("--size", default=None, help="camera height x width (default 480x640; --tiny 48x64)")
    parser.add_argument(
        "--feature-size",
        type=int,
        default=None,
        help="stored image side, the profile's features (default 84; --tiny 32)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the log and store go (default: a temp dir)")
    parser.add_argument("--tiny", action="store_true", help="a 3-episode log of small frames: for tests (needs --out)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON results (default bench/results/log_convert_speed.json)"
    )
    args = parser.parse_args()
    if args.tiny and args.out is None:
        parser.error("--tiny needs --out (it never writes over the committed results)")
    episodes = args.episodes or (3 if args.tiny else 20)
    seconds = args.seconds or (2.0 if args.tiny else 4.0)
    feature = args.feature_size or (32 if args.tiny else 84)
    height, width = (int(v) for v in (args.size or ("48x64" if args.tiny else "480x640")).split("x"))
    out = args.out or Path("bench/results/log_convert_speed.json")
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="log_convert_speed_", dir=args.dir))
    try:
        doc: dict[str, Any] = copy.deepcopy(PROFILE)
        doc["rate"] = COMMAND_HZ
        doc["features"]["images.wrist"] = {"height": feature, "width": feature}
        profile_file = root / "arm.yaml"
        profile_file.write_text(yaml.safe_dump(doc))
        print(f"writing a log: {episodes} episodes x {seconds:g} s, camera {height}x{width} at {CAMERA_HZ:g} Hz ...")
        write_start = time.perf_counter()
        bag = write_arm_log(
            root / "log",
            episodes=episodes,
            seconds=seconds,
            joint_hz=JOINT_HZ,
            camera_hz=CAMERA_HZ,
            command_hz=COMMAND_HZ,
            image_size=(height, width),
        )
        write_s = time.perf_counter() - write_start
        log_mb = size_mb(bag)
        print(f"converting {log_mb:.0f} MB ...", flush=True)
        r = convert(bag, profile_file, root / "arm.zarr")
        r.update(
            log_mb=log_mb,
            store_mb=size_mb(root / "arm.zarr"),
            write_log_s=write_s,
            episodes_per_s=r["episodes"] / r["seconds"],
            steps_per_s=r["steps"] / r["seconds"],
            camera_frames_per_s=r["camera_frames"] / r["seconds"],
            messages_per_s=(r["camera_frames"] + r["joint_states"] + r["commands"]) / r["seconds"],
            input_mb_per_s=log_mb / r["seconds"],
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\n{episodes} episodes x {seconds:g} s: JointState {JOINT_HZ:g} Hz, camera {height}x{width} bgr8 "
        f"{CAMERA_HZ:g} Hz (stored {feature}x{feature}), commands {COMMAND_HZ:g} Hz\n"
    )
    print(
        "| episodes | steps | camera frames | log MB | seconds | episodes/s | steps/s | camera frames/s "
        "| messages/s | input MB/s | CPU % |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {r['episodes']} | {r['steps']} | {r['camera_frames']} | {r['log_mb']:.0f} | {r['seconds']:.2f} "
        f"| {r['episodes_per_s']:.2f} | {r['steps_per_s']:.0f} | {r['camera_frames_per_s']:.0f} "
        f"| {r['messages_per_s']:.0f} | {r['input_mb_per_s']:.0f} | {r['cpu_percent']:.0f} |"
    )
    result = {
        "date": started.isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "settings": {
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "tiny": args.tiny,
            "episodes": episodes,
            "episode_seconds": seconds,
            "camera": {"height": height, "width": width, "encoding": "bgr8", "rate_hz": CAMERA_HZ},
            "joint_states_hz": JOINT_HZ,
            "commands_hz": COMMAND_HZ,
            "stored_image": [feature, feature],
            "log_in_page_cache": True,
            "note": "the fixture's frames are flat colour: store_mb (compressed) is not what real frames take",
        },
        "results": r,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
