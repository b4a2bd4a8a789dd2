"""Gaze-science assets: events, fixations, data quality, AOI hits, dwell, sequences, transitions.

Each asset reads its upstream tables, calls one pure function of ``pov_pipeline.gaze`` per
participant (geometry differs between sessions) and returns a table with metadata.
"""

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pydantic
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetOut,
    Config,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)

from pov_pipeline.assets._config import config_from_params
from pov_pipeline.gaze.aoi import dwell_metrics, map_fixations_to_aois, prepare_stimulus_aois
from pov_pipeline.gaze.detection import (
    DEFAULT_METHOD,
    AdaptiveParams,
    IDTParams,
    IVTParams,
    concat_labels,
    detect_trials,
)
from pov_pipeline.gaze.drift import apply_gaze_offsets
from pov_pipeline.gaze.drift import gaze_offsets as estimate_gaze_offsets
from pov_pipeline.gaze.fixations import fixation_table
from pov_pipeline.gaze.geometry import ScreenGeometry
from pov_pipeline.gaze.quality import quality_flags, trial_quality
from pov_pipeline.gaze.transitions import aoi_sequences as build_aoi_sequences
from pov_pipeline.gaze.transitions import transition_table
from pov_pipeline.partitions import participants_partitions, single_run_backfill

PARTITIONED: dict[str, Any] = {
    "group_name": "gaze",
    "io_manager_key": "lake_io_manager",
    "partitions_def": participants_partitions,
    "backfill_policy": single_run_backfill,
}


IVTConfig = config_from_params(IVTParams, "IVTConfig")
IDTConfig = config_from_params(IDTParams, "IDTConfig")
AdaptiveConfig = config_from_params(AdaptiveParams, "AdaptiveConfig")


class DetectionConfig(Config):
    """Which detector runs, and its parameters (only the chosen method's block is used)."""

    method: str = pydantic.Field(default=DEFAULT_METHOD, description="adaptive | ivt | idt")
    eye_mode: str = pydantic.Field(
        default="average", description="binocular data: average | left | right | best"
    )
    ivt: IVTConfig = pydantic.Field(default_factory=IVTConfig)  # type: ignore[valid-type]
    idt: IDTConfig = pydantic.Field(default_factory=IDTConfig)  # type: ignore[valid-type]
    adaptive: AdaptiveConfig = pydantic.Field(default_factory=AdaptiveConfig)  # type: ignore[valid-type]

    def params(self) -> dict[str, Any]:
        return getattr(self, self.method).model_dump()


def geometry_of(session: pd.Series) -> ScreenGeometry:
    return ScreenGeometry(
        screen_width_px=int(session["screen_width_px"]),
        screen_height_px=int(session["screen_height_px"]),
        screen_width_mm=float(session["screen_width_mm"]),
        screen_height_mm=float(session["screen_height_mm"]),
        viewing_distance_mm=float(session["viewing_distance_mm"]),
    )


def _by_participant(frame: pd.DataFrame, sessions: pd.DataFrame) -> Iterator[tuple[pd.Series, pd.DataFrame]]:
    groups = dict(tuple(frame.groupby("participant", sort=True))) if len(frame) else {}
    for _, session in sessions.sort_values("participant").iterrows():
        yield session, groups.get(session["participant"], frame.iloc[0:0])


@multi_asset(
    outs={
        "gaze_events": AssetOut(
            io_manager_key="lake_io_manager",
            description="Fixations, saccades, PSOs, blinks and lost runs per trial.",
        ),
        "sample_labels": AssetOut(
            io_manager_key="lake_io_manager", description="One event label per gaze sample."
        ),
    },
    group_name="gaze",
    partitions_def=participants_partitions,
    backfill_policy=single_run_backfill,
    # 2: sample_labels' string columns are dictionary-encoded (pandas categoricals).
    code_version="2",
)
def detect_gaze_events(
    context: AssetExecutionContext, config: DetectionConfig, raw_gaze: pd.DataFrame, sessions: pd.DataFrame
) -> Iterator[Output]:
    events_parts, label_parts = [], []
    for session, samples in _by_participant(raw_gaze, sessions):
        labels, events = detect_trials(
            samples,
            geometry_of(session),
            method=config.method,
            params=config.params(),
            eye_mode=config.eye_mode,
        )
        label_parts.append(labels)
        events_parts.append(events)
        context.log.info(f"{session['participant']}: {len(events):,} events from {len(samples):,} samples")
    events = pd.concat(events_parts, ignore_index=True) if events_parts else pd.DataFrame()
    labels = concat_labels(label_parts) if label_parts else pd.DataFrame()
    counts = events["event"].value_counts().to_dict() if len(events) else {}
    label_share = (
        (labels["label"].value_counts(normalize=True) * 100).round(2).to_dict() if len(labels) else {}
    )
    yield Output(
        events,
        output_name="gaze_events",
        metadata={
            "method": config.method,
            "events": MetadataValue.json(counts),
            "params": MetadataValue.json(config.params()),
        },
    )
    yield Output(labels, output_name="sample_labels", metadata={"label_pct": MetadataValue.json(label_share)})


