"""Value heads behind one interface: categorical C51, HL-Gauss, and scalar MSE.

A head maps a critic's ``outputs`` logits per (..., bin) to a Q value, builds the regression
target for a TD backup from the target critic's logits, and scores logits against it.
"""

from __future__ import annotations

import abc
import math
from typing import Self

import torch
import torch.nn.functional as F
from torch import Tensor


def _bcast(x: Tensor, dims: int) -> Tensor:
    """[N] -> [N, 1, ..., 1] with ``dims`` dims in all."""
    return x.view(x.shape + (1,) * (dims - 1))


class ValueHead(abc.ABC):
    """Interface; ``outputs`` is the number of logits per value (atoms/bins, or 1 for MSE)."""

    outputs: int

    @abc.abstractmethod
    def q(self, logits: Tensor) -> Tensor:
        """[..., outputs] -> expected value [...]."""

    @abc.abstractmethod
    def target(self, reward: Tensor, discount: Tensor, next_logits: Tensor) -> Tensor:
        """Detached regression target [N, ..., outputs] for the current logits.

        ``reward``, ``discount``: [N] (discount holds gamma^n and is 0 at termination);
        ``next_logits``: [N, ..., outputs], the target critic's logits at the chosen next action.
        """

    @abc.abstractmethod
    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Elementwise loss [...] of logits [..., outputs] against ``target``."""

    @abc.abstractmethod
    def cdf(self, logits: Tensor) -> Tensor | None:
        """Cumulative distribution [..., outputs], or None for scalar heads."""

    @abc.abstractmethod
    def demo_loss(self, logits: Tensor, idx: Tensor, margin: float) -> Tensor:
        """Mean demo loss of logits [..., B, outputs] whose demonstrated bins are ``idx`` [...]:
        the margin loss max(0, m - (Q(a_demo) - Q(a_j))) averaged over the other bins j, plus for
        categorical heads the first-order stochastic-dominance loss
        sum_atoms max(0, CDF(a_demo) - CDF(a_j)), averaged the same way."""

    def to(self, device: torch.device | str) -> Self:
        """Move the head's tensors to ``device``; returns self."""
        self.__dict__.update({k: v.to(device) for k, v in vars(self).items() if isinstance(v, Tensor)})
        return self


class _CategoricalHead(ValueHead):
    """Softmax over a fixed ``support`` [outputs], trained by cross-entropy."""

    support: Tensor

    def q(self, logits: Tensor) -> Tensor:
        return logits.softmax(-1) @ self.support

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return -(target * logits.log_softmax(-1)).sum(-1)

    def cdf(self, logits: Tensor) -> Tensor:
        return logits.softmax(-1).cumsum(-1)

    def demo_loss(self, logits: Tensor, idx: Tensor, margin: float) -> Tensor:
        return _CategoricalDemoLoss.apply(logits, idx, self.support, margin)


