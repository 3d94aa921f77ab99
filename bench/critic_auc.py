"""Does a trained critic score failed demonstrations below successful ones? ROC AUC over seeds.

    python bench/critic_auc.py [--task metaworld/pick-place] [--seeds 3] [--steps 3000] [--quick]

Collects expert episodes with ``keep_failed=true`` and a step limit short enough that some
episodes fail (the expert is cut off before it finishes), one store to train on and a held-out
one (other seeds); trains ``agent`` offline on the first for each training seed; runs
``roboq demos score`` on both. Prints the AUC per seed with its 95% bootstrap interval over
episodes, and the mean over seeds with a t-interval; writes bench/results/critic_auc.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)  # df 1..10


def roboq(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "robo_q.cli", *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"roboq {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds."""
    a = np.asarray(values, np.float64)
    if len(a) < 2:
        return float(a.mean()), float("nan"), float("nan")
    half = T_975[min(len(a) - 1, len(T_975)) - 1] * a.std(ddof=1) / np.sqrt(len(a))
    return float(a.mean()), float(a.mean() - half), float(a.mean() + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="metaworld/pick-place")
    parser.add_argument("--agent", default="cqn_as")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--max-episode-steps", type=int, default=53, help="short enough that some expert runs fail")
    parser.add_argument("--steps", type=int, default=3000, help="offline updates")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "critic_auc.json"))
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.steps, args.seeds = 8, 40, 2
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stores = {"train": root / "train.zarr", "held_out": root / "held_out.zarr"}
        for path, seed in zip(stores.values(), (0, 500), strict=True):
            roboq(
                *("demos", "collect", f"task={args.task}", f"episodes={args.episodes}", f"seed={seed}"),
                *("keep_failed=true", f"env.max_episode_steps={args.max_episode_steps}", f"out={path}"),
                "progress=false",
            )
        rows = []
        for seed in range(args.seeds):
            run = root / f"run{seed}"
            roboq(
                *("train", f"store={stores['train']}", f"agent={args.agent}", "train.offline=true"),
                *(f"train.steps={args.steps}", f"eval.every={args.steps}", "eval.episodes=0"),
                *(f"demos.num={args.episodes}", f"seed={seed}", "progress=false", f"out={run}"),
            )
            row: dict = {"seed": seed}
            for name, path in stores.items():
                roboq("demos", "score", f"store={path}", f"checkpoint={run}", f"out={root / f'score{seed}_{name}'}")
                report = json.loads((root / f"score{seed}_{name}" / "score.json").read_text())
                successes = sum(e["success"] for e in report["episodes"])
                row[name] = {
                    "auc": report["success_auc"],
                    "auc_95": report["success_auc_95"],
                    "episodes": len(report["episodes"]),
                    "successful": successes,
                }
            rows.append(row)
            print(
                f"seed {seed}: AUC train {row['train']['auc']:.3f} {row['train']['auc_95']}, "
                f"held-out {row['held_out']['auc']:.3f} {row['held_out']['auc_95']}"
            )
    summary = {name: mean_interval([r[name]["auc"] for r in rows]) for name in stores}
    for name, (mean, low, high) in summary.items():
        print(f"{name}: mean AUC over {args.seeds} seeds {mean:.3f} (95% t-interval {low:.3f}-{high:.3f})")
    result = {
        "machine": platform.platform(),
        "task": args.task,
        "agent": args.agent,
        "episodes_per_store": args.episodes,
        "max_episode_steps": args.max_episode_steps,
        "offline_updates": args.steps,
        "seeds": rows,
        "mean_auc_95": summary,
        "seconds": time.perf_counter() - start,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
