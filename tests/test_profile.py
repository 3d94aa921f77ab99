"""Robot profiles fitted to a bundle's schema, and the observation assembler that reads their topics."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import JointState

from policies.features import ActionSpec, FeatureSchema, image_feature, state_feature
from ros_nodes import messages as msgs
from ros_nodes.assembler import ObservationAssembler
from ros_nodes.profile import ProfileError, RobotProfile, default_profile_path

ARM = FeatureSchema(
    {
        "state": state_feature("state", ["shoulder_pos", "elbow_pos", "shoulder_vel", "elbow_vel", "gx", "gy"]),
        "images.wrist": image_feature("images.wrist", 12, 16),
    },
    ActionSpec(("shoulder", "elbow"), (-1.5, -2.0), (1.5, 2.0), "position", ("rad", "rad")),
    0.05,
)
PROFILE = {
    "name": "arm",
    "max_age": 0.2,
    "observation": {
        "state": [
            {"topic": "/joint_states", "type": "joint_state", "joints": ["shoulder", "elbow"],
             "fields": ["position", "velocity"]},
            {"topic": "/goal", "type": "std_msgs/msg/Float64MultiArray"},
        ],
        "images.*": [{"topic": "/cam/*/image", "type": "sensor_msgs/msg/Image"}],
    },
    "command": {
        "topic": "/arm/joint_trajectory",
        "type": "trajectory_msgs/msg/JointTrajectory",
        "joints": ["elbow_joint", "shoulder_joint"],
        "action_names": ["elbow", "shoulder"],
        "feedback": {"topic": "/joint_states", "type": "sensor_msgs/msg/JointState", "joints": ["shoulder", "elbow"]},
    },
}  # fmt: skip


def test_the_sim_bridge_profile_loads():
    profile = RobotProfile.load(default_profile_path())
    assert profile.name == "sim_bridge" and profile.command.topic == "/policy_controller/commands"
    assert profile.sources("images.corner2")[0].topic == "/camera/corner2/image_raw"


def test_a_fitting_profile_binds_and_orders_the_command_by_joint():
    command = RobotProfile.from_dict(PROFILE).bind(ARM, ARM.control_dt)
    msg = command.message(np.array([0.5, -1.0]))  # shoulder, elbow in the bundle's order
    assert msg.joint_names == ["elbow_joint", "shoulder_joint"] and list(msg.points[0].positions) == [-1.0, 0.5]
    np.testing.assert_array_equal(command.read(msg), [0.5, -1.0])
    assert command.horizon == pytest.approx(0.1)


def test_every_mismatch_is_listed_at_once():
    doc = copy.deepcopy(PROFILE)
    del doc["observation"]["images.*"]
    doc["observation"]["state"][1]["size"] = 5  # 4 + 5 values for a 6-D state
    doc["command"]["action_names"] = ["elbow", "wrist"]
    del doc["command"]["feedback"]
    with pytest.raises(ProfileError) as err:
        RobotProfile.from_dict(doc).bind(ARM, ARM.control_dt)
    text = "\n".join(err.value.problems)
    assert len(err.value.problems) == 5, text
    assert "'images.wrist'" in text and "no topic" in text
    assert "has 6 values; its topics give 9" in text
    assert "unknown joints ['wrist']" in text and "no joint carries the bundle's actions ['shoulder']" in text
    assert "needs feedback" in text


def test_malformed_profiles_name_every_bad_setting():
    doc = copy.deepcopy(PROFILE)
    doc["colour"] = "red"
    doc["observation"]["state"][0]["fields"] = ["position", "torque"]
    doc["observation"]["images.*"][0]["encoding"] = "yuv422"
    doc["command"]["type"] = "sensor_msgs/msg/Image"
    with pytest.raises(ProfileError) as err:
        RobotProfile.from_dict(doc)
    text = str(err.value)
    assert len(err.value.problems) == 4, text
    assert "colour" in text and "torque" in text and "yuv422" in text and "command: type must be one of" in text
    with pytest.raises(ProfileError, match="no such file"):
        RobotProfile.load("/nonexistent/arm.yaml")


def test_the_assembler_concatenates_by_name_and_holds_on_stale_or_bad_messages(tmp_path):
    path = tmp_path / "arm.yaml"
    path.write_text(yaml.safe_dump(PROFILE))
    assembler = ObservationAssembler(RobotProfile.load(path), ARM)
    assert set(assembler.topics()) == {"/joint_states", "/goal", "/cam/wrist/image"}
    joints = JointState(name=["elbow", "gripper", "shoulder"], position=[0.2, 0.0, 0.1], velocity=[2.0, 0.0, 1.0])
    assert assembler.observation(0.0) is None and "no message" in " ".join(assembler.stale(0.0))
    assert assembler.receive("/joint_states", joints, 0.0) == []
    assert assembler.receive("/goal", msgs.float_array([7, 8]), 0.0) == []
    frame = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    assert assembler.receive("/cam/wrist/image", msgs.image_message(frame, "bgr8"), 0.0) == []
    obs = assembler.observation(0.1)
    np.testing.assert_array_equal(obs["state"], [0.1, 0.2, 1.0, 2.0, 7, 8])
    assert obs["images.wrist"].shape == (12, 16, 3)
    np.testing.assert_array_equal(assembler.measured(0.1), [0.1, 0.2])  # feedback, in action order
    assert assembler.observation(0.3) is None and assembler.measured(0.3) is None  # older than max_age
    errors = assembler.receive("/goal", msgs.float_array([7, 8, 9]), 0.3)
    assert errors and "expected 2" in errors[0]
    assert assembler.observation(0.3) is None and "/goal" in assembler.rejected()[0]


def test_a_profile_features_section_is_the_robots_schema():
    """example_arm's features: state names from its JointState source, the action as listed, its rate."""
    from robo_q.commands.ros import profile_path

    profile = RobotProfile.load(profile_path("example_arm"))
    schema = profile.features
    assert schema is not None and schema.control_dt == pytest.approx(0.05)
    assert schema.observation["state"].names == (
        "arm_shoulder_joint.position",
        "arm_elbow_joint.position",
        "arm_shoulder_joint.velocity",
        "arm_elbow_joint.velocity",
    )
    assert schema.observation["state"].units == ("rad", "rad", "rad/s", "rad/s")
    assert schema.observation["images.wrist"].shape == (64, 64, 3)
    assert schema.action.names == ("shoulder", "elbow") and schema.action.mode == "position"
    assert profile.problems(schema) == []  # the profile fills its own schema
    bound = profile.bind(schema, schema.control_dt)
    assert bound.order.tolist() == [1, 0]  # the controller's joints: elbow, shoulder
    doc = yaml.safe_load(profile_path("example_arm").read_text())
    doc["features"]["state"] = {"names": ["a", "b", "c"]}  # three names for four values
    doc["features"]["action"]["names"] = ["shoulder", "wrist"]
    with pytest.raises(ProfileError) as err:
        RobotProfile.from_dict(doc)
    assert "has 3 values; its topics give 4" in str(err.value) and "unknown joints" in str(err.value)
