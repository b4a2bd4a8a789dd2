"""Ground truth delivered beside a recording (the demo study writes it; real studies do not)."""

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from pov_pipeline.partitions import participants_partitions, single_run_backfill
from pov_pipeline.resources import LakeResource
from pov_pipeline.schemas import TRUTH_TRIALS, validate_participant_id
from pov_pipeline.store import read_parquet


@asset(
    group_name="ingest",
    io_manager_key="lake_io_manager",
    partitions_def=participants_partitions,
    backfill_policy=single_run_backfill,
    code_version="1",
)
def truth_trials(context: AssetExecutionContext, lake: LakeResource) -> Output[pa.Table]:
    """Per trial, the generator's probability of each answer (``landing/<id>/truth/trials.parquet``).

    Empty for participants without ground truth; the report then shows no Bayes-optimal ceiling.
    """
    parts = []
    for participant in context.partition_keys:
        path = lake.paths.landing / validate_participant_id(participant) / "truth" / "trials.parquet"
        if not path.exists():
            continue
        table = read_parquet(path)
        columns = {name: table.column(name) for name in TRUTH_TRIALS.names if name != "participant"}
        columns = {"participant": pa.array([participant] * table.num_rows, pa.string()), **columns}
        parts.append(pa.table(columns).cast(TRUTH_TRIALS))
    table = pa.concat_tables(parts) if parts else TRUTH_TRIALS.empty_table()
    return Output(table, metadata={"n_trials": table.num_rows, "has_truth": MetadataValue.bool(bool(parts))})
