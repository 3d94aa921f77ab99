"""``roboq robot check``: listen to a live robot and say, per profile topic, whether it can be used.

For every topic of a robot profile (its observation sources, the command feedback) it reports:
seen or not, the type it is published with, rate, age of the last message, what the message
holds (vector length, image size and encoding) and, with a bundle, whether it fits the bundle's
feature (converted through the same assembler the policy node uses); for the command topic,
whether anything subscribes. Static mismatches between profile and bundle come first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from policies.features import FeatureSchema
from ros_nodes import interfaces as io
from ros_nodes import messages as msgs
from ros_nodes.assembler import ObservationAssembler
from ros_nodes.profile import RobotProfile, Source
from ros_nodes.runner import stop_requested

DISCOVERY = 15.0  # s to wait for every topic's first message before the listening window starts


@dataclass
class TopicReport:
    topic: str
    type: str
    seen: int = 0
    times: list[float] = field(default_factory=list)
    info: str = ""
    fit: str = ""  # with a bundle: "ok" or why the last message does not fit
    published_as: list[str] = field(default_factory=list)

    def row(self, now: float) -> dict[str, Any]:
        rate = (len(self.times) - 1) / (self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0
        problem = ""
        if self.published_as and msgs.type_name(self.type) not in self.published_as:
            problem = f"published as {', '.join(self.published_as)}, profile says {self.type}"
        elif not self.seen:
            problem = "not published" if not self.published_as else "no message received"
        elif self.fit not in ("", "ok"):
            problem = self.fit
        return {
            "topic": self.topic,
            "type": self.type.split("/")[-1],
            "seen": self.seen,
            "rate_hz": round(rate, 1),
            "age_s": round(now - self.times[-1], 3) if self.times else None,
            "holds": self.info,
            "fits": self.fit or "-",
            "ok": not problem,
            "problem": problem,
        }


def _describe(msg: Any, source: Source) -> str:
    if source.type in msgs.IMAGE_TYPES:
        return msgs.image_info(msg, source.type)
    try:
        return f"{len(msgs.vector(msg, source.type, source.joints, source.fields))} values"
    except msgs.MessageError as err:
        return f"unusable: {err}"


def check_robot(profile: RobotProfile, schema: FeatureSchema | None, seconds: float) -> dict[str, Any]:
    """Listen ``seconds`` to the profile's topics; per-topic rows and the problems found."""
    problems = profile.problems(schema) if schema is not None else []
    assembler = ObservationAssembler(profile, schema) if schema is not None and not problems else None
    if assembler is not None:
        sources = assembler.topics()
    else:
        sources = {s.topic: s for key, ss in profile.observation.items() if "*" not in key for s in ss}
        if profile.command.feedback is not None:
            sources.setdefault(profile.command.feedback.topic, profile.command.feedback)
    node = Node("robo_q_robot_check")
    reports = {topic: TopicReport(topic, s.type) for topic, s in sources.items()}

    def receiver(topic: str, source: Source):
        def receive(msg: Any) -> None:
            now = time.monotonic()
            report = reports[topic]
            report.seen += 1
            report.times = [*report.times[-49:], now]
            report.info = _describe(msg, source)
            if assembler is not None:
                errors = assembler.receive(topic, msg, now)
                report.fit = "; ".join(errors) if errors else "ok"

        return receive

    for topic, source in sources.items():
        node.create_subscription(msgs.message_class(source.type), topic, receiver(topic, source), io.qos(source.qos))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        # listen `seconds` once every topic has spoken (discovery can be slow), at most DISCOVERY s more
        start = time.monotonic()
        heard_all: float | None = None
        while not stop_requested():
            now = time.monotonic()
            if heard_all is None and all(r.seen for r in reports.values()):
                heard_all = now
            if now > (heard_all if heard_all is not None else start + DISCOVERY) + seconds:
                break
            executor.spin_once(timeout_sec=0.05)
        published = dict(node.get_topic_names_and_types())
        for topic, report in reports.items():
            report.published_as = list(published.get(topic, []))
        command_listeners = node.count_subscribers(profile.command.topic)
    finally:
        executor.shutdown()
        node.destroy_node()
    now = time.monotonic()
    rows = [r.row(now) for r in reports.values()]
    problems += [f"{r['topic']}: {r['problem']}" for r in rows if r["problem"]]
    if not command_listeners:
        problems.append(f"{profile.command.topic}: nothing subscribes to the commands (is the controller running?)")
    return {
        "robot": profile.name,
        "topics": rows,
        "command_topic": profile.command.topic,
        "command_subscribers": command_listeners,
        "problems": problems,
        "ok": not problems,
    }
