"""A stand-in for real hardware: a two-joint MuJoCo arm behind its own ROS 2 interface.

    python tests/ros_arm.py --out result.json [--camera-until N] [--after K] [--seed S]

Not our sim bridge: its own names (``arm_shoulder_joint``, ``arm_elbow_joint`` and an extra
``gripper_finger_joint``, published in shuffled order on ``/arm/joint_states`` at 100 Hz), a
``bgr8`` 96x128 wrist camera on ``/arm/wrist/image_raw`` at 15 Hz, and a ros2_control-style
position controller taking ``trajectory_msgs/JointTrajectory`` on
``/arm_controller/joint_trajectory`` (joints matched by name). It starts at a pose away from
the middle of the range. Every command is logged with the measured positions at its arrival;
after ``--camera-until`` commands the camera goes silent (a dropped camera), and ``K`` commands
later the arm writes ``--out`` and exits (0 without ``--camera-until``: serve until SIGINT).
Its homing routine, the ``/arm/reset`` service (std_srvs/Trigger), puts it at the next start pose
drawn from ``--seed`` (the sim's stand-in for an operator bringing a real arm home), at rest and
holding there.
"""

from __future__ import annotations

import argparse
import json
import signal
import time

import mujoco
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

JOINTS = ("arm_shoulder_joint", "arm_elbow_joint")
START = {"arm_shoulder_joint": 0.6, "arm_elbow_joint": -0.4, "gripper_finger_joint": 0.01}
PUBLISHED_ORDER = ("arm_elbow_joint", "gripper_finger_joint", "arm_shoulder_joint")
HOME_LOW, HOME_HIGH = np.array([0.2, -1.2]), np.array([1.2, -0.2])  # where /arm/reset puts the joints
MODEL = """
<mujoco model="two_joint_arm">
  <compiler angle="radian"/>
  <option timestep="0.002"/>
  <worldbody>
    <light pos="0 0 2"/>
    <geom type="plane" size="1 1 0.1" rgba=".8 .8 .8 1"/>
    <camera name="wrist" pos="0 -1.2 0.8" xyaxes="1 0 0 0 0.55 0.83"/>
    <body name="upper" pos="0 0 0.1">
      <joint name="arm_shoulder_joint" type="hinge" axis="0 0 1" range="-1.5 1.5" damping="1"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03" rgba=".9 .3 .2 1"/>
      <body name="fore" pos="0.3 0 0">
        <joint name="arm_elbow_joint" type="hinge" axis="0 0 1" range="-2 2" damping="1"/>
        <geom type="capsule" fromto="0 0 0 0.25 0 0" size="0.025" rgba=".2 .4 .9 1"/>
        <body name="finger" pos="0.25 0 0">
          <joint name="gripper_finger_joint" type="slide" axis="0 1 0" range="0 0.04"/>
          <geom type="box" size="0.01 0.01 0.02"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position joint="arm_shoulder_joint" kp="40"/>
    <position joint="arm_elbow_joint" kp="40"/>
    <position joint="gripper_finger_joint" kp="40"/>
  </actuator>
</mujoco>
"""


class Arm:
    def __init__(self, node, camera_until: int | None, after: int, seed: int = 0) -> None:
        self.model = mujoco.MjModel.from_xml_string(MODEL)
        self.data = mujoco.MjData(self.model)
        for i, (name, q) in enumerate(START.items()):  # actuators in START's order
            self.data.joint(name).qpos[0] = q
            self.data.ctrl[i] = q
        mujoco.mj_forward(self.model, self.data)
        self.renderer = mujoco.Renderer(self.model, 96, 128)
        self.node, self.camera_until, self.after = node, camera_until, after
        self.commands: list[dict] = []
        self.problems: list[str] = []
        self.done = False
        self.rng = np.random.default_rng(seed)
        self.resets: list[list[float]] = []
        sensor = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.joint_pub = node.create_publisher(JointState, "/arm/joint_states", sensor)
        self.camera_pub = node.create_publisher(Image, "/arm/wrist/image_raw", sensor)
        # Every command is kept (a starved process must not skip some and see false jumps).
        commands = QoSProfile(depth=10_000, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(JointTrajectory, "/arm_controller/joint_trajectory", self.on_command, commands)
        node.create_service(Trigger, "/arm/reset", self.reset)
        node.create_timer(0.01, self.step)
        node.create_timer(1 / 15, self.publish_camera)

    def position(self, name: str) -> float:
        return float(self.data.joint(name).qpos[0])

    def reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        pose = self.rng.uniform(HOME_LOW, HOME_HIGH)
        for i, name in enumerate(JOINTS):
            self.data.joint(name).qpos[0] = pose[i]
            self.data.joint(name).qvel[0] = 0.0
            self.data.ctrl[i] = pose[i]
        mujoco.mj_forward(self.model, self.data)
        self.resets.append(pose.tolist())
        response.success, response.message = True, json.dumps(dict(zip(JOINTS, pose.tolist(), strict=True)))
        return response

    def step(self) -> None:
        for _ in range(5):
            mujoco.mj_step(self.model, self.data)
        msg = JointState(name=list(PUBLISHED_ORDER))
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.position = [self.position(n) for n in PUBLISHED_ORDER]
        msg.velocity = [float(self.data.joint(n).qvel[0]) for n in PUBLISHED_ORDER]
        msg.effort = [0.0] * len(PUBLISHED_ORDER)
        self.joint_pub.publish(msg)

    def publish_camera(self) -> None:
        if self.camera_until is not None and len(self.commands) >= self.camera_until:
            return  # the camera dropped out
        self.renderer.update_scene(self.data, camera="wrist")
        bgr = np.ascontiguousarray(self.renderer.render()[:, :, ::-1])
        msg = Image(height=96, width=128, encoding="bgr8", step=128 * 3, data=bgr.tobytes())
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = "wrist_camera"
        self.camera_pub.publish(msg)

    def on_command(self, msg: JointTrajectory) -> None:
        measured = {n: self.position(n) for n in JOINTS}
        if not msg.points:
            self.problems.append("a trajectory without points")
            return
        positions = [float(v) for v in msg.points[0].positions]
        self.commands.append(
            {
                "t": time.monotonic(),
                "joint_names": list(msg.joint_names),
                "positions": positions,
                "measured": measured,
                "camera_live": self.camera_until is None or len(self.commands) < self.camera_until,
            }
        )
        if sorted(msg.joint_names) != sorted(JOINTS) or len(positions) != len(msg.joint_names):
            self.problems.append(f"command for joints {list(msg.joint_names)} with {len(positions)} positions")
            return
        for name, q in zip(msg.joint_names, positions, strict=True):  # the controller matches joints by name
            self.data.ctrl[JOINTS.index(name)] = q
        if self.camera_until is not None and len(self.commands) >= self.camera_until + self.after:
            self.done = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--camera-until", type=int, default=None)
    parser.add_argument("--after", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="of the start poses /arm/reset draws")
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("two_joint_arm")
    arm = Arm(node, args.camera_until, args.after, args.seed)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    signal.signal(signal.SIGINT, lambda *_: setattr(arm, "done", True))
    try:
        while not arm.done:
            executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        with open(args.out, "w") as f:
            json.dump({"start": START, "commands": arm.commands, "problems": arm.problems, "resets": arm.resets}, f)
        arm.renderer.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
