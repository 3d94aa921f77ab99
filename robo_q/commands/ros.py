"""``roboq sim-bridge`` and ``roboq deploy``: the ROS 2 nodes with sensible defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from robo_q.commands.common import env_kwargs, print_summary


def profile_path(robot: str) -> Path:
    """A robot profile: a YAML path, or the name of one under configs/robot/ (``sim_bridge``)."""
    from robo_q.cli import config_dir

    path = Path(robot)
    if path.is_file():
        return path
    named = config_dir() / "robot" / f"{robot}.yaml"
    if named.is_file():
        return named
    known = sorted(p.stem for p in (config_dir() / "robot").glob("*.yaml"))
    raise FileNotFoundError(f"robot={robot}: no such profile file, nor a built-in profile (built-in: {known})")


def sim_bridge(cfg: DictConfig) -> int:
    """Run a sim task as a ROS 2 robot until Ctrl-C (or ``episodes`` episodes)."""
    from ros_nodes import runner
    from ros_nodes.sim_bridge import SimBridge

    runner.init()
    env_settings = env_kwargs(cfg.env)
    if cfg.cameras is not None:
        env_settings["cameras"] = list(cfg.cameras)
    bridge = SimBridge(
        cfg.task,
        env_settings,
        mode=cfg.mode,
        rate=cfg.rate,
        seed=cfg.seed,
        episodes=cfg.episodes,
        results=cfg.results,
        compressed=cfg.compressed,
        wait_for=tuple(cfg.wait_for),
    )
    cameras = f"; cameras on {', '.join(p.topic_name for p in bridge.pub_images.values())}" if bridge.pub_images else ""
    bridge.get_logger().info(
        f"{cfg.task}: {cfg.mode} at {1 / bridge.period:.1f} Hz; commands on /policy_controller/commands{cameras}"
    )
    interrupted = runner.spin(bridge, until=lambda: bridge.done, on_exit=bridge.finish)
    results = bridge.results
    print_summary(
        "sim-bridge",
        {
            "task": cfg.task,
            "mode": cfg.mode,
            "steps": bridge.steps,
            "episodes": f"{len(results)} ({sum(r['success'] for r in results)} successful)",
            "stopped by": "Ctrl-C" if interrupted else "episodes done",
            "results": cfg.results or "-",
        },
    )
    return 0


def deploy(cfg: DictConfig) -> int:
    """Run a bundle as a ROS 2 lifecycle policy node until Ctrl-C (publishes a hold on exit)."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    from ros_nodes import runner
    from ros_nodes.policy_node import PolicyNode

    ros_args = ["--params-file", cfg.params] if cfg.params else []
    ros_args += ["-p", f"bundle:={cfg.bundle}", "-p", f"trigger:={cfg.trigger}"]
    if cfg.robot:
        ros_args += ["-p", f"robot:={profile_path(cfg.robot)}"]
    runner.init(ros_args)
    node = PolicyNode(cfg.node_name)
    if cfg.autostart:
        if (
            node.trigger_configure() != TransitionCallbackReturn.SUCCESS
            or node.trigger_activate() != TransitionCallbackReturn.SUCCESS
        ):
            node.destroy_node()
            rclpy.shutdown()
            raise ValueError(f"the policy node did not start with bundle={cfg.bundle} (see the errors above)")
    else:
        node.get_logger().info("autostart=false: waiting for a lifecycle manager to configure and activate")

    def stop() -> None:
        if node.active:
            node.trigger_deactivate()  # publishes the hold command
        node.flush()

    interrupted = runner.spin(node, on_exit=stop)
    print_summary(
        "deploy",
        {
            "bundle": cfg.bundle,
            "robot": cfg.robot or cfg.params or "sim_bridge",
            "ticks": node.stats["ticks"],
            "rejected inputs": node.stats["rejected"],
            "stopped by": "Ctrl-C" if interrupted else "shutdown",
        },
    )
    return 0


