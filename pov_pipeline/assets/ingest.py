"""Ingest assets: each participant's raw gaze and responses, read from ``landing/<id>/``.

Failure isolation: a run over many participants (single-run backfill) reads each participant on
its own. When some deliveries are bad, the good partitions are written and recorded as
materialized, and then the step fails with a ``dagster.Failure`` that names every bad participant
and its error (file, line, expected, found). Dagster 1.13 cannot mark single partitions of one step
as failed (dagster-io/dagster#17836), so downstream steps of that run are skipped; the next run over
the good participants (``pov materialize``, the sensor, or a backfill of the missing partitions)
carries them on. See ``docs/bad_input.md``.
"""

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetMaterialization,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from pov_pipeline.ingest import read_gaze, read_responses, read_session
from pov_pipeline.ingest.checks import (
    TrialAlignment,
    align_trials,
    check_gaze_stimuli,
    check_sampling_rate,
    describe_error,
    run_per_participant,
    sampling_rate_mismatch_pct,
)
from pov_pipeline.lake import write_partitions
from pov_pipeline.partitions import participants_partitions, single_run_backfill
from pov_pipeline.resources import LakeResource
from pov_pipeline.schemas import RAW_GAZE, RESPONSES, SESSIONS, validate_participant_id
from pov_pipeline.store import stage


def participant_fingerprint(landing_dir: Path) -> str:
    """SHA-256 over the names and bytes of a participant's delivered files (truth excluded).

    Stored in materialization metadata, so a re-run can tell which participants changed.
    """
    digest = hashlib.sha256()
    for path in sorted((p for p in landing_dir.iterdir() if p.is_file()), key=lambda p: p.name):
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _participant_dir(lake: LakeResource, participant: str) -> Path:
    # The vendor readers need real files: an object-store delivery is copied locally first.
    return stage(lake.paths.landing / validate_participant_id(participant), recursive=False)


class RawGazeConfig(Config):
    """Limits applied while reading a participant's gaze export."""

    max_file_bytes: int = 2 * 1024**3
    max_sampling_rate_mismatch_pct: float = 5.0
    max_sampling_rate_contradiction_pct: float = 20.0
    max_track_loss_pct: float = 30.0


def _isolated_output(
    context: AssetExecutionContext,
    lake: LakeResource,
    tables: dict[str, pa.Table],
    errors: dict[str, BaseException],
    *,
    schema: pa.Schema,
    metadata: dict[str, Any],
    partition_metadata: dict[str, dict[str, Any]] | None = None,
) -> Output:
    """The step's output when every participant worked; otherwise store the good ones and fail.

    The good partitions are written through the lake (atomically, catalog refreshed) and logged as
    materializations of their partition, with the same metadata a normal run records for them,
    before the ``Failure`` is raised.
    """
    if not errors:
        table = pa.concat_tables(list(tables.values())).cast(schema) if tables else schema.empty_table()
        return Output(table, metadata=metadata)
    name = context.asset_key.path[-1]
    written = write_partitions(lake.paths, name, tables)
    for participant, path in written.items():
        extra = (partition_metadata or {}).get(participant, {})
        context.log_event(
            AssetMaterialization(
                asset_key=context.asset_key,
                partition=participant,
                description="written although other participants of the run failed",
                metadata={
                    "row_count": MetadataValue.int(tables[participant].num_rows),
                    "path": MetadataValue.path(str(path)),
                    **extra,
                },
            )
        )
    failed = {participant: describe_error(error) for participant, error in errors.items()}
    for participant, message in failed.items():
        context.log.error(f"{name}[{participant}] failed: {message}")
    raise Failure(
        description=f"{name}: {len(failed)} of {len(failed) + len(tables)} participant(s) failed; "
        f"{len(tables)} written. " + " | ".join(f"{p}: {m}" for p, m in failed.items()),
        metadata={
            "failed_participants": MetadataValue.json(failed),
            "materialized_participants": MetadataValue.json(sorted(written)),
        },
        allow_retries=False,
    )


