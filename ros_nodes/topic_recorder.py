"""Recording a ROS 2 session: a rosbag2 MCAP log of raw messages and, optionally, zarr episodes.

The MCAP log (``<out>/log``, written with ``rosbags``) stores each subscribed topic's serialized
bytes as received. With a ``task``, the session's observations and commands also become episodes
in the project's store format (``<out>/episodes.zarr``, source ``ros``): row t pairs observation
o_t with the last command before o_{t+1}; episodes are cut at ``/sim/episode`` and
``/sim/episode_result``, which carries the final observation (what `roboq sim-bridge` publishes).
ROS recordings carry no simulator state, so their ``sim_state`` is empty.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, Int64

from robo_q.data import EpisodeStore
from ros_nodes import interfaces as io
from sim import make_env

RECORD_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)  # a recorder drops nothing

DEFAULT_TOPICS = {
    io.JOINT_STATES: JointState,
    io.STATE_OBSERVATION: Float64MultiArray,
    io.COMMANDS: Float64MultiArray,
    io.EPISODE_START: Int64,
    io.EPISODE_RESULT: Float64MultiArray,
    io.SUCCESS: Bool,
}


def ros_type_name(msg_cls) -> str:
    """``sensor_msgs.msg.JointState`` -> ``sensor_msgs/msg/JointState``."""
    return f"{msg_cls.__module__.split('.')[0]}/msg/{msg_cls.__name__}"


class TopicRecorder(Node):
    def __init__(self, out: Path, topics: list[str], task: str | None = None, env_settings: dict | None = None) -> None:
        super().__init__("robo_q_recorder")
        unknown = [t for t in topics if t not in DEFAULT_TOPICS]
        if unknown:
            raise ValueError(f"cannot record {unknown}: recordable topics are {sorted(DEFAULT_TOPICS)}")
        out.mkdir(parents=True, exist_ok=True)
        self.writer = Writer(out / "log", version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        typestore = get_typestore(Stores.ROS2_KILTED)
        self.counts = dict.fromkeys(topics, 0)
        for topic in topics:
            connection = self.writer.add_connection(topic, ros_type_name(DEFAULT_TOPICS[topic]), typestore=typestore)
            qos = io.LATCHED_QOS if topic == io.EPISODE_START else RECORD_QOS  # the first start is latched
            self.create_subscription(DEFAULT_TOPICS[topic], topic, self._raw_writer(topic, connection), qos, raw=True)
        self._seed: int | None = None
        self._rows: list[tuple[np.ndarray, np.ndarray, bool]] = []
        self._obs: np.ndarray | None = None
        self._command: np.ndarray | None = None
        self._result: np.ndarray | None = None
        self._success = self._answered = False
        self.episodes = 0
        self.store: EpisodeStore | None = None
        if task:
            with make_env(task, **(env_settings or {})) as env:
                self.action_spec = env.action_spec
                self.store = EpisodeStore.create(
                    out / "episodes.zarr",
                    task=env.task,
                    features=env.features.select(["state"]),
                    state_dim=0,
                    env_config={**env.config, "cameras": []},
                    simulator=env.simulator,
                    source="ros",
                )
            # Messages that arrive together are handled in subscription order: an episode's result
            # before the next episode's start (which the bridge sends only once the result is
            # acknowledged), the start before that episode's first observation.
            self.create_subscription(Float64MultiArray, io.EPISODE_RESULT, self._on_result, RECORD_QOS)
            self.create_subscription(Int64, io.EPISODE_START, self._on_start, io.LATCHED_QOS)
            self.create_subscription(Float64MultiArray, io.STATE_OBSERVATION, self._on_observation, RECORD_QOS)
            self.create_subscription(Float64MultiArray, io.COMMANDS, self._on_command, RECORD_QOS)
            self.create_subscription(
                Bool, io.SUCCESS, lambda m: setattr(self, "_success", self._success or m.data), RECORD_QOS
            )

    def _raw_writer(self, topic: str, connection):
        def write(raw: bytes, info: MessageInfo) -> None:
            # Logged at publication time: the log then holds the messages in the order they were
            # sent, whatever order they were received in (receive time when the RMW has none).
            self.writer.write(connection, info["source_timestamp"] or self.get_clock().now().nanoseconds, raw)
            self.counts[topic] += 1

        return write

    def _on_start(self, msg: Int64) -> None:
        if self._result is not None:  # the previous episode's stragglers had their time
            self._finish(force=True)
        # The episode's first observation (and its command) may arrive before this message:
        # topics are not ordered against each other, so they are kept.
        self._seed, self._rows, self._success, self._result = msg.data, [], False, None

    def _on_command(self, msg: Float64MultiArray) -> None:
        native = np.asarray(msg.data)
        if native.shape == (self.action_spec.dim,) and np.all(np.isfinite(native)):
            self._command = self.action_spec.from_native(native)
            self._answered = True
            self._finish()

    def _on_observation(self, msg: Float64MultiArray) -> None:
        if self._seed is not None and self._obs is not None and self._command is not None:
            self._rows.append((self._obs, self._command, bool(self._success)))
            self._success = False
        self._obs, self._answered = np.asarray(msg.data), False
        self._finish()

    def _on_result(self, msg: Float64MultiArray) -> None:
        if self._seed is not None and int(msg.data[0]) == self._seed:
            self._result = np.asarray(msg.data)
            self._finish()

    def _finish(self, force: bool = False) -> None:
        """Store the episode once its result and all ``length`` steps have arrived, in any order."""
        result = self._result
        if result is None or (not force and (len(self._rows) + 1 < int(result[2]) or not self._answered)):
            return
        assert self.store is not None and self._seed is not None and self._obs is not None and self._command is not None
        self._rows.append((self._obs, self._command, self._success))  # the last step: its outcome is the result
        observations, actions, successes = (np.array(x) for x in zip(*self._rows, strict=True))
        successes[-1] |= bool(result[1])  # a sparse-reward success is what ended the episode
        terminated = np.zeros(len(actions), bool)
        terminated[-1] = bool(result[1])
        steps = {
            "observation.state": observations,
            "action": actions,
            "reward": successes.astype(np.float32),
            "success": successes,
            "terminated": terminated,
            "sim_state": np.zeros((len(actions), 0)),
        }
        self.store.append_episode(steps, {"state": result[4:]}, seed=self._seed)
        self.episodes += 1
        self._seed, self._obs, self._command, self._result = None, None, None, None

    def close(self) -> None:
        if self._result is not None:  # an episode whose steps did not all arrive: say so, never store it half
            self.get_logger().warning(
                f"episode seed {self._seed} not stored: {len(self._rows) + 1} of {int(self._result[2])} steps arrived"
            )
        self.writer.close()
