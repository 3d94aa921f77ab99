"""A training run: online RL with demonstrations (CQN style) or offline from the store alone.

Offline from a store of a task the simulator does not know (a real robot's), no simulator is
built: the features come from the store, and evaluation compares the policy's actions with the
logged ones on held-out episodes (the store's episodes after the ``demos.num`` trained on; the
trained ones if there are none).

Everything goes under one run directory: config.yaml, train.csv, eval.csv, eval_info.json,
TensorBoard events (tb/), eval videos, checkpoints/ (``resume=<run>`` continues a killed run).
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from robo_q.agents import lockstep_policies, make_agent, sequence_policy
from robo_q.agents.replay_buffer import ReplayBuffer
from robo_q.checkpoint import check_compatible, load_buffers, load_weights, read_meta, save_checkpoint
from robo_q.data import EpisodeBuilder, EpisodeStore, StoreError
from robo_q.data.collect import collect_demos, store_for_env
from robo_q.device import resolve_device
from robo_q.evaluate import action_grid, evaluate, evaluate_on_store
from robo_q.rundir import CSVLog, make_run_dir, save_config
from robo_q.training.settings import (
    agent_settings,
    run_env_settings,
    run_features,
    run_task,
    store_reward_mode,
)
from sim import MujocoEnv, is_task, make_env
from sim.experts import has_expert, make_expert

TRAIN_COLUMNS = ["step", "episodes", "updates", "fps", "critic_loss", "demo_loss", "bc_loss", "q", "train_success"]
EVAL_COLUMNS = ["step", "success_rate", "mean_return", "mean_length", "episodes"]
STORE_EVAL_COLUMNS = ["step", "action_mae", "agreement", "episodes"]


def demo_store(cfg: DictConfig, env: MujocoEnv | None, store: EpisodeStore | None, run_dir: Path) -> EpisodeStore:
    """The demo store named by ``demos.path`` (already open), else expert demos collected into the run
    directory; with a simulator, checked against its task and observations."""
    if store is None:
        assert env is not None, "a run without a store has a simulator"
        path = run_dir / "demos.zarr"
        if path.exists():  # a resumed run reuses what it collected
            store = EpisodeStore.open(path)
        elif not has_expert(env.task):
            raise StoreError(f"{env.task} has no scripted expert: pass demos.path=<store> with demonstrations")
        else:
            store = store_for_env(env, path, source="expert")
            report = collect_demos(
                env, make_expert(env), store, episodes=cfg.demos.num, seed=cfg.seed, progress=cfg.progress
            )
            if report.kept == 0:
                raise StoreError(
                    f"the {env.task} expert succeeded in none of its {report.attempts} episodes: no demonstrations "
                    "to train on (are the episodes long enough? env.max_episode_steps)"
                )
    if env is None:
        return store
    if store.task != env.task:
        raise StoreError(f"{store.path} holds {store.task} demos, not {env.task}")
    missing = [k for k in run_features(env.features, cfg.obs).keys if k not in store.features.keys]
    if missing:
        raise StoreError(f"{store.path} lacks observations {missing} needed by obs={cfg.obs}")
    return store


def eval_summary(result: dict[str, Any] | None) -> str:
    """An evaluation in a few characters: success rate (simulator) or action agreement (store)."""
    if result is None:
        return "-"
    if "success_rate" in result:
        return f"{result['success_rate']:.0%} success"
    return f"{result['agreement']:.0%} agree"


class Trainer:
    """Holds the run's env, agent, buffers and loggers; ``run()`` trains to ``train.steps``."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        given = EpisodeStore.open(cfg.demos.path) if cfg.demos.path else None
        cfg.task = run_task(cfg, given)
        # Offline, a simulator is only for evaluation, where the task is one it knows.
        simulated = not cfg.train.offline or (cfg.eval.episodes > 0 and is_task(cfg.task))
        if not simulated and given is None:
            raise StoreError(f"{cfg.task} is not a simulator task: offline training needs store=<episode store>")
        if cfg.resume:
            self.run_dir = Path(cfg.resume)
            meta = read_meta(self.run_dir)  # fails clearly when there is nothing to resume
        else:
            self.run_dir, meta = make_run_dir(cfg.agent.name, cfg.task, cfg.out), None
            save_config(cfg, self.run_dir)
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.env: MujocoEnv | None = None
        self.final_episodes = int(cfg.eval.get("final_episodes") or cfg.eval.episodes)  # the evaluation at train.steps
        self.eval_envs: list[MujocoEnv] = []  # evaluation episodes run on these in lockstep
        if simulated:
            settings = run_env_settings(cfg)
            self.env = make_env(cfg.task, **settings)
            batch = max(1, min(max(cfg.eval.episodes, self.final_episodes), cfg.eval.get("batch", 1)))
            self.eval_envs = [make_env(cfg.task, **settings) for _ in range(batch)]
        self.store = demo_store(cfg, self.env, given, self.run_dir)
        if self.env is None:
            settings = dict(self.store.attrs.get("env_config", {}))
        reward_mode = self.env.reward_mode if self.env is not None else store_reward_mode(self.store)
        self.agent_cfg = agent_settings(cfg, reward_mode)
        frame_stack = self.agent_cfg.get("frame_stack", 1) if cfg.obs == "pixels" else 1
        self.agent_cfg["frame_stack"] = frame_stack
        self.features = features = run_features(
            self.env.features if self.env is not None else self.store.features, cfg.obs
        )
        self.agent = make_agent(cfg.agent.name, self.agent_cfg, features, self.device)
        buffer_args = (
            features,
            self.agent_cfg["seq_len"],
            self.agent_cfg["nstep"],
            self.agent_cfg["gamma"],
            frame_stack,
        )
        self.buffers = {"replay": ReplayBuffer(*buffer_args), "demos": ReplayBuffer(*buffer_args)}
        self.meta = {
            "task": cfg.task,
            "obs": cfg.obs,
            "env": settings,
            "agent": self.agent_cfg,
            "features": features.to_dict(),
            # the encoder's inputs (frames stacked), compared on resume like the settings above
            "obs_shapes": {k: list(f.stacked_shape(frame_stack)) for k, f in features.observation.items()},
            "action_dim": features.action.dim,
        }
        self.step = self.episodes = self.updates = 0
        self.train_success: deque[bool] = deque(maxlen=20)
        if meta is None:
            self.buffers["demos"].add_store(self.store, limit=cfg.demos.num)
        else:
            self._restore(meta)
        self.policy = sequence_policy(self.agent, self.agent_cfg, explore=True)
        self.eval_policy = sequence_policy(self.agent, self.agent_cfg, explore=False)
        self.eval_policies = lockstep_policies(self.agent, self.agent_cfg, len(self.eval_envs))
        self.train_csv = CSVLog(self.run_dir / "train.csv", TRAIN_COLUMNS)
        eval_columns = EVAL_COLUMNS if self.eval_envs else STORE_EVAL_COLUMNS
        self.eval_csv = CSVLog(self.run_dir / "eval.csv", eval_columns)
        from torch.utils.tensorboard import SummaryWriter  # slow import: only for real runs

        self.tb = SummaryWriter(str(self.run_dir / "tb"))
        self.last_eval: dict[str, Any] | None = None

    def _restore(self, meta: dict[str, Any]) -> None:
        expected = {k: self.meta[k] for k in ("task", "obs", "env", "agent", "obs_shapes", "action_dim")}
        # compiling changes how the update runs, not what it computes: a run may resume either way
        check_compatible({**meta, "agent": {**meta["agent"], "compile": expected["agent"].get("compile")}}, expected)
        load_weights(meta["path"], self.agent, with_optimizer=True)
        load_buffers(meta["path"], self.buffers)
        self.rng.bit_generator.state = meta["numpy_rng"]
        self.step, self.episodes, self.updates = meta["step"], meta["episodes"], meta["updates"]
        print(f"resumed {self.run_dir} at step {self.step} ({self.episodes} episodes, {self.updates} updates)")

    # -- one gradient step ------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        online = self.agent_cfg["batch_size"] if len(self.buffers["replay"]) else 0
        parts = ([self.buffers["replay"].sample(online, self.rng)] if online else []) + [
            self.buffers["demos"].sample(self.agent_cfg["demo_batch_size"], self.rng)
        ]
        batch = {
            k: torch.as_tensor(np.concatenate([p[k] for p in parts])).to(self.device, non_blocking=True)
            for k in parts[0]
        }
        self.updates += 1
        return self.agent.update(batch, self.agent_cfg["demo_batch_size"])

    def pretrain(self) -> None:
        """A fresh online run's ``agent.pretrain`` updates on the demonstrations alone, before its first
        env step (critic and demo losses), so that interaction starts from a policy that imitates them."""
        total = int(self.agent_cfg.get("pretrain", 0))
        if self.cfg.train.offline or self.step > 0 or self.updates >= total:
            return
        for _ in tqdm(
            range(self.updates, total), desc="pretrain on demos", unit="update", disable=not self.cfg.progress
        ):
            self.update()

    # -- evaluation and checkpoints ---------------------------------------------------------------
    def evaluate_and_checkpoint(self) -> None:
        cfg = self.cfg
        episodes = self.final_episodes if self.step >= cfg.train.steps else cfg.eval.episodes
        if not self.eval_envs:
            result = evaluate_on_store(
                self.eval_policy, self.features, self.store, self.held_out_episodes(), action_grid(self.agent_cfg)
            )
        else:
            video_dir = self.run_dir / "videos" / f"step_{self.step:08d}" if cfg.eval.video else None
            result = evaluate(
                self.eval_policies,
                self.eval_envs,
                episodes,
                video_dir=video_dir,
                video_episodes=cfg.eval.video_episodes,
            )
        self.last_eval = {"step": self.step, **result}
        self.eval_csv.write({"step": self.step, **result})
        for key in ("success_rate", "mean_return", "action_mae", "agreement"):
            if key in result:
                self.tb.add_scalar(f"eval/{key}", result[key], self.step)
        (self.run_dir / "eval_info.json").write_text(json.dumps(self.last_eval, indent=2))
        meta = {
            **self.meta,
            "episodes": self.episodes,
            "updates": self.updates,
            "numpy_rng": self.rng.bit_generator.state,
            "eval": {k: v for k, v in result.items() if k != "per_episode"},
        }
        save_checkpoint(self.run_dir / "checkpoints", self.step, self.agent, meta, self.buffers)

    def held_out_episodes(self) -> list[int]:
        """The store's episodes not trained on (``eval.episodes`` of them; all trained ones if none are left)."""
        trained = min(self.cfg.demos.num, self.store.num_episodes)
        held_out = list(range(trained, self.store.num_episodes)) or list(range(trained))
        return held_out[: max(self.cfg.eval.episodes, 1)]

    def _log(self, metrics: dict[str, float], fps: float) -> None:
        row = {"step": self.step, "episodes": self.episodes, "updates": self.updates, "fps": round(fps, 2), **metrics}
        if self.train_success:
            row["train_success"] = float(np.mean(self.train_success))
        self.train_csv.write(row)
        for key, value in metrics.items():
            self.tb.add_scalar(f"train/{key}", value, self.step)

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        total, every = cfg.train.steps, cfg.eval.every
        next_eval = (self.step // every + 1) * every
        metrics: dict[str, float] = {}
        obs, recorder, env = None, EpisodeBuilder(), self.env
        self.pretrain()
        start, start_step = time.perf_counter(), self.step
        desc = f"train {cfg.agent.name} {cfg.task}" + (" (offline)" if cfg.train.offline else "")
        with tqdm(
            total=total, initial=self.step, desc=desc, unit="step", disable=not cfg.progress, mininterval=1.0
        ) as bar:
            while self.step < total:
                if env is not None and not cfg.train.offline:
                    if obs is None:
                        self.policy.reset()
                        obs, _ = env.reset(seed=cfg.seed * 100_000 + self.episodes)
                        recorder.start(obs, env.get_state())
                    action = self.policy.act(obs)
                    obs, reward, terminated, truncated, info = env.step(action)
                    recorder.record(action, reward, info["success"], terminated, obs, env.get_state())
                self.step += 1
                for _ in range(cfg.train.updates_per_step):
                    metrics = self.update()
                episode_over = cfg.train.offline or terminated or truncated
                if not cfg.train.offline and episode_over:
                    steps, final = recorder.episode()
                    self.buffers["replay"].add_episode(steps, final)
                    if recorder.success:  # successful online episodes become demonstrations
                        self.buffers["demos"].add_episode(steps, final)
                    self.train_success.append(recorder.success)
                    self.episodes += 1
                    obs = None
                fps = (self.step - start_step) / max(time.perf_counter() - start, 1e-9)
                if self.step % cfg.train.log_every == 0:
                    self._log(metrics, fps)
                if episode_over and (self.step >= next_eval or self.step >= total):
                    self.evaluate_and_checkpoint()
                    next_eval = (self.step // every + 1) * every
                bar.set_postfix(
                    fps=f"{fps:.1f}",
                    eval=eval_summary(self.last_eval),
                    loss=f"{metrics.get('critic_loss', metrics.get('bc_loss', 0.0)):.3f}",
                    refresh=False,
                )
                bar.update(1)
        if self.last_eval is None or self.last_eval["step"] != self.step:
            self.evaluate_and_checkpoint()
        self.tb.close()
        return {
            "run_dir": str(self.run_dir),
            "steps": self.step,
            "episodes": self.episodes,
            "updates": self.updates,
            "eval": self.last_eval,
        }
