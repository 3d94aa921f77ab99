"""ROS 2 (rclpy) nodes: the policy lifecycle node and the MuJoCo sim bridge."""
