"""Dagster assets, grouped by pipeline stage. Each is a thin adapter around the pure layer."""
