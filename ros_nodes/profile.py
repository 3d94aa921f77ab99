"""Robot profiles: which topics fill each observation feature of a bundle and where commands go.

A profile (``configs/robot/<name>.yaml``) describes one robot's ROS 2 interface::

    name: my_arm
    rate: null                  # Hz; null: the bundle's control rate
    max_age: 0.2                # s: a topic older than this holds the robot (per source: max_age)
    observation:                # bundle feature -> topics that fill it, concatenated in this order
      state:
        - {topic: /joint_states, type: sensor_msgs/msg/JointState, joints: [j1, j2], fields: [position, velocity]}
      images.wrist:             # "images.*" with "*" in the topic serves every camera feature
        - {topic: /wrist/image_raw, type: sensor_msgs/msg/Image, fit: resize}
    command:
      topic: /arm_controller/joint_trajectory
      type: trajectory_msgs/msg/JointTrajectory
      joints: [j2, j1]          # the controller's joint order; action_names maps them if they differ
      feedback: {topic: /joint_states, type: sensor_msgs/msg/JointState}   # position hold
    features:                   # optional: the robot's own feature schema (`roboq logs convert`)
      state: {units: [rad, rad, rad/s, rad/s]}     # names default to <joint>.<field> of the sources
      images.wrist: {height: 64, width: 64}
      action: {low: [-1.5, -2], high: [1.5, 2], units: rad, mode: position}   # names: the command's

:meth:`RobotProfile.bind` checks a profile against a bundle's feature schema and raises one
:class:`ProfileError` that lists every mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from policies.features import ActionSpec, Feature, FeatureSchema, image_feature
from ros_nodes import messages as msgs

QOS_NAMES = ("sensor", "reliable")
_TRAJECTORY_FIELDS = {"position": "positions", "velocity": "velocities", "effort": "effort", "delta": "positions"}


def default_profile_path() -> Path:
    """The profile of `roboq sim-bridge` robots, as installed with robo_q (``configs/robot/sim_bridge.yaml``)."""
    from robo_q.cli import config_dir

    return config_dir() / "robot" / "sim_bridge.yaml"


class ProfileError(ValueError):
    """A robot profile that is malformed or does not fit the bundle (every problem listed)."""

    def __init__(self, problems: Sequence[str], where: str = "robot profile") -> None:
        self.problems = list(problems)
        super().__init__(f"{where}: {len(self.problems)} problem(s):\n  - " + "\n  - ".join(self.problems))


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


@dataclass(frozen=True)
class Source:
    """One topic that fills (part of) a feature."""

    topic: str
    type: str
    joints: tuple[str, ...] = ()  # JointState: which joints, in the feature's order
    fields: tuple[str, ...] = ("position",)  # JointState: position / velocity / effort, in order
    size: int | None = None  # Float64MultiArray: expected length (optional with one source)
    max_age: float | None = None  # s; None: the profile's
    qos: str = "sensor"  # sensor (best effort, depth 1) | reliable (depth 10)
    fit: str = "resize"  # images: resize (crop to aspect, then resize) | crop (centre crop)
    encoding: str | None = None  # images: the encoding (or compressed format) the camera sends

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str, problems: list[str]) -> Source | None:
        unknown = set(doc) - set(cls.__dataclass_fields__)
        if unknown:
            problems.append(f"{where}: unknown settings {sorted(unknown)}")
        if "topic" not in doc or "type" not in doc:
            problems.append(f"{where}: needs topic and type")
            return None
        try:
            kind = msgs.type_name(str(doc["type"]))
        except ValueError as err:
            problems.append(f"{where}: {err}")
            return None
        source = cls(
            str(doc["topic"]),
            kind,
            _strings(doc.get("joints")),
            _strings(doc.get("fields")) or ("position",),
            None if doc.get("size") is None else int(doc["size"]),
            None if doc.get("max_age") is None else float(doc["max_age"]),
            str(doc.get("qos", "sensor")),
            str(doc.get("fit", "resize")),
            None if doc.get("encoding") is None else str(doc["encoding"]),
        )
        bad = [f for f in source.fields if f not in msgs.JOINT_FIELDS]
        if bad:
            problems.append(f"{where}: fields {bad} are not JointState fields {msgs.JOINT_FIELDS}")
        if source.qos not in QOS_NAMES:
            problems.append(f"{where}: qos must be one of {QOS_NAMES}, got {source.qos!r}")
        if source.fit not in msgs.FITS:
            problems.append(f"{where}: fit must be one of {msgs.FITS}, got {source.fit!r}")
        known = (*msgs.ENCODINGS, *msgs.COMPRESSED_FORMATS)
        if source.encoding is not None and source.encoding not in known:
            problems.append(f"{where}: encoding {source.encoding!r} is not supported ({', '.join(known)})")
        return source

    @property
    def width(self) -> int | None:
        """How many values this source contributes to a state feature (None: whatever arrives)."""
        if self.type == msgs.JOINT_STATE:
            return len(self.joints) * len(self.fields) if self.joints else None
        return msgs.FIXED_SIZES.get(self.type, self.size)


@dataclass(frozen=True)
class Command:
    """Where commands go and in which message."""

    topic: str
    type: str
    joints: tuple[str, ...] = ()  # the controller's joint order
    action_names: tuple[str, ...] = ()  # per joint, the bundle action it carries (default: same name)
    field: str | None = None  # JointTrajectory point field; None: from the control mode
    horizon: float | None = None  # s ahead for JointTrajectory points; None: 2 control periods
    feedback: Source | None = None  # measured positions (position mode: what a hold holds)

    def joint_of(self, action_name: str) -> str:
        """The robot joint that carries bundle action ``action_name``."""
        if not self.joints:
            return action_name
        carried = list(self.action_names or self.joints)
        return self.joints[carried.index(action_name)]


@dataclass(frozen=True)
class BoundCommand:
    """A profile's command, fitted to a bundle: reorders actions and builds messages."""

    command: Command
    order: np.ndarray  # command slot i carries action dimension order[i]
    field: str
    horizon: float

    def read(self, msg: Any) -> np.ndarray:
        """A (logged) command message -> native values in the bundle's action order."""
        values = msgs.command_values(msg, self.command.type, self.field)
        native = np.full(len(self.order), np.nan)
        if len(values) == len(self.order):
            native[self.order] = values
        return native

    def message(self, native: np.ndarray) -> Any:
        return msgs.command_message(
            self.command.type,
            np.asarray(native, np.float64)[self.order],
            joints=self.command.joints,
            field=self.field,
            horizon=self.horizon,
        )


