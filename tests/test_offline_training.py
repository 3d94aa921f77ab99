"""Training from a store of a robot the simulator does not know: no simulator, no task, a bundle out."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policies import load_policy
from policies.features import ActionSpec, FeatureSchema, state_feature
from robo_q.critic_score import roc_auc, roc_auc_interval
from robo_q.data import EpisodeStore, StoreError
from robo_q.evaluate import evaluate_on_store

STEP = 0.1  # rad per step the logged operator moves each joint towards its goal


def arm_store(path: Path, episodes: int, steps: int = 30, seed: int = 0, fail_every: int = 0) -> EpisodeStore:
    """Teleoperated-style episodes of a 2-joint arm (task ``robot/two-joint-arm``): the operator
    steps each joint towards a goal; the state holds the joints and the goal. With ``fail_every``,
    every such episode the operator heads for the wrong place and never succeeds."""
    action = ActionSpec(("shoulder", "elbow"), (-1.5, -2.0), (1.5, 2.0), "position", ("rad", "rad"))
    names = ["shoulder_pos", "elbow_pos", "shoulder_goal", "elbow_goal"]
    features = FeatureSchema({"state": state_feature("state", names, "rad")}, action, 0.05)
    store = EpisodeStore.create(
        path, task="robot/two-joint-arm", features=features, state_dim=0, env_config={}, simulator="", source="teleop"
    )
    rng = np.random.default_rng(seed)
    low, high = action.low_array, action.high_array
    for seed in range(episodes):
        q, goal = rng.uniform(low / 2, high / 2), rng.uniform(low / 2, high / 2)
        failing = fail_every and seed % fail_every == 0
        target = np.clip(-goal, low, high) if failing else goal
        observations, actions = [], []
        for _ in range(steps):
            observations.append(np.concatenate([q, goal]))
            q = q + np.clip(target - q, -STEP, STEP)
            actions.append(action.from_native(q))
        reached = np.abs(goal - q).max() < 0.01
        success = np.zeros(steps, bool)
        success[-1] = reached
        store.append_episode(
            {
                "observation.state": np.array(observations),
                "action": np.array(actions),
                "reward": success.astype(np.float32),
                "success": success,
                "terminated": success,
                "sim_state": np.zeros((steps, 0)),
            },
            {"state": np.concatenate([q, goal])},
            seed=seed,
        )
    return store


def roboq(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robo_q.cli", *args], capture_output=True, text=True)


def test_train_offline_from_a_robot_store_needs_no_simulator_and_exports(tmp_path):
    store = arm_store(tmp_path / "arm.zarr", episodes=42, steps=20)
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    train = roboq(
        "train",
        f"store={store.path}",
        "agent=bc",
        "train.offline=true",
        "train.steps=400",
        "eval.every=200",
        "eval.episodes=2",
        "demos.num=40",
        "agent.hidden=64",
        "agent.lr=1e-3",
        "progress=false",
        f"out={run}",
    )
    assert train.returncode == 0, train.stderr
    assert "robot/two-joint-arm" in train.stdout and "held-out episodes" in train.stdout, train.stdout
    rows = list(csv.DictReader((run / "eval.csv").open()))
    assert [int(r["step"]) for r in rows] == [200, 400] and all(r["episodes"] == "2" for r in rows)
    info = json.loads((run / "eval_info.json").read_text())
    assert [e["episode"] for e in info["per_episode"]] == [40, 41]  # the episodes not trained on
    # better than always commanding the held-out episodes' mean action
    held_out = np.concatenate([store.episode(i).steps["action"] for i in (40, 41)])
    assert info["action_mae"] < np.abs(held_out - held_out.mean(axis=0)).mean(), info
    assert len(info["action_mae_native"]) == 2

    export = roboq("export", f"checkpoint={run / 'checkpoints' / 'last'}", f"out={bundle}")
    assert export.returncode == 0, export.stderr
    policy = load_policy(bundle)
    assert policy.features == store.features and policy.spec["task"] == "robot/two-joint-arm"
    policy.reset()
    action = policy.to_native(policy.act({"state": np.array([0.0, 0.0, 0.5, -0.5])}))
    assert np.all(np.isfinite(action)) and np.all(np.abs(action) <= [1.5, 2.0])

    # the bundle on another session's episodes: its actions against the logged ones, no simulator
    session2 = arm_store(tmp_path / "session2.zarr", episodes=3, steps=20, seed=1)
    evaluation = roboq("eval", f"bundle={bundle}", f"store={session2.path}", f"out={tmp_path / 'eval'}")
    assert evaluation.returncode == 0, evaluation.stderr
    report = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    assert report["episodes"] == 3 and report["agreement"] > 0.5, report
    assert (tmp_path / "eval" / "actions.png").stat().st_size > 1000
    assert "of steps within 5%" in evaluation.stdout and "shoulder" in evaluation.stdout


def test_offline_training_refuses_what_it_cannot_train_on(tmp_path):
    store = arm_store(tmp_path / "arm.zarr", episodes=2, steps=5)
    other_task = roboq("train", f"store={store.path}", "task=metaworld/drawer-open", "train.offline=true")
    assert other_task.returncode != 0 and "holds robot/two-joint-arm demos, not metaworld/drawer-open" in (
        other_task.stderr + other_task.stdout
    )
    online = roboq("train", f"store={store.path}", "train.steps=5", f"out={tmp_path / 'run'}")
    assert online.returncode != 0 and "robot/two-joint-arm" in online.stderr + online.stdout
    pixels = roboq("train", f"store={store.path}", "train.offline=true", "obs=pixels", f"out={tmp_path / 'p'}")
    assert pixels.returncode != 0 and "no image observations" in pixels.stderr + pixels.stdout
    # a policy of another action, or reading another observation, is not evaluated on the store
    other = FeatureSchema(
        {"joints": state_feature("joints", ["a", "b"])}, ActionSpec(("a",), (-1.0,), (1.0,), "velocity"), 0.05
    )
    with pytest.raises(StoreError, match=r"lacks observations \['joints'\]; its action"):
        evaluate_on_store(None, other, store, [0])  # type: ignore[arg-type]


def test_a_trained_critic_scores_failed_episodes_below_successful_ones(tmp_path):
    store = arm_store(tmp_path / "mixed.zarr", episodes=24, steps=20, fail_every=3)
    meta = store.episode_meta()
    assert 0 < meta["success"].sum() < store.num_episodes
    run = tmp_path / "run"
    train = roboq(
        "train",
        f"store={store.path}",
        "agent=cqn",
        "train.offline=true",
        "train.steps=600",
        "eval.every=600",
        "eval.episodes=1",
        "demos.num=24",
        "agent.hidden=64",
        "agent.lr=1e-3",
        "progress=false",
        f"out={run}",
    )
    assert train.returncode == 0, train.stderr
    score = roboq("demos", "score", f"store={store.path}", f"checkpoint={run}", f"out={tmp_path / 'score'}")
    assert score.returncode == 0, score.stderr
    report = json.loads((tmp_path / "score" / "score.json").read_text())
    assert len(report["episodes"]) == 24 and "success ROC AUC" in score.stdout
    scores = [e["score"] for e in report["episodes"]]
    assert scores == sorted(scores, reverse=True)
    assert report["success_auc"] > 0.75, report["episodes"]
    low, high = report["success_auc_95"]
    assert low <= report["success_auc"] <= high and "95% bootstrap interval" in score.stdout
    bc = roboq("demos", "score", f"store={store.path}", f"checkpoint={tmp_path / 'nothing'}")
    assert bc.returncode != 0

    # offline evaluation with the critic: its Q of the logged action sequences vs the policy's own
    checkpoint = run / "checkpoints" / "last"
    evaluation = roboq("eval", f"checkpoint={checkpoint}", f"store={store.path}", f"out={tmp_path / 'eval'}")
    assert evaluation.returncode == 0, evaluation.stderr
    info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    gap = {True: [], False: []}
    for e in info["per_episode"]:
        assert np.isfinite([e["q_logged"], e["q_policy"]]).all()
        gap[bool(meta["success"][e["episode"]])].append(e["q_policy"] - e["q_logged"])
    # where the operator headed the wrong way, the critic prefers the policy's actions more than elsewhere
    assert np.mean(gap[False]) > np.mean(gap[True]), gap
    assert len(info["bins_matched"]) == 3 and info["bins_matched"] == sorted(info["bins_matched"], reverse=True)
    assert "critic Q" in evaluation.stdout and (tmp_path / "eval" / "actions.png").stat().st_size > 1000


def test_roc_auc():
    assert roc_auc_interval([3.0, 2.0, 1.0, 0.0], [True, True, False, False]) == (1.0, 1.0)
    low, high = roc_auc_interval(list(range(40)), [i % 3 == 0 for i in range(40)])  # type: ignore[misc]
    assert low < roc_auc(list(range(40)), [i % 3 == 0 for i in range(40)]) < high  # type: ignore[operator]
    assert roc_auc_interval([1.0, 2.0], [True, True]) is None
    assert roc_auc([3.0, 2.0, 1.0], [True, False, True]) == 0.5
    assert roc_auc([3.0, 2.0, 1.0], [True, True, False]) == 1.0
    assert roc_auc([1.0, 1.0], [True, False]) == 0.5
    assert roc_auc([1.0, 2.0], [True, True]) is None
