"""The authors' CQN and CQN-AS updates, built in-process so bench/train_speed.py can time them side by
side with robo_q's (``train_speed.py --official <checkout>``), or on their own:

    git clone https://github.com/younggyoseo/CQN-AS /tmp/CQN-AS && pip install tensordict
    python bench/official_speed.py --repo /tmp/CQN-AS [--obs state,pixels] [--seconds 20] [--out bench/results/official_speed.json]

``tensordict`` is the official code's dependency, not robo_q's: install it next to robo_q to run this.

Times the official RLBench agents (``rlbench_src/cqn.py``, ``rlbench_src/cqn_as.py``) with the values
of ``cfgs/config_cqn{_as}_rlbench.yaml``: hidden 512, 3 levels x 5 bins x 51 atoms, dueling, CQN-AS
with K = 4 and a GRU, batch 256 + demo batch 256 (concatenated, demo flag set on the demo half),
C51 plus margin and stochastic-dominance demo losses. The repository's state-based agents
(``humanoid_src``) have no dueling, atoms or demo losses, so only these agents have the setting.

- ``state``: a 39-D state (Meta-World). The RLBench agents take pixels and state, so the CNN encoder
  is replaced by one that passes the state through (it then also feeds the critic's image stream, a
  39 -> 64 Linear) and the random shift is the identity.
- ``pixels``: one 84x84 camera with 8 stacked frames (24 channels) through the official encoder
  (their 4-layer CNN, padding 1, channel LayerNorm) and their random shift (replicate pad +
  grid_sample), plus the 64-D low-dim input of their RLBench setting (7 joint positions + gripper,
  8 frames); batches are float, as their ``to_torch_pixel_tensor_dict`` hands them over.

``update()``, ``update_target_critic()`` and ``act()`` are the official code, called as its
training loop calls them. Standalone this script runs with PyTorch's and glibc's defaults, as the
official code does; inside train_speed.py the agents share that process's allocator settings.
This script's JSON is a record of its own run: train_speed.py never reads it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

STATE_DIM, ACTION_DIM, SEQ_LEN = 39, 4, 4
FRAMES, IMAGE_SIZE, RLBENCH_LOW_DIM = 8, 84, 8  # frame_stack; their CNN is hard-coded for 84x84; joints + gripper
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
AGENT_FILES = ("rlbench_src/cqn.py", "rlbench_src/cqn_as.py")


class StateEncoder(nn.Module):
    """Stands in for the official multi-view CNN: one 'view' holding the state, passed through."""

    def __init__(self, obs_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.repr_dim = STATE_DIM
        self.unused = nn.Parameter(torch.zeros(1))  # the official encoder optimiser needs a parameter

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return views[:, 0]


def load_official(repo: Path | str) -> dict[str, str | None]:
    """Put the checkout ``repo`` on sys.path (its modules import ``utils`` and ``cqn_utils`` from
    the top level), check that its agents import from there; returns what identifies the code."""
    repo = Path(repo).resolve()
    if not all((repo / f).is_file() for f in AGENT_FILES):
        raise SystemExit(f"{repo} is not a checkout of younggyoseo/CQN-AS (no {' / '.join(AGENT_FILES)})")
    try:
        tensordict = importlib.import_module("tensordict")
    except ImportError:
        raise SystemExit(
            "the official code needs tensordict: pip install tensordict (not a robo_q dependency)"
        ) from None
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    for name in ("cqn", "cqn_as"):
        module = importlib.import_module(f"rlbench_src.{name}")
        if not Path(module.__file__).resolve().is_relative_to(repo):
            raise SystemExit(f"rlbench_src.{name} was imported from {module.__file__}, not from {repo}")
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    sha = hashlib.sha256(b"".join((repo / f).read_bytes() for f in AGENT_FILES)).hexdigest()
    return {"repo": str(repo), "commit": commit, "agent_files_sha256": sha, "tensordict": tensordict.__version__}


class OfficialUpdate:
    """One official agent with its batch: ``update()`` is one step of their training loop (update,
    then the target critic), ``act()`` one eval-mode action, ``count_flops()`` one update's FLOPs."""

    impl = "official"

    def __init__(self, name: str, obs: str, hidden: int, batch_size: int, device: str | torch.device) -> None:
        if name not in ("cqn", "cqn_as") or obs not in ("state", "pixels"):
            raise ValueError(f"no official setting for {name!r} / {obs!r}")
        self.name, self.obs, self.device = name, obs, torch.device(device)
        self.agent = make_agent(name, obs, hidden, self.device)
        self.batch = make_batch(name, obs, batch_size, batch_size, self.device)
        self.step = 0
        low_dim = self.batch["low_dim_obs"][0].cpu().numpy()
        if obs == "state":
            self.act_obs = (low_dim[None], low_dim)
        else:  # as the environment hands them over: uint8 frames [V, C, H, W] and the stacked low-dim vector
            self.act_obs = (self.batch["rgb_obs"][0].to(torch.uint8).cpu().numpy(), low_dim)

    def update(self) -> None:
        self.step += 1
        self.agent.update(self.batch)
        self.agent.update_target_critic(self.step)

    def act(self) -> np.ndarray:
        with torch.no_grad():  # as their eval loop calls it
            return self.agent.act(*self.act_obs, self.step, eval_mode=True)

    def count_flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self.agent.update(self.batch)
        return counter.get_total_flops()


def build_official(
    repo: Path | str,
    name: str,
    obs: str = "state",
    hidden: int = 512,
    batch: int = 256,
    device: str | torch.device = "cpu",
) -> OfficialUpdate:
    """The official agent ``name`` (cqn | cqn_as) from the checkout ``repo`` for ``obs`` (state |
    pixels), with ``batch`` replay rows plus as many demo rows; the configs' hidden 512 by default."""
    load_official(repo)
    torch.manual_seed(1)
    return OfficialUpdate(name, obs, hidden, batch, device)


