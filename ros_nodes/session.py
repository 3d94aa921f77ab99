"""A closed-loop ROS 2 session on one machine: `roboq sim-bridge` + `roboq deploy` as processes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def _roboq(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "robo_q.cli", *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def run_closed_loop(
    bundle: str | Path, task: str, episodes: int, out_dir: Path, *, seed: int = 1_000_000, timeout: float = 600.0
) -> dict[str, Any]:
    """Run ``episodes`` lockstep episodes of ``task`` with the bundle's policy node over ROS 2
    (its own ROS domain, loopback only); returns the bridge's per-episode results."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ROS_DOMAIN_ID": str(random.randint(100, 200)), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    results = out_dir / "ros_results.json"
    policy = _roboq(["deploy", f"bundle={bundle}", "trigger=observation"], env, out_dir / "policy_node.log")
    bridge = _roboq(
        ["sim-bridge", f"task={task}", "mode=lockstep", f"episodes={episodes}", f"seed={seed}", f"results={results}"],
        env,
        out_dir / "sim_bridge.log",
    )
    try:
        bridge.wait(timeout=timeout)
    finally:
        for proc in (bridge, policy):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
    if bridge.returncode != 0 or not results.exists():
        raise RuntimeError(f"the ROS 2 session failed; see {out_dir}/sim_bridge.log and policy_node.log")
    return json.loads(results.read_text())
