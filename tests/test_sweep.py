"""`roboq sweep` on a real local Ray instance and `roboq report`: a 2 x 2 grid of tiny runs is killed,
started again (finished runs are not rerun, the unfinished one resumes from its checkpoint) and
reported with Wilson intervals; bad input fails before Ray starts; a crashing run does not stop the others.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.errors import HydraException

from robo_q.cli import compose_config
from robo_q.commands.report import report
from robo_q.commands.sweep import sweep
from robo_q.sweep import SweepError, wilson
from robo_q.sweep.grid import check_agents, expand, parse_overrides, plan
from robo_q.sweep.rundirs import checkpoint_step, read_json, run_in_use, run_state

TINY = [
    "agent.hidden=32",
    "agent.batch_size=16",
    "agent.demo_batch_size=16",
    "demos.num=2",
    "env.max_episode_steps=60",
    "eval.every=60",
    "eval.episodes=1",
    "train.log_every=60",
    "device=cpu",
]
LIGHT_RAY = ["ray.num_cpus=2", "ray.object_store_memory=80000000", "progress=false"]
# what `roboq sweep` does, before the command is registered in robo_q/cli.py
DRIVER = (
    "import sys\n"
    "from robo_q.cli import compose_config\n"
    "from robo_q.commands.sweep import sweep\n"
    "overrides = sys.argv[1:]\n"
    "sys.exit(sweep(compose_config('sweep', overrides), overrides))\n"
)


def test_wilson_interval():
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(17, 20) == pytest.approx((0.6396, 0.9476), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_grid_from_the_command_line():
    overrides = [
        "task=[metaworld/drawer-open,metaworld/pick-place]",
        "agent=[cqn_as,bc]",
        "seed=[0,1]",
        "train.steps=10000",
        "env.cameras=[corner2]",  # a list-valued train setting: a value, not an axis
        "agent.lr=[0.0001,0.0003]",
        "name=x",
        "ray.address=auto",
    ]
    cfg = compose_config("sweep", overrides)
    axes, common = parse_overrides(overrides, compose_config("train", []))
    assert axes == {
        "task": ["metaworld/drawer-open", "metaworld/pick-place"],
        "agent": ["cqn_as", "bc"],
        "seed": [0, 1],
        "agent.lr": [0.0001, 0.0003],
    }
    assert common == ["train.steps=10000", "env.cameras=[corner2]"]  # the sweep's own settings go to no run
    runs = expand(cfg, axes, common)
    assert len(runs) == 16 and len({r.name for r in runs}) == 16
    first = runs[0]
    assert first.name == "metaworld_drawer-open_cqn_as_seed0_lr0.0001"
    assert first.overrides == [*common, "task=metaworld/drawer-open", "agent=cqn_as", "seed=0", "agent.lr=0.0001"]
    assert {(r.task, r.agent, r.seed) for r in runs} == {
        (t, a, s) for t in axes["task"] for a in axes["agent"] for s in axes["seed"]
    }
    # each run composes as `roboq train` with its overrides: the agent is the run's own, not a merge
    run_cfg = compose_config("train", next(r for r in runs if r.agent == "bc").overrides)
    assert run_cfg.agent.name == "bc" and run_cfg.agent.seq_len == 1 and run_cfg.train.steps == 10000
    assert list(run_cfg.env.cameras) == ["corner2"]


def test_bad_input_fails_before_ray_starts(tmp_path, drawer_store):
    ray = pytest.importorskip("ray")
    root = tmp_path / "sweeps"

    def attempt(*overrides: str) -> str:
        args = [f"root={root}", "name=bad", *overrides]
        with pytest.raises((SweepError, ValueError)) as err:
            sweep(compose_config("sweep", args), args)
        assert not ray.is_initialized() and not (root / "bad").exists()  # nothing started, nothing written
        return str(err.value)

    message = attempt("task=[metaworld/drawer-open,metaworld/drawr-open]", "seed=[0,1]")
    assert "unknown task 'metaworld/drawr-open'" in message and "Did you mean metaworld/drawer-open" in message
    assert "unknown task 'dmc/nope'" in attempt("task=dmc/nope")
    assert "out= is not a sweep setting" in attempt("out=somewhere")
    assert "holds metaworld/drawer-open demos, not metaworld/pick-place" in attempt(
        "task=[metaworld/drawer-open,metaworld/pick-place]", f"demos.path={drawer_store}"
    )
    # an unknown agent: Hydra cannot compose it (the CLI prints this, exit 2); the sweep's own check names it too
    with pytest.raises(HydraException, match="agent/sac"):
        compose_config("sweep", ["agent=[cqn_as,sac]"])
    with pytest.raises(SweepError, match="unknown agent 'sac': the agents are bc, cqn, cqn_as"):
        check_agents(["cqn_as", "sac"])
    # a Ray address nobody listens at: a clear error, at once
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    message = attempt(f"ray.address=127.0.0.1:{port}", f"demos.path={drawer_store}", *TINY)
    assert f"ray.address=127.0.0.1:{port}: cannot reach a Ray cluster there" in message
    assert time.monotonic() - start < 30
    # the grid is read from the command line: a config alone is refused, not silently reduced to one agent
    with pytest.raises(SweepError, match="pass the key=value overrides"):
        sweep(compose_config("sweep", ["agent=[cqn_as,bc]"]))


def test_a_crashing_run_is_reported_and_the_others_finish(tmp_path, drawer_store, capsys):
    overrides = [
        f"root={tmp_path / 'sweeps'}",
        "name=crash",
        "agent=bc",
        "agent.lr=[0.001,-1.0]",  # a negative learning rate: the optimizer refuses it when the run starts
        f"demos.path={drawer_store}",
        *TINY,
        "train.steps=60",
        *LIGHT_RAY,
    ]
    assert sweep(compose_config("sweep", overrides), overrides) == 1
    out = capsys.readouterr().out
    runs = tmp_path / "sweeps" / "crash" / "runs"
    good, bad = runs / "metaworld_drawer-open_bc_seed0_lr0.001", runs / "metaworld_drawer-open_bc_seed0_lr-1.0"
    assert f"FAILED  {bad.name}: exit 2; log {bad / 'run.log'}" in out and "Invalid learning rate" in out
    assert "Invalid learning rate: -1.0" in (bad / "run.log").read_text()
    assert run_state(good) == "finished"
    state = json.loads((tmp_path / "sweeps" / "crash" / "sweep.json").read_text())
    assert state["runs"][good.name]["status"] == "done"
    assert state["runs"][bad.name]["status"] == "failed" and state["runs"][bad.name]["returncode"] == 2


def _states(runs: Path) -> dict[str, tuple[str, int | None]]:
    if not runs.is_dir():
        return {}
    return {p.name: (run_state(p), checkpoint_step(p)) for p in runs.iterdir() if p.is_dir()}


def test_sweep_killed_restarted_and_reported(tmp_path, drawer_store, monkeypatch):
    steps = 600
    overrides = [
        "agent=[cqn_as,bc]",
        "seed=[0,1]",
        f"demos.path={drawer_store}",
        *TINY,
        f"train.steps={steps}",
        f"root={tmp_path / 'sweeps'}",
        "name=grid",
        *LIGHT_RAY,
    ]
    root = tmp_path / "sweeps" / "grid"
    runs = root / "runs"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *overrides],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the driver and the Ray instance it starts
    )
    try:
        # killed once a run has finished while another is early in its training (deadline: progress, not time)
        deadline = time.monotonic() + 300
        early = None
        while driver.poll() is None and time.monotonic() < deadline:
            states = _states(runs)
            if any(s == "finished" for s, _ in states.values()):
                early = next((n for n, (s, k) in states.items() if s == "resumable" and k and k <= steps // 2), None)
                status = (read_json(runs / early / "sweep_run.json") if early else None) or {}
                if status.get("state") == "running" and status.get("train_pid"):
                    # frozen where it is: it must not finish in the second its death takes
                    os.kill(status["train_pid"], signal.SIGSTOP)
                    break
            time.sleep(0.1)
        assert driver.poll() is None, f"the sweep ended before it was killed:\n{driver.communicate()[0]}"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    # its training processes (the stopped one too) die with it: each holds its run's lock while it lives
    deadline = time.monotonic() + 60
    while any(run_in_use(p) for p in runs.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(run_in_use(p) for p in runs.iterdir()), "a training process outlived the killed sweep"
    killed = _states(runs)
    finished = sorted(n for n, (s, _) in killed.items() if s == "finished")
    unfinished = sorted(n for n, (s, _) in killed.items() if s == "resumable")
    assert finished and early in unfinished, killed
    untouched = {
        n: (
            (runs / n / "eval.csv").read_bytes(),
            (runs / n / "eval.csv").stat().st_mtime_ns,
            (runs / n / "checkpoints" / "last" / "meta.json").stat().st_mtime_ns,
        )
        for n in finished
    }

    # started again exactly as `roboq sweep <overrides>` runs it: the grid comes from the command line
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["roboq", "sweep", *overrides])
    assert sweep(compose_config("sweep", overrides)) == 0
    import ray

    assert not ray.is_initialized()  # the sweep stopped the local instance it started
    state = json.loads((root / "sweep.json").read_text())
    assert sorted(state["runs"]) == sorted(
        f"metaworld_drawer-open_{a}_seed{s}" for a in ("cqn_as", "bc") for s in (0, 1)
    )
    assert all(r["status"] == "done" for r in state["runs"].values())
    for name in finished:  # not rerun
        assert state["runs"][name]["mode"] == "skipped"
        assert untouched[name] == (
            (runs / name / "eval.csv").read_bytes(),
            (runs / name / "eval.csv").stat().st_mtime_ns,
            (runs / name / "checkpoints" / "last" / "meta.json").stat().st_mtime_ns,
        )
    for name in unfinished:  # resumed from its checkpoint, not started over
        step = killed[name][1]
        assert state["runs"][name]["mode"] == "resumed" and state["runs"][name]["resumed_from"] == step
        assert f"resumed {runs / name} at step {step}" in (runs / name / "run.log").read_text()
    for name in state["runs"]:
        assert run_state(runs / name) == "finished"
        info = json.loads((runs / name / "eval_info.json").read_text())
        assert info["step"] == steps and (info["wilson_low"], info["wilson_high"]) == wilson(
            info["successes"], info["episodes"]
        )

    assert report(compose_config("report", [f"sweep={root}"])) == 0
    result = json.loads((root / "report.json").read_text())
    assert result["tasks"] == ["metaworld/drawer-open"] and sorted(result["methods"]) == ["bc", "cqn_as"]
    for method in ("cqn_as", "bc"):
        cell = result["final"]["metaworld/drawer-open"][method]
        assert cell["step"] == steps and cell["seeds"] == 2 and cell["episodes"] == 2
        assert (cell["wilson_low"], cell["wilson_high"]) == pytest.approx(wilson(cell["successes"], 2))
        assert 0.0 <= cell["wilson_low"] <= cell["success_rate"] <= cell["wilson_high"] <= 1.0
        curve = result["curves"]["metaworld/drawer-open"][method]
        assert [p["step"] for p in curve] == list(range(60, steps + 1, 60))  # every evaluation, both seeds
        assert all(p["seeds"] == 2 and p["wilson_low"] <= p["success_rate"] <= p["wilson_high"] for p in curve)
        assert result["mean"][method]["success_rate"] == cell["success_rate"]
    text = (root / "report.md").read_text()
    assert "| task | " in text and "| metaworld/drawer-open | " in text and "Wilson" in text
    assert (root / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_continues_a_sweep_by_name(tmp_path, drawer_store):
    """`roboq sweep name=<name>` alone continues a sweep with its own grid; other settings for its runs are refused."""
    from robo_q.sweep.driver import _runs_to_do, load_state, merge_runs, save_state

    root = tmp_path / "s"
    root.mkdir()
    first = ["seed=[0,1]", f"demos.path={drawer_store}", "train.steps=60"]
    planned = plan(compose_config("sweep", first), first)
    state = merge_runs(None, planned.runs, root)
    state.update(axes=planned.axes, common=planned.common, command=first, name="s")
    save_state(root, state)
    runs, again = _runs_to_do(compose_config("sweep", ["name=s"]), ["name=s"], load_state(root), root)
    assert [r.name for r in runs] == [r.name for r in planned.runs] and again["command"] == first
    other = ["seed=[0,1]", f"demos.path={drawer_store}", "train.steps=120"]
    with pytest.raises(SweepError, match="already has run metaworld_drawer-open_cqn_as_seed0 with other settings"):
        _runs_to_do(compose_config("sweep", other), other, load_state(root), root)


def test_learning_bench_sweeps_critics_and_bc_then_cqn_into_one_report(tmp_path):
    bench = Path(__file__).resolve().parents[1] / "bench" / "learning.py"
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            str(bench),
            "--name=bench",
            "--tasks=drawer-open",
            "--demos=2,1",
            "--steps=100",
            "--eval-every=100",
            "--seeds=1",
            "--critic=++agent.pretrain=3",
            f"--out={out}",
            *[a for a in TINY if not a.startswith(("demos.num=", "env.max_episode_steps="))],
            "env.max_episode_steps=100",
            "eval.final_episodes=2",
            *LIGHT_RAY,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (out / "report.md").read_text()
    for method in ("cqn_as num=2", "cqn_as num=1", "bc num=2", "bc num=1", "cqn num=2", "cqn num=1"):
        assert f" {method} |" in table
    timing = json.loads((out / "timing.json").read_text())
    assert len(timing["runs"]) == 6 and all(r["status"] == "done" for r in timing["runs"].values())
    assert set(timing["run_seconds_by_agent"]) == {"cqn_as", "bc", "cqn"}
    runs = tmp_path / "outputs" / "sweeps" / "bench" / "runs"
    critic = json.loads(
        (runs / "metaworld_drawer-open_cqn_as_seed0_num1" / "checkpoints" / "last" / "meta.json").read_text()
    )
    assert critic["updates"] == 100 + 3 and critic["eval"]["episodes"] == 2  # pre-trained; final evaluation on 2
    assert (out / "curves.png").stat().st_size > 0
