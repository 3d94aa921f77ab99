"""``roboq data import|export``: other tools' dataset formats in and out of the episode store."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from robo_q.commands.common import print_summary
from robo_q.data import EpisodeStore
from robo_q.data.dataset_import import DatasetReader, import_dataset

IMPORT_FORMATS = ("lerobot", "robomimic")
EXPORT_FORMATS = ("lerobot",)


def _reader(cfg: DictConfig) -> DatasetReader:
    if cfg.format == "lerobot":
        from robo_q.data.lerobot import LeRobotReader

        options = OmegaConf.to_container(cfg.lerobot, resolve=True)
        assert isinstance(options, dict)
        return LeRobotReader(cfg.path, task=cfg.task, **options)  # type: ignore[arg-type]
    if cfg.format == "robomimic":
        from robo_q.data.robomimic import RobomimicReader

        obs_keys = list(cfg.robomimic.obs_keys) if cfg.robomimic.obs_keys else None
        reader = RobomimicReader(cfg.path, filter=cfg.robomimic.filter, obs_keys=obs_keys)
        if cfg.task:
            reader.task = str(cfg.task)
        return reader
    raise ValueError(f"format must be one of {', '.join(IMPORT_FORMATS)}; got {cfg.format!r}")


def data_import(cfg: DictConfig) -> int:
    """Import a LeRobotDataset or a robomimic hdf5 file into an episode store."""
    reader = _reader(cfg)
    report = import_dataset(reader, cfg.out, append=cfg.append, overwrite=cfg.overwrite, progress=cfg.progress)
    schema = reader.schema
    print_summary(
        "data import",
        {
            "from": f"{cfg.format} {reader.origin.get('codebase_version', '')} {cfg.path}".replace("  ", " "),
            "store": f"{report.path} (now {report.store_episodes} episodes)",
            "task": reader.task,
            "episodes": report.episodes,
            "frames": report.frames,
            "observation": ", ".join(f"{k} {list(f.shape)}" for k, f in schema.observation.items()),
            "action": f"{schema.action.dim}-D {schema.action.mode} ({', '.join(schema.action.names)})",
            "control period": f"{schema.control_dt * 1000:.1f} ms",
            "time": f"{report.seconds:.1f} s ({report.frames_per_second:.0f} frames/s)",
        },
    )
    return 0


def data_export(cfg: DictConfig) -> int:
    """Export an episode store as a LeRobotDataset v3.0."""
    if cfg.format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}; got {cfg.format!r}")
    from robo_q.data.lerobot_export import export_lerobot

    store = EpisodeStore.open(cfg.store)
    report = export_lerobot(
        store, cfg.out, codec=cfg.codec, crf=cfg.crf, overwrite=cfg.overwrite, progress=cfg.progress
    )
    print_summary(
        "data export",
        {
            "store": f"{store.path} ({store.task})",
            "dataset": f"{report.path} (LeRobotDataset v3.0)",
            "episodes": report.episodes,
            "frames": report.frames,
            "videos": f"{report.videos} mp4 ({cfg.codec}, crf {cfg.crf})",
            "time": f"{report.seconds:.1f} s ({report.frames_per_second:.0f} frames/s)",
        },
    )
    return 0
