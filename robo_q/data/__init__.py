"""Episode data: the zarr episode store and the in-memory episode recorder."""

from robo_q.data.episode_builder import EpisodeBuilder
from robo_q.data.store import Episode, EpisodeStore, StoreError

__all__ = ["Episode", "EpisodeBuilder", "EpisodeStore", "StoreError"]