def _check_results(
    samples: pa.Table,
    reports: dict[str, dict],
    alignments: dict[str, TrialAlignment],
    config: RawGazeConfig,
) -> Iterator[AssetCheckResult]:
    # Compare neighbouring rows on integer codes: no per-sample strings on this hot path.
    same_group = np.ones(max(samples.num_rows - 1, 0), dtype=bool)
    for name in ("participant", "trial", "eye"):
        column = samples.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = column.dictionary_encode().combine_chunks().indices
        codes = column.to_numpy()
        same_group &= codes[1:] == codes[:-1]
    dt = np.diff(samples.column("t_us").to_numpy())[same_group]
    non_monotonic = int((dt <= 0).sum())
    yield AssetCheckResult(
        check_name="timestamps_monotonic",
        passed=bool(non_monotonic == 0),
        metadata={"non_increasing_steps": non_monotonic},
    )

    mismatches = {}
    for participant, report in reports.items():
        mismatch_pct = sampling_rate_mismatch_pct(report)
        if mismatch_pct is not None:
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

    valid = samples.column("valid").to_numpy(zero_copy_only=False)
    loss_pct = 100.0 * (1.0 - valid.mean()) if valid.size else 100.0
    yield AssetCheckResult(
        check_name="track_loss_ratio",
        passed=bool(loss_pct <= config.max_track_loss_pct),
        severity=AssetCheckSeverity.WARN,
        metadata={"track_loss_pct": round(float(loss_pct), 3), "threshold_pct": config.max_track_loss_pct},
    )

    yield AssetCheckResult(
        check_name="trials_match_responses",
        passed=bool(all(a.ok for a in alignments.values())),
        severity=AssetCheckSeverity.WARN,
        metadata={"alignment": MetadataValue.json({p: a.as_metadata() for p, a in alignments.items()})},
    )


@asset(
    group_name="ingest",
    io_manager_key="lake_io_manager",
    partitions_def=participants_partitions,
    backfill_policy=single_run_backfill,
    code_version="2",
    check_specs=[
        AssetCheckSpec(
            "timestamps_monotonic",
            asset="raw_gaze",
            description="t_us strictly increases within a trial and eye",
        ),
        AssetCheckSpec(
            "sampling_rate_regular",
            asset="raw_gaze",
            description="measured rate matches session.json; regular intervals",
        ),
        AssetCheckSpec(
            "track_loss_ratio", asset="raw_gaze", description="share of lost samples under the threshold"
        ),
        AssetCheckSpec(
            "trials_match_responses",
            asset="raw_gaze",
            description="every gaze trial has a response and every response has gaze",
        ),
    ],
)
def raw_gaze(
    context: AssetExecutionContext, lake: LakeResource, config: RawGazeConfig, stimuli: pd.DataFrame
) -> Iterator:
    """Canonical gaze samples (one row per eye per sample) from the participant's vendor export.

    Per participant: the export is read, its measured rate compared with ``session.json`` (a gross
    contradiction fails the participant), stimulus ids checked against the study, and trials matched
    with ``responses.csv`` (missing stimulus ids filled from it; mismatches reported).
    """
    known = set(stimuli["stimulus_id"])
    reports: dict[str, dict] = {}
    fingerprints: dict[str, str] = {}
    alignments: dict[str, TrialAlignment] = {}

    def read_one(participant: str) -> pa.Table:
        folder = _participant_dir(lake, participant)
        session = read_session(folder / "session.json")
        gaze_path = folder / session.gaze_file
        result = read_gaze(gaze_path, session, participant, max_bytes=config.max_file_bytes)
        check_sampling_rate(
            result.report,
            folder / "session.json",
            max_contradiction_pct=config.max_sampling_rate_contradiction_pct,
        )
        samples = result.samples
        try:
            answers = read_responses(folder / "responses.csv", participant)
        except (ValueError, OSError) as exc:
            # responses.csv is judged by the responses asset; here it only helps align trials.
            result.report.setdefault("notes", []).append(f"responses.csv unreadable: {exc}")
        else:
            samples, alignments[participant] = align_trials(samples, answers, gaze_path)
        check_gaze_stimuli(samples, known, gaze_path)
        reports[participant] = result.report
        fingerprints[participant] = participant_fingerprint(folder)
        context.log.info(f"{participant}: {samples.num_rows:,} samples from {session.gaze_file}")
        return samples

    tables, errors = run_per_participant(context.partition_keys, read_one)
    per_partition = {
        p: {
            "reader_report": MetadataValue.json({p: reports[p]}),
            "input_fingerprints": MetadataValue.json({p: fingerprints[p]}),
        }
        for p in tables
    }
    output = _isolated_output(
        context,
        lake,
        tables,
        errors,
        schema=RAW_GAZE,
        metadata={
            "reader_report": MetadataValue.json(reports),
            "input_fingerprints": MetadataValue.json(fingerprints),
            "trial_alignment": MetadataValue.json({p: a.as_metadata() for p, a in alignments.items()}),
        },
        partition_metadata=per_partition,
    )
    n_samples = MetadataValue.int(output.value.num_rows)
    output = Output(output.value, metadata={"n_samples": n_samples, **output.metadata})
    yield output
    yield from _check_results(output.value, reports, alignments, config)


