"""The policy as a ROS 2 lifecycle node: observations from topics, commands at the control rate.

Lifecycle: configure loads the bundle (through ``policies/``) and creates the subscriptions and
publishers; activate starts acting; deactivate stops and publishes a hold; cleanup releases
everything. Parameters (a ``ros__parameters`` YAML file, or defaults for `roboq sim-bridge`):

    bundle, backend (onnx|torch), rate (0: the bundle's control rate),
    trigger: timer (act on a timer at ``rate``) | observation (act once per new observation),
    observation.keys: [state, ...]; per key: observation.<key>.topic, .type
        (float64_multi_array | joint_state | pose_stamped), .joints and .fields (joint_state),
    command_topic, command_type (float64_multi_array | joint_trajectory), joint_names,
    stale_timeout (s), max_stale_ticks, estop_topic, max_delta (0: no rate limit),
    hold (zero | last), episode_topic (std_msgs/Int64: reset the policy), diagnostics_period (s).

Safety: a missing or stale observation (older than ``stale_timeout``) publishes a hold, and
once observations have arrived after activation, ``max_stale_ticks`` such ticks in a row
deactivate the node; NaN/inf or wrong-sized inputs
publish a hold with a throttled error, never a crash; a True on the (latched, transient-local)
e-stop topic publishes a hold and deactivates until a False arrives; actions are clipped and
rate-limited by the runtime's safety filter. Diagnostics (``/diagnostics``): loop period,
inference time, observation age, Q of the chosen action, stale ticks, rejected inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration as RclDuration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.timer import Timer
from std_msgs.msg import Bool, Float64MultiArray, Int64
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from policies import BundleError, ObservationError, Policy, load_policy
from ros_nodes import interfaces as io

DEFAULTS: dict[str, Any] = {
    "bundle": "",
    "backend": "onnx",
    "rate": 0.0,
    "trigger": "timer",
    "command_topic": io.COMMANDS,
    "command_type": "float64_multi_array",
    "joint_names": [""],
    "stale_timeout": 0.5,
    "max_stale_ticks": 20,
    "estop_topic": io.ESTOP,
    "max_delta": 0.0,
    "hold": "zero",
    "episode_topic": io.EPISODE_START,
    "diagnostics_period": 1.0,
}


class PolicyNode(LifecycleNode):
    def __init__(self, name: str = "robo_q_policy") -> None:
        super().__init__(name, automatically_declare_parameters_from_overrides=True)
        for key, value in DEFAULTS.items():
            if not self.has_parameter(key):
                self.declare_parameter(key, value)
        self.policy: Policy | None = None  # loaded by configure, released by cleanup
        self.estop = False
        self.stats: dict[str, float] = {"stale_ticks": 0, "rejected": 0, "ticks": 0}
        self._timer: Timer | None = None
        self._active = False

    @property
    def active(self) -> bool:
        return self._active

    @property
    def _loaded(self) -> Policy:
        """The policy, for code that runs only while configured (configure loads it, cleanup drops it)."""
        if self.policy is None:
            raise RuntimeError("policy node is not configured: no policy loaded")
        return self.policy

    # -- parameters ---------------------------------------------------------------------------
    def param(self, name: str, default: Any = None) -> Any:
        return self.get_parameter(name).value if self.has_parameter(name) else default

    def _sources(self) -> list[dict[str, Any]]:
        keys = self.param("observation.keys") or list(self._loaded.observation_spec)
        sources = []
        for key in keys:
            kind = self.param(f"observation.{key}.type", "float64_multi_array")
            if kind not in io.MESSAGE_TYPES:
                raise ValueError(f"observation.{key}.type must be one of {list(io.MESSAGE_TYPES)}, got {kind!r}")
            topic = self.param(
                f"observation.{key}.topic", io.STATE_OBSERVATION if key == "state" else f"/observation/{key}"
            )
            sources.append(
                {
                    "key": key,
                    "topic": topic,
                    "type": kind,
                    "joints": self.param(f"observation.{key}.joints"),
                    "fields": self.param(f"observation.{key}.fields"),
                    "value": None,
                    "stamp": 0.0,
                }
            )
        missing = set(self._loaded.observation_spec) - {s["key"] for s in sources}
        if missing:
            raise ValueError(f"no topic mapping for observation keys {sorted(missing)} the bundle needs")
        return sources

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            max_delta = self.param("max_delta") or None
            self.policy = policy = load_policy(self.param("bundle"), self.param("backend"), max_delta=max_delta)
            self.sources = self._sources()
        except (BundleError, ValueError, OSError) as err:
            self.get_logger().error(f"configure failed: {err}")
            self.policy = None
            return TransitionCallbackReturn.FAILURE
        self.period = 1.0 / self.param("rate") if self.param("rate") else policy.control_dt
        trajectory = self.param("command_type") == "joint_trajectory"
        self.pub_command = self.create_publisher(
            JointTrajectory if trajectory else Float64MultiArray, self.param("command_topic"), io.COMMAND_QOS
        )
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", io.EVENT_QOS)
        self.subs = [
            self.create_subscription(io.MESSAGE_TYPES[s["type"]], s["topic"], self._receiver(s), io.STATE_QOS)
            for s in self.sources
        ]
        self.subs.append(self.create_subscription(Bool, self.param("estop_topic"), self._on_estop, io.LATCHED_QOS))
        if self.param("episode_topic"):
            self.subs.append(
                self.create_subscription(
                    Int64, self.param("episode_topic"), lambda _: self._loaded.reset(), io.EVENT_QOS
                )
            )
        self.diag_timer = self.create_timer(self.param("diagnostics_period"), self._publish_diagnostics)
        # Created once and cancelled/reset: destroying a timer from a callback races the executor.
        self._timer = self.create_timer(self.period, self.tick) if self.param("trigger") == "timer" else None
        if self._timer is not None:
            self._timer.cancel()
        self.get_logger().info(
            f"configured: {self.param('bundle')} ({policy.spec['task']}), {1 / self.period:.1f} Hz, "
            f"commands on {self.param('command_topic')}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.estop:
            self.get_logger().error("activation refused: e-stop engaged")
            return TransitionCallbackReturn.FAILURE
        self._loaded.reset()
        self.stats["stale_ticks"] = 0
        self._last_tick: float | None = None
        self._received = False  # staleness counts only once observations have arrived
        if self._timer is not None:
            self._timer.reset()
        self._active = True
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        for sub in self.subs:
            self.destroy_subscription(sub)
        for timer in (self.diag_timer, self._timer):
            if timer is not None:
                self.destroy_timer(timer)
        self.destroy_publisher(self.pub_command)
        self.destroy_publisher(self.pub_diag)
        self.policy = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.policy is not None:
            self._stop()
        return TransitionCallbackReturn.SUCCESS

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        was_active, self._active = self._active, False
        if was_active or self.estop:
            self.publish_hold()

    # -- inputs -------------------------------------------------------------------------------
    def _receiver(self, source: dict[str, Any]) -> Callable[[Any], None]:
        def receive(msg: Any) -> None:
            try:
                source["value"] = io.to_array(msg, source["joints"], source["fields"])
            except (ValueError, TypeError) as err:
                source["value"] = None
                self._reject(f"{source['topic']}: {err}")
                return
            source["stamp"] = time.monotonic()
            if self.param("trigger") == "observation" and source is self.sources[0]:
                self.tick()

        return receive

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.estop:
            self.estop = True
            self.get_logger().error("E-STOP engaged: holding and deactivating")
            self.publish_hold()
            if self._active:
                self.trigger_deactivate()
        elif not msg.data and self.estop:
            self.estop = False
            self.get_logger().warning("e-stop released: the node may be activated again")

    def _reject(self, reason: str) -> None:
        self.stats["rejected"] += 1
        self.get_logger().error(f"holding: {reason}", throttle_duration_sec=1.0)

    # -- acting -------------------------------------------------------------------------------
    def observation(self) -> tuple[dict[str, np.ndarray] | None, float]:
        """The latest complete, fresh observation (None if any source is missing or stale) and its age."""
        now = time.monotonic()
        if any(s["value"] is None for s in self.sources):
            return None, float("inf")
        age = max(now - s["stamp"] for s in self.sources)
        if age > self.param("stale_timeout"):
            return None, age
        return {s["key"]: s["value"] for s in self.sources}, age

    def tick(self) -> None:
        if not self._active:
            return
        start = time.perf_counter()
        self.stats["loop_period"] = start - self._last_tick if self._last_tick else 0.0
        self._last_tick = start
        self.stats["ticks"] += 1
        if self.estop:
            self.publish_hold()
            return
        obs, age = self.observation()
        self.stats["observation_age"] = age
        if obs is None:
            self.publish_hold()
            if not self._received:  # nothing seen since activation yet: wait, holding
                return
            self.stats["stale_ticks"] += 1
            if self.stats["stale_ticks"] >= self.param("max_stale_ticks"):
                self.get_logger().error(f"observations stale for {self.stats['stale_ticks']} ticks: deactivating")
                self.trigger_deactivate()
            return
        self.stats["stale_ticks"] = 0
        self._received = True
        policy = self._loaded
        try:
            action = policy.act(obs)
        except ObservationError as err:
            self._reject(str(err))
            self.publish_hold()
            return
        self.publish(policy.to_native(action))
        self.stats["inference"] = time.perf_counter() - start
        self.stats["q"] = float(np.mean(policy.last_q)) if policy.last_q is not None else float("nan")

    def publish_hold(self) -> None:
        policy = self.policy
        if policy is None:
            return
        hold = policy.safety.hold if self.param("hold") == "last" else np.zeros(policy.spec["action"]["dim"])
        self.publish(policy.to_native(hold))

    def flush(self, seconds: float = 1.0) -> None:
        """Wait until subscribers acknowledged the commands sent (before the process exits)."""
        if self.policy is not None:
            self.pub_command.wait_for_all_acked(RclDuration(seconds=seconds))

    def publish(self, native: np.ndarray) -> None:
        if self.param("command_type") == "joint_trajectory":
            names = [n for n in self.param("joint_names") if n] or list(self._loaded.spec["action"]["names"])
            period = Duration(sec=int(2 * self.period), nanosec=int((2 * self.period % 1) * 1e9))
            self.pub_command.publish(
                JointTrajectory(
                    joint_names=names, points=[JointTrajectoryPoint(positions=native.tolist(), time_from_start=period)]
                )
            )
        else:
            self.pub_command.publish(io.float_array(native))

    def _publish_diagnostics(self) -> None:
        ms = {
            k: f"{self.stats.get(k, float('nan')) * 1e3:.3f}" for k in ("loop_period", "inference", "observation_age")
        }
        values = [KeyValue(key=f"{k}_ms", value=v) for k, v in ms.items()]
        values += [KeyValue(key=k, value=str(self.stats.get(k, ""))) for k in ("q", "stale_ticks", "rejected", "ticks")]
        level = DiagnosticStatus.ERROR if self.estop else DiagnosticStatus.OK if self._active else DiagnosticStatus.WARN
        status = DiagnosticStatus(
            level=level,
            name=self.get_name(),
            message="e-stop" if self.estop else "active" if self._active else "inactive",
            values=values,
        )
        diag = DiagnosticArray(status=[status])
        diag.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(diag)
