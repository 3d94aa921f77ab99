"""Env steps per second of `roboq train` and where the time goes (env, act, sample, update, eval,
checkpoint, logging), with runs sharing the machine as the learning benchmark runs them.

    python bench/train_loop.py [--steps 1500] [--runs 2] [--threads 1] [--task metaworld/drawer-open]
                               [--agent cqn_as] [--eval-every 500] [--eval-episodes 10]
                               [--variant LABEL=key=value,key=value ...] [--baseline DIR] [--rounds 1]
                               [--out bench/results/train_loop.json] [--tiny]

Expert demonstrations are collected once into a temporary store; then ``--runs`` training runs
(small preset, state observations, ``--threads`` torch threads each) start together as separate
processes, each timing its own loop (demo loading and the trainer's setup excluded). The trainer's
methods are wrapped with timers, not changed. ``--baseline DIR`` (a checkout of another commit,
e.g. ``git worktree add /tmp/base <commit>``) runs the same runs with that code in the same
invocation, after this tree's (``--rounds``: that many rounds of every group, each round starting
with the next group), and the speed-ups printed are from this one run. ``--variant``
adds a group of this tree's runs with more ``roboq train`` settings (``compile=agent.compile=true``).
The first update's time (a compile, with ``agent.compile=true``) is reported apart, and so is the
speed over each run's second half (after one-off compiles; it holds one evaluation).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("env", "act", "sample", "update", "eval", "checkpoint", "logging")


def child(args: argparse.Namespace) -> None:
    """One training run of the code under ``--src``, timed; prints one JSON line."""
    src = Path(args.src)
    sys.path.insert(0, str(src))
    os.environ["ROBOQ_CONFIG_DIR"] = str(src / "configs")
    from robo_q.allocator import configure_cpu_allocator

    configure_cpu_allocator()
    import torch

    torch.set_num_threads(args.threads)
    from robo_q.cli import compose_config
    from robo_q.training import trainer as trainer_module

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    def timed(part: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[part] += time.perf_counter() - t
                calls[part] += 1

        return wrapper

    overrides = [
        *[o for o in args.overrides.split(",") if o],
        f"task={args.task}",
        f"agent={args.agent}",
        f"store={args.store}",
        f"train.steps={args.steps}",
        f"eval.every={args.eval_every}",
        f"eval.episodes={args.eval_episodes}",
        f"seed={args.seed}",
        "device=cpu",
        "progress=false",
        f"out={args.run_dir}",
    ]
    if args.tiny:
        overrides += ["agent.hidden=32", "agent.batch_size=16", "agent.demo_batch_size=16"]
    trainer_module.save_checkpoint = timed("checkpoint", trainer_module.save_checkpoint)
    setup = time.perf_counter()
    trainer = trainer_module.Trainer(compose_config("train", overrides))
    setup = time.perf_counter() - setup
    env: Any = trainer.env
    env.step = timed("env", env.step)
    trainer.policy.act = timed("act", trainer.policy.act)
    for buffer in trainer.buffers.values():
        buffer.sample = timed("sample", buffer.sample)
    update = trainer.agent.update
    first: list[float] = []
    half: list[float] = []  # when the second half of the run began

    def first_timed(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        out = update(*a, **k)
        if not first:
            first.append(time.perf_counter() - t)
        if calls["update"] == args.steps // 2:
            half.append(time.perf_counter())
        return out

    trainer.agent.update = timed("update", first_timed)  # type: ignore[method-assign]
    trainer.evaluate_and_checkpoint = timed("eval", trainer.evaluate_and_checkpoint)
    trainer._log = timed("logging", trainer._log)
    start = time.perf_counter()
    result = trainer.run()
    wall = time.perf_counter() - start
    spent["eval"] -= spent["checkpoint"]  # checkpoints are saved inside evaluate_and_checkpoint
    accounted = sum(spent[p] for p in PARTS)
    print(
        json.dumps(
            {
                "wall_s": wall,
                "setup_s": setup,
                "steps": result["steps"],
                "steps_per_s": result["steps"] / wall,
                "first_update_s": first[0] if first else None,
                "second_half_steps_per_s": (args.steps - args.steps // 2) / (time.perf_counter() - half[0]),
                "seconds": {**{p: spent[p] for p in PARTS}, "other": wall - accounted},
                "calls": dict(calls),
                "final_eval": {k: v for k, v in (result["eval"] or {}).items() if k not in ("per_episode", "seeds")},
            }
        )
    )


def collect(task: str, episodes: int, path: Path) -> None:
    from robo_q.data.collect import collect_demos, store_for_env
    from sim import make_env
    from sim.experts import make_expert

    with make_env(task) as env:
        store = store_for_env(env, path, source="expert")
        collect_demos(env, make_expert(env), store, episodes=episodes, seed=0, progress=True)


def run_group(
    src: Path, args: argparse.Namespace, store: Path, tmp: Path, label: str, overrides: str
) -> list[dict[str, Any]]:
    """``--runs`` runs of the code under ``src`` (with ``overrides``) started together; their timings."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.setdefault("MUJOCO_GL", "egl")
    procs = []
    for i in range(args.runs):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--src", str(src), "--store", str(store)]
        cmd += ["--run-dir", str(tmp / f"{label}_{i}"), "--seed", str(i), "--steps", str(args.steps)]
        cmd += ["--task", args.task, "--agent", args.agent, "--threads", str(args.threads)]
        cmd += ["--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes)]
        cmd += ["--tiny"] if args.tiny else []
        cmd += ["--overrides", overrides]
        procs.append(subprocess.Popen(cmd, cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    runs = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{label} run failed:\n{err[-3000:]}")
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return runs


def summary(label: str, overrides: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = {p: sum(r["seconds"][p] for r in runs) / len(runs) for p in (*PARTS, "other")}
    wall = sum(r["wall_s"] for r in runs) / len(runs)
    return {
        "code": label,
        "overrides": overrides,
        "first_update_s": max((r["first_update_s"] or 0.0) for r in runs),
        "steps_per_s_per_run": sum(r["steps_per_s"] for r in runs) / len(runs),
        "second_half_steps_per_s_per_run": sum(r["second_half_steps_per_s"] for r in runs) / len(runs),
        "wall_s": wall,
        "share": {p: s / wall for p, s in seconds.items()},
        "seconds": seconds,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=2, help="runs sharing the machine at once")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every group, the order rotating")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--task", default="metaworld/drawer-open")
    parser.add_argument("--agent", default="cqn_as")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--baseline", default=None, help="a checkout of other code, timed in the same invocation")
    parser.add_argument(
        "--variant", action="append", default=[], help="LABEL=key=value,...: this tree's runs with more settings"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_loop.json"))
    parser.add_argument("--tiny", action="store_true", help="a few steps of a tiny network (a check that it runs)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--src", default=str(ROOT), help=argparse.SUPPRESS)
    parser.add_argument("--store", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--overrides", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.tiny:
        args.steps, args.eval_every, args.eval_episodes, args.demos = 60, 30, 1, 2
    with tempfile.TemporaryDirectory(prefix="train_loop_") as tmp:
        store = Path(tmp) / "demos.zarr"
        collect(args.task, args.demos, store)
        groups = [("this tree", ROOT, "")]
        groups += [(v.partition("=")[0], ROOT, v.partition("=")[2]) for v in args.variant]
        groups += [("baseline", Path(args.baseline).resolve(), "")] if args.baseline else []
        runs: list[list[dict[str, Any]]] = [[] for _ in groups]
        for round_ in range(args.rounds):  # each round starts with the next group: drift hits all alike
            for i in [(round_ + j) % len(groups) for j in range(len(groups))]:
                label, src, overrides = groups[i]
                print(f"round {round_ + 1}: {label}, {args.runs} run(s) of {args.steps} steps ({src} {overrides})")
                runs[i] += run_group(src, args, store, Path(tmp), f"r{round_}_g{i}", overrides)
        results = [summary(label, overrides, r) for (label, _, overrides), r in zip(groups, runs, strict=True)]
    print(
        f"\n{args.agent} on {args.task}, small preset, state; {args.runs} runs at once, {args.threads} thread(s) each"
    )
    print(
        "| code | settings | env steps/s per run | second half | first update s | " + " | ".join(PARTS) + " | other |"
    )
    print("|---|---|---|---|---|" + "---|" * (len(PARTS) + 1))
    for r in results:
        shares = " | ".join(f"{r['share'][p]:.0%}" for p in (*PARTS, "other"))
        first = f"{r['first_update_s']:.1f}"
        rate, second = f"{r['steps_per_s_per_run']:.1f}", f"{r['second_half_steps_per_s_per_run']:.1f}"
        print(f"| {r['code']} | {r['overrides'] or '-'} | {rate} | {second} | {first} | {shares} |")
    doc: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "logical_cpus": os.cpu_count(), "cpu_model": cpu_model()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "src", "store", "run_dir", "seed")},
        "results": results,
    }
    if args.baseline:
        base, base_half = (results[-1][k] for k in ("steps_per_s_per_run", "second_half_steps_per_s_per_run"))
        doc["speedup_over_baseline"] = {r["code"]: r["steps_per_s_per_run"] / base for r in results[:-1]}
        doc["second_half_speedup_over_baseline"] = {
            r["code"]: r["second_half_steps_per_s_per_run"] / base_half for r in results[:-1]
        }
        for label, x in doc["speedup_over_baseline"].items():
            x_half = doc["second_half_speedup_over_baseline"][label]
            print(f"{label}: {x:.2f}x the baseline's env steps/s, {x_half:.2f}x over the runs' second halves")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
