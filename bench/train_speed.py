"""Critic update throughput: seconds per update and achieved GFLOP/s for cqn and cqn_as, per preset and
observation type, on the CPU and on CUDA when present; plus single-observation act latency. robo_q's
agent, the straightforward implementation of the same math (bench/straightforward_cqn.py) and, with
--official, the authors' agents are timed side by side in this one run.

    python bench/train_speed.py [--official /tmp/CQN-AS] [--agents cqn,cqn_as] [--obs state,pixels] [--presets small,paper]
                                [--compile] [--no-baseline] [--devices cpu,cuda] [--seconds 5] [--rounds 3]
                                [--default-allocator] [--tiny] [--out bench/results/train_speed.json]

--official takes a checkout of github.com/younggyoseo/CQN-AS (git clone it; its agents need
`pip install tensordict`, which robo_q does not depend on); see bench/official_speed.py for how
their RLBench agents are set up. They run at paper size only (their configs' size): with the 39-D
state through a pass-through encoder, and with pixels through their own CNN and random shift.

Batches are 256 + 256 demo rows at paper size and 64 + 64 at the small preset (the presets' own
sizes), a 39-D state (Meta-World) or one 84x84 camera with 8 stacked frames, a 4-D action. Per
(agent, preset, obs) every implementation is built and warmed up, then timed in --rounds rounds,
each implementation in turn (the order rotating), so drift on a shared machine hits all of them
alike; the median update counts. FLOPs of one update (forward + backward, all levels, target
computation included) are counted with torch's FlopCounterMode and compared with the fp32 matmul
peak measured at the start and at the end (the higher counts): FLOPs over peak is the least time
any implementation of the same math can take on this machine. Every ratio divides two timings of
this run; nothing measured in another run is read.

--tiny shrinks hidden sizes, batches, timing budgets and the peak measurement so the whole script
runs in seconds (a smoke test of every flag; its figures mean nothing and it needs --out).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

from robo_q.allocator import configure_cpu_allocator

if "--default-allocator" not in sys.argv:
    configure_cpu_allocator()  # as the roboq CLI does, before torch loads

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from policies.features import FeatureSchema
from robo_q.agents import make_agent
from robo_q.agents.cqn import CQNAgent, CQNConfig

sys.path.insert(0, str(Path(__file__).parent))
import official_speed
from machine import cpu_model
from policy_latency import synthetic_features
from straightforward_cqn import StraightforwardAgent

PRESETS = {"small": {"hidden": 128, "batch": 64}, "paper": {"hidden": 512, "batch": 256}}
TINY_PRESETS = {"small": {"hidden": 16, "batch": 4}, "paper": {"hidden": 32, "batch": 8}}
OFFICIAL_PRESETS = ("paper",)  # the official configs' size (hidden 512, 256 + 256 rows)
AGENTS = {"cqn": {"seq_len": 1, "gru": False}, "cqn_as": {"seq_len": 4, "gru": True}}


def pixel_features() -> FeatureSchema:
    """One 84x84 camera (no state), the 4-D action of Meta-World."""
    state = synthetic_features(image=(84, 84))
    return state.select(["images.cam"])


IMPL_ORDER = ("straightforward", "robo_q", "robo_q+compile", "official")
# Matmul shapes of the paper-size update (GRU input/recurrent products, square) for the peak.
PEAK_SHAPES = [(6144, 512, 1536), (1536, 6144, 512), (3072, 512, 1536), (4096, 4096, 4096)]
TINY_PEAK_SHAPES = [(256, 256, 256)]


def matmul_peak_gflops(device: torch.device, seconds: float = 1.0, shapes=PEAK_SHAPES) -> float:
    """Best fp32 matmul throughput on ``device`` over ``shapes``: the ceiling for any update."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
        a @ b
        sync()
        start, reps = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            a @ b
            reps += 1
        sync()
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
    return best


