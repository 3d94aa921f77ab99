"""A sweep's report: success rate with a 95% Wilson interval per (task, agent) at every evaluation.

Writes report.json (every number), report.md (the final table, for the README) and curves.png
(success rate against env steps with the intervals shaded) into the sweep directory, and adds the
interval of its final evaluation to every finished run's eval_info.json.

Pooling: a (task, agent) cell pools the evaluation episodes of its seeds (k successes in n episodes)
and takes their Wilson score interval; the episodes are counted as independent trials, so the
interval holds the evaluation noise, not the spread between training seeds. The mean over tasks is
the mean of the per-task rates, with the Wilson interval of the episodes pooled over tasks (with the
same number of episodes per task, as in a sweep, the pooled rate is that mean).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

from robo_q.sweep.grid import NAMED_AXES, format_value
from robo_q.sweep.rundirs import (
    annotate_eval_info,
    eval_rows,
    read_json,
    run_settings,
    run_state,
    write_json,
)
from robo_q.sweep.stats import rate_cell, wilson

INTERVAL = "95% Wilson score interval on the evaluation episodes pooled over seeds"
MEAN = "mean of the per-task rates; interval: Wilson on the episodes pooled over tasks and seeds"


def load_sweep(root: Path) -> dict[str, Any]:
    state = read_json(root / "sweep.json")
    if state is None:
        if not root.is_dir():
            raise FileNotFoundError(f"sweep={root}: no such directory")
        raise FileNotFoundError(f"sweep={root}: no sweep.json there (not a directory of `roboq sweep`)")
    return state


def method_of(record: dict[str, Any]) -> str:
    """The agent, with the run's values on any other axis (``cqn_as lr=0.0003``)."""
    extra = [
        f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in record.get("grid", {}).items() if k not in NAMED_AXES
    ]
    return " ".join([record["agent"], *extra])


