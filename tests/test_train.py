"""A short real training run: trains, evaluates, checkpoints, resumes after a real kill, loads for eval."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

TINY = [
    "task=metaworld/drawer-open",
    "agent.hidden=32",
    "agent.batch_size=16",
    "agent.demo_batch_size=16",
    "demos.num=3",
    "env.max_episode_steps=60",
    "eval.every=60",
    "eval.episodes=1",
    "train.log_every=20",
    "progress=false",
    "device=cpu",
]


def roboq(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "robo_q.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _last_step(run: Path) -> int:
    meta = run / "checkpoints" / "last" / "meta.json"
    return json.loads(meta.read_text())["step"] if meta.exists() else -1


def test_train_kill_resume_eval(tmp_path, drawer_store):
    run = tmp_path / "run"
    args = ["train", "agent=cqn_as", f"demos.path={drawer_store}", f"out={run}", *TINY]
    proc = subprocess.Popen(
        [sys.executable, "-m", "robo_q.cli", *args, "train.steps=100000"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while _last_step(run) < 120 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    killed_at = _last_step(run)
    assert killed_at >= 120
    assert {"config.yaml", "train.csv", "eval.csv", "eval_info.json", "tb", "checkpoints"} <= {
        p.name for p in run.iterdir()
    }

    target = killed_at + 100
    # the run directory alone is enough: its own config.yaml (tiny sizes, not the defaults) is used;
    # the resumed run compiles its update (agent.compile changes how it runs, not what it computes)
    resumed = roboq("train", f"resume={run}", f"train.steps={target}", "agent.compile=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {run} at step {killed_at}" in resumed.stdout
    assert _last_step(run) >= target
    eval_steps = [int(line.split(",")[0]) for line in (run / "eval.csv").read_text().splitlines()[1:]]
    assert eval_steps == sorted(eval_steps) and eval_steps[-1] >= target and any(s <= killed_at for s in eval_steps)
    safetensors = {p.name for p in (run / "checkpoints" / "last").iterdir()}
    assert safetensors == {"model.safetensors", "optimizer.safetensors", "replay.safetensors", "meta.json"}

    # the checkpoint loads for evaluation and gives the training evaluation's result on the same seed
    evaluated = roboq(
        "eval",
        f"checkpoint={run}/checkpoints/last",
        "episodes=1",
        f"out={tmp_path / 'eval'}",
        "device=cpu",
        cwd=tmp_path,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    during_training = json.loads((run / "eval_info.json").read_text())
    assert report["seeds"] == during_training["seeds"] == [1_000_000]
    assert report["per_episode"][0]["length"] == during_training["per_episode"][0]["length"]
    assert report["per_episode"][0]["return"] == during_training["per_episode"][0]["return"]

    # resuming with a different agent fails naming the mismatch, and changes nothing
    mismatch = roboq("train", f"resume={run}", "agent=cqn", *TINY, cwd=tmp_path)
    assert mismatch.returncode == 2
    assert (
        "does not match the config" in mismatch.stderr and "agent.seq_len: checkpoint 4 vs config 1" in mismatch.stderr
    )
    assert _last_step(run) >= target


def test_offline_training_from_the_store_alone(tmp_path, drawer_store):
    run = tmp_path / "offline"
    result = roboq(
        "train",
        "agent=bc",
        f"demos.path={drawer_store}",
        f"out={run}",
        *TINY,
        "train.offline=true",
        "train.steps=40",
        "eval.every=20",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = (run / "train.csv").read_text().splitlines()
    assert rows[0].startswith("step,episodes,updates") and rows[-1].split(",")[:3] == [
        "40",
        "0",
        "40",
    ]  # no env episodes
    assert len((run / "eval.csv").read_text().splitlines()) == 3  # header + 2 evaluations


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "task=dmc/walker-walk", "progress=false"], "has no scripted expert: pass demos.path"),
        (["train", "obs=depth"], "obs must be state or pixels"),
        (
            ["train", "demos.num=1", "env.max_episode_steps=5", "progress=false"],
            "expert succeeded in none of its 3 episodes: no demonstrations",
        ),
        (["eval", "checkpoint=nowhere"], "not a checkpoint"),
        (["eval"], "give exactly one of checkpoint="),
        (["eval", "bundle=nowhere"], "not a policy bundle"),
        (["train", "resume=nowhere"], "resume=nowhere: no config.yaml there"),
    ],
)
def test_train_errors(tmp_path, args, message):
    result = roboq(*args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_cuda_request_without_a_gpu_fails_clearly(tmp_path):
    result = roboq("train", "device=cuda", cwd=tmp_path)
    assert result.returncode == 2 and "device=cuda but no CUDA device" in result.stderr


@pytest.mark.parametrize(
    "task, extra",
    [
        ("metaworld/button-press-topdown", []),  # any Meta-World task: its expert collects the demos
        ("dmc/reacher-hard", ["obs=pixels", "pixels.image_size=48", "agent.frame_stack=2"]),
    ],
)
def test_training_collects_demos_when_none_are_given(tmp_path, task, extra):
    run = tmp_path / "run"
    args = [a for a in TINY if not a.startswith(("task=", "demos.num="))]
    result = roboq(
        "train",
        f"task={task}",
        "agent=cqn",
        "demos.num=2",
        "train.steps=20",
        "eval.every=20",
        f"out={run}",
        *args,
        *extra,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    from robo_q.data import EpisodeStore

    store = EpisodeStore.open(run / "demos.zarr")
    assert store.task == task and store.num_episodes == 2
    if extra:
        assert store.observation_keys == ["images.0", "state"] == store.features.keys  # the schema's order
        assert store.episode(0).steps["observation.images.0"].shape[1:] == (48, 48, 3)
    assert json.loads((run / "eval_info.json").read_text())["episodes"] == 1
    if extra:  # a pixel policy exports, and its bundle acts like the checkpoint on camera frames
        result = roboq("export", f"checkpoint={run}/checkpoints/last", f"out={tmp_path / 'bundle'}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        from policies import load_policy
        from robo_q.checkpoint import load_agent

        agent, _ = load_agent(run / "checkpoints" / "last", "cpu")
        steps = store.episode(0).steps
        stacked = {
            "state": steps["observation.state"][5],
            "images.0": np.concatenate([steps["observation.images.0"][4], steps["observation.images.0"][5]], axis=-1),
        }
        stacked = {k: v for k, v in stacked.items() if k in agent.encoder.keys}
        assert "images.0" in stacked
        with torch.no_grad():
            expected = agent.policy({k: torch.as_tensor(v[None]) for k, v in stacked.items()})[0][0].numpy()
        for backend in ("onnx", "torch"):
            np.testing.assert_allclose(
                load_policy(tmp_path / "bundle", backend=backend)._predict(stacked), expected, atol=1e-6
            )


def test_pretraining_on_the_demos_and_a_larger_final_evaluation(tmp_path, drawer_store):
    run = tmp_path / "run"
    args = [a for a in TINY if not a.startswith(("env.max_episode_steps=", "eval.every="))]
    result = roboq(
        "train",
        "agent=cqn_as",
        f"demos.path={drawer_store}",
        f"out={run}",
        *args,
        "env.max_episode_steps=30",
        "eval.every=30",
        "train.steps=90",
        "agent.pretrain=25",
        "eval.final_episodes=3",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    meta = json.loads((run / "checkpoints" / "last" / "meta.json").read_text())
    assert meta["step"] == 90 and meta["updates"] == 90 + 25  # the demo updates came before the env steps
    import csv

    with open(run / "train.csv") as f:
        first = next(csv.DictReader(f))
    assert int(first["step"]) == 20 and int(first["updates"]) == 20 + 25
    with open(run / "eval.csv") as f:
        evals = list(csv.DictReader(f))
    assert int(evals[-1]["step"]) == 90 and int(evals[-1]["episodes"]) == 3
    assert len(evals) >= 2 and all(int(row["episodes"]) == 1 for row in evals[:-1])
    assert json.loads((run / "eval_info.json").read_text())["episodes"] == 3
