"""Simulator adapters: every family loads, steps, resets deterministically and restores state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dm_control import suite

from policies.features import legacy_schema
from sim import TaskError, list_tasks, make_env

CARTPOLE_XML = str(Path(suite.__file__).parent / "cartpole.xml")
ARM_XML = """<mujoco>
  <worldbody>
    <body name="upper">
      <joint name="shoulder" type="hinge" axis="0 0 1"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.02"/>
      <body name="lower" pos="0.3 0 0">
        <joint name="elbow" type="hinge" axis="0 0 1"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.02"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="shoulder" ctrlrange="-2 2"/>
    <motor joint="elbow"/>
  </actuator>
  <sensor><jointpos joint="elbow"/></sensor>
</mujoco>"""


@pytest.fixture
def arm_xml(tmp_path):
    path = tmp_path / "arm.xml"
    path.write_text(ARM_XML)
    return str(path)


def _load_and_step(task: str) -> None:
    with make_env(task) as env:
        obs, info = env.reset(seed=1)
        assert obs["state"].shape == tuple(env.observation_spec["state"]["shape"])
        env.features.check(obs)  # one state name (and unit) per dimension of the real observation
        rng = np.random.default_rng(0)
        for _ in range(3):
            obs, reward, _, _, info = env.step(rng.uniform(-1, 1, env.action_dim))
        assert np.all(np.isfinite(obs["state"])) and np.isfinite(reward)
        assert isinstance(info["success"], bool) and env.control_dt > 0


@pytest.mark.parametrize("task", list_tasks("metaworld"))
def test_every_metaworld_task_loads_and_steps(task):
    _load_and_step(task)


@pytest.mark.parametrize("task", list_tasks("dmc"))
def test_every_dmc_task_loads_and_steps(task):
    _load_and_step(task)


def test_task_lists_are_complete():
    assert len(list_tasks("metaworld")) == 50
    assert len(list_tasks("dmc")) == len(suite.ALL_TASKS)


def test_mjcf_scales_actions_from_ctrlrange(arm_xml):
    with make_env(f"mjcf/{arm_xml}", reset_noise=0.0) as env:
        np.testing.assert_array_equal(env.action_low, [-2, -1])
        np.testing.assert_array_equal(env.action_high, [2, 1])
        env.reset(seed=0)
        env.step(np.array([1.0, -0.5]))
        np.testing.assert_allclose(env.data.ctrl, [2.0, -0.5])
        env.step(np.array([5.0, 0.0]))  # clipped to the bound
        np.testing.assert_allclose(env.data.ctrl, [2.0, 0.0])
        assert env.observation_spec["state"]["shape"] == [4]  # 2 qpos + 2 qvel
    with make_env(f"mjcf/{arm_xml}", sensors=True) as env:
        assert env.observation_spec["state"]["shape"] == [5]


def test_each_family_names_its_features(arm_xml):
    with make_env("metaworld/drawer-open") as env:
        action, state = env.features.action, env.features.observation["state"]
        assert action.mode == "delta" and action.names == ("hand_dx", "hand_dy", "hand_dz", "gripper")
        assert action.units == ("cm", "cm", "cm", "effort")
        assert state.names is not None and state.units is not None
        assert state.names[:4] == ("hand_x", "hand_y", "hand_z", "gripper_distance") and state.units[:3] == ("m",) * 3
        assert state.names[18] == "prev_hand_x" and state.names[-3:] == ("goal_x", "goal_y", "goal_z")
    with make_env("dmc/reacher-easy") as env:
        action, state = env.features.action, env.features.observation["state"]
        assert action.mode == "effort" and action.names == ("shoulder", "wrist")
        assert state.names == ("position_0", "position_1", "to_target_0", "to_target_1", "velocity_0", "velocity_1")
    with make_env(f"mjcf/{arm_xml}", sensors=True) as env:
        action, state = env.features.action, env.features.observation["state"]
        assert action.mode == "effort" and action.names == ("actuator_0", "actuator_1")
        assert state.names == ("shoulder_pos", "elbow_pos", "shoulder_vel", "elbow_vel", "sensor_0")
        assert state.units == ("rad", "rad", "rad/s", "rad/s", "")
    with make_env(f"mjcf/{CARTPOLE_XML}") as env:  # a slide joint, a hinge joint
        assert env.features.observation["state"].units == ("m", "rad", "m/s", "rad/s")


@pytest.mark.parametrize("task", ["metaworld/drawer-open", "dmc/cartpole-swingup", f"mjcf/{CARTPOLE_XML}"])
def test_legacy_schema_picks_the_control_mode_each_family_now_declares(task):
    with make_env(task) as env:
        spec = {k: {"shape": v["shape"]} for k, v in env.observation_spec.items()}
        legacy = legacy_schema(spec, env.action_low, env.action_high, env.control_dt, env.task)
        assert legacy.action.mode == env.features.action.mode


def test_mjcf_loads_a_dm_control_model():
    _load_and_step(f"mjcf/{CARTPOLE_XML}")


@pytest.mark.parametrize("task", ["metaworld/pick-place", "dmc/reacher-hard", f"mjcf/{CARTPOLE_XML}"])
def test_resets_are_seeded_and_randomised(task):
    with make_env(task) as env:
        a = env.reset(seed=3)[0]["state"]
        b = env.reset(seed=4)[0]["state"]
        c = env.reset(seed=3)[0]["state"]
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("task", ["metaworld/pick-place", "dmc/cartpole-swingup", f"mjcf/{CARTPOLE_XML}"])
def test_set_state_continues_bit_exactly(task):
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (30, 8))
    with make_env(task) as env:
        env.reset(seed=7)
        for a in actions[:10]:
            env.step(a[: env.action_dim])
        mid = env.get_state()
        for a in actions[10:]:
            obs, *_ = env.step(a[: env.action_dim])
        env.reset(seed=8)  # a different episode: set_state must rebuild seed 7's episode
        env.set_state(mid)
        assert env.elapsed_steps == 10
        for a in actions[10:]:
            again, *_ = env.step(a[: env.action_dim])
    np.testing.assert_array_equal(obs["state"], again["state"])


def test_sparse_reward_ends_episode_on_success():
    from sim.experts import make_expert

    with make_env("metaworld/drawer-open") as env:
        expert = make_expert(env)
        obs, _ = env.reset(seed=0)
        rewards = []
        for _ in range(env.max_episode_steps):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            rewards.append(reward)
            if terminated or truncated:
                break
    assert terminated and info["success"] and rewards[-1] == 1.0 and sum(rewards) == 1.0


def test_dense_reward_and_truncation():
    with make_env("metaworld/drawer-open", reward="dense", max_episode_steps=5) as env:
        env.reset(seed=0)
        for _ in range(5):
            _, reward, terminated, truncated, info = env.step(np.zeros(4))
        assert reward == info["dense_reward"] > 0 and not terminated and truncated


def test_pixel_observations_from_named_cameras():
    with make_env("metaworld/drawer-open", cameras=["corner2", "topview"], image_size=48) as env:
        obs, _ = env.reset(seed=0)
        for cam in ("corner2", "topview"):
            img = obs[f"images.{cam}"]
            assert img.shape == (48, 48, 3) and img.dtype == np.uint8 and img.std() > 5
        assert not np.array_equal(obs["images.corner2"], obs["images.topview"])
        assert env.observation_spec["images.corner2"] == {"shape": [48, 48, 3], "dtype": "uint8"}
    with pytest.raises(ValueError, match=r"unknown camera 'nope'.*corner2"):
        make_env("metaworld/drawer-open", cameras=["nope"])


@pytest.mark.parametrize(
    "task, message",
    [
        ("metaworld/drawer-opn", "Did you mean metaworld/drawer-open"),
        ("dmc/reacher-impossible", "dmc tasks: .*dmc/reacher-hard"),
        ("gazebo/thing", "expected one of metaworld/<task>"),
        ("mjcf/does/not/exist.xml", "no such MJCF file"),
    ],
)
def test_unknown_tasks_list_what_exists(task, message):
    with pytest.raises(TaskError, match=message):
        make_env(task)


def test_bad_actions_are_rejected():
    with make_env("dmc/reacher-easy") as env:
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros(2))
        env.reset(seed=0)
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(3))
        with pytest.raises(ValueError, match="NaN"):
            env.step(np.array([np.nan, 0.0]))
        with pytest.raises(ValueError, match="shape"):
            env.set_state(np.zeros(3))
