"""The inference layout of the greedy policy (robo_q/export_graph.py) and the runtime's ring scheduler:
the same numbers as the training agent and as the plain formulations they replace."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections import deque

import numpy as np
import pytest
import torch

from policies import load_policy
from policies.features import ActionSpec, FeatureSchema, state_feature
from policies.schedule import ActionScheduler
from robo_q.agents import make_agent
from robo_q.export import export_agent
from robo_q.export_graph import GreedyC2FGraph


def _features(action_dim: int) -> FeatureSchema:
    names = tuple(f"a{i}" for i in range(action_dim))
    observation = {"state": state_feature("state", [f"s{i}" for i in range(6)])}
    return FeatureSchema(observation, ActionSpec(names, (-1.0,) * action_dim, (1.0,) * action_dim, "delta"), 0.05)


def _agent(action_dim: int = 4, **settings):
    """A critic with random (not freshly initialised: its heads start at zero) weights."""
    torch.manual_seed(0)
    agent = make_agent("cqn_as", {"hidden": 32, "atoms": 11, **settings}, _features(action_dim), "cpu")
    with torch.no_grad():
        for p in agent.critic.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return agent


@pytest.mark.parametrize(
    "head, levels, bins, seq_len, gru, action_dim",
    [
        ("c51", 3, 5, 4, True, 4),  # CQN-AS
        ("c51", 3, 5, 1, False, 4),  # CQN
        ("c51", 2, 4, 3, False, 1),  # a sequence without the GRU, one action dimension
        ("hl_gauss", 3, 2, 4, True, 4),
        ("mse", 1, 5, 3, True, 4),
        ("mse", 3, 5, 1, False, 2),
    ],
)
def test_greedy_graph_matches_the_agents_policy(head, levels, bins, seq_len, gru, action_dim):
    agent = _agent(action_dim, levels=levels, bins=bins, seq_len=seq_len, gru=gru, head=head)
    graph = GreedyC2FGraph(agent).eval()
    obs = {"state": torch.randn(200, 6)}
    with torch.no_grad():
        expected, expected_q = agent.policy(obs)
        action, q = graph(agent.encoder(obs))
    assert action.shape == expected.shape and q.shape == expected_q.shape
    same = (action == expected).all(-1).all(-1)  # the centres are looked up, so equal bins give equal bits
    assert same.float().mean() >= 0.99
    assert torch.allclose(q[same], expected_q[same], atol=1e-5)


class _DequeScheduler:
    """The ensembling the ring replaced: a deque of predictions, the candidates stacked every step."""

    def __init__(self, seq_len: int, gain: float) -> None:
        self.history: deque[np.ndarray] = deque(maxlen=seq_len)
        w = np.exp(-gain * np.arange(seq_len))
        self.weights = [w[:n, None] / w[:n].sum() for n in range(1, seq_len + 1)]

    def step(self, prediction: np.ndarray) -> np.ndarray:
        self.history.append(np.asarray(prediction))
        n = len(self.history)
        candidates = np.stack([seq[n - 1 - j] for j, seq in enumerate(self.history)])
        return (self.weights[n - 1] * candidates).sum(0)


@pytest.mark.parametrize("seq_len", [1, 2, 4, 7])
@pytest.mark.parametrize("gain", [0.0, 0.01, 0.5])
def test_ring_ensembling_equals_the_stacked_one_bit_for_bit(seq_len, gain):
    rng = np.random.default_rng(seq_len)
    ring = ActionScheduler(seq_len, "ensemble", gain)
    for episode in range(3):
        ring.reset()
        reference = _DequeScheduler(seq_len, gain)
        for t in range(int(rng.integers(1, 3 * seq_len + 3))):
            # float32 like a bundle's output; one episode switches to float64 midway (promoted, history kept)
            dtype = np.float64 if episode == 1 and t > seq_len else np.float32
            prediction = rng.normal(size=(seq_len, 3)).astype(dtype)
            got = ring.step(lambda p=prediction: p)
            want = reference.step(prediction.copy())
            assert got.dtype == want.dtype and np.array_equal(got, want), (episode, t)
    assert np.array_equal(ActionScheduler(2, gain=0.0).step(lambda: [[1.0], [2.0]]), [1.0])  # lists work too
    with pytest.raises(ValueError, match="expected"):
        ActionScheduler(3).step(lambda: np.zeros((2, 4)))


def _meta(settings: dict) -> dict:
    return {
        "task": "test",
        "features": _features(4).to_dict(),
        "agent": {"name": "cqn_as", **settings},
        "env": {},
        "path": "(test)",
        "step": 0,
    }


def test_bundles_of_the_training_graph_still_load_and_run(tmp_path):
    """Bundles exported before the inference layout hold the agent's own ``policy()`` graph; the
    runtime runs them as before, and on the same observations they act as the new bundles do."""
    settings = {"seq_len": 3, "gru": True, "hidden": 32, "atoms": 11}
    agent = _agent(**{k: v for k, v in settings.items() if k != "hidden"})
    new = tmp_path / "new"
    export_agent(agent, _meta(settings), new)
    old = tmp_path / "old"
    shutil.copytree(new, old)

    class TrainingGraph(torch.nn.Module):  # what export wrote before GreedyC2FGraph
        def __init__(self) -> None:
            super().__init__()
            self.nets = torch.nn.ModuleDict(agent.modules())

        def forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return agent.policy({"state": state})

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TrainingGraph().eval(),
            (torch.zeros(1, 6),),
            old / "policy.onnx",
            input_names=["state"],
            output_names=["actions", "q"],
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    spec = json.loads((old / "policy.json").read_text())
    spec["files"]["policy.onnx"] = hashlib.sha256((old / "policy.onnx").read_bytes()).hexdigest()
    (old / "policy.json").write_text(json.dumps(spec))
    old_policy, new_policy = load_policy(old), load_policy(new)
    rng = np.random.default_rng(0)
    states = rng.normal(size=(200, 6)).astype(np.float32)
    old_actions = np.stack([old_policy._predict({"state": s}) for s in states])
    new_actions = np.stack([new_policy._predict({"state": s}) for s in states])
    assert (np.abs(old_actions - new_actions) < 1e-6).all(axis=(1, 2)).mean() >= 0.99
    old_policy.reset()
    new_policy.reset()
    for s in states[:20]:
        assert old_policy.act({"state": s}).shape == new_policy.act({"state": s}).shape == (4,)