def make_batch(obs: str, rows: int, seq_len: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    if obs == "state":
        o = {"obs.state": torch.randn(rows, 39, generator=g), "next_obs.state": torch.randn(rows, 39, generator=g)}
    else:
        o = {
            k: torch.randint(0, 256, (rows, 84, 84, 24), generator=g, dtype=torch.uint8)
            for k in ("obs.images.cam", "next_obs.images.cam")
        }
    batch = {
        **o,
        "action": torch.rand(rows, seq_len, 4, generator=g) * 2 - 1,
        "reward": (torch.rand(rows, generator=g) < 0.1).float(),
        "discount": torch.full((rows,), 0.99),
    }
    return {k: v.to(device) for k, v in batch.items()}


class RoboQUpdate:
    """robo_q's agent (or the straightforward one) with its batch, as train_speed times it."""

    def __init__(self, impl: str, agent_name: str, obs: str, sizes: dict, device: torch.device) -> None:
        self.impl, self.agent_name, self.obs, self.device = impl, agent_name, obs, device
        self.features = synthetic_features() if obs == "state" else pixel_features()
        self.settings = {**AGENTS[agent_name], "hidden": sizes["hidden"], "frame_stack": 1 if obs == "state" else 8}
        torch.manual_seed(1)
        self.agent = self._build(impl)
        self.batch = make_batch(obs, 2 * sizes["batch"], AGENTS[agent_name]["seq_len"], device)
        self.demo = sizes["batch"]  # the second half of the rows are demonstrations
        one = {k: v[0].cpu().numpy() for k, v in self.batch.items() if k.startswith("obs.")}
        self.one = {k[4:]: v for k, v in one.items()}

    def _build(self, impl: str) -> CQNAgent:
        if impl == "straightforward":
            return StraightforwardAgent(self.features, CQNConfig(**self.settings), self.device)
        return make_agent(
            self.agent_name, {**self.settings, "compile": impl == "robo_q+compile"}, self.features, self.device
        )

    def update(self) -> None:
        self.agent.update(self.batch, self.demo)

    def act(self) -> np.ndarray:
        return self.agent.act(self.one)

    def count_flops(self) -> int:
        counted = self._build("robo_q") if self.impl == "robo_q+compile" else self.agent
        with FlopCounterMode(display=False) as counter:  # a compiled graph hides its ops: count the same math eagerly
            counted.update(self.batch, self.demo)
        return counter.get_total_flops()


def bench_case(
    agent_name: str,
    preset: str,
    obs: str,
    device: torch.device,
    impls: list[str],
    sizes: dict,
    seconds: float,
    rounds: int,
    acts: int,
    official: str | None,
) -> list[dict]:
    """Every implementation of one (agent, preset, obs, device), timed in interleaved rounds."""
    torch._dynamo.reset()  # each case compiles afresh (dynamo's recompile limit counts per function, not per agent)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    runners, warmup, flops = {}, {}, {}
    for impl in impls:
        if impl == "official":
            runners[impl] = official_speed.build_official(
                official, agent_name, obs, sizes["hidden"], sizes["batch"], device
            )
        else:
            runners[impl] = RoboQUpdate(impl, agent_name, obs, sizes, device)
        start = time.perf_counter()
        for _ in range(2):  # warm-up (allocator, autotuning, compilation)
            runners[impl].update()
        sync()
        warmup[impl] = time.perf_counter() - start
        flops[impl] = runners[impl].count_flops()
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    per_round = -(-3 // rounds)  # at least 3 timed updates in all
    for r in range(rounds):
        for impl in impls[r % len(impls) :] + impls[: r % len(impls)]:
            start = time.perf_counter()
            done = 0
            while time.perf_counter() - start < seconds / rounds or done < per_round:
                sync()
                t = time.perf_counter()
                runners[impl].update()
                sync()
                times[impl].append(time.perf_counter() - t)
                done += 1
    results = []
    for impl in impls:
        runner = runners[impl]
        runner.act()
        act_times = []
        for _ in range(acts):
            sync()
            t = time.perf_counter()
            runner.act()
            sync()
            act_times.append(time.perf_counter() - t)
        update_s = float(np.median(times[impl]))
        results.append(
            {
                "impl": impl,
                "agent": agent_name,
                "preset": preset,
                "obs": obs,
                "device": device.type,
                "batch": f"{sizes['batch']} + {sizes['batch']} demo",
                "hidden": sizes["hidden"],
                "seconds_per_update": update_s,
                "min_seconds_per_update": min(times[impl]),
                "updates_timed": len(times[impl]),
                "updates_per_s": 1.0 / update_s,
                "gflop_per_update": flops[impl] / 1e9,
                "gflops_achieved": flops[impl] / 1e9 / update_s,
                "act_ms_p50": float(np.median(act_times) * 1e3),
                "warmup_s": warmup[impl],
            }
        )
    del runners
    return results


def add_ratios(rows: list[dict]) -> dict:
    """Speedups of robo_q's rows over the plain and official rows of the same case (this run only)."""
    by_impl = {r["impl"]: r for r in rows}
    summary = {k: rows[0][k] for k in ("agent", "preset", "obs", "device")}
    summary["seconds_per_update"] = {impl: r["seconds_per_update"] for impl, r in by_impl.items()}
    summary["speedup"] = {}
    for impl in ("robo_q", "robo_q+compile"):
        r = by_impl.get(impl)
        if r is None:
            continue
        for ref, key in (("straightforward", "plain"), ("official", "official")):
            if ref in by_impl:
                r[f"speedup_vs_{key}"] = by_impl[ref]["seconds_per_update"] / r["seconds_per_update"]
                r[f"act_speedup_vs_{key}"] = by_impl[ref]["act_ms_p50"] / r["act_ms_p50"]
                summary["speedup"][f"{impl} / {key}"] = r[f"speedup_vs_{key}"]
    if "straightforward" in by_impl and "official" in by_impl:
        summary["speedup"]["plain / official"] = (
            by_impl["official"]["seconds_per_update"] / by_impl["straightforward"]["seconds_per_update"]
        )
    return summary


def fmt_ratio(r: dict, key: str) -> str:
    return f"{r[key]:.2f}x" if key in r else "-"


SHORT = {"straightforward": "plain", "robo_q": "robo_q", "robo_q+compile": "compiled", "official": "official"}


def markdown_table(by_case: dict[tuple, dict[str, dict]], peaks: dict[str, dict[str, float]]) -> str:
    """One row per case: seconds per update, GFLOP/s (% of the peak) and ratios of this run."""
    impls = [i for i in IMPL_ORDER if any(i in case for case in by_case.values())]
    ratio_cols = [
        (i, ref)
        for i in ("robo_q", "robo_q+compile")
        if i in impls
        for ref in ("straightforward", "official")
        if ref in impls
    ]
    head = ["agent", "preset", "obs", *(["device"] if len(peaks) > 1 else [])]
    head += [f"{SHORT[i]} s" for i in impls] + ["GFLOP / update (" + " / ".join(SHORT[i] for i in impls) + ")"]
    head.append("GFLOP/s, % of peak (" + " / ".join(SHORT[i] for i in impls) + ")")
    head += [f"{SHORT[i]} / {SHORT[ref]}" for i, ref in ratio_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (agent_name, preset, obs, dev), case in by_case.items():
        cells = [agent_name, preset, obs, *([dev] if len(peaks) > 1 else [])]
        cells += [f"{case[i]['seconds_per_update']:.3f}" if i in case else "" for i in impls]
        cells.append(" / ".join(f"{case[i]['gflop_per_update']:.1f}" if i in case else "-" for i in impls))
        cells.append(
            " / ".join(
                f"{case[i]['gflops_achieved']:.0f} ({100 * case[i]['peak_fraction']:.0f}%)" if i in case else "-"
                for i in impls
            )
        )
        cells += [
            f"{case[ref]['seconds_per_update'] / case[i]['seconds_per_update']:.2f}x"
            if i in case and ref in case
            else ""
            for i, ref in ratio_cols
        ]
        lines.append("| " + " | ".join(cells) + " |")
    peak_line = "; ".join(
        f"{dev} fp32 matmul peak {p['start']:.0f} GFLOP/s at the start, {p['end']:.0f} at the end (% of {p['used']:.0f})"
        for dev, p in peaks.items()
    )
    return "\n".join(lines) + "\n\n" + peak_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--official",
        type=Path,
        default=None,
        help="checkout of github.com/younggyoseo/CQN-AS: time the authors' agents side by side (needs pip install tensordict)",
    )
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda is skipped when absent")
    parser.add_argument(
        "--seconds", type=float, default=None, help="timing budget per implementation and case (default 5; --tiny 0)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per case")
    parser.add_argument("--agents", default=",".join(AGENTS), help="comma-separated agents")
    parser.add_argument("--obs", default="state,pixels", help="comma-separated observation types")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated agent presets")
    parser.add_argument("--no-baseline", action="store_true", help="skip the straightforward implementation")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time agent.compile=true (one compile per case, minutes on a small CPU)",
    )
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc and torch's CPU allocation as they come (robo_q.allocator not applied)",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny sizes and budgets: runs in seconds, for tests (needs --out)"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default bench/results/train_speed.json)")
    args = parser.parse_args()
    if args.tiny and args.out is None:
        parser.error("--tiny needs --out (its figures must not replace bench/results/train_speed.json)")
    out = args.out or Path("bench/results/train_speed.json")
    presets = TINY_PRESETS if args.tiny else PRESETS
    seconds = args.seconds if args.seconds is not None else (0.0 if args.tiny else 5.0)
    acts = 3 if args.tiny else 50
    peak_args = {"seconds": 0.05, "shapes": TINY_PEAK_SHAPES} if args.tiny else {}
    for name in args.presets.split(","):
        if name not in presets:
            parser.error(f"unknown preset {name!r}; presets: {', '.join(presets)}")
    for name in args.agents.split(","):
        if name not in AGENTS:
            parser.error(f"unknown agent {name!r}; agents: {', '.join(AGENTS)}")
    for name in args.obs.split(","):
        if name not in ("state", "pixels"):
            parser.error(f"unknown obs {name!r}; obs: state, pixels")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    official = official_speed.load_official(args.official) if args.official else None
    started = datetime.datetime.now(datetime.UTC)
    wall = time.perf_counter()
    devices = [torch.device(d) for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    if official:
        print(
            f"official: {official['repo']} (commit {official['commit'] or 'unknown'}, tensordict {official['tensordict']}), timed in this process at the {'/'.join(OFFICIAL_PRESETS)} preset"
        )
    peaks: dict[str, dict[str, float]] = {}
    for device in devices:
        peaks[device.type] = {"start": matmul_peak_gflops(device, **peak_args)}
        print(
            f"{device.type} fp32 matmul peak at the start: {peaks[device.type]['start']:.0f} GFLOP/s (measured again at the end; the higher one counts)"
        )
    head = f"{'agent':<7} {'preset':<6} {'obs':<7} {'device':<6} {'impl':<16} {'s/update':>9} {'GFLOP/upd':>10} {'GFLOP/s':>8} {'act ms':>7} {'vs plain':>9} {'vs official':>12}"
    print(head)
    results, summaries = [], []
    for device in devices:
        for obs in args.obs.split(","):
            for preset in args.presets.split(","):
                for agent_name in args.agents.split(","):
                    impls = [
                        i
                        for i in IMPL_ORDER
                        if (i != "straightforward" or not args.no_baseline)
                        and (i != "robo_q+compile" or args.compile)
                        and (i != "official" or (official and preset in OFFICIAL_PRESETS))
                    ]
                    rows = bench_case(
                        agent_name,
                        preset,
                        obs,
                        device,
                        impls,
                        presets[preset],
                        seconds,
                        args.rounds,
                        acts,
                        official and official["repo"],
                    )
                    summaries.append(add_ratios(rows))
                    results += rows
                    for r in rows:
                        print(
                            f"{agent_name:<7} {preset:<6} {obs:<7} {device.type:<6} {r['impl']:<16} {r['seconds_per_update']:9.3f} {r['gflop_per_update']:10.1f} {r['gflops_achieved']:8.1f} {r['act_ms_p50']:7.2f} {fmt_ratio(r, 'speedup_vs_plain'):>9} {fmt_ratio(r, 'speedup_vs_official'):>12}",
                            flush=True,
                        )
    for device in devices:  # this shared VM's matmul rate drifts: the higher of two measurements counts
        peaks[device.type]["end"] = matmul_peak_gflops(device, **peak_args)
        peaks[device.type]["used"] = max(peaks[device.type]["start"], peaks[device.type]["end"])
        print(
            f"\n{device.type} fp32 matmul peak at the end: {peaks[device.type]['end']:.0f} GFLOP/s; the higher, {peaks[device.type]['used']:.0f} GFLOP/s, counts"
        )
    for r in results:
        peak = peaks[r["device"]]["used"]
        r["peak_fraction"] = r["gflops_achieved"] / peak
        r["floor_seconds_per_update"] = r["gflop_per_update"] / peak
    by_case: dict[tuple, dict[str, dict]] = {}
    for r in results:
        by_case.setdefault((r["agent"], r["preset"], r["obs"], r["device"]), {})[r["impl"]] = r
    for (agent_name, preset, obs, dev), impls_ in by_case.items():
        r, off = impls_.get("robo_q"), impls_.get("official")
        if r and off:  # same-run ceiling: robo_q's FLOPs at the peak against the official time of this run
            r["ceiling_vs_official"] = off["seconds_per_update"] / r["floor_seconds_per_update"]
            print(
                f"{agent_name} {preset} {obs} {dev}: robo_q's {r['gflop_per_update']:.1f} GFLOP at {peaks[dev]['used']:.0f} GFLOP/s take at least {r['floor_seconds_per_update']:.3f} s: at most {r['ceiling_vs_official']:.2f}x the official {off['seconds_per_update']:.3f} s of this run"
            )
    print()
    print(markdown_table(by_case, peaks))
    for s in summaries:
        for impl, r in by_case[(s["agent"], s["preset"], s["obs"], s["device"])].items():
            s.setdefault("gflops_achieved", {})[impl] = r["gflops_achieved"]
            s.setdefault("peak_fraction", {})[impl] = r["peak_fraction"]
            if "ceiling_vs_official" in r:
                s["ceiling_robo_q_at_peak_vs_official"] = r["ceiling_vs_official"]
    wall_s = time.perf_counter() - wall
    machine = {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "robo_q_allocator": not args.default_allocator,
    }
    settings = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "tiny": args.tiny,
        "agents": args.agents.split(","),
        "presets": {p: presets[p] for p in args.presets.split(",")},
        "obs": args.obs.split(","),
        "devices": [d.type for d in devices],
        "seconds_per_impl_and_case": seconds,
        "rounds": args.rounds,
        "baseline": not args.no_baseline,
        "compile": args.compile,
        "official_presets": list(OFFICIAL_PRESETS) if official else [],
        "allocator_note": "the official agents run in this process, under the same allocator settings as robo_q's",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "date": started.isoformat(timespec="seconds"),
        "wall_s": wall_s,
        "machine": machine,
        "settings": settings,
        "official": official,
        "matmul_peak_gflops": peaks,
        "cases": summaries,
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wall time {wall_s:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
