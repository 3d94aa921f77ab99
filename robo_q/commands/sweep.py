"""``roboq sweep``."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from robo_q.commands.common import print_summary
from robo_q.sweep.driver import run_sweep
from robo_q.sweep.grid import command_line_overrides


def sweep(cfg: DictConfig, overrides: Sequence[str] | None = None) -> int:
    """Run a grid of training runs on Ray; list-valued settings are the grid's axes.

    ``overrides``: the key=value settings after ``roboq sweep`` (read from the command line when not
    given). Returns 0 when every run is done, 1 when some failed (each reported with its log).
    """
    if overrides is None:
        overrides = command_line_overrides(cfg)
    result = run_sweep(cfg, list(overrides))
    done = result["runs"] - len(result["failed"])
    rows = {
        "sweep directory": result["dir"],
        "runs": (
            f"{result['runs']}: {done} done ({result['skipped']} finished before, {result['resumed']} resumed, "
            f"{result['fresh']} from scratch), {len(result['failed'])} not done"
        ),
    }
    for name in result["failed"]:
        record = result["records"][name]
        rows[f"  {name}"] = f"{record.get('status')}: {record.get('error', '')} (log {record.get('log', '-')})"
    rows["report"] = f"roboq report sweep={result['dir']}"
    if result["failed"]:
        rows["continue"] = f"roboq sweep name={result['name']}" + (
            f" root={cfg.root}" if str(cfg.root) != "outputs/sweeps" else ""
        )
    print_summary("sweep", rows)
    return 1 if result["failed"] else 0
