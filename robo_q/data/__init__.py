"""Episode data: the zarr episode store and the in-memory episode recorder."""

from robo_q.data.recorder import EpisodeRecorder
from robo_q.data.store import Episode, EpisodeStore, StoreError

__all__ = ["Episode", "EpisodeRecorder", "EpisodeStore", "StoreError"]
