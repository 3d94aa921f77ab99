"""CQN / CQN-AS / BC agents: shapes, learning signal from demos, terminal handling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from policies.features import ActionSpec, FeatureSchema, image_feature, state_feature
from robo_q.agents import make_agent
from robo_q.agents.cqn import CQNAgent, CQNConfig, gather_bins
from robo_q.agents.networks import ObservationEncoder


def _features(action_dim: int = 2, state_dim: int = 6, **images: int) -> FeatureSchema:
    """A ``state`` vector (unless ``state_dim`` is 0) and square cameras ``images.<name>`` of the given sizes."""
    observation = {"state": state_feature("state", [f"s{i}" for i in range(state_dim)])} if state_dim else {}
    observation |= {f"images.{k}": image_feature(f"images.{k}", size, size) for k, size in images.items()}
    names = tuple(f"a{i}" for i in range(action_dim))
    return FeatureSchema(observation, ActionSpec(names, (-1.0,) * action_dim, (1.0,) * action_dim, "effort"), 0.05)


def _batch(n: int, k: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
    obs = torch.randn(n, 6, generator=rng)
    action = torch.tanh(2 * obs[:, :2])[:, None].expand(n, k, 2).contiguous()  # a learnable demo policy
    return {
        "obs.state": obs,
        "next_obs.state": obs + 0.01,
        "action": action,
        "reward": torch.zeros(n),
        "discount": torch.full((n,), 0.99),
    }


@pytest.mark.parametrize(
    "name, k, gru, precision", [("cqn", 1, False, "fp32"), ("cqn_as", 3, True, "fp32"), ("cqn_as", 3, True, "bf16")]
)
def test_demo_losses_teach_the_greedy_action(name, k, gru, precision):
    """With demo rows only, the margin/dominance losses must make the greedy action the demo's bin
    (also with the update's matmuls in bfloat16)."""
    torch.manual_seed(0)
    rng = torch.Generator().manual_seed(0)
    settings = {"seq_len": k, "gru": gru, "hidden": 64, "lr": 3e-3, "levels": 2, "bins": 5, "precision": precision}
    agent = make_agent(name, settings, _features(), "cpu")
    batch = _batch(128, k, rng)
    for _ in range(150):
        metrics = agent.update(batch, 128)
    with torch.no_grad():
        greedy, _, _ = agent.greedy(agent.encoder({"state": batch["obs.state"]}))
    error = (greedy - batch["action"]).abs()
    assert error.shape == (128, k, 2)
    # level-0 bins are 0.4 wide; the learned greedy action must land in the demo's coarse bin
    assert (error < 0.4).float().mean() > 0.9, error.mean()
    assert metrics["demo_loss"] < 0.01


def test_terminal_transitions_do_not_bootstrap():
    """With discount 0 the TD target is the reward alone, whatever the next state's value."""
    torch.manual_seed(0)
    agent = CQNAgent(_features(), CQNConfig(hidden=32, levels=2))
    with torch.no_grad():  # make every next-state value large: bias the value head's logits towards the top atom
        agent.critic_target.value_head.bias.view(2, 51)[:, -1] = 50.0
    next_logits = agent.critic_target(torch.zeros(4, agent.encoder.out_dim), torch.zeros(4, 2, 1, 2), agent.all_levels)
    chosen = gather_bins(next_logits, torch.zeros(4, 2, 1, 2, dtype=torch.long))
    reward = torch.tensor([1.0, 1.0, 0.0, 0.0])
    target = agent.head.target(reward, torch.tensor([0.0, 0.99, 0.0, 0.99]), chosen)
    q = agent.head.q(torch.log(target.clamp_min(1e-12)))
    assert torch.allclose(q[0], torch.tensor(1.0), atol=1e-4) and torch.allclose(q[2], torch.tensor(0.0), atol=1e-4)
    assert (q[1] > 1.5).all() and (q[3] > 1.5).all()  # bootstrapped from the (large) next value


def test_updates_move_the_target_network_by_polyak_averaging():
    torch.manual_seed(0)
    agent = CQNAgent(_features(), CQNConfig(hidden=32, levels=2, tau=0.5))
    before = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(_batch(16, 1, torch.Generator().manual_seed(1)), 0)
    for b, t, o in zip(before, agent.critic_target.parameters(), agent.critic.parameters(), strict=True):
        assert torch.allclose(t, 0.5 * b + 0.5 * o, atol=1e-6)


@pytest.mark.parametrize("head", ["c51", "hl_gauss", "mse"])
def test_every_value_head_trains(head):
    torch.manual_seed(0)
    agent = make_agent("cqn", {"head": head, "hidden": 32, "levels": 2}, _features(), "cpu")
    batch = {
        **_batch(32, 1, torch.Generator().manual_seed(2)),
        "reward": torch.ones(32),
    }  # zero-init heads start at Q = 0
    losses = [agent.update(batch, 32)["critic_loss"] for _ in range(30)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_pixel_encoder_and_bc():
    torch.manual_seed(0)
    agent = make_agent("bc", {"seq_len": 2, "hidden": 32, "frame_stack": 2}, _features(3, 0, cam=48), "cpu")
    obs = {"images.cam": np.random.default_rng(0).integers(0, 255, (48, 48, 6), dtype=np.uint8)}
    assert agent.act(obs).shape == (2, 3)
    batch = {
        "obs.images.cam": torch.randint(0, 255, (8, 48, 48, 6), dtype=torch.uint8),
        "action": torch.rand(8, 2, 3) * 2 - 1,
        "reward": torch.zeros(8),
    }
    losses = [agent.update(batch, 8)["bc_loss"] for _ in range(20)]
    assert losses[-1] < losses[0]


def test_encoder_inputs_follow_the_schema():
    """Kind, not key, decides the CNN; the schema's (sorted) order is the input order."""
    features = FeatureSchema(
        {
            "rgb": image_feature("rgb", 48, 48),
            "images.x": state_feature("images.x", ["a", "b"]),
            "arm": state_feature("arm", [f"q{i}" for i in range(6)]),
        },
        _features().action,
        0.05,
    )
    encoder = ObservationEncoder(features, frame_stack=3)
    assert encoder.keys == ["arm", "images.x", "rgb"] == features.keys
    assert set(encoder.cnns) == {"rgb"} and encoder.input_shapes["rgb"] == (48, 48, 9)
    obs = {"arm": np.zeros(6), "images.x": np.ones(2), "rgb": np.zeros((48, 48, 9), np.uint8)}
    batch = encoder.batch({k: v[None] for k, v in obs.items()}, torch.device("cpu"))
    assert batch["rgb"].dtype == torch.uint8 and batch["images.x"].dtype == torch.float32
    assert encoder(batch).shape == (1, 3 * 64)


def test_unknown_agent():
    with pytest.raises(ValueError, match="unknown agent 'sac'"):
        make_agent("sac", {}, _features(), "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CPU path runs in the other tests)")
def test_cuda_update():
    agent = make_agent("cqn_as", {"seq_len": 2, "gru": True, "hidden": 32}, _features(), "cuda")
    batch = {k: v.cuda() for k, v in _batch(16, 2, torch.Generator().manual_seed(0)).items()}
    assert np.isfinite(agent.update(batch, 16)["critic_loss"])


def test_stacked_streams_match_reference_layers():
    """The batched two-stream implementation computes exactly torch's Linear/LayerNorm/SiLU/GRU."""
    from torch import nn

    from robo_q.agents.networks import DuelingStreams

    torch.manual_seed(0)
    streams = DuelingStreams(2, feature_dim=5, cond_dim=3, hidden=8, gru=True)
    with torch.no_grad():
        for p in streams.parameters():
            p.normal_()
    features, cond = torch.randn(4, 5), torch.randn(4, 2, 3, 3)
    out = streams(features, cond)
    assert out.shape == (2, 4, 2, 3, 8)
    for s in range(2):
        mid = nn.Linear(8, 8)
        norms = [nn.LayerNorm(8), nn.LayerNorm(8)]
        gru = nn.GRU(8, 8, batch_first=True)
        with torch.no_grad():
            mid.weight.copy_(streams.w_mid[s].T)
            mid.bias.copy_(streams.b_mid[s, 0])
            for i, norm in enumerate(norms):
                norm.weight.copy_(streams.ln[2 * i][s, 0])
                norm.bias.copy_(streams.ln[2 * i + 1][s, 0])
            for name in ("ih", "hh"):
                getattr(gru, f"weight_{name}_l0").copy_(getattr(streams, f"w_{name}")[s].T)
                getattr(gru, f"bias_{name}_l0").copy_(getattr(streams, f"b_{name}")[s, 0])
        x = features[:, None, None] @ streams.w_feat[s] + cond @ streams.w_cond[s] + streams.b_in[s, 0]
        x = nn.functional.silu(norms[1](mid(nn.functional.silu(norms[0](x)))))
        expected, _ = gru(x.reshape(8, 3, 8))
        torch.testing.assert_close(out[s], expected.reshape(4, 2, 3, 8), atol=1e-5, rtol=1e-5)


def test_random_shift_is_a_replicate_padded_crop():
    """Every augmented image is the replicate-padded original cropped at one of the (2p+1)^2 offsets."""
    from robo_q.agents.networks import RandomShift

    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 12, 10, 3), dtype=torch.uint8)
    shifted = RandomShift(pad=2)(images)
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    padded = torch.nn.functional.pad(images.permute(0, 3, 1, 2).float(), (2, 2, 2, 2), mode="replicate").permute(
        0, 2, 3, 1
    )
    offsets = []
    for image, out in zip(padded, shifted, strict=True):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(image[dy : dy + 12, dx : dx + 10], out.float())
        ]
        assert matches, "an augmented image is not a crop of the padded original"
        offsets.append(matches[0])
    assert len(set(offsets)) > 4  # the offsets are random, not one fixed crop


