"""The feature schema: what every observation and the action are, defined once, read by every stage.

Simulator adapters and robot profiles produce a :class:`FeatureSchema`; the episode store writes it
into its attributes, checkpoints and ``policy.json`` carry it, and the replay buffer, encoder,
export, runtime, ROS nodes and log replay read it. Numpy only: the deployment runtime stays
torch-free.

- An observation :class:`Feature` has a key (``state``, ``images.<camera>``), a kind (``state``: a
  float vector; ``image``: uint8 HWC RGB frames), shape, dtype, and per-dimension names and units.
- The :class:`ActionSpec` names each action dimension, its native bounds and units, and the control
  mode (``position`` | ``velocity`` | ``effort`` | ``delta``), which says what holding still means.
  Policies act in [-1, 1]; :meth:`ActionSpec.to_native` / :meth:`ActionSpec.from_native` are the
  one place where that scaling happens.
- :func:`stack_frames` is the one frame-stacking function (replay buffer and runtime alike).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

SCHEMA_FORMAT = "robo_q.features"
SCHEMA_VERSION = 1
KINDS = ("state", "image")
CONTROL_MODES = ("position", "velocity", "effort", "delta")
_DTYPES = {"state": "float32", "image": "uint8"}
IMAGE_AXES = ("height", "width", "channel")


class SchemaError(ValueError):
    """A feature schema that is malformed, or that does not fit what it is used with."""


class ObservationError(ValueError):
    """An observation that does not fit the schema: missing key, wrong shape, NaN or inf."""


def _tuple(values: Iterable[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


@dataclass(frozen=True)
class Feature:
    """One observation input: a state vector or a camera's frames."""

    key: str
    kind: str
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None  # state: one per dimension; image: IMAGE_AXES
    units: tuple[str, ...] | None = None  # state: one per dimension

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "names", _tuple(self.names))
        object.__setattr__(self, "units", _tuple(self.units))
        if self.kind not in KINDS:
            raise SchemaError(f"feature {self.key!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "image" and (len(self.shape) != 3 or self.shape[2] != 3):
            raise SchemaError(f"feature {self.key!r}: images are (height, width, 3) RGB, got shape {self.shape}")
        if self.kind == "state" and len(self.shape) != 1:
            raise SchemaError(f"feature {self.key!r}: a state feature is a vector, got shape {self.shape}")
        for what, values in (("names", self.names), ("units", self.units)):
            if self.kind == "state" and values is not None and len(values) != self.shape[0]:
                raise SchemaError(f"feature {self.key!r}: {len(values)} {what} for {self.shape[0]} dimensions")

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_DTYPES[self.kind])

    @property
    def input_name(self) -> str:
        """The model input name (``images.wrist`` -> ``images_wrist``)."""
        return self.key.replace(".", "_")

    def stacked_shape(self, frame_stack: int) -> tuple[int, ...]:
        """The encoder's input shape: images carry ``frame_stack`` frames on the channel axis."""
        if self.kind == "image":
            h, w, c = self.shape
            return (h, w, c * frame_stack)
        return self.shape

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "shape": list(self.shape), "dtype": self.dtype.name}
        if self.names is not None:
            out["names"] = list(self.names)
        if self.units is not None:
            out["units"] = list(self.units)
        return out

    @classmethod
    def from_dict(cls, key: str, doc: Mapping[str, Any]) -> Feature:
        try:
            return cls(key, doc["kind"], tuple(doc["shape"]), doc.get("names"), doc.get("units"))
        except (KeyError, TypeError) as err:
            raise SchemaError(f"feature {key!r}: malformed ({type(err).__name__}: {err})") from err


