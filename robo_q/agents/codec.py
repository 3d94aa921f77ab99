"""Coarse-to-fine action discretisation (CQN, Seo et al. 2024).

Each action dimension lives in [-1, 1]. Level 0 splits [-1, 1] into ``bins`` bins, every further
level splits the chosen bin again, so ``levels`` levels give ``bins**levels`` intervals per dim;
the executed action is the centre of the final interval. Dimensions are independent.
Internally a path of per-level indices is the base-``bins`` digit string of the index ``k`` of the
finest interval, which makes ``encode``/``decode`` loop-free and exact on the grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


class C2FCodec:
    """Maps continuous actions to per-level bin indices and back."""

    def __init__(self, levels: int, bins: int) -> None:
        if levels < 1 or bins < 2:
            raise ValueError(f"need levels >= 1 and bins >= 2; got levels={levels}, bins={bins}")
        self.levels, self.bins = levels, bins

    def _consts(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """(B^(L-1-l) long [L], B^l [L], sub-bin centre fractions (j + 0.5) / B [B]) on device.

        Built per call (a few tiny tensors): no cache, so a compiled graph has no state to guard."""
        place = self.bins ** torch.arange(self.levels - 1, -1, -1, device=device)
        res = (self.bins ** torch.arange(self.levels, device=device)).to(dtype)
        frac = (torch.arange(self.bins, device=device, dtype=dtype) + 0.5) / self.bins
        return place, res, frac

    def bin_centres(self, low: Tensor, high: Tensor) -> Tensor:
        """Centres [..., D, B] of the B equal sub-bins of [low, high] ([..., D])."""
        frac = self._consts(low.device, low.dtype)[2]
        return torch.lerp(low.unsqueeze(-1), high.unsqueeze(-1), frac)

    def zoom(self, low: Tensor, high: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Bounds of sub-bin ``idx`` (long [..., D]) of [low, high]."""
        width = (high - low) / self.bins
        low = low + idx * width
        return low, low + width

    def encode(self, action: Tensor) -> tuple[Tensor, Tensor]:
        """Action [..., D] (clipped to [-1, 1]) -> (idx long [..., L, D], prev_centre [..., L, D]).

        ``idx[..., l, :]`` is the bin holding the action at level l (a point on an edge goes to the
        upper bin, +1 to the last); ``prev_centre[..., l, :]`` is the centre of the interval chosen
        by levels < l (zeros at level 0), i.e. what the critic is conditioned on at level l.
        """
        place, res, _ = self._consts(action.device, action.dtype)
        n = self.bins**self.levels
        k = action.clamp(-1, 1).add_(1).mul_(n / 2).floor_().long().clamp_(max=n - 1)
        prefix = k.unsqueeze(-2) // place.unsqueeze(-1)  # index at resolution B^(l+1)
        idx = prefix % self.bins
        prev_centre = (prefix // self.bins * 2 + 1).to(action.dtype).div_(res.unsqueeze(-1)).sub_(1)
        return idx, prev_centre

    def decode(self, idx: Tensor) -> Tensor:
        """Per-level indices long [..., L, D] -> centre [..., D] of the final interval."""
        place = self._consts(idx.device, torch.get_default_dtype())[0]
        k = (idx * place.unsqueeze(-1)).sum(-2)
        return (2 * k + 1).to(torch.get_default_dtype()).div_(self.bins**self.levels).sub_(1)

    def greedy(
        self,
        q_fn: Callable[..., Tensor],
        batch_shape: Sequence[int],
        action_dim: int,
        device: torch.device | str,
    ) -> tuple[Tensor, Tensor]:
        """Level-by-level argmax; ``q_fn(level=l, prev_centre=[..., D]) -> [..., D, B]``.

        Returns (action [..., D], idx long [..., L, D]).
        """
        shape = (*batch_shape, action_dim)
        low = torch.full(shape, -1.0, device=device)
        high = torch.ones(shape, device=device)
        centre = torch.zeros(shape, device=device)
        idxs = []
        for level in range(self.levels):
            idx = q_fn(level=level, prev_centre=centre).argmax(-1)
            low, high = self.zoom(low, high, idx)
            centre = (low + high) / 2
            idxs.append(idx)
        return centre, torch.stack(idxs, -2)
