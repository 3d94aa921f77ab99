"""``roboq sweep``: a grid of training runs as Ray tasks, under one sweep directory.

<root>/<name>/sweep.json            the grid, the shared settings, every run's settings and status
<root>/<name>/runs/<run>/           each an ordinary `roboq train` run directory, plus run.log

Without ``ray.address`` a local Ray instance is started for the sweep and stopped after it; with
``ray.address=auto`` or ``<host>:<port>`` the runs go to an existing cluster (whose workers must see
the sweep directory at the same path and have robo_q installed). Started again with the same name, a
sweep skips its finished runs and resumes the others from their checkpoints.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from tqdm import tqdm

from robo_q.sweep.grid import (
    RunSpec,
    SweepError,
    check_name,
    expand,
    parse_overrides,
    sweep_dir,
    validate,
)
from robo_q.sweep.rundirs import STATUS, annotate_eval_info, log_tail, read_json, run_state, write_json

FORMAT = "robo_q.sweep"
STATE = "sweep.json"


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def default_name() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


# -- the sweep's state ----------------------------------------------------------------------------------
def load_state(root: Path) -> dict[str, Any] | None:
    path = root / STATE
    if not path.exists():
        return None
    state = read_json(path)
    if state is None or state.get("format") != FORMAT:
        raise SweepError(f"{path} is not a sweep's state file (corrupt or foreign)")
    return state


def merge_runs(state: dict[str, Any] | None, runs: list[RunSpec], root: Path) -> dict[str, Any]:
    """The sweep's state with ``runs`` in it; a run already there must have the same settings."""
    state = state or {"format": FORMAT, "version": 1, "created": _now(), "runs": {}}
    known = state["runs"]
    for run in runs:
        old = known.get(run.name)
        if old is not None and old["overrides"] != run.overrides:
            raise SweepError(
                f"sweep {root} already has run {run.name} with other settings:\n  was: {' '.join(old['overrides'])}"
                f"\n  now: {' '.join(run.overrides)}\nuse another name=, or give only name= to continue the sweep"
            )
        known[run.name] = {**(old or {}), **run.to_json(), "dir": f"runs/{run.name}"}
        known[run.name].setdefault("status", "pending")
    return state


def save_state(root: Path, state: dict[str, Any]) -> None:
    state["updated"] = _now()
    write_json(root / STATE, state)


# -- Ray --------------------------------------------------------------------------------------------------
_PROBE = (
    "import json, logging, ray\n"
    "ray.init(address={address!r}, logging_level=logging.ERROR, log_to_driver=False)\n"
    "print(json.dumps(ray.cluster_resources()))\n"
)


