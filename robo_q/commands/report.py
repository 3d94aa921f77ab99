"""``roboq report``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from robo_q.commands.common import print_summary
from robo_q.sweep.report import write_report


def report(cfg: DictConfig) -> int:
    """A sweep's success rates with 95% Wilson intervals: report.md, report.json, curves.png."""
    if not cfg.sweep:
        raise ValueError("sweep=<sweep directory> is required, e.g. sweep=outputs/sweeps/<name>")
    result = write_report(Path(str(cfg.sweep)), Path(str(cfg.out)) if cfg.out else None)
    print(Path(result["files"]["report.md"]).read_text())
    done = sum(r["status"] == "done" for r in result["runs"])
    print_summary(
        "report",
        {
            "sweep": result["dir"],
            "runs": f"{len(result['runs'])} ({done} done)",
            "tasks x agents": f"{len(result['tasks'])} x {len(result['methods'])}",
            "interval": result["interval"],
            **result["files"],
        },
    )
    return 0
