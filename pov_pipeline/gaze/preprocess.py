"""Vectorized preprocessing of gaze samples: sampling rate, gaps, eye choice, filters, velocity.

Every function works on whole numpy arrays (no Python loop over samples), so a trial of a few
thousand samples or a recording of millions go through at memory speed. Lost samples are NaN.
Times are integer microseconds on the tracker clock (``t_us``).
"""

from __future__ import annotations

import functools
import warnings
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.signal import savgol_coeffs

FloatArray = npt.NDArray[np.float64]
EyeMode = Literal["average", "left", "right", "best"]


def estimate_sampling_rate_hz(t_us: npt.ArrayLike) -> float:
    """Estimate the sampling rate from time stamps (the median sample interval).

    The median ignores dropped samples and recording pauses, and the declared rate of a file is
    not trusted: the Lund ``UL47`` recording declares 500 Hz but its stamps are 5 ms apart.

    Parameters
    ----------
    t_us : array_like
        Sample time stamps in microseconds, increasing.

    Returns
    -------
    float
        Sampling rate in Hz; NaN when fewer than two distinct time stamps are given.
    """
    t = np.asarray(t_us, dtype=np.float64)
    if t.size < 2:
        return float("nan")
    return sampling_rate_from_intervals_hz(np.diff(t))


def sampling_rate_from_intervals_hz(interval_us: npt.ArrayLike) -> float:
    """Sampling rate from sample intervals: ``1e6 / median`` of the positive ones.

    Same result as :func:`estimate_sampling_rate_hz` on the time stamps the intervals came from,
    for callers that already hold ``np.diff(t_us)``.

    Parameters
    ----------
    interval_us : array_like
        Differences of consecutive time stamps in microseconds.

    Returns
    -------
    float
        Sampling rate in Hz; NaN when no interval is positive.
    """
    dt = np.asarray(interval_us, dtype=np.float64)
    positive = dt > 0
    if not positive.all():
        dt = dt[positive]
    if dt.size == 0:
        return float("nan")
    return float(1e6 / _exact_median(dt))


