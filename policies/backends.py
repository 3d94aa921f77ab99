"""Inference backends for a bundle: ONNX Runtime (default, no torch needed) or TorchScript."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np


class Backend(Protocol):
    """A loaded model: named input arrays in, the model's outputs in order out."""

    def __call__(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class OnnxBackend:
    """An ONNX Runtime session for batch-1 control steps: every graph optimisation (constant folding,
    Gemm / LayerNorm / activation fusions, weights pre-packed once for the CPU's matmul kernels),
    ``threads`` intra-op threads, sequential execution and memory planned once for the fixed shapes."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_mem_pattern = True
        options.enable_cpu_mem_arena = True
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.outputs, inputs)


class TorchBackend:
    def __init__(self, path: Path, threads: int = 1) -> None:
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        with warnings.catch_warnings():  # TorchScript is deprecated upstream; the bundle still ships it
            warnings.simplefilter("ignore", DeprecationWarning)
            self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def __call__(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self.torch.inference_mode():
            out = self.module(*(self.torch.from_numpy(v) for v in inputs.values()))
        return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


# name -> (model file in the bundle, loader taking (path, threads))
BACKENDS: dict[str, tuple[str, Callable[[Path, int], Backend]]] = {
    "onnx": ("policy.onnx", OnnxBackend),
    "torch": ("policy.pt", TorchBackend),
}
