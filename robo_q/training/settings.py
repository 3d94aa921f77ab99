"""What a training run's config resolves to: env settings, agent settings, the features it reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from policies.features import FeatureSchema
from robo_q.data import EpisodeStore, StoreError
from sim import default_camera


def run_task(cfg: DictConfig, store: EpisodeStore | None) -> str:
    """The run's task: ``task=``, else the store's, else ``default_task``; a store of another task is refused."""
    if cfg.task and store is not None and store.task.removesuffix("-v3") != str(cfg.task).removesuffix("-v3"):
        raise StoreError(f"{store.path} holds {store.task} demos, not {cfg.task}")
    return str(cfg.task or (store.task if store is not None else cfg.default_task))


def store_reward_mode(store: EpisodeStore) -> str:
    """The reward mode a store was recorded with (``sparse`` when it does not say and every reward is 0 or 1)."""
    mode = store.attrs.get("env_config", {}).get("reward")
    if mode:
        return str(mode)
    rewards = store.load(["reward"])["reward"]
    return "sparse" if np.isin(rewards, (0.0, 1.0)).all() else "dense"


def run_env_settings(cfg: DictConfig) -> dict[str, Any]:
    """The env settings of a run: the ``env`` group plus the cameras of ``obs=pixels``."""
    settings: dict[str, Any] = OmegaConf.to_container(cfg.env, resolve=True)  # type: ignore[assignment]
    if cfg.obs == "pixels":
        settings["cameras"] = list(cfg.pixels.cameras or [default_camera(cfg.task)])
        settings["image_size"] = cfg.pixels.image_size
    elif cfg.obs != "state":
        raise ValueError(f"obs must be state or pixels, got {cfg.obs!r}")
    return settings


def agent_settings(cfg: DictConfig, reward_mode: str) -> dict[str, Any]:
    """The resolved agent config, with the value range chosen from the reward mode when null."""
    settings: dict[str, Any] = OmegaConf.to_container(cfg.agent, resolve=True)  # type: ignore[assignment]
    settings.pop("presets", None)
    sparse = reward_mode == "sparse"
    if settings.get("v_min") is None:
        settings["v_min"] = -2.0 if sparse else 0.0
    if settings.get("v_max") is None:
        settings["v_max"] = 2.0 if sparse else 200.0
    return settings


def run_features(schema: FeatureSchema, obs_mode: str) -> FeatureSchema:
    """The features a run's agent reads: the state features of ``schema`` (an env's or a store's), or
    its image features (pixels)."""
    kind = {"state": "state", "pixels": "image"}[obs_mode]
    keys = [f.key for f in schema.of_kind(kind)]
    if not keys:
        raise StoreError(f"obs={obs_mode}: no {kind} observations among {schema.keys}")
    return schema.select(keys)


def resumed_config(composed: DictConfig, overrides: list[str]) -> DictConfig:
    """``resume=<run>``: the run's own ``config.yaml`` with only the command line's overrides applied.

    The defaults are not re-applied, so a run resumes with the settings it started with; whatever the
    command line changes is then checked against the checkpoint by the trainer.
    """
    run = Path(composed.resume)
    saved_path = run / "config.yaml"
    if not saved_path.is_file():
        raise FileNotFoundError(f"resume={run}: no config.yaml there (not a run directory of `roboq train`)")
    saved = OmegaConf.load(saved_path)
    assert isinstance(saved, DictConfig)
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if override.is_delete():
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(saved, parent) if parent else saved
            if isinstance(node, DictConfig) and leaf in node:
                del node[leaf]
        else:
            OmegaConf.update(saved, key, OmegaConf.select(composed, key), merge=False, force_add=True)
    saved.resume = composed.resume
    return saved
