"""Bundle format: reading and verifying ``policy.json`` and the model files it names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

BUNDLE_FORMAT = "robo_q.policy_bundle"
BUNDLE_VERSION = 1


class BundleError(RuntimeError):
    """A missing, corrupt, tampered or incompatible policy bundle."""


def input_name(key: str) -> str:
    """The model input name of an observation key (``images.wrist`` -> ``images_wrist``)."""
    return key.replace(".", "_")


def read_spec(bundle: str | Path, verify: bool = True) -> dict[str, Any]:
    """``policy.json`` of ``bundle``, after checking its format, version and file checksums."""
    bundle = Path(bundle)
    path = bundle / "policy.json"
    if not path.is_file():
        raise BundleError(f"{bundle}: not a policy bundle (no policy.json)")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{path}: unreadable ({err})") from err
    if spec.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{bundle}: policy.json is not a {BUNDLE_FORMAT} file")
    if int(spec.get("format_version", -1)) > BUNDLE_VERSION:
        raise BundleError(f"{bundle}: bundle format {spec['format_version']} is newer than this runtime reads ({BUNDLE_VERSION}); upgrade robo_q")
    for key in ("observation", "action", "sequence", "files", "control_dt"):
        if key not in spec:
            raise BundleError(f"{bundle}: policy.json lacks {key!r}")
    if verify:
        for name, digest in spec["files"].items():
            file = bundle / name
            if not file.is_file():
                raise BundleError(f"{bundle}: {name} is missing")
            if hashlib.sha256(file.read_bytes()).hexdigest() != digest:
                raise BundleError(f"{bundle}: {name} does not match its checksum in policy.json (corrupt or modified)")
    return spec
