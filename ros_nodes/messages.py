"""Every ROS 2 message <-> numpy conversion robo_q makes, in one place.

Readers take live rclpy messages and messages deserialised from a log by ``rosbags`` alike (both
carry the same fields). Message types are named as ROS does (``sensor_msgs/msg/JointState``).

- Vectors: ``std_msgs/Float64MultiArray`` (its data), ``sensor_msgs/JointState`` (the listed
  fields of the listed joints, by name, in the listed order), ``geometry_msgs/PoseStamped``
  (x y z qx qy qz qw), ``TwistStamped`` (vx vy vz wx wy wz), ``WrenchStamped`` (fx fy fz tx ty tz).
- Images: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) and ``sensor_msgs/CompressedImage``
  (jpeg, png) -> uint8 RGB, centre-cropped to the feature's aspect ratio and resized to its shape
  (``fit: resize``), or only centre-cropped (``fit: crop``).
- Commands: ``std_msgs/Float64MultiArray``, one-point ``trajectory_msgs/JointTrajectory``,
  ``geometry_msgs/TwistStamped``.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FLOAT_ARRAY = "std_msgs/msg/Float64MultiArray"
JOINT_STATE = "sensor_msgs/msg/JointState"
POSE = "geometry_msgs/msg/PoseStamped"
TWIST = "geometry_msgs/msg/TwistStamped"
WRENCH = "geometry_msgs/msg/WrenchStamped"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"

VECTOR_TYPES = (FLOAT_ARRAY, JOINT_STATE, POSE, TWIST, WRENCH)
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
COMMAND_TYPES = (FLOAT_ARRAY, JOINT_TRAJECTORY, TWIST)
FIXED_SIZES = {POSE: 7, TWIST: 6, WRENCH: 6}
JOINT_FIELDS = ("position", "velocity", "effort")
ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
COMPRESSED_FORMATS = ("jpeg", "png")
FITS = ("resize", "crop")
# Short names accepted in profiles and parameters files.
ALIASES = {
    "float64_multi_array": FLOAT_ARRAY,
    "joint_state": JOINT_STATE,
    "pose_stamped": POSE,
    "twist_stamped": TWIST,
    "wrench_stamped": WRENCH,
    "image": IMAGE,
    "compressed_image": COMPRESSED_IMAGE,
    "joint_trajectory": JOINT_TRAJECTORY,
}


class MessageError(ValueError):
    """A message that cannot fill its feature: wrong size, missing joints, bad encoding, NaN."""


def type_name(name: str) -> str:
    """The full ROS type name (``pkg/msg/Type``) of a name or short alias; ValueError if unknown."""
    full = ALIASES.get(name, name)
    if full not in (*VECTOR_TYPES, *IMAGE_TYPES, *COMMAND_TYPES):
        known = sorted({*VECTOR_TYPES, *IMAGE_TYPES, *COMMAND_TYPES})
        raise ValueError(f"unsupported message type {name!r}; supported: {', '.join(known)}")
    return full


def message_class(name: str) -> type:
    """The rclpy message class of a type name (imports its package on demand)."""
    package, _, cls = type_name(name).split("/")
    return getattr(importlib.import_module(f"{package}.msg"), cls)


# -- reading ------------------------------------------------------------------------------------
def joint_vector(msg: Any, joints: Sequence[str], fields: Sequence[str]) -> np.ndarray:
    """``fields`` of ``joints`` from a JointState, by name (any order, extra joints ignored)."""
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [j for j in joints if j not in index]
    if missing:
        raise MessageError(f"joint_states lacks joints {missing} (has {list(msg.name)})")
    rows = [index[j] for j in joints]
    parts = []
    for field in fields:
        values = np.asarray(getattr(msg, field), np.float64)
        if len(values) != len(msg.name):
            raise MessageError(f"joint_states.{field} has {len(values)} values for {len(msg.name)} joints")
        parts.append(values[rows])
    return np.concatenate(parts)


def vector(msg: Any, msg_type: str, joints: Sequence[str] = (), fields: Sequence[str] = ("position",)) -> np.ndarray:
    """A finite float64 vector from a vector message; MessageError otherwise."""
    if msg_type == FLOAT_ARRAY:
        out = np.asarray(msg.data, np.float64)
    elif msg_type == JOINT_STATE:
        out = joint_vector(msg, joints or list(msg.name), fields)
    elif msg_type == POSE:
        p, q = msg.pose.position, msg.pose.orientation
        out = np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w])
    elif msg_type in (TWIST, WRENCH):
        a, b = (msg.twist.linear, msg.twist.angular) if msg_type == TWIST else (msg.wrench.force, msg.wrench.torque)
        out = np.array([a.x, a.y, a.z, b.x, b.y, b.z])
    else:
        raise MessageError(f"{msg_type} is not a vector message")
    if not np.all(np.isfinite(out)):
        raise MessageError("contains NaN or inf")
    return out


def _decode(msg: Any, msg_type: str) -> np.ndarray:
    """An Image / CompressedImage as uint8 RGB [H, W, 3]."""
    if msg_type == COMPRESSED_IMAGE:
        from PIL import Image, UnidentifiedImageError

        fmt = str(msg.format).lower()
        if not any(f in fmt for f in COMPRESSED_FORMATS):
            raise MessageError(f"compressed image format {msg.format!r}; supported: {', '.join(COMPRESSED_FORMATS)}")
        try:
            with Image.open(io.BytesIO(bytes(msg.data))) as decoded:
                return np.asarray(decoded.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise MessageError(f"cannot decode {msg.format} image: {err}") from err
    channels = ENCODINGS.get(msg.encoding)
    if channels is None:
        raise MessageError(f"image encoding {msg.encoding!r}; supported: {', '.join(ENCODINGS)}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, np.uint8)
    if h <= 0 or w <= 0 or step < w * channels or data.size < h * step:
        raise MessageError(
            f"{msg.encoding} image {h}x{w} (step {step}) needs {h * step} bytes, got {data.size} "
            "(truncated or malformed)"
        )
    img = data[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if msg.encoding == "mono8":
        return np.repeat(img, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        return img[:, :, 2::-1]
    return img[:, :, :3]


def fit_image(rgb: np.ndarray, height: int, width: int, fit: str = "resize") -> np.ndarray:
    """Centre-crop ``rgb`` to the target aspect ratio (``crop``: to the target size) and resize."""
    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return np.ascontiguousarray(rgb)
    if fit == "crop":
        if h < height or w < width:
            raise MessageError(f"image {h}x{w} is smaller than {height}x{width}: cannot crop (use fit: resize)")
        ch, cw = height, width
    else:
        scale = min(h / height, w / width)
        ch, cw = round(height * scale), round(width * scale)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = rgb[top : top + ch, left : left + cw]
    if (ch, cw) == (height, width):
        return np.ascontiguousarray(crop)
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((width, height), Image.Resampling.BILINEAR))


def image(msg: Any, msg_type: str, shape: Sequence[int], fit: str = "resize") -> np.ndarray:
    """A camera message as the feature's uint8 RGB [H, W, 3]; MessageError if it cannot be."""
    return fit_image(_decode(msg, msg_type), int(shape[0]), int(shape[1]), fit)


