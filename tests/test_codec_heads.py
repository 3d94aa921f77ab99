"""Coarse-to-fine action codec and value heads: round trips, greedy search, TD targets, losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robo_q.agents.codec import C2FCodec
from robo_q.agents.heads import C51Head, HLGaussHead, MSEHead, make_head

CODECS = [(1, 5), (2, 2), (3, 5), (4, 3)]  # (levels, bins)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-6) -> None:
    """Same shape and max abs difference <= atol (torch.testing.assert_close costs ~1 s on first use)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert (actual - expected).abs().max() <= atol, (actual - expected).abs().max()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --------------------------------------------------------------------------------------- codec


@pytest.mark.parametrize("levels,bins", CODECS)
def test_decode_encode_within_finest_half_width(levels, bins):
    codec = C2FCodec(levels, bins)
    a = torch.rand(4, 3, 7) * 2 - 1
    idx, prev = codec.encode(a)
    assert idx.shape == prev.shape == (4, 3, levels, 7) and idx.dtype == torch.long
    assert idx.min() >= 0 and idx.max() < bins
    assert (codec.decode(idx) - a).abs().max() <= 1 / bins**levels + 1e-6


@pytest.mark.parametrize("levels,bins", CODECS)
def test_encode_decode_recovers_indices(levels, bins):
    codec = C2FCodec(levels, bins)
    idx = torch.randint(bins, (5, 2, levels, 6))
    assert torch.equal(codec.encode(codec.decode(idx))[0], idx)


@pytest.mark.parametrize("levels,bins", CODECS)
def test_prev_centre_is_centre_after_zooming_previous_levels(levels, bins):
    codec = C2FCodec(levels, bins)
    a = torch.rand(64, 4) * 2 - 1
    idx, prev = codec.encode(a)
    low, high = -torch.ones_like(a), torch.ones_like(a)
    for level in range(levels):
        assert_close(prev[:, level], (low + high) / 2, atol=1e-6)
        assert ((low <= a) & (a <= high)).all()
        low, high = codec.zoom(low, high, idx[:, level])
    assert_close(codec.decode(idx), (low + high) / 2, atol=1e-6)


def test_bin_edges_clipping_and_centres():
    codec = C2FCodec(levels=2, bins=2)
    a = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, -3.0])
    idx, prev = codec.encode(a)
    assert idx.transpose(0, 1).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [1, 1], [1, 1], [0, 0]]
    assert prev[0].tolist() == [0.0] * 7
    assert prev[1].tolist() == [-0.5, -0.5, 0.5, 0.5, 0.5, 0.5, -0.5]
    assert C2FCodec(1, 4).bin_centres(torch.tensor([-1.0]), torch.tensor([1.0])).tolist() == [
        [-0.75, -0.25, 0.25, 0.75]
    ]
    low, high = C2FCodec(1, 4).zoom(torch.tensor([0.0]), torch.tensor([2.0]), torch.tensor([2]))
    assert (low.item(), high.item()) == (1.0, 1.5)


@pytest.mark.parametrize("levels,bins", CODECS)
def test_greedy_finds_target_and_conditions_like_encode(levels, bins):
    codec = C2FCodec(levels, bins)
    target = torch.rand(8, 3, 5) * 2 - 1
    seen = []

    def q_fn(level, prev_centre):
        half = 1.0 / bins**level  # half width of the interval chosen by levels < `level`
        seen.append(prev_centre)
        return -(codec.bin_centres(prev_centre - half, prev_centre + half) - target.unsqueeze(-1)).abs()

    action, idx = codec.greedy(q_fn, (8, 3), 5, "cpu")
    assert action.shape == (8, 3, 5) and idx.shape == (8, 3, levels, 5)
    assert (action - target).abs().max() <= 1 / bins**levels + 1e-6
    assert_close(action, codec.decode(idx), atol=1e-6)
    assert_close(torch.stack(seen, -2), codec.encode(action)[1], atol=1e-6)


# --------------------------------------------------------------------------------------- heads


