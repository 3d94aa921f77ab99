"""Critic update throughput: updates/s and achieved GFLOP/s for cqn and cqn_as, per preset and
observation type, on the CPU and on CUDA when present; plus single-observation act latency.

    python bench/train_speed.py [--obs state,pixels] [--presets small,paper] [--compile] [--devices cpu,cuda]
                                [--default-allocator] [--out bench/results/train_speed.json]

Batches are 256 + 256 demo rows at paper size and 64 + 64 at the small preset (the presets'
own sizes), a 39-D state (Meta-World) or one 84x84 camera with 8 stacked frames, a 4-D action.
FLOPs of one update (forward + backward, all levels, target computation included) are counted
with torch's FlopCounterMode and compared with the fp32 matmul peak measured at start-up: FLOPs
over peak is the least time any implementation of the same math can take on this machine.
Speedups are against the official figures quoted in issue #3 and, where
``bench/results/official_speed.json`` exists (``bench/official_speed.py``), against the official
code as measured here.
"""

from __future__ import annotations

import argparse
import json
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

from robo_q.agents import make_agent
from robo_q.agents.cqn import CQNAgent, CQNConfig

sys.path.insert(0, str(Path(__file__).parent))
from straightforward_cqn import StraightforwardAgent

PRESETS = {"small": {"hidden": 128, "batch": 64}, "paper": {"hidden": 512, "batch": 256}}
AGENTS = {"cqn": {"seq_len": 1, "gru": False}, "cqn_as": {"seq_len": 4, "gru": True}}
# The authors' official code on this 2-core machine (issue #3, eager PyTorch 2.13 CPU, paper size, state).
OFFICIAL_CPU_SECONDS = {"cqn": 0.15, "cqn_as": 1.42}
OFFICIAL_CPU_ACT_MS = {"cqn": 1.8, "cqn_as": 4.9}
OFFICIAL_MEASURED = Path(__file__).parent / "results" / "official_speed.json"  # written by bench/official_speed.py
# Matmul shapes of the paper-size update (GRU input/recurrent products, square) for the peak.
PEAK_SHAPES = [(6144, 512, 1536), (1536, 6144, 512), (3072, 512, 1536), (4096, 4096, 4096)]


def matmul_peak_gflops(device: torch.device, seconds: float = 1.0) -> float:
    """Best fp32 matmul throughput on ``device`` over PEAK_SHAPES: the ceiling for any update."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = 0.0
    for m, k, n in PEAK_SHAPES:
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


def official_measured() -> dict[str, dict]:
    """The official code's results on this machine by agent name ({} before bench/official_speed.py ran)."""
    if not OFFICIAL_MEASURED.is_file():
        return {}
    return {
        r["agent"]: r
        for r in json.loads(OFFICIAL_MEASURED.read_text())["results"]
        if r["rows"] == 2 * PRESETS["paper"]["batch"]
    }


