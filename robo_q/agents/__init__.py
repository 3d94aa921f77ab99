"""Q-critic agents (CQN, CQN-AS), their building blocks and the BC baseline."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch

from policies.features import FeatureSchema
from policies.schedule import LockstepPolicies, SequencePolicy
from robo_q.agents.bc import BCAgent, BCConfig
from robo_q.agents.cqn import CQNAgent, CQNConfig

Agent = CQNAgent | BCAgent
AGENTS = {"cqn": (CQNAgent, CQNConfig), "cqn_as": (CQNAgent, CQNConfig), "bc": (BCAgent, BCConfig)}


def make_agent(
    name: str,
    settings: dict[str, Any],
    features: FeatureSchema,
    device: str | torch.device,
) -> Agent:
    """Build agent ``name`` for the observations and action of ``features`` from the resolved
    ``agent`` config (``frame_stack`` included; keys the agent does not use are ignored)."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; agents: {', '.join(AGENTS)}")
    cls, config_cls = AGENTS[name]
    known = {f.name for f in fields(config_cls)}
    return cls(features, config_cls(**{k: v for k, v in settings.items() if k in known}), device)


def sequence_policy(agent: Agent, settings: dict[str, Any], explore: bool) -> SequencePolicy:
    """The agent acting through the deployment runtime's sequence scheduler (ensembling or open loop)."""
    return SequencePolicy(
        lambda obs: agent.act(obs, explore=explore),
        settings["seq_len"],
        settings.get("execution", "ensemble"),
        settings.get("ensemble_gain", 0.01),
        settings.get("frame_stack", 1),
        agent.encoder.image_keys,
    )


def lockstep_policies(agent: Agent, settings: dict[str, Any], n: int) -> LockstepPolicies:
    """``n`` greedy policies of the agent stepped together, one batched forward pass per step."""
    return LockstepPolicies(
        agent.act_batch,
        n,
        settings["seq_len"],
        settings.get("execution", "ensemble"),
        settings.get("ensemble_gain", 0.01),
        settings.get("frame_stack", 1),
        agent.encoder.image_keys,
    )
