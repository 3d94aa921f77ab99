"""Behaviour-cloning baseline on the same encoder: an MLP regressing the demo action sequence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from policies.features import FeatureSchema
from robo_q.agents.networks import ObservationEncoder, orthogonal_init


@dataclass
class BCConfig:
    seq_len: int = 1
    hidden: int = 512
    proj_dim: int = 64
    frame_stack: int = 1  # frames per image input, stacked on channels
    lr: float = 1e-4
    weight_decay: float = 0.1


class BCAgent:
    """Trained on demonstration rows only; acts deterministically."""

    def __init__(self, features: FeatureSchema, cfg: BCConfig, device: str | torch.device = "cpu") -> None:
        """An agent reading ``features``' observations and acting in its action space."""
        self.cfg, self.device = cfg, torch.device(device)
        self.action_dim = action_dim = features.action.dim
        self.encoder = ObservationEncoder(features, cfg.frame_stack, cfg.proj_dim).to(self.device)
        self.actor = nn.Sequential(
            nn.Linear(self.encoder.out_dim, cfg.hidden),
            nn.LayerNorm(cfg.hidden),
            nn.SiLU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.LayerNorm(cfg.hidden),
            nn.SiLU(),
            nn.Linear(cfg.hidden, cfg.seq_len * action_dim),
            nn.Tanh(),
        ).to(self.device)
        self.actor.apply(orthogonal_init)
        params = list(self.encoder.parameters()) + list(self.actor.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _forward(self, obs: dict[str, Tensor], augment: bool) -> Tensor:
        return self.actor(self.encoder(obs, augment)).view(-1, self.cfg.seq_len, self.action_dim)

    def policy(self, obs: dict[str, Tensor]) -> tuple[Tensor, None]:
        """The deployable policy: observation batch -> (action sequence [N, K, D], no Q)."""
        return self._forward(obs, augment=False), None

    @torch.no_grad()
    def act_batch(self, obs: dict[str, np.ndarray], explore: bool = False) -> np.ndarray:
        """Observations [N, ...] -> action sequences [N, K, D] (BC has no exploration)."""
        return self.policy(self.encoder.batch(obs, self.device))[0].cpu().numpy()

    def act(self, obs: dict[str, np.ndarray], explore: bool = False) -> np.ndarray:
        """One observation (no batch dim) -> action sequence [K, D]."""
        return self.act_batch({k: v[None] for k, v in obs.items()}, explore)[0]

    def update(self, batch: dict[str, Tensor], demo_rows: int) -> dict[str, float]:
        """One regression step on the last ``demo_rows`` rows of the batch (the demonstrations)."""
        obs = {k[4:]: v[-demo_rows:] for k, v in batch.items() if k.startswith("obs.")}
        loss = (self._forward(obs, augment=True) - batch["action"][-demo_rows:]).pow(2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"bc_loss": loss.item()}

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "actor": self.actor}
