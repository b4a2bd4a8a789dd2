"""What every reader shares once its format is parsed: trials, time order, the RAW_GAZE table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pov_pipeline.ingest._scan import string_column
from pov_pipeline.ingest.errors import GazeFormatError
from pov_pipeline.schemas import RAW_GAZE, validate_participant_id

EYES: tuple[str, ...] = ("left", "right")


@dataclass
class ReadResult:
    """Canonical samples read from one gaze export, with an account of what the reader did.

    Attributes
    ----------
    samples:
        ``schemas.RAW_GAZE`` rows sorted by (trial, eye, t_us).
    report:
        JSON-serialisable counts and facts: ``format``, ``n_samples`` (rows of ``samples``),
        ``n_sample_times``, ``n_dropped_outside_trials`` and ``n_duplicate_timestamps_dropped``
        (both counted in sample times, i.e. file rows, not per eye),
        ``declared_rate_hz``, ``measured_rate_hz`` (from the median interval), ``eyes``, ``n_trials``,
        ``valid_pct``, ``n_bytes``, ``encoding``, ``notes``, plus format-specific entries.
    """

    samples: pa.Table
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrialMarkers:
    """Trial starts/ends found in a file, by row position (line index or table row).

    Attributes
    ----------
    start_positions:
        Position of each trial start marker, in file order.
    start_labels:
        The trial label each start marker carries (e.g. ``TRIALID 7`` → ``"7"``).
    end_positions:
        Positions of trial end markers.
    stimulus_ids:
        Stimulus id per start marker (``""`` when the file does not name one).
    """

    start_positions: np.ndarray
    start_labels: list[str]
    end_positions: np.ndarray
    stimulus_ids: list[str]


def trial_numbers(labels: Sequence[str]) -> tuple[np.ndarray, bool]:
    """Turn trial labels into int32 trial numbers.

    Integer labels are kept (they are what ``responses.csv`` refers to); if any label is not an
    integer, trials are numbered 0, 1, ... in file order instead.

    Returns
    -------
    tuple[np.ndarray, bool]
        The numbers, and whether they were renumbered.
    """
    try:
        numbers = np.array([int(label) for label in labels], dtype=np.int64)
    except ValueError:
        return np.arange(len(labels), dtype=np.int32), True
    if len(numbers) and (numbers.min() < 0 or numbers.max() > np.iinfo(np.int32).max):
        return np.arange(len(labels), dtype=np.int32), True
    return numbers.astype(np.int32), False


def assign_trials(positions: np.ndarray, markers: TrialMarkers) -> np.ndarray:
    """Index of the trial (into ``markers.start_positions``) each position falls in, or -1.

    A position belongs to the latest start marker above it, unless an end marker came in between.
    File order decides, not marker time stamps: messages carry their own offsets and curated excerpts
    reorder them, while the order of lines is what the recording software wrote.
    """
    starts = np.asarray(markers.start_positions, dtype=np.int64)
    ends = np.asarray(markers.end_positions, dtype=np.int64)
    event_pos = np.concatenate([starts, ends])
    event_trial = np.concatenate([np.arange(len(starts)), np.full(len(ends), -1)])
    # An end marker on the same position as a start is taken to come first.
    order = np.lexsort((event_trial >= 0, event_pos))
    event_pos, event_trial = event_pos[order], event_trial[order]
    idx = np.searchsorted(event_pos, positions, side="right") - 1
    trial = np.full(len(positions), -1, dtype=np.int64)
    inside = idx >= 0
    trial[inside] = event_trial[idx[inside]]
    return trial


def check_time_order(t_us: np.ndarray, line_numbers: np.ndarray, path: Path) -> np.ndarray:
    """Refuse time stamps that go backwards; return a mask that drops repeated time stamps.

    Parameters
    ----------
    t_us:
        Time stamps of the sample rows in file order (one per sample time, not per eye).
    line_numbers:
        1-based line of each row, for the error.
    path:
        The file, for the error.

    Returns
    -------
    np.ndarray
        Boolean keep-mask: False for a row whose time stamp equals the previous row's.
    """
    if len(t_us) < 2:
        return np.ones(len(t_us), dtype=bool)
    dt = np.diff(t_us)
    back = np.flatnonzero(dt < 0)
    if len(back):
        i = int(back[0]) + 1
        raise GazeFormatError(
            path,
            f"time stamps that do not go backwards (previous sample at {t_us[i - 1]} µs)",
            f"{t_us[i]} µs",
            line=int(line_numbers[i]),
            column="t",
        )
    keep = np.ones(len(t_us), dtype=bool)
    keep[1:] = dt != 0
    return keep


def measured_rate_hz(t_us: np.ndarray) -> float | None:
    """Sampling rate from the median positive interval between consecutive time stamps."""
    if len(t_us) < 2:
        return None
    dt = np.diff(t_us)
    dt = dt[dt > 0]
    if not len(dt):
        return None
    return round(1e6 / _median_int(dt), 3)


def _median_int(values: np.ndarray) -> float:
    """``np.median`` of positive integers, by counting when their range is small.

    Sampling intervals are nearly all equal, which is the worst case of ``np.partition`` (100 ms
    on 0.5M intervals, against 2 ms for a histogram of them).
    """
    lo, hi = int(values.min()), int(values.max())
    if values.dtype.kind not in "iu" or hi - lo > 4 * len(values) + 1024:
        return float(np.median(values))
    cum = np.cumsum(np.bincount(values - lo))
    n = len(values)
    kth = np.searchsorted(cum, [(n - 1) // 2, n // 2], side="right") + lo
    # The mean of the two middle values, computed as np.median computes it.
    return float(np.mean(kth.astype(values.dtype)))


def build_samples(
    *,
    participant: str,
    t_us: np.ndarray,
    trial: np.ndarray,
    stimulus_code: np.ndarray,
    stimulus_ids: Sequence[str],
    per_eye: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
) -> pa.Table:
    """Assemble the RAW_GAZE table, one row per eye per sample time, sorted by (trial, eye, t_us).

    Parameters
    ----------
    participant:
        Participant id written into every row.
    t_us:
        Sample times (int64 µs), non-decreasing in file order, shared by all eyes.
    trial:
        Trial number of each sample time.
    stimulus_code:
        Index into ``stimulus_ids`` of each sample time.
    stimulus_ids:
        Distinct stimulus ids.
    per_eye:
        ``eye → (x_px, y_px, pupil, valid, present)``; ``present`` (or ``None`` for all) marks the
        sample times at which the file recorded that eye. Coordinates that are not finite or belong
        to an invalid sample become NaN, so downstream code needs only one test for loss.
    """
    validate_participant_id(participant)
    n = len(t_us)
    eyes = [eye for eye in EYES if eye in per_eye]
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "y", "pupil", "valid")}
    segments: list[np.ndarray | None] = []
    for eye in eyes:
        x, y, pupil, valid, present = per_eye[eye]
        if present is None or present.all():
            rows = None
        else:
            rows = np.flatnonzero(present)
            x, y, pupil, valid = x[rows], y[rows], pupil[rows], valid[rows]
        ok = valid & np.isfinite(x) & np.isfinite(y)
        columns["x"].append(np.where(ok, x, np.nan).astype(np.float32))
        columns["y"].append(np.where(ok, y, np.nan).astype(np.float32))
        columns["pupil"].append(np.where(np.isfinite(pupil), pupil, np.nan).astype(np.float32))
        columns["valid"].append(ok)
        segments.append(rows)
    cat = {
        k: (np.concatenate(v) if len(v) > 1 else v[0]) if v else np.zeros(0, np.float32)
        for k, v in columns.items()
    }
    seg_rows = [np.arange(n) if r is None else r for r in segments]
    rows = np.concatenate(seg_rows) if seg_rows else np.zeros(0, np.int64)
    all_eye = np.repeat(np.arange(len(eyes), dtype=np.int32), [len(r) for r in seg_rows])
    trial64 = trial.astype(np.int64, copy=False)
    all_trial = trial64[rows]
    # Rows are in time order within each eye already, so a stable sort on (trial, eye) suffices.
    key = (all_trial - (all_trial.min() if len(all_trial) else 0)) * max(len(eyes), 1) + all_eye
    if np.any(key[1:] < key[:-1]):
        order = np.argsort(key, kind="stable")
        rows, all_trial, all_eye = rows[order], all_trial[order], all_eye[order]
        cat = {k: v[order] for k, v in cat.items()}
    arrays = [
        string_column(np.zeros(len(rows), np.int32), [participant]),
        pa.array(all_trial.astype(np.int32)),
        string_column(stimulus_code[rows], stimulus_ids),
        pa.array(t_us.astype(np.int64, copy=False)[rows]),
        pa.array(cat["x"].astype(np.float32, copy=False)),
        pa.array(cat["y"].astype(np.float32, copy=False)),
        pa.array(cat["pupil"].astype(np.float32, copy=False)),
        pa.array(cat["valid"].astype(bool, copy=False)),
        string_column(all_eye, eyes),
    ]
    return pa.Table.from_arrays(arrays, schema=RAW_GAZE)


def finish_report(
    report: dict[str, Any], samples: pa.Table, t_all_us: np.ndarray, n_sample_times: int
) -> dict[str, Any]:
    """Add the counts every reader reports (rows, trials, eyes, rates, validity).

    ``t_all_us`` holds every sample time read (inside trials or not), so the measured rate does not
    depend on how the file is cut into trials.
    """
    report["n_samples"] = samples.num_rows
    eyes = sorted(set(samples.column("eye").unique().to_pylist()))
    report["eyes"] = eyes
    report["n_sample_times"] = int(n_sample_times)
    report["n_trials"] = len(samples.column("trial").unique())
    report["measured_rate_hz"] = measured_rate_hz(t_all_us)
    valid = samples.column("valid").to_numpy(zero_copy_only=False)
    report["valid_pct"] = round(100.0 * float(valid.mean()), 3) if len(valid) else None
    return report


def no_samples_error(path: Path, report: Mapping[str, Any]) -> GazeFormatError:
    """The error for a file whose samples all fall outside trials."""
    return GazeFormatError(
        path,
        "samples inside trials",
        f"none of {report.get('n_sample_times_read', 0)} sample times",
        note=f"{report.get('n_trials_marked', 0)} trial start markers; check the trial marker settings",
    )


def assemble(
    *,
    path: Path,
    participant: str,
    report: dict[str, Any],
    t_us: np.ndarray,
    line_numbers: np.ndarray,
    trial_index: np.ndarray,
    trial_labels: Sequence[str],
    trial_stimulus: Sequence[str],
    per_eye: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
    eye: str | None,
    stream: np.ndarray | None = None,
    row_stimulus: Sequence[str] | None = None,
    row_stimulus_code: np.ndarray | None = None,
    allow_negative_time: bool = False,
) -> ReadResult:
    """Shared tail of every reader: time order, trial filter, eye choice, table and report.

    Parameters
    ----------
    path:
        The file, for errors.
    participant:
        Participant id.
    report:
        Report started by the reader; completed here and returned in the result.
    t_us:
        Time of each sample row, in file order.
    line_numbers:
        1-based line of each sample row.
    trial_index:
        Index into ``trial_labels`` of each row's trial, -1 outside trials.
    trial_labels:
        Label of each trial (integers are kept as trial numbers, anything else renumbers).
    trial_stimulus:
        Stimulus id of each trial.
    per_eye:
        ``eye → (x_px, y_px, pupil, valid, present)`` over all rows.
    eye:
        ``left``/``right`` keeps that eye when recorded; ``binocular``/``None`` keeps all.
    stream:
        Rows with the same code form one time series (e.g. one per eye when a CSV has an eye
        column); time order is checked within each. ``None``: all rows are one series.
    row_stimulus, row_stimulus_code:
        Per-row stimulus ids (distinct values and the code of each row), overriding
        ``trial_stimulus`` when the file names the stimulus on every row.
    allow_negative_time:
        Accept time stamps below zero (a generic CSV may count from stimulus onset); vendor clocks
        never go below zero, so there a negative time stamp is a corrupted field.

    Raises
    ------
    GazeFormatError
        Time going backwards, negative time stamps (unless allowed), no samples inside trials, or
        no valid sample in the eye(s) kept.
    """
    n = len(t_us)
    negative = np.flatnonzero(t_us < 0)
    if len(negative):
        i = int(negative[0])
        if not allow_negative_time:
            raise GazeFormatError(
                path, "a non-negative time stamp", f"{t_us[i]} µs", line=int(line_numbers[i]), column="t"
            )
        report["n_negative_timestamps"] = len(negative)
    keep = np.ones(n, dtype=bool)
    if stream is None:
        keep = check_time_order(t_us, line_numbers, path)
    else:
        for code in np.unique(stream):
            rows = np.flatnonzero(stream == code)
            keep[rows] = check_time_order(t_us[rows], line_numbers[rows], path)
    report["n_duplicate_timestamps_dropped"] = int(n - keep.sum())
    if stream is None and not keep.all():
        # Repeated time stamps are dropped either way; say how many also disagreed in value, since
        # those point at a merged or re-exported file rather than a logging hiccup.
        later = np.flatnonzero(~keep)
        differs = np.zeros(len(later), dtype=bool)
        for x, y, _, _, _ in per_eye.values():
            for a in (x, y):
                same = (a[later] == a[later - 1]) | (np.isnan(a[later]) & np.isnan(a[later - 1]))
                differs |= ~same
        report["n_duplicate_timestamps_with_other_values"] = int(differs.sum())
    read_times = t_us[keep]
    inside = trial_index >= 0
    report["n_dropped_outside_trials"] = int((keep & ~inside).sum())
    keep &= inside
    if not keep.any():
        raise no_samples_error(path, {"n_sample_times_read": n, "n_trials_marked": len(trial_labels)})
    numbers, renumbered = trial_numbers(trial_labels)
    report["trial_ids_renumbered"] = renumbered
    if renumbered:
        report["trial_labels"] = dict(zip(map(str, numbers.tolist()), trial_labels, strict=True))

    recorded = [e for e in EYES if e in per_eye and (per_eye[e][4] is None or per_eye[e][4].any())]
    wanted = recorded
    if eye in EYES:
        if eye in recorded:
            wanted = [eye]
            if len(recorded) > 1:
                report.setdefault("notes", []).append(
                    f"file recorded {'+'.join(recorded)}; kept the session's {eye} eye"
                )
        else:
            report.setdefault("notes", []).append(
                f"session eye is {eye} but the file recorded {'+'.join(recorded)}; kept those"
            )
    elif eye == "binocular" and len(recorded) < 2:
        report.setdefault("notes", []).append(
            f"session eye is binocular but the file recorded {'+'.join(recorded)}"
        )

    rows = slice(None) if keep.all() else np.flatnonzero(keep)
    selected = {}
    n_valid: dict[str, int] = {}
    n_infinite = 0
    for e in recorded:
        x, y, pupil, valid, present = per_eye[e]
        x, y, valid = x[rows], y[rows], valid[rows]
        mine = np.ones(len(x), dtype=bool) if present is None else present[rows]
        n_valid[e] = int((valid & np.isfinite(x) & np.isfinite(y) & mine).sum())
        if e in wanted:
            n_infinite += int((np.isinf(x) | np.isinf(y))[mine].sum())
            selected[e] = (x, y, pupil[rows], valid, None if present is None else present[rows])
    # NaN is how every format spells "lost"; an infinite coordinate is a tracker or export glitch,
    # kept as a lost sample and counted so it is not silent.
    report["n_infinite_coordinates_as_lost"] = n_infinite
    never_valid = [e for e in selected if n_valid[e] == 0]
    if never_valid and len(never_valid) < len(selected):
        for e in never_valid:
            del selected[e]
        report["eyes_dropped_never_valid"] = never_valid
        report.setdefault("notes", []).append(
            f"{'+'.join(never_valid)} eye recorded but never valid; dropped"
        )
    elif never_valid:
        others = {e: c for e, c in n_valid.items() if e not in selected and c}
        if others:
            # The session names an eye the tracker never tracked while the other eye has data:
            # session.json is wrong, and guessing the eye would mislabel every row.
            raise GazeFormatError(
                path,
                f"valid gaze samples for the session's {'+'.join(selected)} eye",
                f"none of {int(np.count_nonzero(keep))} sample times",
                column="eye",
                note=f"the file's {'+'.join(others)} eye has {sum(others.values())} valid samples: "
                "check 'eye' in session.json",
            )
        # A recording lost from start to end is still a recording; the track-loss check flags it.
        report.setdefault("notes", []).append("no valid gaze sample in the whole file")
    t_index = trial_index[rows]
    if row_stimulus is not None and row_stimulus_code is not None:
        stimulus_ids, stimulus_code = list(row_stimulus), row_stimulus_code[rows]
    else:
        stimulus_ids = list(dict.fromkeys(trial_stimulus)) or [""]
        code_of_trial = np.array([stimulus_ids.index(s) for s in trial_stimulus], dtype=np.int64)
        stimulus_code = code_of_trial[t_index]
    samples = build_samples(
        participant=participant,
        t_us=t_us[rows],
        trial=numbers[t_index],
        stimulus_code=stimulus_code,
        stimulus_ids=stimulus_ids,
        per_eye=selected,
    )
    n_times = len(np.unique(t_us[rows])) if stream is not None else int(keep.sum())
    return ReadResult(samples, finish_report(report, samples, read_times, n_times))


def declare_session_rate(report: dict[str, Any], session: Any) -> None:
    """Record the sampling rate ``session.json`` declares, for formats whose file states none."""
    report["declared_rate_hz"] = session.sampling_rate_hz if session is not None else None
    report["declared_rate_source"] = "session" if session is not None else None