def test_bf16_update_stays_close_to_fp32():
    """precision=bf16 runs the update's matmuls in bfloat16: the same losses to bf16's 3 significant
    digits on the first update, finite throughout, and an unknown precision is refused."""
    agents = []
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        agents.append(
            make_agent("cqn_as", {"seq_len": 2, "gru": True, "hidden": 32, "precision": precision}, _features(), "cpu")
        )
    batch = {**_batch(32, 2, torch.Generator().manual_seed(3)), "reward": (torch.arange(32) % 3 == 0).float()}
    fp32, bf16 = (agent.update(batch, 16) for agent in agents)
    for key in fp32:
        assert bf16[key] == pytest.approx(fp32[key], rel=2e-2, abs=1e-3), key
    for _ in range(20):
        assert all(np.isfinite(v) for v in agents[1].update(batch, 16).values())
    assert all(p.dtype == torch.float32 for p in agents[1].critic.parameters())
    with pytest.raises(ValueError, match="precision must be fp32 or bf16"):
        make_agent("cqn", {"precision": "fp16"}, _features(), "cpu")


def test_bf16_warns_on_a_cpu_that_emulates_it():
    """A CPU without AMX or AVX512-BF16 runs bf16 matmuls several times slower than fp32: the agent says so."""
    from robo_q.agents.cqn import cpu_has_bf16

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_agent("cqn", {"hidden": 32, "precision": "bf16"}, _features(), "cpu")
        make_agent("cqn", {"hidden": 32, "precision": "fp32"}, _features(), "cpu")
    emulated = [w for w in caught if "bf16 matmuls are emulated" in str(w.message)]
    assert len(emulated) == (0 if cpu_has_bf16() else 1)


def test_compiled_update_matches_eager():
    """agent.compile=true compiles the whole loss (forward and backward) without changing the maths."""
    settings = {"seq_len": 2, "gru": True, "hidden": 16, "levels": 2}
    agents = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        agents.append(make_agent("cqn_as", {**settings, "compile": compile_}, _features(), "cpu"))
    batch = {**_batch(16, 2, torch.Generator().manual_seed(3)), "reward": (torch.arange(16) % 3 == 0).float()}
    for step in range(3):
        with torch._dynamo.config.patch(error_on_recompile=step > 0):  # one compile serves every update
            eager, compiled = (agent.update(batch, 8) for agent in agents)
        assert eager.keys() == compiled.keys()
        for key in eager:
            assert compiled[key] == pytest.approx(eager[key], rel=1e-4, abs=1e-6), key
    for p_eager, p_compiled in zip(agents[0].critic.parameters(), agents[1].critic.parameters(), strict=True):
        torch.testing.assert_close(p_compiled, p_eager, atol=1e-4, rtol=1e-3)
