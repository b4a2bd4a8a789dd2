"""``pov events``: fixation/saccade labels for one gaze file, one output row per input sample.

Input formats:

``csv``
    Columns ``t_ms``, ``x_px``, ``y_px`` (screen pixels); an empty, NaN or infinite coordinate
    marks a lost sample; other columns are ignored, except an optional ``trial`` column, whose
    consecutive blocks are detected separately. Every row is a sample and gets a label.
``asc`` / ``tobii``
    An EyeLink ASC or Tobii Pro Lab / SDK TSV export, read by :mod:`pov_pipeline.ingest`
    (trials from the file's messages or events; samples outside trials are dropped by the reader,
    and reported). Binocular samples are averaged into one signal; every time stamp gets a label.

Outputs: ``--out`` gets ``t_ms,label`` (labels from :data:`pov_pipeline.schemas.SAMPLE_LABELS`), in
input order; ``--events-out`` gets the events table (:data:`~pov_pipeline.gaze.detection.EVENT_COLUMNS`
plus ``trial``), with ``start_index``/``end_index`` as 0-based row numbers of the ``--out`` file.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pov_pipeline.gaze.detection import DEFAULT_METHOD, EVENT_COLUMNS, detect_events, detect_trials
from pov_pipeline.gaze.geometry import ScreenGeometry
from pov_pipeline.schemas import SAMPLE_LABELS

#: Exit status for input the command cannot read or use.
EXIT_BAD_INPUT = 2

_CSV_COLUMNS = ("t_ms", "x_px", "y_px")


class EventsInputError(ValueError):
    """The input file cannot be read or does not hold a usable gaze signal."""


def run_events(args: argparse.Namespace) -> int:
    """Run the ``pov events`` command.

    Parameters
    ----------
    args : argparse.Namespace
        ``input``, ``out``, ``events_out`` (or None), ``format`` (auto, csv, asc, tobii),
        ``screen_px`` (W, H), ``screen_mm`` (W, H), ``distance_mm``, ``method`` (None for the default).

    Returns
    -------
    int
        0 on success, 2 when the input cannot be read or the arguments are unusable.
    """
    try:
        geometry = ScreenGeometry(
            _as_px(args.screen_px[0]),
            _as_px(args.screen_px[1]),
            float(args.screen_mm[0]),
            float(args.screen_mm[1]),
            float(args.distance_mm),
        )
    except ValueError as exc:
        return _fail(f"invalid screen set-up: {exc}")
    method = args.method or DEFAULT_METHOD
    path = Path(args.input)
    try:
        fmt = _resolve_format(path, args.format)
        if fmt == "csv":
            labels, events = _label_csv(path, geometry, method)
        else:
            labels, events = _label_export(path, fmt, geometry, method)
    except EventsInputError as exc:
        return _fail(str(exc))
    except ValueError as exc:  # GazeFormatError and bad method names are ValueErrors
        return _fail(f"{path}: {exc}")
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"{path}: cannot read the file ({exc})")
    try:
        labels.to_csv(args.out, index=False)
        if args.events_out:
            events.to_csv(args.events_out, index=False)
    except OSError as exc:
        return _fail(f"cannot write the output: {exc}")
    counts = labels["label"].value_counts()
    summary = ", ".join(f"{counts.get(name, 0)} {name}" for name in SAMPLE_LABELS if counts.get(name, 0))
    print(f"{len(labels)} samples labelled with {method} ({summary}) -> {args.out}", file=sys.stderr)
    return 0


def _fail(message: str) -> int:
    print(f"pov events: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _as_px(value: float) -> Any:
    v = float(value)
    return int(v) if v.is_integer() else v


def _resolve_format(path: Path, fmt: str) -> str:
    """``csv``, ``eyelink_asc``, ``tobii_prolab_tsv`` or ``tobii_sdk_tsv``."""
    if not path.is_file():
        raise EventsInputError(f"{path}: no such file")
    if fmt == "csv":
        return "csv"
    if fmt == "asc":
        return "eyelink_asc"
    from pov_pipeline.ingest import detect_format

    found = detect_format(path)
    if fmt == "tobii" and not found.startswith("tobii"):
        raise EventsInputError(f"{path}: expected a Tobii Pro Lab or SDK TSV export, found {found}")
    return found


def _label_csv(path: Path, geometry: ScreenGeometry, method: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Label every row of a ``t_ms,x_px,y_px`` CSV, per block of equal ``trial`` if there is one."""
    try:
        frame = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise EventsInputError(f"{path}: not a readable CSV ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in _CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise EventsInputError(
            f"{path}: expected columns {', '.join(_CSV_COLUMNS)}; missing {', '.join(missing)} "
            f"(found {', '.join(frame.columns[:12])})"
        )
    if len(frame) == 0:
        raise EventsInputError(f"{path}: no samples")
    t_ms = _numeric(frame["t_ms"], path, "t_ms", allow_missing=False)
    x = _numeric(frame["x_px"], path, "x_px", allow_missing=True)
    y = _numeric(frame["y_px"], path, "y_px", allow_missing=True)
    if "trial" in frame.columns:
        trial_codes, trial_values = pd.factorize(frame["trial"].str.strip())
        blocks = np.flatnonzero(np.diff(trial_codes) != 0) + 1
        block_trial = [str(trial_values[c]) for c in trial_codes[np.concatenate(([0], blocks))]]
    else:
        blocks = np.zeros(0, dtype=np.intp)
        block_trial = ["0"]
    bounds = np.concatenate(([0], blocks, [len(frame)]))
    t_us = np.round(t_ms * 1000.0)
    codes = np.empty(len(frame), dtype=np.int8)
    event_parts = []
    for i, trial in enumerate(block_trial):
        a, b = int(bounds[i]), int(bounds[i + 1])
        step = np.diff(t_us[a:b])
        if step.size and not (step > 0).all():
            row = a + int(np.flatnonzero(step <= 0)[0]) + 1
            raise EventsInputError(
                f"{path} line {row + 2}: t_ms must increase from row to row (within a trial); "
                f"found {t_ms[row]:g} after {t_ms[row - 1]:g}"
            )
        res = detect_events(t_us[a:b], x[a:b], y[a:b], geometry=geometry, method=method)
        codes[a:b] = res.labels
        event_parts.append(_with_trial(res.events, trial, a))
    labels = pd.DataFrame({"t_ms": t_ms, "label": np.asarray(SAMPLE_LABELS, dtype=object)[codes]})
    return labels, pd.concat(event_parts, ignore_index=True)


