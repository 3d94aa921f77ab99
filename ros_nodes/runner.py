"""Starting and spinning the nodes from the CLI: ROS context, executor, clean Ctrl-C."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


def init(ros_args: list[str] | None = None) -> None:
    """rclpy.init for one machine (localhost discovery unless the environment says otherwise).

    rclpy's own signal handlers would shut the context down before the node can publish its
    final hold; Ctrl-C and SIGTERM raise KeyboardInterrupt instead, handled by ``spin``.
    """
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy.init(args=["roboq", "--ros-args", *ros_args] if ros_args else None, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, _interrupt)


def spin(node, until: Callable[[], bool] = lambda: False, on_exit: Callable[[], None] = lambda: None) -> bool:
    """Spin ``node`` (single-threaded) until ``until()`` or Ctrl-C; returns True if interrupted."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    interrupted = False
    try:
        while rclpy.ok() and not until():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        interrupted = True
    finally:
        on_exit()
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return interrupted
