"""Bundle format: reading and verifying ``policy.json`` and the model files it names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from policies.features import FeatureSchema, SchemaError, legacy_schema

BUNDLE_FORMAT = "robo_q.policy_bundle"
BUNDLE_VERSION = 2


class BundleError(RuntimeError):
    """A missing, corrupt, tampered or incompatible policy bundle."""


def read_versioned_json(path: Path, fmt: str, version: int, error: type[Exception], what: str) -> dict[str, Any]:
    """A JSON file whose ``format`` must be ``fmt`` and ``format_version`` at most ``version``
    (a bundle's policy.json, a checkpoint's meta.json: ``what``); ``error`` says what is wrong."""
    if not path.is_file():
        raise error(f"{path.parent}: not a {what} (no {path.name})")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise error(f"{path}: unreadable ({err})") from err
    if doc.get("format") != fmt:
        raise error(f"{path}: not a {fmt} file")
    if int(doc.get("format_version", -1)) > version:
        raise error(
            f"{path}: format version {doc['format_version']} is newer than this robo_q reads ({version}); "
            "upgrade robo_q"
        )
    return doc


def read_spec(bundle: str | Path, verify: bool = True) -> dict[str, Any]:
    """``policy.json`` of ``bundle``, after checking its format, version and file checksums."""
    bundle = Path(bundle)
    spec = read_versioned_json(bundle / "policy.json", BUNDLE_FORMAT, BUNDLE_VERSION, BundleError, "policy bundle")
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


def bundle_features(spec: dict[str, Any]) -> FeatureSchema:
    """The feature schema of a bundle's ``policy.json`` (version-1 bundles: rebuilt from their specs)."""
    try:
        if "features" in spec:
            return FeatureSchema.from_dict(spec["features"])
        action = spec["action"]
        observation = {k: {"shape": v["shape"]} for k, v in spec["observation"].items()}
        units = action.get("units", "")
        return legacy_schema(
            observation,
            action["low"],
            action["high"],
            spec["control_dt"],
            spec.get("task", ""),
            action.get("names"),
            units,
        )
    except (SchemaError, KeyError, TypeError) as err:
        raise BundleError(f"policy.json (format version {spec.get('format_version')}): bad features ({err})") from err
