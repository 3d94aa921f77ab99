"""Deployable policy runtime for exported bundles (no training code). Built in the export issue."""
