"""``roboq eval``: a checkpoint, or an exported bundle through the deployment runtime: in the
simulator on fixed seeds, or (``store=``) against the logged actions of held-out episodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from policies.features import FeatureSchema
from policies.schedule import SequencePolicy
from robo_q.commands.common import print_summary
from robo_q.evaluate import action_grid, evaluate, evaluate_on_store, plot_store_evaluation
from robo_q.rundir import make_run_dir, save_config
from sim import make_env


def eval_policy(cfg: DictConfig) -> int:
    """Evaluate a checkpoint, or an exported bundle through the deployment runtime, on fixed seeds."""
    if (cfg.checkpoint is None) == (cfg.bundle is None):
        raise ValueError("give exactly one of checkpoint=<run>/checkpoints/last or bundle=<bundle dir>")
    policy: SequencePolicy
    agent, frame_stack = None, 1
    if cfg.bundle is not None:
        from policies import load_policy

        policy = load_policy(cfg.bundle, backend=cfg.backend)
        features = policy.features
        spec = policy.spec
        task, env_settings, source = (
            spec["task"],
            spec["provenance"]["env_settings"],
            {"bundle": str(cfg.bundle), "backend": cfg.backend},
        )
        settings = spec["provenance"].get("agent_settings", {})
    else:
        from robo_q.agents import sequence_policy
        from robo_q.checkpoint import checkpoint_features, load_agent

        agent, meta = load_agent(cfg.checkpoint, cfg.device)
        features = checkpoint_features(meta)
        policy = sequence_policy(agent, meta["agent"], explore=False)
        task, env_settings, source = meta["task"], meta["env"], {"checkpoint": meta["path"], "step": meta["step"]}
        frame_stack = int(meta["agent"].get("frame_stack", 1))
        settings = meta["agent"]
    run_dir = make_run_dir("eval", task, cfg.out)
    save_config(cfg, run_dir)
    if cfg.store is not None:
        return _eval_on_store(cfg, policy, features, source, run_dir, action_grid(settings), agent, frame_stack)
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


def _eval_on_store(
    cfg: DictConfig,
    policy: SequencePolicy,
    features: FeatureSchema,
    source: dict[str, Any],
    run_dir: Path,
    grid: tuple[int, int] | None,
    agent: Any = None,
    frame_stack: int = 1,
) -> int:
    """Every episode of ``store``: the policy's actions on the logged observations vs the logged actions;
    with a checkpoint's critic, also its Q of the logged action sequences vs the policy's."""
    from robo_q.data import EpisodeStore

    store = EpisodeStore.open(cfg.store)
    result = evaluate_on_store(policy, features, store, list(range(store.num_episodes)), grid)
    rows = {}
    if "bins_matched" in result:
        rows["bins matched"] = ", ".join(f"level {i} {m:.1%}" for i, m in enumerate(result["bins_matched"]))
    if hasattr(agent, "q_of"):
        from robo_q.critic_score import logged_vs_policy_q

        for episode in result["per_episode"]:
            episode.update(logged_vs_policy_q(agent, store, episode["episode"], frame_stack))
        for key in ("q_logged", "q_policy"):
            result[key] = float(np.mean([e[key] for e in result["per_episode"]]))
        rows["critic Q"] = f"logged actions {result['q_logged']:.4g}, policy's {result['q_policy']:.4g} (mean)"
    (run_dir / "eval_info.json").write_text(json.dumps({**source, "store": str(store.path), **result}, indent=2))
    plot_store_evaluation(result, run_dir / "actions.png")
    units = ", ".join(
        f"{n} {e:.3g} {u}".rstrip()
        for n, e, u in zip(result["action_names"], result["action_mae_native"], features.action.units, strict=True)
    )
    print_summary(
        "eval",
        {
            **source,
            "store": f"{store.path} ({store.task}, {result['episodes']} episodes)",
            "agreement": f"{result['agreement']:.1%} of steps within 5% of each action's range",
            "mean abs error": f"{result['action_mae']:.4f} normalised; {units}",
            **rows,
            "report": f"{run_dir / 'eval_info.json'}, {run_dir / 'actions.png'}",
        },
    )
    return 0