def _session_row(lake: LakeResource, participant: str) -> pa.Table:
    folder = _participant_dir(lake, participant)
    session = read_session(folder / "session.json")
    if session.participant_id != participant:
        raise ValueError(
            f"landing/{participant}/session.json: expected participant_id {participant!r}, "
            f"found {session.participant_id!r}"
        )
    row = {
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
    return pa.Table.from_pylist([row], schema=SESSIONS)


@asset(
    group_name="ingest",
    io_manager_key="lake_io_manager",
    partitions_def=participants_partitions,
    backfill_policy=single_run_backfill,
    code_version="1",
)
def sessions(context: AssetExecutionContext, lake: LakeResource) -> Output[pa.Table]:
    """The recording set-up of each participant (tracker, rate, screen, distance) from session.json."""
    tables, errors = run_per_participant(context.partition_keys, lambda p: _session_row(lake, p))
    trackers = sorted({t.column("tracker")[0].as_py() for t in tables.values()})
    return _isolated_output(
        context, lake, tables, errors, schema=SESSIONS, metadata={"trackers": MetadataValue.json(trackers)}
    )


@asset(
    group_name="ingest",
    io_manager_key="lake_io_manager",
    partitions_def=participants_partitions,
    backfill_policy=single_run_backfill,
    code_version="2",
)
def responses(context: AssetExecutionContext, lake: LakeResource, stimuli: pd.DataFrame) -> Output[pa.Table]:
    """The participant's answer (yes / no / unsure) and response time per trial.

    A row naming a stimulus that is not in ``study/stimuli.csv`` fails the participant (naming the
    line); other participants of the run are still written.
    """
    known = set(stimuli["stimulus_id"])
    tables, errors = run_per_participant(
        context.partition_keys,
        lambda p: read_responses(_participant_dir(lake, p) / "responses.csv", p, known_stimuli=known),
    )
    answers: dict[str, int] = {}
    for table in tables.values():
        for count in table.column("response").value_counts().to_pylist():
            answers[count["values"]] = answers.get(count["values"], 0) + count["counts"]
    return _isolated_output(
        context,
        lake,
        tables,
        errors,
        schema=RESPONSES,
        metadata={
            "n_responses": MetadataValue.int(sum(t.num_rows for t in tables.values())),
            "answers": MetadataValue.json(dict(sorted(answers.items()))),
        },
    )
