"""Expert demonstrations: run a scripted expert and keep its episodes in an episode store."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from robo_q.data import EpisodeBuilder, EpisodeStore, StoreError
from robo_q.rollout import rollout
from sim.base import MujocoEnv
from sim.experts import Expert


@dataclass
class CollectReport:
    task: str
    path: str
    kept: int
    attempts: int
    expert_successes: int
    steps: int
    seconds: float

    @property
    def expert_success_rate(self) -> float:
        return self.expert_successes / max(self.attempts, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "expert_success_rate": self.expert_success_rate}


def store_for_env(
    env: MujocoEnv, path: str | Path, *, source: str, append: bool = False, overwrite: bool = False
) -> EpisodeStore:
    """Create a store for ``env``'s episodes, or open an existing one to append to (it must match)."""
    path = Path(path)
    if append and path.exists():
        store = EpisodeStore.open(path, "a")
        theirs = (store.task, store.attrs["env_config"])
        ours = (env.task, env.config)
        if theirs != ours:
            raise StoreError(
                f"{path} holds {theirs[0]} episodes with env settings {theirs[1]}; "
                f"cannot append {ours[0]} with {ours[1]}"
            )
        return store
    return EpisodeStore.create(
        path,
        task=env.task,
        features=env.features,
        state_dim=len(env.get_state()),
        env_config=env.config,
        simulator=env.simulator,
        source=source,
        overwrite=overwrite,
    )


def collect_demos(
    env: MujocoEnv,
    expert: Expert,
    store: EpisodeStore,
    *,
    episodes: int,
    seed: int = 0,
    keep_failed: bool = False,
    max_attempts: int | None = None,
    progress: bool = True,
) -> CollectReport:
    """Run the expert on fresh seeds until ``episodes`` are kept (successful ones unless ``keep_failed``)."""
    max_attempts = max(max_attempts or 3 * episodes, episodes)
    used = set(store.episode_meta()["seed"].tolist())
    kept = attempts = successes = steps = 0
    ep_seed = seed
    start = time.perf_counter()
    with tqdm(total=episodes, desc=f"collect {env.task}", unit="ep", disable=not progress) as bar:
        while kept < episodes and attempts < max_attempts:
            while ep_seed in used:
                ep_seed += 1
            used.add(ep_seed)
            attempts += 1
            expert.reset()
            recorder = EpisodeBuilder()
            result = rollout(env, expert.act, seed=ep_seed, recorder=recorder)
            successes += result.success
            if result.success or keep_failed:
                recorder.save(store, seed=ep_seed, source="expert")
                kept += 1
                steps += result.length
                bar.update(1)
            bar.set_postfix(expert_success=f"{successes / attempts:.0%}", attempts=attempts)
    return CollectReport(env.task, str(store.path), kept, attempts, successes, steps, time.perf_counter() - start)
