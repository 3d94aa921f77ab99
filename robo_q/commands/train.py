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


def eval_policy(cfg: DictConfig) -> int:
    """Evaluate a checkpoint, or an exported bundle through the deployment runtime, on fixed seeds."""
    if (cfg.checkpoint is None) == (cfg.bundle is None):
        raise ValueError("give exactly one of checkpoint=<run>/checkpoints/last or bundle=<bundle dir>")
    if cfg.bundle is not None:
        from policies import load_policy

        policy = load_policy(cfg.bundle, backend=cfg.backend)
        spec = policy.spec
        task, env_settings, source = spec["task"], spec["provenance"]["env_settings"], {"bundle": str(cfg.bundle), "backend": cfg.backend}
    else:
        agent, meta = load_agent(cfg.checkpoint, cfg.device)
        policy = sequence_policy(agent, meta["agent"], explore=False)
        task, env_settings, source = meta["task"], meta["env"], {"checkpoint": meta["path"], "step": meta["step"]}
    run_dir = make_run_dir("eval", task, cfg.out)
    save_config(cfg, run_dir)
    with make_env(task, **env_settings) as env:
        video_dir = run_dir / "videos" if cfg.video else None
        result = evaluate(policy, env, cfg.episodes, seed=cfg.seed, video_dir=video_dir, video_episodes=cfg.video_episodes)
    (run_dir / "eval_info.json").write_text(json.dumps({**source, **result}, indent=2))
    print_summary(
        "eval",
        {
            **source,
            "task": task,
            "success rate": f"{result['success_rate']:.1%} over {cfg.episodes} episodes (seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1})",
            "mean return": result["mean_return"],
            "report": str(run_dir / "eval_info.json"),
        },
    )
    return 0


def export(cfg: DictConfig) -> int:
    """Export a checkpoint as a policy bundle."""
    from robo_q.export import export_bundle

    spec = export_bundle(cfg.checkpoint, cfg.out, overwrite=cfg.overwrite)
    seq = spec["sequence"]
    print_summary(
        "export",
        {
            "bundle": cfg.out,
            "task": spec["task"],
            "policy": f"{spec['provenance']['agent']} from step {spec['provenance']['step']} ({spec['provenance']['checkpoint']})",
            "observation": ", ".join(f"{k} {tuple(v['shape'])} {v['dtype']}" for k, v in spec["observation"].items()),
            "action": f"{spec['action']['dim']}-D {spec['action']['names']}, sequence K={seq['length']} ({seq['execution']})",
            "control period": f"{spec['control_dt'] * 1000:.1f} ms",
            "files": ", ".join(spec["files"]) + ", policy.json",
        },
    )
    return 0
