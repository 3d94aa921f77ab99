"""MP4 writing for evaluation and replay videos."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: float) -> Path:
    """Encode uint8 HWC frames as H.264 (ffmpeg ships with imageio-ffmpeg)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Bound first: imageio's stubs type ``Writer.__enter__`` as the reader/writer base class.
    writer = imageio.get_writer(path, fps=max(1.0, min(fps, 60.0)), codec="libx264", quality=7, macro_block_size=1)
    with writer:
        for frame in frames:
            writer.append_data(frame)
    return path
