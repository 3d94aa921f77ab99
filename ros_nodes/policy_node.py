"""The policy as a ROS 2 lifecycle node: observations from a robot's topics, commands at the control rate.

Lifecycle: configure loads the bundle (through ``policies/``, no torch), reads the robot profile,
checks it against the bundle's features (one error listing every mismatch) and creates the
subscriptions and the command publisher; activate starts acting; deactivate stops and publishes
a hold; cleanup releases everything. Parameters (a ``ros__parameters`` file or ``-p``):

    bundle, backend (onnx|torch), robot (a robot profile YAML; "" = the `roboq sim-bridge` one),
    rate (0: the profile's, else the bundle's control rate), trigger: timer (act at ``rate``) |
    observation (act once every observation topic has a new message), max_stale_ticks,
    estop_topic, max_delta (per-step limit on the normalised action; 0: off),
    episode_topic (std_msgs/Int64: a new episode), diagnostics_period (s).

Parameters files written before robot profiles (``observation.keys``, ``observation.<key>.topic``
/ ``.type`` / ``.joints`` / ``.fields``, ``command_topic``, ``command_type``, ``joint_names``,
``stale_timeout``) still work: they are read as a profile.

Safety: every command passes the runtime's safety filter (clipped to the bundle's bounds, finite,
and rate-limited from the first command after activation, relative to the hold the robot is at).
A hold is the control mode's stand-still command: position -> the last command sent (before any:
the measured position from the profile's ``command.feedback``), velocity / effort / delta -> zero.
While active, holds approach that command within the rate limit; a stop (deactivate, e-stop,
shutdown) sends it at once. A missing or stale topic, NaN/inf, wrong sizes, joints or image
encodings hold with a throttled error; ``max_stale_ticks`` stale ticks in a row (once
observations have arrived) deactivate the node; a True on the latched e-stop topic holds and
deactivates until a False arrives. Diagnostics (``/diagnostics``): loop period, inference time,
Q of the chosen action, stale ticks, rejected inputs, per-topic age and rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration as RclDuration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.timer import Timer
from std_msgs.msg import Bool, Int64

from policies import BundleError, ObservationError, Policy, load_policy
from ros_nodes import interfaces as io
from ros_nodes import messages as msgs
from ros_nodes.assembler import ObservationAssembler
from ros_nodes.profile import BoundCommand, RobotProfile, default_profile_path

DEFAULTS: dict[str, Any] = {
    "bundle": "",
    "backend": "onnx",
    "robot": "",
    "rate": 0.0,
    "trigger": "timer",
    "max_stale_ticks": 20,
    "estop_topic": io.ESTOP,
    "max_delta": 0.0,
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
        self._started = False  # a command was computed since activation (the rate limit has its start)
        self._last_native: np.ndarray | None = None  # the last command sent
        self._last_observed = 0.0  # trigger=observation: act on messages newer than this

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

    def profile(self) -> RobotProfile:
        """The robot profile: the ``robot`` file, else the sim bridge's (read with any pre-profile parameters)."""
        if self.param("robot"):
            return RobotProfile.load(self.param("robot"))
        path = default_profile_path()
        doc = yaml.safe_load(path.read_text())
        legacy = {}
        for key in self.param("observation.keys") or []:
            source = {
                "topic": self.param(f"observation.{key}.topic", f"/observation/{key}"),
                "type": self.param(f"observation.{key}.type", "float64_multi_array"),
            }
            for setting in ("joints", "fields"):
                if self.param(f"observation.{key}.{setting}"):
                    source[setting] = list(self.param(f"observation.{key}.{setting}"))
            legacy[key] = [source]
        doc["observation"] = legacy or doc["observation"]
        command = doc["command"]
        command["topic"] = self.param("command_topic", command["topic"])
        command["type"] = self.param("command_type", command["type"])
        if [n for n in self.param("joint_names", []) if n]:
            command["joints"] = [n for n in self.param("joint_names") if n]
        doc["max_age"] = self.param("stale_timeout", doc.get("max_age", 0.5))
        return RobotProfile.from_dict(doc, str(path))

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            max_delta = self.param("max_delta") or None
            self.policy = policy = load_policy(self.param("bundle"), self.param("backend"), max_delta=max_delta)
            profile = self.profile()
            self.command: BoundCommand = profile.bind(policy.features, policy.control_dt)
            self.assembler = ObservationAssembler(profile, policy.features)
        except (BundleError, ValueError, OSError) as err:  # ProfileError is a ValueError
            self.get_logger().error(f"configure failed: {err}")
            self.policy = None
            return TransitionCallbackReturn.FAILURE
        self.period = 1.0 / (self.param("rate") or profile.rate or 1.0 / policy.control_dt)
        self.pub_command: Publisher = self.create_publisher(
            msgs.message_class(profile.command.type), profile.command.topic, io.COMMAND_QOS
        )
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", io.EVENT_QOS)
        self.subs = [
            self.create_subscription(msgs.message_class(s.type), topic, self._receiver(topic), io.qos(s.qos))
            for topic, s in self.assembler.topics().items()
        ]
        self.subs.append(self.create_subscription(Bool, self.param("estop_topic"), self._on_estop, io.LATCHED_QOS))
        if self.param("episode_topic"):
            self.subs.append(
                self.create_subscription(Int64, self.param("episode_topic"), self._on_episode, io.EVENT_QOS)
            )
        self.diag_timer = self.create_timer(self.param("diagnostics_period"), self._publish_diagnostics)
        # Created once and cancelled/reset: destroying a timer from a callback races the executor.
        self._timer = self.create_timer(self.period, self.tick) if self.param("trigger") == "timer" else None
        if self._timer is not None:
            self._timer.cancel()
        self.get_logger().info(
            f"configured: {self.param('bundle')} ({policy.spec['task']}, {policy.features.action.mode} control) "
            f"on robot {profile.name}, {1 / self.period:.1f} Hz, commands on {profile.command.topic}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.estop:
            self.get_logger().error("activation refused: e-stop engaged")
            return TransitionCallbackReturn.FAILURE
        self._started = False
        self._last_native = None
        self.stats["stale_ticks"] = 0
        self._last_tick: float | None = None
        self._last_observed = time.monotonic()
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
            self.publish_hold(at_once=True)

    # -- inputs -------------------------------------------------------------------------------
    def _receiver(self, topic: str) -> Callable[[Any], None]:
        def receive(msg: Any) -> None:
            for error in self.assembler.receive(topic, msg, time.monotonic()):
                self._reject(error)
            if self.param("trigger") == "observation" and self.assembler.updated_since(self._last_observed):
                self.tick()

        return receive

    def _on_episode(self, msg: Int64) -> None:
        self._started = False  # the next command starts a new action sequence from the hold

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.estop:
            self.estop = True
            self.get_logger().error("E-STOP engaged: holding and deactivating")
            self.publish_hold(at_once=True)
            if self._active:
                self.trigger_deactivate()
        elif not msg.data and self.estop:
            self.estop = False
            self.get_logger().warning("e-stop released: the node may be activated again")

    def _reject(self, reason: str) -> None:
        self.stats["rejected"] += 1
        self.get_logger().error(f"holding: {reason}", throttle_duration_sec=1.0)

    # -- acting -------------------------------------------------------------------------------
    def hold_target(self) -> np.ndarray | None:
        """The native stand-still command of the control mode (None: position mode, nothing measured)."""
        action = self._loaded.features.action
        if action.mode != "position":
            return action.hold()
        if self._last_native is not None:
            return self._last_native
        measured = self.assembler.measured(time.monotonic())
        return None if measured is None else action.hold(measured)

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
        now = time.monotonic()
        self._last_observed = now
        obs = self.assembler.observation(now)
        if obs is None:
            self.publish_hold()
            stale = self.assembler.stale(now)
            if not stale:  # bad messages (already reported): hold and keep running
                return
            if self._received:  # staleness counts once observations have arrived since activation
                self.stats["stale_ticks"] += 1
                self._reject(f"stale or missing: {', '.join(stale)}")
                if self.stats["stale_ticks"] >= self.param("max_stale_ticks"):
                    self.get_logger().error(f"observations stale for {self.stats['stale_ticks']} ticks: deactivating")
                    self.trigger_deactivate()
            return
        self.stats["stale_ticks"] = 0
        self._received = True
        policy = self._loaded
        if not self._started:  # the first command is rate-limited relative to where the robot holds
            hold = self.hold_target()
            if hold is None:
                self._reject("position-mode bundle: no measured position on the feedback topic yet")
                return
            policy.reset(hold=policy.features.action.from_native(hold))
            self._started = True
        try:
            action = policy.act(obs)
        except ObservationError as err:
            self._reject(str(err))
            self.publish_hold()
            return
        self.publish(policy.to_native(action))
        self.stats["inference"] = time.perf_counter() - start
        self.stats["q"] = float(np.mean(policy.last_q)) if policy.last_q is not None else float("nan")

    def publish_hold(self, at_once: bool = False) -> None:
        """Publish the hold; while acting, within the rate limit of the last command (``at_once``: a stop)."""
        policy = self.policy
        target = None if policy is None else self.hold_target()
        if policy is None or target is None:
            return
        if self._started and not at_once:
            target = policy.to_native(policy.safety(policy.features.action.from_native(target)))
        self.publish(target)

    def flush(self, seconds: float = 1.0) -> None:
        """Wait until subscribers acknowledged the commands sent (before the process exits)."""
        if self.policy is not None:
            self.pub_command.wait_for_all_acked(RclDuration(seconds=seconds))

    def publish(self, native: np.ndarray) -> None:
        self._last_native = np.asarray(native, np.float64)
        self.pub_command.publish(self.command.message(native))

    def _publish_diagnostics(self) -> None:
        ms = {k: f"{self.stats.get(k, float('nan')) * 1e3:.3f}" for k in ("loop_period", "inference")}
        values = [KeyValue(key=f"{k}_ms", value=v) for k, v in ms.items()]
        values += [KeyValue(key=k, value=str(self.stats.get(k, ""))) for k in ("q", "stale_ticks", "rejected", "ticks")]
        if self.policy is not None:
            now = time.monotonic()
            for topic, age in self.assembler.ages(now).items():
                rate = max(s.rate for s in self.assembler.by_topic[topic])
                values += [
                    KeyValue(key=f"age_ms {topic}", value=f"{age * 1e3:.1f}"),
                    KeyValue(key=f"rate_hz {topic}", value=f"{rate:.1f}"),
                ]
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
