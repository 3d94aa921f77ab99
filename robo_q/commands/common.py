"""Helpers shared by the CLI commands."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def env_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The ``env`` config group as keyword arguments for ``sim.make_env``."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def print_summary(title: str, rows: dict[str, Any]) -> None:
    """A short aligned summary block, printed at the end of every command."""
    width = max(map(len, rows), default=0)
    print(f"\n== {title} ==")
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        print(f"  {key:<{width}}  {value}")
