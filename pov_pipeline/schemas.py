"""Arrow schemas of every table in the data lake.

One place defines what each table holds, so the pure layer, the IO manager and DuckDB agree.
Units live in column names (``t_us``, ``x_px``, ``duration_ms``, ``amplitude_deg``).
Tables are written with these schemas exactly (``table.cast(schema)``), in a fixed row order.
"""

from __future__ import annotations

import re

import pyarrow as pa

#: Participant ids become partition keys and path segments, so they are validated everywhere.
PARTICIPANT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: The three answers a participant can give to "does the caption mention the central object?".
ANSWER_LABELS: tuple[str, ...] = ("yes", "no", "unsure")

#: Per-sample event labels, in this order (the int8 code of a label is its index).
SAMPLE_LABELS: tuple[str, ...] = ("fixation", "saccade", "pso", "blink", "lost", "unclassified")

#: AOI ids that are not AOIs of the study.
AOI_BACKGROUND = "background"
AOI_OFF_SCREEN = "off_screen"


def validate_participant_id(participant_id: str) -> str:
    """Return ``participant_id`` unchanged, or raise ``ValueError`` naming the rule it breaks."""
    if not isinstance(participant_id, str) or not PARTICIPANT_ID_PATTERN.fullmatch(participant_id):
        raise ValueError(
            f"invalid participant id {participant_id!r}: expected 1-64 characters from "
            "A-Z a-z 0-9 _ - (it becomes a partition key and a folder name)"
        )
    return participant_id


STIMULI = pa.schema(
    [
        ("stimulus_id", pa.string()),
        ("image_file", pa.string()),  # relative to the study folder
        ("image_sha256", pa.string()),
        ("caption", pa.string()),
        ("condition", pa.string()),  # central | peripheral | ambiguous
        ("central_object", pa.string()),
        ("mentioned_object", pa.string()),  # object the caption names; "" if none clearly
        ("image_left_px", pa.int32()),  # placement of the image on the screen
        ("image_top_px", pa.int32()),
        ("image_width_px", pa.int32()),
        ("image_height_px", pa.int32()),
        ("screen_width_px", pa.int32()),
        ("screen_height_px", pa.int32()),
    ]
)

AOIS = pa.schema(
    [
        ("stimulus_id", pa.string()),
        ("aoi_id", pa.string()),  # "obj:<label>" or "word:<index>"
        ("aoi_kind", pa.string()),  # object | word
        ("label", pa.string()),  # object name or the word as printed
        ("shape", pa.string()),  # rect | polygon | ellipse
        ("x0_px", pa.float32()),  # bounding box in screen px
        ("y0_px", pa.float32()),
        ("x1_px", pa.float32()),
        ("y1_px", pa.float32()),
        ("points_px", pa.list_(pa.float32())),  # polygon: x0,y0,x1,y1,...; ellipse: cx,cy,rx,ry
        ("word_index", pa.int32()),  # caption word position, -1 for objects
        ("is_central", pa.bool_()),
    ]
)

RAW_GAZE = pa.schema(
    [
        ("participant", pa.string()),
        ("trial", pa.int32()),
        ("stimulus_id", pa.string()),
        ("t_us", pa.int64()),  # tracker clock
        ("x_px", pa.float32()),  # NaN where the sample was lost
        ("y_px", pa.float32()),
        ("pupil", pa.float32()),  # tracker units, NaN when not recorded
        ("valid", pa.bool_()),
        ("eye", pa.string()),  # left | right (binocular files give two rows per sample)
    ]
)

RESPONSES = pa.schema(
    [
        ("participant", pa.string()),
        ("trial", pa.int32()),
        ("stimulus_id", pa.string()),
        ("response", pa.string()),  # one of ANSWER_LABELS
        ("rt_ms", pa.float32()),
    ]
)

SESSIONS = pa.schema(
    [
        ("participant", pa.string()),
        ("tracker", pa.string()),
        ("format", pa.string()),
        ("gaze_file", pa.string()),
        ("sampling_rate_hz", pa.float64()),
        ("screen_width_px", pa.int32()),
        ("screen_height_px", pa.int32()),
        ("screen_width_mm", pa.float64()),
        ("screen_height_mm", pa.float64()),
        ("viewing_distance_mm", pa.float64()),
        ("eye", pa.string()),
    ]
)


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema(list(columns))


_S, _I32, _I64, _F64, _B = pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()
_TRIAL_KEY = (("participant", _S), ("trial", _I32), ("stimulus_id", _S))

