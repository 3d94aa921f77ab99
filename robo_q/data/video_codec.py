"""Dataset videos through PyAV: frames at given times out of an mp4, and frames into one.

Datasets such as LeRobot's keep camera frames in mp4 files, several episodes to a file; an
episode's frame is found by its time in the file, not by counting frames.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from robo_q.data.dataset_import import DatasetError


def decode_frames(path: Path, times: np.ndarray, size: tuple[int, int], tolerance: float) -> np.ndarray:
    """RGB frames (T, H, W, 3) uint8 of the video at ``path`` shown at ``times`` (seconds, increasing).

    A frame matches a time within ``tolerance`` seconds; a missing frame or a video that ends
    early is a :class:`DatasetError` naming the file and the time.
    """
    height, width = size
    out = np.empty((len(times), height, width, 3), np.uint8)
    if not len(times):
        return out
    i = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if times[0] > tolerance and stream.time_base is not None:
                container.seek(int((times[0] - tolerance) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None:
                    raise DatasetError(f"{path}: a frame without a timestamp")
                if frame.time > times[i] + tolerance:
                    raise DatasetError(
                        f"{path}: no frame at {times[i]:.4f} s (next frame at {frame.time:.4f} s): "
                        "the video does not match its episode's timestamps"
                    )
                if frame.time < times[i] - tolerance:
                    continue
                if (frame.height, frame.width) != (height, width):
                    raise DatasetError(
                        f"{path}: frames are {frame.height}x{frame.width}, the dataset declares {height}x{width}"
                    )
                out[i] = frame.to_ndarray(format="rgb24")
                i += 1
                if i == len(times):
                    return out
    except av.FFmpegError as err:
        raise DatasetError(f"{path}: unreadable video ({type(err).__name__}: {err})") from err
    raise DatasetError(
        f"{path}: the video ends before {times[i]:.4f} s: it is shorter than its episode "
        f"({i} of {len(times)} frames found)"
    )


class VideoWriter:
    """Encodes RGB frames into one mp4 at a fixed frame rate; :attr:`frames` counts what it holds."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], codec: str = "h264", crf: int = 18) -> None:
        height, width = size
        if codec in ("h264", "libx264", "hevc") and (height % 2 or width % 2):
            raise ValueError(f"{codec} with yuv420p needs even image sizes, got {height}x{width}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._container = av.open(str(path), mode="w")
        rate = Fraction(fps).limit_denominator(1001)
        stream = self._container.add_stream(codec, rate=rate, options={"crf": str(crf)})
        assert isinstance(stream, av.VideoStream)
        self._stream = stream
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = 1 / rate
        self.frames = 0

    def write(self, frames: np.ndarray) -> None:
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames
            self._container.mux(self._stream.encode(frame))
            self.frames += 1

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
