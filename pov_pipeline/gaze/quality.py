"""Per-trial data quality of raw gaze: track loss, precision, sampling rate, off-screen share.

Measures follow Holmqvist, Nyström & Mulvey (2012) and Niehorster et al. (2020), "What to expect
from your remote eye-tracker when participants are unrestrained":

``precision_rms_s2s_deg``
    Root mean square of the angular distances between consecutive valid samples.
``precision_std_deg``
    ``sqrt(var(x_deg) + var(y_deg))``, the spread of the samples around their mean.

Both are computed in non-overlapping windows of ``window_ms`` (200 ms by default) and the
**median over windows** is reported. A trial mixes fixations with saccades and blinks; the
window median keeps precision a property of the signal during (mostly) stationary gaze without
needing an event detector first (as in Hooge et al. 2018 / Niehorster et al. 2020, who take a
robust statistic over moving windows). Windows need at least half their nominal number of
consecutive valid pairs. With ``window_ms=None`` the measures cover the whole trial.

Angles are exact: a pixel maps to a point on the screen plane in mm relative to the screen
centre, and the angle between two gaze points is the angle between the two eye-to-point
vectors (``atan2(|a x b|, a . b)``), the eye sitting ``viewing_distance_mm`` in front of the
centre. Per-axis positions in degrees are ``atan((px - centre_px) * mm_per_px / distance_mm)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pov_pipeline.gaze import _kernels
from pov_pipeline.gaze.geometry import arctan_deg

__all__ = ["px_to_deg_xy", "quality_flags", "trial_quality"]

_KEYS = ["participant", "trial", "eye"]

QUALITY_COLUMNS: tuple[str, ...] = (
    "participant",
    "trial",
    "eye",
    "stimulus_id",
    "n_samples",
    "n_valid",
    "duration_ms",
    "track_loss_pct",
    "off_screen_pct",
    "precision_rms_s2s_deg",
    "precision_std_deg",
    "n_precision_windows",
    "nominal_sampling_rate_hz",
    "effective_sampling_rate_hz",
)


def px_to_deg_xy(
    x_px: np.ndarray,
    y_px: np.ndarray,
    *,
    screen_px: Sequence[int],
    screen_mm: Sequence[float],
    viewing_distance_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Convert screen pixels to per-axis visual angle relative to the screen centre.

    Parameters
    ----------
    x_px, y_px : np.ndarray
        Gaze position in screen px (origin top-left).
    screen_px : Sequence[int]
        Screen width and height in px.
    screen_mm : Sequence[float]
        Screen width and height in mm.
    viewing_distance_mm : float
        Eye-to-screen distance in mm, measured to the screen centre.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``x_deg, y_deg`` (float64): ``atan((px - centre_px) * mm_per_px / distance_mm)``.
    """
    mm_x, mm_y = _px_to_mm(x_px, y_px, screen_px=screen_px, screen_mm=screen_mm)
    d = float(viewing_distance_mm)
    return arctan_deg(mm_x / d), arctan_deg(mm_y / d)


