"""A sweep run's directory: is it finished, can it resume, who is writing it.

A run directory is an ordinary `roboq train` run directory (config.yaml, train.csv, eval.csv,
eval_info.json, checkpoints/) plus what the sweep adds: ``run.log`` (the run's stdout and stderr,
every attempt appended), ``sweep_run.json`` (the current attempt's state) and ``.sweep.lock``
(held by the attempt's training process while it writes the directory).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from omegaconf import OmegaConf

from robo_q.sweep.stats import wilson

LOG = "run.log"
STATUS = "sweep_run.json"
LOCK = ".sweep.lock"
SWEEP_FILES = (LOG, STATUS, LOCK)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's object, or None when it is missing or half written."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Write atomically (a killed writer leaves the previous version, never half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


def run_settings(run: Path) -> dict[str, Any] | None:
    """The run's own config.yaml (as the trainer saved it, resolved), or None."""
    try:
        cfg = OmegaConf.load(run / "config.yaml")
    except (OSError, ValueError):
        return None
    container = OmegaConf.to_container(cfg)
    return {str(k): v for k, v in container.items()} if isinstance(container, dict) else None


def checkpoint_step(run: Path) -> int | None:
    """The step of ``checkpoints/last``, None without one."""
    meta = read_json(run / "checkpoints" / "last" / "meta.json")
    return int(meta["step"]) if meta and "step" in meta else None


def run_state(run: Path) -> str:
    """``finished`` (its final evaluation and checkpoint are written), ``resumable`` (a checkpoint), else ``fresh``."""
    settings = run_settings(run)
    step = checkpoint_step(run)
    if settings is None or step is None:
        return "fresh"
    info = read_json(run / "eval_info.json")
    total = int(settings["train"]["steps"])
    if info is not None and int(info.get("step", -1)) >= total and step >= total:
        return "finished"
    return "resumable"


def clear_for_fresh_start(run: Path) -> None:
    """Remove what an attempt that never checkpointed left (partial demos, CSV rows); keep the sweep's files."""
    if not run.is_dir():
        return
    for entry in run.iterdir():
        if entry.name in SWEEP_FILES:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def eval_successes(info: dict[str, Any]) -> tuple[int, int]:
    """Successes and episodes of one evaluation (eval_info.json)."""
    episodes = info.get("per_episode")
    if episodes:
        return sum(bool(e["success"]) for e in episodes), len(episodes)
    n = int(info["episodes"])
    return round(float(info["success_rate"]) * n), n


def annotate_eval_info(run: Path) -> dict[str, Any] | None:
    """Add the 95% Wilson interval to a finished run's eval_info.json; returns its summary (None if absent)."""
    path = run / "eval_info.json"
    info = read_json(path)
    if info is None:
        return None
    k, n = eval_successes(info)
    low, high = wilson(k, n)
    if info.get("wilson_low") != low or info.get("wilson_high") != high or info.get("successes") != k:
        info.update(successes=k, wilson_low=low, wilson_high=high, interval="wilson score, 95%")
        write_json(path, info)
    return {
        "step": info.get("step"),
        "success_rate": info.get("success_rate"),
        "successes": k,
        "episodes": n,
        "wilson_low": low,
        "wilson_high": high,
    }


def eval_rows(run: Path) -> list[dict[str, float]]:
    """The run's evaluations from eval.csv (step, success_rate, episodes), in file order."""
    try:
        with (run / "eval.csv").open(newline="") as f:
            return [
                {"step": int(r["step"]), "success_rate": float(r["success_rate"]), "episodes": int(r["episodes"])}
                for r in csv.DictReader(f)
                if r.get("step")
            ]
    except (OSError, ValueError, KeyError):
        return []


def log_tail(run: Path, lines: int = 25) -> str:
    try:
        text = (run / LOG).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


@contextlib.contextmanager
def run_lock(run: Path, wait: float) -> Iterator[IO[str]]:
    """Hold the run directory's lock (waiting up to ``wait`` seconds for a previous attempt's process).

    The lock is an flock on ``.sweep.lock``; the open file is handed to the training process, so the
    lock lasts as long as that process, even if the Ray worker that started it is gone.
    """
    run.mkdir(parents=True, exist_ok=True)
    with (run / LOCK).open("a+") as f:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{run} is still written by another process after {wait:.0f} s "
                        f"(a previous attempt of this run?); see {run / STATUS}"
                    ) from None
                time.sleep(0.5)
        yield f  # closing the file releases the lock once the training process has closed its copy too


def run_in_use(run: Path) -> bool:
    """Whether some process holds the run directory's lock now."""
    path = run / LOCK
    if not path.exists():
        return False
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False
