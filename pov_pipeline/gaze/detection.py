"""Fixation, saccade, PSO and blink detection on raw gaze samples.

Three detectors share one output format (:class:`DetectionResult`):

``ivt``
    The Tobii I-VT fixation filter as published by Olsen (2012): gap fill-in, moving-median
    noise reduction, windowed velocity, a fixed velocity threshold, merging of adjacent
    fixations and removal of short ones.
``idt``
    Dispersion-threshold identification (Salvucci & Goldberg 2000).
``adaptive``
    The default: a noise-adaptive velocity detector in the spirit of Nyström & Holmqvist (2010)
    and REMoDNaV (Dar et al. 2021). Thresholds are derived from each recording's own velocity
    distribution; saccade onsets and offsets are refined to velocity minima; post-saccadic
    oscillations (PSOs) are labelled; blinks are lost-data runs widened over the unstable signal
    around them; short fixations are dropped.

Every detector is vectorized with numpy run-length encoding: no Python loop runs over samples
(I-DT loops over fixations only). Parameters live in frozen dataclasses whose field names carry
their unit.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from pov_pipeline.gaze.geometry import ScreenGeometry, arctan_deg
from pov_pipeline.gaze.preprocess import (
    concat_ranges,
    fill_gaps_inplace,
    moving_median,
    nan_runs,
    sample_interval_us,
    sampling_rate_from_intervals_hz,
    savitzky_golay,
    select_eye,
    velocity_deg_s,
)
from pov_pipeline.schemas import SAMPLE_LABELS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

FIXATION, SACCADE, PSO, BLINK, LOST, UNCLASSIFIED = (np.int8(i) for i in range(6))
assert SAMPLE_LABELS == ("fixation", "saccade", "pso", "blink", "lost", "unclassified")

Method = Literal["ivt", "idt", "adaptive"]
#: The method :func:`detect_events` uses when none is named.
DEFAULT_METHOD: Method = "adaptive"

EVENT_COLUMNS: tuple[str, ...] = (
    "event",
    "onset_ms",
    "offset_ms",
    "duration_ms",
    "start_index",
    "end_index",
    "n_samples",
    "x_px",
    "y_px",
    "x_deg",
    "y_deg",
    "dispersion_deg",
    "amplitude_deg",
    "peak_velocity_deg_s",
    "start_x_px",
    "start_y_px",
    "end_x_px",
    "end_y_px",
)


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IVTParams:
    """Tobii I-VT fixation filter (Olsen 2012, "The Tobii I-VT Fixation Filter", defaults).

    Parameters
    ----------
    gap_fill_max_ms : float
        Longest run of lost samples to interpolate linearly.
    noise_window_samples : int
        Moving-median window (odd; 1 turns noise reduction off).
    velocity_window_ms : float
        Time window of the velocity calculator.
    velocity_threshold_deg_s : float
        Samples faster than this are saccade samples, the others fixation samples.
    merge_max_gap_ms : float
        Adjacent fixations closer in time than this ...
    merge_max_angle_deg : float
        ... and closer in space than this are merged (``merge_adjacent_fixations``).
    merge_adjacent_fixations : bool
        Whether to merge adjacent fixations.
    min_fixation_duration_ms : float
        Shorter fixations become ``unclassified`` (``discard_short_fixations``).
    discard_short_fixations : bool
        Whether to discard short fixations.
    """

    gap_fill_max_ms: float = 75.0
    noise_window_samples: int = 3
    velocity_window_ms: float = 20.0
    velocity_threshold_deg_s: float = 30.0
    merge_max_gap_ms: float = 75.0
    merge_max_angle_deg: float = 0.5
    merge_adjacent_fixations: bool = True
    min_fixation_duration_ms: float = 60.0
    discard_short_fixations: bool = True


@dataclass(frozen=True)
class IDTParams:
    """Dispersion-threshold identification (Salvucci & Goldberg 2000).

    Parameters
    ----------
    gap_fill_max_ms : float
        Longest run of lost samples to interpolate linearly.
    dispersion_threshold_deg : float
        Largest ``(max x - min x) + (max y - min y)`` of a fixation, in degrees.
    min_fixation_duration_ms : float
        Shortest fixation (the initial window length).
    """

    gap_fill_max_ms: float = 75.0
    dispersion_threshold_deg: float = 1.0
    min_fixation_duration_ms: float = 100.0


@dataclass(frozen=True)
class AdaptiveParams:
    """Noise-adaptive velocity detector with saccade, PSO and blink labelling (the default).

    Saccade peaks are found as in Nyström & Holmqvist (2010): starting from
    ``initial_peak_threshold_deg_s`` the peak threshold is re-estimated from the speeds below it
    until it settles, but with median and MAD (x 1.4826) in place of mean and SD, because a short
    recording holds enough saccade samples to make the SD run away. Onsets, offsets and PSOs are
    then resolved on the sample-to-sample speed, with thresholds set from that speed's own noise
    (``median + k * MAD`` over the non-saccadic samples), so each recording gets its own.

    Parameters
    ----------
    gap_fill_max_ms : float
        Lost runs up to this long are interpolated (tracker dropouts, not blinks).
    offscreen_margin_fraction : float
        Samples further outside the screen than this fraction of its size count as lost.
    median_filter_window_samples : int
        Moving median applied to the position first (odd, 1 = off): removes single-sample
        spikes while keeping saccade edges.
    smoothing_window_ms : float
        Savitzky-Golay window of the speed used to find saccade peaks (at least 3 samples).
    savgol_polyorder : int
        Savitzky-Golay polynomial order.
    initial_peak_threshold_deg_s : float
        Starting point of the iterative peak-threshold estimate.
    peak_threshold_sd : float
        Peak threshold in robust SDs of the sub-threshold speed.
    onset_threshold_sd : float
        Saccade onset/offset threshold in robust SDs of the sample-to-sample speed.
    min_peak_threshold_deg_s, max_peak_threshold_deg_s : float
        Bounds on the adapted peak threshold (guards for very clean or very noisy recordings).
    min_onset_threshold_deg_s : float
        Lower bound of the onset and PSO thresholds.
    threshold_max_iterations : int
        Cap on threshold iterations.
    min_saccade_duration_ms : float
        Shorter saccade candidates are dropped.
    min_saccade_amplitude_deg : float
        Saccade candidates whose mean position before and after differs by less are noise bursts.
    amplitude_window_ms : float
        Span before onset and after offset over which those mean positions are taken.
    pso_window_ms : float
        A PSO must start (the speed rise above its threshold) within this time after a saccade.
    strong_pso_window_ms : float
        A saccade-speed peak starting sooner than this after a saccade ends is a strong PSO.
    pso_threshold_sd : float
        PSO threshold in robust SDs of the sample-to-sample speed.
    pso_gap_close_ms : float
        Slow stretches this short inside an oscillation do not end it (turning points).
    pso_max_duration_ms : float
        Longest PSO.
    blink_min_lost_ms : float
        Lost runs at least this long are blinks (shorter ones stay ``lost``).
    blink_max_lost_ms : float
        Lost runs longer than this are track loss, not blinks.
    blink_margin_ms : float
        Samples within this time of a blink's lost run are part of the blink; saccade, PSO and
        unclassified runs touching a blink are eyelid artefacts and join it too.
    min_fixation_duration_ms : float
        Shorter fixation candidates become ``unclassified``.
    """

    gap_fill_max_ms: float = 10.0
    offscreen_margin_fraction: float = 0.25
    median_filter_window_samples: int = 3
    smoothing_window_ms: float = 3.0
    savgol_polyorder: int = 2
    initial_peak_threshold_deg_s: float = 100.0
    peak_threshold_sd: float = 6.0
    onset_threshold_sd: float = 3.0
    min_peak_threshold_deg_s: float = 30.0
    max_peak_threshold_deg_s: float = 300.0
    min_onset_threshold_deg_s: float = 5.0
    threshold_max_iterations: int = 50
    min_saccade_duration_ms: float = 6.0
    min_saccade_amplitude_deg: float = 0.3
    amplitude_window_ms: float = 10.0
    pso_window_ms: float = 10.0
    strong_pso_window_ms: float = 7.0
    pso_threshold_sd: float = 3.0
    pso_gap_close_ms: float = 4.0
    pso_max_duration_ms: float = 40.0
    blink_min_lost_ms: float = 30.0
    blink_max_lost_ms: float = 2000.0
    blink_margin_ms: float = 20.0
    min_fixation_duration_ms: float = 40.0


Params = IVTParams | IDTParams | AdaptiveParams
_PARAMS_CLASS: dict[str, type] = {"ivt": IVTParams, "idt": IDTParams, "adaptive": AdaptiveParams}


@dataclass(frozen=True)
class DetectionResult:
    """Output of :func:`detect_events`.

    Attributes
    ----------
    labels : numpy.ndarray
        ``int8`` per sample, an index into :data:`pov_pipeline.schemas.SAMPLE_LABELS`.
    events : pandas.DataFrame
        One row per fixation, saccade, PSO, blink or lost run (columns :data:`EVENT_COLUMNS`).
    params_used : dict
        The method, its parameters, the measured sampling rate and any adapted thresholds.
    """

    labels: npt.NDArray[np.int8]
    events: pd.DataFrame
    params_used: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Run-length and interval helpers
# --------------------------------------------------------------------------------------------


def runs(labels: npt.ArrayLike) -> tuple[IntArray, IntArray, npt.NDArray[Any]]:
    """Run-length encode: start index, end index (exclusive) and value of each run."""
    a = np.asarray(labels)
    if a.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, a[:0]
    change = np.flatnonzero(a[1:] != a[:-1])
    starts = np.empty(change.size + 1, dtype=np.intp)
    starts[0] = 0
    np.add(change, 1, out=starts[1:])
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = a.size
    return starts, ends, a[starts]


def _merge_intervals(n: int, starts: npt.ArrayLike, ends: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """The runs of the union of half-open intervals ``[start, end)`` clipped to ``[0, n)``.

    Overlapping or touching intervals become one run, exactly as ``runs(_interval_mask(...))``
    would report them, but in time proportional to the number of intervals, not samples.
    """
    # np.minimum/np.maximum rather than np.clip, whose Python wrapper costs more than the work.
    s = np.minimum(np.maximum(np.asarray(starts, dtype=np.intp), 0), n)
    e = np.minimum(np.maximum(np.asarray(ends, dtype=np.intp), 0), n)
    keep = e > s
    if not keep.all():
        s, e = s[keep], e[keep]
    if s.size < 2:
        return s, e
    if np.any(s[1:] < s[:-1]):
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
    reach = np.maximum.accumulate(e)
    head = np.ones(s.size, dtype=bool)
    head[1:] = s[1:] > reach[:-1]
    first = np.flatnonzero(head)
    last = np.append(first[1:] - 1, s.size - 1)
    return s[first], reach[last]


def _interval_mask(n: int, starts: npt.ArrayLike, ends: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Boolean mask covering the half-open intervals ``[start, end)`` (they may overlap)."""
    mask = np.zeros(n, dtype=bool)
    mask[concat_ranges(*_merge_intervals(n, starts, ends))] = True
    return mask


