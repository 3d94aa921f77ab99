"""Encoders and the coarse-to-fine critic network shared by CQN (K = 1) and CQN-AS (K > 1)."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from policies.features import FeatureSchema


def orthogonal_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.orthogonal_(module.weight.data)
        if module.bias is not None:
            module.bias.data.zero_()


class RandomShift(nn.Module):
    """DrQ random-shift augmentation on NHWC images: replicate-pad by ``pad`` and crop back at a
    random offset, done as one row gather of whole pixels with clamped indices (no padded copy)."""

    def __init__(self, pad: int = 4) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        n, h, w, c = x.shape
        arange = partial(torch.arange, device=x.device)
        shift = torch.randint(0, 2 * self.pad + 1, (n, 2), device=x.device) - self.pad
        rows = (arange(h) + shift[:, :1]).clamp_(0, h - 1)[:, :, None]
        cols = (arange(w) + shift[:, 1:]).clamp_(0, w - 1)[:, None, :]
        pixel = (arange(n)[:, None, None] * h + rows) * w + cols  # [n, h, w] source pixel per output pixel
        return x.reshape(n * h * w, c).index_select(0, pixel.view(-1)).view(n, h, w, c)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW feature map."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


MIN_IMAGE_SIZE = 46  # four kernel-4 stride-2 convolutions leave one pixel


class CameraCNN(nn.Module):
    """Four conv layers (32-64-128-256, kernel 4, stride 2), channel LayerNorm, SiLU.

    Runs channels-last: NHWC images are viewed as NCHW without a copy, so oneDNN runs its faster
    channels-last convolutions and each channel LayerNorm normalises a contiguous last axis.
    """

    def __init__(self, in_channels: int, image_size: int) -> None:
        super().__init__()
        if image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"camera images must be at least {MIN_IMAGE_SIZE} pixels high, got {image_size}")
        layers: list[nn.Module] = []
        image_channels = in_channels
        for out in (32, 64, 128, 256):
            layers += [nn.Conv2d(in_channels, out, 4, stride=2), ChannelLayerNorm(out), nn.SiLU()]
            in_channels = out
        self.net = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            self.out_dim = int(self.net(torch.zeros(1, image_channels, image_size, image_size)).shape[1])

    def forward(self, x: Tensor) -> Tensor:
        """Images NHWC float -> flat features (NCHW order)."""
        return self.net(x.permute(0, 3, 1, 2))


class ObservationEncoder(nn.Module):
    """Dict observation -> feature vector: per input a projection Linear->proj, LayerNorm, Tanh.

    The inputs are the schema's features, in its order: a ``state`` feature is projected directly;
    each ``image`` feature (uint8 NHWC, ``frame_stack`` frames stacked on C) goes through its own
    CNN first, with random-shift augmentation in training.
    """

    def __init__(self, features: FeatureSchema, frame_stack: int = 1, proj_dim: int = 64, shift_pad: int = 4) -> None:
        super().__init__()
        self.keys = features.keys
        self.image_keys = frozenset(f.key for f in features.of_kind("image"))
        self.input_shapes = {f.key: f.stacked_shape(frame_stack) for f in features.observation.values()}
        self.cnns = nn.ModuleDict()
        self.projs = nn.ModuleDict()
        for feature in features.observation.values():
            shape = self.input_shapes[feature.key]
            in_dim = shape[0]
            if feature.kind == "image":
                cnn = CameraCNN(shape[-1], shape[0])
                self.cnns[feature.input_name] = cnn
                in_dim = cnn.out_dim
            self.projs[feature.input_name] = nn.Sequential(
                nn.Linear(in_dim, proj_dim), nn.LayerNorm(proj_dim), nn.Tanh()
            )
        self.aug = RandomShift(shift_pad)
        self.out_dim = proj_dim * len(self.keys)
        self.apply(orthogonal_init)

    def batch(self, obs: dict[str, np.ndarray], device: torch.device) -> dict[str, Tensor]:
        """A numpy observation batch [N, ...] -> tensors (images stay uint8, the rest float32)."""
        return {
            k: torch.as_tensor(obs[k] if k in self.image_keys else np.asarray(obs[k], np.float32), device=device)
            for k in self.keys
        }

    @torch.compiler.disable  # eager oneDNN convolutions and pixel gathers beat their compiled versions
    def camera_features(self, name: str, images: Tensor, augment: bool) -> Tensor:
        """uint8 NHWC images -> CNN features, random-shifted when ``augment``."""
        if augment:
            images = self.aug(images)
        return self.cnns[name](images.to(torch.float32, copy=True).mul_(1 / 255).sub_(0.5))  # one image-sized buffer

    def forward(self, obs: dict[str, Tensor], augment: bool = False) -> Tensor:
        parts = []
        for key in self.keys:
            name = key.replace(".", "_")
            x = obs[key]
            if key in self.image_keys:
                x = self.camera_features(name, x, augment)
            parts.append(self.projs[name](x))
        return torch.cat(parts, dim=-1)


class DuelingStreams(nn.Module):
    """The value and advantage streams, computed together with batched matmuls.

    Each stream: Linear over [features, conditioning] -> LayerNorm -> SiLU -> Linear ->
    LayerNorm -> SiLU -> (optionally) a GRU across the K steps. The streams have the same shapes,
    so their weights are stacked on a leading stream axis and every layer is one ``baddbmm`` for
    both. The first Linear is split so observation features are projected once per sample, not
    once per (level, step), and the GRU skips the hidden-state product at step 0 (h0 = 0).
    """

    def __init__(self, streams: int, feature_dim: int, cond_dim: int, hidden: int, gru: bool) -> None:
        super().__init__()
        self.hidden, self.gru = hidden, gru

        def stacked(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(streams, *shape))

        self.w_feat, self.w_cond, self.b_in = (
            stacked(feature_dim, hidden),
            stacked(cond_dim, hidden),
            stacked(1, hidden),
        )
        self.w_mid, self.b_mid = stacked(hidden, hidden), stacked(1, hidden)
        self.ln = nn.ParameterList([stacked(1, hidden) for _ in range(4)])  # gain, bias for both norms
        if gru:
            self.w_ih, self.b_ih = stacked(hidden, 3 * hidden), stacked(1, 3 * hidden)
            self.w_hh, self.b_hh = stacked(hidden, 3 * hidden), stacked(1, 3 * hidden)
        for name, param in self.named_parameters():
            if name.startswith("w_"):
                for matrix in param.data:
                    nn.init.orthogonal_(matrix.T)
            elif name in ("ln.0", "ln.2"):
                nn.init.ones_(param)
            else:
                nn.init.zeros_(param)

    def _norm_silu(self, x: Tensor, i: int) -> Tensor:
        x = F.layer_norm(x, (self.hidden,))
        return F.silu(torch.addcmul(self.ln[i + 1].unsqueeze(1), x, self.ln[i].unsqueeze(1)))

    def forward(self, features: Tensor, cond: Tensor) -> Tensor:
        """features [N, F], cond [N, L, K, C] -> hidden states [S, N, L, K, H]."""
        n, levels, k, c = cond.shape
        s, h = self.w_feat.shape[0], self.hidden
        feat = torch.baddbmm(self.b_in, features.expand(s, -1, -1), self.w_feat)  # [S, N, H]
        x = torch.matmul(cond.reshape(1, -1, c), self.w_cond).view(s, n, levels * k, h) + feat.unsqueeze(2)
        x = self._norm_silu(x, 0).view(s, -1, h)
        x = self._norm_silu(torch.baddbmm(self.b_mid, x, self.w_mid).unsqueeze(1), 2).squeeze(1)  # [S, N*L*K, H]
        if self.gru:
            gates_in = torch.baddbmm(self.b_ih, x, self.w_ih).view(s, n * levels, k, 3 * h)
            state, outputs = None, []
            for gi in gates_in.unbind(2):
                # r and z share one add and one sigmoid; n = tanh(x_n + r * (W_hn h + b_hn))
                gh = self.b_hh if state is None else torch.baddbmm(self.b_hh, state, self.w_hh)
                reset, update = torch.sigmoid(gi[..., : 2 * h] + gh[..., : 2 * h]).chunk(2, -1)
                candidate = torch.tanh(torch.addcmul(gi[..., 2 * h :], reset, gh[..., 2 * h :]))
                # h' = (1 - z) * n + z * h, written without lerp (exports as three plain ops)
                state = (
                    candidate - update * candidate
                    if state is None
                    else torch.addcmul(candidate, update, state - candidate)
                )
                outputs.append(state)
            x = torch.stack(outputs, 2)
        return x.reshape(s, n, levels, k, h)


class C2FCritic(nn.Module):
    """Coarse-to-fine critic over a K x D action sequence (K = 1: CQN; K > 1 with GRU: CQN-AS).

    Each (level, step) is conditioned on the previous level's interval centres for that step,
    a one-hot step id and a one-hot level id; every (level, step, dim) gets B bins x O outputs,
    combined as dueling ``V + A - mean_bins(A)`` in logit space.
    """

    step_onehot: Tensor  # buffers, registered in __init__
    level_onehot: Tensor

    def __init__(
        self,
        feature_dim: int,
        action_dim: int,
        levels: int,
        bins: int,
        outputs: int,
        seq_len: int,
        hidden: int,
        gru: bool,
    ) -> None:
        super().__init__()
        self.action_dim, self.levels, self.bins, self.outputs, self.seq_len = action_dim, levels, bins, outputs, seq_len
        cond_dim = action_dim + seq_len + levels
        self.streams = DuelingStreams(2, feature_dim, cond_dim, hidden, gru)
        self.value_head = nn.Linear(hidden, action_dim * outputs)
        self.advantage_head = nn.Linear(hidden, action_dim * bins * outputs)
        for head in (self.value_head, self.advantage_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.register_buffer("step_onehot", torch.eye(seq_len))
        self.register_buffer("level_onehot", torch.eye(levels))

    def forward(self, features: Tensor, prev_centre: Tensor, levels: Tensor) -> Tensor:
        """features [N, F], prev_centre [N, L', K, D], levels long [L'] -> logits [N, L', K, D, B, O]."""
        base, adv = self.dueling(features, prev_centre, levels)
        return base + adv

    def dueling(self, features: Tensor, prev_centre: Tensor, levels: Tensor) -> tuple[Tensor, Tensor]:
        """The logits as two terms, base [N, L', K, D, 1, O] = V - mean_bins(A) and A [..., B, O]."""
        n, nl, k, d = prev_centre.shape
        cond = torch.cat(
            [
                prev_centre,
                self.step_onehot[None, None].expand(n, nl, k, k),
                self.level_onehot[levels][None, :, None].expand(n, nl, k, self.levels),
            ],
            dim=-1,
        )
        hidden = self.streams(features, cond)
        value = self.value_head(hidden[0]).view(n, nl, k, d, 1, self.outputs)
        adv = self.advantage_head(hidden[1]).view(n, nl, k, d, self.bins, self.outputs)
        return value - adv.mean(dim=-2, keepdim=True), adv