def image_info(msg: Any, msg_type: str) -> str:
    """``480x640 bgr8`` / ``jpeg``: what a camera message holds, for diagnostics."""
    if msg_type == COMPRESSED_IMAGE:
        return str(msg.format)
    return f"{msg.height}x{msg.width} {msg.encoding}"


def command_values(msg: Any, msg_type: str, field: str = "positions") -> np.ndarray:
    """The values of a command message (JointTrajectory: ``field`` of its first point)."""
    if msg_type == JOINT_TRAJECTORY:
        return np.asarray(getattr(msg.points[0], field) if msg.points else [], np.float64)
    if msg_type == TWIST:
        return vector(msg, TWIST)
    return np.asarray(msg.data, np.float64)


# -- writing ------------------------------------------------------------------------------------
def float_array(values: npt.ArrayLike) -> Any:
    """A ``std_msgs/Float64MultiArray`` holding ``values``."""
    from std_msgs.msg import Float64MultiArray

    return Float64MultiArray(data=[float(v) for v in np.ravel(values)])


def image_message(rgb: np.ndarray, encoding: str = "rgb8", frame_id: str = "") -> Any:
    """A ``sensor_msgs/Image`` of a uint8 RGB [H, W, 3] frame (``bgr8``: channels swapped)."""
    from sensor_msgs.msg import Image

    pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    h, w = rgb.shape[:2]
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=w * 3)
    msg.data = np.ascontiguousarray(pixels).tobytes()
    msg.header.frame_id = frame_id
    return msg


def compressed_image_message(rgb: np.ndarray, fmt: str = "jpeg", frame_id: str = "") -> Any:
    """A ``sensor_msgs/CompressedImage`` (jpeg or png) of a uint8 RGB frame."""
    from PIL import Image
    from sensor_msgs.msg import CompressedImage

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG" if fmt == "jpeg" else "PNG", quality=90)
    msg = CompressedImage(format=fmt)
    msg.data = buffer.getvalue()
    msg.header.frame_id = frame_id
    return msg


def command_message(
    msg_type: str, native: np.ndarray, *, joints: Sequence[str] = (), field: str = "positions", horizon: float = 0.0
) -> Any:
    """A command in actuator units: Float64MultiArray, a one-point JointTrajectory (``field`` of
    the point, reached ``horizon`` seconds ahead), or a TwistStamped (6 values)."""
    if msg_type == FLOAT_ARRAY:
        return float_array(native)
    if msg_type == JOINT_TRAJECTORY:
        from builtin_interfaces.msg import Duration
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

        point = JointTrajectoryPoint(time_from_start=Duration(sec=int(horizon), nanosec=int(horizon % 1 * 1e9)))
        setattr(point, field, [float(v) for v in native])
        return JointTrajectory(joint_names=list(joints), points=[point])
    if msg_type == TWIST:
        from geometry_msgs.msg import TwistStamped

        msg = TwistStamped()
        t = msg.twist
        t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z = (float(v) for v in native)
        return msg
    raise ValueError(f"{msg_type} is not a command message type; supported: {', '.join(COMMAND_TYPES)}")
