"""Run directories: every run writes its outputs under one folder."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def slug(text: str) -> str:
    """A file-name-safe form of a task name or path."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")


def make_run_dir(kind: str, name: str, out: str | None = None, root: str = "outputs") -> Path:
    """``out`` if given, else ``<root>/<date>/<time>_<kind>_<name>/`` (made unique)."""
    if out:
        path = Path(out)
    else:
        now = dt.datetime.now()
        path = Path(root) / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S')}_{kind}_{slug(name)}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = path.with_name(f"{path.name.rsplit('~', 1)[0]}~{suffix}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_config(cfg: DictConfig, run_dir: Path) -> None:
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))


class CSVLog:
    """Rows appended to a CSV file in the run directory, flushed per row (a killed run keeps them)."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        new = not path.exists()
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, columns, extrasaction="ignore")
        if new:
            self._writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow(row)
        self._file.flush()
