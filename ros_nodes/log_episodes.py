"""Episodes out of a rosbag2 MCAP log: the one path `roboq logs convert` and `roboq logs replay` share.

A robot profile says which logged topics fill each observation feature and where the commands
are; every message goes through the same :class:`~ros_nodes.assembler.ObservationAssembler` as
on the robot. Messages are placed in time by their header stamp when they carry a non-zero one,
else by their log time, and each topic's times must not go backwards.

Episodes: between the recorder's ``/robo_q/episode/start`` (Int64) and ``/robo_q/episode/end``
(Bool: success) events, or the topics named by ``episode_start`` (std_msgs Int64 or Empty) and
``episode_end`` (std_msgs Bool); with neither, a sim bridge log's ``/sim/episode`` starts them,
and a log without any boundary is one episode (outcome unknown: failed).

Steps (``steps=``):
- ``grid`` (default): resampled to the schema's control rate. The grid is anchored half a period
  before the episode's first command, so each command falls inside a step. Step ``k`` at ``t_k``
  observes the latest message of every topic at or before ``t_k``; its action is the latest command
  sent before ``t_k + dt`` (the one the controller held during the step).
- ``commands``: one step per command (lockstep logs): the observation before it, the command.

A step whose observation is stale or rejected (the assembler's ``max_age`` rules) or that has no
command younger than ``max_age`` is dropped: leading and trailing ones silently, others counted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from policies.features import FeatureSchema
from robo_q.data.dataset_import import DatasetError, ImportedEpisode
from ros_nodes import interfaces as io
from ros_nodes.assembler import ObservationAssembler
from ros_nodes.profile import BoundCommand, RobotProfile

STEP_MODES = ("grid", "commands")
START_TYPES = ("std_msgs/msg/Int64", "std_msgs/msg/Empty")
END_TYPES = ("std_msgs/msg/Bool",)
FINALIZE_LAG_NS = 1_000_000_000  # a message may be stamped up to 1 s before it was logged
OTHER_CLOCK_NS = 10_000_000_000  # a first header stamp this far from its log time is of another clock


def log_directory(path: str | Path) -> Path:
    """A session directory (``<path>/log``) or a rosbag2 directory / ``.mcap`` file."""
    path = Path(path)
    bag = path / "log" if (path / "log").is_dir() else path
    if not bag.exists():
        raise DatasetError(f"{path}: no rosbag2 log here")
    return bag


def header_stamp(msg: Any) -> int | None:
    """The message's header stamp (ns) when it has a non-zero one."""
    stamp = getattr(getattr(msg, "header", None), "stamp", None)
    if stamp is not None and (stamp.sec or stamp.nanosec):
        return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    return None


@dataclass
class Window:
    """One episode's time span in the log (ns) and what its boundary events said."""

    start: int
    end: int
    seed: int
    success: bool
    dropped: int = 0  # steps inside the episode dropped for a stale observation or command


@dataclass
class _Timeline:
    """Every converted value of one assembler slot, by time (None: the message was rejected)."""

    times: list[float] = field(default_factory=list)
    values: list[np.ndarray | None] = field(default_factory=list)

    def at(self, t: float) -> tuple[float, np.ndarray | None]:
        i = bisect.bisect_right(self.times, t) - 1
        return (self.times[i], self.values[i]) if i >= 0 else (float("-inf"), None)

    def forget_before(self, t: float) -> None:
        """Drop values older than the last one at or before ``t`` (still the latest at ``t``)."""
        keep = max(bisect.bisect_right(self.times, t) - 1, 0)
        del self.times[:keep], self.values[:keep]


