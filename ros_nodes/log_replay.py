"""Offline replay of an MCAP log through a bundle: how would the policy have commanded?

Reads a rosbag2 log (ours, or any tool's with standard messages) with ``rosbags``; feeds each
observation (``std_msgs/Float64MultiArray``, or the positions then velocities of a
``sensor_msgs/JointState``) through the bundle's runtime in log order, resetting at episode
starts, and compares the policy's command with the next logged command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from policies import load_policy
from ros_nodes import interfaces as io
from ros_nodes.runner import stop_requested


def _vector(msg: Any) -> np.ndarray:
    if hasattr(msg, "position") and hasattr(msg, "velocity"):
        return np.concatenate([np.asarray(msg.position, np.float64), np.asarray(msg.velocity, np.float64)])
    return np.asarray(msg.data, np.float64)


def replay_log(
    path: str | Path,
    bundle: str | Path,
    *,
    backend: str = "onnx",
    observation_topic: str = io.STATE_OBSERVATION,
    command_topic: str = io.COMMANDS,
    episode_topic: str = io.EPISODE_START,
) -> dict[str, Any]:
    path = Path(path)
    bag = path / "log" if (path / "log").is_dir() else path
    if not bag.exists():
        raise FileNotFoundError(f"{path}: no rosbag2 log here")
    policy = load_policy(bundle, backend)
    policy.reset()
    key = next(iter(policy.observation_spec))
    diffs: list[np.ndarray] = []
    pending: np.ndarray | None = None
    episodes = 0
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        topics = {c.topic for c in reader.connections}
        missing = {observation_topic, command_topic} - topics
        if missing:
            raise ValueError(f"{bag} has no {sorted(missing)} (topics: {sorted(topics)})")
        wanted = [c for c in reader.connections if c.topic in (observation_topic, command_topic, episode_topic)]
        for connection, _, raw in reader.messages(connections=wanted):
            msg: Any = reader.deserialize(raw, connection.msgtype)  # rosbags types it as object
            if connection.topic == episode_topic:
                policy.reset()
                pending, episodes = None, episodes + 1
            elif connection.topic == observation_topic:
                pending = policy.to_native(policy.act({key: _vector(msg)}))
            elif pending is not None:
                logged = np.asarray(msg.data, np.float64)
                if logged.shape == pending.shape:
                    diffs.append(np.abs(logged - pending))
                pending = None
    if not diffs:
        raise ValueError(f"{bag}: no observation followed by a command to compare")
    table = np.array(diffs)
    span = np.asarray(policy.spec["action"]["high"]) - np.asarray(policy.spec["action"]["low"])
    return {
        "log": str(bag),
        "bundle": str(bundle),
        "compared_steps": len(table),
        "episodes": episodes,
        "mean_abs_difference": float(table.mean()),
        "max_abs_difference": float(table.max()),
        "agreement_rate": float(np.mean(np.all(table <= 0.01 * span, axis=1))),
    }


def replay_commands(
    path: str | Path, *, command_topic: str = io.COMMANDS, episode_topic: str = io.EPISODE_START, timeout: float = 120.0
) -> dict[str, Any]:
    """Send a log's commands into a running `roboq sim-bridge`, episode by episode: reset to each
    logged episode's seed, then one logged command per new observation (lockstep pacing).
    Returns the bridge's episode results for the replayed episodes."""
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float64MultiArray, Int64

    path = Path(path)
    bag = path / "log" if (path / "log").is_dir() else path
    episodes: list[tuple[int, list[np.ndarray]]] = []
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        wanted = [c for c in reader.connections if c.topic in (command_topic, episode_topic)]
        for connection, _, raw in reader.messages(connections=wanted):
            msg: Any = reader.deserialize(raw, connection.msgtype)  # rosbags types it as object
            if connection.topic == episode_topic:
                episodes.append((int(msg.data), []))
            elif episodes:
                episodes[-1][1].append(np.asarray(msg.data, np.float64))
    episodes = [(seed, commands) for seed, commands in episodes if commands]
    if not episodes:
        raise ValueError(f"{bag}: no episode with commands on {command_topic} after {episode_topic}")
    node = rclpy.create_node("robo_q_log_player")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    command_pub = node.create_publisher(Float64MultiArray, command_topic, io.COMMAND_QOS)
    reset_pub = node.create_publisher(Int64, io.RESET, io.EVENT_QOS)
    observations, results = [0], []
    node.create_subscription(
        Float64MultiArray,
        io.STATE_OBSERVATION,
        lambda _: observations.__setitem__(0, observations[0] + 1),
        io.COMMAND_QOS,
    )
    node.create_subscription(
        Float64MultiArray, io.EPISODE_RESULT, lambda m: results.append([float(x) for x in m.data]), io.EVENT_QOS
    )

    def wait(condition) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if stop_requested():
                raise KeyboardInterrupt
            if time.monotonic() > end:
                raise TimeoutError("no answer from the sim bridge (is `roboq sim-bridge mode=lockstep` running?)")
            executor.spin_once(timeout_sec=0.01)

    try:
        wait(lambda: node.count_subscribers(command_topic) > 0 and node.count_subscribers(io.RESET) > 0)
        for seed, commands in episodes:
            seen = observations[0]
            reset_pub.publish(Int64(data=seed))
            wait(lambda s=seen: observations[0] > s)
            for command in commands:
                seen = observations[0]
                command_pub.publish(io.float_array(command))
                wait(lambda s=seen: observations[0] > s)
            wait(lambda s=seed: any(int(r[0]) == s for r in results))
    finally:
        executor.shutdown()
        node.destroy_node()
    replayed = [
        {"seed": int(r[0]), "success": bool(r[1]), "length": int(r[2])}
        for r in results
        if int(r[0]) in {s for s, _ in episodes}
    ]
    return {"log": str(bag), "episodes": replayed, "commands_sent": sum(len(c) for _, c in episodes)}