#: Event columns shared by ``gaze_events``, ``fixations`` and ``aoi_hits`` (times on the tracker
#: clock in ms; ``start_index``/``end_index`` index the trial's samples, inclusive).
_EVENT_COLUMNS = (
    ("eye", _S),
    ("event_index", _I32),
    ("event", _S),
    ("onset_ms", _F64),
    ("offset_ms", _F64),
    ("duration_ms", _F64),
    ("start_index", _I64),
    ("end_index", _I64),
    ("n_samples", _I64),
    ("x_px", _F64),
    ("y_px", _F64),
    ("x_deg", _F64),
    ("y_deg", _F64),
    ("dispersion_deg", _F64),
    ("amplitude_deg", _F64),
    ("peak_velocity_deg_s", _F64),
    ("start_x_px", _F64),
    ("start_y_px", _F64),
    ("end_x_px", _F64),
    ("end_y_px", _F64),
    ("onset_in_trial_ms", _F64),
)

GAZE_EVENTS = _schema(*_TRIAL_KEY, *_EVENT_COLUMNS)
#: Its string columns repeat a few values over every sample: dictionary-encoded, they are a code
#: per row in memory (pandas categoricals) and are written without re-encoding. DuckDB reads
#: them as VARCHAR like any other string column.
_D = pa.dictionary(pa.int32(), pa.string())
SAMPLE_LABELS_TABLE = _schema(
    ("participant", _D), ("trial", _I32), ("stimulus_id", _D), ("t_us", _I64), ("eye", _D), ("label", _D)
)
FIXATIONS = _schema(*_TRIAL_KEY, *_EVENT_COLUMNS, ("fixation_index", _I32))
AOI_HITS = _schema(
    *FIXATIONS, ("aoi_id", _S), ("aoi_kind", _S), ("distance_deg", _F64), ("n_candidates", _I32)
)
#: Per session and eye: the systematic gaze offset estimated from the AOIs (``gaze.drift``).
GAZE_OFFSETS = _schema(
    ("participant", _S),
    ("eye", _S),
    ("offset_x_px", _F64),
    ("offset_y_px", _F64),
    ("offset_x_deg", _F64),
    ("offset_y_deg", _F64),
    ("n_fixations", _I64),
    ("inside_share_before", _F64),
    ("inside_share_after", _F64),
    ("applied", _B),
)
AOI_DWELL = _schema(
    *_TRIAL_KEY,
    ("aoi_id", _S),
    ("aoi_kind", _S),
    ("time_to_first_fixation_ms", _F64),
    ("first_fixation_duration_ms", _F64),
    ("dwell_time_ms", _F64),
    ("dwell_share", _F64),
    ("fixation_count", _I32),
    ("visit_count", _I32),
    ("revisit_count", _I32),
)
AOI_SEQUENCES = _schema(
    *_TRIAL_KEY,
    ("sequence", pa.list_(_S)),
    ("dwell_ms", pa.list_(_F64)),
    ("n_fixations", _I32),
    ("n_elements", _I32),
    ("n_distinct_aois", _I32),
    ("stationary_entropy_bits", _F64),
    ("transition_entropy_bits", _F64),
    ("stationary_entropy_norm", _F64),
    ("transition_entropy_norm", _F64),
)
TRANSITIONS = _schema(*_TRIAL_KEY, ("from_aoi", _S), ("to_aoi", _S), ("count", _I32), ("prob", _F64))
GAZE_QUALITY = _schema(
    ("participant", _S),
    ("trial", _I32),
    ("eye", _S),
    ("stimulus_id", _S),
    ("n_samples", _I64),
    ("n_valid", _I64),
    ("duration_ms", _F64),
    ("track_loss_pct", _F64),
    ("off_screen_pct", _F64),
    ("precision_rms_s2s_deg", _F64),
    ("precision_std_deg", _F64),
    ("n_precision_windows", _I64),
    ("nominal_sampling_rate_hz", _F64),
    ("effective_sampling_rate_hz", _F64),
    ("flag_track_loss", _B),
    ("flag_precision_rms", _B),
    ("flag_precision_std", _B),
    ("flag_off_screen", _B),
    ("flag_low_effective_rate", _B),
    ("flag_rate_mismatch", _B),
    ("flag_too_few_samples", _B),
    ("flag_no_precision", _B),
    ("flag_any", _B),
    ("flags", _S),
)

TRUTH_TRIALS = _schema(*_TRIAL_KEY, ("p_yes", _F64), ("p_no", _F64), ("p_unsure", _F64))

#: Tables whose schema is fixed here; the IO manager casts them on write. Tables of later
#: stages register their schemas next to the code that builds them.
TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "stimuli": STIMULI,
    "aois": AOIS,
    "raw_gaze": RAW_GAZE,
    "responses": RESPONSES,
    "sessions": SESSIONS,
    "gaze_events": GAZE_EVENTS,
    "sample_labels": SAMPLE_LABELS_TABLE,
    "fixations": FIXATIONS,
    "gaze_offsets": GAZE_OFFSETS,
    "aoi_hits": AOI_HITS,
    "aoi_dwell": AOI_DWELL,
    "aoi_sequences": AOI_SEQUENCES,
    "transitions": TRANSITIONS,
    "gaze_quality": GAZE_QUALITY,
    "truth_trials": TRUTH_TRIALS,
}
