"""Tobii exports → canonical samples: Pro Lab "Data export" TSV and raw Tobii SDK TSV."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pov_pipeline.ingest._delimited import DelimitedTable, read_delimited, time_scale_to_us
from pov_pipeline.ingest._lines import DEFAULT_MAX_BYTES, read_lines
from pov_pipeline.ingest._samples import (
    ReadResult,
    TrialMarkers,
    assemble,
    assign_trials,
    declare_session_rate,
)
from pov_pipeline.ingest.errors import GazeFormatError

if TYPE_CHECKING:
    from pov_pipeline.ingest.session import SessionInfo

PROLAB_TRIAL_START_EVENTS: tuple[str, ...] = ("TrialStart",)
PROLAB_TRIAL_END_EVENTS: tuple[str, ...] = ("TrialEnd",)
PROLAB_STIMULUS_EVENTS: tuple[str, ...] = ("ImageStimulusStart",)


def _validity(table: DelimitedTable, name: str | None, rows: np.ndarray, max_code: int) -> np.ndarray:
    """Validity of ``rows`` as bool: ``Valid``/``Invalid`` words, or Tobii codes 0 (sure) … 4 (missing)."""
    if name is None:
        return np.ones(len(rows), dtype=bool)
    raw = table.strings(name, rows)
    # A validity column holds a handful of distinct words or codes: judge those, not every row.
    encoded = pc.dictionary_encode(raw)
    index = encoded.indices.to_numpy(zero_copy_only=False)
    tokens = pc.utf8_lower(encoded.dictionary)
    is_code = pc.match_substring_regex(tokens, r"^[0-9]+$")
    if pc.all(pc.or_(is_code, pc.equal(tokens, ""))).as_py():
        codes = table.numbers(name, "a validity code 0-4", rows=rows)
        return np.nan_to_num(codes, nan=np.inf) <= max_code
    known = pc.is_in(tokens, value_set=pa.array(["valid", "invalid", ""])).to_numpy(zero_copy_only=False)
    unknown = np.flatnonzero(~known[index])
    if len(unknown):
        i = int(unknown[0])
        raise GazeFormatError(
            table.path,
            "Valid or Invalid",
            raw[i].as_py(),
            line=int(table.line_numbers[rows[i]]),
            column=name,
        )
    # An empty validity field says nothing: the coordinates decide.
    return pc.not_equal(tokens, "invalid").to_numpy(zero_copy_only=False)[index]


def _events_to_markers(
    events: list[tuple[int, str, str]],
    start_events: Sequence[str],
    end_events: Sequence[str],
    stimulus_events: Sequence[str],
) -> TrialMarkers:
    start_pos, labels, end_pos, stimuli = [], [], [], []
    for position, event, value in events:
        if event in start_events:
            start_pos.append(position)
            labels.append(value if value else str(len(labels)))
            stimuli.append("")
        elif event in end_events:
            # An end event naming another trial than the open one (a late TrialEnd of the previous
            # trial logged after the next TrialStart) must not close the open trial.
            if not value or not labels or value == labels[-1]:
                end_pos.append(position)
        elif event in stimulus_events and stimuli:
            stimuli[-1] = value
    return TrialMarkers(np.asarray(start_pos, np.int64), labels, np.asarray(end_pos, np.int64), stimuli)


def read_tobii_prolab_tsv(
    path: str | PathLike[str],
    *,
    participant: str,
    session: SessionInfo | None = None,
    eye: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    time_unit: str | None = None,
    trial_start_events: Sequence[str] = PROLAB_TRIAL_START_EVENTS,
    trial_end_events: Sequence[str] = PROLAB_TRIAL_END_EVENTS,
    stimulus_events: Sequence[str] = PROLAB_STIMULUS_EVENTS,
) -> ReadResult:
    """Read a Tobii Pro Lab-style data export (tab-separated) into ``schemas.RAW_GAZE`` rows.

    Sample rows are those with ``Sensor`` = ``Eye Tracker`` (or, without a ``Sensor`` column, those
    with an empty ``Event``). Trials run from a ``TrialStart`` event (``Event value`` = trial
    number) to ``TrialEnd``; the stimulus is the value of ``ImageStimulusStart`` in the trial, else the
    ``Presented Stimulus name`` of its first sample. Without trial events, each run of rows with the
    same non-empty ``Presented Stimulus name`` is a trial (numbered 0, 1, ...); without that column
    the whole recording is trial 0.

    Binocular exports give one row per eye from ``Gaze point left/right X/Y``; without per-eye columns
    ``Gaze point X/Y`` is used as the session's eye (``left`` when unknown). Column names may carry
    units in brackets (``Recording timestamp [μs]``, newer Pro Lab versions), and decimals may use a
    comma.

    Parameters
    ----------
    path:
        The ``.tsv`` export.
    participant:
        Participant id written into every row.
    session:
        Session metadata (eye, declared rate).
    eye:
        ``left``/``right``/``binocular``; defaults to the session's, else every eye in the file.
    max_bytes:
        Size guard: bigger files are refused before reading.
    time_unit:
        Unit of ``Recording timestamp`` (``us``, ``ms``, ``s``); default: the unit in the header,
        else µs.
    trial_start_events, trial_end_events, stimulus_events:
        ``Event`` names that open a trial, close it, and name its stimulus.
    """
    eye = eye if eye is not None else (session.eye if session is not None else None)
    lf = read_lines(path, max_bytes=max_bytes)
    path = lf.path
    report: dict[str, Any] = {
        "format": "tobii_prolab_tsv",
        "file": path.name,
        "n_bytes": lf.n_bytes,
        "n_lines": lf.n_lines,
        "encoding": lf.encoding,
        "notes": list(lf.notes),
    }
    table = read_delimited(lf, "\t", report["notes"])
    time_col = table.find("Recording timestamp")
    if time_col is None:
        raise GazeFormatError(path, "a 'Recording timestamp' column", ", ".join(table.header[:8]), line=1)
    unit = time_unit or table.units[table.names.index(time_col)] or "us"
    scale = time_scale_to_us(unit, time_col, path)

    n_rows = table.n_rows
    sensor_col = table.find("Sensor")
    event_col = table.find("Event")
    event = table.strings(event_col) if event_col else pa.array([""] * n_rows, pa.string())
    if sensor_col:
        is_sample = pc.equal(table.strings(sensor_col), "Eye Tracker").to_numpy(zero_copy_only=False)
    else:
        is_sample = pc.equal(event, "").to_numpy(zero_copy_only=False)
    is_event = pc.not_equal(event, "").to_numpy(zero_copy_only=False) & ~is_sample
    sample_rows = np.flatnonzero(is_sample)
    if not len(sample_rows):
        raise GazeFormatError(path, "eye-tracker sample rows", "none", note=f"{n_rows} data rows")
    report["n_event_rows"] = int(is_event.sum())
    report["n_other_rows"] = int(n_rows - len(sample_rows) - is_event.sum())

    t = table.numbers(time_col, "a numeric time stamp", rows=sample_rows)
    lines = table.line_numbers[sample_rows]
    bad = np.flatnonzero(~np.isfinite(t))
    if len(bad):
        i = int(bad[0])
        raise GazeFormatError(path, "a finite time stamp", str(t[i]), line=int(lines[i]), column=time_col)
    t_us = np.rint(t * scale).astype(np.int64)

    # Trials.
    stim_col = table.find("Presented Stimulus name")
    stim_names = table.strings(stim_col) if stim_col else None
    event_rows = np.flatnonzero(is_event)
    events: list[tuple[int, str, str]] = []
    if len(event_rows):
        value_col = table.find("Event value")
        values = (
            table.strings(value_col).take(pa.array(event_rows)).to_pylist()
            if value_col
            else [""] * len(event_rows)
        )
        names = event.take(pa.array(event_rows)).to_pylist()
        events = list(zip(event_rows.tolist(), names, values, strict=True))
    markers = _events_to_markers(events, trial_start_events, trial_end_events, stimulus_events)
    if len(markers.start_labels):
        report["trial_marker"] = "events"
        trial_index = assign_trials(sample_rows, markers)
        labels, stimuli = markers.start_labels, list(markers.stimulus_ids)
        unnamed = np.flatnonzero(np.array([s == "" for s in stimuli], dtype=bool))
        if stim_names is not None and len(unnamed):
            sample_stim = table.strings(stim_col, sample_rows).to_numpy(zero_copy_only=False)
            for k in unnamed:
                named = np.flatnonzero((trial_index == k) & (sample_stim != ""))
                if len(named):
                    stimuli[k] = str(sample_stim[named[0]])
    elif stim_names is not None and pc.any(pc.not_equal(stim_names, "")).as_py():
        report["trial_marker"] = "Presented Stimulus name"
        sample_stim = table.strings(stim_col, sample_rows).to_numpy(zero_copy_only=False)
        named = sample_stim != ""
        # A new trial starts wherever the stimulus name changes to a non-empty value.
        change = named & np.concatenate([[True], sample_stim[1:] != sample_stim[:-1]])
        run = np.cumsum(change) - 1
        trial_index = np.where(named, run, -1)
        labels = [str(k) for k in range(int(change.sum()))]
        stimuli = [str(s) for s in sample_stim[change]]
    else:
        report["trial_marker"] = None
        trial_index = np.zeros(len(sample_rows), dtype=np.int64)
        labels, stimuli = ["0"], [""]
    report["n_trials_marked"] = len(labels)

    # Eyes.
    def pick(*names: str) -> str | None:
        return table.find(*names)

    per_eye_cols = {
        e: (
            pick(f"Gaze point {e} X"),
            pick(f"Gaze point {e} Y"),
            pick(f"Pupil diameter {e}"),
            pick(f"Validity {e}"),
        )
        for e in ("left", "right")
    }
    have = [e for e, cols in per_eye_cols.items() if cols[0] and cols[1]]
    per_eye = {}
    if have:
        for e in have:
            x_col, y_col, p_col, v_col = per_eye_cols[e]
            per_eye[e] = _eye_arrays(table, sample_rows, x_col, y_col, p_col, v_col)
    else:
        x_col, y_col = pick("Gaze point X"), pick("Gaze point Y")
        if not (x_col and y_col):
            raise GazeFormatError(
                path,
                "columns 'Gaze point X'/'Gaze point Y' or per-eye ones",
                ", ".join(table.header[:8]),
                line=1,
            )
        label = eye if eye in ("left", "right") else "left"
        x, y, _, valid, _ = _eye_arrays(table, sample_rows, x_col, y_col, None, None)
        v_cols = [c for c in (per_eye_cols["left"][3], per_eye_cols["right"][3]) if c]
        if v_cols:
            # Pro Lab computes the combined point from whichever eye is valid.
            valid = valid & np.logical_or.reduce([_validity(table, c, sample_rows, 1) for c in v_cols])
        p_cols = [c for c in (per_eye_cols["left"][2], per_eye_cols["right"][2]) if c]
        pupil = np.full(len(sample_rows), np.nan)
        if p_cols:
            stacked = np.vstack(
                [table.numbers(c, "a numeric pupil diameter", rows=sample_rows) for c in p_cols]
            )
            counts = np.isfinite(stacked).sum(axis=0)
            pupil = np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)
        per_eye[label] = (x, y, pupil, valid, None)
        report["notes"].append(f"no per-eye gaze columns: 'Gaze point X/Y' read as the {label} eye")
    declare_session_rate(report, session)
    return assemble(
        path=path,
        participant=participant,
        report=report,
        t_us=t_us,
        line_numbers=lines,
        trial_index=trial_index,
        trial_labels=labels,
        trial_stimulus=stimuli,
        per_eye=per_eye,
        eye=eye,
    )


def _eye_arrays(
    table: DelimitedTable,
    rows: np.ndarray,
    x_col: str,
    y_col: str,
    p_col: str | None,
    v_col: str | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, None]:
    x = table.numbers(x_col, "a numeric x coordinate or an empty field", rows=rows)
    y = table.numbers(y_col, "a numeric y coordinate or an empty field", rows=rows)
    pupil = (
        table.numbers(p_col, "a numeric pupil diameter", rows=rows) if p_col else np.full(len(rows), np.nan)
    )
    valid = _validity(table, v_col, rows, 1)
    return x, y, pupil, valid, None


def read_tobii_sdk_tsv(
    path: str | PathLike[str],
    *,
    participant: str,
    session: SessionInfo | None = None,
    screen_px: tuple[int, int] | None = None,
    eye: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    time_unit: str = "us",
    max_validity_code: int = 1,
) -> ReadResult:
    """Read raw Tobii SDK gaze (e.g. a TX300 via the Tobii Research SDK, as I2MC's example data).

    Columns: ``Time`` (µs), and per eye (prefix ``L``/``R``) ``GazePos2dx``/``GazePos2dy`` in
    normalised screen coordinates (0–1, origin top left; -1 when missing), ``PupilDm`` (mm, -1 when
    missing) and ``Validity`` (0 = certainly this eye … 4 = missing). Coordinates are scaled to
    pixels with the screen size. The whole file is trial 0 unless it has a ``Trial`` column (and
    optionally ``Stimulus``/``stimulus_id``).

    Parameters
    ----------
    path:
        The ``.tsv`` file.
    participant:
        Participant id written into every row.
    session:
        Session metadata: ``screen_px``, ``eye`` and the declared rate come from here.
    screen_px:
        Screen size in pixels (overrides the session's).
    eye:
        ``left``/``right``/``binocular``; defaults to the session's, else both eyes.
    max_bytes:
        Size guard: bigger files are refused before reading.
    time_unit:
        Unit of ``Time``.
    max_validity_code:
        Highest Tobii validity code counted as valid (1: "probably this eye", as I2MC uses).
    """
    eye = eye if eye is not None else (session.eye if session is not None else None)
    screen = screen_px if screen_px is not None else (session.screen_px if session is not None else None)
    lf = read_lines(path, max_bytes=max_bytes)
    path = lf.path
    if screen is None:
        raise GazeFormatError(
            path, "the screen size in px (session.screen_px) to scale normalised gaze", "none"
        )
    report: dict[str, Any] = {
        "format": "tobii_sdk_tsv",
        "file": path.name,
        "n_bytes": lf.n_bytes,
        "n_lines": lf.n_lines,
        "encoding": lf.encoding,
        "notes": list(lf.notes),
    }
    table = read_delimited(lf, "\t", report["notes"])
    time_col = table.find("Time")
    if time_col is None:
        raise GazeFormatError(path, "a 'Time' column", ", ".join(table.header[:8]), line=1)
    if table.n_rows == 0:
        raise GazeFormatError(path, "sample rows after the header", "none")
    t = table.numbers(time_col, "a numeric time stamp", null_tokens=())
    lines = table.line_numbers
    bad = np.flatnonzero(~np.isfinite(t))
    if len(bad):
        i = int(bad[0])
        raise GazeFormatError(path, "a finite time stamp", str(t[i]), line=int(lines[i]), column=time_col)
    t_us = np.rint(t * time_scale_to_us(time_unit, time_col, path)).astype(np.int64)
    rows = np.arange(table.n_rows)
    per_eye = {}
    for e, prefix in (("left", "L"), ("right", "R")):
        x_col, y_col = table.find(f"{prefix}GazePos2dx"), table.find(f"{prefix}GazePos2dy")
        if not (x_col and y_col):
            continue
        x = table.numbers(x_col, "a numeric normalised x coordinate")
        y = table.numbers(y_col, "a numeric normalised y coordinate")
        missing = (x == -1) & (y == -1)
        valid = _validity(table, table.find(f"{prefix}Validity"), rows, max_validity_code) & ~missing
        p_col = table.find(f"{prefix}PupilDm")
        pupil = table.numbers(p_col, "a numeric pupil diameter") if p_col else np.full(len(rows), np.nan)
        pupil = np.where(pupil > 0, pupil, np.nan)
        per_eye[e] = (x * screen[0], y * screen[1], pupil, valid, None)
    if not per_eye:
        raise GazeFormatError(
            path,
            "gaze columns LGazePos2dx/LGazePos2dy or RGazePos2dx/RGazePos2dy",
            ", ".join(table.header[:8]),
            line=1,
        )
    trial_col = table.find("Trial", "TrialId", "trial_id")
    stim_col = table.find("Stimulus", "stimulus_id", "StimulusId")
    if trial_col:
        trial_values = table.numbers(trial_col, "an integer trial number or an empty field")
        present = np.isfinite(trial_values)
        uniq = np.unique(trial_values[present]).astype(np.int64)
        trial_index = np.full(len(rows), -1, dtype=np.int64)
        trial_index[present] = np.searchsorted(uniq, trial_values[present].astype(np.int64))
        labels = [str(v) for v in uniq]
        stimuli = [""] * len(labels)
        if stim_col:
            names = table.strings(stim_col).to_numpy(zero_copy_only=False)
            for k in range(len(labels)):
                first = np.flatnonzero(trial_index == k)
                stimuli[k] = str(names[first[0]]) if len(first) else ""
        report["trial_marker"] = trial_col
    else:
        trial_index = np.zeros(len(rows), dtype=np.int64)
        labels, stimuli = ["0"], [""]
        report["trial_marker"] = None
    report["n_trials_marked"] = len(labels)
    declare_session_rate(report, session)
    report["screen_px"] = list(screen)
    return assemble(
        path=path,
        participant=participant,
        report=report,
        t_us=t_us,
        line_numbers=lines,
        trial_index=trial_index,
        trial_labels=labels,
        trial_stimulus=stimuli,
        per_eye=per_eye,
        eye=eye,
    )
