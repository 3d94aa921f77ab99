"""``python -m robo_q.sweep.child <parent pid> train key=value ...``: one sweep run's training process.

It is ``roboq train`` (``robo_q.cli.main``) that dies with the Ray worker which started it: a
killed sweep (or a lost worker) never leaves a training process writing a run directory.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent exits (Linux); exit now if the parent is already gone."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(137)


def main() -> int:
    die_with_parent(int(sys.argv[1]))
    from robo_q.cli import main as roboq

    return roboq(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
