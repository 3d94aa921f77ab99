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
            "eval": (
                f"{last['success_rate']:.1%} success over {last['episodes']} episodes "
                f"(mean return {last['mean_return']:.2f})"
                if "success_rate" in last
                else f"{last['agreement']:.1%} of steps agree with the logged actions over {last['episodes']} "
                f"held-out episodes (mean abs error {last['action_mae']:.3f})"
            ),
            "run directory": summary["run_dir"],
            "checkpoint": f"{summary['run_dir']}/checkpoints/last",
        },
    )
    return 0
