"""ROS 2 nodes as separate processes over loopback: closed loop with the sim bridge, and faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Bool, Float64MultiArray

from policies import load_policy
from robo_q.evaluate import evaluate
from ros_nodes import interfaces as io
from ros_nodes.policy_node import ESTOP_QOS
from sim import make_env

_domain = iter(range(60 + os.getpid() % 40 * 3, 232))


def roboq(*args: str, domain: int, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "robo_q.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> str:
    if proc.poll() is None:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    return out


def test_closed_loop_matches_in_process_evaluation(trained, tmp_path):
    _, bundles = trained
    domain = next(_domain)
    results = tmp_path / "bridge.json"
    policy = roboq("deploy", f"bundle={bundles['bc']}", "trigger=observation", domain=domain)
    bridge = roboq("sim-bridge", "task=metaworld/drawer-open", "mode=lockstep", "episodes=3", f"results={results}", domain=domain)
    try:
        bridge_out, _ = bridge.communicate(timeout=240)
    finally:
        policy_out = stop(policy)
    assert bridge.returncode == 0, bridge_out
    assert policy.returncode == 0, policy_out
    over_ros = json.loads(results.read_text())
    with make_env("metaworld/drawer-open") as env:
        in_process = evaluate(load_policy(bundles["bc"]), env, 3)
    assert [e["seed"] for e in over_ros["episodes"]] == in_process["seeds"]
    assert abs(over_ros["success_rate"] - in_process["success_rate"]) <= 0.1
    assert in_process["success_rate"] > 0


class Robot:
    """The test's side of the wire: a real rclpy node publishing observations and watching commands."""

    def __init__(self, domain: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("test_robot", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.obs_pub = self.node.create_publisher(Float64MultiArray, io.STATE_OBSERVATION, io.COMMAND_QOS)
        self.estop_pub = self.node.create_publisher(Bool, io.ESTOP, ESTOP_QOS)
        self.commands: list[tuple[float, np.ndarray]] = []
        self.node.create_subscription(Float64MultiArray, io.COMMANDS, lambda m: self.commands.append((time.monotonic(), np.array(m.data))), io.COMMAND_QOS)
        self.change = self.node.create_client(ChangeState, "/robo_q_policy/change_state")
        self.get = self.node.create_client(GetState, "/robo_q_policy/get_state")

    def run(self, seconds: float, obs: np.ndarray | None = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if obs is not None:
                self.obs_pub.publish(io.float_array(obs))
            self.executor.spin_once(timeout_sec=0.01)

    def wait(self, condition, timeout: float, obs: np.ndarray | None = None) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            self.run(0.02, obs)
        return condition()

    def call(self, client, request, obs: np.ndarray | None = None):
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(request)
        assert self.wait(future.done, 10.0, obs)
        return future.result()

    def state(self) -> str:
        return self.call(self.get, GetState.Request()).current_state.label

    def activate(self, obs: np.ndarray | None = None) -> bool:
        return self.call(self.change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVATE)), obs).success

    def commands_since(self, t: float) -> list[np.ndarray]:
        return [c for s, c in self.commands if s >= t]

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def test_faults_hold_deactivate_estop_and_reactivate(trained, tmp_path):
    _, bundles = trained
    domain = next(_domain)
    params = tmp_path / "params.yaml"
    params.write_text("robo_q_policy:\n  ros__parameters:\n    stale_timeout: 0.2\n    max_stale_ticks: 8\n")
    policy = roboq("deploy", f"bundle={bundles['cqn_as']}", f"params={params}", domain=domain)
    robot = Robot(domain)
    good = np.zeros(39)
    hold = np.zeros(4)  # metaworld: the zero action in its native units
    try:
        # normal operation: commands of the right size come back at the control rate
        assert robot.wait(lambda: len(robot.commands) > 20, 60.0, good), "no commands from the policy node"
        t = time.monotonic()
        robot.run(0.5, good)
        normal = robot.commands_since(t)
        assert len(normal) > 15 and all(c.shape == (4,) and np.all(np.isfinite(c)) for c in normal)

        # NaN and wrong-length observations: hold, keep running
        for bad in (np.full(39, np.nan), np.zeros(38)):
            t = time.monotonic()
            robot.run(0.4, bad)
            held = robot.commands_since(t + 0.1)
            assert len(held) > 10 and all(np.array_equal(c, hold) for c in held)
            assert policy.poll() is None
        assert robot.state() == "active"

        # the robot goes silent: hold, then the node deactivates itself
        assert robot.wait(lambda: robot.state() == "inactive", 10.0)
        t = time.monotonic()
        robot.run(0.3)
        assert robot.commands_since(t) == []  # inactive: nothing is commanded

        # the robot comes back: the node can be re-activated through its lifecycle service
        assert robot.activate(good)
        t = time.monotonic()
        robot.run(0.3, good)
        assert len(robot.commands_since(t)) > 10

        # e-stop latches: hold, deactivate, refuse activation until released
        robot.estop_pub.publish(Bool(data=True))
        assert robot.wait(lambda: robot.state() == "inactive", 10.0, good)
        assert robot.commands[-1][1].tolist() == hold.tolist()
        assert not robot.activate(good)
        robot.estop_pub.publish(Bool(data=False))
        robot.run(0.3, good)
        assert robot.activate(good)
        t = time.monotonic()
        robot.run(0.3, good)
        assert len(robot.commands_since(t)) > 10
    finally:
        out = stop(policy)
        robot.run(0.3)
        robot.close()
    assert policy.returncode == 0, out
    assert "E-STOP engaged" in out and "stale" in out and "holding" in out
    assert robot.commands[-1][1].tolist() == hold.tolist()  # Ctrl-C published a final hold
