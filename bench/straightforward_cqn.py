"""A straightforward implementation of the same CQN / CQN-AS update, the baseline for
`bench/train_speed.py`: the critic written the obvious way (one nn.Module per stream, the
observation features concatenated into every (level, step) input, torch's nn.GRU, one critic call
per level) and the camera path too (NCHW images, replicate-pad then crop, NCHW convolutions). It
shares robo_q's codec, value head, parameters' shapes and loss functions (the demo loss written
for autograd), so only how the update is computed differs; benchmark code only, never used by training.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from policies.features import FeatureSchema
from robo_q.agents.codec import C2FCodec
from robo_q.agents.cqn import CQNAgent, CQNConfig, gather_bins
from robo_q.agents.heads import make_head
from robo_q.agents.networks import ObservationEncoder


class PlainEncoder(ObservationEncoder):
    """robo_q's encoder with the camera path written the obvious way."""

    def camera_features(self, name: str, images: Tensor, augment: bool) -> Tensor:
        x = images.permute(0, 3, 1, 2).contiguous().float()
        if augment:
            n, _, h, w = x.shape
            pad = self.aug.pad
            padded = F.pad(x, (pad,) * 4, mode="replicate")
            shift = torch.randint(0, 2 * pad + 1, (n, 2)).tolist()
            x = torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(shift)])
        return self.cnns[name].net(x / 255.0 - 0.5)


class PlainStream(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, gru: bool) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.LayerNorm(hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.SiLU(),
        )
        self.gru = nn.GRU(hidden, hidden, batch_first=True) if gru else None
        self.head = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.mlp(x)
        if self.gru is not None:
            h, _ = self.gru(h)
        return self.head(h)


class PlainCritic(nn.Module):
    def __init__(self, feature_dim: int, action_dim: int, cfg: CQNConfig, outputs: int) -> None:
        super().__init__()
        self.d, self.b, self.o, self.k, self.levels = action_dim, cfg.bins, outputs, cfg.seq_len, cfg.levels
        in_dim = feature_dim + action_dim + cfg.seq_len + cfg.levels
        self.value = PlainStream(in_dim, cfg.hidden, action_dim * outputs, cfg.gru)
        self.advantage = PlainStream(in_dim, cfg.hidden, action_dim * cfg.bins * outputs, cfg.gru)

    def forward_level(self, features: Tensor, prev_centre: Tensor, level: int) -> Tensor:
        """features [N, F], prev_centre [N, K, D] -> logits [N, K, D, B, O] for one level."""
        n = features.shape[0]
        step_id = torch.eye(self.k, device=features.device).expand(n, self.k, self.k)
        level_id = F.one_hot(torch.full((n, self.k), level, device=features.device), self.levels).float()
        x = torch.cat([features[:, None].expand(n, self.k, features.shape[1]), prev_centre, step_id, level_id], -1)
        value = self.value(x).view(n, self.k, self.d, 1, self.o)
        adv = self.advantage(x).view(n, self.k, self.d, self.b, self.o)
        return value + adv - adv.mean(-2, keepdim=True)


class StraightforwardAgent(CQNAgent):
    """Same losses and codec as CQNAgent; the critic is PlainCritic, evaluated level by level."""

    def __init__(self, features: FeatureSchema, cfg: CQNConfig, device: str | torch.device = "cpu") -> None:
        self.cfg, self.action_dim, self.device = cfg, features.action.dim, torch.device(device)
        action_dim = self.action_dim
        self.codec = C2FCodec(cfg.levels, cfg.bins)
        self.head = make_head("c51", atoms=cfg.atoms, v_min=cfg.v_min, v_max=cfg.v_max).to(self.device)
        self.encoder = PlainEncoder(features, cfg.frame_stack, cfg.proj_dim).to(self.device)
        self.critic = PlainCritic(self.encoder.out_dim, action_dim, cfg, cfg.atoms).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(
            list(self.encoder.parameters()) + list(self.critic.parameters()), lr=cfg.lr, weight_decay=cfg.weight_decay
        )

    def _all_levels(self, critic: PlainCritic, features: Tensor, prev: Tensor) -> Tensor:
        return torch.stack(
            [critic.forward_level(features, prev[:, level], level) for level in range(self.cfg.levels)], 1
        )

    def greedy(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        level_q: list[Tensor] = []

        def q_fn(level: int, prev_centre: Tensor) -> Tensor:
            level_q.append(self.head.q(self.critic.forward_level(features, prev_centre, level)))
            return level_q[-1]

        action, idx = self.codec.greedy(q_fn, (features.shape[0], self.cfg.seq_len), self.action_dim, self.device)
        return action, idx, level_q[-1]

    def _demo_loss(self, logits: Tensor, idx: Tensor) -> Tensor:
        """Margin plus stochastic-dominance loss over the other bins, written for autograd."""
        other = torch.ones(logits.shape[:-1], dtype=torch.bool, device=logits.device)
        other.scatter_(-1, idx[..., None], False)
        q = self.head.q(logits)
        margin = ((self.cfg.margin - (q.gather(-1, idx[..., None]) - q)).clamp(min=0) * other).sum(-1) / (
            self.cfg.bins - 1
        )
        cdf = self.head.cdf(logits)
        dominance = ((gather_bins(cdf, idx)[..., None, :] - cdf).clamp(min=0).sum(-1) * other).sum(-1) / (
            self.cfg.bins - 1
        )
        return margin.mean() + dominance.mean()

    def update(self, batch: dict[str, Tensor], demo_rows: int) -> dict[str, float]:
        obs = {k[4:]: v for k, v in batch.items() if k.startswith("obs.")}
        next_obs = {k[9:]: v for k, v in batch.items() if k.startswith("next_obs.")}
        features = self.encoder(obs, augment=True)
        with torch.no_grad():
            next_features = self.encoder(next_obs, augment=True)
            _, next_idx, _ = self.greedy(next_features)
            next_prev = self.codec.encode(self.codec.decode(next_idx))[1].transpose(1, 2)
            next_logits = self._all_levels(self.critic_target, next_features, next_prev)
            target = self.head.target(
                batch["reward"], batch["discount"], gather_bins(next_logits, next_idx.transpose(1, 2))
            )
        idx, prev = (t.transpose(1, 2) for t in self.codec.encode(batch["action"]))
        logits = self._all_levels(self.critic, features, prev)
        critic_loss = self.head.loss(gather_bins(logits, idx), target).mean()
        loss = self.cfg.critic_lambda * critic_loss + self.cfg.demo_lambda * self._demo_loss(
            logits[-demo_rows:], idx[-demo_rows:]
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.critic_target.parameters(), strict=True):
                tp.lerp_(p, self.cfg.tau)
        return {"critic_loss": critic_loss.item()}