class _CategoricalDemoLoss(torch.autograd.Function):
    """The categorical demo loss with its gradient formed in the forward pass.

    Written for autograd, the dominance term saves a bool mask the size of the logits, and
    inductor's CPU kernels write bool tensors about 25x slower than float ones. Here CDF and Q come
    from one matmul, p @ [triu(1) | support], and the gradient goes back through its transpose.
    The j = demo terms are included: their value is the constant m (margin) or 0 (dominance), and
    their gradients cancel, so no mask is needed.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, idx: Tensor, support: Tensor, margin: float) -> Tensor:
        bins, atoms = logits.shape[-2:]
        scale = 1.0 / ((bins - 1) * idx.numel())
        to_cdf_q = torch.cat(
            [torch.ones(atoms, atoms, dtype=logits.dtype, device=logits.device).triu_(), support[:, None]], 1
        )
        p = logits.softmax(-1)
        cdf_q = p @ to_cdf_q  # [..., B, atoms + 1]
        demo = F.one_hot(idx, bins).to(p.dtype)[..., None]  # [..., B, 1]
        diff = (demo * cdf_q).sum(-2, keepdim=True) - cdf_q  # CDF_d - CDF_j | Q_d - Q_j
        ahead, gap = diff[..., :atoms], margin - diff[..., atoms]
        loss = (gap.clamp(min=0).sum() - margin * idx.numel() + ahead.clamp(min=0).sum()) * scale
        slope = torch.cat([(ahead >= 0).to(p.dtype).neg_(), (gap >= 0).to(p.dtype)[..., None]], -1)  # d/d[CDF_j | Q_j]
        grad_p = (slope - demo * slope.sum(-2, keepdim=True)) @ to_cdf_q.T
        ctx.save_for_backward((grad_p - (p * grad_p).sum(-1, keepdim=True)).mul_(p).mul_(scale))
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        return ctx.saved_tensors[0] * grad, None, None, None


class C51Head(_CategoricalHead):
    """Distributional critic on ``atoms`` atoms in [v_min, v_max] (Bellemare et al. 2017)."""

    def __init__(self, atoms: int = 51, v_min: float = -2.0, v_max: float = 2.0) -> None:
        self.outputs, self.v_min, self.dz = atoms, v_min, (v_max - v_min) / (atoms - 1)
        self.support = torch.linspace(v_min, v_max, atoms)
        self._j = torch.arange(atoms, dtype=self.support.dtype)

    @torch.no_grad()
    def target(self, reward: Tensor, discount: Tensor, next_logits: Tensor) -> Tensor:
        """Project r + discount * z onto the support, weighted by softmax(next_logits).

        The shifted atom i lands at fractional index b_i = (r + d z_i - v_min) / dz (clamped to
        [0, atoms-1]); atom j receives p_i * max(0, 1 - |b_i - j|). This is the usual split between
        floor(b) and ceil(b), and gives all the mass to j = b when b is an integer.
        """
        n, a = next_logits.shape[0], self.outputs
        r, d = reward.unsqueeze(-1), discount.unsqueeze(-1)
        # (r + d z - v_min) / dz with z = v_min + j dz
        b = torch.addcmul((r + (d - 1) * self.v_min) / self.dz, d, self._j).clamp_(0, a - 1)
        proj = (b.unsqueeze(-1) - self._j).abs_().neg_().add_(1).clamp_(min=0)  # [N, A(i), A(j)]
        p = next_logits.softmax(-1).reshape(n, -1, a)
        return torch.bmm(p, proj).view(next_logits.shape)


class HLGaussHead(_CategoricalHead):
    """Histogram loss with Gaussian targets (Farebrother et al. 2024, "Stop Regressing")."""

    def __init__(self, bins: int = 51, v_min: float = -2.0, v_max: float = 2.0, sigma_ratio: float = 0.75) -> None:
        width = (v_max - v_min) / bins
        self.outputs, self.v_min, self.v_max = bins, v_min, v_max
        self.support = torch.linspace(v_min + width / 2, v_max - width / 2, bins)
        self._scale = 1.0 / (math.sqrt(2.0) * sigma_ratio * width)
        self._edges = torch.linspace(v_min, v_max, bins + 1) * self._scale  # in units of sqrt(2) sigma

    @torch.no_grad()
    def target(self, reward: Tensor, discount: Tensor, next_logits: Tensor) -> Tensor:
        """N(y, sigma) integrated over each bin and renormalised; y = r + discount * q(next)."""
        q_next = self.q(next_logits)
        dims = q_next.dim()
        y = torch.addcmul(_bcast(reward, dims), _bcast(discount, dims), q_next)
        y = y.clamp_(self.v_min, self.v_max).mul_(self._scale)
        cdf = (self._edges - y.unsqueeze(-1)).erf_()
        return (cdf[..., 1:] - cdf[..., :-1]).div_(cdf[..., -1:] - cdf[..., :1])


class MSEHead(ValueHead):
    """Scalar critic regressed on the TD target with squared error."""

    outputs = 1

    def q(self, logits: Tensor) -> Tensor:
        return logits[..., 0]

    @torch.no_grad()
    def target(self, reward: Tensor, discount: Tensor, next_logits: Tensor) -> Tensor:
        dims = next_logits.dim()
        return torch.addcmul(_bcast(reward, dims), _bcast(discount, dims), next_logits)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return (logits - target).square().sum(-1)

    def cdf(self, logits: Tensor) -> None:
        return None

    def demo_loss(self, logits: Tensor, idx: Tensor, margin: float) -> Tensor:
        q = self.q(logits)
        gap = margin - (q.gather(-1, idx[..., None]) - q)  # the demo bin's own term is exactly m
        return (gap.clamp(min=0).sum(-1) - margin).mean() / (q.shape[-1] - 1)


HEADS: dict[str, type[ValueHead]] = {"c51": C51Head, "hl_gauss": HLGaussHead, "mse": MSEHead}


def make_head(kind: str, **kwargs) -> ValueHead:
    """Build a value head by name (one of ``HEADS``), passing ``kwargs`` to its constructor."""
    if kind not in HEADS:
        raise ValueError(f"unknown value head {kind!r}; expected one of {', '.join(HEADS)}")
    return HEADS[kind](**kwargs)
