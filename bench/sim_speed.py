"""Simulator throughput: env steps/s per adapter (state and pixels) and demo-collection episodes/s.

python bench/sim_speed.py [--steps 2000] [--out bench/results/sim_speed.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from dm_control import suite

from robo_q.data.collect import collect_demos, store_for_env
from sim import make_env  # first: sets MUJOCO_GL=egl before MuJoCo or dm_control load
from sim.experts import make_expert

CARTPOLE_XML = str(Path(suite.__file__).parent / "cartpole.xml")
STEP_CASES = [
    ("metaworld/drawer-open", {}),
    ("metaworld/pick-place", {}),
    ("dmc/reacher-hard", {}),
    ("dmc/cartpole-swingup", {}),
    (f"mjcf/{CARTPOLE_XML}", {}),
    ("metaworld/drawer-open", {"cameras": ["corner2"], "image_size": 84}),
    ("dmc/reacher-hard", {"cameras": [0], "image_size": 84}),
]
COLLECT_CASES = [
    ("metaworld/drawer-open", 10),
    ("metaworld/pick-place", 10),
    ("dmc/reacher-hard", 3),
    ("dmc/cartpole-swingup", 3),
]


def env_steps_per_second(task: str, settings: dict, steps: int) -> dict:
    rng = np.random.default_rng(0)
    with make_env(task, **settings) as env:
        env.reset(seed=0)
        actions = rng.uniform(-1, 1, (steps, env.action_dim))
        done, start = 0, time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            done += 1
            if terminated or truncated:
                env.reset()
        seconds = time.perf_counter() - start
        realtime = done * env.control_dt / seconds
    return {
        "task": task,
        "settings": settings,
        "steps": done,
        "steps_per_s": done / seconds,
        "sim_seconds_per_wall_second": realtime,
    }


def collection_rate(task: str, episodes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, make_env(task) as env:
        store = store_for_env(env, Path(tmp) / "demos.zarr", source="expert")
        report = collect_demos(env, make_expert(env), store, episodes=episodes, progress=False)
    return {
        "task": task,
        **report.to_dict(),
        "episodes_per_s": report.attempts / report.seconds,
        "steps_per_s": report.steps / report.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="env steps per adapter (pixel cases use a quarter)")
    parser.add_argument("--out", default="bench/results/sim_speed.json")
    args = parser.parse_args()
    results = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}",
        "env_steps": [],
        "collection": [],
    }
    print(f"{'adapter':<44} {'obs':<14} {'steps/s':>9} {'x realtime':>11}")
    for task, settings in STEP_CASES:
        r = env_steps_per_second(task, settings, args.steps // 4 if settings.get("cameras") else args.steps)
        results["env_steps"].append(r)
        name = task if not task.startswith("mjcf/") else "mjcf/<dm_control>/cartpole.xml"
        obs = f"pixels {settings['image_size']}px" if settings.get("cameras") else "state"
        print(f"{name:<44} {obs:<14} {r['steps_per_s']:9.0f} {r['sim_seconds_per_wall_second']:11.1f}")
    print(f"\n{'demo collection':<44} {'episodes/s':>10} {'steps/s':>9} {'expert success':>15}")
    for task, episodes in COLLECT_CASES:
        r = collection_rate(task, episodes)
        results["collection"].append(r)
        print(f"{task:<44} {r['episodes_per_s']:10.2f} {r['steps_per_s']:9.0f} {r['expert_success_rate']:15.0%}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
