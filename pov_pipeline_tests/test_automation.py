"""The participant sensor and the re-training schedule, on an ephemeral Dagster instance."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
)

from pov_pipeline.automation import participants_sensor, retrain_schedule, scan_landing
from pov_pipeline.jobs import LAST_PARTICIPANT_ASSET, TRAINING_ENTRY_ASSET
from pov_pipeline.partitions import participants_partitions
from pov_pipeline.resources import LakeResource


def _deliver(landing: Path, name: str, *, complete: bool = True) -> None:
    folder = landing / name
    folder.mkdir(parents=True)
    (folder / "session.json").write_text(json.dumps({"participant_id": name}))
    (folder / "gaze.asc").write_text("** fake\n")
    if complete:
        (folder / "responses.csv").write_text("trial,stimulus_id,response,rt_ms\n")


def _tick(instance: DagsterInstance, lake_dir: Path):
    context = build_sensor_context(
        instance=instance, resources={"lake": LakeResource(lake_dir=str(lake_dir))}
    )
    result = participants_sensor(context)
    if isinstance(result, SensorResult):
        # Apply the partition requests as the daemon would.
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_new_folder_gives_partition_and_run_then_nothing(tmp_path):
    landing = tmp_path / "landing"
    _deliver(landing, "p001")
    with DagsterInstance.ephemeral() as instance:
        first = _tick(instance, tmp_path)
        assert isinstance(first, SensorResult)
        assert [r.partition_key for r in first.run_requests] == ["p001"]
        assert instance.get_dynamic_partitions(participants_partitions.name) == ["p001"]
        second = _tick(instance, tmp_path)
        assert isinstance(second, SkipReason)
        _deliver(landing, "p002")
        third = _tick(instance, tmp_path)
        assert [r.partition_key for r in third.run_requests] == ["p002"]


def test_invalid_and_half_synced_folders_are_skipped_not_fatal(tmp_path):
    landing = tmp_path / "landing"
    _deliver(landing, "has space")
    _deliver(landing, "ok_1")
    _deliver(landing, "OK_1")  # differs only in case
    _deliver(landing, "half", complete=False)
    scan = scan_landing(landing)
    assert scan.ready == ["OK_1"] or scan.ready == ["ok_1"]
    assert "has space" in scan.invalid and "half" in scan.incomplete
    with DagsterInstance.ephemeral() as instance:
        result = _tick(instance, tmp_path)
        assert [r.partition_key for r in result.run_requests] == scan.ready


def test_missing_landing_folder_is_a_skip(tmp_path):
    with DagsterInstance.ephemeral() as instance:
        assert isinstance(_tick(instance, tmp_path), SkipReason)


def _materialize(instance: DagsterInstance, asset: str, partition: str | None = None, **metadata) -> None:
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key=AssetKey(asset), partition=partition, metadata=metadata)
    )


def test_schedule_skips_when_nothing_is_new_and_runs_when_someone_arrived(tmp_path):
    # A schedule context needs an instance with a ref, so a temporary local instance.
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        instance.add_dynamic_partitions(participants_partitions.name, ["p1", "p2"])
        assert isinstance(retrain_schedule(build_schedule_context(instance=instance)), SkipReason)
        _materialize(instance, LAST_PARTICIPANT_ASSET, "p1")
        _materialize(instance, LAST_PARTICIPANT_ASSET, "p2")
        request = retrain_schedule(build_schedule_context(instance=instance))
        assert not isinstance(request, SkipReason)  # never trained yet
        _materialize(instance, TRAINING_ENTRY_ASSET, participants=["p1", "p2"])
        time.sleep(0.01)
        assert isinstance(retrain_schedule(build_schedule_context(instance=instance)), SkipReason)
        instance.add_dynamic_partitions(participants_partitions.name, ["p3"])
        _materialize(instance, LAST_PARTICIPANT_ASSET, "p3")
        request = retrain_schedule(build_schedule_context(instance=instance))
        assert not isinstance(request, SkipReason)
        assert request.tags["pov/participants"] == "3"
