"""``roboq train``."""

from __future__ import annotations

from omegaconf import DictConfig

from robo_q.commands.common import print_summary
from robo_q.training.trainer import Trainer


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
            "eval success": (
                f"{last['success_rate']:.1%} over {last['episodes']} episodes (mean return {last['mean_return']:.2f})"
            ),
            "run directory": summary["run_dir"],
            "checkpoint": f"{summary['run_dir']}/checkpoints/last",
        },
    )
    return 0
