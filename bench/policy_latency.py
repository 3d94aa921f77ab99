"""Per-step policy latency: ``act()`` p50 / p99 / max for cqn and cqn_as bundles (small and paper
size) with ONNX Runtime, TorchScript and the eager training agent; batch 1, one thread.

    python bench/policy_latency.py [--steps 2000] [--out bench/results/policy_latency.json]

Each step is a full control step of the deployed runtime: observation validation, inference,
temporal ensembling of the action sequence and the safety filter (eager: the training agent's
``act`` through the same scheduler). Bundles are exported from freshly initialised agents of the
Meta-World drawer-open shapes (39-D state, 4-D action); latency does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from policies import load_policy
from policies.features import ActionSpec, FeatureSchema, image_feature, state_feature
from policies.schedule import SequencePolicy
from robo_q.agents import make_agent
from robo_q.export import export_agent

SIZES = {"small": 128, "paper": 512}
AGENTS = {"cqn": {"seq_len": 1, "gru": False}, "cqn_as": {"seq_len": 4, "gru": True}}
TARGET_P99_MS = 1.0  # small cqn_as bundle, ONNX Runtime


def synthetic_features(image: tuple[int, int] | None = None) -> FeatureSchema:
    """Meta-World drawer-open's shapes: 39-D state, 4-D end-effector delta (and one camera)."""
    observation = {"state": state_feature("state", [f"state_{i}" for i in range(39)])}
    if image is not None:
        observation["images.cam"] = image_feature("images.cam", *image)
    action = ActionSpec(("hand_dx", "hand_dy", "hand_dz", "gripper"), (-1.0,) * 4, (1.0,) * 4, "delta")
    return FeatureSchema(observation, action, 0.0125)


def synthetic_meta(name: str, settings: dict, features: FeatureSchema | None = None) -> dict:
    """Checkpoint metadata of an untrained agent (what export needs)."""
    return {
        "task": "metaworld/drawer-open",
        "features": (features or synthetic_features()).to_dict(),
        "agent": {"name": name, **settings},
        "env": {},
        "path": "(benchmark: untrained)",
        "step": 0,
    }


def time_steps(policy, steps: int, rng: np.random.Generator) -> dict:
    obs = rng.normal(size=(steps + 50, 39))
    policy.reset()
    times = []
    for i, o in enumerate(obs):
        t = time.perf_counter()
        policy.act({"state": o})
        if i >= 50:  # warm-up
            times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", default="bench/results/policy_latency.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    results = []
    print(f"{'agent':<7} {'size':<6} {'runtime':<12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for size, hidden in SIZES.items():
            for name, shape in AGENTS.items():
                settings = {**shape, "hidden": hidden}
                agent = make_agent(name, settings, synthetic_features(), "cpu")
                bundle = Path(tmp) / f"{name}_{size}"
                export_agent(agent, synthetic_meta(name, settings), bundle)
                runtimes = {
                    "onnxruntime": load_policy(bundle, "onnx"),
                    "torchscript": load_policy(bundle, "torch"),
                    "eager torch": SequencePolicy(lambda o, a=agent: a.act(o), shape["seq_len"]),
                }
                for runtime, policy in runtimes.items():
                    r = {
                        "agent": name,
                        "size": size,
                        "hidden": hidden,
                        "runtime": runtime,
                        **time_steps(policy, args.steps, rng),
                    }
                    results.append(r)
                    print(
                        f"{name:<7} {size:<6} {runtime:<12} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['max_ms']:8.3f}",
                        flush=True,
                    )
    target = next(
        r for r in results if r["agent"] == "cqn_as" and r["size"] == "small" and r["runtime"] == "onnxruntime"
    )
    verdict = "meets" if target["p99_ms"] < TARGET_P99_MS else "MISSES"
    print(
        f"\nsmall cqn_as bundle, ONNX Runtime: p99 {target['p99_ms']:.3f} ms ({verdict} the {TARGET_P99_MS} ms target)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "threads": 1,
                "steps": args.steps,
                "target_p99_ms": TARGET_P99_MS,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
