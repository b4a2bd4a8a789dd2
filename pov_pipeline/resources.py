"""Dagster resources: where the lake is."""

from __future__ import annotations

from dagster import ConfigurableResource

from pov_pipeline.lake import LakePaths
from pov_pipeline.store import lake_root


class LakeResource(ConfigurableResource):
    """The lake root: a folder or an object-store URL (``s3://bucket/prefix``).

    Landing, study, cache, models and reports live below it.
    """

    lake_dir: str

    @property
    def paths(self) -> LakePaths:
        return LakePaths(lake_root(self.lake_dir))