def binned_evals(run: Path, settings: dict[str, Any]) -> dict[int, tuple[int, int, int]]:
    """The run's evaluations by nominal step -> (step, successes, episodes).

    The trainer evaluates at the first episode end after every ``eval.every`` steps, so seeds evaluate
    at slightly different steps; each evaluation is filed under the multiple of ``eval.every`` it
    follows (the final one under ``train.steps``). A step evaluated twice (a run killed between its
    evaluation and its checkpoint, then resumed) keeps the later row.
    """
    every = max(1, int(settings["eval"]["every"]))
    total = int(settings["train"]["steps"])
    out: dict[int, tuple[int, int, int]] = {}
    for row in eval_rows(run):
        step, n = int(row["step"]), int(row["episodes"])
        nominal = total if step >= total else (step // every) * every
        out[nominal] = (step, round(row["success_rate"] * n), n)
    return out


def _cell(points: list[tuple[int, int]], **extra: Any) -> dict[str, Any]:
    return rate_cell(sum(k for k, _ in points), sum(n for _, n in points), **extra)


def build_report(root: Path) -> dict[str, Any]:
    state = load_sweep(root)
    runs: list[dict[str, Any]] = []
    # (task, method) -> nominal step -> [(successes, episodes)] over seeds
    curves: dict[tuple[str, str], dict[int, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    totals: dict[tuple[str, str], int] = {}
    tasks: list[str] = []
    methods: list[str] = []
    seeds: dict[tuple[str, str], int] = defaultdict(int)
    for name, record in state["runs"].items():
        run = root / record.get("dir", f"runs/{name}")
        task, method = record["task"], method_of(record)
        tasks += [task] if task not in tasks else []
        methods += [method] if method not in methods else []
        seeds[task, method] += 1
        settings = run_settings(run)
        condition = run_state(run) if settings else "fresh"
        final = annotate_eval_info(run) if condition == "finished" else None
        evals = binned_evals(run, settings) if settings else {}
        for nominal, (_, k, n) in evals.items():
            curves[task, method][nominal].append((k, n))
        if settings:
            totals[task, method] = max(totals.get((task, method), 0), int(settings["train"]["steps"]))
        runs.append(
            {
                "name": name,
                "task": task,
                "agent": record["agent"],
                "method": method,
                "seed": record["seed"],
                "status": "done" if condition == "finished" else record.get("status", "pending"),
                "evaluations": len(evals),
                "final": final,
                "log": str(run / "run.log"),
            }
        )
    curve_out: dict[str, dict[str, list[dict[str, Any]]]] = {t: {} for t in tasks}
    final_out: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in tasks}
    for (task, method), by_step in curves.items():
        curve_out[task][method] = [
            _cell(points, step=step, seeds=len(points)) for step, points in sorted(by_step.items())
        ]
        total = totals.get((task, method))
        if total in by_step:
            final_out[task][method] = _cell(by_step[total], step=total, seeds=len(by_step[total]))
            final_out[task][method]["planned_seeds"] = seeds[task, method]
    mean_curves: dict[str, list[dict[str, Any]]] = {}
    mean_final: dict[str, dict[str, Any]] = {}
    for method in methods:
        per_task = [{p["step"]: p for p in curve_out[t].get(method, [])} for t in tasks]
        common = sorted(set.intersection(*(set(steps) for steps in per_task))) if per_task else []
        mean_curves[method] = [_mean([steps[s] for steps in per_task], step=s) for s in common]
        cells = [final_out[t][method] for t in tasks if method in final_out[t]]
        if cells and len(cells) == len(tasks):
            mean_final[method] = _mean(cells, step=max(c["step"] for c in cells))
    return {
        "sweep": state.get("name", root.name),
        "dir": str(root),
        "generated": dt.datetime.now().isoformat(timespec="seconds"),
        "interval": INTERVAL,
        "mean_over_tasks": MEAN,
        "tasks": tasks,
        "methods": methods,
        "final": final_out,
        "mean": mean_final,
        "curves": curve_out,
        "mean_curves": mean_curves,
        "runs": runs,
    }


def _mean(cells: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    k = sum(c["successes"] for c in cells)
    n = sum(c["episodes"] for c in cells)
    low, high = wilson(k, n)
    rate = sum(c["success_rate"] for c in cells) / len(cells)
    return {"success_rate": rate, "wilson_low": low, "wilson_high": high, "successes": k, "episodes": n, **extra}


# -- outputs ----------------------------------------------------------------------------------------------
def _pct(cell: dict[str, Any] | None, bold: bool = False) -> str:
    if not cell:
        return "–"
    text = f"{100 * cell['success_rate']:.0f}% [{100 * cell['wilson_low']:.0f}, {100 * cell['wilson_high']:.0f}]"
    text = f"**{text}**" if bold else text
    text += f" ({cell['successes']}/{cell['episodes']})"
    planned = cell.get("planned_seeds")
    if planned is not None and cell["seeds"] < planned:
        text += f" {cell['seeds']} of {planned} seeds"
    return text


def markdown(report: dict[str, Any], image: str = "curves.png") -> str:
    tasks, methods = report["tasks"], report["methods"]
    finals = [c for t in tasks for c in report["final"][t].values()]
    steps = sorted({c["step"] for c in finals})
    per_eval = sorted({c["episodes"] // max(c["seeds"], 1) for c in finals})
    seeds = sorted({r["seed"] for r in report["runs"]})
    lines = [
        f"### Sweep `{report['sweep']}`: success rate at the final evaluation",
        "",
        "| task | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for task in tasks:
        lines.append(f"| {task} | " + " | ".join(_pct(report["final"][task].get(m)) for m in methods) + " |")
    if len(tasks) > 1:
        lines.append(
            "| **mean over tasks** | " + " | ".join(_pct(report["mean"].get(m), bold=True) for m in methods) + " |"
        )
    step_text = ", ".join(map(str, steps)) or "none yet"
    episodes = " / ".join(map(str, per_eval)) or "?"
    caption = (
        f"Success rate of the greedy evaluation at the end of training (step {step_text}), {episodes} "
        f"fixed-seed evaluation episodes per run, training seeds {', '.join(map(str, seeds))}; in brackets the "
        f"{INTERVAL} (the episodes count as independent trials, so the spread between training seeds is not "
        "in it), then successes / episodes."
    )
    if len(tasks) > 1:
        caption += (
            " Mean over tasks: the mean of the per-task rates; its interval is the Wilson interval on the "
            "episodes pooled over tasks and seeds (every task has the same number of episodes, so the pooled "
            "rate is that mean)."
        )
    lines += ["", caption, "", f"![success rate against env steps, 95% Wilson intervals shaded]({image})"]
    unfinished = [r for r in report["runs"] if r["status"] != "done"]
    if unfinished:
        lines += ["", "Not finished: " + ", ".join(f"`{r['name']}` ({r['status']})" for r in unfinished) + "."]
    return "\n".join(lines).rstrip() + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    panels = [(t, report["curves"][t]) for t in report["tasks"]]
    if len(report["tasks"]) > 1:
        panels.append(("mean over tasks", report["mean_curves"]))
    fig = Figure(figsize=(4.6 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, by_method) in zip(axes, panels, strict=True):
        for i, method in enumerate(report["methods"]):
            points = by_method.get(method) or []
            if not points:
                continue
            color = f"C{i}"
            xs = [p["step"] for p in points]
            if len(points) == 1:  # one evaluation: its interval as an error bar
                p = points[0]
                err = [[p["success_rate"] - p["wilson_low"]], [p["wilson_high"] - p["success_rate"]]]
                ax.errorbar(xs, [p["success_rate"]], yerr=err, fmt="o", capsize=4, color=color, label=method)
                continue
            ax.fill_between(
                xs, [p["wilson_low"] for p in points], [p["wilson_high"] for p in points], color=color, alpha=0.2
            )
            ax.plot(xs, [p["success_rate"] for p in points], marker="o", markersize=3, color=color, label=method)
        ax.set_title(title)
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("success rate (95% Wilson)")
    axes[0].legend(loc="best", fontsize="small")
    fig.suptitle(f"sweep {report['sweep']}")
    fig.savefig(path, dpi=120)


def write_report(root: Path, out: Path | None = None) -> dict[str, Any]:
    """report.json, report.md and curves.png under ``out`` (default: the sweep directory)."""
    report = build_report(root)
    if not any(report["curves"][t] for t in report["tasks"]):
        raise ValueError(f"sweep={root}: no run has evaluated yet")
    out = out or root
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report))
    plot(report, out / "curves.png")
    return {**report, "files": {k: str(out / k) for k in ("report.md", "report.json", "curves.png")}}
