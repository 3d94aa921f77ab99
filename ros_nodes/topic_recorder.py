"""Recording a ROS 2 session: raw messages of any topics into a rosbag2 MCAP log, episodes marked.

:class:`TopicRecorder` subscribes to each wanted topic once it has a publisher, with the type the
ROS graph reports (checked against the expected one where given) and a QoS that matches the
publishers' (best effort if any publisher is, transient local if all are), and writes every
message's serialized bytes as received, at its publication time, with ``rosbags``. Types the
``rosbags`` store does not know are described from their rclpy classes.

Episodes are marked in the log as ``/robo_q/episode/start`` (std_msgs/Int64: the index) and
``/robo_q/episode/end`` (std_msgs/Bool: success) events, whatever marks them:
- a topic: ``episode_start`` (std_msgs Int64 or Empty) and / or ``episode_end`` (std_msgs Bool);
- the services ``~/start_episode`` (std_srvs/Trigger) and ``~/end_episode`` (std_srvs/SetBool,
  ``data``: success);
- the terminal: a line ``s`` starts an episode, ``y`` / ``n`` ends it as a success / failure,
  ``q`` stops the recording.
``roboq logs convert`` turns the log into episodes. ``ros_nodes.sim_recording`` builds zarr
episodes while recording a `roboq sim-bridge` session.
"""

from __future__ import annotations

import importlib
import queue
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger

from ros_nodes import interfaces as io

DEPTH = 1000  # a recorder that falls behind for a moment still gets every reliable sample
DISCOVERY_PERIOD = 0.25  # s between looks at the ROS graph for topics not yet subscribed
_IDL_TO_MSG = {
    "double": "float64",
    "float": "float32",
    "boolean": "bool",
    "octet": "byte",
    "int8": "int8",
    "uint8": "uint8",
    "char": "char",
    "string": "string",
    "wstring": "wstring",
}


def ros_type_name(msg_cls: type) -> str:
    """``sensor_msgs.msg.JointState`` -> ``sensor_msgs/msg/JointState``."""
    return f"{msg_cls.__module__.split('.')[0]}/msg/{msg_cls.__name__}"


def import_message(name: str) -> type:
    """The rclpy class of any message type ``pkg/msg/Type``; ValueError when it is not installed."""
    package, _, cls = name.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), cls)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"message type {name} is not installed here (no Python package {package}.msg)") from err


def message_definition(msg_cls: type) -> dict[str, Any]:
    """``rosbags`` type definitions of an rclpy message class and every type it nests (their fields:
    what serialization needs; constants are left out)."""

    def field_type(idl: str) -> tuple[str, str | None]:  # (msg-syntax type, nested type or None)
        suffix = ""
        if idl.startswith("sequence<"):
            inner, _, bound = idl[len("sequence<") : -1].partition(", ")
            idl, suffix = inner, f"[<={bound}]" if bound else "[]"
        elif idl.endswith("]"):
            idl, _, size = idl[:-1].partition("[")
            suffix = f"[{size}]"
        base, _, limit = idl.partition("<=")
        if "/" in base:
            package, name = base.split("/")
            return f"{package}/msg/{name}{suffix}", f"{package}/msg/{name}"
        return _IDL_TO_MSG.get(base, base) + (f"<={limit}" if limit else "") + suffix, None

    types: dict[str, Any] = {}
    todo = [ros_type_name(msg_cls)]
    while todo:
        name = todo.pop()
        if name in types:
            continue
        lines = []
        msg_type: Any = import_message(name)
        for field, idl in msg_type.get_fields_and_field_types().items():
            kind, nested = field_type(idl)
            lines.append(f"{kind} {field}")
            if nested:
                todo.append(nested)
        types.update(get_types_from_msg("\n".join(lines), name))
    return types


