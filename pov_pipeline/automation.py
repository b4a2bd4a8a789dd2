"""Automation: a sensor that turns new landing folders into participant partitions and runs,
and a schedule that re-trains and re-reports only when new participants have arrived."""

from __future__ import annotations

import hashlib
import json
import os  # noqa: F401  (tests patch ``pov_pipeline.automation.os.scandir``, which list_dir uses)
from dataclasses import dataclass, field

from dagster import (
    AssetKey,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)

from pov_pipeline.jobs import (
    LAST_PARTICIPANT_ASSET,
    TRAINING_ENTRY_ASSET,
    participant_job,
    training_job,
)
from pov_pipeline.partitions import participants_partitions
from pov_pipeline.resources import LakeResource
from pov_pipeline.schemas import PARTICIPANT_ID_PATTERN
from pov_pipeline.store import StorePath, list_dir

REQUIRED_FILES = ("session.json", "responses.csv")
GAZE_FILES = ("gaze.asc", "gaze.tsv", "gaze.csv")


@dataclass
class LandingScan:
    """What a look at ``landing/`` found."""

    ready: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)
    incomplete: dict[str, str] = field(default_factory=dict)


def scan_landing(landing_dir: StorePath) -> LandingScan:
    """Classify the folders under ``landing_dir``: ready, invalid id, or not yet complete.

    A folder is ready when it holds ``session.json``, ``responses.csv`` and one gaze file, so
    a half-synced delivery is retried on a later tick instead of failing. Ids that differ only
    in case are refused, since they would collide on case-insensitive file systems.
    ``landing_dir`` may be an object-store prefix (``s3://bucket/lake/landing``): each folder
    then costs one listing request.
    """
    scan = LandingScan()
    if not landing_dir.is_dir():
        return scan
    seen_lower: dict[str, str] = {}
    try:
        names = [name for name, kind in list_dir(landing_dir) if kind == "dir"]
    except OSError as exc:
        scan.invalid[str(landing_dir)] = f"cannot read the landing folder: {exc.strerror or exc}"
        return scan
    for name in names:
        if name.startswith("."):
            continue  # a delivery still being written (e.g. ".p001.partial") or a hidden file
        if not PARTICIPANT_ID_PATTERN.fullmatch(name):
            scan.invalid[name] = "participant id must match ^[A-Za-z0-9_-]{1,64}$"
            continue
        lower = name.lower()
        if lower in seen_lower:
            scan.invalid[name] = (
                f"duplicates participant folder {seen_lower[lower]!r} (ids differ only in case)"
            )
            continue
        seen_lower[lower] = name
        try:
            files = {entry for entry, kind in list_dir(landing_dir / name) if kind == "file"}
        except OSError as exc:
            scan.invalid[name] = f"cannot read folder: {exc.strerror or exc}"
            continue
        missing = [f for f in REQUIRED_FILES if f not in files]
        gaze = [f for f in GAZE_FILES if f in files]
        if missing or not gaze:
            scan.incomplete[name] = f"missing {missing + ([] if gaze else ['gaze.asc|gaze.tsv|gaze.csv'])}"
        elif len(gaze) > 1:
            scan.invalid[name] = f"several gaze files {gaze}: expected exactly one"
        else:
            scan.ready.append(name)
    return scan


@sensor(
    job=participant_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds each new complete landing/<participant>/ folder as a partition and runs it.",
)
def participants_sensor(context: SensorEvaluationContext, lake: LakeResource) -> SensorResult | SkipReason:
    scan = scan_landing(lake.paths.landing)
    for name, reason in scan.invalid.items():
        context.log.warning(f"skipping landing folder {name!r}: {reason}")
    for name, reason in scan.incomplete.items():
        context.log.info(f"waiting for landing folder {name!r}: {reason}")
    known = set(context.instance.get_dynamic_partitions(participants_partitions.name))
    new = [name for name in scan.ready if name not in known]
    if not new:
        return SkipReason(
            f"no new participants ({len(scan.ready)} ready and known, {len(scan.invalid)} invalid, "
            f"{len(scan.incomplete)} incomplete)"
        )
    context.log.info(f"adding {len(new)} participant(s): {', '.join(new[:20])}")
    return SensorResult(
        run_requests=[RunRequest(partition_key=name, run_key=f"participant:{name}") for name in new],
        dynamic_partitions_requests=[participants_partitions.build_add_request(new)],
    )


def participants_signature(participants: list[str]) -> str:
    return hashlib.sha256(json.dumps(sorted(participants)).encode()).hexdigest()[:16]


def trained_participants(instance) -> list[str] | None:
    """Participants covered by the latest training run, from its materialization metadata."""
    event = instance.get_latest_materialization_event(AssetKey(TRAINING_ENTRY_ASSET))
    if event is None or event.asset_materialization is None:
        return None
    entry = event.asset_materialization.metadata.get("participants")
    return list(entry.value) if entry is not None else []


@schedule(
    job=training_job,
    cron_schedule="0 3 * * *",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Nightly: re-train and re-report when new participants landed since the last model.",
)
def retrain_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    processed = sorted(context.instance.get_materialized_partitions(AssetKey(LAST_PARTICIPANT_ASSET)))
    if not processed:
        return SkipReason("no participant has been processed yet")
    trained = trained_participants(context.instance)
    if trained is not None:
        new = sorted(set(processed) - set(trained))
        if not new:
            return SkipReason(f"no new participants since the last training ({len(trained)} covered)")
    return RunRequest(
        run_key=f"train:{participants_signature(processed)}", tags={"pov/participants": str(len(processed))}
    )