def _px_to_mm(
    x_px: np.ndarray, y_px: np.ndarray, *, screen_px: Sequence[int], screen_mm: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    w_px, h_px = float(screen_px[0]), float(screen_px[1])
    mm_per_px_x = float(screen_mm[0]) / w_px
    mm_per_px_y = float(screen_mm[1]) / h_px
    x = np.asarray(x_px, dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    return (x - w_px / 2.0) * mm_per_px_x, (y - h_px / 2.0) * mm_per_px_y


def trial_quality(
    samples: pd.DataFrame,
    *,
    screen_px: Sequence[int],
    screen_mm: Sequence[float],
    viewing_distance_mm: float,
    window_ms: float | None = 200.0,
) -> pd.DataFrame:
    """Data-quality measures for each (participant, trial, eye) of a ``raw_gaze`` frame.

    Parameters
    ----------
    samples : pd.DataFrame
        Columns of ``schemas.RAW_GAZE`` (``participant, trial, stimulus_id, t_us, x_px, y_px,
        valid, eye``).
    screen_px : Sequence[int]
        Screen width and height in px.
    screen_mm : Sequence[float]
        Screen width and height in mm.
    viewing_distance_mm : float
        Eye-to-screen distance in mm.
    window_ms : float | None
        Window length for the precision measures (median over windows); ``None`` for one
        window per trial.

    Returns
    -------
    pd.DataFrame
        One row per ``(participant, trial, eye)``, sorted, with columns :data:`QUALITY_COLUMNS`:

        * ``n_samples`` / ``n_valid``: rows, and rows with ``valid`` and finite x/y.
        * ``duration_ms``: ``last t - first t + median dt``.
        * ``track_loss_pct``: 100 × invalid rows / ``n_samples``.
        * ``off_screen_pct``: 100 × valid rows outside ``[0, W) × [0, H)`` / ``n_samples``, so
          that loss, off-screen and on-screen add up to 100.
        * ``precision_rms_s2s_deg``, ``precision_std_deg``: median over windows (NaN if no
          window qualifies); ``n_precision_windows`` counts the qualifying windows.
        * ``nominal_sampling_rate_hz``: ``1e6 / median(dt_us)``.
        * ``effective_sampling_rate_hz``: ``n_valid / duration``.
    """
    if window_ms is not None and window_ms <= 0:
        raise ValueError(f"window_ms must be > 0 or None, found {window_ms}")
    if len(samples) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in QUALITY_COLUMNS})
    # Sort through integer codes and gather only the numeric columns: copying a frame of
    # string columns row by row costs more than everything below.
    keys = [_sortable_codes(samples[k]) for k in _KEYS]
    t_us = samples["t_us"].to_numpy(dtype=np.int64)
    order = _stable_order([*keys, t_us])
    if order is not None:
        keys = [k[order] for k in keys]
        t_us = t_us[order]
    n = t_us.shape[0]
    row_of = order if order is not None else np.arange(n)
    x = samples["x_px"].to_numpy(dtype=np.float64, na_value=np.nan)
    y = samples["y_px"].to_numpy(dtype=np.float64, na_value=np.nan)
    valid = samples["valid"].to_numpy(dtype=bool, na_value=False)
    if order is not None:
        x, y, valid = x[order], y[order], valid[order]
    valid = valid & np.isfinite(x) & np.isfinite(y)
    w_px, h_px = float(screen_px[0]), float(screen_px[1])
    off = valid & ~((x >= 0) & (x < w_px) & (y >= 0) & (y < h_px))

    # Integer group id per row (rows are sorted by the keys, so groups are contiguous).
    starts = np.zeros(n, dtype=bool)
    starts[0] = True
    for codes in keys:
        starts[1:] |= codes[1:] != codes[:-1]
    gid = np.cumsum(starts) - 1
    n_groups = int(gid[-1]) + 1
    same = ~starts  # row i and i-1 in the same group
    first_row = np.flatnonzero(starts)
    last_row = np.r_[first_row[1:] - 1, n - 1]
    n_samples = last_row - first_row + 1

    dt = np.diff(t_us, prepend=t_us[0])
    median_dt_us = _group_median_int(gid[same], dt[same], n_groups)
    n_valid = np.bincount(gid, weights=valid, minlength=n_groups)
    n_off = np.bincount(gid, weights=off, minlength=n_groups)
    span_us = (t_us[last_row] - t_us[first_row]).astype(np.float64)
    duration_us = span_us + np.nan_to_num(median_dt_us, nan=0.0)

    dist = float(viewing_distance_mm)
    if window_ms is None:
        window_us = 0
        min_pairs = np.full(n_groups, 2.0)
    else:
        window_us = max(1, round(window_ms * 1000.0))
        # Half the window's nominal sample count, and never fewer than 2 pairs.
        with np.errstate(divide="ignore", invalid="ignore"):
            min_pairs = np.maximum(2.0, 0.5 * window_ms * 1000.0 / median_dt_us)
        min_pairs = np.where(np.isfinite(min_pairs), min_pairs, 2.0)
    # Exact angular distance between consecutive gaze vectors (eye at the origin); the
    # arithmetic runs compiled, the angle of the vectors in numpy, the positions through the
    # compiled arctan_deg, the window statistics in one compiled pass without per-window
    # temporaries.
    mm_x, mm_y = _px_to_mm(x, y, screen_px=screen_px, screen_mm=screen_mm)
    cross, dot = _kernels.s2s_cross_dot(mm_x, mm_y, dist)
    s2s = np.degrees(np.arctan2(cross, dot, out=cross), out=cross)
    for mm in (mm_x, mm_y):
        mm /= dist
        _kernels.px_to_deg(mm, 0.0, 1.0, mm)
    rms_med, n_windows, std_med = _kernels.quality_windows(
        t_us,
        s2s,
        mm_x,
        mm_y,
        np.ascontiguousarray(valid),
        first_row.astype(np.intp),
        min_pairs.astype(np.float64),
        int(window_us),
    )

    with np.errstate(divide="ignore", invalid="ignore"):
        eff_rate = np.where(duration_us > 0, n_valid / (duration_us / 1e6), np.nan)
        nominal_rate = 1e6 / median_dt_us
    firsts = samples.iloc[row_of[first_row]]
    out = pd.DataFrame(
        {
            "participant": firsts["participant"].to_numpy(),
            "trial": firsts["trial"].to_numpy(),
            "eye": firsts["eye"].to_numpy(),
            "stimulus_id": firsts["stimulus_id"].to_numpy() if "stimulus_id" in samples else None,
            "n_samples": n_samples.astype(np.int64),
            "n_valid": n_valid.astype(np.int64),
            "duration_ms": duration_us / 1000.0,
            "track_loss_pct": 100.0 * (n_samples - n_valid) / n_samples,
            "off_screen_pct": 100.0 * n_off / n_samples,
            "precision_rms_s2s_deg": rms_med,
            "precision_std_deg": std_med,
            "n_precision_windows": n_windows.astype(np.int64),
            "nominal_sampling_rate_hz": nominal_rate,
            "effective_sampling_rate_hz": eff_rate,
        }
    )
    return out


