"""ROS 2 (rclpy) nodes: policy node, sim bridge, recorder. Built in the ROS 2 nodes issue."""
