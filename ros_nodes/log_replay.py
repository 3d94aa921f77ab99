"""Offline replay of an MCAP log through a bundle: how would the policy have commanded?

Reads a rosbag2 log (ours, or any tool's with standard messages) with ``rosbags``. A robot
profile says which logged topics fill the bundle's features and where the commands are; the
messages go through the same observation assembler as on the robot, in log order with log time,
resetting at episode starts. Each complete new observation is acted on and the policy's command
compared with the next logged command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from policies import ObservationError, load_policy
from ros_nodes import interfaces as io
from ros_nodes import messages as msgs
from ros_nodes.assembler import ObservationAssembler
from ros_nodes.profile import RobotProfile
from ros_nodes.runner import stop_requested


def _bag(path: str | Path) -> Path:
    path = Path(path)
    bag = path / "log" if (path / "log").is_dir() else path
    if not bag.exists():
        raise FileNotFoundError(f"{path}: no rosbag2 log here")
    return bag


def replay_log(
    path: str | Path,
    bundle: str | Path,
    profile: RobotProfile,
    *,
    backend: str = "onnx",
    episode_topic: str = io.EPISODE_START,
) -> dict[str, Any]:
    bag = _bag(path)
    policy = load_policy(bundle, backend)
    command = profile.bind(policy.features, policy.control_dt)
    assembler = ObservationAssembler(profile, policy.features)
    policy.reset()
    diffs: list[np.ndarray] = []
    pending: np.ndarray | None = None
    episodes = rejected = 0
    acted_at = float("-inf")
    command_topic = profile.command.topic
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        topics = {c.topic for c in reader.connections}
        missing = sorted({command_topic, *assembler.topics()} - topics)
        if missing:
            raise ValueError(f"{bag} has no {missing} (topics: {sorted(topics)})")
        wanted = [c for c in reader.connections if c.topic in {command_topic, episode_topic, *assembler.topics()}]
        for connection, stamp, raw in reader.messages(connections=wanted):
            msg: Any = reader.deserialize(raw, connection.msgtype)  # rosbags types it as object
            now = stamp * 1e-9
            if connection.topic == episode_topic:
                policy.reset()
                assembler.reset()
                pending, episodes = None, episodes + 1
            elif connection.topic == command_topic:
                if pending is not None:
                    logged = command.read(msg)
                    if logged.shape == pending.shape:
                        diffs.append(np.abs(logged - pending))
                pending = None
            else:
                rejected += len(assembler.receive(connection.topic, msg, now))
                obs = assembler.observation(now) if assembler.updated_since(acted_at) else None
                if obs is not None:
                    acted_at = now
                    try:
                        pending = policy.to_native(policy.act(obs))
                    except ObservationError:
                        pending, rejected = None, rejected + 1
    if not diffs:
        raise ValueError(f"{bag}: no observation followed by a command to compare")
    table = np.array(diffs)
    span = policy.features.action.high_array - policy.features.action.low_array
    return {
        "log": str(bag),
        "bundle": str(bundle),
        "robot": profile.name,
        "compared_steps": len(table),
        "episodes": episodes,
        "rejected_messages": rejected,
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
    from rclpy.duration import Duration as RclDuration
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float64MultiArray, Int64

    bag = _bag(path)
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
            # Held by the bridge before the first command is sent: it then steps the new episode.
            if not reset_pub.wait_for_all_acked(RclDuration(seconds=timeout)):
                raise TimeoutError("the sim bridge did not acknowledge the reset")
            wait(lambda s=seen: observations[0] > s)
            for command in commands:
                seen = observations[0]
                command_pub.publish(msgs.float_array(command))
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
