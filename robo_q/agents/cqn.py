"""Coarse-to-fine Q-learning from demonstrations: CQN (K = 1) and CQN-AS (K-step action sequences).

One agent serves both (Seo et al. 2024, arXiv 2407.07787; Seo & Abbeel 2024, arXiv 2411.12155):
the critic scores a K x D action (K = 1 for CQN) level by level; CQN-AS adds a GRU across the
K steps. Targets are double-Q style (online critic picks a' at s' level by level, the target
critic scores it), terminal transitions never bootstrap, and demo samples add a margin loss and
a first-order stochastic-dominance loss.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from policies.features import FeatureSchema
from robo_q.agents.codec import C2FCodec
from robo_q.agents.heads import make_head
from robo_q.agents.networks import C2FCritic, ObservationEncoder


@dataclass
class CQNConfig:
    seq_len: int = 1  # K: 1 = CQN, > 1 = CQN-AS
    gru: bool = False
    levels: int = 3
    bins: int = 5
    head: str = "c51"  # c51 | hl_gauss | mse
    atoms: int = 51
    v_min: float = -2.0
    v_max: float = 2.0
    hidden: int = 512
    proj_dim: int = 64
    frame_stack: int = 1  # frames per image input, stacked on channels
    lr: float = 5e-5
    weight_decay: float = 0.1
    tau: float = 0.02
    critic_lambda: float = 0.1
    demo_lambda: float = 1.0
    margin: float = 0.01
    explore_std: float = 0.01
    compile: bool = False  # torch.compile the whole loss, forward and backward (a one-off compile per batch shape)
    precision: str = "fp32"  # fp32 | bf16: the update's matmuls in bfloat16 (autocast; fp32 weights and reductions)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16)."""
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def gather_bins(x: Tensor, idx: Tensor) -> Tensor:
    """x [..., B, O] at bins idx [...] -> [..., O]."""
    index = idx[..., None, None].expand(*idx.shape, 1, x.shape[-1])
    return x.gather(-2, index).squeeze(-2)