def _profile_topics(profile) -> dict[str, str | None]:
    """Every topic a robot profile names (observation sources, command, feedback) with its type."""
    sources = [s for sources in profile.observation.values() for s in sources]
    if profile.command.feedback is not None:
        sources.append(profile.command.feedback)
    topics: dict[str, str | None] = {s.topic: s.type for s in sources if "*" not in s.topic}
    topics[profile.command.topic] = profile.command.type
    return topics


def record(cfg: DictConfig) -> int:
    """Record ROS 2 topics to an MCAP log until Ctrl-C, ``q`` or ``episodes`` episodes.

    ``robot=``: every topic its profile names; ``topics=[...]``: any others, of any type; neither:
    the sim bridge's topics. ``task=``: also zarr episodes of a `roboq sim-bridge` session.
    """
    import sys

    from ros_nodes import runner
    from ros_nodes.profile import RobotProfile
    from ros_nodes.topic_recorder import TopicRecorder

    topics: dict[str, str | None] = {}
    if cfg.robot:
        profile = RobotProfile.load(profile_path(cfg.robot))
        topics.update(_profile_topics(profile))
        patterns = [s.topic for sources in profile.observation.values() for s in sources if "*" in s.topic]
        if patterns:
            print(f"record: {patterns} are patterns: name those topics in topics=[...] to record them")
    topics.update({str(t): None for t in cfg.topics or [] if str(t) not in topics})
    runner.init()
    recorder: TopicRecorder
    if cfg.task:
        from ros_nodes.sim_recording import BRIDGE_TOPICS, SimEpisodeRecorder

        recorder = SimEpisodeRecorder(Path(cfg.out), {**BRIDGE_TOPICS, **topics}, cfg.task, env_kwargs(cfg.env))
    else:
        if not topics:
            from ros_nodes.sim_recording import BRIDGE_TOPICS

            topics = dict(BRIDGE_TOPICS)
        keys = sys.stdin.isatty() if cfg.keys == "auto" else bool(cfg.keys)
        recorder = TopicRecorder(
            Path(cfg.out), topics, episode_start=cfg.episode_start, episode_end=cfg.episode_end, keys=keys
        )
        if keys:
            print("record: type s + Enter to start an episode, y / n to end it (success / failure), q to stop")
    interrupted = runner.spin(
        recorder,
        until=lambda: recorder.quit or (bool(cfg.episodes) and recorder.completed >= cfg.episodes),
        on_exit=recorder.close,
    )
    rows: dict[str, object] = {
        "log": f"{cfg.out}/log",
        "messages": recorder.counts,
        "episodes marked": recorder.episodes,
        "stopped by": "Ctrl-C" if interrupted else ("q" if recorder.quit else "episodes done"),
    }
    never = [t for t in recorder.missing() if t not in recorder.problems]
    if never:
        rows["never published"] = never
    for topic, problem in recorder.problems.items():
        rows[f"NOT RECORDED {topic}"] = problem
    if cfg.task:
        rows["episodes"] = f"{recorder.completed} in {cfg.out}/episodes.zarr"
    print_summary("record", rows)
    return 0 if not recorder.problems else 1


def _log_options(cfg: DictConfig) -> dict[str, Any]:
    return {"steps": cfg.steps, "episode_start": cfg.episode_start, "episode_end": cfg.episode_end}