def _paint(lab: npt.NDArray[np.int8], starts: npt.ArrayLike, ends: npt.ArrayLike, code: np.int8) -> None:
    """Set ``lab`` to ``code`` on the intervals ``[start, end)`` (touching only those samples)."""
    lab[concat_ranges(*_merge_intervals(lab.size, starts, ends))] = code


def _run_durations_ms(t_us: FloatArray, starts: IntArray, ends: IntArray, dt_us: float) -> FloatArray:
    """Duration of runs ``[start, end)``: time from the first sample to the sample after the last."""
    n = t_us.size
    t_after = np.where(ends < n, t_us[np.minimum(ends, n - 1)], t_us[-1] + dt_us)
    return (t_after - t_us[starts]) / 1000.0


def _samples(duration_ms: float, dt_us: float) -> int:
    """Number of samples spanning ``duration_ms`` (at least one)."""
    return max(1, round(duration_ms * 1000.0 / dt_us))


def _tangent_axes(geometry: ScreenGeometry) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(centre_px, scale)`` of x and y: a position's tangent is ``(px - centre_px) * scale``."""
    d = geometry.viewing_distance_mm
    return (
        (0.5 * geometry.screen_width_px, geometry.mm_per_px_x / d),
        (0.5 * geometry.screen_height_px, geometry.mm_per_px_y / d),
    )


def _px_to_deg(
    geometry: ScreenGeometry,
    x_px: FloatArray,
    y_px: FloatArray,
    out: tuple[FloatArray, FloatArray] | None = None,
    kernel: Any = None,
) -> tuple[FloatArray, FloatArray]:
    """:meth:`ScreenGeometry.px_to_deg` with the same arithmetic, into ``out`` when given.

    ``out`` (``float64`` arrays, which may be ``x_px`` and ``y_px`` themselves) receives the
    result instead of new arrays. ``kernel`` is the compiled ``_kernels.px_to_deg`` (the same
    bits, ``kernel(px, centre, scale, out)``), which the fast path passes; by default numpy.
    """
    res = []
    for a, (centre, scale), dst in zip(
        (x_px, y_px), _tangent_axes(geometry), out or (None, None), strict=True
    ):
        if kernel is not None:
            a = np.ascontiguousarray(a, dtype=np.float64)
            deg = np.empty_like(a) if dst is None else dst
            kernel(a, centre, scale, deg)
        else:
            deg = arctan_deg((np.asarray(a, dtype=np.float64) - centre) * scale)
            if dst is not None:
                dst[...] = deg
                deg = dst
        res.append(deg)
    return res[0], res[1]


def _norm_inplace(a: FloatArray, b: FloatArray) -> FloatArray:
    """``sqrt(a**2 + b**2)`` into ``a`` (``b`` is overwritten too); much faster than np.hypot."""
    np.multiply(a, a, out=a)
    np.multiply(b, b, out=b)
    a += b
    return np.sqrt(a, out=a)


def _next_in_runs(rs: IntArray, re: IntArray, pos: IntArray, n: int) -> IntArray:
    """First index ``>= pos`` inside one of the sorted runs ``[rs, re)``; ``n`` when none."""
    j = np.searchsorted(re, pos, side="right")
    inside = j < rs.size
    out = np.full(pos.size, n, dtype=np.intp)
    out[inside] = np.maximum(rs[j[inside]], pos[inside])
    return out


# --------------------------------------------------------------------------------------------
# Events table
# --------------------------------------------------------------------------------------------


