"""The one observation assembler: latest messages -> a bundle's observation dict, with ages.

Built from a robot profile and a bundle's feature schema. Each subscription hands its messages to
:meth:`ObservationAssembler.receive`, which converts them (through ``ros_nodes.messages``) into
the feature slot they fill; :meth:`ObservationAssembler.observation` concatenates the latest
values per feature once every slot is present and fresh. The policy node, ``roboq robot check``
and log replay all assemble through this class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policies.features import Feature, FeatureSchema
from ros_nodes import messages as msgs
from ros_nodes.profile import RobotProfile, Source

RATE_WINDOW = 20  # messages over which a topic's rate is measured


@dataclass
class Slot:
    """One source's latest value, filling part of a feature (or the command feedback)."""

    feature: Feature | None  # None: the command feedback
    source: Source
    max_age: float
    value: np.ndarray | None = None
    stamp: float = float("-inf")
    count: int = 0
    rejected: int = 0
    info: str = ""  # what the last message held (shape / encoding)
    error: str = ""  # why the last message was rejected
    times: list[float] = field(default_factory=list)

    def convert(self, msg: Any) -> np.ndarray:
        s = self.source
        if self.feature is not None and self.feature.kind == "image":
            self.info = msgs.image_info(msg, s.type)
            return msgs.image(msg, s.type, self.feature.shape, s.fit)
        value = msgs.vector(msg, s.type, s.joints, s.fields)
        self.info = f"{value.shape[0]} values"
        if s.width is not None and value.shape[0] != s.width:
            raise msgs.MessageError(f"has {value.shape[0]} values, expected {s.width}")
        return value

    @property
    def rate(self) -> float:
        """Messages per second over the last ``RATE_WINDOW`` arrivals (nan before two)."""
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return float("nan")
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


class ObservationAssembler:
    """Latest messages of a profile's topics -> the bundle's observation dict."""

    def __init__(self, profile: RobotProfile, schema: FeatureSchema) -> None:
        self.schema = schema
        self.slots: dict[str, list[Slot]] = {}  # feature key -> its slots, in concatenation order
        for key, feature in schema.observation.items():
            self.slots[key] = [
                Slot(feature, s, s.max_age if s.max_age is not None else profile.max_age) for s in profile.sources(key)
            ]
        fb = profile.command.feedback
        if fb is not None and fb.type == msgs.JOINT_STATE and not fb.joints:  # default: the commanded joints
            fb = Source(**{**fb.__dict__, "joints": tuple(profile.command.joint_of(n) for n in schema.action.names)})
        self.feedback = None if fb is None else Slot(None, fb, fb.max_age or profile.max_age)
        self.by_topic: dict[str, list[Slot]] = {}
        for slot in self.all_slots:
            self.by_topic.setdefault(slot.source.topic, []).append(slot)
        for key, slots in self.slots.items():  # a Float64MultiArray without size fills the rest
            feature = schema.observation[key]
            if feature.kind == "state":
                known = sum(s.source.width or 0 for s in slots)
                for s in slots:
                    if s.source.width is None:
                        s.source = Source(**{**s.source.__dict__, "size": feature.shape[0] - known})

    @property
    def all_slots(self) -> list[Slot]:
        return [s for slots in self.slots.values() for s in slots] + ([self.feedback] if self.feedback else [])

    def topics(self) -> dict[str, Source]:
        """Every topic to subscribe to, with the source that says its type and QoS."""
        return {topic: slots[0].source for topic, slots in self.by_topic.items()}

    def reset(self) -> None:
        """Forget every value (the next observation needs new messages on every topic)."""
        for slot in self.all_slots:
            slot.value, slot.stamp, slot.error = None, float("-inf"), ""

    def receive(self, topic: str, msg: Any, now: float) -> list[str]:
        """File a message under every slot its topic fills; returns why it was rejected (if it was).
        A rejected message clears the slot: the robot holds rather than act on an older value."""
        errors = []
        for slot in self.by_topic.get(topic, []):
            slot.count += 1
            slot.times = [*slot.times[-(RATE_WINDOW - 1) :], now]
            try:
                slot.value, slot.stamp, slot.error = slot.convert(msg), now, ""
            except (msgs.MessageError, AttributeError, TypeError, ValueError) as err:
                slot.value, slot.stamp, slot.rejected, slot.error = None, now, slot.rejected + 1, str(err)
                what = slot.feature.key if slot.feature is not None else "feedback"
                errors.append(f"{topic} ({what}): {err}")
        return errors

    def ages(self, now: float) -> dict[str, float]:
        """Seconds since each topic's last accepted message (inf: none yet)."""
        return {topic: now - max(s.stamp for s in slots) for topic, slots in self.by_topic.items()}

    def stale(self, now: float) -> list[str]:
        """The feature topics silent for too long, or never heard (why no observation can be made)."""
        return [
            f"{s.source.topic} ({'no message' if s.count == 0 else f'{now - s.stamp:.3f} s old'})"
            for slots in self.slots.values()
            for s in slots
            if now - s.stamp > s.max_age
        ]

    def rejected(self) -> list[str]:
        """The feature topics whose last message could not be used, and why."""
        return [
            f"{s.source.topic}: {s.error}"
            for slots in self.slots.values()
            for s in slots
            if s.value is None and s.error
        ]

    def observation(self, now: float) -> dict[str, np.ndarray] | None:
        """The bundle's observation from the latest values; None if any topic is stale or rejected."""
        if self.stale(now) or self.rejected():
            return None
        return {
            key: slots[0].value if len(slots) == 1 else np.concatenate([s.value for s in slots])  # type: ignore[misc]
            for key, slots in self.slots.items()
        }

    def updated_since(self, t: float) -> bool:
        """Every feature topic has a value received after ``t`` (a complete new observation)."""
        return all(s.stamp > t for slots in self.slots.values() for s in slots)

    def measured(self, now: float) -> np.ndarray | None:
        """The command feedback (measured positions, in action order), if fresh."""
        fb = self.feedback
        if fb is None or fb.value is None or now - fb.stamp > fb.max_age:
            return None
        return fb.value
