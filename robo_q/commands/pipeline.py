"""``roboq pipeline``: the main job on one task, every stage writing under one run directory.

Stages: collect expert demos -> replay checks -> train -> evaluate -> export a bundle ->
evaluate the bundle through the deployment runtime -> run it as a ROS 2 policy node against the
MuJoCo sim bridge (separate processes over loopback) on the same seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from policies import load_policy
from robo_q.commands.common import env_kwargs, print_summary
from robo_q.commands.demos import print_replay_summary
from robo_q.data.collect import collect_demos, store_for_env
from robo_q.data.sim_replay import replay_store
from robo_q.evaluate import evaluate
from robo_q.export import export_bundle
from robo_q.rundir import make_run_dir, save_config
from robo_q.training.trainer import Trainer
from ros_nodes.session import run_closed_loop
from sim import make_env
from sim.experts import make_expert


def pipeline(cfg: DictConfig) -> int:
    """Collect expert demos, replay them (open loop with video, and by state), train, evaluate,
    export a bundle, evaluate the bundle itself, and run it through ROS 2."""
    from robo_q.cli import compose_config  # the training stage runs the `train` command's config

    run_dir = make_run_dir("pipeline", cfg.task, cfg.out)
    save_config(cfg, run_dir)
    print(f"run directory: {run_dir}")
    with make_env(cfg.task, **env_kwargs(cfg.env)) as env:
        store = store_for_env(env, run_dir / "demos.zarr", source="expert")
        collected = collect_demos(
            env, make_expert(env), store, episodes=cfg.episodes, seed=cfg.seed, progress=cfg.progress
        )
    stages = {"collect": collected.to_dict()}
    for mode in ("actions", "states"):
        out_dir = run_dir / f"replay-{mode}"
        report = replay_store(
            store,
            mode=mode,
            out_dir=out_dir,
            video=mode == "actions",
            video_episodes=cfg.video_episodes,
            progress=cfg.progress,
        )
        print_replay_summary(report, out_dir)
        stages[f"replay_{mode}"] = {k: v for k, v in report.items() if k != "per_episode"}
    overrides = [
        f"task={cfg.task}",
        f"agent={cfg.agent}",
        f"seed={cfg.seed}",
        f"device={cfg.device}",
        f"demos.path={store.path}",
        f"demos.num={cfg.episodes}",
        f"train.steps={cfg.train_steps}",
        f"eval.every={cfg.eval_every}",
        f"eval.episodes={cfg.eval_episodes}",
        "eval.video=true",
        f"eval.video_episodes={cfg.video_episodes}",
        f"out={run_dir / 'train'}",
        f"progress={cfg.progress}",
    ]
    overrides += [f"env.{k}={v}" for k, v in env_kwargs(cfg.env).items() if v is not None and not isinstance(v, list)]
    trained = Trainer(compose_config("train", overrides)).run()
    stages["train"] = {k: v for k, v in trained.items() if k != "eval"} | {
        "eval": {k: v for k, v in trained["eval"].items() if k != "per_episode"}
    }
    bundle = run_dir / "bundle"
    export_bundle(Path(trained["run_dir"]) / "checkpoints" / "last", bundle)
    with make_env(cfg.task, **env_kwargs(cfg.env)) as env:
        bundle_eval = evaluate(load_policy(bundle), env, cfg.eval_episodes)
    stages["bundle"] = {"path": str(bundle), "eval": {k: v for k, v in bundle_eval.items() if k != "per_episode"}}
    ros = run_closed_loop(bundle, cfg.task, cfg.ros_episodes, run_dir / "ros")
    stages["ros"] = {
        "success_rate": ros["success_rate"],
        "episodes": len(ros["episodes"]),
        "logs": str(run_dir / "ros"),
    }
    (run_dir / "pipeline.json").write_text(json.dumps(stages, indent=2))
    ok = collected.kept == cfg.episodes and all(
        stages[f"replay_{m}"]["success_reproduction_rate"] >= 0.95 for m in ("actions", "states")
    )
    print_summary(
        "pipeline",
        {
            "task": cfg.task,
            "demos": f"{collected.kept} episodes, expert success {collected.expert_success_rate:.1%}",
            "open-loop replay": f"{stages['replay_actions']['success_reproduction_rate']:.1%} success reproduced",
            "state replay": f"{stages['replay_states']['success_reproduction_rate']:.1%} success reproduced",
            "training": f"{cfg.agent} (small), {trained['steps']} env steps, {trained['updates']} updates",
            "evaluation": (
                f"{trained['eval']['success_rate']:.1%} success over {trained['eval']['episodes']} episodes "
                f"(checkpoint {trained['run_dir']}/checkpoints/last)"
            ),
            "exported bundle": (
                f"{bundle_eval['success_rate']:.1%} success on the same seeds through the runtime ({bundle})"
            ),
            "ROS 2 closed loop": (
                f"{ros['success_rate']:.1%} success over {len(ros['episodes'])} episodes "
                "(policy node + sim bridge processes)"
            ),
            "run directory": str(run_dir),
            "status": "ok" if ok else "FAILED",
        },
    )
    return 0 if ok else 1
