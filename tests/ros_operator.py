"""A scripted operator of the stand-in arm (tests/ros_arm.py): teleoperates it for demonstrations,
or supervises a deployed policy node's episodes on it, all through ROS 2.

    python tests/ros_operator.py teleop --episodes 12 --out teleop.json     # while `roboq record` runs
    python tests/ros_operator.py evaluate --episodes 5 --out eval.json      # with `roboq deploy autostart=false`

Every episode starts with the arm's homing service (``/arm/reset``: a new start pose) and a few
fresh joint states from there. Then
- ``teleop``: an episode is started on the recorder (``/robo_q_recorder/start_episode``) and the
  operator commands, at 20 Hz on the arm's JointTrajectory controller, a step of at most ``STEP``
  rad per joint towards ``GOAL`` with a little hand noise; the recorder's ``end_episode`` gets
  the outcome;
- ``evaluate``: the policy node is activated (lifecycle ``change_state``; configured once before
  the first episode), watched, and deactivated.
An episode succeeds once both joints have stayed within ``TOLERANCE`` of ``GOAL`` for ``SETTLED``
joint states in a row. It fails once the arm has received ``LIMIT_COMMANDS`` commands and sent
``LIMIT_STATES`` joint states in it (deadlines by progress on both sides, not by wall time).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable

import numpy as np
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

JOINTS = ("arm_shoulder_joint", "arm_elbow_joint")
CONTROLLER_ORDER = ("arm_elbow_joint", "arm_shoulder_joint")
GOAL = np.array([-0.5, 0.8])  # shoulder, elbow (rad)
STEP = 0.1  # rad per command
NOISE = 0.01  # rad: the operator's hand
TOLERANCE = 0.1
SETTLED = 5
LIMIT_COMMANDS, LIMIT_STATES = 80, 400
COMMAND_TOPIC = "/arm_controller/joint_trajectory"
PERIOD = 0.05


class Operator:
    def __init__(self, node, recorder: str, policy: str) -> None:
        self.node = node
        self.lock = threading.Lock()
        self.q: np.ndarray | None = None
        self.states = 0  # joint states received (all episodes)
        self.settled = 0  # joint states in a row within TOLERANCE of GOAL
        self.commands = 0  # commands seen on the controller's topic (all episodes)
        self.first_command: list[float] | None = None
        self.sent: list[list[float]] = []  # this episode's teleoperated commands (shoulder, elbow)
        sensor = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        node.create_subscription(JointState, "/arm/joint_states", self.on_state, sensor)
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(JointTrajectory, COMMAND_TOPIC, self.on_command, reliable)
        self.publisher = node.create_publisher(JointTrajectory, COMMAND_TOPIC, reliable)
        self.reset_client = node.create_client(Trigger, "/arm/reset")
        self.start_client = node.create_client(Trigger, f"/{recorder}/start_episode")
        self.end_client = node.create_client(SetBool, f"/{recorder}/end_episode")
        self.lifecycle = node.create_client(ChangeState, f"/{policy}/change_state")

    def on_state(self, msg: JointState) -> None:
        position = dict(zip(msg.name, msg.position, strict=True))
        q = np.array([position[j] for j in JOINTS])
        with self.lock:
            self.q, self.states = q, self.states + 1
            self.settled = self.settled + 1 if np.abs(q - GOAL).max() < TOLERANCE else 0

    def on_command(self, msg: JointTrajectory) -> None:
        with self.lock:
            self.commands += 1
            if self.first_command is None:
                by_name = dict(zip(msg.joint_names, msg.points[0].positions, strict=True))
                self.first_command = [float(by_name[j]) for j in JOINTS]

    def wait(self, condition: Callable[[], bool], what: str, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit  # a hang guard: the ROS graph has not come up at all
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"operator: waited {limit:g} s for {what}")
            time.sleep(0.02)

    def call(self, client, request, what: str):
        self.wait(lambda: client.service_is_ready(), f"the service {client.srv_name}")
        response = client.call(request)
        if response is None or not response.success:
            raise RuntimeError(f"operator: {what} failed ({response})")
        return response

    def home(self) -> np.ndarray:
        """Reset the arm to its next start pose; returns it once fresh joint states show it there."""
        start = json.loads(self.call(self.reset_client, Trigger.Request(), "/arm/reset").message)
        pose = np.array([start[j] for j in JOINTS])
        with self.lock:
            seen = self.states
        self.wait(lambda: self.states >= seen + 10 and np.abs(self.q - pose).max() < 0.02, "the arm at home")
        with self.lock:
            self.first_command = None  # the episode's first command is the next one
        return pose

    def run_episode(self, act: Callable[[np.ndarray], None] | None) -> dict:
        """Until settled at the goal or out of progress budget; ``act`` commands the arm each period."""
        with self.lock:
            states0, commands0, self.settled, self.sent = self.states, self.commands, 0, []
        while True:
            with self.lock:
                q, settled, states, commands = self.q.copy(), self.settled, self.states, self.commands
            if settled >= SETTLED:
                success = True
                break
            if commands - commands0 >= LIMIT_COMMANDS and states - states0 >= LIMIT_STATES:
                success = False
                break
            if act is not None:
                act(q)
            time.sleep(PERIOD)
        return {
            "success": success,
            "commands": commands - commands0,
            "joint_states": states - states0,
            "final_error": float(np.abs(q - GOAL).max()),
            "first_command": self.first_command,
            "sent": self.sent,
        }

    def teleoperate(self, q: np.ndarray, rng: np.random.Generator) -> None:
        target = q + np.clip(GOAL - q, -STEP, STEP) + rng.normal(0.0, NOISE, 2)
        by_name = dict(zip(JOINTS, target.tolist(), strict=True))
        point = JointTrajectoryPoint(positions=[by_name[j] for j in CONTROLLER_ORDER])
        point.time_from_start.nanosec = int(PERIOD * 1e9)
        msg = JointTrajectory(joint_names=list(CONTROLLER_ORDER), points=[point])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.publisher.publish(msg)
        self.sent.append(target.tolist())

    def quiet(self) -> None:
        """Wait until the controller has had no command for 10 joint states (a stop's hold has landed)."""
        last = (self.commands, self.states)

        def settled() -> bool:
            nonlocal last
            if self.commands != last[0]:
                last = (self.commands, self.states)
            return self.states - last[1] >= 10

        self.wait(settled, "the controller to go quiet")

    def transition(self, transition: int) -> None:
        self.wait(lambda: self.lifecycle.service_is_ready(), f"the service {self.lifecycle.srv_name}")
        response = self.lifecycle.call(ChangeState.Request(transition=Transition(id=transition)))
        if response is None or not response.success:
            raise RuntimeError(f"operator: lifecycle transition {transition} of the policy node failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("teleop", "evaluate"))
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0, help="of the operator's hand noise")
    parser.add_argument("--recorder", default="robo_q_recorder")
    parser.add_argument("--policy", default="robo_q_policy")
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("arm_operator")
    operator = Operator(node, args.recorder, args.policy)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    rng = np.random.default_rng(args.seed)
    episodes = []
    try:
        operator.wait(lambda: operator.q is not None, "joint states from the arm")
        if args.mode == "teleop":  # the recorder hears the arm and the operator's commands before episode 0
            operator.wait(
                lambda: node.count_subscribers("/arm/joint_states") >= 2 and node.count_subscribers(COMMAND_TOPIC) >= 2,
                "the recorder's subscriptions",
            )
            time.sleep(0.5)  # matched subscriptions need a moment before their first sample
        else:
            operator.transition(Transition.TRANSITION_CONFIGURE)
        for _ in range(args.episodes):
            start = operator.home()
            if args.mode == "teleop":
                operator.call(operator.start_client, Trigger.Request(), "start_episode")
                result = operator.run_episode(lambda q: operator.teleoperate(q, rng))
                operator.call(operator.end_client, SetBool.Request(data=result["success"]), "end_episode")
            else:
                operator.transition(Transition.TRANSITION_ACTIVATE)
                result = operator.run_episode(None)
                operator.transition(Transition.TRANSITION_DEACTIVATE)
                operator.quiet()
            episodes.append({"start": start.tolist(), **result})
            shown = {k: v for k, v in result.items() if k != "sent"}
            print(f"episode {len(episodes) - 1}: {shown}", flush=True)
    finally:
        with open(args.out, "w") as f:
            json.dump({"mode": args.mode, "goal": GOAL.tolist(), "episodes": episodes}, f, indent=1)
        executor.shutdown()  # spin() returns; the node is destroyed only once nothing spins it
        spinner.join(timeout=30)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
