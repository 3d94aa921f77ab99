"""Deployable policy runtime for exported bundles: no training code, no torch needed (ONNX Runtime).

from policies import load_policy
policy = load_policy("bundles/drawer-open")
policy.reset()
action = policy.act(observation)
"""

from policies.bundle import BundleError
from policies.features import ObservationError
from policies.runtime import Policy, load_policy

__all__ = ["BundleError", "ObservationError", "Policy", "load_policy"]
