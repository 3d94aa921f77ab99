"""ROS 2 nodes as separate processes over loopback: closed loop with the sim bridge, and faults."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Bool, Float64MultiArray

from policies import load_policy
from robo_q.commands.ros import profile_path
from robo_q.evaluate import evaluate
from ros_nodes import interfaces as io
from ros_nodes import messages as msgs
from ros_nodes.domains import free_domains
from sim import make_env

_domain = free_domains()


def roboq(*args: str, domain: int, extra_env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "robo_q.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


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
    bridge = roboq(
        "sim-bridge", "task=metaworld/drawer-open", "mode=lockstep", "episodes=3", f"results={results}", domain=domain
    )
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
        self.estop_pub = self.node.create_publisher(Bool, io.ESTOP, io.LATCHED_QOS)
        self.commands: list[tuple[float, np.ndarray]] = []
        self.node.create_subscription(
            Float64MultiArray,
            io.COMMANDS,
            lambda m: self.commands.append((time.monotonic(), np.array(m.data))),
            io.COMMAND_QOS,
        )
        self.change = self.node.create_client(ChangeState, "/robo_q_policy/change_state")
        self.get = self.node.create_client(GetState, "/robo_q_policy/get_state")

    def run(self, seconds: float, obs: np.ndarray | None = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if obs is not None:
                self.obs_pub.publish(msgs.float_array(obs))
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
        return self.call(
            self.change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVATE)), obs
        ).success

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
        robot.run(0.2, good)  # let the hold in flight arrive
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


def test_record_an_expert_session_train_on_it_and_replay_the_log(trained, tmp_path):
    """Scripted expert drives the sim bridge over ROS; the recording trains and replays offline."""
    from robo_q.data import EpisodeStore
    from sim.experts import make_expert

    _, bundles = trained
    domain = next(_domain)
    session = tmp_path / "session"
    recorder = roboq("record", f"out={session}", "task=metaworld/drawer-open", "episodes=2", domain=domain)
    robot = Robot(domain)
    with make_env("metaworld/drawer-open") as env:
        expert = make_expert(env)
    pub = robot.node.create_publisher(Float64MultiArray, io.COMMANDS, io.COMMAND_QOS)
    robot.node.create_subscription(
        Float64MultiArray,
        io.STATE_OBSERVATION,
        lambda m: pub.publish(msgs.float_array(expert.act({"state": np.array(m.data)}))),
        io.STATE_QOS,
    )
    try:
        assert robot.wait(lambda: robot.node.count_subscribers(io.STATE_OBSERVATION) >= 2, 30.0), (
            "recorder not discovered"
        )
        bridge = roboq(
            "sim-bridge",
            "task=metaworld/drawer-open",
            "mode=lockstep",
            "episodes=2",
            "wait_for=[robo_q_recorder]",
            domain=domain,
        )
        assert robot.wait(lambda: bridge.poll() is not None, 120.0)
        assert robot.wait(lambda: recorder.poll() is not None, 30.0), (
            f"recorder did not stop after 2 episodes:\n{stop(recorder)}"
        )
    finally:
        for proc in (recorder,):
            stop(proc)
        robot.close()
    assert recorder.returncode == 0 and bridge.returncode == 0, recorder.stdout.read() if recorder.stdout else ""
    store = EpisodeStore.open(session / "episodes.zarr")
    assert store.num_episodes == 2 and store.attrs["source"] == "ros"
    assert store.episode_meta()["success"].all() and store.episode_meta()["seed"].tolist() == [1_000_000, 1_000_001]
    assert list((session / "log").glob("*.mcap"))

    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "robo_q.cli",
            "train",
            "agent=bc",
            "train.offline=true",
            f"demos.path={session / 'episodes.zarr'}",
            "demos.num=2",
            "train.steps=20",
            "eval.every=20",
            "eval.episodes=1",
            "progress=false",
            f"out={tmp_path / 'run'}",
            "agent.hidden=32",
        ],
        capture_output=True,
        text=True,
    )
    assert train.returncode == 0, train.stderr
    replay = subprocess.run(
        [
            *(sys.executable, "-m", "robo_q.cli", "logs", "replay", f"path={session}", f"bundle={bundles['bc']}"),
            "steps=commands",  # a lockstep session: one step per command, paired by publication time
        ],
        capture_output=True,
        text=True,
    )
    assert replay.returncode == 0, replay.stderr
    report = json.loads((session / "log_replay.json").read_text())
    assert report["episodes"] == 2 and report["compared_steps"] == store.num_steps, (report, store.num_steps)
    # the log, read by time, gives the steps the recorder stored while the session ran
    assert [e["length"] for e in report["per_episode"]] == store.episode_meta()["length"].tolist()
    bc, errors = load_policy(bundles["bc"]), []
    for i in range(2):
        steps = store.episode(i).steps
        bc.reset()
        acted = np.stack([bc.act({"state": o}) for o in steps["observation.state"]])
        errors.append(np.abs(acted - steps["action"]).mean())
    assert abs(report["action_mae"] - np.mean(errors)) < 1e-3, (report["action_mae"], errors)

    # the logged commands, sent back into a fresh lockstep bridge, reproduce the expert's episodes
    domain = next(_domain)
    bridge = roboq("sim-bridge", "task=metaworld/drawer-open", "mode=lockstep", "seed=5", domain=domain)
    player = roboq("logs", "replay", f"path={session}", "mode=commands", domain=domain)
    try:
        player_out, _ = player.communicate(timeout=120)
    finally:
        stop(bridge)
    assert player.returncode == 0, player_out
    replayed = json.loads((session / "command_replay.json").read_text())
    lengths = store.episode_meta()["length"].tolist()
    assert [(e["seed"], e["success"]) for e in replayed["episodes"]] == [(1_000_000, True), (1_000_001, True)]
    # the log also holds commands the bridge ignored between episodes, so lengths agree closely, not exactly
    assert all(abs(e["length"] - n) <= 0.1 * n for e, n in zip(replayed["episodes"], lengths, strict=True)), (
        replayed["episodes"],
        lengths,
    )


def test_logs_replay_reads_a_log_written_by_another_tool(trained, tmp_path):
    """A rosbag2 MCAP written directly with rosbags (no robo_q code) replays through a bundle."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    _, bundles = trained
    store = get_typestore(Stores.ROS2_KILTED)
    Array = store.types["std_msgs/msg/Float64MultiArray"]
    Layout = store.types["std_msgs/msg/MultiArrayLayout"]
    bag = tmp_path / "foreign"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        obs = writer.add_connection(io.STATE_OBSERVATION, "std_msgs/msg/Float64MultiArray", typestore=store)
        cmd = writer.add_connection(io.COMMANDS, "std_msgs/msg/Float64MultiArray", typestore=store)
        rng = np.random.default_rng(0)
        for t in range(30):
            for conn, data in ((obs, rng.normal(size=39)), (cmd, rng.uniform(-1, 1, 4))):
                writer.write(
                    conn,
                    t * 1000 + (conn is cmd),
                    store.serialize_cdr(
                        Array(layout=Layout(dim=[], data_offset=0), data=data), "std_msgs/msg/Float64MultiArray"
                    ),
                )
    from robo_q.data.dataset_import import DatasetError
    from ros_nodes.log_replay import replay_log
    from ros_nodes.profile import RobotProfile, default_profile_path

    profile = RobotProfile.load(default_profile_path())
    report = replay_log(bag, bundles["cqn_as"], profile, steps="commands")
    assert report["compared_steps"] == 30 and 0 < report["action_mae"] < 2
    doc = yaml.safe_load(default_profile_path().read_text())
    doc["command"]["topic"] = "/nope"
    with pytest.raises(DatasetError, match="no topic /nope"):
        replay_log(bag, bundles["cqn_as"], RobotProfile.from_dict(doc))


