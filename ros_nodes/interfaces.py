"""Topic names, QoS profiles and message <-> numpy conversions shared by the robo_q ROS 2 nodes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from geometry_msgs.msg import PoseStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

# Defaults: what `roboq sim-bridge` publishes and `roboq deploy` reads without a params file.
JOINT_STATES = "/joint_states"
STATE_OBSERVATION = "/observation/state"
COMMANDS = "/policy_controller/commands"
EPISODE_START = "/sim/episode"
EPISODE_RESULT = "/sim/episode_result"
SUCCESS = "/sim/success"
RESET = "/sim/reset"
ESTOP = "/estop"

STATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
# Reliable with a short history: a subscriber that falls behind for a moment (a recorder on a busy
# machine) still gets every sample; a depth-1 writer would overwrite samples it had not yet acknowledged.
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
EVENT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
LATCHED_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)  # late joiners get the last

MESSAGE_TYPES = {"float64_multi_array": Float64MultiArray, "joint_state": JointState, "pose_stamped": PoseStamped}


def to_array(msg, joints: list[str] | None = None, fields: list[str] | None = None) -> np.ndarray:
    """A float64 vector from a supported message (JointState: ``fields`` of ``joints``, in order)."""
    if isinstance(msg, Float64MultiArray):
        return np.asarray(msg.data, dtype=np.float64)
    if isinstance(msg, JointState):
        index = {name: i for i, name in enumerate(msg.name)}
        missing = [j for j in joints or [] if j not in index]
        if missing:
            raise ValueError(f"joint_states lacks joints {missing}")
        order = [index[j] for j in joints] if joints else list(range(len(msg.name)))
        parts = []
        for field in fields or ["position"]:
            values = np.asarray(getattr(msg, field), dtype=np.float64)
            if len(values) != len(msg.name):
                raise ValueError(f"joint_states.{field} has {len(values)} values for {len(msg.name)} joints")
            parts.append(values[order])
        return np.concatenate(parts)
    if isinstance(msg, PoseStamped):
        p, q = msg.pose.position, msg.pose.orientation
        return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w])
    raise TypeError(f"unsupported message type {type(msg).__name__}")


def float_array(values: npt.ArrayLike) -> Float64MultiArray:
    return Float64MultiArray(data=[float(v) for v in np.ravel(values)])