@asset(**PARTITIONED, code_version="1")
def fixations(gaze_events: pd.DataFrame) -> Output[pd.DataFrame]:
    """Fixation events only, numbered in order within each trial (``fixation_index``)."""
    table = fixation_table(gaze_events)
    mean_ms = float(table["duration_ms"].mean()) if len(table) else 0.0
    return Output(table, metadata={"n_fixations": len(table), "mean_duration_ms": round(mean_ms, 1)})


class QualityConfig(Config):
    """Warning thresholds for the per-trial data-quality checks."""

    max_track_loss_pct: float = 20.0
    max_precision_rms_deg: float = 0.5
    max_precision_std_deg: float = 1.0
    max_off_screen_pct: float = 10.0
    window_ms: float = 200.0


@asset(
    **PARTITIONED,
    code_version="1",
    check_specs=[
        AssetCheckSpec(
            "trial_quality_within_thresholds",
            asset="gaze_quality",
            description="share of trials with any quality warning",
        ),
    ],
)
def gaze_quality(config: QualityConfig, raw_gaze: pd.DataFrame, sessions: pd.DataFrame) -> Iterator:
    """Per trial and eye: track loss %, RMS-S2S and STD precision (deg), rates, off-screen %."""
    parts = []
    for session, samples in _by_participant(raw_gaze, sessions):
        quality = trial_quality(
            samples,
            screen_px=(int(session["screen_width_px"]), int(session["screen_height_px"])),
            screen_mm=(float(session["screen_width_mm"]), float(session["screen_height_mm"])),
            viewing_distance_mm=float(session["viewing_distance_mm"]),
            window_ms=config.window_ms,
        )
        flags = quality_flags(
            quality,
            max_track_loss_pct=config.max_track_loss_pct,
            max_precision_rms_deg=config.max_precision_rms_deg,
            max_precision_std_deg=config.max_precision_std_deg,
            max_off_screen_pct=config.max_off_screen_pct,
            expected_sampling_rate_hz=float(session["sampling_rate_hz"]),
        )
        parts.append(flags)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    flag_columns = (
        [c for c in table.columns if c.startswith("flag_") and c != "flag_any"] if len(table) else []
    )
    flagged = table["flag_any"] if len(table) else pd.Series(dtype=bool)
    summary = {c: int(table[c].sum()) for c in flag_columns}
    yield Output(
        table,
        metadata={
            "n_trials": len(table),
            "median_track_loss_pct": float(table["track_loss_pct"].median()) if len(table) else 0.0,
            "median_precision_rms_s2s_deg": float(table["precision_rms_s2s_deg"].median())
            if len(table)
            else 0.0,
            "warnings": MetadataValue.json(summary),
        },
    )
    flagged_pct = 100.0 * float(flagged.mean()) if len(flagged) else 0.0
    yield AssetCheckResult(
        check_name="trial_quality_within_thresholds",
        passed=bool(flagged_pct <= 10.0),
        severity=AssetCheckSeverity.WARN,
        metadata={
            "trials_with_warnings_pct": round(flagged_pct, 2),
            "by_warning": MetadataValue.json(summary),
        },
    )


class DriftConfig(Config):
    """Correction of each session's systematic gaze offset (calibration error) before AOI mapping."""

    enabled: bool = pydantic.Field(default=True, description="estimate and apply the offset")
    max_offset_deg: float = pydantic.Field(default=2.0, description="largest offset searched per axis, deg")
    step_deg: float = pydantic.Field(default=0.05, description="search grid step, deg")
    min_fixations: int = pydantic.Field(default=30, description="fewer fixations: no correction")
    min_gain: float = pydantic.Field(
        default=0.02, description="apply only if the share of fixations inside an AOI rises this much"
    )


