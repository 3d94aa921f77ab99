"""CLI command implementations: each takes the composed hydra config and returns an exit code."""