def _exact_median(a: FloatArray) -> float:
    """``np.median`` of a NaN-free array, fast when most values are equal (regular sampling).

    A guess from a strided subset is checked by counting: when both middle order statistics equal
    the guess it is the median, exactly as ``np.median`` returns it; otherwise fall back.
    """
    n = a.size
    if n < 4096:
        return float(np.median(a))
    guess = float(np.median(a[:: n // 1024]))
    below = int(np.count_nonzero(a < guess))
    if below <= (n - 1) // 2 and below + int(np.count_nonzero(a == guess)) > n // 2:
        return guess
    return float(np.median(a))


def sample_interval_us(t_us: npt.ArrayLike) -> float:
    """Median positive sample interval in microseconds (NaN for fewer than two samples)."""
    rate = estimate_sampling_rate_hz(t_us)
    return float(1e6 / rate) if np.isfinite(rate) else float("nan")


def nan_runs(mask: npt.ArrayLike) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Start and end (exclusive) indices of the runs of ``True`` in a boolean array."""
    m = np.asarray(mask, dtype=bool)
    padded = np.concatenate(([False], m, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2], edges[1::2]


def fill_gaps(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    t_us: npt.ArrayLike,
    max_gap_ms: float = 75.0,
    *,
    interval_us: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Linearly interpolate runs of lost (NaN) samples that are no longer than ``max_gap_ms``.

    The gap length is the time the data is missing for: from the last valid sample before the run
    to the first valid sample after it, minus one sample interval (Tobii I-VT "gap fill-in",
    Olsen 2012). Runs touching either end of the recording are never filled, since there is
    nothing to interpolate towards.

    Parameters
    ----------
    x, y : array_like
        Gaze coordinates (any unit); NaN marks a lost sample. A sample is lost when either is NaN.
    t_us : array_like
        Time stamps in microseconds.
    max_gap_ms : float
        Longest gap to fill, in milliseconds.
    interval_us : float, optional
        The sample interval, when the caller already measured it (:func:`sample_interval_us`).

    Returns
    -------
    tuple of numpy.ndarray
        Copies of ``x`` and ``y`` with the short gaps filled.
    """
    xo = np.array(x, dtype=np.float64, copy=True)
    yo = np.array(y, dtype=np.float64, copy=True)
    fill_gaps_inplace(xo, yo, np.asarray(t_us, dtype=np.float64), max_gap_ms, interval_us=interval_us)
    return xo, yo


def fill_gaps_inplace(
    x: FloatArray,
    y: FloatArray,
    t_us: FloatArray,
    max_gap_ms: float,
    *,
    interval_us: float | None = None,
) -> npt.NDArray[np.bool_]:
    """:func:`fill_gaps` on ``float64`` arrays owned by the caller; returns the lost mask after it.

    Parameters
    ----------
    x, y : numpy.ndarray
        ``float64`` coordinates, modified in place (a sample lost in one is made lost in both).
    t_us : numpy.ndarray
        ``float64`` time stamps in microseconds.
    max_gap_ms : float
        Longest gap to fill, in milliseconds.
    interval_us : float, optional
        The sample interval, when already measured.

    Returns
    -------
    numpy.ndarray
        Boolean mask of the samples still lost.
    """
    lost = np.isnan(x)
    lost |= np.isnan(y)
    if not lost.any():
        return lost
    x[lost] = np.nan
    y[lost] = np.nan
    if lost.all():
        return lost
    starts, ends = nan_runs(lost)
    inner = (starts > 0) & (ends < lost.size)
    starts, ends = starts[inner], ends[inner]
    if starts.size == 0:
        return lost
    dt_us = sample_interval_us(t_us) if interval_us is None else interval_us
    gap_ms = (t_us[ends] - t_us[starts - 1] - dt_us) / 1000.0
    keep = gap_ms <= max_gap_ms + 1e-9
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return lost
    fill = concat_ranges(starts, ends)
    # Only the valid samples bracketing each gap matter to np.interp, so it is given just those
    # (same bracketing, same arithmetic) instead of every valid sample.
    xp = np.column_stack((t_us[starts - 1], t_us[ends])).ravel()
    tf = t_us[fill]
    with np.errstate(all="ignore"):
        x[fill] = np.interp(tf, xp, np.column_stack((x[starts - 1], x[ends])).ravel())
        y[fill] = np.interp(tf, xp, np.column_stack((y[starts - 1], y[ends])).ravel())
    lost[fill] = False
    return lost


def concat_ranges(starts: npt.ArrayLike, ends: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Indices of the half-open ranges ``[start, end)`` concatenated (empty ranges skipped)."""
    s = np.asarray(starts, dtype=np.intp)
    e = np.asarray(ends, dtype=np.intp)
    lengths = e - s
    keep = lengths > 0
    if not keep.all():
        s, lengths = s[keep], lengths[keep]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.intp)
    # Each index is its position in the output plus the offset of the range it belongs to.
    offset = s - (np.cumsum(lengths) - lengths)
    return np.arange(total, dtype=np.intp) + np.repeat(offset, lengths)


def select_eye(
    left: tuple[npt.ArrayLike, npt.ArrayLike],
    right: tuple[npt.ArrayLike, npt.ArrayLike],
    mode: EyeMode = "average",
) -> tuple[FloatArray, FloatArray]:
    """Combine the two eyes of a binocular recording into one gaze signal.

    Parameters
    ----------
    left, right : tuple of array_like
        ``(x, y)`` of each eye, NaN where lost.
    mode : {"average", "left", "right", "best"}
        ``average``: mean of both eyes where both are valid, the valid eye where only one is
        (Tobii's "Average" eye selection). ``left``/``right``: that eye only. ``best``: the eye
        with fewer lost samples, ties broken by lower sample-to-sample noise (RMS-S2S).

    Returns
    -------
    tuple of numpy.ndarray
        ``(x, y)``.
    """
    lx, ly = (np.asarray(a, dtype=np.float64) for a in left)
    rx, ry = (np.asarray(a, dtype=np.float64) for a in right)
    if mode == "left":
        return lx.copy(), ly.copy()
    if mode == "right":
        return rx.copy(), ry.copy()
    l_ok = ~(np.isnan(lx) | np.isnan(ly))
    r_ok = ~(np.isnan(rx) | np.isnan(ry))
    if mode == "best":
        nl, nr = int(l_ok.sum()), int(r_ok.sum())
        if nl != nr:
            return (lx.copy(), ly.copy()) if nl > nr else (rx.copy(), ry.copy())
        return (lx.copy(), ly.copy()) if _rms_s2s(lx, ly) <= _rms_s2s(rx, ry) else (rx.copy(), ry.copy())
    if mode != "average":
        raise ValueError(f"mode must be one of average, left, right, best; got {mode!r}")
    both = l_ok & r_ok
    x = np.where(both, 0.5 * (lx + rx), np.where(l_ok, lx, rx))
    y = np.where(both, 0.5 * (ly + ry), np.where(l_ok, ly, ry))
    lost = ~(l_ok | r_ok)
    x[lost] = np.nan
    y[lost] = np.nan
    return x, y


def _rms_s2s(x: FloatArray, y: FloatArray) -> float:
    d2 = np.diff(x) ** 2 + np.diff(y) ** 2
    d2 = d2[np.isfinite(d2)]
    return float(np.sqrt(d2.mean())) if d2.size else float("inf")


def moving_median(x: npt.ArrayLike, window_samples: int = 3) -> FloatArray:
    """Centred moving median, NaN-aware, edges kept as they are.

    Parameters
    ----------
    x : array_like
        Signal; NaN marks lost samples.
    window_samples : int
        Odd window length in samples (1 returns a copy).

    Returns
    -------
    numpy.ndarray
        Filtered copy. A sample whose window holds lost samples gets the median of the valid ones;
        a lost sample stays lost.
    """
    a = np.asarray(x, dtype=np.float64)
    if window_samples < 1 or window_samples % 2 == 0:
        raise ValueError(f"window_samples must be a positive odd integer, got {window_samples}")
    if window_samples == 1 or a.size < window_samples:
        return a.copy()
    half = window_samples // 2
    if window_samples == 3:
        return _median3(a)
    out = a.copy()
    windows = np.lib.stride_tricks.sliding_window_view(a, window_samples)
    out[half:-half] = _nanmedian_rows(windows)
    out[np.isnan(a)] = np.nan
    return out


def _median3(a: FloatArray) -> FloatArray:
    """NaN-aware centred median of three (the ``window_samples == 3`` case of moving_median)."""
    out = np.empty_like(a)
    out[0], out[-1] = a[0], a[-1]
    p, c, n = a[:-2], a[1:-1], a[2:]
    # Median of three by min/max is several times faster than a generic sorting filter; the
    # buffers are reused because allocating fresh arrays costs as much as the arithmetic.
    lo = np.minimum(p, c)
    hi = np.maximum(p, c)
    np.minimum(hi, n, out=hi)
    np.maximum(lo, hi, out=out[1:-1])
    bad = np.flatnonzero(np.isnan(out))
    if bad.size:
        # With at most two valid values out of three, the median of the valid ones is their mean.
        inner = bad[(bad > 0) & (bad < a.size - 1)]
        rows = np.stack([a[inner - 1], a[inner], a[inner + 1]], axis=1)
        valid = ~np.isnan(rows)
        cnt = valid.sum(axis=1)
        total = np.where(valid, rows, 0.0).sum(axis=1)
        out[inner] = np.where(cnt > 0, total / np.maximum(cnt, 1), np.nan)
        # A lost sample stays lost.
        out[bad[np.isnan(a[bad])]] = np.nan
    return out


def _nanmedian_rows(rows: FloatArray) -> FloatArray:
    """Row-wise median of the non-NaN values (NaN for an all-NaN row), without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(rows, axis=1)


def savitzky_golay(
    x: npt.ArrayLike,
    window_samples: int,
    polyorder: int = 2,
    deriv: int = 0,
    delta: float = 1.0,
) -> FloatArray:
    """Savitzky-Golay smoothing or differentiation (centred, NaN propagates to its neighbours).

    Parameters
    ----------
    x : array_like
        Signal.
    window_samples : int
        Odd window length in samples, larger than ``polyorder``.
    polyorder : int
        Polynomial order.
    deriv : int
        Derivative order (0 smooths).
    delta : float
        Sample spacing, so that a derivative comes out per unit of ``delta`` (e.g. seconds).

    Returns
    -------
    numpy.ndarray
        Filtered signal; the first and last ``window_samples // 2`` samples repeat the nearest
        full-window value.
    """
    a = np.asarray(x, dtype=np.float64)
    if window_samples % 2 == 0 or window_samples <= polyorder:
        raise ValueError("window_samples must be odd and larger than polyorder")
    if a.size < window_samples:
        return np.full_like(a, np.nan) if deriv else a.copy()
    coeffs = _savgol_kernel(window_samples, polyorder, deriv, float(delta))
    half = window_samples // 2
    core = np.convolve(a, coeffs[::-1], mode="valid")
    out = np.empty_like(a)
    out[half:-half] = core
    out[:half] = core[0]
    out[-half:] = core[-1]
    return out


@functools.lru_cache(maxsize=64)
def _savgol_kernel(window_samples: int, polyorder: int, deriv: int, delta: float) -> FloatArray:
    # Designing the filter (a least-squares fit) costs far more than applying it to a trial.
    coeffs = savgol_coeffs(window_samples, polyorder, deriv=deriv, delta=delta, use="dot")
    coeffs.setflags(write=False)
    return coeffs


def velocity_window_half_samples(window_ms: float, sampling_rate_hz: float) -> int:
    """Half-width in samples of a centred velocity window of ``window_ms`` (at least one)."""
    return max(1, round(window_ms * 1e-3 * sampling_rate_hz / 2.0))


def velocity_deg_s(
    t_us: npt.ArrayLike,
    x_deg: npt.ArrayLike,
    y_deg: npt.ArrayLike,
    window_ms: float = 20.0,
    *,
    sampling_rate_hz: float | None = None,
) -> FloatArray:
    """Angular gaze speed over a centred time window (Tobii I-VT "velocity calculator").

    The speed at sample ``i`` is the angular distance between samples ``i - k`` and ``i + k``
    divided by the time between them, with ``k`` the half-window in samples at the measured rate
    (at least one sample, so 60 Hz data still gets a velocity). Windows are clipped at the ends.

    Parameters
    ----------
    t_us : array_like
        Time stamps in microseconds.
    x_deg, y_deg : array_like
        Gaze direction in degrees; NaN where lost.
    window_ms : float
        Window length in milliseconds.
    sampling_rate_hz : float, optional
        The rate, when the caller already measured it (:func:`estimate_sampling_rate_hz`).

    Returns
    -------
    numpy.ndarray
        Speed in degrees per second; NaN where the sample or an end of its window is lost.
    """
    t = np.asarray(t_us, dtype=np.float64)
    x = np.asarray(x_deg, dtype=np.float64)
    y = np.asarray(y_deg, dtype=np.float64)
    n = t.size
    if n < 2:
        return np.full(n, np.nan)
    rate = estimate_sampling_rate_hz(t) if sampling_rate_hz is None else sampling_rate_hz
    k = velocity_window_half_samples(window_ms, rate)
    # Window ends i - k and i + k, clipped to the recording: slices in the interior, where the
    # clipping never applies, and a small gather at the two edges.
    dx, dy, dts = (_window_difference(a, k) for a in (x, y, t))
    dts *= 1e-6
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.hypot(dx, dy)
        v /= dts
    v[dts <= 0] = np.nan
    # A lost sample has no speed even when both window ends are valid.
    v[np.isnan(x) | np.isnan(y)] = np.nan
    return v


def _window_difference(a: FloatArray, k: int) -> FloatArray:
    """``a[min(i + k, n - 1)] - a[max(i - k, 0)]`` for every ``i``."""
    n = a.size
    out = np.empty(n)
    if n > 2 * k:
        np.subtract(a[2 * k :], a[: n - 2 * k], out=out[k : n - k])
        edge = np.concatenate((np.arange(k), np.arange(n - k, n)))
    else:
        edge = np.arange(n)
    out[edge] = a[np.minimum(edge + k, n - 1)] - a[np.maximum(edge - k, 0)]
    return out
