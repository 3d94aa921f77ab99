"""Shared fixtures: real MuJoCo environments and real zarr stores under pytest's tmp dirs."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402

from robo_q.collect import collect_demos, store_for_env  # noqa: E402
from sim import make_env  # noqa: E402
from sim.experts import make_expert  # noqa: E402


@pytest.fixture(scope="session")
def drawer_store(tmp_path_factory):
    """Three expert episodes of metaworld/drawer-open, collected once per session."""
    path = tmp_path_factory.mktemp("demos") / "drawer-open.zarr"
    with make_env("metaworld/drawer-open") as env:
        store = store_for_env(env, path, source="expert")
        report = collect_demos(env, make_expert(env), store, episodes=3, seed=100, progress=False)
    assert report.kept == 3
    return path