def _sortable_codes(column: pd.Series) -> np.ndarray:
    """int64 codes of a key column that sort like its values (missing values last)."""
    if pd.api.types.is_integer_dtype(column.dtype) and not column.hasnans:
        return column.to_numpy(dtype=np.int64)
    # Keys repeat in long runs (one participant, eye blocks per trial): find the runs with
    # Arrow's vectorized comparisons (no Python string objects per row), then rank only the
    # run values.
    arr = pa.array(column, from_pandas=True)
    n = len(arr)
    change = np.ones(n, dtype=bool)
    if n > 1:
        differs = pc.fill_null(pc.not_equal(arr.slice(1), arr.slice(0, n - 1)), True)
        change[1:] = differs.to_numpy(zero_copy_only=False)
        # not_equal is null where either side is: two missing values in a row are one run.
        both_null = pc.and_(arr.slice(1).is_null(), arr.slice(0, n - 1).is_null())
        change[1:] &= ~both_null.to_numpy(zero_copy_only=False)
    run_start = np.flatnonzero(change)
    run_values = pd.Series(arr.take(pa.array(run_start)).to_pylist(), dtype=object)
    codes, _ = pd.factorize(run_values, sort=True, use_na_sentinel=True)
    codes = np.where(codes < 0, codes.max(initial=-1) + 1, codes).astype(np.int64)
    return np.repeat(codes, np.diff(np.r_[run_start, n]))


def _stable_order(keys: list[np.ndarray]) -> np.ndarray | None:
    """Permutation of a stable lexicographic sort by ``keys``; ``None`` when already sorted."""
    n = keys[0].shape[0]
    if n < 2:
        return None
    descending = np.zeros(n - 1, dtype=bool)
    tied = np.ones(n - 1, dtype=bool)
    for k in keys:
        descending |= tied & (k[1:] < k[:-1])
        tied &= k[1:] == k[:-1]
    if not descending.any():
        return None
    return np.lexsort(keys[::-1])


def _segment_starts(labels: np.ndarray) -> np.ndarray:
    """Start positions of the runs of a sorted label array."""
    change = np.ones(labels.shape[0], dtype=bool)
    change[1:] = labels[1:] != labels[:-1]
    return np.flatnonzero(change)


