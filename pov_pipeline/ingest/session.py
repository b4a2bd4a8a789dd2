"""``session.json`` (how a participant was recorded) and ``responses.csv`` (what they answered)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pov_pipeline.ingest._delimited import read_delimited
from pov_pipeline.ingest._lines import parse_numbers, read_lines
from pov_pipeline.ingest.errors import GazeFormatError
from pov_pipeline.schemas import ANSWER_LABELS, PARTICIPANT_ID_PATTERN, RESPONSES, validate_participant_id

#: Formats a session may declare; ``auto`` sniffs the file.
GAZE_FORMATS: tuple[str, ...] = ("eyelink_asc", "tobii_prolab_tsv", "tobii_sdk_tsv", "csv", "auto")
SESSION_EYES: tuple[str, ...] = ("left", "right", "binocular")
#: Keys a ``csv_columns`` mapping may use (``t``, ``x`` and ``y`` are required for format ``csv``).
CSV_COLUMN_KEYS: tuple[str, ...] = ("t", "x", "y", "pupil", "validity", "trial", "stimulus_id", "eye")
#: Size guard for ``session.json``.
MAX_SESSION_BYTES = 1024**2
#: Size guard for ``responses.csv`` (a few kB per participant in practice).
MAX_RESPONSES_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class SessionInfo:
    """How one participant was recorded: the fields of ``session.json``.

    Attributes
    ----------
    participant_id:
        Matches ``schemas.PARTICIPANT_ID_PATTERN``.
    tracker:
        Free-text tracker name (e.g. ``"SR Research EyeLink 1000 Plus"``).
    format:
        One of :data:`GAZE_FORMATS`.
    gaze_file:
        File name of the gaze export, inside the participant's landing folder.
    sampling_rate_hz:
        Declared sampling rate.
    screen_px:
        Screen size ``(width, height)`` in pixels.
    screen_mm:
        Screen size ``(width, height)`` in millimetres.
    viewing_distance_mm:
        Eye-to-screen distance.
    eye:
        ``left``, ``right`` or ``binocular``.
    csv_columns:
        For format ``csv``: canonical name (:data:`CSV_COLUMN_KEYS`) → column name in the file.
    """

    participant_id: str
    tracker: str
    format: str
    gaze_file: str
    sampling_rate_hz: float
    screen_px: tuple[int, int]
    screen_mm: tuple[float, float]
    viewing_distance_mm: float
    eye: str
    csv_columns: Mapping[str, str | None] | None = None


def _number(path: Path, doc: Mapping[str, Any], key: str, *, positive: bool = True) -> float:
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GazeFormatError(path, f"a number for {key!r}", value, column=key)
    if positive and value <= 0:
        raise GazeFormatError(path, f"a positive number for {key!r}", value, column=key)
    return float(value)


def _pair(path: Path, doc: Mapping[str, Any], key: str, *, integer: bool) -> tuple:
    value = doc[key]
    kind = "integers" if integer else "numbers"
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise GazeFormatError(path, f"a list of two positive {kind} for {key!r}", value, column=key)
    out = []
    for item in value:
        ok = isinstance(item, int | float) and not isinstance(item, bool) and math.isfinite(item) and item > 0
        if integer:
            ok = ok and float(item).is_integer()
        if not ok:
            raise GazeFormatError(path, f"a list of two positive {kind} for {key!r}", value, column=key)
        out.append(int(item) if integer else float(item))
    return tuple(out)


def _string(path: Path, doc: Mapping[str, Any], key: str, choices: tuple[str, ...] | None = None) -> str:
    value = doc[key]
    if not isinstance(value, str) or not value.strip():
        raise GazeFormatError(path, f"a non-empty string for {key!r}", value, column=key)
    if choices is not None and value not in choices:
        raise GazeFormatError(path, f"{key!r} to be one of {', '.join(choices)}", value, column=key)
    return value


def read_session(path: str | PathLike[str]) -> SessionInfo:
    """Read and validate ``session.json``.

    Every field is checked for presence and type; the error names the field (``column``) and the
    value found. ``tracker`` and ``csv_columns`` may be omitted; unknown keys are ignored so a lab
    can keep its own notes in the file.

    Parameters
    ----------
    path:
        The ``session.json`` file.

    Raises
    ------
    GazeFormatError
        Missing file, invalid JSON (with its line), a missing field or a field of the wrong type.
    """
    path = Path(path)
    try:
        # A session file is a few hundred bytes; refuse a huge one before reading it into memory.
        size = path.stat().st_size
        if size > MAX_SESSION_BYTES:
            expected = f"a session.json of at most {MAX_SESSION_BYTES:,} bytes"
            raise GazeFormatError(path, expected, f"{size:,} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GazeFormatError(path, "a session.json file", "no such file") from None
    except IsADirectoryError:
        raise GazeFormatError(path, "a session.json file", "a folder") from None
    except UnicodeDecodeError as exc:
        raise GazeFormatError(path, "UTF-8 JSON", f"byte 0x{exc.object[exc.start]:02x}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GazeFormatError(path, "valid JSON", exc.msg, line=exc.lineno) from None
    if not isinstance(doc, dict):
        raise GazeFormatError(path, "a JSON object", type(doc).__name__)
    required = (
        "participant_id",
        "format",
        "gaze_file",
        "sampling_rate_hz",
        "screen_px",
        "screen_mm",
        "viewing_distance_mm",
        "eye",
    )
    for key in required:
        if key not in doc or doc[key] is None:
            raise GazeFormatError(path, f"the field {key!r}", "nothing", column=key)

    participant_id = doc["participant_id"]
    if not isinstance(participant_id, str) or not PARTICIPANT_ID_PATTERN.fullmatch(participant_id):
        raise GazeFormatError(
            path,
            "'participant_id' of 1-64 characters from A-Z a-z 0-9 _ -",
            participant_id,
            column="participant_id",
        )
    tracker = doc.get("tracker") or ""
    if not isinstance(tracker, str):
        raise GazeFormatError(path, "a string for 'tracker'", tracker, column="tracker")
    fmt = _string(path, doc, "format", GAZE_FORMATS)
    gaze_file = _string(path, doc, "gaze_file")
    # The gaze file must stay inside the participant's folder: it is joined to a path we trust.
    if (
        gaze_file != PurePosixPath(gaze_file).name
        or gaze_file != PureWindowsPath(gaze_file).name
        or gaze_file in (".", "..")
    ):
        raise GazeFormatError(path, "a plain file name for 'gaze_file'", gaze_file, column="gaze_file")
    csv_columns = doc.get("csv_columns")
    if csv_columns is not None:
        if not isinstance(csv_columns, dict):
            raise GazeFormatError(
                path, "an object (or null) for 'csv_columns'", csv_columns, column="csv_columns"
            )
        for key, value in csv_columns.items():
            if key not in CSV_COLUMN_KEYS:
                raise GazeFormatError(
                    path, f"'csv_columns' keys from {', '.join(CSV_COLUMN_KEYS)}", key, column="csv_columns"
                )
            if value is not None and not isinstance(value, str):
                raise GazeFormatError(
                    path, f"a column name for csv_columns[{key!r}]", value, column="csv_columns"
                )
    if fmt == "csv" and csv_columns is not None:
        missing = [k for k in ("t", "x", "y") if not csv_columns.get(k)]
        if missing:
            raise GazeFormatError(path, f"csv_columns to name {missing}", csv_columns, column="csv_columns")
    return SessionInfo(
        participant_id=participant_id,
        tracker=tracker,
        format=fmt,
        gaze_file=gaze_file,
        sampling_rate_hz=_number(path, doc, "sampling_rate_hz"),
        screen_px=_pair(path, doc, "screen_px", integer=True),
        screen_mm=_pair(path, doc, "screen_mm", integer=False),
        viewing_distance_mm=_number(path, doc, "viewing_distance_mm"),
        eye=_string(path, doc, "eye", SESSION_EYES),
        csv_columns=dict(csv_columns) if csv_columns is not None else None,
    )


def read_responses(
    path: str | PathLike[str],
    participant: str,
    *,
    known_stimuli: set[str] | None = None,
    max_bytes: int = MAX_RESPONSES_BYTES,
) -> pa.Table:
    """Read ``responses.csv`` (``trial,stimulus_id,response,rt_ms``) into ``schemas.RESPONSES``.

    Answers are matched case-insensitively after trimming (``"Yes "`` → ``yes``); an empty
    ``rt_ms`` becomes NaN. Rows are sorted by trial.

    Parameters
    ----------
    path:
        The ``responses.csv`` file.
    participant:
        Participant id written into every row.
    known_stimuli:
        The study's stimulus ids; when given, a row naming another id is an error.
    max_bytes:
        Size guard: bigger files are refused before reading.

    Raises
    ------
    GazeFormatError
        Missing columns, a non-integer or repeated trial, an answer outside ``schemas.ANSWER_LABELS``,
        a non-numeric or negative ``rt_ms``, an unknown stimulus id (each naming its line and value).
    """
    validate_participant_id(participant)
    lf = read_lines(path, max_bytes=max_bytes)
    path = lf.path
    table = read_delimited(lf, ",", [])
    needed = ("trial", "stimulus_id", "response", "rt_ms")
    missing = [c for c in needed if c not in table.header]
    if missing:
        raise GazeFormatError(
            path,
            f"columns {', '.join(needed)}",
            ",".join(table.header),
            line=int(np.flatnonzero(lf.first_byte != 0)[0]) + 1,
            note=f"missing {missing}",
        )
    if table.n_rows == 0:
        raise GazeFormatError(path, "one row per trial after the header", "no rows")
    line_numbers = table.line_numbers
    col = {name: table.strings(name) for name in needed}

    trial = parse_numbers(
        col["trial"],
        path=path,
        line_numbers=line_numbers,
        expected="an integer trial",
        column="trial",
        null_tokens=(),
    )
    not_int = np.flatnonzero(
        ~np.isfinite(trial) | (trial != np.round(trial)) | (trial < 0) | (trial > 2**31 - 1)
    )
    if len(not_int):
        i = int(not_int[0])
        raise GazeFormatError(
            path,
            "a non-negative integer trial",
            col["trial"][i].as_py(),
            line=int(line_numbers[i]),
            column="trial",
        )
    trial_i = trial.astype(np.int64)
    order = np.argsort(trial_i, kind="stable")
    dup = np.flatnonzero(np.diff(trial_i[order]) == 0)
    if len(dup):
        i = int(order[dup[0] + 1])
        raise GazeFormatError(
            path, "each trial once", f"trial {trial_i[i]} again", line=int(line_numbers[i]), column="trial"
        )

    response = pc.utf8_lower(col["response"])
    ok = pc.is_in(response, value_set=pa.array(list(ANSWER_LABELS))).to_numpy(zero_copy_only=False)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise GazeFormatError(
            path,
            f"a response from {', '.join(ANSWER_LABELS)}",
            col["response"][i].as_py(),
            line=int(line_numbers[i]),
            column="response",
        )

    rt = parse_numbers(
        col["rt_ms"],
        path=path,
        line_numbers=line_numbers,
        expected="a response time in ms",
        column="rt_ms",
        null_tokens=("", "NA", "nan", "NaN"),
    )
    negative = np.flatnonzero(rt < 0)
    if len(negative):
        i = int(negative[0])
        raise GazeFormatError(
            path,
            "a non-negative response time in ms",
            col["rt_ms"][i].as_py(),
            line=int(line_numbers[i]),
            column="rt_ms",
        )
    stimulus = col["stimulus_id"]
    empty = np.flatnonzero(pc.equal(pc.utf8_length(stimulus), 0).to_numpy(zero_copy_only=False))
    if len(empty):
        i = int(empty[0])
        raise GazeFormatError(path, "a stimulus_id", "", line=int(line_numbers[i]), column="stimulus_id")
    if known_stimuli is not None:
        unknown = np.flatnonzero(
            ~pc.is_in(stimulus, value_set=pa.array(sorted(known_stimuli), pa.string())).to_numpy(
                zero_copy_only=False
            )
        )
        if len(unknown):
            i = int(unknown[0])
            raise GazeFormatError(
                path,
                "a stimulus_id listed in study/stimuli.csv",
                stimulus[i].as_py(),
                line=int(line_numbers[i]),
                column="stimulus_id",
                note=f"{len(unknown)} row(s) name unknown stimuli",
            )
    table = pa.Table.from_arrays(
        [
            pa.array([participant] * table.n_rows, pa.string()),
            pa.array(trial_i.astype(np.int32)),
            stimulus.cast(pa.string()),
            response.cast(pa.string()),
            pa.array(rt.astype(np.float32)),
        ],
        schema=RESPONSES,
    )
    return table.take(pa.array(order))
