"""Materialize the whole pipeline through a real Dagster instance, skipping what is up to date.

Used by ``pov demo`` and ``pov materialize``. Staleness is decided from metadata Dagster already
stores: the study fingerprint recorded by ``stimuli``, the per-participant input fingerprints
recorded by ``raw_gaze``, and the participants covered by the last training run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import AssetKey, DagsterInstance, Definitions
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from pov_pipeline.assets.ingest import participant_fingerprint
from pov_pipeline.automation import scan_landing, trained_participants
from pov_pipeline.ingest.study import study_fingerprint
from pov_pipeline.jobs import TRAINING_ENTRY_ASSET
from pov_pipeline.lake import LakePaths
from pov_pipeline.partitions import participants_partitions

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class PipelineRun:
    """What one ``materialize_pipeline`` call did."""

    participants: list[str] = field(default_factory=list)
    study_rebuilt: bool = False
    participants_run: list[str] = field(default_factory=list)
    training_run: bool = False
    invalid_folders: dict[str, str] = field(default_factory=dict)
    failed_participants: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _latest_metadata(instance: DagsterInstance, asset: str, partition: str | None = None) -> dict | None:
    if partition is None:
        event = instance.get_latest_materialization_event(AssetKey(asset))
        materialization = event.asset_materialization if event else None
    else:
        events = instance.fetch_materializations(_records_filter(asset, partition), limit=1).records
        materialization = events[0].asset_materialization if events else None
    if materialization is None:
        return None
    return {key: value.value for key, value in materialization.metadata.items()}


def _records_filter(asset: str, partition: str):
    from dagster import AssetRecordsFilter

    return AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition])


def _contiguous_blocks(ordered: list[str], selected: set[str]) -> list[tuple[str, str]]:
    """Split the selected keys into runs of neighbours in partition order (one run per block)."""
    blocks: list[tuple[str, str]] = []
    start: str | None = None
    previous: str | None = None
    for key in ordered:
        if key in selected:
            start = start or key
            previous = key
        elif start is not None:
            blocks.append((start, previous))  # type: ignore[arg-type]
            start = None
    if start is not None:
        blocks.append((start, previous))  # type: ignore[arg-type]
    return blocks


class JobFailedError(RuntimeError):
    """A job run failed; ``failed_participants`` names those whose input was at fault."""

    def __init__(self, message: str, failed_participants: dict[str, str]):
        super().__init__(message)
        self.failed_participants = failed_participants


def _execute(
    defs: Definitions, job_name: str, instance: DagsterInstance, tags: dict[str, str] | None = None
) -> None:
    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(
        instance=instance, tags=tags or {}, run_config=QUIET_RUN_CONFIG, raise_on_error=False
    )
    if result.success:
        return
    failures: list[str] = []
    failed_participants: dict[str, str] = {}
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        error, messages = data.error, []
        while error is not None:  # the step error wraps the user's exception as its cause
            messages.append(error.message.strip())
            error = error.cause
        failures.append(f"{event.step_key}: {messages[-1] if messages else ''}")
        user_data = data.user_failure_data
        if user_data is not None and "failed_participants" in user_data.metadata:
            failed_participants.update(user_data.metadata["failed_participants"].value)
    message = f"{job_name} failed (run {result.run_id}):\n" + "\n".join(failures)
    raise JobFailedError(message, failed_participants)


def _run_participant_block(
    defs: Definitions,
    instance: DagsterInstance,
    ordered: list[str],
    first: str,
    last: str,
    run: PipelineRun,
    progress: Callable[[str], None],
) -> None:
    """Run one block of participants; if some fail on their input, run the others again.

    Dagster cannot fail single partitions of a multi-partition step, so a bad participant stops
    the block's downstream steps for everyone. The ingest assets name the bad participants; the
    rest are then run again without them, and the bad ones are reported.
    """
    tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
    try:
        _execute(defs, "participant_job", instance, tags=tags)
        return
    except JobFailedError as failure:
        if not failure.failed_participants:
            raise
        bad = failure.failed_participants
    for participant, message in sorted(bad.items()):
        progress(f"      FAILED {participant}: {message}")
    run.failed_participants.update(bad)
    block = ordered[ordered.index(first) : ordered.index(last) + 1]
    remaining = [p for p in block if p not in bad]
    for start, end in _contiguous_blocks(block, set(remaining)):
        _execute(
            defs,
            "participant_job",
            instance,
            tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
        )


def materialize_pipeline(
    defs: Definitions,
    instance: DagsterInstance,
    paths: LakePaths,
    *,
    force: bool = False,
    progress: Callable[[str], None] = print,
) -> PipelineRun:
    """Bring every asset up to date: study stage, new or changed participants, then training."""
    run = PipelineRun()
    scan = scan_landing(paths.landing)
    run.invalid_folders = {**scan.invalid, **scan.incomplete}
    for name, reason in run.invalid_folders.items():
        progress(f"  skipping landing/{name}: {reason}")
    run.participants = scan.ready
    known = set(instance.get_dynamic_partitions(participants_partitions.name))
    new = [p for p in scan.ready if p not in known]
    if new:
        instance.add_dynamic_partitions(participants_partitions.name, new)

    study_fp = study_fingerprint(paths.study)
    stimuli_meta = _latest_metadata(instance, "stimuli")
    run.study_rebuilt = force or stimuli_meta is None or stimuli_meta.get("study_fingerprint") != study_fp
    if run.study_rebuilt:
        progress("[1/3] study: stimuli, AOIs, text and image features ...")
        started = time.perf_counter()
        _execute(defs, "study_job", instance)
        run.seconds["study"] = time.perf_counter() - started
    else:
        progress("[1/3] study: up to date, skipped")

    # A participant is up to date when every per-participant asset has a materialization for it
    # and its delivered files still have the fingerprint recorded by raw_gaze.
    participant_assets = defs.resolve_job_def("participant_job").asset_layer.selected_asset_keys
    complete = set(scan.ready)
    for key in participant_assets:
        complete &= set(instance.get_materialized_partitions(key))
    stale: set[str] = set()
    for participant in scan.ready:
        if force or run.study_rebuilt or participant not in complete:
            stale.add(participant)
            continue
        meta = _latest_metadata(instance, "raw_gaze", participant)
        fingerprint = participant_fingerprint(paths.landing / participant)
        if meta is None or meta.get("input_fingerprints", {}).get(participant) != fingerprint:
            stale.add(participant)
    run.participants_run = sorted(stale)
    if stale:
        ordered = [
            p for p in instance.get_dynamic_partitions(participants_partitions.name) if p in set(scan.ready)
        ]
        blocks = _contiguous_blocks(ordered, stale)
        progress(f"[2/3] participants: {len(stale)} to process in {len(blocks)} run(s) ...")
        started = time.perf_counter()
        for index, (first, last) in enumerate(blocks, start=1):
            progress(f"      run {index}/{len(blocks)}: {first} .. {last}")
            _run_participant_block(defs, instance, ordered, first, last, run, progress)
        run.seconds["participants"] = time.perf_counter() - started
    else:
        progress(f"[2/3] participants: all {len(scan.ready)} up to date, skipped")

    if defs.resolve_job_def("training_job").graph.node_defs:
        trained = trained_participants(instance)
        good = set(scan.ready) - set(run.failed_participants)
        run.training_run = (
            force or bool(stale) or run.study_rebuilt or trained is None or set(trained) != good
        )
        if run.training_run:
            progress(f"[3/3] training and evaluation over {len(good)} participants ...")
            started = time.perf_counter()
            _execute(defs, "training_job", instance)
            run.seconds["training"] = time.perf_counter() - started
        else:
            progress("[3/3] training: up to date, skipped")
    return run


__all__ = ["TRAINING_ENTRY_ASSET", "PipelineRun", "materialize_pipeline", "study_fingerprint"]
