"""ROS domain ids reserved per process on one machine, so separate sessions never hear each other.

Tests and benches that start their own nodes take ids from :func:`free_domains`: each id is
locked (``flock`` on a file in the temp directory) for the life of the process that took it.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_locks: list[IO[str]] = []  # held open: a lock lasts as long as this process


def free_domains(first: int = 60, last: int = 231) -> Iterator[int]:
    """ROS domain ids in ``[first, last]`` that no other process on this machine holds, each
    locked for this process's life (starting at an offset from the pid, to spread the search)."""
    start = first + os.getpid() % (last - first + 1)
    for domain in [*range(start, last + 1), *range(first, start)]:
        lock = (Path(tempfile.gettempdir()) / f"robo_q_test_ros_domain_{domain}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _locks.append(lock)
        yield domain
