"""The CPU allocator settings: freed tensors stay mapped, so repeated updates stop page-faulting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
if sys.argv[1] == "configured":
    from robo_q.allocator import configure_cpu_allocator
    assert configure_cpu_allocator()
import torch
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(16 << 20)  # 64 MB: first use maps it
start = faults()
for _ in range(5):
    torch.ones(16 << 20)
print(faults() - start)
"""


def page_faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if mode == "default":
        env["THP_MEM_ALLOC_ENABLE"] = "0"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_configured_allocator_reuses_big_blocks_without_page_faults():
    default, configured = page_faults("default"), page_faults("configured")
    assert default > 5 * 10_000  # glibc maps and unmaps each 64 MB tensor: 16384 faults apiece
    assert configured < 500, configured
