"""Learning curves: success rate vs env steps for cqn, cqn_as and bc on Meta-World drawer-open,
Meta-World pick-place and dm_control reacher-hard (20 expert demos each, 2 seeds, small preset).

    python bench/learning.py [--workers 2] [--scale 1.0] [--out bench/results/learning]

Sized to finish in about an hour on a 2-core CPU. Each run is a real `roboq train` run (its
run directory under OUT/runs/); BC trains offline on the demos for the same number of updates
(its x axis is updates). Writes OUT/learning.json, OUT/learning.png and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TASKS = {  # env steps per run at --scale 1 (eval every steps/5)
    "metaworld/drawer-open": 2500,
    "metaworld/pick-place": 2500,
    "dmc/reacher-hard": 3000,
}
AGENTS = ("cqn", "cqn_as", "bc")
SEEDS = (0, 1)
DEMOS = 20
EVAL_EPISODES = 10


def collect(task: str, out: Path) -> Path:
    from robo_q.data import EpisodeStore
    from robo_q.data.collect import collect_demos, store_for_env
    from sim import make_env
    from sim.experts import make_expert

    path = out / "demos" / f"{task.replace('/', '_')}.zarr"
    if path.exists() and EpisodeStore.open(path).num_episodes >= DEMOS:
        return path
    with make_env(task) as env:
        store = store_for_env(env, path, source="expert", overwrite=True)
        collect_demos(env, make_expert(env), store, episodes=DEMOS, progress=False)
    return path


def run_one(task: str, agent: str, seed: int, steps: int, demos: Path, out: Path, threads: int) -> dict:
    from robo_q.allocator import configure_cpu_allocator

    configure_cpu_allocator()  # as the roboq CLI does, before torch loads
    import torch

    torch.set_num_threads(threads)
    from robo_q.cli import compose_config
    from robo_q.training.trainer import Trainer

    run_dir = out / "runs" / f"{task.replace('/', '_')}_{agent}_s{seed}"
    overrides = [
        f"task={task}",
        f"agent={agent}",
        "agent.preset=small",
        f"seed={seed}",
        "device=cpu",
        f"demos.path={demos}",
        f"demos.num={DEMOS}",
        f"train.steps={steps}",
        f"train.offline={agent == 'bc'}",
        f"eval.every={steps // 5}",
        f"eval.episodes={EVAL_EPISODES}",
        "progress=false",
    ]
    if (run_dir / "checkpoints" / "last").exists():
        overrides.append(f"resume={run_dir}")
    else:
        overrides.append(f"out={run_dir}")
    start = time.perf_counter()
    Trainer(compose_config("train", overrides)).run()
    with (run_dir / "eval.csv").open() as f:
        curve = [
            {"step": int(r["step"]), "success_rate": float(r["success_rate"]), "mean_return": float(r["mean_return"])}
            for r in csv.DictReader(f)
        ]
    return {
        "task": task,
        "agent": agent,
        "seed": seed,
        "steps": steps,
        "seconds": time.perf_counter() - start,
        "curve": curve,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(5 * len(TASKS), 3.8))
    for ax, task in zip(axes, TASKS, strict=False):
        for agent in AGENTS:
            runs = [r for r in results if r["task"] == task and r["agent"] == agent]
            if not runs:
                continue
            steps = [p["step"] for p in runs[0]["curve"]]
            mean = [
                sum(r["curve"][i]["success_rate"] for r in runs if i < len(r["curve"])) / len(runs)
                for i in range(len(steps))
            ]
            ax.plot(steps, mean, marker="o", label=agent)
        ax.set_title(task)
        ax.set_xlabel("env steps (bc: updates)")
        ax.set_ylabel(f"success rate ({EVAL_EPISODES} eval episodes, mean of {len(SEEDS)} seeds)")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one torch thread each)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run's step budget")
    parser.add_argument("--out", default="bench/results/learning")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demos = {task: collect(task, out) for task in TASKS}
    jobs = [
        (task, agent, seed, int(steps * args.scale))
        for task, steps in TASKS.items()
        for agent in AGENTS
        for seed in SEEDS
    ]
    threads = max(1, (os.cpu_count() or 2) // args.workers)
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [
            pool.submit(run_one, task, agent, seed, steps, demos[task], out, threads)
            for task, agent, seed, steps in jobs
        ]
        results = []
        for future in futures:
            r = future.result()
            results.append(r)
            print(
                f"{r['task']:<24} {r['agent']:<7} seed {r['seed']}: "
                f"final success {r['curve'][-1]['success_rate']:.0%} ({r['seconds']:.0f} s)",
                flush=True,
            )
    table = {}
    print(f"\n{'task':<24} " + " ".join(f"{a:>14}" for a in AGENTS))
    for task in TASKS:
        row = {}
        for agent in AGENTS:
            finals = [r["curve"][-1]["success_rate"] for r in results if r["task"] == task and r["agent"] == agent]
            best = [
                max(p["success_rate"] for p in r["curve"]) for r in results if r["task"] == task and r["agent"] == agent
            ]
            row[agent] = {"final_success": sum(finals) / len(finals), "best_success": sum(best) / len(best)}
        table[task] = row
        print(f"{task:<24} " + " ".join(f"{row[a]['final_success']:>13.0%} " for a in AGENTS))
    summary = {
        "tasks": TASKS,
        "scale": args.scale,
        "seeds": SEEDS,
        "demos": DEMOS,
        "eval_episodes": EVAL_EPISODES,
        "wall_seconds": time.perf_counter() - start,
        "table": table,
        "runs": results,
    }
    (out / "learning.json").write_text(json.dumps(summary, indent=2))
    plot(results, out / "learning.png")
    print(f"\nwrote {out / 'learning.json'} and {out / 'learning.png'} ({summary['wall_seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
