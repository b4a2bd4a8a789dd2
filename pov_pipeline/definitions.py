"""The code location: one ``Definitions`` object with every asset, check, job, sensor and schedule."""

from __future__ import annotations

import os

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from pov_pipeline import assets as _assets_pkg  # noqa: F401  (documents where assets live)
from pov_pipeline.assets import features, gaze, ingest, models, study, truth
from pov_pipeline.automation import participants_sensor, retrain_schedule
from pov_pipeline.jobs import participant_job, study_job, training_job
from pov_pipeline.lake import ParquetLakeIOManager, default_lake_dir
from pov_pipeline.resources import LakeResource

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

ASSET_MODULES = [study, ingest, truth, gaze, features, models]


def build_definitions(lake_dir: str | None = None) -> Definitions:
    """Definitions over the lake at ``lake_dir`` (default: ``$POV_LAKE_DIR`` or ``data_lake/``)."""
    root = str(lake_dir or default_lake_dir())
    return Definitions(
        assets=load_assets_from_modules(ASSET_MODULES),
        asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[study_job, participant_job, training_job],
        sensors=[participants_sensor],
        schedules=[retrain_schedule],
        resources={
            "lake": LakeResource(lake_dir=root),
            "lake_io_manager": ParquetLakeIOManager(lake_dir=root),
        },
    )


defs = build_definitions()
