"""ROS 2 message conversions (ros_nodes.messages): vectors by joint name, camera encodings, fitting, commands."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CompressedImage, Image, JointState

from ros_nodes import messages as msgs


def _frame(h: int = 6, w: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_joint_states_are_read_by_name_in_the_listed_order():
    msg = JointState(name=["b", "extra", "a"], position=[2.0, 9.0, 1.0], velocity=[20.0, 90.0, 10.0])
    out = msgs.vector(msg, msgs.JOINT_STATE, ["a", "b"], ["position", "velocity"])
    np.testing.assert_array_equal(out, [1.0, 2.0, 10.0, 20.0])
    with pytest.raises(msgs.MessageError, match=r"lacks joints \['c'\]"):
        msgs.vector(msg, msgs.JOINT_STATE, ["a", "c"])
    with pytest.raises(msgs.MessageError, match="effort has 0 values for 3 joints"):
        msgs.vector(msg, msgs.JOINT_STATE, ["a"], ["effort"])
    with pytest.raises(msgs.MessageError, match="NaN"):
        msgs.vector(JointState(name=["a"], position=[float("nan")]), msgs.JOINT_STATE, ["a"])


def test_pose_and_array_vectors():
    pose = PoseStamped()
    pose.pose.position.x, pose.pose.orientation.w = 0.5, 1.0
    np.testing.assert_array_equal(msgs.vector(pose, msgs.POSE), [0.5, 0, 0, 0, 0, 0, 1.0])
    np.testing.assert_array_equal(msgs.vector(msgs.float_array([1, 2]), msgs.FLOAT_ARRAY), [1.0, 2.0])
    with pytest.raises(ValueError, match="unsupported message type 'std_msgs/msg/String'"):
        msgs.type_name("std_msgs/msg/String")
    assert msgs.type_name("joint_state") == msgs.JOINT_STATE


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_every_raw_encoding_decodes_to_rgb(encoding):
    rgb = _frame()
    if encoding == "mono8":
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
    order = {"rgb8": [0, 1, 2], "bgr8": [2, 1, 0], "rgba8": [0, 1, 2, 0], "bgra8": [2, 1, 0, 0], "mono8": [0]}
    pixels = rgb[:, :, order[encoding]]
    step = rgb.shape[1] * pixels.shape[2] + 4  # row padding, as some drivers send
    padded = np.zeros((rgb.shape[0], step), np.uint8)
    padded[:, : rgb.shape[1] * pixels.shape[2]] = pixels.reshape(rgb.shape[0], -1)
    msg = Image(height=6, width=8, encoding=encoding, step=step, data=padded.tobytes())
    np.testing.assert_array_equal(msgs.image(msg, msgs.IMAGE, (6, 8, 3)), rgb)


def test_bad_images_are_refused_with_the_reason():
    good = msgs.image_message(_frame())
    truncated = Image(height=6, width=8, encoding="rgb8", step=24, data=bytes(good.data)[:100])
    with pytest.raises(msgs.MessageError, match="truncated"):
        msgs.image(truncated, msgs.IMAGE, (6, 8, 3))
    with pytest.raises(msgs.MessageError, match="encoding '16UC1'"):
        msgs.image(Image(height=6, width=8, encoding="16UC1", step=16, data=bytes(96)), msgs.IMAGE, (6, 8, 3))
    with pytest.raises(msgs.MessageError, match="cannot decode"):
        msgs.image(CompressedImage(format="jpeg", data=b"not a jpeg"), msgs.COMPRESSED_IMAGE, (6, 8, 3))
    with pytest.raises(msgs.MessageError, match="smaller than"):
        msgs.image(good, msgs.IMAGE, (12, 8, 3), fit="crop")


def test_images_are_cropped_to_aspect_then_resized():
    rgb = np.zeros((40, 80, 3), np.uint8)
    rgb[:, 20:60] = 255  # the centre square is white, the sides black
    out = msgs.image(msgs.image_message(rgb, "bgr8"), msgs.IMAGE, (10, 10, 3))
    assert out.shape == (10, 10, 3) and out.min() == 255  # crop to 40x40 centre, then resize
    cropped = msgs.image(msgs.image_message(rgb), msgs.IMAGE, (20, 30, 3), fit="crop")
    np.testing.assert_array_equal(cropped, rgb[10:30, 25:55])


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_images_round_trip(fmt):
    rgb = np.full((16, 16, 3), (200, 40, 90), np.uint8)
    out = msgs.image(msgs.compressed_image_message(rgb, fmt), msgs.COMPRESSED_IMAGE, (16, 16, 3))
    assert np.abs(out.astype(int) - rgb).max() <= (0 if fmt == "png" else 6)


def test_commands_carry_actuator_units_in_the_given_joint_order():
    traj = msgs.command_message(msgs.JOINT_TRAJECTORY, np.array([0.1, -0.2]), joints=["j2", "j1"], horizon=1.25)
    assert traj.joint_names == ["j2", "j1"] and list(traj.points[0].positions) == [0.1, -0.2]
    assert (traj.points[0].time_from_start.sec, traj.points[0].time_from_start.nanosec) == (1, 250_000_000)
    np.testing.assert_array_equal(msgs.command_values(traj, msgs.JOINT_TRAJECTORY), [0.1, -0.2])
    vel = msgs.command_message(msgs.JOINT_TRAJECTORY, np.array([0.3]), joints=["j"], field="velocities")
    assert list(vel.points[0].velocities) == [0.3] and not vel.points[0].positions
    twist = msgs.command_message(msgs.TWIST, np.arange(6.0))
    np.testing.assert_array_equal(msgs.command_values(twist, msgs.TWIST), np.arange(6.0))