def make_agent(name: str, obs: str = "state", hidden: int = 512, device: torch.device | str = "cpu"):
    """The official agent ``name`` from the checkout on sys.path, set up for ``obs``."""
    module = importlib.import_module(f"rlbench_src.{name}")
    settings = {**CONFIG, "hidden_dim": hidden, **(CQN_AS_CONFIG if name == "cqn_as" else {})}
    action_shape = (SEQ_LEN, ACTION_DIM) if name == "cqn_as" else (ACTION_DIM,)
    agent_cls = module.CQNASAgent if name == "cqn_as" else module.CQNAgent
    if obs == "state":
        rgb_shape, low_dim_shape = None, (STATE_DIM,)
    else:
        rgb_shape, low_dim_shape = (1, 3 * FRAMES, IMAGE_SIZE, IMAGE_SIZE), (RLBENCH_LOW_DIM * FRAMES,)
    real_encoder = module.MultiViewCNNEncoder
    if obs == "state":
        module.MultiViewCNNEncoder = StateEncoder
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the agents print their networks
            agent = agent_cls(
                rgb_obs_shape=rgb_shape,
                low_dim_obs_shape=low_dim_shape,
                action_shape=action_shape,
                device=str(device),
                **settings,
            )
    finally:
        module.MultiViewCNNEncoder = real_encoder
    if obs == "state":
        agent.aug = nn.Identity()
    return agent


def make_batch(
    name: str, obs: str, replay_rows: int, demo_rows: int, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Replay rows then demo rows, as the official DemoMergedIterator concatenates them; actions
    flattened to [N, K * D] as its action-sequence replay loader yields them; all float, as their
    ``to_torch_pixel_tensor_dict`` converts them."""
    g = torch.Generator().manual_seed(0)
    n = replay_rows + demo_rows
    action_dim = ACTION_DIM * (SEQ_LEN if name == "cqn_as" else 1)
    if obs == "state":
        o, next_o = torch.randn(n, STATE_DIM, generator=g), torch.randn(n, STATE_DIM, generator=g)
        views = {"rgb_obs": o[:, None], "low_dim_obs": o, "next_rgb_obs": next_o[:, None], "next_low_dim_obs": next_o}
    else:
        image = (n, 1, 3 * FRAMES, IMAGE_SIZE, IMAGE_SIZE)
        views = {
            "rgb_obs": torch.randint(0, 256, image, generator=g, dtype=torch.uint8).float(),
            "low_dim_obs": torch.randn(n, RLBENCH_LOW_DIM * FRAMES, generator=g),
            "next_rgb_obs": torch.randint(0, 256, image, generator=g, dtype=torch.uint8).float(),
            "next_low_dim_obs": torch.randn(n, RLBENCH_LOW_DIM * FRAMES, generator=g),
        }
    batch = {
        **views,
        "action": torch.rand(n, action_dim, generator=g) * 2 - 1,
        "reward": torch.rand(n, 1, generator=g),
        "discount": torch.full((n, 1), 0.99),
        "demos": torch.cat([torch.zeros(replay_rows, 1), torch.ones(demo_rows, 1)]),
    }
    return {k: v.to(device) for k, v in batch.items()}


def bench_agent(repo: Path, name: str, obs: str, batch_size: int, seconds: float) -> dict:
    """Median seconds per official training step (update + target update), FLOPs, act latency."""
    runner = build_official(repo, name, obs, batch=batch_size)
    for _ in range(3):
        runner.update()
    flops = runner.count_flops()
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 8:
        t = time.perf_counter()
        runner.update()
        times.append(time.perf_counter() - t)
    act_times = []
    for i in range(55):
        t = time.perf_counter()
        runner.act()
        if i >= 5:
            act_times.append(time.perf_counter() - t)
    update_s = float(np.median(times))
    return {
        "agent": name,
        "obs": obs,
        "rows": 2 * batch_size,
        "seconds_per_update": update_s,
        "min_seconds_per_update": min(times),
        "updates_timed": len(times),
        "gflop_per_update": flops / 1e9,
        "gflops_achieved": flops / 1e9 / update_s,
        "act_ms_p50": float(np.median(act_times) * 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True, help="a checkout of github.com/younggyoseo/CQN-AS")
    parser.add_argument("--obs", default="state", help="comma-separated: state, pixels")
    parser.add_argument("--batch", type=int, default=256, help="replay rows per update, plus as many demo rows")
    parser.add_argument("--seconds", type=float, default=20.0, help="timing budget per agent")
    parser.add_argument("--out", type=Path, default=Path("bench/results/official_speed.json"))
    args = parser.parse_args()
    code = load_official(args.repo)
    print(f"{'agent':<7} {'obs':<7} {'rows':>5} {'s/update':>9} {'GFLOP/upd':>10} {'GFLOP/s':>8} {'act ms':>7}")
    results = []
    for obs in args.obs.split(","):
        for name in ("cqn", "cqn_as"):
            r = bench_agent(args.repo, name, obs, args.batch, args.seconds)
            results.append(r)
            print(
                f"{name:<7} {obs:<7} {r['rows']:>5} {r['seconds_per_update']:9.3f} {r['gflop_per_update']:10.1f} {r['gflops_achieved']:8.1f} {r['act_ms_p50']:7.2f}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__}
    doc = {"machine": machine, "official": code, "state_dim": STATE_DIM, "action_dim": ACTION_DIM, "results": results}
    args.out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
