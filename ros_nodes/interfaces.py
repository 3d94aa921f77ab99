"""Topic names and QoS profiles shared by the robo_q ROS 2 nodes (message conversions: ``messages``)."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# Defaults: what `roboq sim-bridge` publishes and `roboq deploy` reads without a params file.
JOINT_STATES = "/joint_states"
STATE_OBSERVATION = "/observation/state"
COMMANDS = "/policy_controller/commands"
EPISODE_START = "/sim/episode"
EPISODE_RESULT = "/sim/episode_result"
SUCCESS = "/sim/success"
RESET = "/sim/reset"
ESTOP = "/estop"
CAMERA = "/camera/{}/image_raw"  # sensor_msgs/Image per camera (+ /compressed)
# Episode events `roboq record` writes into its log, whatever marked them (a topic, its services, keys).
RECORDER_EPISODE_START = "/robo_q/episode/start"  # std_msgs/Int64: the episode's index
RECORDER_EPISODE_END = "/robo_q/episode/end"  # std_msgs/Bool: success

STATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
# Reliable with a short history: a subscriber that falls behind for a moment (a recorder on a busy
# machine) still gets every sample; a depth-1 writer would overwrite samples it had not yet acknowledged.
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
EVENT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
LATCHED_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)  # late joiners get the last


def qos(name: str) -> QoSProfile:
    """A profile's QoS name: ``sensor`` (best effort, latest only) or ``reliable`` (depth 10)."""
    return STATE_QOS if name == "sensor" else COMMAND_QOS
