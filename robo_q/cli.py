"""``roboq <command> [<subcommand>] key=value ...``: hydra override grammar over configs/."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from robo_q.allocator import configure_cpu_allocator


@dataclass(frozen=True)
class Command:
    name: str  # words on the command line
    config: str  # config name under configs/
    target: str  # module:function taking the composed config, returning an exit code
    summary: str
    example: str


COMMANDS = [
    Command(
        "pipeline",
        "pipeline",
        "robo_q.commands.pipeline:pipeline",
        "the main job: expert demos -> replay checks -> train -> evaluate -> export -> ROS 2 closed loop",
        "roboq pipeline task=metaworld/drawer-open episodes=20",
    ),
    Command(
        "demos collect",
        "demos/collect",
        "robo_q.commands.demos:collect",
        "collect scripted-expert demos into a zarr store",
        "roboq demos collect task=metaworld/drawer-open episodes=20 out=demos/drawer-open.zarr",
    ),
    Command(
        "demos info",
        "demos/info",
        "robo_q.commands.demos:info",
        "describe an episode store",
        "roboq demos info path=demos/drawer-open.zarr",
    ),
    Command(
        "demos replay",
        "demos/replay",
        "robo_q.commands.demos:replay",
        "replay a store in its simulator (mode=actions|states)",
        "roboq demos replay path=demos/drawer-open.zarr mode=actions video=true",
    ),
    Command(
        "demos score",
        "demos/score",
        "robo_q.commands.demos:score",
        "rank a store's episodes by a trained critic's value of their actions (ROC AUC of success)",
        "roboq demos score store=demos/arm.zarr checkpoint=outputs/<run>/checkpoints/last",
    ),
    Command(
        "data import",
        "data/import",
        "robo_q.commands.data:data_import",
        "import a LeRobotDataset (v3.0, v2.1) or a robomimic hdf5 file into an episode store",
        "roboq data import format=lerobot path=<LeRobotDataset dir> out=demos/x.zarr",
    ),
    Command(
        "data export",
        "data/export",
        "robo_q.commands.data:data_export",
        "export an episode store as a LeRobotDataset v3.0 (videos, stats)",
        "roboq data export format=lerobot store=demos/drawer-open.zarr out=datasets/drawer-open",
    ),
    Command(
        "train",
        "train",
        "robo_q.commands.train:train",
        "train a CQN / CQN-AS / BC policy from demonstrations",
        "roboq train task=metaworld/drawer-open agent=cqn_as demos.path=demos/drawer-open.zarr",
    ),
    Command(
        "eval",
        "eval",
        "robo_q.commands.evaluate:eval_policy",
        "evaluate a checkpoint or an exported bundle on fixed seeds",
        "roboq eval checkpoint=outputs/<run>/checkpoints/last episodes=50 video=true",
    ),
    Command(
        "export",
        "export",
        "robo_q.commands.export:export",
        "export a checkpoint as a deployable policy bundle",
        "roboq export checkpoint=outputs/<run>/checkpoints/last out=bundles/drawer-open",
    ),
    Command(
        "sim-bridge",
        "sim_bridge",
        "robo_q.commands.ros:sim_bridge",
        "run a sim task as a ROS 2 robot",
        "roboq sim-bridge task=metaworld/drawer-open mode=realtime",
    ),
    Command(
        "deploy",
        "deploy",
        "robo_q.commands.ros:deploy",
        "run a bundle as a ROS 2 lifecycle policy node",
        "roboq deploy bundle=bundles/arm robot=configs/robot/my_arm.yaml",
    ),
    Command(
        "robot check",
        "robot_check",
        "robo_q.commands.ros:robot_check",
        "listen to a live robot: every profile topic seen, fresh, the right shape / encoding for a bundle?",
        "roboq robot check robot=configs/robot/my_arm.yaml bundle=bundles/arm",
    ),
    Command(
        "record",
        "record",
        "robo_q.commands.ros:record",
        "record ROS 2 topics (a robot profile's, any others) to MCAP, episodes marked",
        "roboq record robot=configs/robot/my_arm.yaml out=logs/session1",
    ),
    Command(
        "logs convert",
        "logs/convert",
        "robo_q.commands.ros:logs_convert",
        "an MCAP log (ours or any tool's) -> zarr episodes of a robot profile's features",
        "roboq logs convert path=logs/session1 robot=configs/robot/my_arm.yaml out=demos/arm.zarr",
    ),
    Command(
        "logs replay",
        "logs/replay",
        "robo_q.commands.ros:logs_replay",
        "re-run a logged session's observations through a bundle",
        "roboq logs replay path=logs/session1 bundle=bundles/drawer-open",
    ),
    Command(
        "tasks",
        "tasks",
        "robo_q.commands.tasks:tasks",
        "list the task names (family=metaworld|dmc)",
        "roboq tasks family=dmc",
    ),
    Command(
        "sweep",
        "sweep",
        "robo_q.commands.sweep:sweep",
        "a grid of training runs on Ray (settings given as lists are the grid's axes)",
        "roboq sweep task=[metaworld/drawer-open,metaworld/pick-place] agent=[cqn_as,bc] seed=[0,1] train.steps=10000",
    ),
    Command(
        "report",
        "report",
        "robo_q.commands.report:report",
        "a sweep's success rates with 95% Wilson intervals: table, curves PNG, markdown",
        "roboq report sweep=outputs/sweeps/<name>",
    ),
]


def config_dir() -> Path:
    """The hydra configs: ``ROBOQ_CONFIG_DIR``, else those installed with the package (``robo_q/configs``)."""
    return Path(os.environ.get("ROBOQ_CONFIG_DIR", Path(__file__).resolve().parent / "configs"))


# Settings whose values are file paths or profile names although configs/<key>/ exists (robot
# profiles live in configs/robot/): set after composing, or hydra would read them as group choices.
PATH_SETTINGS = ("robot",)


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """The command's config from configs/ with hydra overrides (a resumed run: from its own config)."""
    paths = {}
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key in PATH_SETTINGS:
            paths[key] = value
    overrides = [o for o in overrides if o.partition("=")[0] not in paths]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    for key, value in paths.items():
        if key not in cfg:
            raise ConfigCompositionException(f"Could not override '{key}': `roboq` {name} has no such setting")
        OmegaConf.update(cfg, key, value or None)
    if name == "train" and cfg.get("resume"):
        from robo_q.training.settings import resumed_config

        cfg = resumed_config(cfg, overrides)
    return cfg