def _numeric(column: pd.Series, path: Path, name: str, *, allow_missing: bool) -> np.ndarray:
    """A text column as float64: empty and NaN become NaN, anything else non-numeric is an error."""
    text = column.str.strip()
    values = np.array(pd.to_numeric(text.where(text != "", None), errors="coerce"), dtype=np.float64)
    unparsable = np.isnan(values) & (text != "").to_numpy() & ~text.str.lower().isin(["nan", "na"]).to_numpy()
    if unparsable.any():
        row = int(np.flatnonzero(unparsable)[0])
        raise EventsInputError(
            f"{path} line {row + 2}: expected a number in {name}, found {text.iloc[row]!r}"
        )
    if not allow_missing and np.isnan(values).any():
        row = int(np.flatnonzero(np.isnan(values))[0])
        raise EventsInputError(f"{path} line {row + 2}: {name} is empty")
    if allow_missing:
        values[~np.isfinite(values)] = np.nan
    return values


def _with_trial(events: pd.DataFrame, trial: str, first_row: int) -> pd.DataFrame:
    ev = events.copy()
    ev["start_index"] += first_row
    ev["end_index"] += first_row
    ev.insert(0, "trial", trial)
    return ev


def _label_export(
    path: Path, fmt: str, geometry: ScreenGeometry, method: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Label the samples of an EyeLink or Tobii export through the ingest readers."""
    from pov_pipeline import ingest

    readers = {
        "eyelink_asc": ingest.read_eyelink_asc,
        "tobii_prolab_tsv": ingest.read_tobii_prolab_tsv,
        "tobii_sdk_tsv": ingest.read_tobii_sdk_tsv,
    }
    if fmt not in readers:
        raise EventsInputError(f"{path}: unsupported format {fmt}")
    kwargs: dict[str, Any] = {"participant": "p"}
    if fmt == "tobii_sdk_tsv":
        kwargs["screen_px"] = (int(geometry.screen_width_px), int(geometry.screen_height_px))
    result = readers[fmt](path, **kwargs)
    samples = result.samples.to_pandas()
    if len(samples) == 0:
        raise EventsInputError(f"{path}: no samples inside trials")
    dropped = {k: v for k, v in result.report.items() if "drop" in str(k) and v}
    if dropped:
        print(f"pov events: note: {path}: reader report {dropped}", file=sys.stderr)
    labels, events = detect_trials(samples, geometry, method=method, eye_mode="average")
    # Input order is time order; trials are contiguous in time.
    order = np.argsort(labels["t_us"].to_numpy(), kind="stable")
    labels = labels.iloc[order].reset_index(drop=True)
    out = pd.DataFrame({"t_ms": labels["t_us"].to_numpy(np.float64) / 1000.0, "label": labels["label"]})
    # Event sample indices become row numbers of the output file.
    trial_first = (
        pd.DataFrame({"trial": labels["trial"], "row": np.arange(len(labels))}).groupby("trial")["row"].min()
    )
    if len(events):
        base = trial_first.reindex(events["trial"]).to_numpy(np.int64)
        events = events.assign(start_index=events["start_index"] + base, end_index=events["end_index"] + base)
    events = events[["trial", *EVENT_COLUMNS]]
    return out, events
