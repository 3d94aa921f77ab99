"""``roboq demos collect|info|replay|score``."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from robo_q.commands.common import env_kwargs, print_summary
from robo_q.data import EpisodeStore
from robo_q.data.collect import collect_demos, store_for_env
from robo_q.data.sim_replay import check_mode, replay_store
from robo_q.rundir import make_run_dir, save_config, slug
from sim import make_env
from sim.experts import make_expert


def collect(cfg: DictConfig) -> int:
    """Collect expert demonstrations for a task into a zarr episode store."""
    out = cfg.out or f"demos/{slug(cfg.task.partition('/')[2])}.zarr"
    with make_env(cfg.task, **env_kwargs(cfg.env)) as env:
        expert = make_expert(env)
        store = store_for_env(env, out, source="expert", append=cfg.append, overwrite=cfg.overwrite)
        report = collect_demos(
            env,
            expert,
            store,
            episodes=cfg.episodes,
            seed=cfg.seed,
            keep_failed=cfg.keep_failed,
            max_attempts=cfg.max_attempts,
            progress=cfg.progress,
        )
    print_summary(
        "demos collect",
        {
            "task": report.task,
            "store": report.path,
            "episodes kept": f"{report.kept} (store now holds {store.num_episodes})",
            "expert success": (
                f"{report.expert_success_rate:.1%} ({report.expert_successes}/{report.attempts} attempts)"
            ),
            "steps": report.steps,
            "time": f"{report.seconds:.1f} s ({report.attempts / max(report.seconds, 1e-9):.2f} episodes/s)",
        },
    )
    if report.kept < cfg.episodes:
        print(
            f"warning: kept only {report.kept} of {cfg.episodes} episodes after {report.attempts} attempts "
            "(raise max_attempts or set keep_failed=true)",
            file=sys.stderr,
        )
        return 1
    return 0


def info(cfg: DictConfig) -> int:
    """Describe an episode store: task, format, episodes, keys and shapes."""
    store = EpisodeStore.open(cfg.path)
    meta = store.episode_meta()
    lengths = meta["length"]
    attrs = store.attrs
    rows = {
        "path": str(store.path),
        "format": f"{attrs['format']} v{attrs['format_version']}",
        "task": store.task,
        "source": attrs["source"],
        "simulator": attrs["simulator"],
        "control period": f"{attrs['control_dt'] * 1000:.1f} ms",
        "env settings": attrs["env_config"],
        "episodes": store.num_episodes,
        "steps": store.num_steps,
    }
    for n, record in enumerate(attrs.get("imports", [])):
        version = f" {record['codebase_version']}" if record.get("codebase_version") else ""
        rows[f"import {n + 1}"] = (
            f"{record['episodes']} episodes, {record['frames']} frames from {record['format']}{version} "
            f"{record['path']} ({record['imported']})"
        )
        if record.get("tasks"):
            rows[f"import {n + 1} tasks"] = "; ".join(record["tasks"][:5]) + (
                " ..." if len(record["tasks"]) > 5 else ""
            )
    if store.num_episodes:
        rows["success rate"] = f"{meta['success'].mean():.1%}"
        rows["episode length"] = f"min {lengths.min()}, mean {lengths.mean():.1f}, max {lengths.max()}"
        rows["seeds"] = f"{meta['seed'].min()}..{meta['seed'].max()}"
    for key in store.data_keys:
        shape, dtype = store.array_spec(key)
        rows[f"data/{key}"] = f"{shape} {dtype}"
    print_summary("demos info", rows)
    if cfg.episodes:
        print("\n  episode  seed      length  success  source")
        for i in range(store.num_episodes):
            print(
                f"  {i:7d}  {meta['seed'][i]:<8d}  {lengths[i]:6d}  {bool(meta['success'][i])!s:7}  {meta['source'][i]}"
            )
    return 0


def replay(cfg: DictConfig) -> int:
    """Replay stored episodes in their simulator (open loop or by state) and report fidelity."""
    check_mode(cfg.mode)
    store = EpisodeStore.open(cfg.path)
    run_dir = make_run_dir(f"replay-{cfg.mode}", Path(cfg.path).stem, cfg.out)
    save_config(cfg, run_dir)
    report = replay_store(
        store,
        mode=cfg.mode,
        out_dir=run_dir,
        video=cfg.video,
        video_episodes=cfg.video_episodes,
        episodes=cfg.episodes,
        progress=cfg.progress,
    )
    print_replay_summary(report, run_dir)
    return 0


def print_replay_summary(report: dict, run_dir: Path) -> None:
    videos = [e["video"] for e in report["per_episode"] if "video" in e]
    rows = {
        "task": report["task"],
        "mode": report["mode"],
        "episodes": report["episodes"],
        "success reproduced": f"{report['success_reproduction_rate']:.1%}",
        "recorded / replayed success": f"{report['recorded_success_rate']:.1%} / {report['replayed_success_rate']:.1%}",
        "final divergence": f"mean {report['final_divergence_mean']:.2e}, max {report['final_divergence_max']:.2e}",
        "report": str(run_dir / "replay_info.json"),
    }
    if videos:
        rows["videos"] = f"{len(videos)} in {Path(videos[0]).parent}"
    print_summary(f"demos replay ({report['mode']})", rows)


def score(cfg: DictConfig) -> int:
    """Rank a store's episodes by a trained critic's Q of their logged actions; ROC AUC of success."""
    import json

    from robo_q.checkpoint import load_agent
    from robo_q.critic_score import roc_auc, roc_auc_interval, score_episodes

    store = EpisodeStore.open(cfg.store)
    agent, meta = load_agent(cfg.checkpoint, cfg.device)
    episodes = score_episodes(agent, store, meta["agent"].get("frame_stack", 1))
    ranked = sorted(episodes, key=lambda e: e["score"], reverse=True)
    scores, successes = [e["score"] for e in episodes], [e["success"] for e in episodes]
    auc, interval = roc_auc(scores, successes), roc_auc_interval(scores, successes)
    run_dir = make_run_dir("score", Path(cfg.store).stem, cfg.out)
    save_config(cfg, run_dir)
    report = {
        "store": str(store.path),
        "checkpoint": meta["path"],
        "success_auc": auc,
        "success_auc_95": interval,
        "episodes": ranked,
    }
    (run_dir / "score.json").write_text(json.dumps(report, indent=2))
    shown = "- (needs successful and failed episodes)"
    if auc is not None and interval is not None:
        shown = f"{auc:.3f} (95% bootstrap interval over episodes {interval[0]:.3f}-{interval[1]:.3f})"
    print_summary(
        "demos score",
        {
            "store": f"{store.path} ({store.num_episodes} episodes, {sum(successes)} successful)",
            "checkpoint": f"{meta['path']} (step {meta['step']})",
            "highest": ", ".join(f"#{e['episode']} {e['score']:.3f}" for e in ranked[:3]),
            "lowest": ", ".join(f"#{e['episode']} {e['score']:.3f}" for e in ranked[-3:]),
            "success ROC AUC": shown,
            "report": str(run_dir / "score.json"),
        },
    )
    return 0
