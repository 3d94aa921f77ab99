"""``roboq eval``: a checkpoint, or an exported bundle through the deployment runtime."""

from __future__ import annotations

import json

from omegaconf import DictConfig

from policies.schedule import SequencePolicy
from robo_q.commands.common import print_summary
from robo_q.evaluate import evaluate
from robo_q.rundir import make_run_dir, save_config
from sim import make_env


def eval_policy(cfg: DictConfig) -> int:
    """Evaluate a checkpoint, or an exported bundle through the deployment runtime, on fixed seeds."""
    if (cfg.checkpoint is None) == (cfg.bundle is None):
        raise ValueError("give exactly one of checkpoint=<run>/checkpoints/last or bundle=<bundle dir>")
    policy: SequencePolicy
    if cfg.bundle is not None:
        from policies import load_policy

        policy = load_policy(cfg.bundle, backend=cfg.backend)
        spec = policy.spec
        task, env_settings, source = (
            spec["task"],
            spec["provenance"]["env_settings"],
            {"bundle": str(cfg.bundle), "backend": cfg.backend},
        )
    else:
        from robo_q.agents import sequence_policy
        from robo_q.checkpoint import load_agent

        agent, meta = load_agent(cfg.checkpoint, cfg.device)
        policy = sequence_policy(agent, meta["agent"], explore=False)
        task, env_settings, source = meta["task"], meta["env"], {"checkpoint": meta["path"], "step": meta["step"]}
    run_dir = make_run_dir("eval", task, cfg.out)
    save_config(cfg, run_dir)
    with make_env(task, **env_settings) as env:
        video_dir = run_dir / "videos" if cfg.video else None
        result = evaluate(
            policy, env, cfg.episodes, seed=cfg.seed, video_dir=video_dir, video_episodes=cfg.video_episodes
        )
    (run_dir / "eval_info.json").write_text(json.dumps({**source, **result}, indent=2))
    print_summary(
        "eval",
        {
            **source,
            "task": task,
            "success rate": (
                f"{result['success_rate']:.1%} over {cfg.episodes} episodes "
                f"(seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1})"
            ),
            "mean return": result["mean_return"],
            "report": str(run_dir / "eval_info.json"),
        },
    )
    return 0
