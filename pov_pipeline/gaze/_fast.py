"""Frame-level fast path of the adaptive and I-VT detectors (compiled kernels, no per-trial Python).

:func:`detect_frame` runs a detector over every trial of a frame at once: the trials lie end to end
in one set of arrays, ``bounds`` marks where each begins. The steps whose numpy implementation may
round differently from compiled code (``arctan``, the Savitzky-Golay convolution) run in numpy
over the whole frame; everything else runs in :mod:`pov_pipeline.gaze._kernels`. Labels,
speeds, adapted thresholds and event values are bit-identical to the per-trial numpy reference in
:mod:`pov_pipeline.gaze.detection`, which stays the readable specification (``engine="numpy"``).

:func:`detect_trials_fast` is :func:`~pov_pipeline.gaze.detection.detect_trials` on this path,
including reading the ``raw_gaze`` frame and writing the string columns of its two outputs
straight into Arrow buffers, which at tens of millions of samples per second costs as much as
the detection itself would with pandas' per-object conversion.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from pov_pipeline.gaze import _kernels as kern
from pov_pipeline.gaze.detection import (
    EVENT_COLUMNS,
    AdaptiveParams,
    IVTParams,
    Params,
    _empty_trial_events,
    _samples,
    _sort_order,
    _string_dtype,
    _trial_codes,
    _trial_signal,
    label_categorical,
    repeated_categorical,
)
from pov_pipeline.gaze.detection import (
    _px_to_deg as _reference_px_to_deg,
)
from pov_pipeline.gaze.geometry import ScreenGeometry
from pov_pipeline.gaze.preprocess import _savgol_kernel, velocity_window_half_samples
from pov_pipeline.schemas import SAMPLE_LABELS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

# Samples of consecutive trials with the same sample interval are convolved in one numpy call;
# a group spread thinly over a frame (its trials cover less than this share of the span between
# its first and last sample) is convolved trial by trial instead.
_SAVGOL_SPAN_SHARE = 0.25
# A span is cut at the first trial boundary past this many samples: the convolution outputs
# then stay small and in cache instead of two frame-sized arrays to fault in (the values do
# not change: each output is the dot product of one window, wherever the span starts).
_SAVGOL_SPAN_MAX_SAMPLES = 1 << 16


def _px_to_deg(
    geometry: ScreenGeometry,
    x_px: FloatArray,
    y_px: FloatArray,
    out: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """``detection._px_to_deg`` (the same bits) in compiled code, into ``out`` when given.

    In place where ``out`` is the input: a fresh array costs a page fault per 4 KiB (about 2 us
    each on the benchmark's virtual machine), as much as the arithmetic.
    """
    return _reference_px_to_deg(geometry, x_px, y_px, out, kernel=kern.px_to_deg)


def supported(method: str, p: Params) -> bool:
    """Whether the fast path implements ``method`` with these parameters (median window 1 or 3)."""
    if method == "adaptive" and isinstance(p, AdaptiveParams):
        return p.median_filter_window_samples in (1, 3)
    if method == "ivt" and isinstance(p, IVTParams):
        return p.noise_window_samples in (1, 3)
    return False


@dataclass
class FrameResult:
    """What :func:`detect_frame` computes for a frame of trials."""

    labels: npt.NDArray[np.int8]
    speed_deg_s: FloatArray
    deg: tuple[FloatArray, FloatArray]  # degree positions for the events table
    info: list[dict[str, Any]]  # per trial, what the detector adds to ``params_used``


def trial_intervals_us(t: FloatArray, bounds: IntArray) -> tuple[FloatArray, FloatArray]:
    """Sampling rate (Hz, NaN when unknown) and sample interval (us, 1000 when unknown) per trial.

    Raises
    ------
    ValueError
        When the time stamps of a trial do not strictly increase.
    """
    rates, bad_trial = kern.trial_rates(t, bounds)
    if bad_trial >= 0:
        raise ValueError("t_us must be strictly increasing")
    known = np.isfinite(rates)
    return rates, np.where(known, 1e6 / np.where(known, rates, 1.0), 1000.0)


def detect_frame(
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    bounds: IntArray,
    rates: FloatArray,
    dts: FloatArray,
    geometry: ScreenGeometry,
    method: str,
    p: Params,
    *,
    with_info: bool = False,
) -> FrameResult:
    """Run ``method`` on every trial ``[bounds[k], bounds[k + 1])`` of a frame.

    Parameters
    ----------
    t : numpy.ndarray
        Time stamps in microseconds (``float64``), increasing within each trial.
    x, y : numpy.ndarray
        Gaze position in pixels, NaN where lost (not modified).
    bounds : numpy.ndarray
        Trial boundaries (``n_trials + 1`` indices, first 0, last ``t.size``).
    rates, dts : numpy.ndarray
        Per trial, the measured sampling rate in Hz and sample interval in microseconds
        (:func:`trial_intervals_us`).
    geometry : ScreenGeometry
        Screen set-up.
    method : {"adaptive", "ivt"}
        Detector; :func:`supported` must hold for it and ``p``.
    p : AdaptiveParams or IVTParams
        Its parameters.
    with_info : bool
        Whether to tabulate the per-trial ``params_used`` additions (adapted thresholds).
    """
    if method == "adaptive":
        return _adaptive_frame(t, x, y, bounds, dts, geometry, p, with_info)  # type: ignore[arg-type]
    return _ivt_frame(t, x, y, bounds, rates, dts, geometry, p)  # type: ignore[arg-type]


def _adaptive_param_vector(p: AdaptiveParams) -> FloatArray:
    return np.array([float(getattr(p, name)) for name in kern.ADAPTIVE_FLOAT_PARAMS])


def _savgol_window(p: AdaptiveParams, dt: float) -> int:
    """Savitzky-Golay window of the adaptive detector at sample interval ``dt`` (microseconds)."""
    # Smallest odd window longer than the polynomial order, or the configured time span.
    min_win = p.savgol_polyorder + 1 + (p.savgol_polyorder % 2)
    return max(2 * (_samples(p.smoothing_window_ms, dt) // 2) + 1, min_win)


def _cut_spans(bounds: IntArray, trials: IntArray, max_samples: int) -> list[tuple[int, int, IntArray]]:
    """``trials`` (increasing) as consecutive spans ``(first sample, end, trials)`` of whole trials.

    A span closes before the trial that would take it past ``max_samples`` (a longer trial is a
    span of its own).
    """
    starts, ends = bounds[trials], bounds[trials + 1]
    spans = []
    first = 0
    # One search per span instead of a Python step per trial: the ends increase.
    while first < trials.size:
        stop = max(int(np.searchsorted(ends, starts[first] + max_samples, side="right")), first + 1)
        spans.append((int(starts[first]), int(ends[stop - 1]), trials[first:stop]))
        first = stop
    return spans


def _adaptive_frame(
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    bounds: IntArray,
    dts: FloatArray,
    geometry: ScreenGeometry,
    p: AdaptiveParams,
    with_info: bool,
) -> FrameResult:
    n = t.size
    # Fresh arrays, written in the pass that reads x and y (which stay as they are).
    x0, y0, off, lost = kern.blank_and_fill(
        t,
        x,
        y,
        bounds,
        dts,
        float(geometry.screen_width_px),
        float(geometry.screen_height_px),
        float(p.offscreen_margin_fraction),
        True,
        float(p.gap_fill_max_ms),
    )
    xe, ye = _px_to_deg(geometry, x0, y0, out=(x0, y0))
    if p.median_filter_window_samples > 1:
        # Single-sample spikes are tracker artefacts; a median keeps saccade edges intact.
        xd = kern.median3(xe, bounds)
        yd = kern.median3(ye, bounds)
    else:
        xd, yd = xe, ye
    # The events table wants the degrees of the recorded samples: these, except where an
    # off-screen sample was blanked (or blanked and refilled). Once the median has read them
    # they can be overwritten in place.
    off_idx = np.flatnonzero(off)
    if off_idx.size:
        if xe is xd:
            xe, ye = xe.copy(), ye.copy()
        xe[off_idx], ye[off_idx] = _px_to_deg(geometry, x[off_idx], y[off_idx])
    v = np.empty(n)
    n_tr = bounds.size - 1
    wins = np.empty(n_tr, dtype=np.intp)
    lengths = np.diff(bounds)
    for dt in np.unique(dts):
        trials = np.flatnonzero(dts == dt)
        win = _savgol_window(p, float(dt))
        wins[trials] = win
        coeffs = _savgol_kernel(win, p.savgol_polyorder, 1, float(dt) * 1e-6)[::-1]
        lo, hi = int(bounds[trials[0]]), int(bounds[trials[-1] + 1])
        if lengths[trials].sum() >= _SAVGOL_SPAN_SHARE * (hi - lo):
            spans = _cut_spans(bounds, trials, _SAVGOL_SPAN_MAX_SAMPLES)
        else:
            spans = [(int(bounds[k]), int(bounds[k + 1]), trials[i : i + 1]) for i, k in enumerate(trials)]
        for a, b, tr in spans:
            # The same convolution as savitzky_golay: trials far from the window edges get
            # exactly the values a per-trial call gives, the edges are held per trial.
            cores = [
                np.convolve(src[a:b], coeffs, mode="valid") if b - a >= win else np.zeros(1)
                for src in (xd, yd)
            ]
            kern.savgol_speed(cores[0], cores[1], a, v, bounds, tr, win)
            # Freed before the next convolution and the threshold passes: the lower the peak
            # of memory in use, the fewer fresh pages the next frame has to fault in.
            del cores
    pv = _adaptive_param_vector(p)
    lab, info = kern.adaptive_trials(t, xd, yd, v, lost, bounds, dts, pv)
    infos: list[dict[str, Any]] = []
    if with_info:
        for k in range(n_tr):
            row = {name: float(val) for name, val in zip(kern.ADAPTIVE_INFO, info[k], strict=True)}
            infos.append(
                {
                    "peak_threshold_deg_s": row["peak_threshold_deg_s"],
                    "onset_threshold_deg_s": row["onset_threshold_deg_s"],
                    "noise_mean_deg_s": row["noise_mean_deg_s"],
                    "noise_sd_deg_s": row["noise_sd_deg_s"],
                    "savgol_window_samples": int(wins[k]),
                    "step_noise_median_deg_s": row["step_noise_median_deg_s"],
                    "step_noise_sd_deg_s": row["step_noise_sd_deg_s"],
                    "step_onset_deg_s": row["step_onset_deg_s"],
                }
            )
    return FrameResult(lab, v, (xe, ye), infos)


def _ivt_frame(
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    bounds: IntArray,
    rates: FloatArray,
    dts: FloatArray,
    geometry: ScreenGeometry,
    p: IVTParams,
) -> FrameResult:
    xf, yf, _, _ = kern.blank_and_fill(t, x, y, bounds, dts, 1.0, 1.0, 0.0, False, float(p.gap_fill_max_ms))
    if p.noise_window_samples > 1:
        xf = kern.median3(xf, bounds)
        yf = kern.median3(yf, bounds)
    # In place: both are this function's own arrays, read by nothing else.
    xd, yd = _px_to_deg(geometry, xf, yf, out=(xf, yf))
    half = np.array(
        [
            velocity_window_half_samples(p.velocity_window_ms, r) if np.isfinite(r) else 1
            for r in rates.tolist()
        ],
        dtype=np.intp,
    )
    v = kern.window_velocity(t, xd, yd, bounds, half)
    lab = kern.ivt_labels(
        t,
        xd,
        yd,
        v,
        bounds,
        dts,
        float(p.velocity_threshold_deg_s),
        bool(p.merge_adjacent_fixations),
        float(p.merge_max_gap_ms),
        float(p.merge_max_angle_deg),
        bool(p.discard_short_fixations),
        float(p.min_fixation_duration_ms),
    )
    # I-VT's events table takes the degrees of the recorded (unfiltered) samples.
    return FrameResult(lab, v, _px_to_deg(geometry, x, y), [{} for _ in range(bounds.size - 1)])


def event_columns(
    res: FrameResult,
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    bounds: IntArray,
    dts: FloatArray,
) -> tuple[dict[str, Any], IntArray]:
    """The :data:`EVENT_COLUMNS` of every trial's events (strings as Arrow arrays) and their trial."""
    # The kernel reads labels, degrees and speeds as raw words: it needs them contiguous (they
    # are, as the detectors make them; this only guards against a strided caller).
    lab, xd, yd, v = (np.ascontiguousarray(a) for a in (res.labels, *res.deg, res.speed_deg_s))
    trial, codes, ints, fl = kern.event_table(lab, t, x, y, xd, yd, v, bounds, dts)
    cols: dict[str, Any] = {"event": string_array(codes, SAMPLE_LABELS)}
    floats = dict(zip(kern.EVENT_FLOAT_COLUMNS, fl.T, strict=True))
    ints_by_name = {"start_index": ints[:, 0], "end_index": ints[:, 1], "n_samples": ints[:, 2]}
    for name in EVENT_COLUMNS[1:]:
        cols[name] = ints_by_name[name] if name in ints_by_name else np.ascontiguousarray(floats[name])
    return cols, trial


# --------------------------------------------------------------------------------------------
# String columns
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def string_pool(strings: tuple[str, ...]) -> tuple[npt.NDArray[np.uint8], IntArray, int]:
    """The strings encoded and zero-padded to a common width (a multiple of 8 bytes)."""
    encoded = [s.encode("utf-8") for s in strings]
    lengths = np.array([len(b) for b in encoded], dtype=np.intp)
    width = max(8, -(-int(lengths.max(initial=0)) // 8) * 8)
    pool = np.frombuffer(b"".join(b.ljust(width, b"\0") for b in encoded), dtype=np.uint8)
    if pool.size == 0:
        pool = np.zeros(width, dtype=np.uint8)
    return pool, lengths, width


def string_array(codes: npt.NDArray[np.integer], strings: tuple[str, ...]) -> Any:
    """``strings[codes]`` as a pandas string array, written straight into Arrow buffers.

    Equal to ``pd.array(np.asarray(strings, dtype=object)[codes])`` (the dtype pandas infers),
    without creating a Python object per element. Codes of any integer type are read as they
    are (the per-sample labels come as ``int8``).
    """
    codes = np.ascontiguousarray(codes)
    if codes.dtype.kind not in "iu":
        codes = codes.astype(np.intp)
    dtype = _string_dtype()
    if getattr(dtype, "storage", None) != "pyarrow" or len(strings) == 0:
        return pd.array(np.asarray(strings, dtype=object)[codes], dtype=dtype)
    return repeated_string_array(*kern.code_runs(codes), strings)


def repeated_string_array(run_codes: IntArray, run_counts: IntArray, strings: tuple[str, ...]) -> Any:
    """:func:`string_array` of ``np.repeat(run_codes, run_counts)``, without making that array."""
    run_codes = np.ascontiguousarray(run_codes, dtype=np.intp)
    run_counts = np.ascontiguousarray(run_counts, dtype=np.intp)
    dtype = _string_dtype()
    if getattr(dtype, "storage", None) != "pyarrow" or len(strings) == 0:
        return pd.array(np.asarray(strings, dtype=object)[np.repeat(run_codes, run_counts)], dtype=dtype)
    pool, lengths, width = string_pool(strings)
    n = int(run_counts.sum())
    offsets, data = kern.run_string_buffers(run_codes, run_counts, pool, lengths, width)
    buf = pa.py_buffer(offsets)
    arr = pa.LargeStringArray.from_buffers(n, buf, pa.py_buffer(data))
    return pd.array(arr, dtype=dtype)


# --------------------------------------------------------------------------------------------
# detect_trials
# --------------------------------------------------------------------------------------------


def _arrow_codes(
    pa_arr: Any, candidates: tuple[str, ...]
) -> tuple[npt.NDArray[np.integer], npt.NDArray[np.bool_]] | None:
    """Index into ``candidates`` of every value of a null-free Arrow string array, and which occur.

    ``None`` when some value is none of the candidates or the array is not a plain (large)
    string array. The codes are ``int8`` for up to 100 candidates: an eighth of the memory to
    write (and fault in) per row.
    """
    chunks = pa_arr.chunks if isinstance(pa_arr, pa.ChunkedArray) else [pa_arr]
    pool, lengths, width = string_pool(candidates)
    out = np.empty(len(pa_arr), dtype=np.int8 if len(candidates) <= 100 else np.intp)
    seen = np.zeros(len(candidates), dtype=np.bool_)
    pos = 0
    for chunk in chunks:
        if pa.types.is_large_string(chunk.type):
            off_type: Any = np.int64
        elif pa.types.is_string(chunk.type):
            off_type = np.int32
        else:
            return None
        m = len(chunk)
        if m == 0:
            continue
        bufs = chunk.buffers()
        offsets = np.frombuffer(bufs[1], dtype=off_type)[chunk.offset : chunk.offset + m + 1]
        data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
        if data.ctypes.data % 8:
            # A sliced Arrow buffer may start off a word boundary: rare, copied.
            data = data.copy()
        words = data[: data.size // 8 * 8].view(np.uint64)
        if not kern.match_strings(offsets, data, words, pool, lengths, width, out[pos : pos + m], seen):
            return None
        pos += m
    return out, seen


def _codes_of(
    column: pd.Series, preferred: tuple[str, ...] = ()
) -> tuple[npt.NDArray[np.integer], list[str]]:
    """Integer codes of a string column, in sorted order of the values (as ``pd.factorize(sort=True)``).

    Arrow-backed columns that hold only their first value and values from ``preferred`` are coded
    by a compiled byte comparison instead of hashing.
    """
    arr = column.array
    if hasattr(arr, "__arrow_array__") and len(column):
        pa_arr = arr.__arrow_array__()
        if pa_arr.null_count == 0:
            first = str(pa_arr[0].as_py())
            candidates = (first, *(v for v in preferred if v != first))
            found = _arrow_codes(pa_arr, candidates)
            if found is not None:
                codes, seen = found
                present = np.flatnonzero(seen)
                values = sorted(candidates[i] for i in present)
                lut = np.zeros(len(candidates), dtype=codes.dtype)
                for i in present:
                    lut[i] = values.index(candidates[i])
                # Only the codes that occur need to keep their place (a monocular frame's "left"
                # among the preferred "left", "right"): then the frame-long gather is skipped.
                if any(lut[i] != i for i in present):
                    codes = lut[codes]
                return codes, values
    codes, uniques = pd.factorize(column, sort=True)
    return codes.astype(np.intp, copy=False), [str(u) for u in uniques]


def detect_trials_fast(
    samples: pd.DataFrame, geometry: ScreenGeometry, method: str, p: Params, eye_mode: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`~pov_pipeline.gaze.detection.detect_trials` over the whole frame at once."""
    part_codes, part_values = _codes_of(samples["participant"])
    eye_codes, eye_values = _codes_of(samples["eye"], ("left", "right"))
    trial_col = samples["trial"]
    # Integer trial numbers are read in their own type (int32 in raw_gaze): no widened copy.
    native = trial_col.dtype in (np.dtype(np.int32), np.dtype(np.int64))
    trial_vals = trial_col.to_numpy() if native else trial_col.to_numpy(np.int64)
    t_raw = t_raw_in = samples["t_us"].to_numpy(np.int64)
    in_order, bounds = kern.frame_layout(part_codes, trial_vals, eye_codes, t_raw)
    # Keys widened for the sort: differences of narrow codes must not wrap around.
    order = (
        None
        if in_order
        else _sort_order(*(a.astype(np.int64) for a in (part_codes, trial_vals, eye_codes, t_raw)))
    )
    x_src = samples["x_px"].to_numpy()
    y_src = samples["y_px"].to_numpy()
    masked = False
    # Where set, x_all / y_all are still the recorded columns: the compiled pass that first reads
    # them (the eye averaging, else masked_float64) casts them and blanks the invalid samples.
    valid: npt.NDArray[np.bool_] | None = None
    if order is None and "valid" in samples and x_src.dtype.kind == "f" and y_src.dtype.kind == "f":
        valid = samples["valid"].to_numpy(bool)
        x_all, y_all = x_src, y_src
        masked = True
    elif order is not None:
        part_codes, trial_vals, t_raw, eye_codes = (
            a[order] for a in (part_codes, trial_vals, t_raw, eye_codes)
        )
        x_all = samples["x_px"].to_numpy(np.float64)[order]
        y_all = samples["y_px"].to_numpy(np.float64)[order]
    else:
        # The detectors never write into their input, but the NaN masking below does.
        x_all = samples["x_px"].to_numpy(np.float64).astype(np.float64, copy=True)
        y_all = samples["y_px"].to_numpy(np.float64).astype(np.float64, copy=True)
    if "valid" in samples and not masked:
        bad = ~samples["valid"].to_numpy(bool)
        if order is not None:
            bad = bad[order]
        x_all[bad] = np.nan
        y_all[bad] = np.nan
    if order is not None:
        in_order, bounds = kern.frame_layout(part_codes, trial_vals, eye_codes, t_raw)
    first_rows = bounds[:-1]
    stim_col = samples["stimulus_id"]
    # A take on the array itself: a tenth of the cost of ``iloc`` with its index.
    stim_first = np.asarray(
        stim_col.array.take(first_rows if order is None else order[first_rows]), dtype=object
    )
    eye_change = np.flatnonzero(eye_codes[1:] != eye_codes[:-1]) + 1
    multi_eye = np.zeros(bounds.size - 1, dtype=bool)
    multi_eye[np.searchsorted(bounds, eye_change, side="right") - 1] = True
    eye_names = [eye_values[c] for c in eye_codes[first_rows].tolist()]

    if multi_eye.any():
        t_all, x_all, y_all, bounds = _combine_eyes(
            t_raw, x_all, y_all, valid, eye_codes, eye_values, bounds, multi_eye, eye_mode, eye_names
        )
    else:
        t_all = t_raw
        if valid is not None:
            x_all = kern.masked_float64(x_all, valid)
            y_all = kern.masked_float64(y_all, valid)
    t = t_all.astype(np.float64)
    rates, dts = trial_intervals_us(t, bounds)
    res = detect_frame(t, x_all, y_all, bounds, rates, dts, geometry, method, p)

    trial_len = np.diff(bounds)
    trial_part = part_codes[first_rows]
    trial_no = trial_vals[first_rows].astype(np.int32)
    stim_values = tuple(str(s) for s in stim_first)
    eye_pool = tuple(sorted(set(eye_names)))
    trial_eye = np.array([eye_pool.index(e) for e in eye_names], dtype=np.intp)
    n_tr = trial_len.size
    labels = pd.DataFrame(
        {
            "participant": repeated_categorical(trial_part, part_values, trial_len),
            "trial": np.repeat(trial_no, trial_len),
            "stimulus_id": repeated_categorical(*_trial_codes(stim_first), trial_len),
            # The one column that may still be a view of the caller's frame.
            "t_us": t_all.astype(np.int64, copy=t_all is t_raw_in),
            "eye": repeated_categorical(trial_eye, list(eye_pool), trial_len),
            "label": label_categorical(res.labels),
        },
        # Every column is made here: pandas' defensive copy would cost a pass over the frame.
        copy=False,
    )
    cols, ev_trial = event_columns(res, t, x_all, y_all, bounds, dts)
    if ev_trial.size == 0:
        return labels, _empty_trial_events()
    ev_len = np.bincount(ev_trial, minlength=n_tr)
    offsets = np.cumsum(ev_len) - ev_len
    t0_ms = t[bounds[:-1]] / 1000.0
    events = pd.DataFrame(
        {
            "participant": string_array(trial_part[ev_trial], tuple(part_values)),
            "trial": trial_no[ev_trial],
            "stimulus_id": string_array(ev_trial, stim_values),
            "eye": string_array(trial_eye[ev_trial], eye_pool),
            "event_index": (np.arange(ev_trial.size) - offsets[ev_trial]).astype(np.int32),
            **cols,
            "onset_in_trial_ms": cols["onset_ms"] - t0_ms[ev_trial],
        },
        copy=False,
    )
    return labels, events


def _combine_eyes(
    t_raw: npt.NDArray[np.int64],
    x_all: npt.NDArray[np.floating],
    y_all: npt.NDArray[np.floating],
    valid: npt.NDArray[np.bool_] | None,
    eye_codes: npt.NDArray[np.integer],
    eye_values: list[str],
    bounds: IntArray,
    multi_eye: npt.NDArray[np.bool_],
    eye_mode: str,
    eye_names: list[str],
) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray, IntArray]:
    """Reduce the binocular trials to one signal each (``eye_names`` is updated in place).

    The usual layout (all left samples, then all right ones at the same time stamps) is averaged
    in one compiled pass; any other binocular trial goes through the reference ``_trial_signal``.
    With ``valid`` the positions are the recorded columns, still to be cast and blanked where
    not valid; without it they are ``float64`` with NaN there already.
    """
    n_tr = bounds.size - 1
    ok = np.zeros(n_tr, dtype=bool)
    if eye_mode == "average" and eye_values[:2] == ["left", "right"]:
        mask = valid if valid is not None else np.ones(t_raw.size, dtype=bool)
        ok, new_bounds, t_c, x_c, y_c = kern.combine_aligned_eyes(
            t_raw, x_all, y_all, mask, eye_codes, bounds
        )
        ok &= multi_eye
    if ok.any() and not (multi_eye & ~ok).any():
        for k in np.flatnonzero(ok):
            eye_names[k] = "binocular"
        return t_c, x_c, y_c, new_bounds
    if valid is not None:
        x_all = kern.masked_float64(x_all, valid)
        y_all = kern.masked_float64(y_all, valid)
    t_parts, x_parts, y_parts = [], [], []
    lengths = np.diff(bounds)
    eye_obj = np.asarray(eye_values, dtype=object)
    for k in range(n_tr):
        a, b = int(bounds[k]), int(bounds[k + 1])
        if multi_eye[k]:
            tt, xx, yy, eye_names[k] = _trial_signal(
                t_raw[a:b], x_all[a:b], y_all[a:b], eye_obj[eye_codes[a:b]], eye_mode
            )
        else:
            tt, xx, yy = t_raw[a:b], x_all[a:b], y_all[a:b]
        t_parts.append(tt)
        x_parts.append(xx)
        y_parts.append(yy)
        lengths[k] = tt.size
    new_bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.intp)
    return (
        np.concatenate(t_parts).astype(np.int64, copy=False),
        np.concatenate(x_parts),
        np.concatenate(y_parts),
        new_bounds,
    )
