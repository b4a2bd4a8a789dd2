"""Any delimited gaze file with a time column and x/y in screen pixels → canonical samples."""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pov_pipeline.ingest._delimited import DelimitedTable, read_delimited, time_scale_to_us
from pov_pipeline.ingest._lines import DEFAULT_MAX_BYTES, read_lines
from pov_pipeline.ingest._samples import ReadResult, assemble, declare_session_rate
from pov_pipeline.ingest.errors import GazeFormatError

if TYPE_CHECKING:
    from pov_pipeline.ingest.session import SessionInfo

#: Column names tried, in order, when no mapping names a column.
DEFAULT_COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "t": ("t", "t_us", "t_ms", "t_s", "time", "time_us", "time_ms", "time_s", "timestamp"),
    "x": ("x", "x_px", "gaze_x", "gaze_x_px"),
    "y": ("y", "y_px", "gaze_y", "gaze_y_px"),
    "pupil": ("pupil", "pupil_size", "pupil_diameter", "pupil_h"),
    "validity": ("valid", "validity"),
    "trial": ("trial", "trial_id"),
    "stimulus_id": ("stimulus_id", "stimulus"),
    "eye": ("eye",),
}
_TIME_SUFFIX = re.compile(r"(?:_|\[)(us|µs|μs|ms|s)\]?$", re.IGNORECASE)
_TRUE = ("1", "true", "t", "yes", "y", "valid")
_FALSE = ("0", "false", "f", "no", "n", "invalid", "")


def _resolve_columns(
    table: DelimitedTable, columns: Mapping[str, str | None] | None
) -> dict[str, str | None]:
    resolved: dict[str, str | None] = {}
    for key, candidates in DEFAULT_COLUMN_CANDIDATES.items():
        if columns is not None and key in columns:
            name = columns[key]
            if name is not None and not table.has(name) and name not in table.header:
                raise GazeFormatError(
                    table.path,
                    f"a column {name!r} (mapped to {key!r})",
                    ", ".join(table.header[:12]),
                    line=1,
                    column=key,
                )
            if name is not None and name not in table.names:
                name = table.names[table.header.index(name)]
            resolved[key] = name
        else:
            resolved[key] = table.find(*candidates)
    for key in ("t", "x", "y"):
        if resolved[key] is None:
            raise GazeFormatError(
                table.path,
                f"a {key!r} column (one of {', '.join(DEFAULT_COLUMN_CANDIDATES[key])}, "
                "or a csv_columns mapping)",
                ", ".join(table.header[:12]),
                line=1,
                column=key,
            )
    return resolved


def _truthy(table: DelimitedTable, name: str) -> np.ndarray:
    tokens = pc.utf8_lower(table.strings(name))
    is_true = pc.is_in(tokens, value_set=pa.array(list(_TRUE))).to_numpy(zero_copy_only=False)
    is_false = pc.is_in(tokens, value_set=pa.array(list(_FALSE))).to_numpy(zero_copy_only=False)
    other = np.flatnonzero(~(is_true | is_false))
    if len(other):
        i = int(other[0])
        raise GazeFormatError(
            table.path,
            "a validity flag (1/0, true/false, valid/invalid)",
            table.strings(name)[i].as_py(),
            line=int(table.line_numbers[i]),
            column=name,
        )
    return is_true


