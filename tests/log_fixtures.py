"""A robot log written with ``rosbags`` alone (no robo_q code): the two-joint arm of tests/ros_arm.py
teleoperated towards a goal, with JointState, a camera and JointTrajectory commands at their own rates.

    write_arm_log(path, episodes=3)   # -> the rosbag2 directory

Joint states at ``joint_hz`` (header stamps, joints in shuffled order plus an extra finger
joint), ``bgr8`` frames at ``camera_hz``, one-point JointTrajectory commands at ``command_hz``
(header stamp zero, as most teleop tools send), episode starts on ``/teleop/episode`` (Int64) and
ends on ``/teleop/done`` (Bool: success; every ``fail_every``-th episode fails).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

JOINTS = ("arm_shoulder_joint", "arm_elbow_joint")
PUBLISHED = ("arm_elbow_joint", "gripper_finger_joint", "arm_shoulder_joint")
GOAL = np.array([0.3, 0.9])
STEP = 0.08  # rad per command the operator moves each joint
START_NS = 1_700_000_000 * 10**9
PROFILE = {
    "name": "two_joint_arm",
    "rate": 10.0,
    "max_age": 0.5,
    "observation": {
        "state": [
            {
                "topic": "/arm/joint_states",
                "type": "sensor_msgs/msg/JointState",
                "joints": list(JOINTS),
                "fields": ["position", "velocity"],
            }
        ],
        "images.wrist": [{"topic": "/arm/wrist/image_raw", "type": "sensor_msgs/msg/Image"}],
    },
    "command": {
        "topic": "/arm_controller/joint_trajectory",
        "type": "trajectory_msgs/msg/JointTrajectory",
        "joints": ["arm_elbow_joint", "arm_shoulder_joint"],
        "action_names": ["elbow", "shoulder"],
        "feedback": {"topic": "/arm/joint_states", "type": "sensor_msgs/msg/JointState"},
    },
    "features": {
        "state": {"units": ["rad", "rad", "rad/s", "rad/s"]},
        "images.wrist": {"height": 48, "width": 48},
        "action": {
            "names": ["shoulder", "elbow"],
            "low": [-1.5, -2.0],
            "high": [1.5, 2.0],
            "units": "rad",
            "mode": "position",
        },
    },
}


def write_arm_log(
    path: Path,
    episodes: int = 3,
    seconds: float = 3.0,
    *,
    joint_hz: float = 100.0,
    camera_hz: float = 15.0,
    command_hz: float = 10.0,
    image_size: tuple[int, int] = (48, 64),
    fail_every: int = 0,
    seed: int = 0,
) -> Path:
    """Write the log; returns ``path`` (a rosbag2 directory)."""
    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    rng = np.random.default_rng(seed)
    h, w = image_size
    events: list[tuple[int, str, object]] = []  # (ns, topic, message)

    def stamp(ns: int):
        return T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)

    def header(ns: int, frame: str = ""):
        return T["std_msgs/msg/Header"](stamp=stamp(ns), frame_id=frame)

    t0 = START_NS
    for episode in range(episodes):
        q = rng.uniform(-0.8, 0.8, 2)
        failing = fail_every and episode % fail_every == fail_every - 1
        goal = -GOAL if failing else GOAL
        target = q.copy()
        events.append((t0, "/teleop/episode", T["std_msgs/msg/Int64"](data=episode)))
        n_joint, n_cam, n_cmd = (int(seconds * hz) for hz in (joint_hz, camera_hz, command_hz))
        times = sorted(
            [(t0 + int(1e9 * (i + 0.3) / joint_hz), "joint") for i in range(n_joint)]
            + [(t0 + int(1e9 * (i + 0.5) / camera_hz), "camera") for i in range(n_cam)]
            + [(t0 + int(1e9 * (i + 0.9) / command_hz), "command") for i in range(n_cmd)]
        )
        for ns, kind in times:
            q = q + np.clip(target - q, -0.05, 0.05)  # the controller tracks its target
            if kind == "joint":
                by_name = {"arm_shoulder_joint": q[0], "arm_elbow_joint": q[1], "gripper_finger_joint": 0.01}
                msg = T["sensor_msgs/msg/JointState"](
                    header=header(ns),
                    name=list(PUBLISHED),
                    position=np.array([by_name[n] for n in PUBLISHED]),
                    velocity=np.zeros(3),
                    effort=np.zeros(3),
                )
                events.append((ns, "/arm/joint_states", msg))
            elif kind == "camera":
                pixels = np.zeros((h, w, 3), np.uint8)
                pixels[..., 0] = int(127 + 80 * q[0])  # blue-green-red: the joints tint the frame
                pixels[..., 2] = int(127 + 60 * q[1])
                msg = T["sensor_msgs/msg/Image"](
                    header=header(ns, "wrist"),
                    height=h,
                    width=w,
                    encoding="bgr8",
                    is_bigendian=0,
                    step=w * 3,
                    data=pixels.reshape(-1),
                )
                events.append((ns, "/arm/wrist/image_raw", msg))
            else:
                target = q + np.clip(goal - q, -STEP, STEP)
                point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
                    positions=np.array([target[1], target[0]]),  # the controller's order: elbow, shoulder
                    velocities=np.zeros(0),
                    accelerations=np.zeros(0),
                    effort=np.zeros(0),
                    time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=200_000_000),
                )
                msg = T["trajectory_msgs/msg/JointTrajectory"](
                    header=header(0), joint_names=["arm_elbow_joint", "arm_shoulder_joint"], points=[point]
                )
                events.append((ns, "/arm_controller/joint_trajectory", msg))
        t_end = t0 + int(seconds * 1e9)
        success = bool(np.abs(GOAL - q).max() < 0.05) and not failing
        events.append((t_end, "/teleop/done", T["std_msgs/msg/Bool"](data=success)))
        t0 = t_end + 500_000_000  # half a second between episodes
    types = {
        "/arm/joint_states": "sensor_msgs/msg/JointState",
        "/arm/wrist/image_raw": "sensor_msgs/msg/Image",
        "/arm_controller/joint_trajectory": "trajectory_msgs/msg/JointTrajectory",
        "/teleop/episode": "std_msgs/msg/Int64",
        "/teleop/done": "std_msgs/msg/Bool",
    }
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {topic: writer.add_connection(topic, kind, typestore=ts) for topic, kind in types.items()}
        for ns, topic, msg in sorted(events, key=lambda e: e[0]):
            writer.write(connections[topic], ns, ts.serialize_cdr(msg, types[topic]))
    return path


def rewrite_log(src: Path, dst: Path, change: Callable[[str, int, Any], tuple[int, Any] | None]) -> Path:
    """Copy a log with every message through ``change(topic, log_ns, msg)`` -> ``(log_ns, msg)``, or
    None to drop it; written in the new log-time order."""
    ts = get_typestore(Stores.ROS2_KILTED)
    rows = []
    with AnyReader([src], default_typestore=ts) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for connection, stamp, raw in reader.messages():
            changed = change(connection.topic, stamp, reader.deserialize(raw, connection.msgtype))
            if changed is not None:
                rows.append((changed[0], connection.topic, changed[1]))
    with Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {topic: writer.add_connection(topic, kind, typestore=ts) for topic, kind in types.items()}
        for stamp, topic, msg in sorted(rows, key=lambda r: r[0]):
            writer.write(connections[topic], stamp, ts.serialize_cdr(msg, types[topic]))
    return dst
