"""The compiled events table and gap filling equal the numpy reference on their edge cases.

``event_table`` reads each run in one vectorized pass (integer keys of the float bits for the
extremes, word-wide label scans) and sums clean runs in place; these tests pin it to the
reference ``_event_columns`` bit for bit: runs of one sample, runs cut at trial bounds, dirty
runs (lost samples inside), runs longer than one pairwise block (129 samples) and than the
unrolled tree (over a thousand), all-lost and empty trials, signed zeros and NaN extremes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze import _fast, _kernels
from pov_pipeline.gaze.detection import EVENT_COLUMNS, _event_columns, detect_trials
from pov_pipeline.gaze.evaluation import synthetic_gaze
from pov_pipeline.gaze.geometry import ScreenGeometry
from pov_pipeline.gaze.preprocess import fill_gaps_inplace

GEOMETRY = ScreenGeometry(
    screen_width_px=1920,
    screen_height_px=1080,
    screen_width_mm=531.0,
    screen_height_mm=299.0,
    viewing_distance_mm=650.0,
)


def _same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal values, signed zeros told apart, NaN equal to NaN."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if got.dtype.kind != "f":
        return bool(np.array_equal(got, want))
    nan = np.isnan(got)
    if not np.array_equal(nan, np.isnan(want)):
        return False
    return bool(np.array_equal(got[~nan].view(np.int64), want[~nan].view(np.int64)))


def _assert_matches_reference(
    lab: np.ndarray,
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    xd: np.ndarray,
    yd: np.ndarray,
    v: np.ndarray,
    bounds: np.ndarray,
    dts: np.ndarray,
) -> np.ndarray:
    """Compare the frame's events with ``_event_columns`` trial by trial; their ``n_samples``."""
    res = _fast.FrameResult(lab, v, (xd, yd), [])
    cols, trial = _fast.event_columns(res, t, x, y, bounds, dts)
    for k in range(bounds.size - 1):
        a, b = int(bounds[k]), int(bounds[k + 1])
        mine = trial == k
        ref = None
        if b > a:
            ref = _event_columns(
                lab[a:b], t[a:b], x[a:b], y[a:b], (xd[a:b], yd[a:b]), GEOMETRY, v[a:b], float(dts[k])
            )
        if ref is None:
            assert not mine.any(), k
            continue
        for name in EVENT_COLUMNS:
            got = np.asarray(cols[name])[mine]
            want = np.asarray(ref[name])
            if name == "event":
                got, want = got.astype(object), want.astype(object)
            assert _same_bits(got, want), (k, name, got, want)
    return np.asarray(cols["n_samples"])


