"""Replaying a logged session: through a bundle offline, or its commands into a sim bridge.

``replay_log`` reads the log exactly as `roboq logs convert` does (:mod:`ros_nodes.log_episodes`:
the robot profile's topics through the observation assembler, steps placed by message time,
commands paired by time) and compares the bundle's greedy action at every step with the logged one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from policies import load_policy
from robo_q.data.dataset_import import DatasetError
from robo_q.evaluate import action_grid, compare_actions, summarize_comparison
from ros_nodes import interfaces as io
from ros_nodes import messages as msgs
from ros_nodes.log_episodes import LogEpisodes, log_directory
from ros_nodes.profile import RobotProfile
from ros_nodes.runner import stop_requested


def replay_log(
    path: str | Path,
    bundle: str | Path,
    profile: RobotProfile,
    *,
    backend: str = "onnx",
    steps: str = "grid",
    episode_start: str | None = None,
    episode_end: str | None = None,
) -> dict[str, Any]:
    """Per episode of the log: the bundle's actions against the logged ones (``compare_actions``)."""
    policy = load_policy(bundle, backend)
    features = policy.features
    grid = action_grid(policy.spec["provenance"].get("agent_settings", {}))
    log = LogEpisodes(path, profile, features, steps=steps, episode_start=episode_start, episode_end=episode_end)
    per_episode = []
    for index, episode in enumerate(log.episodes()):
        observations = {k: episode.steps[f"observation.{k}"] for k in features.keys}
        compared = compare_actions(policy, features.action, observations, episode.steps["action"], grid)
        per_episode.append({"episode": index, "seed": episode.seed, **compared})
    if not per_episode:
        raise DatasetError(f"{log.bag}: no episode to compare")
    return {
        "log": str(log.bag),
        "bundle": str(bundle),
        "robot": profile.name,
        "steps": steps,
        "compared_steps": sum(e["length"] for e in per_episode),
        "dropped_steps": sum(w.dropped for w in log.windows),
        "rejected_messages": log.rejected,
        **summarize_comparison(per_episode, features),
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

    bag = log_directory(path)
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
