"""Starting and spinning the nodes from the CLI: ROS context, executor, clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

_stop_requested = threading.Event()


def _request_stop(signum: int, frame) -> None:
    _stop_requested.set()  # the spin loop exits between callbacks, never inside rclpy


def stop_requested() -> bool:
    """True once Ctrl-C (or SIGTERM) arrived."""
    return _stop_requested.is_set()


def init(ros_args: list[str] | None = None) -> None:
    """rclpy.init for one machine (localhost discovery unless the environment says otherwise).

    rclpy's own signal handlers would shut the context down before the node can publish its
    final hold; Ctrl-C and SIGTERM instead ask ``spin`` to return after the current callback.
    """
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy.init(
        args=["roboq", "--ros-args", *ros_args] if ros_args else None, signal_handler_options=SignalHandlerOptions.NO
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _request_stop)


def spin(node, until: Callable[[], bool] = lambda: False, on_exit: Callable[[], None] = lambda: None) -> bool:
    """Spin ``node`` (single-threaded) until ``until()`` or Ctrl-C; returns True if interrupted."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok() and not until() and not _stop_requested.is_set():
            executor.spin_once(timeout_sec=0.05)
    except ExternalShutdownException:
        pass
    finally:
        on_exit()
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return stop_requested()