@dataclass(frozen=True)
class ActionSpec:
    """The action: dimension names, native bounds and units, control mode."""

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    mode: str
    units: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("names", "low", "high", "units"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "low", tuple(float(v) for v in self.low))
        object.__setattr__(self, "high", tuple(float(v) for v in self.high))
        if not self.units:
            object.__setattr__(self, "units", ("",) * len(self.names))
        if self.mode not in CONTROL_MODES:
            raise SchemaError(f"action: control mode must be one of {CONTROL_MODES}, got {self.mode!r}")
        n = len(self.names)
        if not n or len(self.low) != n or len(self.high) != n or len(self.units) != n:
            raise SchemaError(
                f"action: {n} names, {len(self.low)} low, {len(self.high)} high and {len(self.units)} units "
                "must be equal in number (and at least one)"
            )
        if not all(np.isfinite(self.low + self.high)) or any(
            lo >= hi for lo, hi in zip(self.low, self.high, strict=True)
        ):
            raise SchemaError(f"action: bounds must be finite with low < high, got {self.low} / {self.high}")

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def low_array(self) -> np.ndarray:
        return np.asarray(self.low, np.float64)

    @property
    def high_array(self) -> np.ndarray:
        return np.asarray(self.high, np.float64)

    def to_native(self, action: np.ndarray) -> np.ndarray:
        """Normalised [-1, 1] -> native units (clipped to the bounds first)."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        return self.low_array + (a + 1.0) * 0.5 * (self.high_array - self.low_array)

    def from_native(self, native: np.ndarray) -> np.ndarray:
        """Native units -> normalised [-1, 1] (clipped)."""
        n = np.asarray(native, np.float64)
        return np.clip((n - self.low_array) / (self.high_array - self.low_array) * 2.0 - 1.0, -1.0, 1.0)

    def hold(self, measured: np.ndarray | None = None) -> np.ndarray:
        """The native command that holds the robot still in this control mode.

        ``position``: the measured position (required: the middle of the range would move the arm);
        ``velocity`` / ``effort`` / ``delta``: zero, clipped into the bounds.
        """
        if self.mode == "position":
            if measured is None:
                raise SchemaError("a position-mode hold needs the measured position")
            m = np.asarray(measured, np.float64)
            if m.shape != (self.dim,) or not np.all(np.isfinite(m)):
                raise SchemaError(f"measured position must be {self.dim} finite values, got {m.tolist()}")
            return np.clip(m, self.low_array, self.high_array)
        return np.clip(np.zeros(self.dim), self.low_array, self.high_array)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "names": list(self.names),
            "low": list(self.low),
            "high": list(self.high),
            "units": list(self.units),
            "mode": self.mode,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ActionSpec:
        try:
            return cls(tuple(doc["names"]), tuple(doc["low"]), tuple(doc["high"]), doc["mode"], tuple(doc["units"]))
        except (KeyError, TypeError) as err:
            raise SchemaError(f"action: malformed ({type(err).__name__}: {err})") from err


@dataclass(frozen=True)
class FeatureSchema:
    """Every observation feature (in the model's input order) and the action."""

    observation: Mapping[str, Feature]
    action: ActionSpec
    control_dt: float

    def __post_init__(self) -> None:
        ordered = dict(sorted(self.observation.items()))  # the one place the input order is decided
        for key, feature in ordered.items():
            if key != feature.key:
                raise SchemaError(f"feature listed as {key!r} has key {feature.key!r}")
        if not ordered:
            raise SchemaError("a schema needs at least one observation feature")
        if not self.control_dt > 0:
            raise SchemaError(f"control_dt must be positive, got {self.control_dt}")
        object.__setattr__(self, "observation", ordered)
        object.__setattr__(self, "control_dt", float(self.control_dt))

    @property
    def keys(self) -> list[str]:
        return list(self.observation)

    def of_kind(self, kind: str) -> list[Feature]:
        return [f for f in self.observation.values() if f.kind == kind]

    def select(self, keys: Iterable[str]) -> FeatureSchema:
        """The schema restricted to ``keys`` (e.g. the inputs one policy reads)."""
        keys = list(keys)
        missing = [k for k in keys if k not in self.observation]
        if missing:
            raise SchemaError(f"no observation features {missing}; the schema has {self.keys}")
        return replace(self, observation={k: self.observation[k] for k in keys})

    def check(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation's features, validated and cast to their dtypes; ObservationError otherwise."""
        checked = {}
        for key, feature in self.observation.items():
            if key not in obs:
                raise ObservationError(f"observation lacks {key!r} (needs {self.keys})")
            value = np.asarray(obs[key])
            if value.shape != feature.shape:
                raise ObservationError(f"observation {key!r} has shape {value.shape}, expected {feature.shape}")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ObservationError(f"observation {key!r} contains NaN or inf")
            checked[key] = value.astype(feature.dtype, copy=False)
        return checked

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SCHEMA_FORMAT,
            "format_version": SCHEMA_VERSION,
            "observation": {k: f.to_dict() for k, f in self.observation.items()},
            "action": self.action.to_dict(),
            "control_dt": self.control_dt,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FeatureSchema:
        if doc.get("format") != SCHEMA_FORMAT:
            raise SchemaError(f"not a {SCHEMA_FORMAT} document")
        if int(doc.get("format_version", -1)) > SCHEMA_VERSION:
            raise SchemaError(
                f"feature schema format version {doc['format_version']} is newer than this robo_q reads "
                f"({SCHEMA_VERSION}); upgrade robo_q"
            )
        try:
            observation = {k: Feature.from_dict(k, v) for k, v in doc["observation"].items()}
            return cls(observation, ActionSpec.from_dict(doc["action"]), doc["control_dt"])
        except (KeyError, AttributeError) as err:
            raise SchemaError(f"feature schema: malformed ({type(err).__name__}: {err})") from err


def state_feature(key: str, names: Sequence[str], units: Sequence[str] | str = "") -> Feature:
    """A state vector feature with one name (and unit) per dimension."""
    unit_list = [units] * len(names) if isinstance(units, str) else list(units)
    return Feature(key, "state", (len(names),), tuple(names), tuple(unit_list))


def image_feature(key: str, height: int, width: int) -> Feature:
    """An RGB camera feature (uint8 HWC)."""
    return Feature(key, "image", (height, width, 3), IMAGE_AXES)


def stack_frames(frames: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``frames[rows]`` [B, F, H, W, C] with the F frames concatenated on channels: [B, H, W, F * C].

    ``frames`` holds images [T, H, W, C] and ``rows`` [B, F] the frame indices, oldest first. The
    replay buffer and the deployment runtime both stack through this function.
    """
    rows = np.asarray(rows)
    if rows.shape[1] == 1:
        return frames[rows[:, 0]]
    out = np.empty((len(rows), *frames.shape[1:3], rows.shape[1], frames.shape[3]), frames.dtype)
    for f in range(rows.shape[1]):
        frame = frames[rows[:, f]]
        for c in range(frames.shape[3]):  # whole-plane copies: ~8x faster than a transpose with 3-byte runs
            out[..., f, c] = frame[..., c]
    return out.reshape(*out.shape[:3], -1)


def legacy_schema(
    observation_spec: Mapping[str, Mapping[str, Any]],
    low: Sequence[float],
    high: Sequence[float],
    control_dt: float,
    task: str,
    names: Sequence[str] | None = None,
    units: str | Sequence[str] = "",
) -> FeatureSchema:
    """The schema of a store, checkpoint or bundle written before schemas existed (format version 1).

    Those named cameras ``images.<camera>`` and recorded no control mode: Meta-World's actions are
    end-effector deltas; every other task then in use drove motors (effort).
    """
    observation = {}
    for key, spec in observation_spec.items():
        shape = tuple(spec["shape"])
        if key.startswith("images."):  # version-1 naming: the only place a key's prefix means anything
            observation[key] = image_feature(key, shape[0], shape[1])
        else:
            observation[key] = Feature(key, "state", shape)
    dim = len(low)
    names = list(names) if names else [f"action_{i}" for i in range(dim)]
    unit_list = [units] * dim if isinstance(units, str) else list(units)
    mode = "delta" if str(task).startswith("metaworld/") else "effort"
    return FeatureSchema(
        observation, ActionSpec(tuple(names), tuple(low), tuple(high), mode, tuple(unit_list)), control_dt
    )