def _random_frame(seed: int, lengths: list[int]) -> tuple[np.ndarray, ...]:
    """Trials of the given lengths (0 allowed) with runs of all sizes, lost samples and NaN."""
    rng = np.random.default_rng(seed)
    bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.intp)
    n = int(bounds[-1])
    # Run lengths from 1 to 2500: mostly short, some around one pairwise block (129 with the
    # first value), a few over several blocks and over a thousand samples.
    run_len = np.where(
        rng.random(n) < 0.85,
        rng.integers(1, 40, size=n),
        rng.choice([128, 129, 130, 131, 257, 700, 1100, 2500], size=n),
    )
    codes = rng.integers(0, 6, size=run_len.size).astype(np.int8)
    lab = np.repeat(codes, run_len)[:n]
    dts = rng.choice([1000.0, 2000.0, 4000.0], size=len(lengths))
    t = np.empty(n)
    for k in range(len(lengths)):
        a, b = bounds[k], bounds[k + 1]
        t[a:b] = 1e6 * k + dts[k] * np.arange(b - a) + rng.integers(0, 3, size=b - a)
    x = rng.uniform(0, 1920, n)
    y = rng.uniform(0, 1080, n)
    # Lost samples: scattered, and in bursts that make dirty runs and all-lost runs.
    x[rng.random(n) < 0.01] = np.nan
    y[rng.random(n) < 0.01] = np.nan
    for start in rng.integers(0, max(n - 300, 1), size=max(n // 2000, 1)):
        stop = start + int(rng.integers(1, 300))
        x[start:stop] = np.nan
    xd = (x - 960.0) / 30.0
    yd = (y - 540.0) / 30.0
    # Degrees need only be right where x and y are valid: elsewhere anything, NaN included.
    junk = np.isnan(x) | np.isnan(y)
    xd[junk] = rng.choice([np.nan, 5.0, -np.inf], size=int(junk.sum()))
    yd[junk] = np.nan
    v = rng.exponential(40.0, n)
    v[rng.random(n) < 0.02] = np.nan
    v[rng.random(n) < 0.02] = 0.0
    return lab, t, x, y, xd, yd, v, bounds, dts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_event_table_matches_reference_on_random_runs(seed: int) -> None:
    lengths = [5000, 0, 1, 2, 129, 130, 3000, 0, 17, 8000]
    n_samples = _assert_matches_reference(*_random_frame(seed, lengths))
    # Every path was taken: single samples, one block, the tree, the deeper tree.
    assert n_samples.size > 50
    assert (n_samples == 1).any()
    assert ((n_samples > 2) & (n_samples <= 129)).any()
    assert ((n_samples > 129) & (n_samples <= 1024)).any()
    assert (n_samples > 1100).any()


def test_event_table_edge_runs() -> None:
    # Trial 0: runs of one sample, one cut by the trial bound; trial 1: empty; trial 2 all lost;
    # trial 3 a single 2500-sample fixation with a lost sample inside (a dirty long run) and a
    # clean 200-sample saccade; trial 4 all unclassified; trial 5 one sample.
    lab = np.concatenate(
        [
            np.array([0, 1, 0, 0, 2, 5, 5, 3, 1], dtype=np.int8),
            np.full(50, 4, dtype=np.int8),
            np.r_[np.zeros(2500, dtype=np.int8), np.ones(200, dtype=np.int8)],
            np.full(40, 5, dtype=np.int8),
            np.array([1], dtype=np.int8),
        ]
    )
    lengths = [9, 0, 50, 2700, 40, 1]
    bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.intp)
    n = lab.size
    t = np.arange(n) * 2000.0
    rng = np.random.default_rng(5)
    x = rng.uniform(100, 1800, n)
    y = rng.uniform(100, 1000, n)
    x[9:59] = np.nan  # the all-lost trial
    x[9 + 50 + 1234] = np.nan  # inside the long fixation
    xd = (x - 960.0) / 30.0
    yd = (y - 540.0) / 30.0
    v = rng.exponential(40.0, n)
    v[9 + 50 + 2500 : 9 + 50 + 2700] = np.nan  # no speed at all in the saccade
    dts = np.full(len(lengths), 2000.0)
    assert _assert_matches_reference(lab, t, x, y, xd, yd, v, bounds, dts).size == 10


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf
def test_event_table_extremes_signed_zero_nan_and_zero_speed() -> None:
    # Clean runs whose extremes are zeros of both signs, a NaN degree inside a clean run (NaN
    # span), infinite degrees, and speeds that are all zero or all NaN (peak taken the slow way).
    xd = np.array([0.0, -0.0, 0.0, -0.0, -0.0, 0.0, 1.0, np.nan, 2.0, -np.inf, 3.0, np.inf, 0.0, -0.0])
    yd = np.array([-0.0, 0.0, -0.0, -1.0, 0.0, 0.0, 1.0, 2.0, 3.0, 0.0, -0.0, 1.0, -0.0, -0.0])
    n = xd.size
    lab = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 2, 2], dtype=np.int8)
    v = np.array([0.0, 0.0, 0.0, np.nan, np.nan, np.nan, 1.0, 5.0, 3.0, 0.0, np.nan, 0.0, 0.0, 0.0])
    t = np.arange(n) * 1000.0
    x = np.linspace(10.0, 20.0, n)
    y = np.linspace(5.0, 7.0, n)
    bounds = np.array([0, n], dtype=np.intp)
    dts = np.array([1000.0])
    assert _assert_matches_reference(lab, t, x, y, xd, yd, v, bounds, dts).size == 5


