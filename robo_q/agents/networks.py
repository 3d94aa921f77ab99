"""Encoders and the coarse-to-fine critic network shared by CQN (K = 1) and CQN-AS (K > 1)."""

from __future__ import annotations

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def orthogonal_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.orthogonal_(module.weight.data)
        if module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.GRU):
        for name, param in module.named_parameters():
            (nn.init.orthogonal_ if "weight" in name else nn.init.zeros_)(param.data)


class RandomShift(nn.Module):
    """DrQ random-shift augmentation: replicate-pad by ``pad`` and crop back at a random offset."""

    def __init__(self, pad: int = 4) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        padded = F.pad(x, (self.pad,) * 4, mode="replicate")
        shift = torch.randint(0, 2 * self.pad + 1, (n, 2), device=x.device)
        rows = (torch.arange(h, device=x.device)[None, :] + shift[:, :1])[:, None, :, None]
        cols = (torch.arange(w, device=x.device)[None, :] + shift[:, 1:])[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, chans, rows, cols]


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW feature map."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class CameraCNN(nn.Module):
    """Four conv layers (32-64-128-256, kernel 4, stride 2), channel LayerNorm, SiLU."""

    def __init__(self, in_channels: int, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for out in (32, 64, 128, 256):
            layers += [nn.Conv2d(in_channels, out, 4, stride=2), ChannelLayerNorm(out), nn.SiLU()]
            in_channels = out
        self.net = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            self.out_dim = int(self.net(torch.zeros(1, layers[0].in_channels, image_size, image_size)).shape[1])

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ObservationEncoder(nn.Module):
    """Dict observation -> feature vector: per input a projection Linear->proj, LayerNorm, Tanh.

    ``state`` is projected directly; each ``images.<camera>`` (uint8 NHWC, frames stacked on C)
    goes through its own CNN first, with random-shift augmentation in training.
    """

    def __init__(self, obs_shapes: dict[str, tuple[int, ...]], proj_dim: int = 64, shift_pad: int = 4) -> None:
        super().__init__()
        self.keys = sorted(obs_shapes)
        self.cnns = nn.ModuleDict()
        self.projs = nn.ModuleDict()
        for key in self.keys:
            shape = obs_shapes[key]
            in_dim = shape[0]
            if key.startswith("images."):
                cnn = CameraCNN(shape[-1], shape[0])
                self.cnns[key.replace(".", "_")] = cnn
                in_dim = cnn.out_dim
            self.projs[key.replace(".", "_")] = nn.Sequential(nn.Linear(in_dim, proj_dim), nn.LayerNorm(proj_dim), nn.Tanh())
        self.aug = RandomShift(shift_pad)
        self.out_dim = proj_dim * len(self.keys)
        self.apply(orthogonal_init)

    def single(self, obs: dict[str, np.ndarray], device: torch.device) -> dict[str, Tensor]:
        """One numpy observation -> a batch of one (images stay uint8, the rest float32)."""
        return {k: torch.as_tensor(obs[k][None] if k.startswith("images.") else obs[k][None].astype("float32"), device=device) for k in self.keys}

    def forward(self, obs: dict[str, Tensor], augment: bool = False) -> Tensor:
        parts = []
        for key in self.keys:
            name = key.replace(".", "_")
            x = obs[key]
            if key.startswith("images."):
                x = x.permute(0, 3, 1, 2).float()
                if augment:
                    x = self.aug(x)
                x = self.cnns[name](x / 255.0 - 0.5)
            parts.append(self.projs[name](x))
        return torch.cat(parts, dim=-1)


class _Stream(nn.Module):
    """One dueling stream: 2 x (Linear, LayerNorm, SiLU), optionally a GRU across the K steps, a head."""

    def __init__(self, feature_dim: int, cond_dim: int, hidden: int, out_dim: int, gru: bool) -> None:
        super().__init__()
        # First layer split in two so the observation features are projected once per sample,
        # not once per (level, step): identical math to a Linear over the concatenation.
        self.feat_in = nn.Linear(feature_dim, hidden)
        self.cond_in = nn.Linear(cond_dim, hidden, bias=False)
        self.body = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.SiLU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True) if gru else None
        self.head = nn.Linear(hidden, out_dim)

    def forward(self, features: Tensor, cond: Tensor) -> Tensor:
        # features [N, F]; cond [N, L, K, C] -> [N, L, K, out]
        n, levels, k, _ = cond.shape
        h = self.body(self.feat_in(features)[:, None, None, :] + self.cond_in(cond))
        if self.gru is not None:
            h, _ = self.gru(h.reshape(n * levels, k, -1))
            h = h.reshape(n, levels, k, -1)
        return self.head(h)


class C2FCritic(nn.Module):
    """Coarse-to-fine critic over a K x D action sequence (K = 1: CQN; K > 1 with GRU: CQN-AS).

    Each (level, step) is conditioned on the previous level's interval centres for that step,
    a one-hot step id and a one-hot level id; every (level, step, dim) gets B bins x O outputs,
    combined as dueling ``V + A - mean_bins(A)`` in logit space.
    """

    def __init__(self, feature_dim: int, action_dim: int, levels: int, bins: int, outputs: int, seq_len: int, hidden: int, gru: bool) -> None:
        super().__init__()
        self.action_dim, self.levels, self.bins, self.outputs, self.seq_len = action_dim, levels, bins, outputs, seq_len
        cond_dim = action_dim + seq_len + levels
        self.value = _Stream(feature_dim, cond_dim, hidden, action_dim * outputs, gru)
        self.advantage = _Stream(feature_dim, cond_dim, hidden, action_dim * bins * outputs, gru)
        self.register_buffer("step_onehot", torch.eye(seq_len))
        self.register_buffer("level_onehot", torch.eye(levels))
        self.apply(orthogonal_init)
        for stream in (self.value, self.advantage):
            nn.init.zeros_(stream.head.weight)
            nn.init.zeros_(stream.head.bias)

    def forward(self, features: Tensor, prev_centre: Tensor, levels: Tensor) -> Tensor:
        """features [N, F], prev_centre [N, L', K, D], levels long [L'] -> logits [N, L', K, D, B, O]."""
        n, nl, k, d = prev_centre.shape
        cond = torch.cat(
            [
                prev_centre,
                self.step_onehot[None, None].expand(n, nl, k, k),
                self.level_onehot[levels][None, :, None].expand(n, nl, k, self.levels),
            ],
            dim=-1,
        )
        value = self.value(features, cond).view(n, nl, k, d, 1, self.outputs)
        adv = self.advantage(features, cond).view(n, nl, k, d, self.bins, self.outputs)
        return value + adv - adv.mean(dim=-2, keepdim=True)
