"""Export bundles and the policies/ runtime: format, parity with the training agent, errors, safety."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from policies import BundleError, ObservationError, load_policy
from policies.bundle import bundle_features, read_spec
from policies.features import FeatureSchema
from policies.safety import SafetyFilter
from policies.schedule import ActionScheduler, LockstepPolicies, SequencePolicy
from robo_q.agents import lockstep_policies, sequence_policy
from robo_q.checkpoint import CheckpointError, checkpoint_features, load_agent, read_meta
from robo_q.evaluate import evaluate
from robo_q.export import export_bundle
from sim import make_env


def test_bundle_contents(trained):
    _, bundles = trained
    spec = json.loads((bundles["cqn_as"] / "policy.json").read_text())
    assert spec["format"] == "robo_q.policy_bundle" and spec["format_version"] == 2
    assert spec["observation"] == {
        "state": {
            "input": "state",
            "shape": [39],
            "dtype": "float32",
            "stacked_shape": [39],
            "normalisation": "none (raw values)",
        }
    }
    assert spec["action"]["names"] == ["hand_dx", "hand_dy", "hand_dz", "gripper"] and spec["action"]["dim"] == 4
    assert spec["sequence"] == {"length": 4, "execution": "ensemble", "ensemble_gain": 0.01}
    assert spec["outputs"] == {"actions": [1, 4, 4], "q": [1, 4, 4]} and spec["control_dt"] == pytest.approx(0.0125)
    assert spec["provenance"]["agent"] == "cqn_as" and spec["provenance"]["step"] == 60
    assert set(spec["files"]) == {"policy.onnx", "policy.pt"}
    assert json.loads((bundles["bc"] / "policy.json").read_text())["outputs"] == {"actions": [1, 1, 4]}


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_exported_policy_matches_the_training_agent(trained, drawer_store, backend):
    """On 1000 observations the exported graph picks the training agent's bins."""
    from robo_q.data import EpisodeStore

    checkpoints, bundles = trained
    agent, _ = load_agent(checkpoints["cqn_as"], "cpu")
    states = EpisodeStore.open(drawer_store).load(["observation.state"])["observation.state"]
    rng = np.random.default_rng(0)
    obs = (states[rng.integers(0, len(states), 1000)] + rng.normal(0, 0.02, (1000, 39))).astype(np.float32)
    with torch.no_grad():
        expected, expected_q = (t.numpy() for t in agent.policy({"state": torch.as_tensor(obs)}))
    policy = load_policy(bundles["cqn_as"], backend=backend)
    got = np.stack([policy._predict({"state": o}) for o in obs])
    same = np.all(np.abs(got - expected) < 1e-6, axis=(1, 2))
    print(
        f"{backend}: same bins on {same.mean():.1%} of 1000 observations, "
        f"max abs action difference {np.abs(got - expected).max():.3g}"
    )
    assert same.mean() >= 0.97  # the rest are argmax near-ties flipped by float rounding
    policy._predict({"state": obs[0]})
    assert np.allclose(policy.last_q, expected_q[0], atol=1e-3)


def test_bundle_evaluation_matches_the_checkpoint(trained):
    checkpoints, bundles = trained
    agent, meta = load_agent(checkpoints["bc"], "cpu")
    with make_env(meta["task"], **meta["env"]) as env:
        from_checkpoint = evaluate(sequence_policy(agent, meta["agent"], explore=False), env, 3)
        from_bundle = evaluate(load_policy(bundles["bc"]), env, 3)
    assert from_bundle["success_rate"] == from_checkpoint["success_rate"] > 0
    assert from_bundle["seeds"] == from_checkpoint["seeds"]
    assert [e["length"] for e in from_bundle["per_episode"]] == [e["length"] for e in from_checkpoint["per_episode"]]


def test_lockstep_evaluation_matches_one_episode_at_a_time(trained):
    """Evaluation episodes run together on several envs (one batched forward pass per step) give
    each seed the episode it gets alone: 4 episodes on 3 envs (a full wave, then a partial one)."""
    checkpoints, _ = trained
    agent, meta = load_agent(checkpoints["bc"], "cpu")
    envs = [make_env(meta["task"], **meta["env"]) for _ in range(3)]
    try:
        alone = evaluate(sequence_policy(agent, meta["agent"], explore=False), envs[0], 4)
        together = evaluate(lockstep_policies(agent, meta["agent"], 3), envs, 4)
    finally:
        for env in envs:
            env.close()
    assert together["seeds"] == alone["seeds"] and together["success_rate"] == alone["success_rate"]
    for a, b in zip(alone["per_episode"], together["per_episode"], strict=True):
        assert a["length"] == b["length"] and a["success"] == b["success"]
        assert np.isclose(a["return"], b["return"], rtol=1e-3), (a, b)