def logs_convert(cfg: DictConfig) -> int:
    """An MCAP log -> zarr episodes of the robot profile's features (resampled by message time)."""
    from robo_q.data.dataset_import import import_dataset
    from ros_nodes.log_episodes import LogEpisodes
    from ros_nodes.profile import RobotProfile

    if not cfg.robot:
        raise ValueError("logs convert needs robot=<profile YAML or configs/robot/ name> (with a features: section)")
    profile = RobotProfile.load(profile_path(cfg.robot))
    reader = LogEpisodes(cfg.path, profile, skip_empty=cfg.skip_empty, **_log_options(cfg))
    report = import_dataset(reader, cfg.out, append=cfg.append, overwrite=cfg.overwrite, progress=cfg.progress)
    dropped = sum(w.dropped for w in reader.windows)
    print_summary(
        "logs convert",
        {
            "log": str(reader.bag),
            "robot": f"{profile.name} ({profile.path})",
            "episodes": f"{report.episodes} ({sum(w.success for w in reader.windows)} successful) -> {report.path}",
            "steps": f"{report.frames} at {1 / reader.schema.control_dt:g} Hz ({cfg.steps})",
            "dropped steps": dropped,
            "rejected messages": reader.rejected or "none",
            "header stamps of another clock": sorted(reader.log_clock) or "none",
            "speed": f"{report.episodes / max(report.seconds, 1e-9):.2f} episodes/s, "
            f"{report.frames_per_second:.0f} steps/s",
        },
    )
    return 0


def logs_replay(cfg: DictConfig) -> int:
    """Re-run a logged session: its observations through a bundle, or its commands into a sim bridge."""
    import json

    from ros_nodes import log_replay

    if cfg.mode == "bundle":
        if not cfg.bundle:
            raise ValueError("mode=bundle needs bundle=<bundle dir>")
        from ros_nodes.profile import RobotProfile

        report = log_replay.replay_log(
            cfg.path, cfg.bundle, RobotProfile.load(profile_path(cfg.robot)), backend=cfg.backend, **_log_options(cfg)
        )
        default = "log_replay.json"
    elif cfg.mode == "commands":
        from ros_nodes import runner

        runner.init()
        try:
            report = log_replay.replay_commands(cfg.path)
        finally:
            import rclpy

            if rclpy.ok():
                rclpy.shutdown()
        report["success_rate"] = sum(e["success"] for e in report["episodes"]) / max(len(report["episodes"]), 1)
        default = "command_replay.json"
    else:
        raise ValueError(f"mode must be bundle or commands, got {cfg.mode!r}")
    out = Path(cfg.out or Path(cfg.path) / default)
    out.write_text(json.dumps(report, indent=2))
    print_summary(
        f"logs replay ({cfg.mode})",
        {
            **{k: v for k, v in report.items() if k not in ("episodes", "per_episode")},
            "episodes": len(report["episodes"]) if isinstance(report["episodes"], list) else report["episodes"],
            "report": str(out),
        },
    )
    return 0


def robot_check(cfg: DictConfig) -> int:
    """Listen to a live robot: every profile topic seen, fresh, of the right shape / encoding?"""
    from ros_nodes import runner
    from ros_nodes.profile import RobotProfile
    from ros_nodes.robot_check import check_robot

    profile = RobotProfile.load(profile_path(cfg.robot))
    schema = None
    if cfg.bundle:
        from policies.bundle import bundle_features, read_spec

        schema = bundle_features(read_spec(cfg.bundle))
    runner.init()
    try:
        report = check_robot(profile, schema, cfg.seconds)
    finally:
        import rclpy

        if rclpy.ok():
            rclpy.shutdown()
    against = f", against bundle {cfg.bundle}" if cfg.bundle else ""
    print(f"robot {report['robot']} ({profile.path}), listened {cfg.seconds:g} s{against}")
    header = ("topic", "type", "seen", "rate_hz", "age_s", "holds", "fits", "ok")
    rows = [header] + [tuple(str(r[k]) for k in header) for r in report["topics"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    print(f"  commands: {report['command_topic']} ({report['command_subscribers']} subscriber(s))")
    for problem in report["problems"]:
        print(f"  PROBLEM: {problem}")
    print("robot check: OK" if report["ok"] else f"robot check: {len(report['problems'])} problem(s)")
    if cfg.out:
        import json

        Path(cfg.out).write_text(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1
