"""Scripted experts succeed in the real simulators, and tasks without one say so."""

from __future__ import annotations

import pytest

from robo_q.rollout import rollout
from sim import TaskError, make_env
from sim.experts import has_expert, make_expert


@pytest.mark.parametrize(
    "task, episodes",
    [("metaworld/drawer-open", 3), ("metaworld/pick-place", 3), ("dmc/reacher-hard", 3), ("dmc/cartpole-swingup", 2)],
)
def test_experts_succeed(task, episodes):
    with make_env(task) as env:
        expert = make_expert(env)
        results = []
        for seed in range(episodes):
            expert.reset()
            results.append(rollout(env, expert.act, seed=seed))
    assert all(r.success for r in results), [(r.seed, r.length) for r in results]


def test_dmc_reacher_expert_earns_a_high_dense_return():
    with make_env("dmc/reacher-easy") as env:
        expert = make_expert(env)
        expert.reset()
        result = rollout(env, expert.act, seed=0)
    # return per agent step is <= 2 (two suite steps per action); the target is reached fast
    assert result.length == 500 and result.episode_return > 900


def test_tasks_without_an_expert():
    assert has_expert("metaworld/assembly") and has_expert("dmc/cartpole-balance")
    assert not has_expert("dmc/walker-walk")
    with make_env("dmc/walker-walk") as env, pytest.raises(TaskError, match="no scripted expert for dmc/walker-walk"):
        make_expert(env)
