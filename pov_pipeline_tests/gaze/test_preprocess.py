"""Preprocessing: sampling rate, gap fill, eye selection, filters, velocity."""

from __future__ import annotations

import numpy as np
import pytest

from pov_pipeline.gaze.preprocess import (
    estimate_sampling_rate_hz,
    fill_gaps,
    moving_median,
    savitzky_golay,
    select_eye,
    velocity_deg_s,
)


def test_sampling_rate_of_200hz_data_that_claims_500() -> None:
    rng = np.random.default_rng(0)
    t = 10_000_000 + np.arange(2000) * 5000 + rng.integers(-3, 4, 2000)
    t[700:703] += 5000  # a dropped sample does not move the median
    assert estimate_sampling_rate_hz(np.sort(t)) == pytest.approx(200.0, rel=1e-3)


def test_sampling_rate_degenerate() -> None:
    assert np.isnan(estimate_sampling_rate_hz([5]))


def test_fill_gaps_fills_short_and_keeps_long_and_edge_gaps() -> None:
    t = np.arange(100) * 2000  # 500 Hz
    x = np.arange(100, dtype=float)
    y = np.full(100, 5.0)
    x[10:20] = np.nan  # 10 samples missing: 20 ms gap
    x[40:90] = np.nan  # 100 ms gap
    x[:3] = np.nan  # leading gap, nothing to interpolate from
    xf, yf = fill_gaps(x, y, t, max_gap_ms=75.0)
    np.testing.assert_allclose(xf[10:20], np.arange(10, 20))
    assert np.isnan(xf[40:90]).all() and np.isnan(yf[40:90]).all()
    assert np.isnan(xf[:3]).all()
    xf2, _ = fill_gaps(x, y, t, max_gap_ms=19.0)
    assert np.isnan(xf2[10:20]).all()
    xf3, _ = fill_gaps(x, y, t, max_gap_ms=20.0)
    assert np.isfinite(xf3[10:20]).all()


def test_select_eye_modes() -> None:
    lx = np.array([1.0, 2.0, np.nan, 4.0])
    ly = np.array([1.0, 1.0, np.nan, 1.0])
    rx = np.array([3.0, np.nan, np.nan, 6.0])
    ry = np.array([3.0, np.nan, np.nan, 3.0])
    x, y = select_eye((lx, ly), (rx, ry), "average")
    np.testing.assert_allclose(x, [2.0, 2.0, np.nan, 5.0])
    np.testing.assert_allclose(y, [2.0, 1.0, np.nan, 2.0])
    assert np.array_equal(select_eye((lx, ly), (rx, ry), "right")[0], rx, equal_nan=True)
    assert np.array_equal(select_eye((lx, ly), (rx, ry), "best")[0], lx, equal_nan=True)
    with pytest.raises(ValueError):
        select_eye((lx, ly), (rx, ry), "both")  # type: ignore[arg-type]


def test_moving_median_removes_spikes_keeps_edges() -> None:
    x = np.array([0.0, 0.0, 9.0, 0.0, 0.0, 5.0, 5.0, 5.0, np.nan, 5.0])
    m = moving_median(x, 3)
    np.testing.assert_allclose(m[:8], [0, 0, 0, 0, 0, 5, 5, 5])
    assert np.isnan(m[8]) and m[9] == 5.0
    m5 = moving_median(np.array([1.0, 2.0, 100.0, 3.0, 4.0, 5.0]), 5)
    assert m5[2] == 3.0
    with pytest.raises(ValueError):
        moving_median(x, 4)


def test_savitzky_golay_derivative_of_a_line() -> None:
    x = 3.0 * np.arange(50.0)
    d = savitzky_golay(x, 7, 2, deriv=1, delta=0.5)
    np.testing.assert_allclose(d, 6.0)


@pytest.mark.parametrize("rate_hz", [60.0, 500.0, 1000.0])
def test_velocity_of_constant_motion(rate_hz: float) -> None:
    n = 200
    t = np.round(np.arange(n) * 1e6 / rate_hz).astype(np.int64)
    x = 30.0 * t / 1e6  # 30 deg/s horizontally
    y = 40.0 * t / 1e6  # 40 deg/s vertically -> 50 deg/s
    v = velocity_deg_s(t, x, y, window_ms=20.0)
    np.testing.assert_allclose(v, 50.0, rtol=1e-6)
    x[100] = np.nan
    assert np.isnan(velocity_deg_s(t, x, y, 20.0)[100])
