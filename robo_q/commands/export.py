"""``roboq export``."""

from __future__ import annotations

from omegaconf import DictConfig

from robo_q.commands.common import print_summary


def export(cfg: DictConfig) -> int:
    """Export a checkpoint as a policy bundle."""
    from robo_q.export import export_bundle

    spec = export_bundle(cfg.checkpoint, cfg.out, overwrite=cfg.overwrite)
    seq, prov, action = spec["sequence"], spec["provenance"], spec["action"]
    print_summary(
        "export",
        {
            "bundle": cfg.out,
            "task": spec["task"],
            "policy": f"{prov['agent']} from step {prov['step']} ({prov['checkpoint']})",
            "observation": ", ".join(f"{k} {tuple(v['shape'])} {v['dtype']}" for k, v in spec["observation"].items()),
            "action": f"{action['dim']}-D {action['names']}, sequence K={seq['length']} ({seq['execution']})",
            "control period": f"{spec['control_dt'] * 1000:.1f} ms",
            "files": ", ".join(spec["files"]) + ", policy.json",
        },
    )
    return 0
