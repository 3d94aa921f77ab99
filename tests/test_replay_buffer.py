"""ReplayBuffer: n-step returns, termination, action sequences, frame stacking, sampling, eviction, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from store_writer import create, synthetic_episode

from policies.features import ActionSpec, FeatureSchema, image_feature, state_feature
from robo_q.agents.replay_buffer import ReplayBuffer

GAMMA = 0.9
ACTION = ActionSpec(("a0", "a1"), (-1.0, -1.0), (1.0, 1.0), "effort")
STATE = FeatureSchema({"state": state_feature("state", ["x"])}, ACTION, 0.05)
PIXELS = FeatureSchema({**STATE.observation, "images.cam": image_feature("images.cam", 2, 2)}, ACTION, 0.05)


def _episode(length: int, offset: int = 0, terminated_at: int | None = None) -> tuple[dict, dict]:
    """state = [offset + t], reward r_t = t + 1, action a_t = [t, offset] / 1000, frames filled with t."""
    t = np.arange(length)
    steps = {
        "observation.state": (offset + t)[:, None].astype(np.float32),
        "observation.images.cam": np.broadcast_to(t[:, None, None, None], (length, 2, 2, 3)).astype(np.uint8),
        "action": np.stack([t, np.full(length, offset)], axis=1) / 1000,
        "reward": (t + 1).astype(np.float32),
        "terminated": t == terminated_at,
        "success": t == terminated_at,
    }
    return steps, {"state": np.array([offset + length], np.float32), "images.cam": np.full((2, 2, 3), 200, np.uint8)}


def _expected(t: int, length: int, nstep: int, terminated_at: int | None) -> tuple[float, float, int]:
    """Reference n-step reward, discount and next index, one transition at a time."""
    reward, n = 0.0, min(nstep, length - t)
    for i in range(n):
        reward += GAMMA**i * (t + i + 1)
        if t + i == terminated_at:
            return reward, 0.0, t + n
    return reward, GAMMA**n, t + n


@pytest.mark.parametrize("terminated_at", [None, 5, 9])  # truncated, terminal mid-episode, terminal last step
def test_nstep_reward_discount_and_next_obs(terminated_at):
    replay = ReplayBuffer(STATE, nstep=3, gamma=GAMMA)
    replay.add_episode(*_episode(10, terminated_at=terminated_at))
    batch = replay.sample(512, np.random.default_rng(0))
    ts = batch["obs.state"][:, 0].astype(int)
    assert set(ts) == set(range(10))
    assert batch["reward"].dtype == batch["discount"].dtype == np.float32 and batch["reward"].shape == (512,)
    for b, t in enumerate(ts):
        reward, discount, next_t = _expected(t, 10, 3, terminated_at)
        assert batch["reward"][b] == pytest.approx(reward, rel=1e-6), t
        assert batch["discount"][b] == pytest.approx(discount, rel=1e-6), t
        assert batch["next_obs.state"][b, 0] == next_t  # o_10 is the final observation
    if terminated_at is None:  # a time-limit truncation bootstraps from the final observation
        last = ts == 9
        assert np.all(batch["discount"][last] == np.float32(GAMMA)) and np.all(batch["reward"][last] == 10)


def test_action_sequences_padded_with_last_action():
    replay = ReplayBuffer(STATE, seq_len=4)
    steps, final = _episode(6, offset=7)
    replay.add_episode(steps, final)
    batch = replay.sample(256, np.random.default_rng(1))
    assert batch["action"].shape == (256, 4, 2) and batch["action"].dtype == np.float32
    ts = batch["obs.state"][:, 0].astype(int) - 7
    expected = steps["action"].astype(np.float32)[np.minimum(ts[:, None] + np.arange(4), 5)]
    np.testing.assert_array_equal(batch["action"], expected)
    np.testing.assert_array_equal(
        batch["action"][ts == 5], np.broadcast_to(steps["action"][5], (np.sum(ts == 5), 4, 2)).astype(np.float32)
    )


def test_frame_stacking_clamps_at_start_and_uses_final_obs():
    replay = ReplayBuffer(PIXELS, nstep=2, frame_stack=3)
    replay.add_episode(*_episode(5))
    batch = replay.sample(512, np.random.default_rng(2))
    obs, next_obs = batch["obs.images.cam"], batch["next_obs.images.cam"]
    assert obs.shape == next_obs.shape == (512, 2, 2, 9) and obs.dtype == np.uint8
    assert batch["obs.state"].shape == (512, 1)  # non-image keys are not stacked
    frame = lambda i: 200 if i == 5 else i  # noqa: E731  (index T is the final observation)
    for b, t in enumerate(batch["obs.state"][:, 0].astype(int)):
        next_t = min(t + 2, 5)
        np.testing.assert_array_equal(obs[b, 0, 0], np.repeat([max(t - 2, 0), max(t - 1, 0), t], 3))
        np.testing.assert_array_equal(next_obs[b, 1, 1], np.repeat([frame(max(next_t - k, 0)) for k in (2, 1, 0)], 3))


def test_uniform_over_episodes_then_steps():
    replay = ReplayBuffer(STATE)
    replay.add_episode(*_episode(2, offset=0))
    replay.add_episode(*_episode(200, offset=1000))
    assert len(replay) == 202 and replay.num_episodes == 2
    state = replay.sample(20_000, np.random.default_rng(3))["obs.state"][:, 0]
    short = state < 1000
    assert abs(short.mean() - 0.5) < 0.02
    assert abs((state[short] == 0).mean() - 0.5) < 0.03
    assert len(np.unique(state[~short])) == 200


def _check_consistent(replay: ReplayBuffer, lengths: dict[int, int], rng: np.random.Generator) -> np.ndarray:
    """Every sampled transition agrees with the episode (offset = 1000 * id) it was drawn from; returns episode ids."""
    batch = replay.sample(256, rng)
    state = batch["obs.state"][:, 0].astype(int)
    ids, ts = state // 1000, state % 1000
    ends = np.array([lengths[i] for i in ids])
    np.testing.assert_array_equal(batch["next_obs.state"][:, 0], 1000 * ids + np.minimum(ts + replay.nstep, ends))
    np.testing.assert_array_equal(batch["action"][:, 0], np.float32(np.stack([ts / 1000, ids], axis=1)))
    return ids


def test_capacity_evicts_oldest_episodes_and_keeps_data_intact():
    replay = ReplayBuffer(STATE, nstep=2, capacity=25)
    for i in range(3):
        replay.add_episode(*_episode(10, offset=1000 * i))
    assert len(replay) == 20 and replay.num_episodes == 2
    assert set(_check_consistent(replay, {1: 10, 2: 10}, np.random.default_rng(4))) == {1, 2}
    replay.add_episode(*_episode(24, offset=3000))
    assert len(replay) == 24 and replay.num_episodes == 1
    with pytest.raises(ValueError, match="capacity"):
        replay.add_episode(*_episode(26))
    # many adds with evictions exercise buffer growth and compaction
    rng = np.random.default_rng(5)
    replay, lengths = ReplayBuffer(STATE, nstep=3, capacity=300), {}
    for i in range(1, 80):
        lengths[i] = int(rng.integers(1, 40))
        replay.add_episode(*_episode(lengths[i], offset=1000 * i))
        held = list(lengths)[-replay.num_episodes :]
        assert len(replay) == sum(lengths[j] for j in held) <= 300
        if held[0] > 1:  # FIFO drops no more than needed: keeping one more would exceed the capacity
            assert len(replay) + lengths[held[0] - 1] > 300
        assert set(_check_consistent(replay, lengths, rng)) <= set(held)


def test_state_dict_round_trip(tmp_path):
    kwargs = dict(features=PIXELS, seq_len=3, nstep=3, gamma=GAMMA, frame_stack=2, capacity=60)
    replay = ReplayBuffer(**kwargs)
    for i in range(8):
        replay.add_episode(*_episode(7 + i, offset=1000 * i, terminated_at=6 + i if i % 2 else None))
    state = replay.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, tmp_path / "replay.safetensors")
    restored = ReplayBuffer(**kwargs)
    restored.load_state_dict(load_file(tmp_path / "replay.safetensors"))
    assert len(restored) == len(replay) and restored.num_episodes == replay.num_episodes
    expected, got = replay.sample(128, np.random.default_rng(6)), restored.sample(128, np.random.default_rng(6))
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    for r in (replay, restored):  # both keep working identically after further adds
        r.add_episode(*_episode(20, offset=9000))
    for key, values in replay.sample(64, np.random.default_rng(7)).items():
        np.testing.assert_array_equal(restored.sample(64, np.random.default_rng(7))[key], values, err_msg=key)
    with pytest.raises(ValueError):
        ReplayBuffer(STATE).load_state_dict(state)
    empty = ReplayBuffer(**kwargs)
    empty.load_state_dict(ReplayBuffer(**kwargs).state_dict())
    assert len(empty) == 0 and empty.num_episodes == 0


def test_add_store_matches_episode_data(tmp_path):
    store = create(tmp_path / "s.zarr")
    for i in range(3):
        store.append_episode(*synthetic_episode(i), seed=i)
    replay = ReplayBuffer(store.features, seq_len=4, nstep=3, gamma=GAMMA, frame_stack=2)
    assert replay.add_store(store, limit=2) == 2 and replay.num_episodes == 2 and len(replay) == 40 + 41
    replay = ReplayBuffer(store.features, seq_len=4, nstep=3, gamma=GAMMA, frame_stack=2)
    assert replay.add_store(store) == 3 and len(replay) == 40 + 41 + 42
    episodes = [store.episode(i) for i in range(3)]
    batch = replay.sample(256, np.random.default_rng(8))
    for b in range(256):
        t, i = (int(x) for x in batch["obs.state"][b, [0, 2]])
        ep, length = episodes[i], len(episodes[i])
        n = min(3, length - t)
        np.testing.assert_array_equal(batch["obs.state"][b], ep.steps["observation.state"][t])
        np.testing.assert_array_equal(batch["next_obs.state"][b], ep.next_observation("state")[t + n - 1])
        frames = ep.steps["observation.images.cam"]
        np.testing.assert_array_equal(
            batch["obs.images.cam"][b], np.concatenate([frames[max(t - 1, 0)], frames[t]], axis=-1)
        )
        next_frames = ep.next_observation("images.cam")
        np.testing.assert_array_equal(
            batch["next_obs.images.cam"][b], np.concatenate([next_frames[t + n - 2], next_frames[t + n - 1]], axis=-1)
        )
        np.testing.assert_array_equal(batch["action"][b], ep.steps["action"][np.minimum(t + np.arange(4), length - 1)])
        last = t + n == length  # the only reward (1) and termination are at the last step
        assert batch["reward"][b] == pytest.approx(GAMMA ** (n - 1) if last else 0.0)
        assert batch["discount"][b] == pytest.approx(0.0 if last else GAMMA**3)


def test_image_features_are_stacked_by_kind_not_key():
    features = FeatureSchema({**STATE.observation, "rgb": image_feature("rgb", 2, 2)}, ACTION, 0.05)
    steps, final = _episode(6)
    steps["observation.rgb"] = steps.pop("observation.images.cam")
    final["rgb"] = final.pop("images.cam")
    replay = ReplayBuffer(features, frame_stack=3)
    replay.add_episode(steps, final)
    batch = replay.sample(16, np.random.default_rng(0))
    assert batch["obs.rgb"].shape == (16, 2, 2, 9) and batch["obs.rgb"].dtype == np.uint8
    assert batch["obs.state"].shape == (16, 1) and batch["obs.state"].dtype == np.float32
    t = batch["obs.state"][:, 0].astype(int)  # state = t, frames filled with t: oldest first, clamped at 0
    np.testing.assert_array_equal(batch["obs.rgb"][:, 0, 0, ::3], np.maximum(t[:, None] + [-2, -1, 0], 0))


def test_runtime_frame_history_matches_the_replay_buffer():
    """The deployed runtime's frame stacking gives the replay buffer's stacked frames, step by step."""
    from policies.observation import FrameHistory

    features = FeatureSchema({**STATE.observation, "rgb": image_feature("rgb", 2, 2)}, ACTION, 0.05)
    rng = np.random.default_rng(3)
    steps, final = _episode(7)
    steps["observation.rgb"] = rng.integers(0, 255, (7, 2, 2, 3), dtype=np.uint8)  # distinct frames
    steps.pop("observation.images.cam")
    final["rgb"] = final.pop("images.cam")
    replay = ReplayBuffer(features, frame_stack=3)
    replay.add_episode(steps, final)
    batch = replay.sample(256, rng)
    stacked = {int(s[0]): img for s, img in zip(batch["obs.state"], batch["obs.rgb"], strict=True)}
    history = FrameHistory(3, ["rgb"])
    for t in range(7):
        out = history({"state": steps["observation.state"][t], "rgb": steps["observation.rgb"][t]})
        assert out["rgb"].shape == (2, 2, 9)
        if t in stacked:
            np.testing.assert_array_equal(out["rgb"], stacked[t])
    assert len(stacked) >= 5  # most steps were sampled and compared
