"""Dagster resources: where the lake is."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from pov_pipeline.lake import LakePaths


class LakeResource(ConfigurableResource):
    """The lake root (a folder). Landing, study, cache, models and reports live below it."""

    lake_dir: str

    @property
    def paths(self) -> LakePaths:
        return LakePaths(Path(self.lake_dir))