class LogEpisodes:
    """A rosbag2 log as episodes of ``schema`` (default: the profile's ``features:``).

    Implements the dataset-reader protocol of :func:`robo_q.data.dataset_import.import_dataset`.
    """

    source = "ros"
    simulator = ""
    state_dim = 0

    def __init__(
        self,
        path: str | Path,
        profile: RobotProfile,
        schema: FeatureSchema | None = None,
        *,
        steps: str = "grid",
        episode_start: str | None = None,
        episode_end: str | None = None,
        skip_empty: bool = False,
    ) -> None:
        if steps not in STEP_MODES:
            raise ValueError(f"steps must be one of {STEP_MODES}, got {steps!r}")
        schema = schema or profile.features
        if schema is None:
            raise DatasetError(
                f"robot profile {profile.path or profile.name} has no features: section (the schema of the "
                "robot's data: state units, image sizes, action bounds and control mode)"
            )
        self.bag = log_directory(path)
        self.profile, self.schema, self.steps, self.skip_empty = profile, schema, steps, skip_empty
        self.command: BoundCommand = profile.bind(schema, schema.control_dt)
        self.task = f"robot/{profile.name}"
        self.env_config: dict[str, Any] = {"robot": profile.name}
        self.assembler = ObservationAssembler(profile, schema)
        self.rejected: dict[str, int] = {}  # messages per topic that could not be used
        self.log_clock: set[str] = set()  # topics whose header stamps are of another clock: log time used
        self._stamped: set[str] = set()  # topics whose header stamps are used
        with self._reader() as reader:
            self.types = {c.topic: c.msgtype for c in reader.connections}
            self.message_counts = {c.topic: c.msgcount for c in reader.connections}
            self._check_topics()
            self.boundaries = self._boundary_topics(episode_start, episode_end)
            self.windows = self._windows(reader)
            commands = sum(c.msgcount for c in reader.connections if c.topic == profile.command.topic)
        self.num_episodes = len(self.windows)
        span = sum(w.end - w.start for w in self.windows) * 1e-9
        self.num_frames = commands if steps == "commands" else int(span / schema.control_dt)
        self.origin: dict[str, Any] = {
            "format": "mcap",
            "path": str(self.bag),
            "robot": profile.name,
            "profile": profile.path,
            "steps": steps,
            "episode_topics": list(self.boundaries),
            "episode_log_times": [],  # [start, end] ns of each episode converted
        }

    def _reader(self) -> AnyReader:
        try:
            return AnyReader([self.bag], default_typestore=get_typestore(Stores.ROS2_KILTED))
        except Exception as err:  # rosbags raises its own types for unreadable bags
            raise DatasetError(f"{self.bag}: not a readable rosbag2 log ({type(err).__name__}: {err})") from err

    # -- what the log holds ---------------------------------------------------------------------
    def _check_topics(self) -> None:
        wanted = {s.source.topic: s.source.type for slots in self.assembler.slots.values() for s in slots}
        wanted[self.profile.command.topic] = self.profile.command.type
        problems = []
        for topic, kind in wanted.items():
            if topic not in self.types:
                problems.append(f"no topic {topic} (the profile's {kind})")
            elif self.types[topic] != kind:
                problems.append(f"{topic} holds {self.types[topic]} messages; the profile expects {kind}")
        if problems:
            raise DatasetError(f"{self.bag}: " + "; ".join(problems) + f" (topics: {sorted(self.types)})")

    def _boundary_topics(self, start: str | None, end: str | None) -> dict[str, str]:
        """Episode boundary topic -> ``start`` / ``end``."""
        if start is None and end is None:
            marked = self.message_counts.get(io.RECORDER_EPISODE_START, 0) + self.message_counts.get(
                io.RECORDER_EPISODE_END, 0
            )
            if marked:
                start, end = io.RECORDER_EPISODE_START, io.RECORDER_EPISODE_END
            elif io.EPISODE_START in self.types:
                start = io.EPISODE_START
        topics = {}
        for topic, role, types in ((start, "start", START_TYPES), (end, "end", END_TYPES)):
            if topic is None or (topic not in self.types and topic.startswith("/robo_q/")):
                continue
            if topic not in self.types:
                raise DatasetError(f"{self.bag}: no episode {role} topic {topic} (topics: {sorted(self.types)})")
            if self.types[topic] not in types:
                raise DatasetError(
                    f"{self.bag}: episode {role} topic {topic} holds {self.types[topic]}; expected {' or '.join(types)}"
                )
            topics[topic] = role
        return topics

    def _windows(self, reader: AnyReader) -> list[Window]:
        """Episode spans from the boundary events (their log times)."""
        first, last = reader.start_time, reader.end_time + 1
        wanted = [c for c in reader.connections if c.topic in self.boundaries]
        windows: list[Window] = []
        starts = any(self.message_counts[t] for t, role in self.boundaries.items() if role == "start")
        open_at: int | None = None if starts else first  # only ends: episodes run back to back
        seed = 0
        for connection, stamp, raw in reader.messages(connections=wanted) if wanted else ():  # []: every topic
            msg: Any = reader.deserialize(raw, connection.msgtype)
            if self.boundaries[connection.topic] == "start":
                if open_at is not None and open_at < stamp:
                    windows.append(Window(open_at, stamp, seed, False))
                open_at = stamp
                seed = int(msg.data) if hasattr(msg, "data") else len(windows)
            elif open_at is not None:
                windows.append(Window(open_at, stamp, seed, bool(msg.data)))
                open_at = None if starts else stamp
                seed = len(windows)
        if open_at is not None and (starts or not windows):  # started, never ended: runs to the log's end
            windows.append(Window(open_at, last, seed, False))
        if not windows:
            raise DatasetError(f"{self.bag}: no episode (boundary topics {sorted(self.boundaries)})")
        return windows

    # -- episodes -------------------------------------------------------------------------------
    def episodes(self) -> Iterator[ImportedEpisode]:
        """Each episode in log order, once the log has passed its end."""
        command_topic = self.profile.command.topic
        slots = [s for slots in self.assembler.slots.values() for s in slots]
        timelines = {id(s): _Timeline() for s in slots}
        commands = _Timeline()
        last_time: dict[str, int] = {}
        pending = list(self.windows)
        with self._reader() as reader:
            wanted = [c for c in reader.connections if c.topic in {command_topic, *self.assembler.topics()}]
            for connection, log_ns, raw in reader.messages(connections=wanted):
                while pending and log_ns > pending[0].end + FINALIZE_LAG_NS:
                    if (episode := self._episode(pending.pop(0), timelines, commands)) is not None:
                        yield episode
                    self._forget(pending, timelines, commands)
                if not pending:
                    break
                topic = connection.topic
                try:
                    msg: Any = reader.deserialize(raw, connection.msgtype)
                except Exception as err:  # truncated or garbled bytes
                    raise DatasetError(f"{self.bag}: a {topic} message cannot be read ({err})") from err
                t_ns = self._time(topic, msg, log_ns)
                if t_ns < last_time.get(topic, t_ns):
                    raise DatasetError(
                        f"{self.bag}: {topic} goes back in time ({t_ns} ns after {last_time[topic]} ns): "
                        "its stamps are not monotonic"
                    )
                last_time[topic] = t_ns
                t = t_ns * 1e-9
                if topic == command_topic:
                    native = self.command.read(msg)
                    if native.shape == (self.schema.action.dim,) and np.all(np.isfinite(native)):
                        commands.times.append(t)
                        commands.values.append(native)
                    else:
                        self._reject(topic)
                if topic in self.assembler.by_topic:
                    if self.assembler.receive(topic, msg, t):
                        self._reject(topic)
                    for slot in self.assembler.by_topic[topic]:
                        if slot.feature is not None:
                            timelines[id(slot)].times.append(t)
                            timelines[id(slot)].values.append(slot.value)
        for window in pending:
            if (episode := self._episode(window, timelines, commands)) is not None:
                yield episode

    def _time(self, topic: str, msg: Any, log_ns: int) -> int:
        """The message's time: its header stamp, unless the topic's first one was of another clock."""
        stamp = header_stamp(msg)
        if stamp is not None and topic not in self.log_clock:
            if topic in self._stamped or abs(stamp - log_ns) < OTHER_CLOCK_NS:
                self._stamped.add(topic)
                return stamp
            self.log_clock.add(topic)
        return log_ns

    def _reject(self, topic: str) -> None:
        self.rejected[topic] = self.rejected.get(topic, 0) + 1

    def _forget(self, pending: list[Window], timelines: dict[int, _Timeline], commands: _Timeline) -> None:
        if pending:
            horizon = pending[0].start * 1e-9 - 1.0
            for timeline in [*timelines.values(), commands]:
                timeline.forget_before(horizon)

    def _step_times(self, window: Window, commands: _Timeline) -> np.ndarray:
        start, end = window.start * 1e-9, window.end * 1e-9
        sent = [t for t in commands.times if start <= t < end]
        if self.steps == "commands" or not sent:
            return np.asarray(sent)
        dt = self.schema.control_dt
        first = sent[0] - dt / 2
        first += np.ceil((start - first) / dt) * dt if first < start else 0.0
        return first + dt * np.arange(max(int(np.ceil((end - first) / dt)), 0))

    def _episode(self, window: Window, timelines: dict[int, _Timeline], commands: _Timeline) -> ImportedEpisode | None:
        """The window's steps (None: it has none and ``skip_empty``)."""
        times = self._step_times(window, commands)
        dt = self.schema.control_dt
        max_age = self.profile.max_age
        observations: list[dict[str, np.ndarray] | None] = []
        actions: list[np.ndarray | None] = []
        for t in [*times, times[-1] + dt] if len(times) else []:
            for slots in self.assembler.slots.values():
                for slot in slots:
                    slot.stamp, slot.value = timelines[id(slot)].at(t)
                    slot.error = "rejected" if slot.value is None and slot.stamp > float("-inf") else ""
            observations.append(self.assembler.observation(t))
            sent, command = commands.at(t if self.steps == "commands" else t + dt - 1e-9)
            fresh = command is not None and t - sent <= max_age
            actions.append(self.schema.action.from_native(command) if command is not None and fresh else None)
        valid = [o is not None and a is not None for o, a in zip(observations[:-1], actions[:-1], strict=True)]
        if not any(valid):
            reason = "no command" if not len(times) else "no step with a fresh observation and command"
            stale = self.assembler.stale(times[-1]) if len(times) else "-"
            message = (
                f"{self.bag}: episode {window.seed} ({window.start} to {window.end} ns) has 0 steps: {reason} "
                f"(command topic {self.profile.command.topic}; stale: {stale})"
            )
            if self.skip_empty:
                return None
            raise DatasetError(message + "; skip_empty=true leaves such episodes out")
        first, last = valid.index(True), len(valid) - 1 - valid[::-1].index(True)
        kept = [i for i in range(first, last + 1) if valid[i]]
        window.dropped = last + 1 - first - len(kept)
        keys = self.schema.keys
        steps: dict[str, np.ndarray] = {
            f"observation.{k}": np.stack([observations[i][k] for i in kept]).astype(self.schema.observation[k].dtype)  # type: ignore[index]
            for k in keys
        }
        n = len(kept)
        success = np.zeros(n, bool)
        success[-1] = window.success
        steps.update(
            action=np.stack([actions[i] for i in kept]).astype(np.float32),  # type: ignore[misc]
            reward=success.astype(np.float32),
            success=success,
            terminated=success.copy(),
            sim_state=np.zeros((n, 0)),
        )
        final = observations[last + 1] or observations[kept[-1]]
        self.origin["episode_log_times"].append([window.start, window.end])
        return ImportedEpisode(steps, dict(final), window.seed)  # type: ignore[arg-type]