def build_events(
    labels: npt.ArrayLike,
    t_us: npt.ArrayLike,
    x_px: npt.ArrayLike,
    y_px: npt.ArrayLike,
    geometry: ScreenGeometry,
    speed_deg_s: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Tabulate the events of a label sequence (one row per run of a non-``unclassified`` label).

    Parameters
    ----------
    labels : array_like
        ``int8`` codes into ``SAMPLE_LABELS``.
    t_us : array_like
        Time stamps in microseconds.
    x_px, y_px : array_like
        Gaze positions in pixels (NaN where lost).
    geometry : ScreenGeometry
        Screen set-up for the degree columns.
    speed_deg_s : array_like, optional
        Gaze speed for ``peak_velocity_deg_s`` (NaN column when omitted).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`EVENT_COLUMNS`, in time order.
    """
    lab = np.asarray(labels, dtype=np.int8)
    t = np.asarray(t_us, dtype=np.float64)
    x = np.asarray(x_px, dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    if lab.size == 0:
        return _empty_events()
    dt = sample_interval_us(t)
    dt = dt if np.isfinite(dt) else 1000.0
    v = None if speed_deg_s is None else np.asarray(speed_deg_s, dtype=np.float64)
    cols = _event_columns(lab, t, x, y, None, geometry, v, dt)
    return _empty_events() if cols is None else pd.DataFrame(cols)


def _event_columns(
    lab: npt.NDArray[np.int8],
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    deg: tuple[FloatArray, FloatArray] | None,
    geometry: ScreenGeometry,
    v: FloatArray | None,
    dt: float,
) -> dict[str, npt.NDArray[Any]] | None:
    """Columns of the events table (``None`` when there is no event).

    ``deg`` may hold the degree positions a detector already computed; they need only be right
    where ``x`` and ``y`` are both finite, since the other samples are excluded from every column.
    """
    starts_all, ends_all, codes_all = runs(lab)
    sel = np.flatnonzero(codes_all != UNCLASSIFIED)
    if sel.size == 0:
        return None
    xd, yd = _px_to_deg(geometry, x, y) if deg is None else deg
    bad = np.isnan(x)
    bad |= np.isnan(y)
    bad_idx = np.flatnonzero(bad)
    # Runs holding a lost sample are reduced again over their valid samples only; the others
    # (nearly all) are reduced straight from the signal, without masked copies of it.
    run_of_bad = np.searchsorted(starts_all, bad_idx, side="right") - 1
    n_bad = np.bincount(run_of_bad, minlength=starts_all.size)
    cnt_all = (ends_all - starts_all) - n_bad
    dirty = np.flatnonzero(n_bad > 0)
    if dirty.size:
        d_idx = concat_ranges(starts_all[dirty], ends_all[dirty])
        d_ok = ~bad[d_idx]
        d_len = ends_all[dirty] - starts_all[dirty]
        d_starts = np.cumsum(d_len) - d_len

    def mean_of(a: FloatArray) -> FloatArray:
        total = np.add.reduceat(a, starts_all)
        if dirty.size:
            total[dirty] = np.add.reduceat(np.where(d_ok, a[d_idx], 0.0), d_starts)
        total = total[sel]
        cnt = cnt_all[sel]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt > 0, total / np.maximum(cnt, 1), np.nan)

    def span_of(a: FloatArray) -> FloatArray:
        hi = np.maximum.reduceat(a, starts_all)
        lo = np.minimum.reduceat(a, starts_all)
        if dirty.size:
            masked = np.where(d_ok, a[d_idx], np.nan)
            hi[dirty] = np.fmax.reduceat(masked, d_starts)
            lo[dirty] = np.fmin.reduceat(masked, d_starts)
        return hi[sel] - lo[sel]

    starts, ends, codes = starts_all[sel], ends_all[sel], codes_all[sel]
    last = ends - 1
    sx, sy, ex, ey = x[starts], y[starts], x[last], y[last]
    ok_last = ~bad[last]
    exd = np.where(ok_last, xd[last], np.nan)
    eyd = np.where(ok_last, yd[last], np.nan)
    # Amplitude is the displacement the event made: from the sample before it (where the eye
    # was when it set off) to its last sample.
    before = np.maximum(starts - 1, 0)
    use_before = (starts > 0) & ~bad[before]
    first = np.where(use_before, before, starts)
    ok_first = ~bad[first]
    sxd = np.where(ok_first, xd[first], np.nan)
    syd = np.where(ok_first, yd[first], np.nan)
    peak = np.fmax.reduceat(v, starts_all)[sel] if v is not None else np.full(starts.size, np.nan)
    onset = t[starts] / 1000.0
    offset = np.where(ends < t.size, t[np.minimum(ends, t.size - 1)], t[-1] + dt) / 1000.0
    return {
        "event": np.asarray(SAMPLE_LABELS, dtype=object)[codes],
        "onset_ms": onset,
        "offset_ms": offset,
        "duration_ms": offset - onset,
        "start_index": starts.astype(np.int64),
        "end_index": last.astype(np.int64),
        "n_samples": (ends - starts).astype(np.int64),
        "x_px": mean_of(x),
        "y_px": mean_of(y),
        "x_deg": mean_of(xd),
        "y_deg": mean_of(yd),
        "dispersion_deg": span_of(xd) + span_of(yd),
        "amplitude_deg": np.hypot(exd - sxd, eyd - syd),
        "peak_velocity_deg_s": peak,
        "start_x_px": sx,
        "start_y_px": sy,
        "end_x_px": ex,
        "end_y_px": ey,
    }


def _empty_events() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in EVENT_COLUMNS})
    frame["event"] = frame["event"].astype(object)
    for c in ("start_index", "end_index", "n_samples"):
        frame[c] = frame[c].astype(np.int64)
    return frame


# --------------------------------------------------------------------------------------------
# Shared input of the detectors
# --------------------------------------------------------------------------------------------


@dataclass
class _Signal:
    """One recording as the detectors take it: float64 arrays plus what was measured once."""

    t: FloatArray
    x: FloatArray
    y: FloatArray
    dt_t: FloatArray  # np.diff(t)
    rate_hz: float
    dt: float  # sample interval in us (1000 when the rate is unknown)
    deg: tuple[FloatArray, FloatArray] | None = None  # degree positions for the events table


# --------------------------------------------------------------------------------------------
# I-VT (Tobii, Olsen 2012)
# --------------------------------------------------------------------------------------------


def _ivt(
    sig: _Signal, geometry: ScreenGeometry, p: IVTParams
) -> tuple[npt.NDArray[np.int8], FloatArray, dict[str, Any]]:
    t, dt = sig.t, sig.dt
    xf = sig.x.copy()
    yf = sig.y.copy()
    fill_gaps_inplace(xf, yf, t, p.gap_fill_max_ms, interval_us=dt)
    if p.noise_window_samples > 1:
        xf = moving_median(xf, p.noise_window_samples)
        yf = moving_median(yf, p.noise_window_samples)
    xd, yd = _px_to_deg(geometry, xf, yf)
    v = velocity_deg_s(t, xd, yd, p.velocity_window_ms, sampling_rate_hz=sig.rate_hz)
    lost = np.isnan(xd)
    lost |= np.isnan(yd)
    lab = np.where(v > p.velocity_threshold_deg_s, SACCADE, FIXATION).astype(np.int8)
    lab[np.isnan(v)] = UNCLASSIFIED
    lab[lost] = LOST
    if p.merge_adjacent_fixations:
        lab = _merge_fixations(lab, t, xd, yd, dt, p.merge_max_gap_ms, p.merge_max_angle_deg)
    if p.discard_short_fixations:
        lab = _discard_short(lab, t, dt, FIXATION, p.min_fixation_duration_ms)
    return lab, v, {}


def _merge_fixations(
    lab: npt.NDArray[np.int8],
    t: FloatArray,
    xd: FloatArray,
    yd: FloatArray,
    dt: float,
    max_gap_ms: float,
    max_angle_deg: float,
) -> npt.NDArray[np.int8]:
    """Relabel the gap between two fixations close in time and space as fixation."""
    starts, ends, codes = runs(lab)
    is_fix = codes == FIXATION
    fs, fe = starts[is_fix], ends[is_fix]
    if fs.size < 2:
        return lab
    cx = np.add.reduceat(xd, starts)[is_fix] / (fe - fs)
    cy = np.add.reduceat(yd, starts)[is_fix] / (fe - fs)
    n = t.size
    gap_ms = (t[fs[1:]] - np.where(fe[:-1] < n, t[np.minimum(fe[:-1], n - 1)], t[-1] + dt)) / 1000.0
    angle = np.hypot(np.diff(cx), np.diff(cy))
    ok = (gap_ms <= max_gap_ms) & (angle <= max_angle_deg)
    _paint(lab, fe[:-1][ok], fs[1:][ok], FIXATION)
    return lab


def _discard_short(
    lab: npt.NDArray[np.int8], t: FloatArray, dt: float, code: np.int8, min_ms: float
) -> npt.NDArray[np.int8]:
    starts, ends, codes = runs(lab)
    is_code = codes == code
    starts, ends = starts[is_code], ends[is_code]
    dur = _run_durations_ms(t, starts, ends, dt)
    short = dur < min_ms - 1e-9
    _paint(lab, starts[short], ends[short], UNCLASSIFIED)
    return lab


# --------------------------------------------------------------------------------------------
# I-DT (Salvucci & Goldberg 2000)
# --------------------------------------------------------------------------------------------


def _idt(
    sig: _Signal, geometry: ScreenGeometry, p: IDTParams
) -> tuple[npt.NDArray[np.int8], FloatArray, dict[str, Any]]:
    t, dt = sig.t, sig.dt
    xf = sig.x.copy()
    yf = sig.y.copy()
    fill_gaps_inplace(xf, yf, t, p.gap_fill_max_ms, interval_us=dt)
    xd, yd = _px_to_deg(geometry, xf, yf)
    # Filling leaves the valid samples as they were, so these degrees serve the events table.
    sig.deg = (xd, yd)
    n = t.size
    lost = np.isnan(xd) | np.isnan(yd)
    lab = np.where(lost, LOST, SACCADE).astype(np.int8)
    w = max(2, int(np.ceil(p.min_fixation_duration_ms * 1000.0 / dt - 1e-9)))
    if n >= w:
        # Lost samples get +/-inf so any window containing one has infinite dispersion.
        x_hi, x_lo = np.where(lost, np.inf, xd), np.where(lost, -np.inf, xd)
        y_hi, y_lo = np.where(lost, np.inf, yd), np.where(lost, -np.inf, yd)
        # Shift the filters so that element i covers the forward window [i, i + w).
        origin = -(w // 2)
        disp = (
            maximum_filter1d(x_hi, w, origin=origin, mode="nearest")
            - minimum_filter1d(x_lo, w, origin=origin, mode="nearest")
            + maximum_filter1d(y_hi, w, origin=origin, mode="nearest")
            - minimum_filter1d(y_lo, w, origin=origin, mode="nearest")
        )[: n - w + 1]
        ok_start = np.flatnonzero(disp <= p.dispersion_threshold_deg)
        fix_starts, fix_ends = [], []
        i = 0
        # One iteration per fixation: jump to the next window that qualifies, then grow it.
        while True:
            j = np.searchsorted(ok_start, i)
            if j >= ok_start.size:
                break
            s = int(ok_start[j])
            e = _grow_window(xd, yd, s, s + w, p.dispersion_threshold_deg)
            fix_starts.append(s)
            fix_ends.append(e)
            i = e
        _paint(lab, np.asarray(fix_starts, dtype=np.intp), np.asarray(fix_ends, dtype=np.intp), FIXATION)
    lab[lost] = LOST
    v = velocity_deg_s(t, xd, yd, 20.0, sampling_rate_hz=sig.rate_hz)
    # A window may cross a sub-threshold gap-filled stretch; keep durations honest anyway.
    lab = _discard_short(lab, t, dt, FIXATION, p.min_fixation_duration_ms)
    return lab, v, {"window_samples": w}


def _grow_window(xd: FloatArray, yd: FloatArray, s: int, e: int, thr: float) -> int:
    """Largest ``end`` such that the dispersion of ``[s, end)`` stays within ``thr`` (>= e)."""
    n = xd.size
    x0lo, x0hi = float(np.min(xd[s:e])), float(np.max(xd[s:e]))
    y0lo, y0hi = float(np.min(yd[s:e])), float(np.max(yd[s:e]))
    chunk = max(e - s, 16)
    while e < n:
        stop = min(n, e + chunk)
        xs, ys = xd[e:stop], yd[e:stop]
        with np.errstate(invalid="ignore"):
            d = (
                np.maximum(np.maximum.accumulate(xs), x0hi)
                - np.minimum(np.minimum.accumulate(xs), x0lo)
                + np.maximum(np.maximum.accumulate(ys), y0hi)
                - np.minimum(np.minimum.accumulate(ys), y0lo)
            )
        # NaN (lost) ends the fixation as surely as a large dispersion does.
        bad = np.flatnonzero(~(d <= thr))
        if bad.size:
            return e + int(bad[0])
        x0lo, x0hi = min(x0lo, float(xs.min())), max(x0hi, float(xs.max()))
        y0lo, y0hi = min(y0lo, float(ys.min())), max(y0hi, float(ys.max()))
        e = stop
        chunk *= 2
    return n


# --------------------------------------------------------------------------------------------
# Adaptive detector
# --------------------------------------------------------------------------------------------


#: Thresholds are estimated on an evenly strided subset of at most this many values per trial.
#: The speeds are smoothed over about 20 ms, so at 500-1000 Hz neighbouring values are near
#: duplicates and a stride of 2-3 loses little: on the Lund recordings and the demo study the
#: mean kappa moved by less than 0.002 between caps of 512, 1024, 2048 and 131072 values, while
#: sorting a third of the values takes a third of the time.
THRESHOLD_SAMPLE_CAP = 1 << 10


def _strided_subset(a: FloatArray, keep: npt.NDArray[np.bool_] | None) -> FloatArray:
    """``a[keep]`` thinned to at most ``THRESHOLD_SAMPLE_CAP`` values by an even stride."""
    if keep is None:
        sub = a
    else:
        count = int(np.count_nonzero(keep))
        if count == a.size:
            sub = a
        elif count <= THRESHOLD_SAMPLE_CAP:
            return a[keep]
        else:
            # Strided positions of the kept samples, without copying every kept value first.
            return a[np.flatnonzero(keep)[:: int(np.ceil(count / THRESHOLD_SAMPLE_CAP))]]
    if sub.size > THRESHOLD_SAMPLE_CAP:
        sub = sub[:: int(np.ceil(sub.size / THRESHOLD_SAMPLE_CAP))]
    return sub.copy()


def _median_and_mad(sorted_values: FloatArray) -> tuple[float, float]:
    """``np.median`` of sorted, NaN-free values and of their absolute deviations from it.

    Same arithmetic as ``np.median`` (middle value, or the mean of the two middle values), without
    its per-call overhead, which dominates on short trials.
    """
    mid = _middle(sorted_values)
    dev = np.abs(sorted_values - mid)
    k = dev.size // 2
    if dev.size % 2:
        return mid, float(np.partition(dev, k)[k])
    part = np.partition(dev, (k - 1, k))
    return mid, float((part[k - 1] + part[k]) / 2.0)


def _middle(sorted_values: FloatArray) -> float:
    k = sorted_values.size // 2
    if sorted_values.size % 2:
        return float(sorted_values[k])
    return float((sorted_values[k - 1] + sorted_values[k]) / 2.0)


def adaptive_thresholds(speed_deg_s: FloatArray, p: AdaptiveParams) -> tuple[float, float, float, float]:
    """Data-driven peak and onset thresholds (Nyström & Holmqvist 2010).

    Returns
    -------
    tuple of float
        ``(peak_threshold_deg_s, onset_threshold_deg_s, noise_mean_deg_s, noise_sd_deg_s)``.
    """
    # Noise statistics are as well estimated from an evenly strided subset (THRESHOLD_SAMPLE_CAP),
    # and sorting every speed would otherwise dominate the run time.
    fin = np.isfinite(speed_deg_s)
    v = _strided_subset(speed_deg_s, None if fin.all() else fin)
    if v.size < 10:
        return p.initial_peak_threshold_deg_s, p.min_onset_threshold_deg_s * 3, 0.0, 0.0
    # Sorted once: "the speeds below the threshold" is then a prefix, whatever the threshold.
    v.sort()
    pt = p.initial_peak_threshold_deg_s
    mean = sd = 0.0
    for _ in range(p.threshold_max_iterations):
        below = v[: int(np.searchsorted(v, pt, side="left"))]
        if below.size < 10:
            break
        # Median and MAD instead of mean and SD: a 10 s recording holds enough saccade and PSO
        # samples to inflate the SD and make the iteration run away on noisy data.
        mean, mad = _median_and_mad(below)
        sd = 1.4826 * mad
        new = mean + p.peak_threshold_sd * sd
        if abs(new - pt) < 1.0:
            pt = new
            break
        pt = new
    pt = float(np.clip(pt, p.min_peak_threshold_deg_s, p.max_peak_threshold_deg_s))
    onset = max(mean + p.onset_threshold_sd * sd, p.min_onset_threshold_deg_s)
    return pt, float(min(onset, pt)), mean, sd


def _adaptive(
    sig: _Signal, geometry: ScreenGeometry, p: AdaptiveParams
) -> tuple[npt.NDArray[np.int8], FloatArray, dict[str, Any]]:
    t, dt = sig.t, sig.dt
    n = t.size
    x0 = sig.x.copy()
    y0 = sig.y.copy()
    mx = p.offscreen_margin_fraction * geometry.screen_width_px
    my = p.offscreen_margin_fraction * geometry.screen_height_px
    off = x0 < -mx
    off |= x0 > geometry.screen_width_px + mx
    off |= y0 < -my
    off |= y0 > geometry.screen_height_px + my
    off_idx = np.flatnonzero(off)
    x0[off_idx] = np.nan
    y0[off_idx] = np.nan
    lost = fill_gaps_inplace(x0, y0, t, p.gap_fill_max_ms, interval_us=dt)
    xd, yd = _px_to_deg(geometry, x0, y0)
    # The events table wants the degrees of the recorded samples: these, except where an
    # off-screen sample was blanked (or blanked and refilled).
    xe, ye = xd, yd
    if off_idx.size:
        xe, ye = xd.copy(), yd.copy()
        xe[off_idx], ye[off_idx] = _px_to_deg(geometry, sig.x[off_idx], sig.y[off_idx])
    sig.deg = (xe, ye)
    if p.median_filter_window_samples > 1:
        # Single-sample spikes are tracker artefacts; a median keeps saccade edges intact.
        xd = moving_median(xd, p.median_filter_window_samples)
        yd = moving_median(yd, p.median_filter_window_samples)

    # Smallest odd window longer than the polynomial order, or the configured time span.
    min_win = p.savgol_polyorder + 1 + (p.savgol_polyorder % 2)
    win = max(2 * (_samples(p.smoothing_window_ms, dt) // 2) + 1, min_win)
    dt_s = dt * 1e-6
    vx = savitzky_golay(xd, win, p.savgol_polyorder, deriv=1, delta=dt_s)
    vy = savitzky_golay(yd, win, p.savgol_polyorder, deriv=1, delta=dt_s)
    v = _norm_inplace(vx, vy)

    pt, on_thr, noise_mean, noise_sd = adaptive_thresholds(v, p)

    # NaN speeds (around lost data) compare False everywhere; they count as "slow" boundaries:
    # ``fast`` is False for them and ``not_peak`` True.
    fast = v > pt
    # Sample-to-sample speed: the speed with which each sample was reached. Coders mark the first
    # sample that has moved and the last one still moving, which this resolves to one sample.
    step = np.empty(n)
    step[0] = 0.0
    if n > 1:
        ddx = np.diff(xd)
        ddy = np.diff(yd)
        _norm_inplace(ddx, ddy)
        np.multiply(sig.dt_t, 1e-6, out=ddy)
        np.divide(ddx, ddy, out=step[1:])
    step[~np.isfinite(step)] = 0.0
    # Below the peak threshold or NaN, and moving at all.
    quiet_mask = v >= pt
    np.logical_not(quiet_mask, out=quiet_mask)
    quiet_mask &= step > 0
    quiet = _strided_subset(step, quiet_mask)
    if quiet.size >= 10:
        quiet.sort()
        s_med, s_mad = _median_and_mad(quiet)
        s_sd = 1.4826 * s_mad
    else:
        s_med, s_sd = 0.0, 0.0
    s_on = max(s_med + p.onset_threshold_sd * s_sd, p.min_onset_threshold_deg_s)
    s_pso = max(s_med + p.pso_threshold_sd * s_sd, p.min_onset_threshold_deg_s)
    lab = np.full(n, FIXATION, dtype=np.int8)

    ps, pe = nan_runs(fast)
    if ps.size:
        # Runs of samples reached fast (not slow); onsets and offsets are found from their ends.
        rs, re = nan_runs(step >= s_on)
        # Onset: the sample after the last one reached slowly before the peak run.
        q = np.maximum(ps - 1, 0)
        j = np.searchsorted(rs, q, side="right") - 1
        in_fast = (j >= 0) & (q < re[np.maximum(j, 0)]) if rs.size else np.zeros(q.size, dtype=bool)
        last_slow = np.where(in_fast, rs[np.maximum(j, 0)] - 1 if rs.size else q, q)
        onset = np.where(ps > 0, last_slow + 1, 0)
        onset = np.minimum(onset, ps)
        # Offset (exclusive): the first sample reached slowly after the peak run.
        r = np.minimum(pe, n - 1)
        j = np.searchsorted(rs, r, side="right") - 1
        in_fast = (j >= 0) & (r < re[np.maximum(j, 0)]) if rs.size else np.zeros(r.size, dtype=bool)
        next_slow = np.where(in_fast, re[np.maximum(j, 0)] if rs.size else r, r)
        offset = np.where(pe < n, next_slow, n)
        offset = np.maximum(offset, pe)
        sac_s, sac_e = _merge_intervals(n, onset, offset)
        dur = _run_durations_ms(t, sac_s, sac_e, dt)
        okdur = dur >= p.min_saccade_duration_ms
        sac_s, sac_e = sac_s[okdur], sac_e[okdur]
        if p.min_saccade_amplitude_deg > 0 and sac_s.size:
            # A saccade moves the eye: compare the mean position just before and just after.
            k = _samples(p.amplitude_window_ms, dt)
            (bx, by, nb), (ax, ay, na) = (
                _window_means(xd, yd, lo_, hi_, k)
                for lo_, hi_ in ((np.maximum(sac_s - k, 0), sac_s), (sac_e, np.minimum(sac_e + k, n)))
            )
            amp = np.hypot(ax - bx, ay - by)
            big = (amp >= p.min_saccade_amplitude_deg) | (nb == 0) | (na == 0)
            sac_s, sac_e = sac_s[big], sac_e[big]
        pw = _samples(p.pso_window_ms, dt)
        # Peaks that start within the PSO window after a saccade are a strong PSO (Nyström &
        # Holmqvist's "strong glissade"), not a new saccade: chain them onto the saccade before.
        chained = np.zeros(sac_s.size, dtype=bool)
        if sac_s.size > 1:
            chained[1:] = sac_s[1:] - sac_e[:-1] < _samples(p.strong_pso_window_ms, dt)
        head = ~chained
        group = np.cumsum(head) - 1
        chain_end = np.zeros(int(head.sum()), dtype=np.intp)
        np.maximum.at(chain_end, group, sac_e)
        strong_s, strong_e = sac_e[head], chain_end
        sac_s, sac_e = sac_s[head], sac_e[head]
        _paint(lab, sac_s, sac_e, SACCADE)
        _paint(lab, strong_s, strong_e, PSO)

        # PSO: the signal keeps moving (steps above the PSO threshold) within the PSO window after
        # a saccade; it lasts until the first stretch of slow steps longer than the closing gap.
        hs, he = nan_runs(step > s_pso)
        gap = _samples(p.pso_gap_close_ms, dt) if p.pso_gap_close_ms > 0 else 0
        if gap and hs.size > 1:
            # Slow stretches between two moving runs that are this short do not end the motion.
            hs, he = _merge_intervals(
                n, hs, np.append(np.where(hs[1:] - he[:-1] <= gap, hs[1:], he[:-1]), he[-1])
            )
        pmax = _samples(p.pso_max_duration_ms, dt)
        # Weak PSOs are looked for after the saccade and any strong PSO chained to it.
        after = strong_e
        inside = after < n
        first_hi = np.full(after.size, n)
        first_hi[inside] = _next_in_runs(hs, he, after[inside], n)
        has_pso = inside & (first_hi < after + pw) & (first_hi < n)
        pso_s = after[has_pso]
        # The PSO keeps the sample at which the signal comes to rest (coders' convention: the
        # fixation starts once the eye has arrived, not on the arriving step).
        f = first_hi[has_pso]
        next_lo = he[np.searchsorted(he, f, side="right")] if f.size else f
        pso_end = np.minimum(next_lo + 1, n)
        pso_end = np.minimum(pso_end, pso_s + pmax)
        cand = concat_ranges(*_merge_intervals(n, pso_s, pso_end))
        lab[cand[lab[cand] == FIXATION]] = PSO
    info_speed = {"step_noise_median_deg_s": s_med, "step_noise_sd_deg_s": s_sd, "step_onset_deg_s": s_on}

    # Blinks: long lost runs, widened by a margin and over the unstable signal around them.
    ls, le = nan_runs(lost)
    lab[lost] = LOST
    if ls.size:
        ldur = _run_durations_ms(t, ls, le, dt)
        is_blink = (ldur >= p.blink_min_lost_ms) & (ldur <= p.blink_max_lost_ms)
        bs, be = ls[is_blink], le[is_blink]
        m = _samples(p.blink_margin_ms, dt)
        _paint(lab, bs - m, be + m, BLINK)
        # Saccade/PSO runs touching a blink are eyelid artefacts: absorb them.
        lab = _absorb_into_blinks(lab)

    lab = _discard_short(lab, t, dt, FIXATION, p.min_fixation_duration_ms)
    lab = _absorb_into_blinks(lab)
    info = {
        "peak_threshold_deg_s": pt,
        "onset_threshold_deg_s": on_thr,
        "noise_mean_deg_s": noise_mean,
        "noise_sd_deg_s": noise_sd,
        "savgol_window_samples": int(win),
        **info_speed,
    }
    return lab, v, info


def _window_means(
    xd: FloatArray, yd: FloatArray, lo: IntArray, hi: IntArray, k: int
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Mean of the finite positions in the windows ``[lo, hi)`` (at most ``k`` samples each)."""
    idx = lo[:, None] + np.arange(k)
    inside = idx < hi[:, None]
    idx = np.minimum(idx, xd.size - 1)
    wx, wy = xd[idx], yd[idx]
    ok = inside & np.isfinite(wx) & np.isfinite(wy)
    cnt = ok.sum(axis=1)
    denom = np.maximum(cnt, 1)
    return np.where(ok, wx, 0.0).sum(axis=1) / denom, np.where(ok, wy, 0.0).sum(axis=1) / denom, cnt


def _absorb_into_blinks(lab: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
    """Relabel saccade, PSO and unclassified runs adjacent to a blink run as blink."""
    starts, ends, codes = runs(lab)
    if not (codes == BLINK).any():
        return lab
    absorbable = (codes == SACCADE) | (codes == PSO) | (codes == UNCLASSIFIED)
    # A chain of absorbable runs next to a blink is absorbed entirely: label groups of
    # consecutive absorbable runs and check whether either neighbour of the group is a blink.
    grp_start = absorbable & ~np.concatenate(([False], absorbable[:-1]))
    gid = np.cumsum(grp_start) * absorbable
    idx = np.arange(codes.size)
    first = np.full(gid.max() + 1, codes.size, dtype=np.intp)
    last = np.full(gid.max() + 1, -1, dtype=np.intp)
    np.minimum.at(first, gid[absorbable], idx[absorbable])
    np.maximum.at(last, gid[absorbable], idx[absorbable])
    g = np.arange(1, gid.max() + 1)
    f, la = first[g], last[g]
    left_blink = (f > 0) & (codes[np.maximum(f - 1, 0)] == BLINK)
    right_blink = (la < codes.size - 1) & (codes[np.minimum(la + 1, codes.size - 1)] == BLINK)
    hit = g[left_blink | right_blink]
    run_hit = np.isin(gid, hit) & absorbable
    _paint(lab, starts[run_hit], ends[run_hit], BLINK)
    return lab


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def default_params(method: str) -> Params:
    """Default parameter object of ``method``."""
    if method not in _PARAMS_CLASS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(_PARAMS_CLASS)}")
    return _PARAMS_CLASS[method]()


def _resolve_params(method: str, params: Params | dict[str, Any] | None) -> Params:
    base = default_params(method)
    if params is None:
        return base
    if isinstance(params, dict):
        return replace(base, **params)
    if not isinstance(params, _PARAMS_CLASS[method]):
        raise TypeError(f"method {method!r} takes {_PARAMS_CLASS[method].__name__}, got {type(params)}")
    return params


@functools.lru_cache(maxsize=32)
def _params_items(p: Params) -> tuple[tuple[str, Any], ...]:
    return tuple(asdict(p).items())


def _params_dict(p: Params) -> dict[str, Any]:
    """``asdict(p)``, cached: it costs as much as detecting a short trial."""
    return dict(_params_items(p))


def _detect(
    t_us: npt.ArrayLike,
    x_px: npt.ArrayLike,
    y_px: npt.ArrayLike,
    geometry: ScreenGeometry,
    method: str,
    p: Params,
    engine: str = "numpy",
) -> tuple[npt.NDArray[np.int8], dict[str, Any] | None, dict[str, Any]]:
    """Labels, event columns (``None`` when no event) and parameters used, without pandas."""
    t = np.asarray(t_us, dtype=np.float64)
    x = np.asarray(x_px, dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    if not (t.shape == x.shape == y.shape) or t.ndim != 1:
        raise ValueError(f"t_us, x_px, y_px must be 1-D of equal length, got {t.shape}, {x.shape}, {y.shape}")
    dt_t = np.diff(t)
    if dt_t.size and not (dt_t > 0).all():
        raise ValueError("t_us must be strictly increasing")
    used: dict[str, Any] = {"method": method, **_params_dict(p)}
    rate = sampling_rate_from_intervals_hz(dt_t) if t.size > 1 else float("nan")
    used["sampling_rate_hz"] = rate
    if t.size == 0:
        return np.zeros(0, dtype=np.int8), None, used
    sig = _Signal(t, x, y, dt_t, rate, 1e6 / rate if np.isfinite(rate) else 1000.0)
    fast = _fast_path(method, p, engine)
    if fast is not None and t.size <= _FAST_MAX_RECORDING_SAMPLES:
        bounds = np.array([0, t.size], dtype=np.intp)
        rates, dts = np.array([rate]), np.array([sig.dt])
        res = fast.detect_frame(t, x, y, bounds, rates, dts, geometry, method, p, with_info=True)
        used.update(res.info[0])
        cols, ev_trial = fast.event_columns(res, t, x, y, bounds, dts)
        return res.labels, (cols if ev_trial.size else None), used
    if method == "ivt":
        lab, v, info = _ivt(sig, geometry, p)  # type: ignore[arg-type]
    elif method == "idt":
        lab, v, info = _idt(sig, geometry, p)  # type: ignore[arg-type]
    else:
        lab, v, info = _adaptive(sig, geometry, p)  # type: ignore[arg-type]
    used.update(info)
    cols = _event_columns(lab, t, x, y, sig.deg, geometry, v, sig.dt)
    return lab.astype(np.int8, copy=False), cols, used


Engine = Literal["auto", "numpy"]
#: On one recording longer than this the vectorized numpy reference is as fast as the compiled
#: path (its per-call overhead no longer matters), so ``detect_events`` keeps to it.
_FAST_MAX_RECORDING_SAMPLES = 1 << 18


@functools.cache
def _fast_module() -> Any:
    """The compiled fast path (:mod:`pov_pipeline.gaze._fast`), or ``None`` without numba."""
    try:
        from pov_pipeline.gaze import _fast
    except ImportError:  # numba missing: the numpy reference serves every call
        return None
    return _fast


def _fast_path(method: str, p: Params, engine: str) -> Any:
    """The fast-path module when ``engine`` allows it and it implements ``method`` with ``p``."""
    if engine not in ("auto", "numpy"):
        raise ValueError(f"engine must be 'auto' or 'numpy', got {engine!r}")
    if engine == "numpy":
        return None
    fast = _fast_module()
    return fast if fast is not None and fast.supported(method, p) else None


def detect_events(
    t_us: npt.ArrayLike,
    x_px: npt.ArrayLike,
    y_px: npt.ArrayLike,
    *,
    geometry: ScreenGeometry,
    method: str = DEFAULT_METHOD,
    params: Params | dict[str, Any] | None = None,
    engine: Engine = "auto",
) -> DetectionResult:
    """Label every sample and list the events of one continuous recording (or trial).

    Parameters
    ----------
    t_us : array_like
        Time stamps in microseconds, increasing.
    x_px, y_px : array_like
        Gaze position in screen pixels; NaN where the tracker lost the eye.
    geometry : ScreenGeometry
        Screen set-up, for the conversion to degrees.
    method : {"adaptive", "ivt", "idt"}
        Detector (default :data:`DEFAULT_METHOD`).
    params : IVTParams or IDTParams or AdaptiveParams or dict, optional
        Parameters of the method; a dict overrides fields of the defaults.
    engine : {"auto", "numpy"}
        ``auto`` runs the compiled fast path where it implements the method and parameters
        (adaptive and I-VT; bit-identical results), ``numpy`` the vectorized reference.

    Returns
    -------
    DetectionResult
        Labels (``int8`` into ``SAMPLE_LABELS``), events and the parameters used.
    """
    p = _resolve_params(method, params)
    lab, cols, used = _detect(t_us, x_px, y_px, geometry, method, p, engine)
    events = _empty_events() if cols is None else pd.DataFrame(cols)
    return DetectionResult(lab, events, used)


_TRIAL_KEYS = ("participant", "trial", "stimulus_id", "eye")


def detect_trials(
    samples: pd.DataFrame,
    geometry: ScreenGeometry,
    method: str = DEFAULT_METHOD,
    params: Params | dict[str, Any] | None = None,
    eye_mode: str = "average",
    engine: Engine = "auto",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run :func:`detect_events` on every trial of a ``raw_gaze`` frame.

    Parameters
    ----------
    samples : pandas.DataFrame
        Columns of ``schemas.RAW_GAZE`` (participant, trial, stimulus_id, t_us, x_px, y_px,
        pupil, valid, eye). Invalid samples are treated as lost.
    geometry : ScreenGeometry
        Screen set-up.
    method : str
        Detector name.
    params : parameters object or dict, optional
        Parameters of the method.
    eye_mode : {"average", "left", "right", "best"}
        How binocular trials are reduced to one signal; ``average`` yields eye ``binocular``.
    engine : {"auto", "numpy"}
        ``auto`` detects all trials in one compiled call where the fast path implements the
        method and parameters (adaptive and I-VT; bit-identical results), ``numpy`` runs the
        vectorized reference trial by trial.

    Returns
    -------
    tuple of pandas.DataFrame
        ``(labels, events)``: labels has participant, trial, stimulus_id, t_us, eye, label (one of
        ``SAMPLE_LABELS``); events has participant, trial, stimulus_id, eye, event_index, the
        :data:`EVENT_COLUMNS` and ``onset_in_trial_ms``.
    """
    p = _resolve_params(method, params)
    if len(samples) == 0:
        return _empty_trial_labels(), _empty_trial_events()
    fast = _fast_path(method, p, engine)
    if fast is not None:
        return fast.detect_trials_fast(samples, geometry, method, p, eye_mode)
    # Thresholds adapt to each trial, so trials are detected one by one; everything around the
    # detection (sorting, splitting, tabulating) is done once for the whole frame instead.
    part_codes, part_values = pd.factorize(samples["participant"], sort=True)
    eye_codes, _ = pd.factorize(samples["eye"], sort=True)
    trial_vals = samples["trial"].to_numpy(np.int64)
    t_raw = samples["t_us"].to_numpy(np.int64)
    order = _sort_order(part_codes, trial_vals, eye_codes, t_raw)
    take = (lambda a: a) if order is None else (lambda a: a[order])
    part_codes, trial_vals, t_all = take(part_codes), take(trial_vals), take(t_raw)
    x_all = take(samples["x_px"].to_numpy(np.float64)).astype(np.float64, copy=True)
    y_all = take(samples["y_px"].to_numpy(np.float64)).astype(np.float64, copy=True)
    if "valid" in samples:
        bad = ~take(samples["valid"].to_numpy(bool))
        x_all[bad] = np.nan
        y_all[bad] = np.nan
    eye_all = take(samples["eye"].to_numpy(object))
    stim_all = take(samples["stimulus_id"].to_numpy(object))
    change = np.flatnonzero((np.diff(part_codes) != 0) | (np.diff(trial_vals) != 0)) + 1
    bounds = np.concatenate(([0], change, [len(samples)]))
    eye_changes = np.flatnonzero(take(eye_codes)[1:] != take(eye_codes)[:-1]) + 1
    multi_eye = np.zeros(bounds.size - 1, dtype=bool)
    multi_eye[np.searchsorted(bounds, eye_changes, side="right") - 1] = True

    n_trials = bounds.size - 1
    lab_parts: list[npt.NDArray[np.int8]] = []
    t_parts: list[npt.NDArray[np.int64]] = []
    ev_parts: list[dict[str, npt.NDArray[Any]]] = []
    trial_len = np.empty(n_trials, dtype=np.intp)
    ev_len = np.zeros(n_trials, dtype=np.intp)
    eye_names: list[str] = []
    t0_ms = np.empty(n_trials)
    for i in range(n_trials):
        a, b = int(bounds[i]), int(bounds[i + 1])
        if multi_eye[i]:
            t_tr, x_tr, y_tr, eye_name = _trial_signal(
                t_all[a:b], x_all[a:b], y_all[a:b], eye_all[a:b], eye_mode
            )
        else:
            t_tr, x_tr, y_tr, eye_name = t_all[a:b], x_all[a:b], y_all[a:b], str(eye_all[a])
        lab, cols, _ = _detect(t_tr, x_tr, y_tr, geometry, method, p)
        lab_parts.append(lab)
        t_parts.append(t_tr)
        trial_len[i] = lab.size
        eye_names.append(eye_name)
        t0_ms[i] = t_tr[0] / 1000.0
        if cols is not None:
            ev_parts.append(cols)
            ev_len[i] = cols["onset_ms"].size

    first = bounds[:-1]
    trial_part = part_values.to_numpy(object)[part_codes[first]]
    trial_no = trial_vals[first].astype(np.int32)
    trial_stim = stim_all[first]
    trial_eye = np.asarray(eye_names, dtype=object)
    labels = pd.DataFrame(
        {
            "participant": repeated_categorical(*_trial_codes(trial_part), trial_len),
            "trial": np.repeat(trial_no, trial_len),
            "stimulus_id": repeated_categorical(*_trial_codes(trial_stim), trial_len),
            "t_us": np.concatenate(t_parts).astype(np.int64, copy=False),
            "eye": repeated_categorical(*_trial_codes(trial_eye), trial_len),
            "label": label_categorical(np.concatenate(lab_parts)),
        }
    )
    if not ev_parts:
        return labels, _empty_trial_events()
    ev_cols = {c: np.concatenate([part[c] for part in ev_parts]) for c in EVENT_COLUMNS}
    offsets = np.cumsum(ev_len) - ev_len
    events = pd.DataFrame(
        {
            "participant": np.repeat(trial_part, ev_len),
            "trial": np.repeat(trial_no, ev_len),
            "stimulus_id": np.repeat(trial_stim, ev_len),
            "eye": np.repeat(trial_eye, ev_len),
            "event_index": (np.arange(int(ev_len.sum())) - np.repeat(offsets, ev_len)).astype(np.int32),
            **ev_cols,
            "onset_in_trial_ms": ev_cols["onset_ms"] - np.repeat(t0_ms, ev_len),
        }
    )
    return labels, events


def _sort_order(*keys: npt.NDArray[Any]) -> IntArray | None:
    """Stable lexicographic order of the key columns (first key major); ``None`` if already sorted."""
    n = keys[0].size
    if n < 2:
        return None
    # Sorted iff at each position the first differing key increases.
    decided = np.zeros(n - 1, dtype=bool)
    for k in keys:
        d = np.diff(k)
        if np.any((d < 0) & ~decided):
            return np.lexsort(keys[::-1])
        decided |= d > 0
    return None


def _trial_signal(
    t: npt.NDArray[np.int64],
    x: FloatArray,
    y: FloatArray,
    eye: npt.NDArray[Any],
    eye_mode: str,
) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray, str]:
    """One gaze signal for a trial: the single eye, or the binocular pair reduced by ``eye_mode``."""
    eyes = pd.unique(eye)
    if len(eyes) == 1:
        return t, x, y, str(eyes[0])
    is_left = eye == "left"
    is_right = eye == "right"
    tt = np.union1d(t[is_left], t[is_right])
    lx = np.full(tt.size, np.nan)
    ly = np.full(tt.size, np.nan)
    rx = np.full(tt.size, np.nan)
    ry = np.full(tt.size, np.nan)
    il = np.searchsorted(tt, t[is_left])
    ir = np.searchsorted(tt, t[is_right])
    lx[il], ly[il] = x[is_left], y[is_left]
    rx[ir], ry[ir] = x[is_right], y[is_right]
    if eye_mode == "average":
        xs, ys = select_eye((lx, ly), (rx, ry), "average")
        return tt, xs, ys, "binocular"
    if eye_mode == "best":
        nl = int(np.isfinite(lx).sum())
        nr = int(np.isfinite(rx).sum())
        name = "left" if nl >= nr else "right"
        xs, ys = select_eye((lx, ly), (rx, ry), name)  # type: ignore[arg-type]
        return tt, xs, ys, name
    xs, ys = select_eye((lx, ly), (rx, ry), eye_mode)  # type: ignore[arg-type]
    return tt, xs, ys, eye_mode


def _empty_trial_labels() -> pd.DataFrame:
    none = np.zeros(0, dtype=np.intp)
    return pd.DataFrame(
        {
            "participant": repeated_categorical(none, [], none),
            "trial": pd.Series(dtype=np.int32),
            "stimulus_id": repeated_categorical(none, [], none),
            "t_us": pd.Series(dtype=np.int64),
            "eye": repeated_categorical(none, [], none),
            "label": label_categorical(np.zeros(0, dtype=np.int8)),
        }
    )


# --------------------------------------------------------------------------------------------
# Per-sample label tables: categorical columns
# --------------------------------------------------------------------------------------------

#: Columns of the per-sample label table held as pandas categoricals: each repeats a handful of
#: values over every sample, so a code of a byte or two per row replaces a string per row (a
#: tenth of the memory, and the lake stores them dictionary-encoded without re-encoding).
CATEGORICAL_LABEL_COLUMNS: tuple[str, ...] = ("participant", "stimulus_id", "eye", "label")


@functools.lru_cache(maxsize=256)
def _categorical_dtype(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    """The categorical dtype of ``categories`` (kept: pandas validates the categories each time,
    0.1 ms or more, and the same stimuli, eyes and labels recur for every participant)."""
    return pd.CategoricalDtype(pd.Index(list(categories), dtype=_string_dtype()))


@functools.cache
def _string_dtype() -> Any:
    """The dtype pandas infers for an array of Python strings (``str`` in pandas 3)."""
    return pd.Series(np.array(["a"], dtype=object)).dtype


def _code_dtype(n_categories: int) -> type[np.signedinteger[Any]]:
    """The narrowest code type pandas keeps for ``n_categories`` (it would convert any other)."""
    if n_categories < 2**7:
        return np.int8
    if n_categories < 2**15:
        return np.int16
    return np.int32


def label_categorical(codes: npt.NDArray[np.int8]) -> pd.Categorical:
    """Per-sample label codes (indices into :data:`SAMPLE_LABELS`) as a categorical, without a copy.

    Its categories are always all of :data:`SAMPLE_LABELS`, in that order, so the label columns
    of different participants concatenate without recoding.
    """
    return pd.Categorical.from_codes(
        codes.astype(np.int8, copy=False), dtype=_categorical_dtype(SAMPLE_LABELS), validate=False
    )


def repeated_categorical(
    run_codes: npt.NDArray[np.integer], categories: list[str], run_counts: npt.NDArray[np.integer]
) -> pd.Categorical:
    """``categories[run_codes]`` repeated ``run_counts`` times each, as a categorical.

    ``categories`` must be sorted and each must occur: the categories of a column are then a
    function of its values only, whichever path made it.
    """
    codes = np.repeat(np.asarray(run_codes).astype(_code_dtype(len(categories))), run_counts)
    return pd.Categorical.from_codes(codes, dtype=_categorical_dtype(tuple(categories)), validate=False)


def _trial_codes(values: npt.NDArray[Any]) -> tuple[IntArray, list[str]]:
    """Codes of per-trial values into their sorted distinct values, and those values."""
    uniques, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.astype(np.intp), [str(u) for u in uniques]


def concat_labels(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-sample label tables, keeping their categorical columns categorical.

    ``pd.concat`` turns categoricals with different categories (two participants' columns)
    into Python strings, one per row; such columns get the union of the categories, sorted,
    instead, and their codes are recoded without making any string.
    """
    if not frames:
        return _empty_trial_labels()
    columns: dict[str, Any] = {}
    for name in frames[0].columns:
        parts = [f[name] for f in frames]
        dtypes = [part.dtype for part in parts]
        if isinstance(dtypes[0], pd.CategoricalDtype) and any(d != dtypes[0] for d in dtypes):
            columns[name] = pd.api.types.union_categoricals(parts, sort_categories=True)
        else:
            columns[name] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(columns)


def _empty_trial_events() -> pd.DataFrame:
    ev = _empty_events()
    ev.insert(0, "event_index", pd.Series(dtype=np.int32))
    ev.insert(0, "eye", pd.Series(dtype=object))
    ev.insert(0, "stimulus_id", pd.Series(dtype=object))
    ev.insert(0, "trial", pd.Series(dtype=np.int32))
    ev.insert(0, "participant", pd.Series(dtype=object))
    ev["onset_in_trial_ms"] = pd.Series(dtype=np.float64)
    return ev