ARM_MAX_DELTA = 0.05  # normalised units per step


def arm_bundle(out: Path) -> Path:
    """An untrained cqn_as bundle for the two-joint arm of tests/ros_arm.py (configs/robot/example_arm.yaml)."""
    from policies.features import ActionSpec, FeatureSchema, image_feature, state_feature
    from robo_q.agents import make_agent
    from robo_q.export import export_agent

    features = FeatureSchema(
        {
            "state": state_feature(
                "state", ["shoulder_pos", "elbow_pos", "shoulder_vel", "elbow_vel"], ["rad", "rad", "rad/s", "rad/s"]
            ),
            "images.wrist": image_feature("images.wrist", 64, 64),
        },
        ActionSpec(("shoulder", "elbow"), (-1.5, -2.0), (1.5, 2.0), "position", ("rad", "rad")),
        0.05,
    )
    settings = {"name": "cqn_as", "seq_len": 4, "gru": True, "hidden": 32, "frame_stack": 2}
    meta = {"task": "example_arm", "features": features.to_dict(), "agent": settings, "env": {}, "path": "-", "step": 0}
    import torch

    agent = make_agent("cqn_as", settings, features, "cpu")
    # untrained heads are zero: every bin would tie, and a tie's winner is the runtime's rounding.
    # Lean bin 0's value distribution towards high returns: the greedy action is the lowest bin.
    with torch.no_grad():
        bias = agent.critic.advantage_head.bias.view(features.action.dim, agent.cfg.bins, -1)
        bias[:, 0] = torch.linspace(-1.0, 1.0, bias.shape[-1])
    export_agent(agent, meta, out)
    return out