def matching_qos(publishers: list[Any]) -> QoSProfile:
    """A subscription QoS every publisher can serve (reliable and volatile unless they say otherwise)."""
    best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers)
    latched = bool(publishers) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
    return QoSProfile(
        depth=DEPTH,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


class TopicRecorder(Node):
    """Raw messages of ``topics`` (topic -> expected type, or None for whatever it carries) into
    ``<out>/log``, with episode events from a topic, the services or the terminal. Topics in
    ``fixed_qos`` (their type given) are subscribed at once with that QoS, not on discovery."""

    def __init__(
        self,
        out: Path,
        topics: Mapping[str, str | None],
        *,
        episode_start: str | None = None,
        episode_end: str | None = None,
        keys: bool = False,
        fixed_qos: Mapping[str, QoSProfile] | None = None,
        name: str = "robo_q_recorder",
    ) -> None:
        super().__init__(name)
        out.mkdir(parents=True, exist_ok=True)
        if (out / "log").exists():
            raise FileExistsError(f"{out / 'log'} already exists: record into a new out= directory")
        self.writer = Writer(out / "log", version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.typestore = get_typestore(Stores.ROS2_KILTED)
        self.wanted = dict(topics)
        for topic, kind in ((episode_start, None), (episode_end, "std_msgs/msg/Bool")):
            if topic:
                self.wanted.setdefault(topic, kind)
        self.counts = dict.fromkeys(self.wanted, 0)
        self.problems: dict[str, str] = {}  # topic -> why it is not recorded
        self.episodes = 0  # episodes ended
        self.episode_open = False
        self.quit = False
        self._started = 0
        self._connections: dict[str, Any] = {}
        self._event_connections = {
            io.RECORDER_EPISODE_START: self._connection(io.RECORDER_EPISODE_START, "std_msgs/msg/Int64"),
            io.RECORDER_EPISODE_END: self._connection(io.RECORDER_EPISODE_END, "std_msgs/msg/Bool"),
        }
        self._boundaries = {t: role for t, role in ((episode_start, "start"), (episode_end, "end")) if t}
        self._back_to_back = bool(episode_end) and not episode_start  # each end also starts the next
        self.create_service(Trigger, "~/start_episode", self._start_service)
        self.create_service(SetBool, "~/end_episode", self._end_service)
        self._keys: queue.Queue[str] = queue.Queue()
        if keys:
            threading.Thread(target=self._read_keys, daemon=True).start()
            self.create_timer(0.05, self._take_keys)
        for topic, qos in (fixed_qos or {}).items():
            self._subscribe(topic, str(self.wanted[topic]), qos)
        self.create_timer(DISCOVERY_PERIOD, self._discover)
        self._discover()

    # -- subscribing --------------------------------------------------------------------------------
    def _connection(self, topic: str, msgtype: str) -> Any:
        if msgtype not in self.typestore.types:
            self.typestore.register(message_definition(import_message(msgtype)))
        return self.writer.add_connection(topic, msgtype, typestore=self.typestore)

    def _discover(self) -> None:
        """Subscribe to every wanted topic that has appeared (with a publisher) since the last look."""
        pending = [t for t in self.wanted if t not in self._connections and t not in self.problems]
        if not pending:
            return
        graph = dict(self.get_topic_names_and_types())
        for topic in pending:
            publishers = self.get_publishers_info_by_topic(topic)
            if topic not in graph or not publishers:
                continue
            expected = self.wanted[topic]
            kinds = graph[topic]
            if expected is not None and expected not in kinds:
                self.problems[topic] = f"carries {', '.join(kinds)}, expected {expected}"
                self.get_logger().error(f"not recording {topic}: {self.problems[topic]}")
                continue
            self._subscribe(topic, expected or kinds[0], matching_qos(publishers))

    def _subscribe(self, topic: str, kind: str, qos: QoSProfile) -> None:
        try:
            msg_cls = import_message(kind)
            self._connections[topic] = self._connection(topic, kind)
        except (ValueError, KeyError) as err:
            self.problems[topic] = str(err)
            self.get_logger().error(f"not recording {topic}: {err}")
            return
        self.create_subscription(msg_cls, topic, self._raw_writer(topic), qos, raw=True)
        if topic in self._boundaries:
            self.create_subscription(msg_cls, topic, self._boundary_taker(self._boundaries[topic]), qos)
        self.get_logger().info(f"recording {topic} ({kind}, {qos.reliability.name.lower()})")

    @property
    def completed(self) -> int:
        """Episodes complete: here, those ended."""
        return self.episodes

    def missing(self) -> list[str]:
        """Wanted topics not (yet) recorded: never published, or refused (see ``problems``)."""
        return [t for t in self.wanted if t not in self._connections]

    def _raw_writer(self, topic: str):
        connection = self._connections[topic]

        def write(raw: bytes, info: MessageInfo) -> None:
            # Logged at publication time: the log holds messages in the order they were sent.
            self.writer.write(connection, info["source_timestamp"] or self.get_clock().now().nanoseconds, raw)
            self.counts[topic] += 1

        return write

    # -- episodes -----------------------------------------------------------------------------------
    def _event(self, topic: str, msg: Any) -> None:
        raw = self.typestore.serialize_cdr(msg, msg.__msgtype__)
        self.writer.write(self._event_connections[topic], self.get_clock().now().nanoseconds, bytes(raw))

    def start_episode(self) -> int:
        """Mark an episode's start (ending an open one as failed first); returns its index."""
        if self.episode_open:
            self.end_episode(False)
        T = self.typestore.types
        self._event(io.RECORDER_EPISODE_START, T["std_msgs/msg/Int64"](data=self._started))
        self.episode_open, self._started = True, self._started + 1
        self.get_logger().info(f"episode {self._started - 1} started")
        return self._started - 1

    def end_episode(self, success: bool) -> bool:
        """Mark the open episode's end and outcome; False if none was open (with only an
        ``episode_end`` topic, episodes run back to back from the recording's start: always one)."""
        if not self.episode_open and not self._back_to_back:
            self.get_logger().warning("no episode to end (start one first)")
            return False
        self._event(io.RECORDER_EPISODE_END, self.typestore.types["std_msgs/msg/Bool"](data=success))
        self.episode_open, self.episodes = False, self.episodes + 1
        self.get_logger().info(f"episode {self.episodes - 1} ended: {'success' if success else 'failure'}")
        return True

    def _boundary_taker(self, role: str):
        def take(msg: Any) -> None:
            if role == "start":
                self.start_episode()
            elif isinstance(msg, Bool):
                self.end_episode(bool(msg.data))

        return take

    def _start_service(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = True, f"episode {self.start_episode()} started"
        return response

    def _end_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.success = self.end_episode(bool(request.data))
        response.message = f"{self.episodes} episode(s) recorded" if response.success else "no episode was open"
        return response

    def _read_keys(self) -> None:
        for line in sys.stdin:
            self._keys.put(line.strip().lower())
        self._keys.put("eof")

    def _take_keys(self) -> None:
        while not self._keys.empty():
            key = self._keys.get_nowait()
            if key == "s":
                self.start_episode()
            elif key in ("y", "n"):
                self.end_episode(key == "y")
            elif key == "q":
                self.quit = True
            elif key != "eof":
                self.get_logger().warning(f"unknown key {key!r}: s (start), y / n (success / failure), q (quit)")

    def close(self) -> None:
        if self.episode_open:
            self.get_logger().warning(f"episode {self._started - 1} was still open: it ends with the log")
        self.writer.close()
