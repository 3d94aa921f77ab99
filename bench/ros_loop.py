"""ROS 2 control loop across processes: achieved rate, loop period p50/p99 and observation-to-
command latency p50/p99 of the policy node: a state bundle at 50 / 100 / 200 Hz and a pixel bundle
(state + one 84x84 camera as sensor_msgs/Image) at 30 Hz.

    python bench/ros_loop.py [--seconds 5] [--bundle DIR] [--out bench/results/ros_loop.json]

This process is the robot: it publishes observations at the rate under test and receives the
commands of a `roboq deploy` policy node running in another process (loopback, its own ROS
domain). Rate and period: the node acting on its timer (``trigger=timer``). Latency: the node
acting on each observation (``trigger=observation``), from publishing an observation to receiving
the command computed from it. Without ``--bundle`` small cqn_as bundles (untrained: latency does
not depend on the weights) are exported first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray

from ros_nodes import interfaces as io
from ros_nodes import messages as msgs

CASES = (("state", 50), ("state", 100), ("state", 200), ("pixels", 30))  # (bundle, Hz)
IMAGE = (84, 84)


def small_bundle(directory: Path, pixels: bool) -> Path:
    """An untrained small cqn_as bundle: 39-D state, and one 84x84 camera ``cam`` if ``pixels``."""
    sys.path.insert(0, str(Path(__file__).parent))
    from policy_latency import synthetic_features, synthetic_meta

    from robo_q.agents import make_agent
    from robo_q.export import export_agent

    features = synthetic_features(IMAGE if pixels else None)
    settings = {"seq_len": 4, "gru": True, "hidden": 128, "frame_stack": 3 if pixels else 1}
    out = directory / ("pixels" if pixels else "state")
    export_agent(make_agent("cqn_as", settings, features, "cpu"), synthetic_meta("cqn_as", settings, features), out)
    return out


def run_phase(
    bundle: Path, rate: int, trigger: str, seconds: float, domain: int, params: Path, pixels: bool
) -> tuple[list[float], list[float]]:
    """(command arrival times, observation->command latencies) for one node configuration."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    node_proc = subprocess.Popen(
        [sys.executable, "-m", "robo_q.cli", "deploy", f"bundle={bundle}", f"params={params}", f"trigger={trigger}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("bench_robot", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    sent: list[float] = []
    arrivals: list[float] = []
    latencies: list[float] = []
    pub = node.create_publisher(Float64MultiArray, io.STATE_OBSERVATION, io.COMMAND_QOS)
    camera = node.create_publisher(Image, io.CAMERA.format("cam"), io.COMMAND_QOS) if pixels else None
    frame = msgs.image_message(np.random.default_rng(0).integers(0, 255, (*IMAGE, 3), dtype=np.uint8))

    def publish() -> None:
        if camera is not None:
            camera.publish(frame)
        sent.append(time.perf_counter())
        pub.publish(obs)

    def on_command(_msg) -> None:
        now = time.perf_counter()
        arrivals.append(now)
        if trigger == "observation" and sent:
            latencies.append(now - sent[-1])

    node.create_subscription(Float64MultiArray, io.COMMANDS, on_command, io.COMMAND_QOS)
    obs = msgs.float_array(np.zeros(39))
    node.create_timer(1.0 / rate, publish)
    try:
        deadline = time.monotonic() + 60
        while len(arrivals) < 20 and time.monotonic() < deadline:  # discovery + warm-up
            executor.spin_once(timeout_sec=0.01)
        arrivals.clear()
        latencies.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.005)
    finally:
        node_proc.send_signal(signal.SIGINT)
        node_proc.wait(timeout=30)
        node.destroy_node()
        rclpy.shutdown(context=context)
    return arrivals, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--out", default="bench/results/ros_loop.json")
    args = parser.parse_args()
    results = []
    cases = [(b, r) for b, r in CASES if b == "state"] if args.bundle else list(CASES)
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {
            kind: Path(args.bundle) if args.bundle else small_bundle(Path(tmp), kind == "pixels")
            for kind in {b for b, _ in cases}
        }
        print(
            f"{'bundle':<7} {'rate Hz':>7} {'achieved Hz':>11} {'period p50 ms':>13} {'period p99 ms':>13} "
            f"{'latency p50 ms':>14} {'latency p99 ms':>14}"
        )
        for i, (kind, rate) in enumerate(cases):
            params = Path(tmp) / f"params_{rate}.yaml"
            params.write_text(
                f"robo_q_policy:\n  ros__parameters:\n    rate: {float(rate)}\n"
                "    stale_timeout: 1.0\n    max_stale_ticks: 1000\n"
            )
            domain = 150 + 2 * i + os.getpid() % 20 * 6
            pixels = kind == "pixels"
            arrivals, _ = run_phase(bundles[kind], rate, "timer", args.seconds, domain, params, pixels)
            _, latencies = run_phase(bundles[kind], rate, "observation", args.seconds, domain + 1, params, pixels)
            periods = np.diff(arrivals) * 1e3
            lat = np.array(latencies) * 1e3
            r = {
                "bundle": kind,
                "rate_hz": rate,
                "achieved_hz": (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]),
                "period_p50_ms": float(np.percentile(periods, 50)),
                "period_p99_ms": float(np.percentile(periods, 99)),
                "latency_p50_ms": float(np.percentile(lat, 50)),
                "latency_p99_ms": float(np.percentile(lat, 99)),
                "commands": len(arrivals),
            }
            results.append(r)
            print(
                f"{kind:<7} {rate:7d} {r['achieved_hz']:11.1f} {r['period_p50_ms']:13.2f} {r['period_p99_ms']:13.2f} "
                f"{r['latency_p50_ms']:14.2f} {r['latency_p99_ms']:14.2f}",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "bundle": "small cqn_as (untrained; pixels: + one 84x84 camera, frame stack 3)"
                if not args.bundle
                else str(args.bundle),
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
