"""Synthetic demo study: Pillow scenes, participants, scanpaths, raw gaze and vendor exports.

Pure layer (no Dagster). The entry point is :func:`generate_study`; the generative model is
described in ``docs/demo_study.md``.
"""

from pov_pipeline.demo.generator import SIZES, DemoSize, StudySummary, generate_study

__all__ = ["SIZES", "DemoSize", "StudySummary", "generate_study"]