def read_gaze_csv(
    path: str | PathLike[str],
    *,
    participant: str,
    columns: Mapping[str, str | None] | None = None,
    time_unit: str | None = None,
    session: SessionInfo | None = None,
    eye: str | None = None,
    delimiter: str | None = None,
    lost_xy: tuple[float, float] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ReadResult:
    """Read a generic gaze CSV (time, x, y in screen px; optional pupil, validity, trial, stimulus, eye).

    Handles, for example, the Lund 2017 derived CSVs (``t_ms,x_px,y_px,pupil_h,...``, empty x/y =
    lost). Empty, NaN or infinite coordinates mark a lost sample. Rows with an empty ``trial`` are
    outside trials; without a trial column the whole file is trial 0. With an ``eye`` column
    (``left``/``right``/``L``/``R``) each row is one eye's sample; otherwise all rows are one eye.

    Parameters
    ----------
    path:
        The file.
    participant:
        Participant id written into every row.
    columns:
        Canonical name (``t``, ``x``, ``y``, ``pupil``, ``validity``, ``trial``, ``stimulus_id``, ``eye``)
        → column name in the file; ``None`` for a key means "not in the file". Keys left out are
        looked up under common names (:data:`DEFAULT_COLUMN_CANDIDATES`). Defaults to the session's
        ``csv_columns``.
    time_unit:
        ``us``, ``ms`` or ``s``. Default: the unit suffix of the time column name (``t_ms``,
        ``time [us]``), else ms.
    session:
        Session metadata (eye, declared rate, column mapping).
    eye:
        Which eye the samples are (without an eye column), or which to keep; default the session's,
        else ``left``.
    delimiter:
        Field separator; default sniffed from the header (tab, semicolon or comma).
    lost_xy:
        A coordinate pair the tracker writes for lost samples (e.g. ``(0, 0)`` for SMI exports).
    max_bytes:
        Size guard: bigger files are refused before reading.
    """
    eye = eye if eye is not None else (session.eye if session is not None else None)
    if columns is None and session is not None:
        columns = session.csv_columns
    lf = read_lines(path, max_bytes=max_bytes)
    path = lf.path
    report: dict[str, Any] = {
        "format": "csv",
        "file": path.name,
        "n_bytes": lf.n_bytes,
        "n_lines": lf.n_lines,
        "encoding": lf.encoding,
        "notes": list(lf.notes),
    }
    table = read_delimited(lf, delimiter, report["notes"])
    cols = _resolve_columns(table, columns)
    report["columns"] = cols
    if table.n_rows == 0:
        raise GazeFormatError(path, "sample rows after the header", "none")
    t_col = cols["t"]
    assert t_col is not None
    if time_unit is None:
        header_unit = table.units[table.names.index(t_col)]
        match = _TIME_SUFFIX.search(t_col)
        time_unit = header_unit or (match.group(1) if match else "ms")
    report["time_unit"] = time_unit
    t = table.numbers(t_col, "a numeric time stamp", null_tokens=())
    lines = table.line_numbers
    bad = np.flatnonzero(~np.isfinite(t))
    if len(bad):
        i = int(bad[0])
        raise GazeFormatError(path, "a finite time stamp", str(t[i]), line=int(lines[i]), column=t_col)
    t_us = np.rint(t * time_scale_to_us(time_unit, t_col, path)).astype(np.int64)

    nan_tokens = ("", "nan", "NaN", "NA", "-")
    x = table.numbers(cols["x"], "a numeric x coordinate or an empty field", null_tokens=nan_tokens)
    y = table.numbers(cols["y"], "a numeric y coordinate or an empty field", null_tokens=nan_tokens)
    valid = np.ones(table.n_rows, dtype=bool)
    if lost_xy is not None:
        valid &= ~((x == lost_xy[0]) & (y == lost_xy[1]))
    if cols["validity"]:
        valid &= _truthy(table, cols["validity"])
    pupil = (
        table.numbers(cols["pupil"], "a numeric pupil size or an empty field", null_tokens=nan_tokens)
        if cols["pupil"]
        else np.full(table.n_rows, np.nan)
    )

    if cols["trial"]:
        trial_values = table.numbers(
            cols["trial"], "an integer trial number or an empty field", null_tokens=nan_tokens
        )
        has_trial = np.isfinite(trial_values)
        uniq = np.unique(trial_values[has_trial]).astype(np.int64)
        trial_index = np.full(table.n_rows, -1, dtype=np.int64)
        trial_index[has_trial] = np.searchsorted(uniq, trial_values[has_trial].astype(np.int64))
        labels = [str(v) for v in uniq]
    else:
        trial_index = np.zeros(table.n_rows, dtype=np.int64)
        labels = ["0"]
    row_stimulus, row_code = None, None
    if cols["stimulus_id"]:
        encoded = table.strings(cols["stimulus_id"]).dictionary_encode()
        row_stimulus = encoded.dictionary.to_pylist()
        row_code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)

    stream = None
    if cols["eye"]:
        tokens = pc.utf8_lower(table.strings(cols["eye"]))
        is_left = pc.is_in(tokens, value_set=pa.array(["left", "l"])).to_numpy(zero_copy_only=False)
        is_right = pc.is_in(tokens, value_set=pa.array(["right", "r"])).to_numpy(zero_copy_only=False)
        other = np.flatnonzero(~(is_left | is_right))
        if len(other):
            i = int(other[0])
            raise GazeFormatError(
                path,
                "eye left or right",
                table.strings(cols["eye"])[i].as_py(),
                line=int(lines[i]),
                column=cols["eye"],
            )
        per_eye = {
            "left": (x, y, pupil, valid, is_left),
            "right": (x, y, pupil, valid, is_right),
        }
        stream = is_right.astype(np.int64)
    else:
        label = eye if eye in ("left", "right") else "left"
        per_eye = {label: (x, y, pupil, valid, None)}
    declare_session_rate(report, session)
    return assemble(
        path=path,
        participant=participant,
        report=report,
        t_us=t_us,
        line_numbers=lines,
        trial_index=trial_index,
        trial_labels=labels,
        trial_stimulus=[""] * len(labels),
        per_eye=per_eye,
        eye=eye,
        stream=stream,
        row_stimulus=row_stimulus,
        row_stimulus_code=row_code,
        allow_negative_time=True,
    )
