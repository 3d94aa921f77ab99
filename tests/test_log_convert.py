"""`roboq logs convert`: rosbag2 MCAP logs written by rosbags alone -> zarr episodes, by message time."""

from __future__ import annotations

import copy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from log_fixtures import GOAL, PROFILE, START_NS, rewrite_log, write_arm_log
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from robo_q.data import EpisodeStore, StoreError
from robo_q.data.dataset_import import DatasetError, import_dataset
from ros_nodes.log_episodes import LogEpisodes
from ros_nodes.profile import ProfileError, RobotProfile

BOUNDARIES = {"episode_start": "/teleop/episode", "episode_end": "/teleop/done"}


def roboq(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robo_q.cli", *args], capture_output=True, text=True)


def profile_file(tmp_path: Path, doc: dict | None = None) -> Path:
    path = tmp_path / "arm.yaml"
    path.write_text(yaml.safe_dump(doc or PROFILE))
    return path


def read_log(bag: Path) -> dict[str, list[tuple[int, object]]]:
    """Every message of the log by topic: (log time, deserialized message)."""
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        for connection, stamp, raw in reader.messages():
            out.setdefault(connection.topic, []).append((stamp, reader.deserialize(raw, connection.msgtype)))
    return out


def test_a_rosbags_log_converts_by_time_and_trains_on_pixels_and_state(tmp_path):
    """JointState at 100 Hz, a camera at 15 Hz, JointTrajectory at 10 Hz -> 10 Hz steps whose
    action is the command sent during the step and whose state is the latest joint state."""
    bag = write_arm_log(tmp_path / "log", episodes=3, seconds=3.0, fail_every=3)
    out = tmp_path / "arm.zarr"
    convert = roboq(
        "logs",
        "convert",
        f"path={bag}",
        f"robot={profile_file(tmp_path)}",
        f"out={out}",
        *(f"{k}={v}" for k, v in BOUNDARIES.items()),
        "progress=false",
    )
    assert convert.returncode == 0, convert.stderr
    assert "3 (2 successful)" in convert.stdout, convert.stdout
    store = EpisodeStore.open(out)
    assert store.task == "robot/two_joint_arm" and store.attrs["source"] == "ros"
    assert store.features.keys == ["images.wrist", "state"]
    assert store.features.observation["state"].names == (
        "arm_shoulder_joint.position",
        "arm_elbow_joint.position",
        "arm_shoulder_joint.velocity",
        "arm_elbow_joint.velocity",
    )
    meta = store.episode_meta()
    assert meta["length"].tolist() == [30, 30, 30] and meta["success"].tolist() == [True, True, False]
    record = store.attrs["imports"][0]
    assert record["format"] == "mcap" and record["path"] == str(bag) and len(record["episode_log_times"]) == 3

    # step k (grid anchored half a period before the first command) against the raw log
    log = read_log(bag)
    commands = [(t * 1e-9, m) for t, m in log["/arm_controller/joint_trajectory"]]
    joints = [(t * 1e-9, m) for t, m in log["/arm/joint_states"]]
    episode = store.episode(0)
    first_command = commands[0][0]
    action = store.features.action
    for k in (0, 7, 29):
        t_k = first_command - 0.05 + 0.1 * k
        sent = [m for t, m in commands if t_k < t <= t_k + 0.1]
        assert len(sent) == 1
        elbow, shoulder = sent[0].points[0].positions  # the controller's joint order
        assert np.allclose(action.to_native(episode.steps["action"][k]), [shoulder, elbow], atol=1e-5)
        latest = [m for t, m in joints if t <= t_k][-1]
        by_name = dict(zip(latest.name, latest.position, strict=True))
        expected = [by_name["arm_shoulder_joint"], by_name["arm_elbow_joint"]]
        assert np.allclose(episode.steps["observation.state"][k][:2], expected, atol=1e-5)
    assert np.abs(action.to_native(episode.steps["action"][-1]) - GOAL).max() < 0.05  # the operator got there
    frames = episode.steps["observation.images.wrist"]
    assert frames.shape == (30, 48, 48, 3) and frames.std(axis=0).max() > 0  # the arm moves: the tint changes

    for obs in ("pixels", "state"):
        run = tmp_path / f"run_{obs}"
        train = roboq(
            "train",
            f"store={out}",
            "agent=cqn_as",
            "train.offline=true",
            f"obs={obs}",
            "train.steps=20",
            "eval.every=20",
            "demos.num=2",
            "agent.hidden=32",
            "progress=false",
            f"out={run}",
        )
        assert train.returncode == 0, train.stderr
        assert (run / "checkpoints" / "last").exists()


def test_pairing_is_by_header_stamp_not_log_order(tmp_path):
    """Joint states logged late and out of order with the commands convert as if logged on time."""
    on_time = write_arm_log(tmp_path / "on_time", episodes=1, seconds=2.0)
    late = rewrite_log(  # 120 ms late: past the commands sent meanwhile
        on_time, tmp_path / "late", lambda topic, ns, msg: (ns + 120_000_000 * (topic == "/arm/joint_states"), msg)
    )
    profile = RobotProfile.from_dict(PROFILE)
    episodes = [list(LogEpisodes(p, profile, **BOUNDARIES).episodes()) for p in (on_time, late)]
    a, b = (e[0].steps for e in episodes)
    assert len(a["action"]) == len(b["action"]) == 20
    assert np.array_equal(a["observation.state"], b["observation.state"])
    assert np.array_equal(a["action"], b["action"])


def test_header_stamps_of_another_clock_fall_back_to_log_time(tmp_path):
    """A robot stamping joint states with its own clock (from 0) still lines up with the commands."""
    bag = write_arm_log(tmp_path / "log", episodes=1, seconds=2.0)

    def own_clock(topic: str, ns: int, msg):
        if topic == "/arm/joint_states":
            msg.header.stamp.sec, msg.header.stamp.nanosec = (ns - START_NS) // 10**9, (ns - START_NS) % 10**9
        return ns, msg

    shifted = rewrite_log(bag, tmp_path / "shifted", own_clock)
    log = LogEpisodes(shifted, RobotProfile.from_dict(PROFILE), **BOUNDARIES)
    (episode,) = log.episodes()
    assert log.log_clock == {"/arm/joint_states"} and len(episode.steps["action"]) == 20


def test_bad_logs_and_profiles_are_clear_errors(tmp_path):
    bag = write_arm_log(tmp_path / "log", episodes=1, seconds=1.0)
    profile = RobotProfile.from_dict(PROFILE)

    missing = copy.deepcopy(PROFILE)
    missing["observation"]["state"][0]["topic"] = "/other/joint_states"
    with pytest.raises(DatasetError, match="no topic /other/joint_states"):
        LogEpisodes(bag, RobotProfile.from_dict(missing), **BOUNDARIES)

    wrong = copy.deepcopy(PROFILE)
    wrong["observation"]["images.wrist"][0]["type"] = "sensor_msgs/msg/CompressedImage"
    with pytest.raises(DatasetError, match="/arm/wrist/image_raw holds sensor_msgs/msg/Image"):
        LogEpisodes(bag, RobotProfile.from_dict(wrong), **BOUNDARIES)

    with pytest.raises(DatasetError, match="episode end topic /teleop/episode holds std_msgs/msg/Int64"):
        LogEpisodes(bag, profile, episode_end="/teleop/episode")

    no_features = {k: v for k, v in PROFILE.items() if k != "features"}
    with pytest.raises(DatasetError, match="has no features: section"):
        LogEpisodes(bag, RobotProfile.from_dict(no_features))

    bad_features = copy.deepcopy(PROFILE)
    bad_features["features"]["action"]["low"] = [-1.5]
    with pytest.raises(ProfileError, match="features:"):
        RobotProfile.from_dict(bad_features)
    no_rate = {**PROFILE, "rate": None}
    with pytest.raises(ProfileError, match="needs the profile's rate"):
        RobotProfile.from_dict(no_rate)

    # joint states whose stamps go backwards
    seen = []

    def back_in_time(topic: str, ns: int, msg):
        if topic == "/arm/joint_states":
            seen.append(ns)
            if len(seen) == 20:  # 0.2 s in: stamped back at the start of the second
                msg.header.stamp.nanosec = 0
        return ns, msg

    backwards = rewrite_log(bag, tmp_path / "backwards", back_in_time)
    with pytest.raises(DatasetError, match="/arm/joint_states goes back in time"):
        list(LogEpisodes(backwards, profile, **BOUNDARIES).episodes())


def test_an_episode_without_steps_is_an_error_or_left_out(tmp_path):
    """An episode marked with no command in it: an error naming the log, or skipped with skip_empty."""
    bag = tmp_path / "log"
    write_arm_log(bag, episodes=2, seconds=1.5)
    cut = START_NS + 2_000_000_000  # the second episode (from 2.0 s) loses its commands
    edited = rewrite_log(
        bag,
        tmp_path / "edited",
        lambda topic, ns, msg: None if topic == "/arm_controller/joint_trajectory" and ns > cut else (ns, msg),
    )
    profile = RobotProfile.from_dict(PROFILE)
    with pytest.raises(DatasetError, match=r"episode 1 .* has 0 steps: no command.*skip_empty=true"):
        import_dataset(LogEpisodes(edited, profile, **BOUNDARIES), tmp_path / "out.zarr", progress=False)
    assert not (tmp_path / "out.zarr").exists() and not list(tmp_path.glob(".out.zarr*"))  # nothing half-written
    report = import_dataset(
        LogEpisodes(edited, profile, skip_empty=True, **BOUNDARIES), tmp_path / "out.zarr", progress=False
    )
    assert report.episodes == 1


def test_a_conversion_killed_midway_keeps_the_earlier_episodes(tmp_path):
    """SIGKILL during an appending conversion: the store reopens with every committed episode intact."""
    profile = profile_file(tmp_path)
    out = tmp_path / "arm.zarr"
    small = write_arm_log(tmp_path / "small", episodes=2, seconds=1.0)
    first = roboq("logs", "convert", f"path={small}", f"robot={profile}", f"out={out}", "progress=false")
    assert first.returncode == 0, first.stderr
    assert EpisodeStore.open(out).num_episodes == 1  # no boundary topics named: the whole log is one episode
    big = write_arm_log(tmp_path / "big", episodes=60, seconds=2.0, image_size=(240, 320))
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "robo_q.cli", "logs", "convert", f"path={big}", f"robot={profile}"),
            *(f"out={out}", "append=true", "progress=false", *(f"{k}={v}" for k, v in BOUNDARIES.items())),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while proc.poll() is None:
            try:
                if EpisodeStore.open(out).num_episodes >= 3:
                    break
            except StoreError:
                pass  # caught between two arrays of an episode: look again
            time.sleep(0.05)
        assert proc.poll() is None, "the conversion ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = EpisodeStore.open(out, "a")  # trims whatever the killed append left past its last commit
    assert 3 <= store.num_episodes < 61
    for i in range(store.num_episodes):
        assert len(store.episode(i)) > 0
    assert store.episode_meta()["length"][0] == 25  # the first log, 2.5 s at 10 Hz, untouched