@pytest.mark.parametrize("execution", ["ensemble", "open_loop"])
def test_lockstep_policies_schedule_and_stack_each_slot_as_a_sequence_policy(execution):
    """Each slot of a LockstepPolicies acts exactly as its own SequencePolicy would (frames stacked,
    sequences scheduled), whatever the other slots do; idle slots are skipped and asked for nothing."""
    weights = np.random.default_rng(0).normal(size=(2 * 4 * 4 + 3, 3 * 2))

    def predict(obs):  # deterministic: [.., 4, 4, 2] frames (stacked on channels) + 3-D state -> [K=3, D=2]
        flat = np.concatenate([obs["images.cam"].reshape(*obs["state"].shape[:-1], -1), obs["state"]], axis=-1)
        return np.tanh(flat @ weights).reshape(*flat.shape[:-1], 3, 2)

    asked = []
    batch = LockstepPolicies(
        lambda o: asked.append(len(o["state"])) or predict(o), 3, 3, execution, 0.1, 2, ["images.cam"]
    )
    single = [SequencePolicy(predict, 3, execution, 0.1, 2, ["images.cam"]) for _ in range(3)]
    rng = np.random.default_rng(1)
    for step in range(12):
        active = [step < 12, step < 7, step % 3 != 2]  # slot 1 ends early, slot 2 idles now and then
        obs = [
            {"images.cam": rng.integers(0, 255, (4, 4, 1), np.uint8), "state": rng.normal(size=3)} if a else None
            for a in active
        ]
        got = batch.act(obs)
        for i, o in enumerate(obs):
            if o is None:
                assert got[i] is None
            else:
                np.testing.assert_allclose(got[i], single[i].act(o), rtol=1e-12)
    assert max(asked) <= 3 and (execution == "ensemble") == (sum(asked) > 12)


def test_runtime_imports_and_runs_without_torch(trained):
    _, bundles = trained
    code = (
        "import sys, numpy as np\n"
        "sys.modules['torch'] = None  # any torch import now fails\n"
        "from policies import load_policy\n"
        f"p = load_policy({str(bundles['cqn_as'])!r})\n"
        "p.reset()\n"
        "a = p.act({'state': np.zeros(39)})\n"
        "assert a.shape == (4,) and np.all(np.abs(a) <= 1) and p.last_q.shape == (4, 4)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_observation_validation(trained):
    _, bundles = trained
    policy = load_policy(bundles["cqn_as"])
    policy.reset()
    for bad, message in [
        ({}, "lacks 'state'"),
        ({"state": np.zeros(38)}, r"shape \(38,\), expected \(39,\)"),
        ({"state": np.full(39, np.nan)}, "NaN or inf"),
    ]:
        with pytest.raises(ObservationError, match=message):
            policy.act(bad)
    assert policy.act({"state": np.zeros(39)}).shape == (4,)  # still works after rejected inputs


def _copy(bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    return copy


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda b: (b / "policy.onnx").write_bytes((b / "policy.onnx").read_bytes()[:-10]),
            "policy.onnx does not match its checksum",
        ),
        (lambda b: (b / "policy.pt").unlink(), "policy.pt is missing"),
        (lambda b: (b / "policy.json").write_text("{"), "unreadable"),
        (
            lambda b: (b / "policy.json").write_text(
                json.dumps({**json.loads((b / "policy.json").read_text()), "format_version": 7})
            ),
            "is newer than this robo_q reads",
        ),
        (lambda b: (b / "policy.json").unlink(), "not a policy bundle"),
    ],
)
def test_damaged_bundles_are_refused(trained, tmp_path, damage, message):
    _, bundles = trained
    copy = _copy(bundles["cqn_as"], tmp_path)
    damage(copy)
    with pytest.raises(BundleError, match=message):
        load_policy(copy)


def test_safety_filter():
    f = SafetyFilter(-np.ones(2), np.ones(2), max_delta=0.1)
    np.testing.assert_allclose(f(np.array([5.0, -0.05])), [1.0, -0.05])  # clipped (first action: no rate limit)
    np.testing.assert_allclose(f(np.array([0.0, 0.5])), [0.9, 0.05])  # rate-limited per step
    np.testing.assert_allclose(f(np.array([np.nan, 0.0])), [0.9, 0.05])  # invalid output: hold the last safe action
    np.testing.assert_allclose(f(np.zeros(3)), [0.9, 0.05])
    assert f.rejected == 2
    f.reset()
    np.testing.assert_allclose(f(np.array([np.inf, 0.0])), [0.0, 0.0])  # nothing safe yet: hold zeros


def test_open_loop_and_ensemble_scheduling():
    calls = []

    def predict():
        calls.append(len(calls))
        return np.full((3, 1), float(len(calls)))

    loop = ActionScheduler(3, "open_loop")
    actions = [loop.step(predict)[0] for _ in range(6)]
    assert len(calls) == 2 and actions == [1, 1, 1, 2, 2, 2]
    ens = ActionScheduler(3, "ensemble", gain=0.0)
    calls.clear()
    assert [ens.step(predict)[0] for _ in range(4)] == [1.0, 1.5, 2.0, 3.0]  # mean of predictions for each step


