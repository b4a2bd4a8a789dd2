"""Ingest assets: each participant's raw gaze and responses, read from ``landing/<id>/``."""


import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    asset,
)

from pov_pipeline.ingest import read_gaze, read_responses, read_session
from pov_pipeline.partitions import participants_partitions, single_run_backfill
from pov_pipeline.resources import LakeResource
from pov_pipeline.schemas import RAW_GAZE, RESPONSES, SESSIONS, validate_participant_id


def participant_fingerprint(landing_dir: Path) -> str:
    """SHA-256 over the names and bytes of a participant's delivered files (truth excluded).

    Stored in materialization metadata, so a re-run can tell which participants changed.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in landing_dir.iterdir() if p.is_file()):
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _participant_dir(lake: LakeResource, participant: str) -> Path:
    return lake.paths.landing / validate_participant_id(participant)


class RawGazeConfig(Config):
    """Limits applied while reading a participant's gaze export."""

    max_file_bytes: int = 2 * 1024**3
    max_sampling_rate_mismatch_pct: float = 5.0
    max_track_loss_pct: float = 30.0


def _check_results(samples: pa.Table, reports: dict[str, dict], config: RawGazeConfig) -> Iterator[AssetCheckResult]:
    frame = samples.select(["participant", "trial", "eye", "t_us", "valid"]).to_pandas()
    key = frame["participant"].astype(str) + "/" + frame["trial"].astype(str) + "/" + frame["eye"].astype(str)
    same_group = key.to_numpy()[1:] == key.to_numpy()[:-1]
    dt = np.diff(frame["t_us"].to_numpy())[same_group]
    non_monotonic = int((dt <= 0).sum())
    yield AssetCheckResult(
        check_name="timestamps_monotonic",
        passed=bool(non_monotonic == 0),
        metadata={"non_increasing_steps": non_monotonic},
    )

    mismatches = {}
    for participant, report in reports.items():
        declared = report.get("declared_rate_hz")
        measured = report.get("measured_rate_hz")
        if declared and measured:
            mismatch_pct = 100.0 * abs(measured - declared) / declared
            mismatches[participant] = round(mismatch_pct, 2)
    irregular = 0.0
    if dt.size:
        median_dt = float(np.median(dt))
        irregular = float(np.mean(np.abs(dt - median_dt) > 0.5 * median_dt)) * 100.0
    worst = max(mismatches.values(), default=0.0)
    yield AssetCheckResult(
        check_name="sampling_rate_regular",
        passed=bool(worst <= config.max_sampling_rate_mismatch_pct and irregular <= 5.0),
        severity=AssetCheckSeverity.WARN,
        metadata={
            "declared_vs_measured_mismatch_pct": MetadataValue.json(mismatches),
            "irregular_intervals_pct": round(irregular, 3),
        },
    )

    loss_pct = 100.0 * (1.0 - frame["valid"].mean()) if len(frame) else 100.0
    yield AssetCheckResult(
        check_name="track_loss_ratio",
        passed=bool(loss_pct <= config.max_track_loss_pct),
        severity=AssetCheckSeverity.WARN,
        metadata={"track_loss_pct": round(float(loss_pct), 3), "threshold_pct": config.max_track_loss_pct},
    )


@asset(
    group_name="ingest",
    io_manager_key="lake_io_manager",
    partitions_def=participants_partitions,
    backfill_policy=single_run_backfill,
    code_version="1",
    check_specs=[
        AssetCheckSpec("timestamps_monotonic", asset="raw_gaze", description="t_us strictly increases within a trial and eye"),
        AssetCheckSpec("sampling_rate_regular", asset="raw_gaze", description="measured rate matches session.json; regular intervals"),
        AssetCheckSpec("track_loss_ratio", asset="raw_gaze", description="share of lost samples under the threshold"),
    ],
)
def raw_gaze(context: AssetExecutionContext, lake: LakeResource, config: RawGazeConfig) -> Iterator:
    """Canonical gaze samples (one row per eye per sample) from the participant's vendor export."""
    tables: list[pa.Table] = []
    reports: dict[str, dict] = {}
    fingerprints: dict[str, str] = {}
    for participant in context.partition_keys:
        folder = _participant_dir(lake, participant)
        session = read_session(folder / "session.json")
        result = read_gaze(folder / session.gaze_file, session, participant, max_bytes=config.max_file_bytes)
        tables.append(result.samples)
        reports[participant] = result.report
        fingerprints[participant] = participant_fingerprint(folder)
        context.log.info(f"{participant}: {result.samples.num_rows:,} samples from {session.gaze_file}")
    samples = pa.concat_tables(tables).cast(RAW_GAZE) if tables else RAW_GAZE.empty_table()
    yield Output(
        samples,
        metadata={
            "n_samples": MetadataValue.int(samples.num_rows),
            "reader_report": MetadataValue.json(reports),
            "input_fingerprints": MetadataValue.json(fingerprints),
        },
    )
    yield from _check_results(samples, reports, config)


@asset(
    group_name="ingest",
    io_manager_key="lake_io_manager",
    partitions_def=participants_partitions,
    backfill_policy=single_run_backfill,
    code_version="1",
)
def sessions(context: AssetExecutionContext, lake: LakeResource) -> Output[pa.Table]:
    """The recording set-up of each participant (tracker, rate, screen, distance) from session.json."""
    rows = []
    for participant in context.partition_keys:
        session = read_session(_participant_dir(lake, participant) / "session.json")
        if session.participant_id != participant:
            raise ValueError(
                f"landing/{participant}/session.json: expected participant_id {participant!r}, "
                f"found {session.participant_id!r}"
            )
        rows.append(
            {
                "participant": participant,
                "tracker": session.tracker,
                "format": session.format,
                "gaze_file": session.gaze_file,
                "sampling_rate_hz": float(session.sampling_rate_hz),
                "screen_width_px": int(session.screen_px[0]),
                "screen_height_px": int(session.screen_px[1]),
                "screen_width_mm": float(session.screen_mm[0]),
                "screen_height_mm": float(session.screen_mm[1]),
                "viewing_distance_mm": float(session.viewing_distance_mm),
                "eye": session.eye,
            }
        )
    table = pa.Table.from_pylist(rows, schema=SESSIONS)
    return Output(table, metadata={"trackers": MetadataValue.json(sorted(set(table.column("tracker").to_pylist())))})


@asset(
    group_name="ingest",
    io_manager_key="lake_io_manager",
    partitions_def=participants_partitions,
    backfill_policy=single_run_backfill,
    code_version="1",
)
def responses(context: AssetExecutionContext, lake: LakeResource, stimuli: pd.DataFrame) -> Output[pa.Table]:
    """The participant's answer (yes / no / unsure) and response time per trial."""
    known = set(stimuli["stimulus_id"])
    tables = []
    unknown: dict[str, list[str]] = {}
    for participant in context.partition_keys:
        table = read_responses(_participant_dir(lake, participant) / "responses.csv", participant)
        bad = sorted(set(table.column("stimulus_id").to_pylist()) - known)
        if bad:
            unknown[participant] = bad
        tables.append(table)
    if unknown:
        raise ValueError(f"responses.csv names stimulus ids that are not in study/stimuli.csv: {json.dumps(unknown)[:500]}")
    table = pa.concat_tables(tables).cast(RESPONSES) if tables else RESPONSES.empty_table()
    counts = table.column("response").value_counts().to_pylist()
    return Output(
        table,
        metadata={
            "n_responses": MetadataValue.int(table.num_rows),
            "answers": MetadataValue.json({c["values"]: c["counts"] for c in counts}),
        },
    )
