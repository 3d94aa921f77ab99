"""The learning benchmark, run through `roboq sweep` on Ray and reported by `roboq report`.

Eight Meta-World tasks, two demo regimes (20 and 5 expert demos), CQN-AS and BC on 2 seeds and CQN
on 1, 5000 env steps per run (BC: as many updates), evaluation on 10 episodes every 1000 steps and
on 20 at the end, small preset, one CPU (and torch thread) per run. It is two sweeps into one sweep
directory (CQN-AS and BC first, task by task, then CQN):

    roboq sweep task=[<8 tasks>] agent=[cqn_as,bc] seed=[0,1] demos.num=[20,5] train.steps=5000 ...
    roboq sweep task=[<8 tasks>] agent=cqn seed=0 demos.num=[20,5] train.steps=5000 ...
    roboq report sweep=outputs/sweeps/learning

    python bench/learning.py [--name learning] [--tasks drawer-open,push] [--demos 20,5] [--steps 5000]
                             [--seeds 2] [--cqn-seeds 1] [--address auto] [--cpus-per-run 1]
                             [--out bench/results/learning] [key=value ...]

The critics' settings (``--critic``, default: pre-training on the demos, compiled bf16 updates) go to
every run (BC ignores them); extra key=value settings too. Killed, it continues where it stopped when
started again with the same --name (finished runs are skipped, the others resume from their
checkpoints). The report (report.md with the table and 95% Wilson intervals, report.json,
curves.png) is copied to --out with timing.json: the wall time and where it went (per run and agent).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

TASKS = [
    "drawer-open",
    "pick-place",
    "button-press-topdown",
    "door-open",
    "window-open",
    "push",
    "sweep-into",
    "coffee-push",
]
CRITIC = "++agent.pretrain=1000,++agent.compile=true,++agent.precision=bf16"


def listing(values: list[Any]) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


def grids(args: argparse.Namespace) -> list[list[str]]:
    """The sweep command lines (without name=): CQN-AS and BC, then CQN."""
    tasks = listing([f"metaworld/{t}" for t in args.tasks.split(",")])
    demos = listing([int(d) for d in args.demos.split(",")])
    common = [
        f"demos.num={demos}",
        f"train.steps={args.steps}",
        f"eval.every={args.eval_every}",
        "eval.episodes=10",
        "eval.final_episodes=20",
        *[s for s in args.critic.split(",") if s],
        *args.settings,
    ]
    out = [[f"task={tasks}", "agent=[cqn_as,bc]", f"seed={listing(list(range(args.seeds)))}", *common]]
    if args.cqn_seeds > 0:
        out.append([f"task={tasks}", "agent=cqn", f"seed={listing(list(range(args.cqn_seeds)))}", *common])
    return out


def timing(root: Path, wall: float) -> dict[str, Any]:
    """Where the time went: each run's wall seconds (its sweep record) and their sum by agent (runs skipped
    as finished before this invocation are listed but not summed)."""
    state = json.loads((root / "sweep.json").read_text())
    per_agent: dict[str, float] = defaultdict(float)
    runs = {}
    for name, record in state["runs"].items():
        seconds = record.get("seconds")
        runs[name] = {"agent": record["agent"], "status": record.get("status"), "seconds": seconds}
        if seconds is not None and record.get("mode") != "skipped":
            per_agent[record["agent"]] += float(seconds)
    return {"wall_seconds": round(wall, 1), "run_seconds_by_agent": dict(per_agent), "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="learning", help="the sweep's name: outputs/sweeps/<name>")
    parser.add_argument("--tasks", default=",".join(TASKS), help="Meta-World tasks, comma-separated")
    parser.add_argument("--demos", default="20,5", help="demo regimes: expert demos per run, comma-separated")
    parser.add_argument("--steps", type=int, default=5000, help="env steps per run (BC: updates)")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=2, help="seeds of CQN-AS and BC")
    parser.add_argument("--cqn-seeds", type=int, default=1, help="seeds of CQN (0: none)")
    parser.add_argument("--critic", default=CRITIC, help="settings for every run, comma-separated ('' for none)")
    parser.add_argument("--address", default=None, help="ray.address: auto or <host>:<port> (default: a local Ray)")
    parser.add_argument("--cpus-per-run", type=int, default=1, help="CPUs (and torch threads) per run")
    parser.add_argument("--out", default="bench/results/learning", help="where the report is copied")
    parser.add_argument("settings", nargs="*", help="more key=value settings for roboq sweep")
    args = parser.parse_args()

    from robo_q.allocator import configure_cpu_allocator

    configure_cpu_allocator()  # as the roboq CLI does (the runs themselves are `roboq train` processes)
    from robo_q.cli import compose_config
    from robo_q.commands.report import report
    from robo_q.commands.sweep import sweep

    start, code = time.perf_counter(), 0
    cfg = None
    for grid in grids(args):
        overrides = [*grid, f"name={args.name}", f"run.cpus={args.cpus_per_run}"]
        if args.address:
            overrides.append(f"ray.address={args.address}")
        cfg = compose_config("sweep", overrides)
        code = sweep(cfg, overrides) or code
    assert cfg is not None
    root = Path(str(cfg.root)) / args.name
    report(compose_config("report", [f"sweep={root}"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "report.json", "curves.png"):
        shutil.copy2(root / name, out / name)
    spent = timing(root, time.perf_counter() - start)
    (out / "timing.json").write_text(json.dumps(spent, indent=2))
    print(
        f"\nwall time {spent['wall_seconds'] / 60:.1f} min; run time by agent (min): "
        + ", ".join(f"{a} {s / 60:.1f}" for a, s in spent["run_seconds_by_agent"].items())
    )
    print(f"report copied to {out}/ (report.md, report.json, curves.png, timing.json)")
    return code


if __name__ == "__main__":
    sys.exit(main())
