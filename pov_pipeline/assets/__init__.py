"""Dagster assets, grouped by pipeline stage. Each is a thin adapter around the pure layer.

Asset modules do not use ``from __future__ import annotations``: Dagster reads the Config
annotations of asset functions at definition time.
"""

import warnings

from dagster import BetaWarning, PreviewWarning

# Single-run backfill policies are "beta" in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
