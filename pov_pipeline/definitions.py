"""The code location: one ``Definitions`` object with every asset, check, job, sensor and schedule."""

from __future__ import annotations

import os

from dagster import (
    Definitions,
    ExecutorDefinition,
    in_process_executor,
    load_asset_checks_from_modules,
    load_assets_from_modules,
    multiprocess_executor,
)

from pov_pipeline import assets as _assets_pkg  # noqa: F401  (documents where assets live)
from pov_pipeline.allocator import tune_allocator
from pov_pipeline.assets import features, gaze, ingest, models, study, truth
from pov_pipeline.automation import participants_sensor, retrain_schedule
from pov_pipeline.jobs import participant_job, study_job, training_job
from pov_pipeline.lake import ParquetLakeIOManager, default_lake_dir
from pov_pipeline.resources import LakeResource

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# Every process that loads the code location (the run workers included) reuses freed memory
# instead of faulting in fresh pages for each participant's frames: see pov_pipeline.allocator.
tune_allocator()

ASSET_MODULES = [study, ingest, truth, gaze, features, models]
#: ``$POV_EXECUTOR`` picks the executor of every job: unset keeps Dagster's default
#: (multiprocess, in-process for a single step), ``k8s`` needs the ``deploy`` extra.
EXECUTOR_ENV = "POV_EXECUTOR"


def executor_from_env(name: str | None = None) -> ExecutorDefinition | None:
    """The executor named by ``name`` (default ``$POV_EXECUTOR``): in_process, multiprocess or k8s."""
    name = (os.environ.get(EXECUTOR_ENV, "") if name is None else name).strip().lower()
    if not name:
        return None
    if name in ("in_process", "in-process"):
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    if name == "k8s":
        from dagster_k8s import k8s_job_executor  # the deploy extra

        return k8s_job_executor
    raise ValueError(f"{EXECUTOR_ENV}={name!r}: expected in_process, multiprocess or k8s")


def build_definitions(lake_dir: str | None = None) -> Definitions:
    """Definitions over the lake at ``lake_dir`` (default: ``$POV_LAKE_DIR`` or ``data_lake/``)."""
    root = str(lake_dir or default_lake_dir())
    return Definitions(
        assets=load_assets_from_modules(ASSET_MODULES),
        asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[study_job, participant_job, training_job],
        sensors=[participants_sensor],
        schedules=[retrain_schedule],
        executor=executor_from_env(),
        resources={
            "lake": LakeResource(lake_dir=root),
            "lake_io_manager": ParquetLakeIOManager(lake_dir=root),
        },
    )


defs = build_definitions()
