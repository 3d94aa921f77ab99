"""Export a checkpoint as a self-contained, versioned policy bundle (read by ``policies/``).

<bundle>/policy.onnx   greedy coarse-to-fine policy, every level inside one graph:
                       observations -> actions [1, K, D] (and q [1, K, D] for critics)
<bundle>/policy.pt     the same graph as TorchScript
<bundle>/policy.json   the feature schema (``features``), observation and action specs, sequence
                       execution, control period, task and training provenance, file checksums

A critic's graph is :class:`robo_q.export_graph.GreedyC2FGraph`: the agent's greedy policy laid
out for batch-1 inference (same inputs, outputs and bundle format; bundles exported with the
training layout load and run as before).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import robo_q
from policies.bundle import BUNDLE_FORMAT, BUNDLE_VERSION
from robo_q.agents.cqn import CQNAgent
from robo_q.checkpoint import checkpoint_features, load_agent
from robo_q.export_graph import GreedyC2FGraph


class ExportedPolicy(nn.Module):
    """The agent's deployable ``policy()`` as a module with positional observation inputs.

    Critics (CQN, CQN-AS) export :class:`GreedyC2FGraph`, their greedy policy laid out for batch-1
    inference; other agents export their ``policy()`` as it is."""

    def __init__(self, agent, keys: list[str]) -> None:
        super().__init__()
        self.agent, self.keys = agent, keys
        self.greedy = GreedyC2FGraph(agent) if isinstance(agent, CQNAgent) else None
        if self.greedy is None:
            self.nets = nn.ModuleDict(agent.modules())  # registers the weights the graph reads
        else:
            self.encoder = agent.encoder

    def forward(self, *obs: Tensor) -> tuple[Tensor, ...]:
        observation = dict(zip(self.keys, obs, strict=True))
        if self.greedy is not None:
            return self.greedy(self.encoder(observation))
        action, q = self.agent.policy(observation)
        return (action,) if q is None else (action, q)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_bundle(checkpoint: str | Path, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the bundle for ``checkpoint`` to ``out`` (atomically); returns its policy.json."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=true to replace it)")
    agent, meta = load_agent(checkpoint, "cpu")
    return export_agent(agent, meta, out)


def export_agent(agent, meta: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write the bundle of an agent described by checkpoint metadata ``meta`` to ``out``."""
    for module in agent.modules().values():
        module.eval()
    features = checkpoint_features(meta)
    frame_stack = meta["agent"].get("frame_stack", 1)
    inputs = list(features.observation.values())  # the schema's order is the graph's input order
    module = ExportedPolicy(agent, features.keys).eval()
    example = tuple(
        torch.zeros(1, *f.stacked_shape(frame_stack), dtype=torch.uint8 if f.kind == "image" else torch.float32)
        for f in inputs
    )
    with torch.no_grad():
        outputs = module(*example)
    output_names = ["actions", "q"][: len(outputs)]
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("onnxscript", "torch.onnx"):  # optimizer and registration chatter
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # exporter chatter (deprecations, shape notes)
        torch.onnx.export(
            module,
            example,
            tmp / "policy.onnx",
            input_names=[f.input_name for f in inputs],
            output_names=output_names,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        torch.jit.trace(module, example, check_trace=False).save(str(tmp / "policy.pt"))
    agent_cfg = meta["agent"]
    spec = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "task": meta["task"],
        "control_dt": features.control_dt,
        "features": features.to_dict(),
        "observation": {
            f.key: {
                "input": f.input_name,
                "shape": list(f.shape),
                "dtype": f.dtype.name,
                "stacked_shape": list(f.stacked_shape(frame_stack)),
                "normalisation": "x / 255 - 0.5 inside the graph" if f.kind == "image" else "none (raw values)",
            }
            for f in inputs
        },
        "frame_stack": frame_stack,
        "action": {"normalised_bounds": [-1.0, 1.0], **features.action.to_dict()},
        "sequence": {
            "length": agent_cfg["seq_len"],
            "execution": agent_cfg.get("execution", "ensemble"),
            "ensemble_gain": agent_cfg.get("ensemble_gain", 0.01),
        },
        "outputs": {name: list(o.shape) for name, o in zip(output_names, outputs, strict=True)},
        "provenance": {
            "agent": agent_cfg["name"],
            "agent_settings": agent_cfg,
            "graph": "GreedyC2FGraph" if module.greedy is not None else "policy",  # the layout exported
            "checkpoint": meta["path"],
            "step": meta["step"],
            "eval": meta.get("eval"),
            "env_settings": meta["env"],
            "robo_q_version": robo_q.__version__,
            "torch_version": torch.__version__,
            "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "files": {name: sha256(tmp / name) for name in ("policy.onnx", "policy.pt")},
    }
    (tmp / "policy.json").write_text(json.dumps(spec, indent=2))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return spec