@dataclass(frozen=True)
class RobotProfile:
    name: str
    observation: Mapping[str, tuple[Source, ...]]
    command: Command
    rate: float | None = None
    max_age: float = 0.5
    path: str = ""
    features: FeatureSchema | None = None  # the robot's own schema, where the profile gives one

    @classmethod
    def load(cls, path: str | Path) -> RobotProfile:
        path = Path(path)
        if not path.is_file():
            raise ProfileError([f"no such file {path}"])
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ProfileError([f"not valid YAML: {err}"], str(path)) from err
        return cls.from_dict(doc, str(path))

    @classmethod
    def from_dict(cls, doc: Any, where: str = "robot profile") -> RobotProfile:
        problems: list[str] = []
        if not isinstance(doc, Mapping):
            raise ProfileError(["a profile is a mapping with observation and command"], where)
        unknown = set(doc) - {"name", "rate", "max_age", "observation", "command", "features"}
        if unknown:
            problems.append(f"unknown top-level settings {sorted(unknown)}")
        observation: dict[str, tuple[Source, ...]] = {}
        obs_doc = doc.get("observation")
        if not isinstance(obs_doc, Mapping) or not obs_doc:
            problems.append("observation: needs at least one feature -> [sources]")
            obs_doc = {}
        for key, sources in obs_doc.items():
            if isinstance(sources, Mapping):
                sources = [sources]
            if not isinstance(sources, Sequence) or not sources:
                problems.append(f"observation.{key}: a list of sources")
                continue
            parsed = [Source.from_dict(s, f"observation.{key}[{i}]", problems) for i, s in enumerate(sources)]
            observation[str(key)] = tuple(s for s in parsed if s is not None)
        command = cls._command(doc.get("command"), problems)
        rate = doc.get("rate")
        if rate is not None and not float(rate) > 0:
            problems.append(f"rate must be positive (or null), got {rate}")
        if problems or command is None:
            raise ProfileError(problems, where)
        profile = cls(
            str(doc.get("name", Path(where).stem)),
            observation,
            command,
            None if rate is None else float(rate),
            float(doc.get("max_age", 0.5)),
            where,
        )
        if doc.get("features") is None:
            return profile
        features = profile._features(doc["features"], problems)
        problems += [] if features is None else profile.problems(features)
        if problems:
            raise ProfileError(problems, where)
        return cls(**{**profile.__dict__, "features": features})

    def _features(self, doc: Any, problems: list[str]) -> FeatureSchema | None:
        """The ``features:`` section as a schema: state names from the sources unless given,
        action names from the command's joints, control period ``1 / rate``."""
        if not isinstance(doc, Mapping) or "action" not in doc:
            problems.append("features: a mapping of observation features and action")
            return None
        if self.rate is None:
            problems.append("features: needs the profile's rate (the control rate of the robot's data)")
            return None
        observation: dict[str, Feature] = {}
        try:
            for key, spec in doc.items():
                if key == "action":
                    continue
                spec = spec or {}
                if key.startswith("images."):
                    observation[key] = image_feature(key, int(spec["height"]), int(spec["width"]))
                    continue
                names = spec.get("names") or self._state_names(key)
                if names is None:
                    problems.append(f"features.{key}: give names (the sources' widths are not all known)")
                    continue
                units = spec.get("units", "")
                units = [units] * len(names) if isinstance(units, str) else list(units)
                observation[key] = Feature(key, "state", (len(names),), tuple(names), tuple(units))
            a, c = doc["action"], self.command
            names = _strings(a.get("names")) or c.action_names or c.joints
            units = a.get("units", "")
            units = (units,) * len(names) if isinstance(units, str) else tuple(units)
            action = ActionSpec(names, tuple(a["low"]), tuple(a["high"]), str(a["mode"]), units)
            return FeatureSchema(observation, action, 1.0 / self.rate)
        except (KeyError, TypeError, ValueError, AttributeError) as err:  # SchemaError is a ValueError
            what = f"missing {err}" if isinstance(err, KeyError) else str(err)
            problems.append(f"features: {what}")
            return None

    def _state_names(self, key: str) -> list[str] | None:
        """``<joint>.<field>`` / ``<topic>[i]`` per value of a state feature's sources (None: a width is unknown)."""
        names: list[str] = []
        for s in self.sources(key):
            if s.type == msgs.JOINT_STATE and s.joints:
                names += [f"{j}.{f}" for f in s.fields for j in s.joints]
            elif s.width is not None:
                names += [f"{s.topic}[{i}]" for i in range(s.width)]
            else:
                return None
        return names or None

    @staticmethod
    def _command(doc: Any, problems: list[str]) -> Command | None:
        if not isinstance(doc, Mapping) or "topic" not in doc or "type" not in doc:
            problems.append("command: needs topic and type")
            return None
        try:
            kind = msgs.type_name(str(doc["type"]))
        except ValueError as err:
            problems.append(f"command: {err}")
            return None
        if kind not in msgs.COMMAND_TYPES:
            problems.append(f"command: type must be one of {msgs.COMMAND_TYPES}, got {kind}")
        feedback = None
        if doc.get("feedback") is not None:
            feedback = Source.from_dict(doc["feedback"], "command.feedback", problems)
        return Command(
            str(doc["topic"]),
            kind,
            _strings(doc.get("joints")),
            _strings(doc.get("action_names")),
            None if doc.get("field") is None else str(doc["field"]),
            None if doc.get("horizon") is None else float(doc["horizon"]),
            feedback,
        )

    # -- fitting a bundle -------------------------------------------------------------------------
    def sources(self, key: str) -> tuple[Source, ...]:
        """The sources of feature ``key``: listed for it, or from an ``images.*`` style pattern."""
        if key in self.observation:
            return self.observation[key]
        for pattern, sources in self.observation.items():
            prefix = pattern[:-1]
            if pattern.endswith("*") and key.startswith(prefix) and len(key) > len(prefix):
                name = key[len(prefix) :]
                return tuple(Source(**{**s.__dict__, "topic": s.topic.replace("*", name)}) for s in sources)
        return ()

    def problems(self, schema: FeatureSchema) -> list[str]:
        """Every mismatch between this profile and a bundle's schema (empty: they fit)."""
        problems = []
        for key, feature in schema.observation.items():
            sources = self.sources(key)
            if not sources:
                problems.append(f"feature {key!r} ({feature.kind} {feature.shape}): no topic in the profile fills it")
                continue
            for i, s in enumerate(sources):
                if s.type == msgs.JOINT_STATE and not s.joints:
                    problems.append(f"{key}[{i}] {s.topic}: a JointState source needs joints (the feature's order)")
            if feature.kind == "image":
                if len(sources) != 1 or sources[0].type not in msgs.IMAGE_TYPES:
                    problems.append(f"feature {key!r} is an image: needs exactly one Image or CompressedImage topic")
                continue
            wrong = [s.topic for s in sources if s.type not in msgs.VECTOR_TYPES]
            if wrong:
                problems.append(f"feature {key!r} is a state vector: {wrong} do not carry vectors")
                continue
            widths = [s.width for s in sources]
            known = sum(w for w in widths if w is not None)
            unknown = widths.count(None)
            dim = feature.shape[0]
            if unknown > 1:
                problems.append(f"feature {key!r}: give size: for all but one Float64MultiArray source")
            elif (unknown == 0 and known != dim) or (unknown == 1 and known >= dim):
                problems.append(f"feature {key!r} has {dim} values; its topics give {known}{' + more' * unknown}")
        problems += self._command_problems(schema)
        return problems

    def _command_problems(self, schema: FeatureSchema) -> list[str]:
        action, c, problems = schema.action, self.command, []
        if c.type == msgs.TWIST and action.dim != 6:
            problems.append(f"command: a TwistStamped carries 6 values; the bundle's action has {action.dim}")
        if c.type == msgs.JOINT_TRAJECTORY and not c.joints:
            problems.append("command: a JointTrajectory needs joints (the controller's joint order)")
        if c.joints:
            carried = c.action_names or c.joints
            if len(carried) != len(c.joints):
                problems.append(f"command: {len(c.action_names)} action_names for {len(c.joints)} joints")
            unknown = [n for n in carried if n not in action.names]
            missing = [n for n in action.names if n not in carried]
            if unknown:
                problems.append(f"command: unknown joints {unknown}: the bundle's actions are {list(action.names)}")
            if missing:
                problems.append(f"command: no joint carries the bundle's actions {missing}")
        elif c.type == msgs.FLOAT_ARRAY and c.action_names:
            problems.append("command: action_names needs joints")
        if c.field is not None and c.field not in _TRAJECTORY_FIELDS.values():
            problems.append(f"command: field must be one of {sorted(set(_TRAJECTORY_FIELDS.values()))}")
        if action.mode == "position":
            fb = c.feedback
            if fb is None:
                problems.append("command: a position-mode bundle needs feedback (the measured positions to hold)")
            elif fb.type not in msgs.VECTOR_TYPES or (fb.width is not None and fb.width != action.dim):
                problems.append(f"command.feedback must give the {action.dim} measured positions ({fb.topic})")
        return problems

    def bind(self, schema: FeatureSchema, control_dt: float) -> BoundCommand:
        """The command fitted to the bundle; ProfileError listing every mismatch if it does not fit."""
        problems = self.problems(schema)
        if problems:
            raise ProfileError(problems, f"robot profile {self.path or self.name} vs the bundle")
        c, names = self.command, list(schema.action.names)
        order = [names.index(n) for n in (c.action_names or c.joints)] if c.joints else list(range(len(names)))
        horizon = c.horizon if c.horizon is not None else 2 * control_dt
        return BoundCommand(c, np.asarray(order), c.field or _TRAJECTORY_FIELDS[schema.action.mode], horizon)