def test_cli_export_and_eval_bundle(trained, tmp_path):
    checkpoints, _ = trained
    run = [sys.executable, "-m", "robo_q.cli"]
    out = subprocess.run(
        [*run, "export", f"checkpoint={checkpoints['bc']}", f"out={tmp_path / 'b'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    again = subprocess.run(
        [*run, "export", f"checkpoint={checkpoints['bc']}", f"out={tmp_path / 'b'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    ev = subprocess.run(
        [*run, "eval", f"bundle={tmp_path / 'b'}", "episodes=1", f"out={tmp_path / 'e'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ev.returncode == 0, ev.stderr
    report = json.loads((tmp_path / "e" / "eval_info.json").read_text())
    assert report["bundle"] == str(tmp_path / "b") and report["episodes"] == 1


def _state_features() -> FeatureSchema:
    """What the state-observation agents of ``trained`` read: drawer-open's state and action."""
    with make_env("metaworld/drawer-open") as env:
        return env.features.select(["state"])


def test_checkpoints_and_bundles_carry_the_envs_features(trained):
    checkpoints, bundles = trained
    expected = _state_features()
    meta = read_meta(checkpoints["cqn_as"])
    assert meta["format_version"] == 2 and FeatureSchema.from_dict(meta["features"]) == expected
    spec = read_spec(bundles["cqn_as"])
    assert FeatureSchema.from_dict(spec["features"]) == expected == load_policy(bundles["cqn_as"]).features
    assert spec["action"]["mode"] == "delta" and spec["action"]["units"] == ["cm", "cm", "cm", "effort"]


def _migrated_like(migrated: FeatureSchema, expected: FeatureSchema) -> None:
    """A schema rebuilt from version-1 metadata: the same inputs, bounds and mode (names may be generic)."""
    assert {k: (f.kind, f.shape) for k, f in migrated.observation.items()} == {
        k: (f.kind, f.shape) for k, f in expected.observation.items()
    }
    assert migrated.control_dt == expected.control_dt and migrated.action.mode == expected.action.mode == "delta"
    assert (migrated.action.names, migrated.action.low, migrated.action.high) == (
        expected.action.names,
        expected.action.low,
        expected.action.high,
    )


def _as_version_1_checkpoint(checkpoint, tmp_path):
    """A copy of ``checkpoint`` whose meta.json is what format version 1 wrote (no feature schema)."""
    copy = tmp_path / "v1_checkpoint"
    shutil.copytree(read_meta(checkpoint)["path"], copy)
    meta = json.loads((copy / "meta.json").read_text())
    features = FeatureSchema.from_dict(meta.pop("features"))
    meta |= {
        "format_version": 1,
        "control_dt": features.control_dt,
        "observation_spec": {k: {"shape": list(f.shape), "dtype": "float64"} for k, f in features.observation.items()},
        "action": {
            "low": list(features.action.low),
            "high": list(features.action.high),
            "names": list(features.action.names),
            "units": "end-effector position delta (1.0 = 1 cm per step) and gripper effort",
        },
    }
    (copy / "meta.json").write_text(json.dumps(meta))
    return copy


def test_version_1_checkpoints_load_and_export_with_a_migrated_schema(trained, tmp_path):
    checkpoints, _ = trained
    copy = _as_version_1_checkpoint(checkpoints["cqn_as"], tmp_path)
    expected = _state_features()
    _migrated_like(checkpoint_features(read_meta(copy)), expected)
    agent, _ = load_agent(copy, "cpu")
    reference, _ = load_agent(checkpoints["cqn_as"], "cpu")
    obs = {"state": np.linspace(-1, 1, 39).astype(np.float32)}
    np.testing.assert_array_equal(agent.act(obs), reference.act(obs))
    spec = export_bundle(copy, tmp_path / "bundle")
    assert spec["format_version"] == 2
    _migrated_like(FeatureSchema.from_dict(spec["features"]), expected)
    assert load_policy(tmp_path / "bundle").act({"state": np.zeros(39)}).shape == (4,)


def test_version_1_bundles_load_with_a_migrated_schema(trained, tmp_path):
    _, bundles = trained
    copy = _copy(bundles["cqn_as"], tmp_path)
    spec = json.loads((copy / "policy.json").read_text())
    del spec["features"]
    spec["format_version"] = 1
    (copy / "policy.json").write_text(json.dumps(spec))
    policy = load_policy(copy)
    _migrated_like(policy.features, _state_features())
    assert bundle_features(read_spec(copy)) == policy.features
    assert policy.act({"state": np.zeros(39)}).shape == (4,)


def test_future_checkpoints_fail_naming_the_format_version(trained, tmp_path):
    checkpoints, _ = trained
    copy = tmp_path / "v99"
    shutil.copytree(read_meta(checkpoints["bc"])["path"], copy)
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99 is newer than this robo_q reads"):
        load_agent(copy)
    meta["features"]["action"]["mode"] = "torque"
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"format version 2\).*bad features"):
        load_agent(copy)
