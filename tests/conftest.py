"""Shared fixtures: real MuJoCo environments and real zarr stores under pytest's tmp dirs."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # ROS tests talk over loopback only

import pytest

from robo_q.data.collect import collect_demos, store_for_env
from sim import make_env
from sim.experts import make_expert


@pytest.fixture(scope="session")
def drawer_store(tmp_path_factory):
    """Three expert episodes of metaworld/drawer-open, collected once per session."""
    path = tmp_path_factory.mktemp("demos") / "drawer-open.zarr"
    with make_env("metaworld/drawer-open") as env:
        store = store_for_env(env, path, source="expert")
        report = collect_demos(env, make_expert(env), store, episodes=3, seed=100, progress=False)
    assert report.kept == 3
    return path


def _train(tmp, store, agent: str, extra: list[str]) -> str:
    from robo_q.cli import compose_config
    from robo_q.training.trainer import Trainer

    run = tmp / f"run_{agent}"
    overrides = [
        f"agent={agent}",
        f"demos.path={store}",
        "demos.num=3",
        f"out={run}",
        "eval.episodes=1",
        "progress=false",
        "device=cpu",
        "agent.hidden=32",
        *extra,
    ]
    Trainer(compose_config("train", overrides)).run()
    return str(run / "checkpoints" / "last")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, drawer_store):
    """Tiny trained checkpoints (cqn_as online, bc offline) and their exported bundles."""
    from robo_q.export import export_bundle

    tmp = tmp_path_factory.mktemp("trained")
    checkpoints = {
        "cqn_as": _train(
            tmp,
            drawer_store,
            "cqn_as",
            ["train.steps=60", "eval.every=60", "agent.batch_size=16", "agent.demo_batch_size=16"],
        ),
        "bc": _train(
            tmp,
            drawer_store,
            "bc",
            ["train.offline=true", "train.steps=400", "eval.every=400", "agent.demo_batch_size=64", "agent.lr=1e-3"],
        ),
    }
    bundles = {name: tmp / f"bundle_{name}" for name in checkpoints}
    for name, ckpt in checkpoints.items():
        export_bundle(ckpt, bundles[name])
    return checkpoints, bundles