class CQNAgent:
    """Encoder + coarse-to-fine critic + target critic + optimiser, with act() and update()."""

    def __init__(
        self,
        features: FeatureSchema,
        cfg: CQNConfig,
        device: str | torch.device = "cpu",
    ) -> None:
        """An agent reading ``features``' observations and acting in its action space."""
        self.cfg, self.device = cfg, torch.device(device)
        self.action_dim = action_dim = features.action.dim
        self.codec = C2FCodec(cfg.levels, cfg.bins)
        head_kwargs = {}
        if cfg.head in ("c51", "hl_gauss"):  # categorical heads: a support on [v_min, v_max]
            head_kwargs = {"atoms" if cfg.head == "c51" else "bins": cfg.atoms, "v_min": cfg.v_min, "v_max": cfg.v_max}
        self.head = make_head(cfg.head, **head_kwargs).to(self.device)
        self.encoder = ObservationEncoder(features, cfg.frame_stack, cfg.proj_dim).to(self.device)
        self.critic = C2FCritic(
            self.encoder.out_dim, action_dim, cfg.levels, cfg.bins, self.head.outputs, cfg.seq_len, cfg.hidden, cfg.gru
        ).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.online_params: list[Tensor] = list(self.critic.parameters())
        self.target_params: list[Tensor] = list(self.critic_target.parameters())
        params = list(self.encoder.parameters()) + self.online_params
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        if cfg.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {cfg.precision!r}")
        if cfg.precision == "bf16" and self.device.type == "cpu" and not cpu_has_bf16():
            warnings.warn(
                "agent.precision=bf16 on a CPU without AMX or AVX512-BF16: its bf16 matmuls are emulated, several "
                "times slower than fp32 (use agent.precision=fp32 here)",
                stacklevel=2,
            )
        self.autocast = torch.autocast(self.device.type, torch.bfloat16, enabled=cfg.precision == "bf16")
        self.loss_fn = torch.compile(self.losses) if cfg.compile else self.losses
        self.all_levels = torch.arange(cfg.levels, device=self.device)

    # -- acting -----------------------------------------------------------------------------------
    def greedy(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Greedy K x D action per feature row: (action [N, K, D], idx [N, K, L, D], Q of every
        final-level bin [N, K, D, B])."""
        n, k = features.shape[0], self.cfg.seq_len
        level_q: list[Tensor] = []

        def q_fn(level: int, prev_centre: Tensor) -> Tensor:
            logits = self.critic(features, prev_centre[:, None], self.all_levels[level : level + 1])[:, 0]
            level_q.append(self.head.q(logits))
            return level_q[-1]

        action, idx = self.codec.greedy(q_fn, (n, k), self.action_dim, self.device)
        return action, idx, level_q[-1]

    def policy(self, obs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The deployable greedy policy: observation batch -> (action sequence [N, K, D] in [-1, 1],
        Q of the chosen final-level bin per step and dim [N, K, D])."""
        action, idx, q = self.greedy(self.encoder(obs))
        return action, q.gather(-1, idx[:, :, -1, :, None]).squeeze(-1)

    @torch.no_grad()
    def act_batch(self, obs: dict[str, np.ndarray], explore: bool = False) -> np.ndarray:
        """Observations [N, ...] -> action sequences [N, K, D] in [-1, 1]."""
        action = self.policy(self.encoder.batch(obs, self.device))[0]
        if explore:
            action = (action + self.cfg.explore_std * torch.randn_like(action)).clamp(-1, 1)
        return action.cpu().numpy()

    def act(self, obs: dict[str, np.ndarray], explore: bool = False) -> np.ndarray:
        """One observation (no batch dim) -> action sequence [K, D] in [-1, 1]."""
        return self.act_batch({k: v[None] for k, v in obs.items()}, explore)[0]

    @torch.no_grad()
    def q_of(self, obs: dict[str, Tensor], action: Tensor) -> Tensor:
        """The critic's Q of given action sequences [N, K, D] in [-1, 1]: the finest level's Q of the
        bins they fall in, averaged over the K steps and D dimensions -> [N]."""
        idx, prev = (t.transpose(1, 2) for t in self.codec.encode(action.clamp(-1, 1)))  # [N, L, K, D]
        base, adv = self.critic.dueling(self.encoder(obs), prev, self.all_levels)
        return self.head.q(base.squeeze(-2) + gather_bins(adv, idx))[:, -1].mean(dim=(1, 2))

    # -- learning ---------------------------------------------------------------------------------
    def losses(self, batch: dict[str, Tensor], demo_rows: int) -> tuple[Tensor, Tensor]:
        """Total loss of a batch whose last ``demo_rows`` rows are demonstrations, and the detached
        metrics [critic_loss, demo_loss, q]. One graph from batch to loss, so ``compile`` fuses it."""
        cfg = self.cfg
        obs = {k[4:]: v for k, v in batch.items() if k.startswith("obs.")}
        next_obs = {k[9:]: v for k, v in batch.items() if k.startswith("next_obs.")}
        features = self.encoder(obs, augment=True)
        with torch.no_grad():
            next_features = self.encoder(next_obs, augment=True)
            _, next_idx, _ = self.greedy(next_features)  # [N, K, L, D]
            next_prev = self.codec.encode(self.codec.decode(next_idx))[1]
            next_logits = self.critic_target(next_features, next_prev.transpose(1, 2), self.all_levels)
            target = self.head.target(
                batch["reward"], batch["discount"], gather_bins(next_logits, next_idx.transpose(1, 2))
            )

        idx, prev = (t.transpose(1, 2) for t in self.codec.encode(batch["action"]))  # [N, L, K, D]
        base, adv = self.critic.dueling(features, prev, self.all_levels)  # logits = base + adv [N, L, K, D, B, O]
        chosen = base.squeeze(-2) + gather_bins(adv, idx)
        critic_loss = self.head.loss(chosen, target).mean()
        loss = cfg.critic_lambda * critic_loss
        demo_loss = torch.zeros((), device=loss.device)
        if demo_rows:
            demo_loss = self.head.demo_loss(base[-demo_rows:] + adv[-demo_rows:], idx[-demo_rows:], cfg.margin)
            loss = loss + cfg.demo_lambda * demo_loss
        return loss, torch.stack([critic_loss, demo_loss, self.head.q(chosen).mean()]).detach()

    def update(self, batch: dict[str, Tensor], demo_rows: int) -> dict[str, float]:
        """One gradient step on a batch (obs.*, next_obs.*, action [N,K,D], reward, discount) whose
        last ``demo_rows`` rows are demonstrations; returns the step's metrics."""
        with self.autocast:
            loss, metrics = self.loss_fn(batch, demo_rows)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.target_params, self.online_params, self.cfg.tau)
        critic_loss, demo_loss, q = metrics.tolist()
        return {"critic_loss": critic_loss, "q": q} | ({"demo_loss": demo_loss} if demo_rows else {})

    # -- persistence ------------------------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"encoder": self.encoder, "critic": self.critic, "critic_target": self.critic_target}
