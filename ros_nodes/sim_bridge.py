"""Any ``sim/`` task as a ROS 2 robot: joint states and observations out, commands in.

Publishes ``/joint_states`` (the model's hinge and slide joints, by the model's joint names),
``/observation/state`` (the task's state vector) and, per camera of the task (``cameras=``),
``/camera/<camera>/image_raw`` (``sensor_msgs/Image``, rgb8; with ``compressed``: also
``.../compressed``, jpeg) after every step, episode events on ``/sim/episode`` (seed at start),
``/sim/success`` and ``/sim/episode_result`` ([seed, success, length, return, *final state
observation]); applies
``std_msgs/Float64MultiArray`` commands in actuator units from ``/policy_controller/commands``;
``/sim/reset`` (std_msgs/Int64 seed) restarts the episode. With ``wait_for`` (node names, e.g. a
recorder), the first episode starts only once each of those nodes subscribes to
``/observation/state`` and has acknowledged the first observation: a node that discovers the bridge
late (a busy machine) would otherwise miss the start of the session.

Modes: ``realtime`` steps on a timer at the control rate, holding the last command (zero before
any); ``lockstep`` steps once per received command, as fast as commands arrive (deterministic;
the current observation is re-sent every 0.5 s while no command comes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from rclpy.duration import Duration as RclDuration
from rclpy.node import Node
from rclpy.publisher import Publisher
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, Int64

from ros_nodes import interfaces as io
from ros_nodes import messages as msgs
from sim import make_env

HEARTBEAT_S = 0.5
RESTART_GAP_S = 0.1  # between an episode's result and the next episode's start


class SimBridge(Node):
    def __init__(
        self,
        task: str,
        env_settings: dict[str, Any],
        *,
        mode: str = "realtime",
        rate: float | None = None,
        seed: int = 1_000_000,
        episodes: int | None = None,
        results: str | None = None,
        compressed: bool = False,
        wait_for: tuple[str, ...] = (),
    ) -> None:
        super().__init__("robo_q_sim_bridge")
        if mode not in ("realtime", "lockstep"):
            raise ValueError(f"mode must be realtime or lockstep, got {mode!r}")
        self.env = make_env(task, **env_settings)
        self.mode, self.episodes, self.results_path = mode, episodes, results
        self.period = 1.0 / rate if rate else self.env.control_dt
        m = self.env.model
        joints = [
            j for j in range(m.njnt) if m.jnt_type[j] in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
        ]
        self.joint_names = [m.joint(j).name or f"joint_{j}" for j in joints]
        self._qpos, self._qvel = m.jnt_qposadr[joints], m.jnt_dofadr[joints]
        self.pub_joints = self.create_publisher(JointState, io.JOINT_STATES, io.COMMAND_QOS)
        self.pub_obs = self.create_publisher(Float64MultiArray, io.STATE_OBSERVATION, io.COMMAND_QOS)
        image = msgs.message_class(msgs.IMAGE)
        self.pub_images: dict[str, Publisher] = {
            f"images.{cam}": self.create_publisher(image, io.CAMERA.format(cam), io.COMMAND_QOS)
            for cam in self.env.cameras
        }
        self.pub_compressed: dict[str, Publisher] = {
            f"images.{cam}": self.create_publisher(
                msgs.message_class(msgs.COMPRESSED_IMAGE), io.CAMERA.format(cam) + "/compressed", io.COMMAND_QOS
            )
            for cam in (self.env.cameras if compressed else ())
        }
        self.pub_success = self.create_publisher(Bool, io.SUCCESS, io.EVENT_QOS)
        self.pub_start = self.create_publisher(Int64, io.EPISODE_START, io.LATCHED_QOS)
        self.pub_result = self.create_publisher(Float64MultiArray, io.EPISODE_RESULT, io.EVENT_QOS)
        # Created first, so the executor handles a pending reset before a pending command: a command
        # sent after a reset was acknowledged steps the new episode, never the old one.
        self.create_subscription(Int64, io.RESET, lambda msg: self.start_episode(msg.data), io.EVENT_QOS)
        self.create_subscription(Float64MultiArray, io.COMMANDS, self._on_command, io.COMMAND_QOS)
        self.command = np.zeros(self.env.action_dim)  # normalised; zero = hold still
        self.results: list[dict[str, Any]] = []
        self.done = False
        self.steps = 0
        self._next_seed = seed
        self._last_publish = time.monotonic()
        self._restart_at: float | None = None
        self._waiting_for = set(wait_for)
        self._first_seed = seed
        if not self._waiting_for:
            self.start_episode(seed)
        self.create_timer(self.period if mode == "realtime" else RESTART_GAP_S / 2, self._tick)

    def start_episode(self, seed: int) -> None:
        self._restart_at = None
        self.obs, _ = self.env.reset(seed)
        self._next_seed = seed + 1
        self._success, self._return = False, 0.0
        self.pub_start.publish(Int64(data=seed))
        self._publish()

    def _publish(self) -> None:
        stamp = self.get_clock().now().to_msg()
        msg = JointState(
            name=self.joint_names,
            position=self.env.data.qpos[self._qpos].tolist(),
            velocity=self.env.data.qvel[self._qvel].tolist(),
        )
        msg.header.stamp = stamp
        self.pub_joints.publish(msg)
        for key, pub in self.pub_images.items():  # images first: a policy acts once the state arrives too
            image = msgs.image_message(self.obs[key], frame_id=key)
            image.header.stamp = stamp
            pub.publish(image)
        for key, pub in self.pub_compressed.items():
            pub.publish(msgs.compressed_image_message(self.obs[key], frame_id=key))
        self.pub_obs.publish(msgs.float_array(self.obs["state"]))
        self._last_publish = time.monotonic()

    def _on_command(self, msg: Float64MultiArray) -> None:
        native = np.asarray(msg.data, dtype=np.float64)
        if native.shape != (self.env.action_dim,) or not np.all(np.isfinite(native)):
            self.get_logger().error(
                f"ignoring command {native.tolist()}: needs {self.env.action_dim} finite values",
                throttle_duration_sec=1.0,
            )
            return
        self.command = self.env.action_spec.from_native(native)
        if self.mode == "lockstep" and not self.done and self._restart_at is None:
            self._step()

    def _tick(self) -> None:
        if self.done:
            return
        if self._waiting_for:
            self._start_when_listened_to()
            return
        if self._restart_at is not None:
            if time.monotonic() >= self._restart_at:
                self.start_episode(self._next_seed)
            return
        if self.mode == "realtime":
            self._step()
        elif time.monotonic() - self._last_publish > HEARTBEAT_S:
            self._publish()

    def _step(self) -> None:
        self.obs, reward, terminated, truncated, info = self.env.step(self.command)
        self.steps += 1
        self._success = self._success or info["success"]
        self._return += reward
        self.pub_success.publish(Bool(data=bool(info["success"])))
        if not (terminated or truncated):
            self._publish()
            return
        # The final observation travels in the result, not on /observation/state: nothing should
        # act on it (in lockstep the answer would step the next episode).
        seed = self.env.episode_seed
        result = {"seed": seed, "success": self._success, "length": self.env.elapsed_steps, "return": self._return}
        self.results.append(result)
        self.pub_result.publish(
            msgs.float_array([seed, float(self._success), result["length"], self._return, *self.obs["state"]])
        )
        self.get_logger().info(
            f"episode seed {seed}: {'success' if self._success else 'failure'} after {result['length']} steps"
        )
        if self.episodes is not None and len(self.results) >= self.episodes:
            self.done = True
            self.write_results()
        else:  # the next episode starts once every subscriber holds the result, and a little later
            self.pub_result.wait_for_all_acked(RclDuration(seconds=1.0))
            self._restart_at = time.monotonic() + RESTART_GAP_S

    def _start_when_listened_to(self) -> None:
        """Start the first episode once every ``wait_for`` node subscribes to the observations and
        holds the first one (acknowledged), so none of the session's messages reach it unmatched."""
        listening = {info.node_name for info in self.get_subscriptions_info_by_topic(io.STATE_OBSERVATION)}
        missing = self._waiting_for - listening
        if missing:
            self.get_logger().info(
                f"waiting for {sorted(missing)} to subscribe to {io.STATE_OBSERVATION}", throttle_duration_sec=5.0
            )
            return
        self._waiting_for = set()
        self.start_episode(self._first_seed)
        for pub in (self.pub_start, self.pub_obs, self.pub_joints):
            pub.wait_for_all_acked(RclDuration(seconds=15.0))

    def finish(self, seconds: float = 15.0) -> None:
        """Before the process exits: wait (up to ``seconds`` each) until subscribers acknowledged the
        episode events, so a recorder or session never misses the last result; write the results.
        The wait ends as soon as every subscriber has acknowledged: the limit only matters for one that
        died, and a short one let a recorder starved of CPU lose the last episode's result."""
        for pub in (self.pub_success, self.pub_start, self.pub_result):
            pub.wait_for_all_acked(RclDuration(seconds=seconds))
        self.write_results()

    def write_results(self) -> None:
        if self.results_path:
            rate = float(np.mean([r["success"] for r in self.results])) if self.results else 0.0
            Path(self.results_path).write_text(
                json.dumps({"task": self.env.task, "success_rate": rate, "episodes": self.results}, indent=2)
            )
