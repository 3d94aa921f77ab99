"""The authors' CQN and CQN-AS updates on this machine: the reference for bench/train_speed.py.

    git clone https://github.com/younggyoseo/CQN-AS /tmp/CQN-AS && pip install tensordict
    python bench/official_speed.py --repo /tmp/CQN-AS [--seconds 20] [--out bench/results/official_speed.json]

Times the official RLBench agents (``rlbench_src/cqn.py``, ``rlbench_src/cqn_as.py``) with the values
of ``cfgs/config_cqn{_as}_rlbench.yaml``: hidden 512, 3 levels x 5 bins x 51 atoms, dueling, CQN-AS
with K = 4 and a GRU, batch 256 + demo batch 256 (concatenated, demo flag set on the demo half),
C51 plus margin and stochastic-dominance demo losses. This is the setting of issue #3 (39-D state,
4-D action, paper size), which only these agents have: the repository's state-based agents
(``humanoid_src``) have no dueling, atoms or demo losses. The RLBench agents take pixels and state,
so for a state observation the CNN encoder is replaced by one that passes the state through (it
then also feeds the critic's image stream, a 39 -> 64 Linear) and the random shift is the
identity; ``update()``, ``update_target_critic()`` and ``act()`` are the official code, called as
its training loop calls them. Runs with PyTorch's and glibc's defaults, as the official code does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

STATE_DIM, ACTION_DIM, SEQ_LEN = 39, 4, 4
CONFIG = {  # cfgs/config_cqn{_as}_rlbench.yaml
    "lr": 5e-5,
    "weight_decay": 0.1,
    "feature_dim": 64,
    "hidden_dim": 512,
    "levels": 3,
    "bins": 5,
    "atoms": 51,
    "v_min": -2.0,
    "v_max": 2.0,
    "critic_lambda": 0.1,
    "bc_lambda": 1.0,
    "bc_margin": 0.01,
    "critic_target_tau": 0.02,
    "critic_target_interval": 1,
    "update_every_steps": 1,
    "num_expl_steps": 0,
    "stddev_schedule": 0.01,
}
CQN_AS_CONFIG = {"gru_layers": 1, "rgb_encoder_layers": 0, "use_parallel_impl": False}


class StateEncoder(nn.Module):
    """Stands in for the official multi-view CNN: one 'view' holding the state, passed through."""

    def __init__(self, obs_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.repr_dim = STATE_DIM
        self.unused = nn.Parameter(torch.zeros(1))  # the official encoder optimiser needs a parameter

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return views[:, 0]


def make_agent(name: str):
    """The official agent ``name`` (cqn | cqn_as) from the checkout on sys.path, set up for state input."""
    module = __import__(f"rlbench_src.{name}", fromlist=["_"])
    module.MultiViewCNNEncoder = StateEncoder
    settings = {**CONFIG, **(CQN_AS_CONFIG if name == "cqn_as" else {})}
    action_shape = (SEQ_LEN, ACTION_DIM) if name == "cqn_as" else (ACTION_DIM,)
    agent_cls = module.CQNASAgent if name == "cqn_as" else module.CQNAgent
    with contextlib.redirect_stdout(io.StringIO()):  # the agents print their networks
        agent = agent_cls(
            rgb_obs_shape=None, low_dim_obs_shape=(STATE_DIM,), action_shape=action_shape, device="cpu", **settings
        )
    agent.aug = nn.Identity()
    return agent


def make_batch(name: str, replay_rows: int, demo_rows: int) -> dict[str, torch.Tensor]:
    """Replay rows then demo rows, as the official DemoMergedIterator concatenates them; actions
    flattened to [N, K * D] as its action-sequence replay loader yields them."""
    g = torch.Generator().manual_seed(0)
    n = replay_rows + demo_rows
    action_dim = ACTION_DIM * (SEQ_LEN if name == "cqn_as" else 1)
    obs, next_obs = torch.randn(n, STATE_DIM, generator=g), torch.randn(n, STATE_DIM, generator=g)
    return {
        "rgb_obs": obs[:, None],
        "low_dim_obs": obs,
        "next_rgb_obs": next_obs[:, None],
        "next_low_dim_obs": next_obs,
        "action": torch.rand(n, action_dim, generator=g) * 2 - 1,
        "reward": torch.rand(n, 1, generator=g),
        "discount": torch.full((n, 1), 0.99),
        "demos": torch.cat([torch.zeros(replay_rows, 1), torch.ones(demo_rows, 1)]),
    }


def bench_agent(name: str, batch_size: int, seconds: float) -> dict:
    """Median seconds per official training step (update + target update), FLOPs, act latency."""
    torch.manual_seed(1)
    agent = make_agent(name)
    batch = make_batch(name, batch_size, batch_size)
    step = 0

    def train_step() -> None:  # as the official training loop: update, then the target critic
        nonlocal step
        step += 1
        agent.update(batch)
        agent.update_target_critic(step)

    for _ in range(3):
        train_step()
    with FlopCounterMode(display=False) as counter:
        agent.update(batch)
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 8:
        t = time.perf_counter()
        train_step()
        times.append(time.perf_counter() - t)
    obs = batch["low_dim_obs"][0].numpy()
    act_times = []
    for i in range(55):
        t = time.perf_counter()
        with torch.no_grad():
            agent.act(obs[None], obs, step, eval_mode=True)
        if i >= 5:
            act_times.append(time.perf_counter() - t)
    update_s = float(np.median(times))
    return {
        "agent": name,
        "rows": 2 * batch_size,
        "seconds_per_update": update_s,
        "min_seconds_per_update": min(times),
        "updates_timed": len(times),
        "gflop_per_update": counter.get_total_flops() / 1e9,
        "gflops_achieved": counter.get_total_flops() / 1e9 / update_s,
        "act_ms_p50": float(np.median(act_times) * 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True, help="a checkout of github.com/younggyoseo/CQN-AS")
    parser.add_argument("--batch", type=int, default=256, help="replay rows per update, plus as many demo rows")
    parser.add_argument("--seconds", type=float, default=20.0, help="timing budget per agent")
    parser.add_argument("--out", type=Path, default=Path("bench/results/official_speed.json"))
    args = parser.parse_args()
    if not (args.repo / "rlbench_src" / "cqn_as.py").is_file():
        sys.exit(f"{args.repo} is not a checkout of younggyoseo/CQN-AS (no rlbench_src/cqn_as.py)")
    sys.path.insert(0, str(args.repo))  # its modules import `utils` and `cqn_utils` from the top level
    print(f"{'agent':<7} {'rows':>5} {'s/update':>9} {'GFLOP/upd':>10} {'GFLOP/s':>8} {'act ms':>7}")
    results = []
    for name in ("cqn", "cqn_as"):
        r = bench_agent(name, args.batch, args.seconds)
        results.append(r)
        print(
            f"{name:<7} {r['rows']:>5} {r['seconds_per_update']:9.3f} {r['gflop_per_update']:10.1f} {r['gflops_achieved']:8.1f} {r['act_ms_p50']:7.2f}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__}
    args.out.write_text(
        json.dumps({"machine": machine, "state_dim": STATE_DIM, "action_dim": ACTION_DIM, "results": results}, indent=2)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
