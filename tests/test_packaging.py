"""An ordinary (non-editable) install works: the wheel carries the configs and `roboq` composes commands."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_runs_without_the_source_tree(tmp_path):
    wheels, target, cwd = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    cwd.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)], check=True, cwd=cwd
    )
    (wheel,) = wheels.glob("robo_q-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "robo_q/configs/train.yaml" in names and "robo_q/configs/agent/cqn_as.yaml" in names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, cwd=cwd)

    env = {k: v for k, v in os.environ.items() if k not in ("ROBOQ_CONFIG_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)  # the installed copy comes before the editable checkout

    def roboq(*args: str) -> subprocess.CompletedProcess:
        code = "import sys, robo_q.cli as c; print('module', c.__file__); sys.exit(c.main(sys.argv[1:]))"
        return subprocess.run(
            [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )

    tasks = roboq("tasks", "family=metaworld")
    assert tasks.returncode == 0, tasks.stderr
    assert f"module {target}" in tasks.stdout and "metaworld/drawer-open  (expert)" in tasks.stdout
    helped = roboq("train", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "roboq train:" in helped.stdout and "agent.* settings" in helped.stdout and "seq_len" in helped.stdout
