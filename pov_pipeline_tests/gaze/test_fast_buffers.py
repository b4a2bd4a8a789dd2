"""Exactness of the fast path's buffer-saving variants: each equals the plain computation it replaces."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze import _fast, _kernels
from pov_pipeline.gaze.detection import _sort_order, detect_trials
from pov_pipeline.gaze.evaluation import synthetic_gaze
from pov_pipeline.gaze.preprocess import moving_median


def _random_bounds(rng: np.random.Generator, n: int) -> np.ndarray:
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, int(rng.integers(0, 6))), replace=False))
    return np.concatenate(([0], cuts, [n])).astype(np.intp)


def test_median3_matches_moving_median_per_trial() -> None:
    # Long trials with NaNs in the middle, at the edges and in runs: the windows around each NaN
    # are redone separately from the vector pass, across its 64-sample blocks.
    rng = np.random.default_rng(21)
    for _ in range(120):
        n = int(rng.integers(1, 700))
        a = rng.normal(size=n)
        a[rng.random(n) < rng.choice([0.0, 0.01, 0.3])] = np.nan
        if n > 2 and rng.random() < 0.3:
            a[:2] = np.nan
            a[-1] = np.nan
        bounds = _random_bounds(rng, n) if n > 1 else np.array([0, n], dtype=np.intp)
        got = _kernels.median3(a, bounds)
        want = np.concatenate([moving_median(a[lo:hi], 3) for lo, hi in itertools.pairwise(bounds)])
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))


def test_frame_layout_with_narrow_keys() -> None:
    # int8 participant and eye codes, int32 trial numbers: the types raw_gaze is read in.
    rng = np.random.default_rng(22)
    for _ in range(60):
        lengths = rng.integers(1, 900, int(rng.integers(1, 8)))
        n = int(lengths.sum())
        part = np.repeat(np.sort(rng.integers(0, 3, lengths.size)), lengths).astype(np.int8)
        trial = np.repeat(rng.integers(0, 4, lengths.size), lengths).astype(np.int32)
        eye = np.repeat(rng.integers(0, 2, lengths.size), lengths).astype(np.int8)
        t = np.cumsum(rng.integers(0, 3, n)).astype(np.int64)
        if rng.random() < 0.3:
            t[int(rng.integers(0, n))] -= 5
        keys = [a.astype(np.int64) for a in (part, trial, eye, t)]
        ok, bounds = _kernels.frame_layout(part, trial, eye, t)
        assert ok == (_sort_order(*keys) is None)
        if ok:
            change = np.flatnonzero((np.diff(keys[0]) != 0) | (np.diff(keys[1]) != 0)) + 1
            np.testing.assert_array_equal(bounds, np.concatenate(([0], change, [n])))


def test_combine_aligned_eyes_time_stamps_and_means() -> None:
    rng = np.random.default_rng(23)
    h = 50
    t = np.r_[np.arange(h), np.arange(h), np.arange(h, h + 30)].astype(np.int64)
    eye = np.r_[np.zeros(h), np.ones(h), np.zeros(30)].astype(np.int8)
    x = rng.normal(size=t.size).astype(np.float32)
    y = rng.normal(size=t.size).astype(np.float32)
    x[[3, 60, 70]] = np.nan
    y[[3, 53, 71]] = np.nan
    valid = rng.random(t.size) > 0.1
    bounds = np.array([0, 2 * h, 2 * h + 30], dtype=np.intp)
    ok, new_bounds, t_c, x_c, y_c = _kernels.combine_aligned_eyes(t, x, y, valid, eye, bounds)
    np.testing.assert_array_equal(ok, [True, False])
    np.testing.assert_array_equal(new_bounds, [0, h, h + 30])
    np.testing.assert_array_equal(t_c, np.r_[np.arange(h), np.arange(h, h + 30)])
    xm = np.where(valid, x.astype(np.float64), np.nan)
    ym = np.where(valid, y.astype(np.float64), np.nan)
    lx, ly, rx, ry = xm[:h], ym[:h], xm[h : 2 * h], ym[h : 2 * h]
    l_ok = ~(np.isnan(lx) | np.isnan(ly))
    r_ok = ~(np.isnan(rx) | np.isnan(ry))
    want_x = np.where(l_ok & r_ok, 0.5 * (lx + rx), np.where(l_ok, lx, np.where(r_ok, rx, np.nan)))
    want_y = np.where(l_ok & r_ok, 0.5 * (ly + ry), np.where(l_ok, ly, np.where(r_ok, ry, np.nan)))
    np.testing.assert_array_equal(x_c, np.r_[want_x, xm[2 * h :]])
    np.testing.assert_array_equal(y_c, np.r_[want_y, ym[2 * h :]])


def test_repeated_string_array_with_empty_runs_and_unequal_lengths() -> None:
    counts = np.array([3, 0, 5, 2], dtype=np.intp)
    for codes, strings in (
        ([0, 1, 1, 0], ("p01", "p02")),
        ([2, 0, 1, 2], ("s01", "s02", "s03")),
        ([0, 1, 0, 1], ("left", "right")),
    ):
        got = _fast.repeated_string_array(np.array(codes), counts, strings)
        want = pd.Series(np.asarray(strings, dtype=object)[np.repeat(codes, counts)])
        pd.testing.assert_series_equal(pd.Series(got), want)


def test_string_array_reads_int8_codes() -> None:
    codes = np.array([0, 0, 3, 1, 1, 1, 5, 2], dtype=np.int8)
    strings = ("fixation", "saccade", "pso", "blink", "lost", "unclassified")
    want = pd.Series(np.asarray(strings, dtype=object)[codes.astype(np.intp)])
    pd.testing.assert_series_equal(pd.Series(_fast.string_array(codes, strings)), want)


@pytest.mark.parametrize("method", ["adaptive", "ivt"])
def test_aligned_binocular_frame_matches_reference(method: str) -> None:
    # Every binocular trial aligned: the eyes are averaged (and the invalid samples blanked) by
    # the compiled pass straight from the float32 columns.
    parts = []
    for trial in range(4):
        g = synthetic_gaze(3.0, 500.0, blink_every_s=1.5, seed=30 + trial)
        n = g.t_us.size
        for eye, dx in (("left", -1.5), ("right", 1.5)):
            x = g.x_px + dx
            ok = np.isfinite(x) & np.isfinite(g.y_px)
            valid = ok & (np.random.default_rng(trial).random(n) > 0.02)
            parts.append(
                pd.DataFrame(
                    {
                        "participant": "p001",
                        "trial": np.int32(trial),
                        "stimulus_id": f"s{trial:02d}",
                        "t_us": g.t_us + trial * 10_000_000,
                        "x_px": np.where(ok, x, 0.0).astype(np.float32),
                        "y_px": np.where(ok, g.y_px, 0.0).astype(np.float32),
                        "pupil": np.float32(3.0),
                        "valid": valid,
                        "eye": eye,
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    geometry = synthetic_gaze(0.1, 500.0).geometry
    labels, events = detect_trials(frame, geometry, method=method)
    ref_labels, ref_events = detect_trials(frame, geometry, method=method, engine="numpy")
    assert set(labels["eye"]) == {"binocular"}
    pd.testing.assert_frame_equal(labels, ref_labels, check_exact=True)
    pd.testing.assert_frame_equal(events, ref_events, check_exact=True)