def test_message_definitions_from_rclpy_classes_match_rosbags():
    """The recorder describes types rosbags does not know from their rclpy classes: checked here
    against rosbags' own definitions of standard types (sequences, fixed arrays, nested types)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, JointState
    from trajectory_msgs.msg import JointTrajectory

    from ros_nodes.topic_recorder import message_definition

    known = get_typestore(Stores.ROS2_KILTED)
    for cls in (JointState, CameraInfo, JointTrajectory, DiagnosticArray):
        described = get_typestore(Stores.EMPTY)
        described.register(message_definition(cls))
        assert len(described.fielddefs) >= 3  # the type and those it nests
        for name, (_, fields) in described.fielddefs.items():  # the fields; constants do not travel in bytes
            assert fields == known.fielddefs[name][1], name


def test_episode_marks_ends_only_or_none(tmp_path):
    """Only end marks: episodes run back to back from the log's start, nothing after the last end;
    no marks at all: the whole log is one episode, its outcome unknown (failed)."""
    bag = write_arm_log(tmp_path / "log", episodes=3, seconds=3.0, fail_every=2)
    profile = RobotProfile.from_dict(PROFILE)
    ends = LogEpisodes(bag, profile, episode_end="/teleop/done")
    assert [w.success for w in ends.windows] == [True, False, True]
    assert [(w.end - w.start) // 10**8 for w in ends.windows] == [30, 35, 35]  # from the previous end
    assert ends.windows[0].start == START_NS and len(list(ends.episodes())) == 3
    whole = LogEpisodes(bag, profile)
    assert len(whole.windows) == 1 and not whole.windows[0].success
    (episode,) = whole.episodes()
    assert len(episode.steps["action"]) == 100  # 10 s at 10 Hz, the gaps between episodes included
