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

import itertools
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from pov_pipeline.gaze.geometry import ScreenGeometry
from pov_pipeline.gaze.preprocess import (
    estimate_sampling_rate_hz,
    fill_gaps,
    moving_median,
    nan_runs,
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
# Run-length helpers
# --------------------------------------------------------------------------------------------


def runs(labels: npt.ArrayLike) -> tuple[IntArray, IntArray, npt.NDArray[Any]]:
    """Run-length encode: start index, end index (exclusive) and value of each run."""
    a = np.asarray(labels)
    if a.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, a[:0]
    change = np.flatnonzero(a[1:] != a[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [a.size]))
    return starts, ends, a[starts]


def _interval_mask(n: int, starts: npt.ArrayLike, ends: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Boolean mask covering the half-open intervals ``[start, end)`` (they may overlap)."""
    s = np.clip(np.asarray(starts, dtype=np.intp), 0, n)
    e = np.clip(np.asarray(ends, dtype=np.intp), 0, n)
    keep = e > s
    marks = np.zeros(n + 1, dtype=np.int32)
    np.add.at(marks, s[keep], 1)
    np.add.at(marks, e[keep], -1)
    return np.cumsum(marks[:-1]) > 0


def _run_durations_ms(t_us: FloatArray, starts: IntArray, ends: IntArray, dt_us: float) -> FloatArray:
    """Duration of runs ``[start, end)``: time from the first sample to the sample after the last."""
    t_after = np.append(t_us, t_us[-1] + dt_us)
    return (t_after[ends] - t_us[starts]) / 1000.0


def _dt_us(t_us: FloatArray) -> float:
    rate = estimate_sampling_rate_hz(t_us)
    return 1e6 / rate if np.isfinite(rate) else 1000.0


def _samples(duration_ms: float, dt_us: float) -> int:
    """Number of samples spanning ``duration_ms`` (at least one)."""
    return max(1, round(duration_ms * 1000.0 / dt_us))


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
    n = lab.size
    if n == 0:
        return _empty_events()
    starts, ends, codes = runs(lab)
    keep = codes != UNCLASSIFIED
    starts, ends, codes = starts[keep], ends[keep], codes[keep]
    if starts.size == 0:
        return _empty_events()
    dt = _dt_us(t)
    xd, yd = geometry.px_to_deg(x, y)
    ok = np.isfinite(xd) & np.isfinite(yd)
    # reduceat sums over [start_i, start_{i+1}); the unclassified gaps removed above must not leak
    # into a neighbour, so sums are computed over all runs and then selected.
    all_starts, _, all_codes = runs(lab)
    sel = np.flatnonzero(all_codes != UNCLASSIFIED)
    cnt = np.add.reduceat(ok.astype(np.int64), all_starts)[sel]

    def mean_of(a: FloatArray) -> FloatArray:
        total = np.add.reduceat(np.where(ok, a, 0.0), all_starts)[sel]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt > 0, total / np.maximum(cnt, 1), np.nan)

    def span_of(a: FloatArray) -> FloatArray:
        hi = np.fmax.reduceat(np.where(ok, a, np.nan), all_starts)[sel]
        lo = np.fmin.reduceat(np.where(ok, a, np.nan), all_starts)[sel]
        return hi - lo

    last = ends - 1
    sx, sy, ex, ey = x[starts], y[starts], x[last], y[last]
    exd, eyd = xd[last], yd[last]
    # Amplitude is the displacement the event made: from the sample before it (where the eye
    # was when it set off) to its last sample.
    before = np.maximum(starts - 1, 0)
    use_before = (starts > 0) & ok[before]
    sxd = np.where(use_before, xd[before], xd[starts])
    syd = np.where(use_before, yd[before], yd[starts])
    if speed_deg_s is not None:
        v = np.asarray(speed_deg_s, dtype=np.float64)
        peak = np.fmax.reduceat(v, all_starts)[sel]
    else:
        peak = np.full(starts.size, np.nan)
    onset = t[starts] / 1000.0
    offset = np.append(t, t[-1] + dt)[ends] / 1000.0
    frame = pd.DataFrame(
        {
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
    )
    return frame


def _empty_events() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in EVENT_COLUMNS})
    frame["event"] = frame["event"].astype(object)
    for c in ("start_index", "end_index", "n_samples"):
        frame[c] = frame[c].astype(np.int64)
    return frame


# --------------------------------------------------------------------------------------------
# I-VT (Tobii, Olsen 2012)
# --------------------------------------------------------------------------------------------


def _ivt(
    t: FloatArray, x_px: FloatArray, y_px: FloatArray, geometry: ScreenGeometry, p: IVTParams
) -> tuple[npt.NDArray[np.int8], FloatArray, dict[str, Any]]:
    dt = _dt_us(t)
    xf, yf = fill_gaps(x_px, y_px, t, p.gap_fill_max_ms)
    if p.noise_window_samples > 1:
        xf = moving_median(xf, p.noise_window_samples)
        yf = moving_median(yf, p.noise_window_samples)
    xd, yd = geometry.px_to_deg(xf, yf)
    v = velocity_deg_s(t, xd, yd, p.velocity_window_ms)
    lost = np.isnan(xd) | np.isnan(yd)
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
    fs, fe = starts[codes == FIXATION], ends[codes == FIXATION]
    if fs.size < 2:
        return lab
    cx = np.add.reduceat(xd, starts)[codes == FIXATION] / (fe - fs)
    cy = np.add.reduceat(yd, starts)[codes == FIXATION] / (fe - fs)
    gap_ms = (t[fs[1:]] - np.append(t, t[-1] + dt)[fe[:-1]]) / 1000.0
    angle = np.hypot(np.diff(cx), np.diff(cy))
    ok = (gap_ms <= max_gap_ms) & (angle <= max_angle_deg)
    out = lab.copy()
    out[_interval_mask(lab.size, fe[:-1][ok], fs[1:][ok])] = FIXATION
    return out


def _discard_short(
    lab: npt.NDArray[np.int8], t: FloatArray, dt: float, code: np.int8, min_ms: float
) -> npt.NDArray[np.int8]:
    starts, ends, codes = runs(lab)
    dur = _run_durations_ms(t, starts, ends, dt)
    short = (codes == code) & (dur < min_ms - 1e-9)
    out = lab.copy()
    out[_interval_mask(lab.size, starts[short], ends[short])] = UNCLASSIFIED
    return out


# --------------------------------------------------------------------------------------------
# I-DT (Salvucci & Goldberg 2000)
# --------------------------------------------------------------------------------------------


def _idt(
    t: FloatArray, x_px: FloatArray, y_px: FloatArray, geometry: ScreenGeometry, p: IDTParams
) -> tuple[npt.NDArray[np.int8], FloatArray, dict[str, Any]]:
    dt = _dt_us(t)
    xf, yf = fill_gaps(x_px, y_px, t, p.gap_fill_max_ms)
    xd, yd = geometry.px_to_deg(xf, yf)
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
        lab[_interval_mask(n, fix_starts, fix_ends)] = FIXATION
    lab[lost] = LOST
    xs, ys = geometry.px_to_deg(xf, yf)
    v = velocity_deg_s(t, xs, ys, 20.0)
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


_THRESHOLD_SAMPLE_CAP = 1 << 17


def adaptive_thresholds(speed_deg_s: FloatArray, p: AdaptiveParams) -> tuple[float, float, float, float]:
    """Data-driven peak and onset thresholds (Nyström & Holmqvist 2010).

    Returns
    -------
    tuple of float
        ``(peak_threshold_deg_s, onset_threshold_deg_s, noise_mean_deg_s, noise_sd_deg_s)``.
    """
    v = speed_deg_s[np.isfinite(speed_deg_s)]
    if v.size > _THRESHOLD_SAMPLE_CAP:
        # Noise statistics of millions of samples are as well estimated from an evenly strided
        # subset, and the repeated medians would otherwise dominate the run time.
        v = v[:: int(np.ceil(v.size / _THRESHOLD_SAMPLE_CAP))]
    if v.size < 10:
        return p.initial_peak_threshold_deg_s, p.min_onset_threshold_deg_s * 3, 0.0, 0.0
    pt = p.initial_peak_threshold_deg_s
    mean = sd = 0.0
    for _ in range(p.threshold_max_iterations):
        below = v[v < pt]
        if below.size < 10:
            break
        # Median and MAD instead of mean and SD: a 10 s recording holds enough saccade and PSO
        # samples to inflate the SD and make the iteration run away on noisy data.
        mean = float(np.median(below))
        sd = 1.4826 * float(np.median(np.abs(below - mean)))
        new = mean + p.peak_threshold_sd * sd
        if abs(new - pt) < 1.0:
            pt = new
            break
        pt = new
    pt = float(np.clip(pt, p.min_peak_threshold_deg_s, p.max_peak_threshold_deg_s))
    onset = max(mean + p.onset_threshold_sd * sd, p.min_onset_threshold_deg_s)
    return pt, float(min(onset, pt)), mean, sd


def _adaptive(
    t: FloatArray, x_px: FloatArray, y_px: FloatArray, geometry: ScreenGeometry, p: AdaptiveParams
) -> tuple[npt.NDArray[np.int8], FloatArray, dict[str, Any]]:
    n = t.size
    dt = _dt_us(t)
    x0 = np.asarray(x_px, dtype=np.float64).copy()
    y0 = np.asarray(y_px, dtype=np.float64).copy()
    mx = p.offscreen_margin_fraction * geometry.screen_width_px
    my = p.offscreen_margin_fraction * geometry.screen_height_px
    off = (
        (x0 < -mx) | (x0 > geometry.screen_width_px + mx) | (y0 < -my) | (y0 > geometry.screen_height_px + my)
    )
    x0[off] = np.nan
    y0[off] = np.nan
    xf, yf = fill_gaps(x0, y0, t, p.gap_fill_max_ms)
    lost = np.isnan(xf) | np.isnan(yf)
    xd, yd = geometry.px_to_deg(xf, yf)
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
    v = np.hypot(vx, vy)

    pt, on_thr, noise_mean, noise_sd = adaptive_thresholds(v, p)

    # NaN speeds (around lost data) compare False everywhere; treat them as "slow" boundaries.
    vv = np.where(np.isfinite(v), v, 0.0)
    # Sample-to-sample speed: the speed with which each sample was reached. Coders mark the first
    # sample that has moved and the last one still moving, which this resolves to one sample.
    step = np.zeros(n)
    step[1:] = np.hypot(np.diff(xd), np.diff(yd)) / (np.diff(t) * 1e-6)
    step = np.where(np.isfinite(step), step, 0.0)
    quiet = step[(vv < pt) & (step > 0)]
    if quiet.size > _THRESHOLD_SAMPLE_CAP:
        quiet = quiet[:: int(np.ceil(quiet.size / _THRESHOLD_SAMPLE_CAP))]
    if quiet.size >= 10:
        s_med = float(np.median(quiet))
        s_sd = 1.4826 * float(np.median(np.abs(quiet - s_med)))
    else:
        s_med, s_sd = 0.0, 0.0
    s_on = max(s_med + p.onset_threshold_sd * s_sd, p.min_onset_threshold_deg_s)
    s_pso = max(s_med + p.pso_threshold_sd * s_sd, p.min_onset_threshold_deg_s)
    lab = np.full(n, FIXATION, dtype=np.int8)
    idx = np.arange(n)

    ps, pe, pc = runs(vv > pt)
    ps, pe = ps[pc], pe[pc]
    sac_s = np.zeros(0, dtype=np.intp)
    sac_e = np.zeros(0, dtype=np.intp)
    if ps.size:
        slow = step < s_on
        # Onset: the sample after the last one reached slowly before the peak run.
        last_slow = np.maximum.accumulate(np.where(slow, idx, -1))
        onset = np.where(ps > 0, last_slow[np.maximum(ps - 1, 0)] + 1, 0)
        onset = np.minimum(onset, ps)
        # Offset (exclusive): the first sample reached slowly after the peak run.
        next_slow = np.minimum.accumulate(np.where(slow, idx, n)[::-1])[::-1]
        offset = np.where(pe < n, next_slow[np.minimum(pe, n - 1)], n)
        offset = np.maximum(offset, pe)
        mask = _interval_mask(n, onset, offset)
        ms, me, mc = runs(mask)
        sac_s, sac_e = ms[mc], me[mc]
        dur = _run_durations_ms(t, sac_s, sac_e, dt)
        okdur = dur >= p.min_saccade_duration_ms
        sac_s, sac_e = sac_s[okdur], sac_e[okdur]
        if p.min_saccade_amplitude_deg > 0 and sac_s.size:
            # A saccade moves the eye: compare the mean position just before and just after.
            k = _samples(p.amplitude_window_ms, dt)
            ok = np.isfinite(xd) & np.isfinite(yd)
            cx = np.concatenate(([0.0], np.cumsum(np.where(ok, xd, 0.0))))
            cy = np.concatenate(([0.0], np.cumsum(np.where(ok, yd, 0.0))))
            cn = np.concatenate(([0], np.cumsum(ok)))
            b0, b1 = np.maximum(sac_s - k, 0), sac_s
            a0, a1 = sac_e, np.minimum(sac_e + k, n)
            nb = np.maximum(cn[b1] - cn[b0], 1)
            na = np.maximum(cn[a1] - cn[a0], 1)
            amp = np.hypot(
                (cx[a1] - cx[a0]) / na - (cx[b1] - cx[b0]) / nb,
                (cy[a1] - cy[a0]) / na - (cy[b1] - cy[b0]) / nb,
            )
            big = (amp >= p.min_saccade_amplitude_deg) | (cn[b1] - cn[b0] == 0) | (cn[a1] - cn[a0] == 0)
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
        lab[_interval_mask(n, sac_s, sac_e)] = SACCADE
        lab[_interval_mask(n, strong_s, strong_e)] = PSO

        # PSO: the signal keeps moving (steps above the PSO threshold) within the PSO window after
        # a saccade; it lasts until the first stretch of slow steps longer than the closing gap.
        hi = step > s_pso
        gap = _samples(p.pso_gap_close_ms, dt) if p.pso_gap_close_ms > 0 else 0
        if gap:
            ls_, le_, lc_ = runs(hi)
            short_lo = (~lc_) & (le_ - ls_ <= gap) & (ls_ > 0) & (le_ < n)
            hi = hi | _interval_mask(n, ls_[short_lo], le_[short_lo])
        pmax = _samples(p.pso_max_duration_ms, dt)
        next_hi = np.minimum.accumulate(np.where(hi, idx, n)[::-1])[::-1]
        next_lo = np.minimum.accumulate(np.where(~hi, idx, n)[::-1])[::-1]
        # Weak PSOs are looked for after the saccade and any strong PSO chained to it.
        after = strong_e
        inside = after < n
        first_hi = np.full(after.size, n)
        first_hi[inside] = next_hi[after[inside]]
        has_pso = inside & (first_hi < after + pw) & (first_hi < n)
        pso_s = after[has_pso]
        # The PSO keeps the sample at which the signal comes to rest (coders' convention: the
        # fixation starts once the eye has arrived, not on the arriving step).
        pso_end = np.minimum(next_lo[first_hi[has_pso]] + 1, n)
        pso_end = np.minimum(pso_end, pso_s + pmax)
        pmask = _interval_mask(n, pso_s, pso_end) & (lab == FIXATION)
        lab[pmask] = PSO
    info_speed = {"step_noise_median_deg_s": s_med, "step_noise_sd_deg_s": s_sd, "step_onset_deg_s": s_on}

    # Blinks: long lost runs, widened by a margin and over the unstable signal around them.
    ls, le = nan_runs(lost)
    lab[lost] = LOST
    if ls.size:
        ldur = _run_durations_ms(t, ls, le, dt)
        is_blink = (ldur >= p.blink_min_lost_ms) & (ldur <= p.blink_max_lost_ms)
        bs, be = ls[is_blink], le[is_blink]
        m = _samples(p.blink_margin_ms, dt)
        bmask = _interval_mask(n, bs - m, be + m)
        lab[bmask & ~lost] = BLINK
        lab[lost & bmask] = BLINK
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
    out = lab.copy()
    out[_interval_mask(lab.size, starts[run_hit], ends[run_hit])] = BLINK
    return out


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


def detect_events(
    t_us: npt.ArrayLike,
    x_px: npt.ArrayLike,
    y_px: npt.ArrayLike,
    *,
    geometry: ScreenGeometry,
    method: str = DEFAULT_METHOD,
    params: Params | dict[str, Any] | None = None,
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

    Returns
    -------
    DetectionResult
        Labels (``int8`` into ``SAMPLE_LABELS``), events and the parameters used.
    """
    p = _resolve_params(method, params)
    t = np.asarray(t_us, dtype=np.float64)
    x = np.asarray(x_px, dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    if not (t.shape == x.shape == y.shape) or t.ndim != 1:
        raise ValueError(f"t_us, x_px, y_px must be 1-D of equal length, got {t.shape}, {x.shape}, {y.shape}")
    if t.size > 1 and np.any(np.diff(t) <= 0):
        raise ValueError("t_us must be strictly increasing")
    used: dict[str, Any] = {"method": method, **asdict(p)}
    used["sampling_rate_hz"] = estimate_sampling_rate_hz(t)
    if t.size == 0:
        return DetectionResult(np.zeros(0, dtype=np.int8), _empty_events(), used)
    if method == "ivt":
        lab, v, info = _ivt(t, x, y, geometry, p)  # type: ignore[arg-type]
    elif method == "idt":
        lab, v, info = _idt(t, x, y, geometry, p)  # type: ignore[arg-type]
    else:
        lab, v, info = _adaptive(t, x, y, geometry, p)  # type: ignore[arg-type]
    used.update(info)
    events = build_events(lab, t, x, y, geometry, v)
    return DetectionResult(lab.astype(np.int8, copy=False), events, used)


def detect_trials(
    samples: pd.DataFrame,
    geometry: ScreenGeometry,
    method: str = DEFAULT_METHOD,
    params: Params | dict[str, Any] | None = None,
    eye_mode: str = "average",
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

    Returns
    -------
    tuple of pandas.DataFrame
        ``(labels, events)``: labels has participant, trial, stimulus_id, t_us, eye, label (one of
        ``SAMPLE_LABELS``); events has participant, trial, stimulus_id, eye, event_index, the
        :data:`EVENT_COLUMNS` and ``onset_in_trial_ms``.
    """
    p = _resolve_params(method, params)
    label_parts: list[pd.DataFrame] = []
    event_parts: list[pd.DataFrame] = []
    if len(samples) == 0:
        return _empty_trial_labels(), _empty_trial_events()
    df = samples.sort_values(["participant", "trial", "eye", "t_us"], kind="stable")
    x_all = df["x_px"].to_numpy(np.float64).copy()
    y_all = df["y_px"].to_numpy(np.float64).copy()
    if "valid" in df:
        bad = ~df["valid"].to_numpy(bool)
        x_all[bad] = np.nan
        y_all[bad] = np.nan
    t_all = df["t_us"].to_numpy(np.int64)
    eye_all = df["eye"].to_numpy(object)
    keys = df[["participant", "trial"]].to_numpy(object)
    part_codes, _ = pd.factorize(df["participant"])
    trial_vals = df["trial"].to_numpy(np.int64)
    change = np.flatnonzero((np.diff(part_codes) != 0) | (np.diff(trial_vals) != 0)) + 1
    bounds = np.concatenate(([0], change, [len(df)]))
    stim_all = df["stimulus_id"].to_numpy(object)
    for a, b in itertools.pairwise(bounds):
        participant, trial = keys[a]
        stimulus = stim_all[a]
        t_tr, x_tr, y_tr, eye_name = _trial_signal(t_all[a:b], x_all[a:b], y_all[a:b], eye_all[a:b], eye_mode)
        res = detect_events(t_tr, x_tr, y_tr, geometry=geometry, method=method, params=p)
        label_parts.append(
            pd.DataFrame(
                {
                    "participant": participant,
                    "trial": np.int32(trial),
                    "stimulus_id": stimulus,
                    "t_us": t_tr,
                    "eye": eye_name,
                    "label": np.asarray(SAMPLE_LABELS, dtype=object)[res.labels],
                }
            )
        )
        ev = res.events
        ev.insert(0, "event_index", np.arange(len(ev), dtype=np.int32))
        ev.insert(0, "eye", eye_name)
        ev.insert(0, "stimulus_id", stimulus)
        ev.insert(0, "trial", np.int32(trial))
        ev.insert(0, "participant", participant)
        ev["onset_in_trial_ms"] = ev["onset_ms"] - t_tr[0] / 1000.0
        event_parts.append(ev)
    labels = pd.concat(label_parts, ignore_index=True)
    events = pd.concat(event_parts, ignore_index=True)
    return labels, events


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
    return pd.DataFrame(
        {
            "participant": pd.Series(dtype=object),
            "trial": pd.Series(dtype=np.int32),
            "stimulus_id": pd.Series(dtype=object),
            "t_us": pd.Series(dtype=np.int64),
            "eye": pd.Series(dtype=object),
            "label": pd.Series(dtype=object),
        }
    )


def _empty_trial_events() -> pd.DataFrame:
    ev = _empty_events()
    ev.insert(0, "event_index", pd.Series(dtype=np.int32))
    ev.insert(0, "eye", pd.Series(dtype=object))
    ev.insert(0, "stimulus_id", pd.Series(dtype=object))
    ev.insert(0, "trial", pd.Series(dtype=np.int32))
    ev.insert(0, "participant", pd.Series(dtype=object))
    ev["onset_in_trial_ms"] = pd.Series(dtype=np.float64)
    return ev
