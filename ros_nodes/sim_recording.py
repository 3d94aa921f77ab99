"""Zarr episodes while recording a `roboq sim-bridge` session (``roboq record task=...``).

The bridge's observations and commands, ordered by publication time, become episodes in the
project's store format (``<out>/episodes.zarr``, source ``ros``): each observation is paired with
the command that acted on it (:meth:`SimEpisodeRecorder._steps`); episodes are cut at
``/sim/episode`` and ``/sim/episode_result``, which carries the final observation. ROS recordings
carry no simulator state, so their ``sim_state`` is empty. The raw log is written as by any
:class:`~ros_nodes.topic_recorder.TopicRecorder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo
from std_msgs.msg import Bool, Float64MultiArray, Int64

from robo_q.data import EpisodeStore
from ros_nodes import interfaces as io
from ros_nodes.topic_recorder import TopicRecorder
from sim import make_env

RECORD_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)  # a recorder drops nothing

BRIDGE_TOPICS = {  # what `roboq sim-bridge` publishes, recorded by default
    io.JOINT_STATES: "sensor_msgs/msg/JointState",
    io.STATE_OBSERVATION: "std_msgs/msg/Float64MultiArray",
    io.COMMANDS: "std_msgs/msg/Float64MultiArray",
    io.EPISODE_START: "std_msgs/msg/Int64",
    io.EPISODE_RESULT: "std_msgs/msg/Float64MultiArray",
    io.SUCCESS: "std_msgs/msg/Bool",
}


class SimEpisodeRecorder(TopicRecorder):
    """A :class:`TopicRecorder` that also stores the bridge's episodes of ``task`` as they end."""

    def __init__(self, out: Path, topics: dict[str, str | None], task: str, env_settings: dict | None = None) -> None:
        qos = {t: io.LATCHED_QOS if t == io.EPISODE_START else RECORD_QOS for t in topics if topics[t]}
        super().__init__(out, topics, fixed_qos=qos)  # subscribed before the bridge starts its session
        # Every event (publication time ns, kind, value) since the last stored episode.
        self._events: list[tuple[int, str, Any]] = []
        self._results = 0  # episode results among them: only then can an episode be stored
        self._unfinished = ""
        self.stored = 0
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
        events = {
            io.EPISODE_RESULT: (Float64MultiArray, "result", RECORD_QOS),
            io.EPISODE_START: (Int64, "start", io.LATCHED_QOS),
            io.STATE_OBSERVATION: (Float64MultiArray, "obs", RECORD_QOS),
            io.COMMANDS: (Float64MultiArray, "cmd", RECORD_QOS),
            io.SUCCESS: (Bool, "success", RECORD_QOS),
        }
        for topic, (msg_type, kind, event_qos) in events.items():
            self.create_subscription(msg_type, topic, self._event_taker(kind), event_qos)

    @property
    def completed(self) -> int:
        """Episodes stored in the zarr store."""
        return self.stored

    def _event_taker(self, kind: str):
        def take(msg: Any, info: MessageInfo) -> None:
            value: Any = msg.data
            if kind in ("obs", "result"):
                value = np.asarray(value, np.float64)
            elif kind == "cmd":
                native = np.asarray(value, np.float64)
                if native.shape != (self.action_spec.dim,) or not np.all(np.isfinite(native)):
                    return
                value = self.action_spec.from_native(native)
            self._events.append((info["source_timestamp"] or self.get_clock().now().nanoseconds, kind, value))
            self._results += kind == "result"
            if self._results:  # no sorting or scanning on the hot path while an episode runs
                self._store_finished()

        return take

    def _store_finished(self) -> None:
        """Store every episode whose result and all ``length`` steps have arrived, in any order.

        Events are ordered by publication time, not arrival (topics are not ordered against each
        other), and cut into steps by :meth:`_steps`.
        """
        events = sorted(self._events, key=lambda e: e[0])
        for end, (t_end, kind, result) in enumerate(events):
            if kind != "result":
                continue
            length = int(result[2])
            starts = [i for i, (_, k, v) in enumerate(events[:end]) if k == "start" and v == int(result[0])]
            rows = self._steps(events[starts[-1] : end] if starts else [], length)
            later_result = any(k == "result" for _, k, _ in events[end + 1 :])
            if len(rows) < length and not later_result:  # its stragglers may still come
                self._unfinished = f"episode seed {int(result[0])} not stored: {len(rows)} of {length} steps arrived"
                return
            if len(rows) >= length:
                self._append(rows[:length], result)
            else:
                self.get_logger().warning(f"episode seed {int(result[0])} lost: {len(rows)} of {length} steps arrived")
            self._events = [e for e in self._events if e[0] > t_end]
            self._results = sum(k == "result" for _, k, _ in self._events)
            self._unfinished = ""
            return self._store_finished()

    @staticmethod
    def _steps(window: list[tuple[int, str, Any]], length: int) -> list[list[Any]]:
        """[observation, command, success] per step of one episode's events (in publication order).

        A re-sent observation (the bridge repeats the current one while no command comes) is the same
        step. With one command per step (lockstep: each command steps the robot, also when two answer
        the same observation) the i-th command acted on the i-th observation; otherwise a step's
        command is the first one sent after its observation. A success marks the step before it.
        """
        observations: list[np.ndarray] = []
        commands: list[tuple[int, np.ndarray]] = []  # (observations seen before it, command)
        successes: list[int] = []  # commands sent before each success
        for _, kind, value in window:
            if kind == "obs" and not (observations and np.array_equal(observations[-1], value)):
                observations.append(value)
            elif kind == "cmd":
                commands.append((len(observations), value))
            elif kind == "success" and value:
                successes.append(len(commands))
        if len(observations) == len(commands) == length:  # lockstep
            steps = [[o, c, False] for o, (_, c) in zip(observations, commands, strict=True)]
        else:
            steps, taken = [], set()
            for seen, command in commands:
                if seen and seen not in taken:
                    taken.add(seen)
                    steps.append([observations[seen - 1], command, False])
        for count in successes:  # the success published after the count-th command
            if 0 < count <= len(steps):
                steps[count - 1][2] = True
        return steps

    def _append(self, rows: list[list[Any]], result: np.ndarray) -> None:
        assert self.store is not None
        observations, actions, successes = (np.array(x) for x in zip(*rows, strict=True))
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
        self.store.append_episode(steps, {"state": result[4:]}, seed=int(result[0]))
        self.stored += 1

    def close(self) -> None:
        if self._unfinished:  # an episode whose steps did not all arrive: say so, never store it half
            self.get_logger().warning(self._unfinished)
        super().close()