@pytest.mark.parametrize(("blank", "margin"), [(True, 0.25), (True, 0.0), (False, 0.0)])
def test_blank_and_fill_matches_reference_and_leaves_input(blank: bool, margin: float) -> None:
    rng = np.random.default_rng(9)
    lengths = [3000, 1, 0, 40, 2000]
    bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.intp)
    n = int(bounds[-1])
    dts = np.array([1000.0, 1000.0, 1000.0, 4000.0, 2000.0])
    t = np.concatenate([1e7 * k + dts[k] * np.arange(m) for k, m in enumerate(lengths)])
    x = rng.uniform(-700, 2600, n)
    y = rng.uniform(-400, 1500, n)
    for start in rng.integers(0, n - 40, size=60):
        stop = start + int(rng.integers(1, 40))
        (x if rng.random() < 0.5 else y)[start:stop] = np.nan
    x_in, y_in = x.copy(), y.copy()
    width, height = (1920.0, 1080.0) if blank else (1.0, 1.0)
    xo, yo, off, lost = _kernels.blank_and_fill(t, x, y, bounds, dts, width, height, margin, blank, 20.0)
    # The input is only read; the outputs are new arrays.
    assert _same_bits(x, x_in) and _same_bits(y, y_in)
    assert not np.shares_memory(xo, x) and not np.shares_memory(yo, y)
    for k in range(len(lengths)):
        a, b = int(bounds[k]), int(bounds[k + 1])
        rx, ry = x[a:b].copy(), y[a:b].copy()
        ref_off = np.zeros(b - a, dtype=bool)
        if blank:
            mx, my = margin * width, margin * height
            ref_off = (rx < -mx) | (rx > width + mx) | (ry < -my) | (ry > height + my)
            rx[ref_off] = np.nan
            ry[ref_off] = np.nan
        ref_lost = fill_gaps_inplace(rx, ry, t[a:b], 20.0, interval_us=float(dts[k]))
        np.testing.assert_array_equal(off[a:b], ref_off)
        np.testing.assert_array_equal(lost[a:b], ref_lost)
        valid = ~ref_lost
        # Positions are defined where a sample is not lost (the lost ones are NaN in both).
        assert _same_bits(xo[a:b][valid], rx[valid]) and _same_bits(yo[a:b][valid], ry[valid])
        assert np.isnan(xo[a:b][ref_lost]).all() and np.isnan(yo[a:b][ref_lost]).all()


def test_detect_trials_fast_edge_trials_match_reference() -> None:
    """All-lost, one-sample and long-fixation trials through the whole fast path."""
    g = synthetic_gaze(6.0, 1000.0, seed=3, blink_every_s=2.0, noise_px=0.5)
    n = g.t_us.size
    trial = np.minimum(np.arange(n) // 1500, 3).astype(np.int32)
    trial[-1] = 9  # a one-sample trial
    x = g.x_px.astype(np.float32)
    y = g.y_px.astype(np.float32)
    valid = np.isfinite(x) & np.isfinite(y)
    valid[trial == 1] = False  # an all-lost trial
    x[np.arange(n) % 977 == 5] = -5000.0  # off-screen samples, blanked then refilled
    frame = pd.DataFrame(
        {
            "participant": "P0",
            "trial": trial,
            "stimulus_id": np.asarray([f"s{k}" for k in trial]),
            "t_us": g.t_us,
            "x_px": np.where(valid, x, np.float32(0.0)),
            "y_px": np.where(valid, y, np.float32(0.0)),
            "pupil": np.float32(3.0),
            "valid": valid,
            "eye": "left",
        }
    )
    for method in ("adaptive", "ivt"):
        labels, events = detect_trials(frame, g.geometry, method=method)
        ref_labels, ref_events = detect_trials(frame, g.geometry, method=method, engine="numpy")
        pd.testing.assert_frame_equal(labels, ref_labels, check_exact=True)
        pd.testing.assert_frame_equal(events, ref_events, check_exact=True)
        assert (events["n_samples"] > 129).any()
