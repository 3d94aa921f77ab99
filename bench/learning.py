"""Learning curves through `roboq sweep` and `roboq report`: CQN-AS against BC on Meta-World drawer-open and
pick-place, 2 seeds, 10000 env steps each (20 expert demos per run, small preset, 10 evaluation episodes
every 2000 steps), every run a Ray task:

    roboq sweep task=[metaworld/drawer-open,metaworld/pick-place] agent=[cqn_as,bc] seed=[0,1] train.steps=10000
    roboq report sweep=outputs/sweeps/learning

    python bench/learning.py [--name learning] [--address auto] [--cpus-per-run 1] [--out bench/results/learning]
                             [key=value ...]

Extra key=value settings go to `roboq sweep` (e.g. train.steps=2000, ray.num_cpus=2, device=cuda).
Killed, it continues where it stopped when started again with the same --name (finished runs are
skipped, the others resume from their checkpoints). The sweep lives in outputs/sweeps/<name>/; its
report (report.md with the table and 95% Wilson intervals, report.json, curves.png) is written there
and copied to --out.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

GRID = [
    "task=[metaworld/drawer-open,metaworld/pick-place]",
    "agent=[cqn_as,bc]",
    "seed=[0,1]",
    "train.steps=10000",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="learning", help="the sweep's name: outputs/sweeps/<name>")
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

    overrides = [*GRID, f"name={args.name}", f"run.cpus={args.cpus_per_run}", *args.settings]
    if args.address:
        overrides.append(f"ray.address={args.address}")
    cfg = compose_config("sweep", overrides)
    code = sweep(cfg, overrides)
    root = Path(str(cfg.root)) / args.name
    report(compose_config("report", [f"sweep={root}"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "report.json", "curves.png"):
        shutil.copy2(root / name, out / name)
    print(f"\nreport copied to {out}/ (report.md, report.json, curves.png)")
    return code


if __name__ == "__main__":
    sys.exit(main())
