"""Checkpoints: safetensors weights/optimiser/replay + JSON metadata, written atomically, no pickles.

<run>/checkpoints/step_00001000/{model,optimizer,replay}.safetensors, meta.json
<run>/checkpoints/last -> step_00001000     (always a complete checkpoint)

meta.json carries the feature schema the agent reads (``features``); format-version-1 checkpoints,
written before schemas existed, get theirs from :func:`policies.features.legacy_schema`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

from policies.bundle import read_versioned_json
from policies.features import FeatureSchema, SchemaError, legacy_schema
from robo_q.agents import Agent, make_agent
from robo_q.device import resolve_device

FORMAT = "robo_q.checkpoint"
FORMAT_VERSION = 2


class CheckpointError(RuntimeError):
    """A missing, corrupt or mismatched checkpoint."""


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors = {f"{pid}.{k}": v.detach().cpu().contiguous() for pid, s in state["state"].items() for k, v in s.items()}
    return tensors, {"param_groups": state["param_groups"], "param_ids": sorted(state["state"])}


def save_checkpoint(root: Path, step: int, agent, meta: dict[str, Any], buffers: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically and point ``root/last`` at it."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f"{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    weights = {
        f"{name}.{k}": v.detach().cpu().contiguous()
        for name, module in agent.modules().items()
        for k, v in module.state_dict().items()
    }
    weights["rng.torch"] = torch.get_rng_state()
    save_file(weights, tmp / "model.safetensors")
    opt_tensors, opt_meta = _optimizer_tensors(agent.optimizer)
    save_file(opt_tensors, tmp / "optimizer.safetensors")
    arrays = {
        f"{name}.{k}": np.ascontiguousarray(v) for name, buf in buffers.items() for k, v in buf.state_dict().items()
    }
    save_numpy(arrays, tmp / "replay.safetensors")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, "optimizer": opt_meta, **meta}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    link = root / "last.tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(final.name)
    os.replace(link, root / "last")
    for old in sorted(root.glob("step_????????"))[:-keep]:
        shutil.rmtree(old)
    return final


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of the checkpoint at ``path`` (a checkpoint dir, a ``last`` link or a run dir)."""
    path = Path(path)
    if (path / "checkpoints" / "last").exists():
        path = path / "checkpoints" / "last"
    meta = read_versioned_json(path / "meta.json", FORMAT, FORMAT_VERSION, CheckpointError, "checkpoint")
    meta["path"] = str(path.resolve())
    return meta


def checkpoint_features(meta: dict[str, Any]) -> FeatureSchema:
    """The feature schema of checkpoint metadata ``meta`` (version 1: rebuilt from what it recorded)."""
    try:
        if "features" in meta:
            return FeatureSchema.from_dict(meta["features"])
        action = meta["action"]
        return legacy_schema(
            meta["observation_spec"],
            action["low"],
            action["high"],
            meta["control_dt"],
            meta["task"],
            action.get("names"),
            action.get("units", ""),
        )
    except (SchemaError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"checkpoint {meta.get('path')} (format version {meta.get('format_version')}): bad features ({err})"
        ) from err


def check_compatible(meta: dict[str, Any], expected: dict[str, Any]) -> None:
    """Fail naming every setting where the checkpoint differs from the config it is loaded into."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    theirs, ours = flat({k: meta.get(k) for k in expected}), flat(expected)
    diffs = [
        f"{k}: checkpoint {theirs.get(k)!r} vs config {ours.get(k)!r}"
        for k in sorted(set(theirs) | set(ours))
        if theirs.get(k) != ours.get(k)
    ]
    if diffs:
        raise CheckpointError(f"checkpoint {meta.get('path')} does not match the config:\n  " + "\n  ".join(diffs))


def load_weights(path: str | Path, agent, with_optimizer: bool = False) -> None:
    """Load model weights (and optimiser state) of the checkpoint at ``path`` into ``agent``."""
    path = Path(read_meta(path)["path"])
    try:
        weights = load_file(path / "model.safetensors", device=str(agent.device))
        for name, module in agent.modules().items():
            module.load_state_dict({k[len(name) + 1 :]: v for k, v in weights.items() if k.startswith(f"{name}.")})
        if with_optimizer:
            meta = read_meta(path)["optimizer"]
            tensors = load_file(path / "optimizer.safetensors", device=str(agent.device))
            state = {
                pid: {k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(pid)}
                for pid in meta["param_ids"]
            }
            agent.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
            torch.set_rng_state(weights["rng.torch"].cpu())
    except (RuntimeError, ValueError, KeyError, OSError) as err:
        raise CheckpointError(f"{path}: cannot load into this agent ({type(err).__name__}: {err})") from err


def load_buffers(path: str | Path, buffers: dict[str, Any]) -> None:
    path = Path(read_meta(path)["path"])
    arrays = load_numpy(path / "replay.safetensors")
    for name, buf in buffers.items():
        buf.load_state_dict({k[len(name) + 1 :]: v for k, v in arrays.items() if k.startswith(f"{name}.")})


def load_agent(checkpoint: str | Path, device: str = "auto") -> tuple[Agent, dict[str, Any]]:
    """The agent stored in a checkpoint (built from its own metadata, uncompiled) and that metadata."""
    meta = read_meta(checkpoint)
    features = checkpoint_features(meta)
    try:
        settings = {**meta["agent"], "compile": False}
        agent = make_agent(meta["agent"]["name"], settings, features, resolve_device(device))
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{meta['path']}: incomplete metadata ({err})") from err
    load_weights(meta["path"], agent)
    return agent, meta