def test_c51_discount_zero_puts_mass_at_reward():
    head = C51Head(atoms=5, v_min=-2, v_max=2)  # atoms at -2..2, spacing 1
    next_logits = torch.randn(3, 5)
    t = head.target(torch.tensor([1.0, 0.25, 7.0]), torch.zeros(3), next_logits)
    expected = torch.tensor([[0, 0, 0, 1, 0], [0, 0, 0.75, 0.25, 0], [0, 0, 0, 0, 1.0]])  # on atom, between, clamped
    assert_close(t, expected, atol=1e-6)
    head = C51Head()
    t = head.target(head.support[[10, 40]], torch.zeros(2), torch.randn(2, 51))
    assert_close(t, torch.eye(51)[[10, 40]], atol=1e-5)


def test_c51_projection_conserves_mass_and_expectation():
    head = C51Head()
    n = 64
    reward, discount = torch.rand(n) - 0.5, torch.rand(n) * 0.7  # |r + d z| < 2: no clamping
    next_logits = torch.randn(n, 3, 2, 51, requires_grad=True)
    t = head.target(reward, discount, next_logits)
    assert t.shape == next_logits.shape and not t.requires_grad and (t >= 0).all()
    assert_close(t.sum(-1), torch.ones(n, 3, 2), atol=1e-5)
    expected = reward[:, None, None] + discount[:, None, None] * head.q(next_logits.detach())
    assert_close(t @ head.support, expected, atol=1e-5)
    # terminal transitions ignore the next state entirely
    t = head.target(reward, torch.zeros(n), next_logits)
    assert_close(t @ head.support, reward[:, None, None].expand(n, 3, 2), atol=1e-5)


def test_c51_loss_is_cross_entropy_minimised_at_target():
    head = C51Head()
    target = head.target(torch.rand(16) - 0.5, torch.full((16,), 0.9), torch.randn(16, 4, 51))
    logits = target.clamp_min(1e-12).log().requires_grad_()
    loss = head.loss(logits, target)
    assert loss.shape == (16, 4)
    loss.sum().backward()
    assert logits.grad.abs().max() < 1e-5
    assert (head.loss(torch.randn(16, 4, 51), target) > loss.detach()).all()


def test_hl_gauss_target_normalised_mean_and_fit():
    head = HLGaussHead()
    n = 16
    reward, discount = torch.rand(n) * 2 - 1, torch.rand(n) * 0.5
    next_logits = torch.randn(n, 3, 51) * 0.1
    t = head.target(reward, discount, next_logits)
    assert t.shape == next_logits.shape and (t >= 0).all()
    assert_close(t.sum(-1), torch.ones(n, 3), atol=1e-5)
    y = reward[:, None] + discount[:, None] * head.q(next_logits)
    assert_close(t @ head.support, y, atol=1e-4)
    logits = torch.zeros(n, 3, 51, requires_grad=True)
    for _ in range(200):  # plain gradient descent on the cross-entropy
        (grad,) = torch.autograd.grad(head.loss(logits, t).sum(), logits)
        with torch.no_grad():
            logits -= 5.0 * grad
    assert_close(head.q(logits.detach()), y, atol=0.02)  # a quarter bin width
    # out-of-range TD targets are clamped: mass piles up in the edge bin
    t = head.target(torch.tensor([10.0]), torch.zeros(1), next_logits[:1, 0])
    assert t[0].argmax() == 50 and t[0, -1] > 0.5


def test_mse_head():
    head = MSEHead()
    next_logits = torch.randn(5, 2, 3, 1, requires_grad=True)
    reward, discount = torch.randn(5), torch.rand(5)
    t = head.target(reward, discount, next_logits)
    assert t.shape == (5, 2, 3, 1) and not t.requires_grad
    assert_close(t[..., 0], reward[:, None, None] + discount[:, None, None] * next_logits[..., 0])
    assert head.q(t).shape == (5, 2, 3)
    assert head.loss(t, t).abs().max() == 0
    assert_close(head.loss(t + 2, t), torch.full((5, 2, 3), 4.0), atol=1e-5)
    assert head.cdf(t) is None