def _group_median(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` per group id (NaN for groups without values)."""
    out = np.full(n_groups, np.nan)
    if group.size == 0:
        return out
    order = np.lexsort((values, group))
    g, v = group[order], values[order]
    seg = _segment_starts(g)
    size = np.diff(np.r_[seg, g.size])
    lo = seg + (size - 1) // 2
    hi = seg + size // 2
    out[g[seg]] = (v[lo] + v[hi]) / 2.0
    return out


def _group_median_int(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """:func:`_group_median` of int64 values (exact: halves of integers below 2**52)."""
    out = np.full(n_groups, np.nan)
    if group.size == 0:
        return out
    seg = _segment_starts(group)
    lo_v = np.minimum.reduceat(values, seg)
    hi_v = np.maximum.reduceat(values, seg)
    out[group[seg]] = lo_v.astype(np.float64)
    # Only groups whose intervals vary need sorting (EyeLink's integer-ms clocks rarely do).
    varying = np.flatnonzero(lo_v != hi_v)
    if varying.size:
        size = np.diff(np.r_[seg, group.size])
        rows = np.repeat(seg[varying], size[varying]) + _ragged_arange(size[varying])
        g = group[rows]
        out[group[seg[varying]]] = _group_median(g, values[rows].astype(np.float64), n_groups)[
            group[seg[varying]]
        ]
    return out


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(c) for c in counts])`` without the loop."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def quality_flags(
    quality_df: pd.DataFrame,
    *,
    max_track_loss_pct: float = 20.0,
    max_precision_rms_deg: float = 0.5,
    max_precision_std_deg: float = 1.0,
    max_off_screen_pct: float = 10.0,
    min_effective_rate_fraction: float = 0.7,
    expected_sampling_rate_hz: float | None = None,
    max_rate_deviation_pct: float = 5.0,
    min_samples: int = 50,
) -> pd.DataFrame:
    """Mark trials whose data quality is questionable.

    Defaults are deliberately lenient warning levels: 20 % loss is a common exclusion level in
    reading and scene studies (Holmqvist et al. 2011, p. 141), 0.5° RMS-S2S is well above what
    EyeLink (≈0.01-0.05°) and Tobii Spectrum/Fusion (≈0.05-0.3°) deliver on humans.

    Parameters
    ----------
    quality_df : pd.DataFrame
        Output of :func:`trial_quality`.
    max_track_loss_pct : float
        Flag ``track_loss`` above this percentage.
    max_precision_rms_deg : float
        Flag ``precision_rms`` when RMS-S2S exceeds this, in degrees.
    max_precision_std_deg : float
        Flag ``precision_std`` when the STD precision exceeds this, in degrees.
    max_off_screen_pct : float
        Flag ``off_screen`` above this percentage of samples.
    min_effective_rate_fraction : float
        Flag ``low_effective_rate`` when the effective rate is below this fraction of the
        nominal one.
    expected_sampling_rate_hz : float | None
        When given (e.g. ``session.sampling_rate_hz``), flag ``rate_mismatch`` when the nominal
        (median-dt) rate deviates by more than ``max_rate_deviation_pct``.
    max_rate_deviation_pct : float
        Tolerance for ``rate_mismatch`` in percent.
    min_samples : int
        Flag ``too_few_samples`` below this number of samples.

    Returns
    -------
    pd.DataFrame
        ``quality_df`` with boolean columns ``flag_track_loss``, ``flag_precision_rms``,
        ``flag_precision_std``, ``flag_off_screen``, ``flag_low_effective_rate``,
        ``flag_rate_mismatch``, ``flag_too_few_samples``, ``flag_no_precision`` (no window
        qualified), ``flag_any``, and ``flags`` (the raised names joined by ``;``, ``""`` when
        none).
    """
    q = quality_df
    flags: dict[str, np.ndarray] = {
        "track_loss": q["track_loss_pct"].to_numpy(dtype=float) > max_track_loss_pct,
        "precision_rms": q["precision_rms_s2s_deg"].to_numpy(dtype=float) > max_precision_rms_deg,
        "precision_std": q["precision_std_deg"].to_numpy(dtype=float) > max_precision_std_deg,
        "off_screen": q["off_screen_pct"].to_numpy(dtype=float) > max_off_screen_pct,
        "low_effective_rate": q["effective_sampling_rate_hz"].to_numpy(dtype=float)
        < min_effective_rate_fraction * q["nominal_sampling_rate_hz"].to_numpy(dtype=float),
        "rate_mismatch": (
            np.abs(q["nominal_sampling_rate_hz"].to_numpy(dtype=float) - expected_sampling_rate_hz)
            > max_rate_deviation_pct / 100.0 * expected_sampling_rate_hz
            if expected_sampling_rate_hz is not None
            else np.zeros(len(q), dtype=bool)
        ),
        "too_few_samples": q["n_samples"].to_numpy(dtype=float) < min_samples,
        "no_precision": ~np.isfinite(q["precision_rms_s2s_deg"].to_numpy(dtype=float)),
    }
    out = q.copy()
    names = np.array(list(flags), dtype=object)
    matrix = np.column_stack([flags[k] for k in flags]) if len(q) else np.zeros((0, len(flags)), bool)
    for name, col in flags.items():
        out[f"flag_{name}"] = col
    out["flag_any"] = matrix.any(axis=1)
    out["flags"] = [";".join(names[row]) for row in matrix]
    return out
