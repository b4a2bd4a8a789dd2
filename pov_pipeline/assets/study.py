"""Study-design assets: the stimuli and their areas of interest."""

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from pov_pipeline.ingest.study import read_aois, read_stimuli, study_fingerprint
from pov_pipeline.resources import LakeResource
from pov_pipeline.store import stage


@asset(group_name="study", io_manager_key="lake_io_manager", code_version="1")
def stimuli(context: AssetExecutionContext, lake: LakeResource) -> Output[pa.Table]:
    """One row per stimulus: image file (with its SHA-256), caption, condition and placement."""
    table = read_stimuli(stage(lake.paths.study))
    conditions = table.column("condition").value_counts().to_pylist()
    return Output(
        table,
        metadata={
            "n_stimuli": MetadataValue.int(table.num_rows),
            "study_fingerprint": MetadataValue.text(study_fingerprint(lake.paths.study)),
            "conditions": MetadataValue.json({c["values"]: c["counts"] for c in conditions}),
        },
    )


@asset(group_name="study", io_manager_key="lake_io_manager", code_version="1")
def aois(context: AssetExecutionContext, lake: LakeResource, stimuli) -> Output[pa.Table]:
    """Areas of interest in screen pixels: image objects (rect/polygon/ellipse) and caption words."""
    table = read_aois(stage(lake.paths.study), set(stimuli["stimulus_id"]))
    kinds = table.column("aoi_kind").value_counts().to_pylist()
    return Output(
        table,
        metadata={
            "n_aois": MetadataValue.int(table.num_rows),
            "by_kind": MetadataValue.json({k["values"]: k["counts"] for k in kinds}),
        },
    )
