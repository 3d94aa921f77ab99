"""``roboq train`` and ``roboq eval``."""

from __future__ import annotations

import json

from omegaconf import DictConfig

from robo_q.commands.common import print_summary
from robo_q.evaluate import evaluate
from robo_q.rundir import make_run_dir, save_config
from robo_q.train import Trainer, load_agent, sequence_policy
from sim import make_env


def train(cfg: DictConfig) -> int:
    """Train a Q-critic (or BC) policy from demonstrations; evaluates and checkpoints periodically."""
    summary = Trainer(cfg).run()
    last = summary["eval"]
    print_summary(
        "train",
        {
            "task": cfg.task,
            "agent": f"{cfg.agent.name} ({cfg.agent.preset})",
            "steps": f"{summary['steps']} ({summary['episodes']} episodes, {summary['updates']} updates)",
            "eval success": f"{last['success_rate']:.1%} over {last['episodes']} episodes (mean return {last['mean_return']:.2f})",
            "run directory": summary["run_dir"],
            "checkpoint": f"{summary['run_dir']}/checkpoints/last",
        },
    )
    return 0


def eval_checkpoint(cfg: DictConfig) -> int:
    """Evaluate a checkpoint greedily on fixed seeds; writes eval_info.json (and videos)."""
    agent, meta = load_agent(cfg.checkpoint, cfg.device)
    run_dir = make_run_dir("eval", meta["task"], cfg.out)
    save_config(cfg, run_dir)
    with make_env(meta["task"], **meta["env"]) as env:
        video_dir = run_dir / "videos" if cfg.video else None
        result = evaluate(sequence_policy(agent, meta["agent"], explore=False), env, cfg.episodes, seed=cfg.seed, video_dir=video_dir, video_episodes=cfg.video_episodes)
    (run_dir / "eval_info.json").write_text(json.dumps({"checkpoint": meta["path"], "step": meta["step"], **result}, indent=2))
    print_summary(
        "eval",
        {
            "checkpoint": f"{meta['path']} (step {meta['step']})",
            "task": meta["task"],
            "success rate": f"{result['success_rate']:.1%} over {cfg.episodes} episodes (seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1})",
            "mean return": result["mean_return"],
            "report": str(run_dir / "eval_info.json"),
        },
    )
    return 0