def probe_address(address: str, timeout: float) -> None:
    """Fail clearly, and soon, when no Ray cluster answers at ``address`` (ray.init would retry for minutes)."""
    if address != "auto":
        hostport = address.split("://", 1)[-1]
        host, sep, port = hostport.rpartition(":")
        if not sep or not port.isdigit():
            raise SweepError(f"ray.address={address}: expected auto, <host>:<port> or ray://<host>:<port>")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=min(timeout, 10.0)).close()
        except OSError as err:
            raise SweepError(f"ray.address={address}: cannot reach a Ray cluster there ({err})") from None
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE.format(address=address)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise SweepError(f"ray.address={address}: no Ray cluster answered within {timeout:.0f} s") from None
    if probe.returncode != 0:
        lines = [line.strip() for line in probe.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit {probe.returncode}"
        auth = next((line for line in lines if line.startswith("ray.exceptions.AuthenticationError")), None)
        if auth:  # ray.init infers token authentication for address=auto only
            reason += f" ({auth.split('. ')[0]}; a cluster with token authentication: set RAY_AUTH_MODE=token)"
        raise SweepError(f"ray.address={address}: cannot connect to a Ray cluster: {reason}")


def connect(cfg: DictConfig) -> bool:
    """Connect to ``ray.address`` or start a local instance; True when this sweep started (and stops) it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():  # a caller's Ray (tests, notebooks): used as it is, left running
        return False
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    address = cfg.ray.address
    if address:
        address = str(address)
        probe_address(address, float(cfg.ray.connect_timeout))
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as err:
            raise SweepError(f"ray.address={address}: cannot connect to a Ray cluster: {err}") from None
        return False
    ray.init(
        address="local",  # a new instance even when a cluster runs on this machine (ray.init() would join it)
        num_cpus=cfg.ray.num_cpus,
        num_gpus=cfg.ray.num_gpus,
        object_store_memory=cfg.ray.object_store_memory,
        include_dashboard=False,
        **quiet,
    )
    return True


def run_resources(cfg: DictConfig, run: RunSpec, cluster: dict[str, float]) -> tuple[float, float]:
    """CPUs and GPUs a run reserves; a need the cluster cannot meet fails before anything is submitted."""
    given = [o.split("=", 1)[1] for o in run.overrides if o.startswith("device=")]
    device = given[-1].strip("'\"") if given else "auto"  # the run's own setting (train's default: auto)
    cpus = float(cfg.run.cpus)
    have_gpus = float(cluster.get("GPU", 0.0))
    if cfg.run.gpus is not None:
        gpus = float(cfg.run.gpus)
    elif device == "cuda" or (device == "auto" and have_gpus >= 1):
        gpus = 1.0
    else:
        gpus = 0.0
    if device == "cuda" and gpus <= 0:
        raise SweepError(f"run {run.name}: device=cuda needs run.gpus > 0")
    if gpus > have_gpus:
        raise SweepError(f"run {run.name} needs {gpus:g} GPU (device={device}); the Ray cluster has {have_gpus:g}")
    if cpus > float(cluster.get("CPU", 0.0)):
        raise SweepError(f"each run needs run.cpus={cpus:g} CPUs; the Ray cluster has {cluster.get('CPU', 0):g}")
    return cpus, gpus


# -- the sweep --------------------------------------------------------------------------------------------
class _Progress:
    """Runs done / running / queued / failed: a tqdm bar plus one line per finished run."""

    def __init__(self, name: str, total: int, enabled: bool) -> None:
        self.done = self.failed = 0
        self._shown: tuple[int, ...] = ()
        self._drawn = 0.0
        self.bar = tqdm(total=total, desc=f"sweep {name}", unit="run", disable=not enabled, dynamic_ncols=True)

    def finished(self, name: str, result: dict[str, Any]) -> None:
        if result.get("status") == "done":
            self.done += 1
            final = result.get("final") or {}
            rate = final.get("success_rate")
            what = (
                f"success {rate:.0%} [{final['wilson_low']:.0%}, {final['wilson_high']:.0%}] at step {final['step']}"
                if rate is not None
                else "done"
            )
            secs = f", {result['seconds']:.0f} s" if result.get("seconds") is not None else ""
            tqdm.write(f"done    {name}: {what} ({result.get('mode', 'fresh')}{secs})")
        else:
            self.failed += 1
            tail = result.get("log_tail") or result.get("traceback") or ""
            tail = "\n".join(f"    | {line}" for line in tail.splitlines())
            tqdm.write(
                f"FAILED  {name}: {result.get('error')}; log {result.get('log')}" + (f"\n{tail}" if tail else "")
            )
        self.bar.update(1)

    def show(self, running: int, queued: int) -> None:
        """Redraw when the counts change, else every 30 s (a log file gets a line per redraw, not per second)."""
        shown = (self.done, running, queued, self.failed)
        if shown == self._shown and time.monotonic() - self._drawn < 30.0:
            return
        self._shown, self._drawn = shown, time.monotonic()
        self.bar.set_postfix(done=self.done, running=running, queued=queued, failed=self.failed, refresh=True)

    def close(self) -> None:
        self.bar.close()


def _runs_to_do(
    cfg: DictConfig, overrides: Sequence[str], state: dict[str, Any] | None, root: Path
) -> tuple[list[RunSpec], dict[str, Any]]:
    """The runs this command asks for (all of a sweep continued with name= alone), checked, in the state."""
    from robo_q.cli import compose_config

    axes, common = parse_overrides(overrides, compose_config("train", []))
    if state is not None and not axes and not common:  # `roboq sweep name=<name>`: continue it as it was
        runs = [RunSpec.from_json(r) for r in state["runs"].values()]
    else:
        runs = expand(cfg, axes, common)
    validate(runs)
    state = merge_runs(state, runs, root)
    merged = state.setdefault("axes", {})
    for key, values in axes.items():
        merged[key] = list(merged.get(key, [])) + [v for v in values if v not in merged.get(key, [])]
    if axes or common or "common" not in state:
        state["common"] = common
        state["command"] = list(overrides)
    return runs, state


def run_sweep(cfg: DictConfig, overrides: Sequence[str]) -> dict[str, Any]:
    """Plan, check, run on Ray and record the sweep; returns its summary (the runs and their outcome).

    Bad input (unknown tasks or agents, settings that do not compose, an unreachable Ray address,
    resources the cluster lacks) raises SweepError before a run starts or a file is written.
    """
    name = check_name(str(cfg.name) if cfg.name else default_name())
    root = sweep_dir(cfg, name).resolve()
    state = load_state(root)
    runs, state = _runs_to_do(cfg, overrides, state, root)
    todo = [run for run in runs if run_state(root / "runs" / run.name) != "finished"]
    counts = {"skipped": len(runs) - len(todo), "resumed": 0, "fresh": 0, "failed": 0}
    started_local = False
    try:
        resources: dict[str, tuple[float, float]] = {}
        if todo:
            import ray

            started_local = connect(cfg)
            cluster = {k: float(v) for k, v in ray.cluster_resources().items()}
            resources = {run.name: run_resources(cfg, run, cluster) for run in todo}
            state["ray"] = {"address": cfg.ray.address, "started_local": started_local, "resources": cluster}
        (root / "runs").mkdir(parents=True, exist_ok=True)
        state.update(name=name, cwd=os.getcwd())
        records = state["runs"]
        for run in runs:
            run_dir = root / "runs" / run.name
            if run in todo:
                records[run.name]["status"] = "pending"
            else:
                records[run.name].update(status="done", mode="skipped", final=annotate_eval_info(run_dir))
        save_state(root, state)
        again = f"roboq sweep name={name}" + (f" root={cfg.root}" if str(cfg.root) != "outputs/sweeps" else "")
        print(f"sweep {name}: {len(runs)} runs under {root}, {counts['skipped']} finished already (continue: {again})")
        if todo:
            _execute(cfg, root, state, todo, resources, counts, total=len(runs))
    finally:
        if started_local:
            import ray

            ray.shutdown()
    failed = [r.name for r in runs if state["runs"][r.name]["status"] != "done"]
    return {"name": name, "dir": str(root), "runs": len(runs), **counts, "failed": failed, "records": state["runs"]}


def _execute(
    cfg: DictConfig,
    root: Path,
    state: dict[str, Any],
    todo: list[RunSpec],
    resources: dict[str, tuple[float, float]],
    counts: dict[str, int],
    total: int,
) -> None:
    """Submit every run as a Ray task and follow them to the end (Ctrl-C cancels those still running)."""
    import ray
    from ray.exceptions import RayError

    from robo_q.sweep.runner import execute_run

    records = state["runs"]
    progress = _Progress(str(state["name"]), total, bool(cfg.progress))
    progress.done = counts["skipped"]
    progress.bar.update(counts["skipped"])
    pending: dict[Any, tuple[RunSpec, dict[str, Any]]] = {}
    remote = ray.remote(execute_run)
    try:
        for run in todo:
            cpus, gpus = resources[run.name]
            job = {
                "name": run.name,
                "dir": str(root / "runs" / run.name),
                "overrides": run.overrides,
                "cwd": os.getcwd(),
                "cpus": cpus,
                "gpus": gpus,
                "attempt": uuid.uuid4().hex[:12],
                "lock_wait": float(cfg.run.lock_wait),
            }
            options = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": int(cfg.run.max_retries)}
            pending[remote.options(name=f"roboq train {run.name}", **options).remote(job)] = (run, job)
            records[run.name].update(status="submitted", cpus=cpus, gpus=gpus)
        save_state(root, state)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                run, job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except RayError as err:  # the worker died (killed, out of memory) or could not run the task
                    first = str(err).strip().splitlines()
                    run_dir = Path(str(job["dir"]))
                    result = {
                        "status": "failed",
                        "error": f"{type(err).__name__}: {first[0] if first else ''}",
                        "log": str(run_dir / "run.log"),
                        "log_tail": log_tail(run_dir),
                    }
                result.pop("name", None)
                records[run.name].update(result)
                if result.get("status") == "done":
                    mode = result.get("mode", "fresh")
                    counts[mode] = counts.get(mode, 0) + 1
                else:
                    counts["failed"] += 1
                progress.finished(run.name, result)
                save_state(root, state)
            running = sum(1 for _, job in pending.values() if _running(Path(job["dir"]), job["attempt"]))
            progress.show(running, len(pending) - running)
    except KeyboardInterrupt:
        for ref, (run, _) in pending.items():
            ray.cancel(ref, force=True)
            records[run.name]["status"] = "interrupted"
        save_state(root, state)
        raise
    finally:
        progress.close()


def _running(run: Path, attempt: str) -> bool:
    status = read_json(run / STATUS)
    return bool(status and status.get("attempt") == attempt and status.get("state") == "running")