def _usage(prefix: str = "") -> str:
    lines = ["usage: roboq <command> [<subcommand>] key=value ... [--help]", "", "commands:"]
    width = max(len(c.name) for c in COMMANDS)
    lines += [f"  {c.name:<{width}}  {c.summary}" for c in COMMANDS if c.name.startswith(prefix)]
    lines += [
        "",
        "Values use hydra's override grammar (key=value, nested.key=value, list=[a,b]).",
        "`roboq <command> --help` shows a command's settings and defaults.",
    ]
    return "\n".join(lines)


def _command_help(cmd: Command) -> str:
    compose_config(cmd.config, [])  # a broken config fails here, not halfway through a run
    text = (config_dir() / f"{cmd.config}.yaml").read_text()
    parts = [
        f"roboq {cmd.name}: {cmd.summary}",
        f"example:\n  {cmd.example}",
        f"settings (configs/{cmd.config}.yaml):\n{text}",
    ]
    if "/agent:" in text:
        parts.append(
            "agent.* settings (configs/agent/<name>.yaml; cqn shown):\n"
            + (config_dir() / "agent" / "cqn.yaml").read_text()
        )
    if "/env: default" in text:
        parts.append(
            f"env.* settings (configs/env/default.yaml):\n{(config_dir() / 'env' / 'default.yaml').read_text()}"
        )
    return "\n\n".join(parts)


_INPUT_ERRORS = {
    "policies.bundle": "BundleError",
    "robo_q.checkpoint": "CheckpointError",
    "robo_q.data.store": "StoreError",
}


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean bad input, not a bug. Looked up among the modules the command
    loaded (an error type whose module never loaded cannot have been raised): `roboq deploy`
    thereby never imports torch or the training code."""
    loaded = [getattr(sys.modules[m], name) for m, name in _INPUT_ERRORS.items() if m in sys.modules]
    return (FileExistsError, FileNotFoundError, ValueError, *loaded)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    wants_help = any(a in ("-h", "--help") for a in args)
    args = [a for a in args if a not in ("-h", "--help")]
    words = []
    for arg in args:
        if "=" in arg or arg.startswith("-"):
            break
        words.append(arg)
    name = " ".join(words)
    cmd = next((c for c in COMMANDS if c.name == name), None)
    if cmd is None:
        known_prefix = any(c.name.startswith(name + " ") for c in COMMANDS) if name else False
        if wants_help or not name or known_prefix:
            print(_usage(name + " " if known_prefix else ""))
            return 0 if wants_help or not name else 2
        print(f"roboq: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    configure_cpu_allocator()  # before torch loads: reused, huge-page backed CPU memory
    try:
        if wants_help:
            print(_command_help(cmd))
            return 0
        cfg = compose_config(cmd.config, args[len(words) :])
        module, function = cmd.target.split(":")
        return int(getattr(importlib.import_module(module), function)(cfg) or 0)
    except (HydraException, OmegaConfBaseException) as err:
        print(f"roboq {cmd.name}: bad settings: {err}\n(see `roboq {cmd.name} --help`)", file=sys.stderr)
    except _bad_input_errors() as err:  # sim.TaskError is a ValueError: bad input, not a bug
        print(f"roboq {cmd.name}: error: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"roboq {cmd.name}: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