@asset(**PARTITIONED, code_version="1")
def gaze_offsets(
    config: DriftConfig, fixations: pd.DataFrame, aois: pd.DataFrame, sessions: pd.DataFrame
) -> Output[pd.DataFrame]:
    """Per session and eye: the systematic gaze offset estimated from where fixations land on the AOIs."""
    parts = []
    for session, session_fixations in _by_participant(fixations, sessions):
        if not len(session_fixations):
            continue
        table = estimate_gaze_offsets(
            session_fixations,
            aois,
            px_per_deg=1.0 / geometry_of(session).deg_per_px,
            max_offset_deg=config.max_offset_deg,
            step_deg=config.step_deg,
            min_fixations=config.min_fixations,
            min_gain=config.min_gain,
        )
        if not config.enabled:
            table[["offset_x_px", "offset_y_px", "offset_x_deg", "offset_y_deg"]] = 0.0
            table["inside_share_after"] = table["inside_share_before"]
            table["applied"] = False
        parts.append(table)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    applied = table[table["applied"]] if len(table) else table
    metadata: dict[str, Any] = {"n_sessions_eyes": len(table), "n_applied": len(applied)}
    if len(applied):
        metadata["median_offset_deg"] = round(
            float((applied["offset_x_deg"] ** 2 + applied["offset_y_deg"] ** 2).pow(0.5).median()), 3
        )
        metadata["inside_share_before_after"] = MetadataValue.json(
            [
                round(float(applied["inside_share_before"].mean()), 4),
                round(float(applied["inside_share_after"].mean()), 4),
            ]
        )
    return Output(table, metadata=metadata)


class AoiConfig(Config):
    """How fixations are mapped to AOIs."""

    tolerance_deg: float = pydantic.Field(
        default=0.5, description="margin around each AOI, degrees of visual angle"
    )
    overlap_rule: str = pydantic.Field(default="smallest", description="smallest | nearest_centroid")


@asset(**PARTITIONED, code_version="2")
def aoi_hits(
    config: AoiConfig,
    fixations: pd.DataFrame,
    gaze_offsets: pd.DataFrame,
    aois: pd.DataFrame,
    sessions: pd.DataFrame,
) -> Output[pd.DataFrame]:
    """One row per fixation with the AOI it landed on, or ``background`` / ``off_screen``.

    ``x_px, y_px`` are the positions that were mapped: the fixation centroid minus the session's
    ``gaze_offsets`` (the ``fixations`` table keeps what the tracker reported).
    """
    parts = []
    corrected = apply_gaze_offsets(fixations, gaze_offsets)
    prepared = prepare_stimulus_aois(aois)  # parsed once for every session
    for session, trial_fixations in _by_participant(corrected, sessions):
        geometry = geometry_of(session)
        parts.append(
            map_fixations_to_aois(
                trial_fixations,
                prepared,
                screen_px=(int(session["screen_width_px"]), int(session["screen_height_px"])),
                tolerance_deg=config.tolerance_deg,
                deg_per_px=geometry.deg_per_px,
                overlap_rule=config.overlap_rule,  # type: ignore[arg-type]
            )
        )
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    kinds = (table["aoi_kind"].value_counts(normalize=True) * 100).round(2).to_dict() if len(table) else {}
    return Output(table, metadata={"n_fixations": len(table), "aoi_kind_pct": MetadataValue.json(kinds)})


@asset(**PARTITIONED, code_version="1")
def aoi_dwell(aoi_hits: pd.DataFrame) -> Output[pd.DataFrame]:
    """Per trial and AOI: time to first fixation, first fixation duration, dwell, visits, revisits."""
    table = dwell_metrics(aoi_hits)
    return Output(table, metadata={"n_rows": len(table)})


class SequenceConfig(Config):
    collapse_repeats: bool = pydantic.Field(
        default=False, description="merge consecutive fixations on one AOI"
    )
    min_fixation_ms: float = pydantic.Field(
        default=80.0,
        ge=0.0,
        description="drop shorter fixations before building sequences and transitions (0: keep all); "
        "80 ms is the usual floor for a fixation that was processed (Rayner 1998)",
    )


@asset(**PARTITIONED, code_version="2")
def aoi_sequences(config: SequenceConfig, aoi_hits: pd.DataFrame) -> Output[pd.DataFrame]:
    """The AOI sequence of each trial with dwell times, and its stationary and transition entropy."""
    table = build_aoi_sequences(
        aoi_hits, collapse_repeats=config.collapse_repeats, min_fixation_ms=config.min_fixation_ms
    )
    return Output(
        table,
        metadata={
            "n_trials": len(table),
            "mean_transition_entropy_bits": float(table["transition_entropy_bits"].mean())
            if len(table)
            else 0.0,
        },
    )


@asset(**PARTITIONED, code_version="2")
def transitions(config: SequenceConfig, aoi_hits: pd.DataFrame) -> Output[pd.DataFrame]:
    """Long-format AOI transition matrices: counts and row-normalised probabilities per trial."""
    table = transition_table(
        aoi_hits, collapse_repeats=config.collapse_repeats, min_fixation_ms=config.min_fixation_ms
    )
    return Output(
        table,
        metadata={
            "n_rows": len(table),
            "n_trials": int(table[["participant", "trial"]].drop_duplicates().shape[0]) if len(table) else 0,
        },
    )
