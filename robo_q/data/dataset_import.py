"""Importing another tool's dataset into an episode store: the part every format shares.

A format reader (:mod:`robo_q.data.lerobot`, :mod:`robo_q.data.robomimic`) opens the dataset,
works out its :class:`~policies.features.FeatureSchema` and yields whole episodes in store keys;
:func:`import_dataset` writes them. A new store is built under a hidden name next to ``out`` and
renamed into place once every episode is in, so a failed or killed import leaves nothing visible;
an append rolls the store back to its earlier episodes when the import fails midway.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from policies.features import FeatureSchema
from robo_q.data.store import EpisodeStore, StoreError


class DatasetError(StoreError):
    """A foreign dataset that cannot be imported: unknown version, missing or truncated file, bad field."""


@dataclass
class ImportedEpisode:
    """One episode read from a foreign dataset, in store keys (``observation.<key>``, ``action``, ...)."""

    steps: dict[str, np.ndarray]
    final_observation: dict[str, np.ndarray]
    seed: int = 0
    source: str | None = None  # default: the reader's


class DatasetReader(Protocol):
    """What a format reader provides once it has opened a dataset."""

    schema: FeatureSchema
    task: str
    state_dim: int  # width of data/sim_state (0 when the dataset holds no simulator state)
    env_config: dict[str, Any]
    simulator: str
    source: str
    origin: dict[str, Any]  # where the episodes came from, kept in the store's ``imports`` attribute
    num_episodes: int
    num_frames: int

    def episodes(self) -> Iterator[ImportedEpisode]: ...


@dataclass
class ImportReport:
    path: Path
    episodes: int
    frames: int
    seconds: float
    store_episodes: int
    origin: dict[str, Any] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def _append_all(reader: DatasetReader, store: EpisodeStore, progress: bool) -> int:
    frames = 0
    with tqdm(total=reader.num_frames, unit="frame", desc="import", disable=not progress) as bar:
        for episode in reader.episodes():
            store.append_episode(episode.steps, episode.final_observation, seed=episode.seed, source=episode.source)
            frames += len(episode.steps["action"])
            bar.update(len(episode.steps["action"]))
    return frames


def _record_import(store: EpisodeStore, reader: DatasetReader, episodes: int, frames: int) -> None:
    record = {
        **reader.origin,
        "episodes": episodes,
        "frames": frames,
        "imported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    store.update_attrs(imports=[*store.attrs.get("imports", []), record])


def import_dataset(
    reader: DatasetReader, out: str | Path, *, append: bool = False, overwrite: bool = False, progress: bool = True
) -> ImportReport:
    """Write every episode ``reader`` yields into the store at ``out`` (new, or appended to)."""
    out = Path(out)
    start = time.perf_counter()
    if append and out.exists():
        store = EpisodeStore.open(out, "a")
        if store.features.to_dict() != reader.schema.to_dict():
            raise StoreError(
                f"{out}: cannot append: its features {store.features.to_dict()} differ from the dataset's "
                f"{reader.schema.to_dict()}"
            )
        before = store.num_episodes
        try:
            frames = _append_all(reader, store, progress)
        except BaseException:
            store.rollback(before)
            raise
        _record_import(store, reader, store.num_episodes - before, frames)
        return ImportReport(
            out, store.num_episodes - before, frames, time.perf_counter() - start, store.num_episodes, reader.origin
        )
    if out.exists() and not overwrite:
        raise StoreError(f"{out} already exists (pass append=true to add episodes, overwrite=true to replace it)")
    staging = out.with_name(f".{out.name}.importing-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        store = EpisodeStore.create(
            staging,
            task=reader.task,
            features=reader.schema,
            state_dim=reader.state_dim,
            env_config=reader.env_config,
            simulator=reader.simulator,
            source=reader.source,
        )
        frames = _append_all(reader, store, progress)
        if not store.num_episodes:
            raise DatasetError(f"{reader.origin.get('path')}: the dataset holds no episodes")
        _record_import(store, reader, store.num_episodes, frames)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImportReport(out, store.num_episodes, frames, time.perf_counter() - start, store.num_episodes, reader.origin)
