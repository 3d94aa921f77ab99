"""robo_q: value-based robot policies (CQN, CQN-AS) from demonstrations, MuJoCo to ROS 2."""

__version__ = "0.1.0"
