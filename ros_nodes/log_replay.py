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


def _vector(msg) -> np.ndarray:
    if hasattr(msg, "position") and hasattr(msg, "velocity"):
        return np.concatenate([np.asarray(msg.position, np.float64), np.asarray(msg.velocity, np.float64)])
    return np.asarray(msg.data, np.float64)


def replay_log(path: str | Path, bundle: str | Path, *, backend: str = "onnx", observation_topic: str = io.STATE_OBSERVATION, command_topic: str = io.COMMANDS, episode_topic: str = io.EPISODE_START) -> dict[str, Any]:
    path = Path(path)
    bag = path / "log" if (path / "log").is_dir() else path
    if not bag.exists():
        raise FileNotFoundError(f"{path}: no rosbag2 log here")
    policy = load_policy(bundle, backend)
    policy.reset()
    key = next(iter(policy.observation_spec))
    diffs, pending, episodes = [], None, 0
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        topics = {c.topic for c in reader.connections}
        missing = {observation_topic, command_topic} - topics
        if missing:
            raise ValueError(f"{bag} has no {sorted(missing)} (topics: {sorted(topics)})")
        wanted = [c for c in reader.connections if c.topic in (observation_topic, command_topic, episode_topic)]
        for connection, _, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, connection.msgtype)
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
    diffs = np.array(diffs)
    span = np.asarray(policy.spec["action"]["high"]) - np.asarray(policy.spec["action"]["low"])
    return {
        "log": str(bag),
        "bundle": str(bundle),
        "compared_steps": len(diffs),
        "episodes": episodes,
        "mean_abs_difference": float(diffs.mean()),
        "max_abs_difference": float(diffs.max()),
        "agreement_rate": float(np.mean(np.all(diffs <= 0.01 * span, axis=1))),
    }