def bench_case(
    agent_name: str, preset: str, obs: str, device: torch.device, seconds: float, impl: str = "robo_q"
) -> dict:
    sizes = PRESETS[preset]
    shapes = {"state": (39,)} if obs == "state" else {"images.cam": (84, 84, 24)}
    settings = {**AGENTS[agent_name], "hidden": sizes["hidden"]}

    def build(impl: str) -> CQNAgent:
        if impl == "straightforward":
            return StraightforwardAgent(shapes, 4, CQNConfig(**settings), device)
        return make_agent(agent_name, {**settings, "compile": impl == "robo_q+compile"}, shapes, 4, device)

    torch._dynamo.reset()  # each case compiles afresh (dynamo's recompile limit counts per function, not per agent)
    agent = build(impl)
    rows = 2 * sizes["batch"]
    batch = make_batch(obs, rows, AGENTS[agent_name]["seq_len"], device)
    demo = sizes["batch"]  # the second half of the rows are demonstrations
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    for _ in range(2):  # warm-up (allocator, autotuning, compilation)
        agent.update(batch, demo)
    warmup_s = time.perf_counter() - start
    counted = build("robo_q") if impl == "robo_q+compile" else agent
    with FlopCounterMode(display=False) as counter:  # a compiled graph hides its ops: count the same math eagerly
        counted.update(batch, demo)
    flops = counter.get_total_flops()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        sync()
        t = time.perf_counter()
        agent.update(batch, demo)
        sync()
        times.append(time.perf_counter() - t)
    update_s = float(np.median(times))
    one = {k: v[0].cpu().numpy() for k, v in batch.items() if k.startswith("obs.")}
    one = {k[4:]: v for k, v in one.items()}
    agent.act(one)
    act_times = []
    for _ in range(50):
        sync()
        t = time.perf_counter()
        agent.act(one)
        act_times.append(time.perf_counter() - t)
    result = {
        "impl": impl,
        "agent": agent_name,
        "preset": preset,
        "obs": obs,
        "device": device.type,
        "batch": f"{sizes['batch']} + {sizes['batch']} demo",
        "hidden": sizes["hidden"],
        "seconds_per_update": update_s,
        "updates_per_s": 1.0 / update_s,
        "gflop_per_update": flops / 1e9,
        "gflops_achieved": flops / 1e9 / update_s,
        "act_ms_p50": float(np.median(act_times) * 1e3),
        "warmup_s": warmup_s,
    }
    if impl.startswith("robo_q") and device.type == "cpu" and preset == "paper" and obs == "state":
        result["speedup_vs_official"] = OFFICIAL_CPU_SECONDS[agent_name] / update_s
        result["act_speedup_vs_official"] = OFFICIAL_CPU_ACT_MS[agent_name] / result["act_ms_p50"]
        measured = official_measured().get(agent_name)
        if measured:
            result["speedup_vs_official_measured"] = measured["seconds_per_update"] / update_s
            result["act_speedup_vs_official_measured"] = measured["act_ms_p50"] / result["act_ms_p50"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda is skipped when absent")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing budget per case")
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
    parser.add_argument("--out", default="bench/results/train_speed.json")
    args = parser.parse_args()
    devices = [torch.device(d) for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    results, peaks = [], {}
    for device in devices:
        peaks[device.type] = matmul_peak_gflops(device)
        print(
            f"{device.type} fp32 matmul peak: {peaks[device.type]:.0f} GFLOP/s (measured again at the end; the higher one counts)"
        )
    print(
        f"{'agent':<7} {'preset':<6} {'obs':<7} {'device':<6} {'impl':<16} {'updates/s':>10} {'s/update':>9} {'GFLOP/upd':>10} {'GFLOP/s':>8} {'act ms':>7} {'speedup':>22}"
    )
    for device in devices:
        for obs in args.obs.split(","):
            for preset in args.presets.split(","):
                for agent_name in AGENTS:
                    impls = (
                        ([] if args.no_baseline else ["straightforward"])
                        + ["robo_q"]
                        + (["robo_q+compile"] if args.compile else [])
                    )
                    plain = None
                    for impl in impls:
                        r = bench_case(agent_name, preset, obs, device, args.seconds, impl)
                        results.append(r)
                        notes = []
                        if impl == "straightforward":
                            plain = r
                        else:
                            r["speedup_vs_straightforward"] = plain["seconds_per_update"] / r["seconds_per_update"]
                            notes.append(f"{r['speedup_vs_straightforward']:.2f}x plain")
                        if "speedup_vs_official" in r:
                            notes.append(f"{r['speedup_vs_official']:.2f}x official")
                        if "speedup_vs_official_measured" in r:
                            notes.append(f"{r['speedup_vs_official_measured']:.2f}x measured")
                        print(
                            f"{agent_name:<7} {preset:<6} {obs:<7} {device.type:<6} {impl:<16} {r['updates_per_s']:10.2f} {r['seconds_per_update']:9.3f} {r['gflop_per_update']:10.1f} {r['gflops_achieved']:8.1f} {r['act_ms_p50']:7.2f} {', '.join(notes):>22}",
                            flush=True,
                        )
    for device in devices:  # this shared VM's matmul rate drifts: the higher of two measurements counts
        end = matmul_peak_gflops(device)
        print(f"\n{device.type} fp32 matmul peak at the end: {end:.0f} GFLOP/s")
        peaks[device.type] = max(peaks[device.type], end)
    for r in results:
        r["peak_fraction"] = r["gflops_achieved"] / peaks[r["device"]]
        r["floor_seconds_per_update"] = r["gflop_per_update"] / peaks[r["device"]]
    print(
        f"official CPU figures (issue #3; paper size, state): cqn {OFFICIAL_CPU_SECONDS['cqn']} s, cqn_as {OFFICIAL_CPU_SECONDS['cqn_as']} s per update"
    )
    measured = official_measured()
    if measured:
        print(
            "official code measured here (bench/official_speed.py): "
            + ", ".join(
                f"{k} {v['seconds_per_update']:.3f} s ({v['gflop_per_update']:.0f} GFLOP, {v['gflops_achieved']:.0f} GFLOP/s)"
                for k, v in measured.items()
            )
        )
    for r in results:
        if r["impl"] == "robo_q" and "speedup_vs_official" in r:
            ceiling = OFFICIAL_CPU_SECONDS[r["agent"]] / r["floor_seconds_per_update"]
            r["ceiling_vs_official"] = ceiling
            print(
                f"{r['agent']}: {r['gflop_per_update']:.0f} GFLOP per update at the {peaks['cpu']:.0f} GFLOP/s matmul peak takes at least {r['floor_seconds_per_update']:.2f} s: no implementation of this math beats {ceiling:.2f}x the issue's official figure here"
            )
            if r["agent"] in measured:
                r["ceiling_vs_official_measured"] = (
                    measured[r["agent"]]["seconds_per_update"] / r["floor_seconds_per_update"]
                )
                print(
                    f"{'':>{len(r['agent']) + 2}}the official code's {measured[r['agent']]['gflop_per_update']:.0f} GFLOP in the issue's {OFFICIAL_CPU_SECONDS[r['agent']]} s would need {measured[r['agent']]['gflop_per_update'] / OFFICIAL_CPU_SECONDS[r['agent']]:.0f} GFLOP/s; against its measured time the ceiling is {r['ceiling_vs_official_measured']:.2f}x"
                )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "robo_q_allocator": not args.default_allocator,
    }
    out.write_text(json.dumps({"machine": machine, "matmul_peak_gflops": peaks, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
