"""The deployable policy: a bundle loaded for ``reset()`` / ``act(observation)`` at control rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from policies.backends import BACKENDS
from policies.bundle import BundleError, bundle_features, read_spec
from policies.features import FeatureSchema
from policies.safety import SafetyFilter
from policies.schedule import SequencePolicy


class Policy(SequencePolicy):
    """Validates observations, runs inference, schedules action sequences and filters the result.

    ``act(obs)`` takes one observation dict ({key: array} per ``spec["observation"]``, camera
    frames unstacked) and returns one normalised action in [-1, 1]; ``to_native`` maps it to
    the actuators' units. ``last_q`` holds the critic's Q of the last predicted action (if any).
    """

    def __init__(
        self, bundle: str | Path, backend: str = "onnx", threads: int = 1, max_delta: float | None = None
    ) -> None:
        self.bundle = Path(bundle)
        self.spec = read_spec(self.bundle)
        self._features = bundle_features(self.spec)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        filename, backend_cls = BACKENDS[backend]
        try:
            self.backend = backend_cls(self.bundle / filename, threads)
        except Exception as err:  # the runtimes raise their own exception types for bad models
            raise BundleError(f"{self.bundle}: cannot load {filename} ({type(err).__name__}: {err})") from err
        seq = self.spec["sequence"]
        super().__init__(
            self._predict,
            seq["length"],
            seq["execution"],
            seq["ensemble_gain"],
            self.spec.get("frame_stack", 1),
            [f.key for f in self._features.of_kind("image")],
        )
        dim = self.spec["action"]["dim"]
        self.safety = SafetyFilter(-np.ones(dim), np.ones(dim), max_delta)
        self.last_q: np.ndarray | None = None
        self._inputs = {key: o["input"] for key, o in self.spec["observation"].items()}  # key -> graph input

    @property
    def control_dt(self) -> float:
        return float(self.spec["control_dt"])

    @property
    def observation_spec(self) -> dict[str, dict[str, Any]]:
        return self.spec["observation"]

    @property
    def features(self) -> FeatureSchema:
        """The bundle's feature schema: its observation inputs and its action."""
        return self._features

    def reset(self, hold: np.ndarray | None = None) -> None:
        """Start an episode. ``hold``: the normalised action the robot holds now (its measured position
        in position mode); the first action is rate-limited relative to it, as every later one."""
        super().reset()
        self.safety.reset(hold)
        self.last_q = None

    def check(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation keys the policy reads, validated and cast; ObservationError otherwise."""
        return self._features.check(obs)

    def _predict(self, stacked: dict[str, np.ndarray]) -> np.ndarray:
        outputs = self.backend({self._inputs[k]: np.ascontiguousarray(v[None]) for k, v in stacked.items()})
        self.last_q = outputs[1][0] if len(outputs) > 1 else None
        return outputs[0][0]

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One control step: validated observation in, safe normalised action out."""
        return self.safety(super().act(self.check(obs)))

    def to_native(self, action: np.ndarray) -> np.ndarray:
        """Normalised [-1, 1] action -> actuator units (the bundle's action bounds)."""
        return self.features.action.to_native(action)


def load_policy(bundle: str | Path, backend: str = "onnx", threads: int = 1, max_delta: float | None = None) -> Policy:
    """Load and verify a bundle; ``backend`` is ``onnx`` (default, no torch needed) or ``torch``."""
    return Policy(bundle, backend, threads, max_delta)