def test_deploy_on_a_robot_with_its_own_names_camera_and_trajectory_controller(tmp_path):
    """A stand-in arm (its own joint names, a bgr8 camera of another size, a JointTrajectory position
    controller) runs a camera + state bundle through `roboq deploy robot=example_arm`, with torch
    unimportable: joints by name, first command rate-limited from the measured pose, a camera
    dropout holds the last command. `roboq robot check` passes the profile and fails a wrong one."""
    bundle = arm_bundle(tmp_path / "arm")
    domain = next(_domain)
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    arm_cmd = [sys.executable, str(Path(__file__).parent / "ros_arm.py"), "--after", "30"]
    checker = subprocess.Popen([*arm_cmd, "--out", str(tmp_path / "served.json")], env=env)
    try:
        good = roboq("robot", "check", "robot=example_arm", f"bundle={bundle}", "seconds=3", domain=domain)
        good_out, _ = good.communicate(timeout=120)
        wrong_profile = yaml.safe_load(Path(profile_path("example_arm")).read_text())
        wrong_profile["observation"]["state"][0]["joints"] = ["shoulder_joint", "arm_elbow_joint"]
        (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(wrong_profile))
        wrong = roboq("robot", "check", f"robot={tmp_path / 'wrong.yaml'}", f"bundle={bundle}", domain=domain)
        wrong_out, _ = wrong.communicate(timeout=120)
    finally:
        stop(checker)
    assert good.returncode == 0 and "robot check: OK" in good_out, good_out
    assert "/arm/wrist/image_raw" in good_out and "96x128 bgr8" in good_out, good_out
    assert wrong.returncode == 1 and "lacks joints ['shoulder_joint']" in wrong_out, wrong_out

    no_torch = tmp_path / "no_torch" / "torch"
    no_torch.mkdir(parents=True)
    (no_torch / "__init__.py").write_text("raise ImportError('torch is not installed on this robot')\n")
    params = tmp_path / "arm_params.yaml"
    params.write_text(f"robo_q_policy:\n  ros__parameters:\n    max_delta: {ARM_MAX_DELTA}\n    max_stale_ticks: 60\n")
    domain = next(_domain)
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    arm = subprocess.Popen([*arm_cmd, "--camera-until", "40", "--out", str(tmp_path / "arm.json")], env=env)
    node = roboq(
        "deploy",
        f"bundle={bundle}",
        "robot=example_arm",
        f"params={params}",
        domain=domain,
        extra_env={"PYTHONPATH": f"{no_torch.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    try:
        arm.wait(timeout=300)  # it exits once it has had 40 commands with its camera and 30 without
    finally:
        node_out = stop(node)
        stop(arm)
    assert arm.returncode == 0, node_out
    result = json.loads((tmp_path / "arm.json").read_text())
    assert not result["problems"], result["problems"]
    commands = result["commands"]
    assert len(commands) >= 70, node_out
    assert all(c["joint_names"] == ["arm_elbow_joint", "arm_shoulder_joint"] for c in commands)
    span = {"arm_shoulder_joint": 3.0, "arm_elbow_joint": 4.0}
    low = {"arm_shoulder_joint": -1.5, "arm_elbow_joint": -2.0}
    by_joint = [dict(zip(c["joint_names"], c["positions"], strict=True)) for c in commands]
    for pos in by_joint:
        assert all(np.isfinite(v) and low[j] <= v <= low[j] + span[j] for j, v in pos.items()), pos
    step = {j: ARM_MAX_DELTA * s / 2 + 1e-6 for j, s in span.items()}  # the rate limit in radians
    for j in span:  # the first command moves from the measured start pose within one step's limit
        assert abs(by_joint[0][j] - result["start"][j]) <= step[j], (j, by_joint[0], result["start"])
        jumps = [(i, a[j], b[j]) for i, (a, b) in enumerate(itertools.pairwise(by_joint)) if abs(b[j] - a[j]) > step[j]]
        assert not jumps, (j, jumps, node_out)
    # the camera went silent: once its last frame is too old the arm holds the last command sent
    held = by_joint[-10:]
    assert all(h == held[0] for h in held), held
    moving = [p for p, c in zip(by_joint, commands, strict=True) if c["camera_live"]]
    assert held[0] == moving[-1] or held[0] in by_joint[40:-10]
    assert abs(held[0]["arm_shoulder_joint"]) > 0.3  # not the middle of the range (0): the arm did not swing
    assert "torch" not in node_out or "ImportError" not in node_out, node_out


def test_a_pixel_bundle_closes_the_loop_through_ros_cameras(tmp_path):
    """A camera + state bundle over the sim bridge's sensor_msgs/Image topics (lockstep) plays the
    same episode as in-process evaluation: frames arrive lossless and in step with the state."""
    from robo_q.agents import make_agent
    from robo_q.export import export_agent

    with make_env("metaworld/drawer-open", cameras=["corner2"], max_episode_steps=40) as env:
        features = env.features
        assert [f.key for f in features.of_kind("image")] == ["images.corner2"]
        settings = {"name": "bc", "seq_len": 1, "hidden": 32, "frame_stack": 2}
        meta = {"task": "metaworld/drawer-open", "features": features.to_dict(), "agent": settings}
        bundle = tmp_path / "pixels"
        export_agent(make_agent("bc", settings, features, "cpu"), {**meta, "env": {}, "path": "-", "step": 0}, bundle)
        in_process = evaluate(load_policy(bundle), env, 1)
    domain = next(_domain)
    results = tmp_path / "bridge.json"
    policy = roboq("deploy", f"bundle={bundle}", "trigger=observation", domain=domain)
    bridge = roboq(
        "sim-bridge",
        "task=metaworld/drawer-open",
        "mode=lockstep",
        "cameras=[corner2]",
        "env.max_episode_steps=40",
        "episodes=1",
        f"results={results}",
        domain=domain,
    )
    try:
        bridge_out, _ = bridge.communicate(timeout=240)
    finally:
        policy_out = stop(policy)
    assert bridge.returncode == 0, bridge_out
    assert policy.returncode == 0 and "rejected inputs  0" in policy_out, policy_out
    over_ros = json.loads(results.read_text())["episodes"][0]
    episode = in_process["per_episode"][0]
    assert (over_ros["seed"], over_ros["length"]) == (episode["seed"], episode["length"])
    assert over_ros["return"] == pytest.approx(episode["return"], rel=1e-6)


def operate(mode: str, episodes: int, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """tests/ros_operator.py in ``mode`` (teleop | evaluate) for ``episodes`` episodes, to its end."""
    script = str(Path(__file__).parent / "ros_operator.py")
    command = [sys.executable, script, mode, "--episodes", str(episodes), "--out", str(out)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def finished(*args: str) -> str:
    """Run a roboq command to its end; its output (it must succeed)."""
    proc = subprocess.run([sys.executable, "-m", "robo_q.cli", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_teleoperate_record_convert_train_offline_export_and_deploy_on_the_arm(tmp_path):
    """The real-robot loop on the stand-in arm, every step a command a user runs: a scripted
    operator teleoperates the arm over ROS 2 while `roboq record robot=...` logs its topics (episodes
    marked through the recorder's services); `roboq logs convert` -> `roboq train store=...
    train.offline=true` (no task, no simulator) -> `roboq export` -> `roboq deploy` drives the arm
    from new start poses to the goal, episodes run by the operator through the node's lifecycle."""
    from robo_q.data import EpisodeStore

    arm_script = str(Path(__file__).parent / "ros_arm.py")
    profile = yaml.safe_load(Path(profile_path("example_arm")).read_text())
    del profile["observation"]["images.wrist"], profile["features"]["images.wrist"]  # a state policy
    profile["name"] = "arm_state"
    robot = tmp_path / "arm.yaml"
    robot.write_text(yaml.safe_dump(profile))
    session, store, run, bundle = tmp_path / "session1", tmp_path / "arm.zarr", tmp_path / "run", tmp_path / "bundle"

    domain = next(_domain)
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    arm = subprocess.Popen([sys.executable, arm_script, "--seed", "0", "--out", str(tmp_path / "arm1.json")], env=env)
    recorder = roboq("record", f"robot={robot}", f"out={session}", "episodes=12", "keys=false", domain=domain)
    try:
        teleop = operate("teleop", 12, tmp_path / "teleop.json", env)
        record_out, _ = recorder.communicate(timeout=120)  # it stops by itself after 12 episodes
    finally:
        stop(recorder)
        stop(arm)
    assert teleop.returncode == 0, teleop.stdout + teleop.stderr
    assert recorder.returncode == 0 and "episodes done" in record_out, record_out
    demos = json.loads((tmp_path / "teleop.json").read_text())["episodes"]
    assert len(demos) == 12 and all(d["success"] for d in demos), demos

    finished("logs", "convert", f"path={session}", f"robot={robot}", f"out={store}")
    converted = EpisodeStore.open(store)
    assert converted.num_episodes == 12 and converted.task == "robot/arm_state"
    action = converted.features.action
    for i, demo in enumerate(demos):  # every step's action is one the operator sent in that episode
        episode = converted.episode(i)
        assert episode.steps["success"][-1] and len(episode.steps["action"]) >= 5
        native = action.to_native(episode.steps["action"])  # (shoulder, elbow)
        gap = np.abs(native[:, None, :] - np.asarray(demo["sent"])[None]).max(axis=2).min(axis=1)
        assert gap.max() < 1e-5, (i, gap.max())

    train = (f"store={store}", "agent=cqn_as", "train.offline=true", "train.steps=600", "eval.every=600")
    finished("train", *train, "eval.episodes=2", "demos.num=10", "agent.lr=1e-3", "agent.hidden=64", f"out={run}")
    finished("export", f"checkpoint={run / 'checkpoints' / 'last'}", f"out={bundle}")
    finished("logs", "replay", f"path={session}", f"bundle={bundle}", f"robot={robot}")
    assert json.loads((session / "log_replay.json").read_text())["compared_steps"] > 200

    domain = next(_domain)
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    params = tmp_path / "params.yaml"
    params.write_text(f"robo_q_policy:\n  ros__parameters:\n    max_delta: {ARM_MAX_DELTA}\n")
    arm = subprocess.Popen([sys.executable, arm_script, "--seed", "1", "--out", str(tmp_path / "arm2.json")], env=env)
    node = roboq("deploy", f"bundle={bundle}", f"robot={robot}", "autostart=false", f"params={params}", domain=domain)
    try:
        evaluation = operate("evaluate", 5, tmp_path / "eval.json", env)
    finally:
        node_out = stop(node)
        stop(arm)
    assert evaluation.returncode == 0, evaluation.stdout + evaluation.stderr + node_out
    episodes = json.loads((tmp_path / "eval.json").read_text())["episodes"]
    successes = sum(e["success"] for e in episodes)
    print(f"success over ROS 2 on the arm: {successes}/{len(episodes)}; {episodes}")
    assert successes >= 4, (episodes, node_out)
    # the first command after each activation moves one rate-limit step (rad) at most from the pose
    # measured at activation, which is within 0.02 rad of the start pose (the operator waits for that)
    limit = np.array([1.5, 2.0]) * ARM_MAX_DELTA + 0.02
    for e in episodes:
        assert np.all(np.abs(np.array(e["first_command"]) - e["start"]) <= limit), e
    served = json.loads((tmp_path / "arm2.json").read_text())
    assert not served["problems"] and len(served["resets"]) == 5
    assert all(np.all(np.isfinite(c["positions"])) for c in served["commands"])
