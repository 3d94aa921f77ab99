"""One sweep run as a Ray task: a ``roboq train`` process in the run's directory, its output in run.log.

The task starts the training in a fresh process (``python -m robo_q.sweep.child``) rather than
calling the trainer inside the Ray worker: a crash (a segfault in a simulator or renderer, a CUDA
error, an out-of-memory kill) ends that process, not the worker, and is reported with its log; the
run's stdout and stderr go to its own file; torch's thread count and the CPU allocator are set before
torch loads, as ``roboq train`` does, which a reused worker that already imported torch cannot do; and
the run resumes through exactly the code path of ``roboq train resume=<run>``.

This module is imported by Ray workers: it does not import torch or the simulators.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from robo_q.sweep.rundirs import (
    LOG,
    STATUS,
    annotate_eval_info,
    checkpoint_step,
    clear_for_fresh_start,
    log_tail,
    run_lock,
    run_state,
    write_json,
)


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def train_command(job: dict[str, Any], state: str) -> tuple[str, list[str]]:
    """The attempt's mode and its ``roboq train`` arguments."""
    run = job["dir"]
    if state == "resumable":  # the run's own config.yaml: the settings it started with
        return "resumed", ["train", f"resume={run}", "progress=false"]
    return "fresh", ["train", *job["overrides"], f"out={run}", "progress=false"]


def child_env(cpus: float, gpus: float) -> dict[str, str]:
    env = dict(os.environ)
    threads = str(max(1, int(cpus)))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)  # torch's intra-op threads = the run's CPUs
    env.setdefault("MUJOCO_GL", "egl")
    if not gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU reserved: device=auto trains on the CPU
    return env


def execute_run(job: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume, or skip) one run; never raises for the run's own failure: returns it."""
    run = Path(job["dir"])
    result: dict[str, Any] = {
        "name": job["name"],
        "host": socket.gethostname(),
        "log": str(run / LOG),
        "started": _now(),
    }
    start = time.monotonic()
    try:
        with run_lock(run, float(job.get("lock_wait", 120))) as lock:
            state = run_state(run)
            if state == "finished":
                return {**result, "status": "done", "mode": "skipped", "final": annotate_eval_info(run)}
            if state == "fresh":
                clear_for_fresh_start(run)
            mode, args = train_command(job, state)
            result.update(mode=mode, resumed_from=checkpoint_step(run) if mode == "resumed" else None)
            write_json(run / STATUS, {**result, "state": "running", "attempt": job["attempt"], "pid": os.getpid()})
            with (run / LOG).open("a") as log:
                log.write(f"== {_now()} {mode} on {result['host']}: roboq {' '.join(args)}\n")
                log.flush()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "robo_q.sweep.child", str(os.getpid()), *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=job["cwd"] if Path(job["cwd"]).is_dir() else None,
                    env=child_env(job["cpus"], job["gpus"]),
                    pass_fds=(lock.fileno(),),  # the training process holds the run's lock while it lives
                    start_new_session=True,  # Ctrl-C reaches the sweep, which stops its runs itself
                )
                status = {**result, "state": "running", "attempt": job["attempt"], "pid": os.getpid()}
                write_json(run / STATUS, {**status, "train_pid": proc.pid})
                try:
                    returncode = proc.wait()
                except BaseException:  # cancelled: stop the training process before the task ends
                    proc.kill()
                    proc.wait()
                    raise
                log.write(f"== {_now()} exit {returncode} after {time.monotonic() - start:.0f} s\n")
            finished = run_state(run) == "finished"
            result.update(returncode=returncode, seconds=round(time.monotonic() - start, 1))
            if returncode == 0 and finished:
                result.update(status="done", final=annotate_eval_info(run))
            else:
                why = f"exit {returncode}" if returncode else "exited without its final evaluation"
                result.update(status="failed", error=why, log_tail=log_tail(run))
    except Exception as err:  # the lock, the directory: the run fails, the sweep goes on
        result.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    result["finished"] = _now()
    with contextlib.suppress(OSError):  # the record also goes back to the sweep as the task's result
        write_json(run / STATUS, {**result, "state": result["status"], "attempt": job["attempt"]})
    return result