@pytest.mark.parametrize("head", [C51Head(), HLGaussHead(bins=21)])
def test_cdf_monotone_ends_at_one(head):
    cdf = head.cdf(torch.randn(7, 2, head.outputs) * 3)
    assert cdf.shape == (7, 2, head.outputs)
    assert (cdf.diff(dim=-1) >= 0).all()
    assert_close(cdf[..., -1], torch.ones(7, 2), atol=1e-5)


def reference_demo_loss(head, logits: torch.Tensor, idx: torch.Tensor, margin: float) -> torch.Tensor:
    """The demo losses written the obvious way, for autograd: masks over the non-demo bins."""
    bins = logits.shape[-2]
    other = torch.ones(logits.shape[:-1], dtype=torch.bool).scatter_(-1, idx[..., None], False)
    q = head.q(logits)
    loss = ((margin - (q.gather(-1, idx[..., None]) - q)).clamp(min=0) * other).sum(-1).mean() / (bins - 1)
    cdf = head.cdf(logits)
    if cdf is not None:
        cdf_demo = cdf.gather(-2, idx[..., None, None].expand(*idx.shape, 1, cdf.shape[-1]))
        loss = loss + ((cdf_demo - cdf).clamp(min=0).sum(-1) * other).sum(-1).mean() / (bins - 1)
    return loss


@pytest.mark.parametrize("head", [C51Head(), HLGaussHead(bins=21), MSEHead()], ids=["c51", "hl_gauss", "mse"])
def test_demo_loss_value_and_gradient_match_autograd(head):
    """The demo loss computes its gradient in the forward pass (categorical heads): same value and
    gradient as autograd through the masked formula, with margins both active and inactive."""
    logits = (torch.randn(6, 3, 5, head.outputs) * 2).requires_grad_()
    idx = torch.randint(0, 5, (6, 3))
    loss = head.demo_loss(logits, idx, 0.3)
    (grad,) = torch.autograd.grad(2 * loss, logits)
    ref = reference_demo_loss(head, logits, idx, 0.3)
    (ref_grad,) = torch.autograd.grad(2 * ref, logits)
    assert loss.shape == () and ref > 0.05
    assert_close(loss, ref, atol=1e-5)
    assert_close(grad, ref_grad, atol=1e-6)
    q = head.q(logits.detach())
    gap = q.gather(-1, idx[..., None]) - q
    assert (gap > 0.3).any() and ((gap < 0.3) & (gap != 0)).any()  # both sides of the margin are exercised


def test_make_head():
    assert isinstance(make_head("c51", atoms=11), C51Head) and make_head("c51", atoms=11).outputs == 11
    assert isinstance(make_head("hl_gauss"), HLGaussHead) and make_head("hl_gauss").outputs == 51
    assert isinstance(make_head("mse"), MSEHead) and make_head("mse").outputs == 1
    with pytest.raises(ValueError, match="c51, hl_gauss, mse"):
        make_head("qr")
    with pytest.raises(TypeError):
        make_head("c51", bins=3)
    head = make_head("hl_gauss")
    assert head.to("cpu") is head and head.support.device.type == "cpu"


def test_bins_matched_agrees_with_the_codec():
    """Offline evaluation's per-level bin match is the codec's: same bins at every level up to l."""
    from robo_q.evaluate import bins_matched

    rng = np.random.default_rng(0)
    codec = C2FCodec(levels=3, bins=5)
    logged = rng.uniform(-1, 1, (400, 3))
    acted = np.clip(logged + rng.normal(0, 0.05, logged.shape), -1, 1)
    acted[:10] = 1.0  # the upper edge: the last bin
    idx = [codec.encode(torch.as_tensor(a, dtype=torch.float32))[0].numpy() for a in (acted, logged)]  # [N, L, D]
    same = idx[0] == idx[1]
    expected = [float(np.mean(np.all(same[:, : lv + 1], axis=1))) for lv in range(3)]
    assert bins_matched(acted.astype(np.float32), logged.astype(np.float32), 3, 5) == pytest.approx(expected)
    assert expected[0] > expected[1] > expected[2]  # finer levels match less often
