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

#: Tables whose schema is fixed here; the IO manager casts them on write. Tables of later
#: stages register their schemas next to the code that builds them.
TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "stimuli": STIMULI,
    "aois": AOIS,
    "raw_gaze": RAW_GAZE,
    "responses": RESPONSES,
    "sessions": SESSIONS,
}
