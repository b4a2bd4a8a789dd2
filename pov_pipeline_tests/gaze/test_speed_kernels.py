"""Exactness of the compiled helpers added for speed: each equals the numpy/pandas operation it replaces."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pov_pipeline.gaze import _fast, _kernels
from pov_pipeline.gaze.detection import _sort_order, _strided_subset


def _merge_kth_deviation(s: np.ndarray, lo: int, n: int, mid: float, k: int) -> float:
    """The k-th smallest ``abs(s[lo:lo + n] - mid)`` the slow, obvious way."""
    return float(np.sort(np.abs(s[lo : lo + n] - mid))[k])


def test_kth_deviation_and_mad_match_sorting() -> None:
    rng = np.random.default_rng(11)
    for _ in range(3000):
        n = int(rng.integers(1, 80))
        # Rounded values give ties on both sides of the median.
        s = np.sort(np.round(rng.exponential(size=n + 4) * 10, int(rng.integers(0, 3))))
        lo = int(rng.integers(0, 4))
        mid = float(s[lo + int(rng.integers(0, n))]) if rng.random() < 0.7 else float(rng.random() * 10)
        k = int(rng.integers(0, n))
        assert _kernels._kth_deviation(s, lo, n, mid, k) == _merge_kth_deviation(s, lo, n, mid, k)
        seg = s[lo : lo + n]
        med = float(np.median(seg))
        assert _kernels._median_and_mad(s, lo, n) == (med, float(np.median(np.abs(seg - med))))


def test_pairwise_sum_matches_numpy_across_unrolled_levels() -> None:
    rng = np.random.default_rng(12)
    a = rng.standard_normal(20000) * 10.0 ** rng.uniform(-3, 6, 20000)
    for n in [*range(0, 1100, 7), 127, 128, 129, 255, 256, 257, 1024, 1025, 4097, 19000]:
        assert _kernels._pairwise_sum(a, 5, n) == np.add.reduce(a[5 : 5 + n])


@pytest.mark.parametrize("large", [True, False])
def test_codes_of_matches_factorize(large: bool) -> None:
    rng = np.random.default_rng(13)
    dtype = pd.ArrowDtype(pa.large_string() if large else pa.string())
    runs = rng.integers(1, 50, 40)
    values = np.repeat(rng.choice(["right", "left"], 40), runs)
    for col, preferred in (
        (pd.Series(values, dtype="str"), ("left", "right")),
        (pd.Series(values, dtype=dtype), ("left", "right")),
        (pd.Series(values[5:], dtype="str").iloc[3:], ("left", "right")),  # sliced Arrow data
        (pd.Series(np.full(500, "p007"), dtype="str"), ()),
        (pd.Series(np.repeat(["left", "lefT", "right"], 3), dtype="str"), ("left", "right")),
        (pd.Series(np.repeat(["b", "a", "ab", ""], 3), dtype="str"), ()),
    ):
        codes, uniques = _fast._codes_of(col, preferred)
        ref_codes, ref_uniques = pd.factorize(col, sort=True)
        np.testing.assert_array_equal(codes, ref_codes)
        assert uniques == [str(u) for u in ref_uniques]


def test_repeats_is_a_proof_of_repetition() -> None:
    # Periods 1-11 (across the 8-byte word), any start, blocks shorter and longer than the
    # byte-compared head, and a single flipped bit anywhere in half the cases.
    rng = np.random.default_rng(14)
    for _ in range(3000):
        m = int(rng.integers(1, 12))
        k = int(rng.integers(0, 200))
        a = int(rng.integers(0, 20))
        cand = rng.integers(97, 100, m).astype(np.uint8)
        noise_before = rng.integers(0, 255, a).astype(np.uint8)
        noise_after = rng.integers(0, 255, 9).astype(np.uint8)
        data = np.concatenate([noise_before, np.tile(cand, k), noise_after])
        if k and rng.random() < 0.5:
            data[a + int(rng.integers(0, k * m))] ^= np.uint8(1 << int(rng.integers(0, 8)))
        words = data[: data.size // 8 * 8].view(np.uint64)
        e = a + k * m
        want = bytes(data[a:e]) == bytes(cand) * k
        assert _kernels._repeats(data, words, a, e, m, cand, 0) == want


def test_match_strings_rejects_foreign_values() -> None:
    arr = pa.array(["left"] * 10 + ["lefx"] + ["right"] * 3, type=pa.large_string())
    assert _fast._arrow_codes(arr, ("left", "right")) is None
    arr = pa.array(["left"] * 10 + ["right"] * 3, type=pa.large_string())
    found = _fast._arrow_codes(arr, ("right", "left", "binocular"))
    assert found is not None
    np.testing.assert_array_equal(found[0], [1] * 10 + [0] * 3)
    np.testing.assert_array_equal(found[1], [True, True, False])


def test_repeated_string_array_matches_repeat() -> None:
    strings = ("p01", "é-ü", "", "stimulus_0042")
    run_codes = np.array([0, 1, 2, 3, 3, 0, 2], dtype=np.intp)
    run_counts = np.array([3, 1, 4, 2, 5, 0, 1], dtype=np.intp)
    got = pd.Series(_fast.repeated_string_array(run_codes, run_counts, strings))
    want = pd.Series(np.asarray(strings, dtype=object)[np.repeat(run_codes, run_counts)])
    pd.testing.assert_series_equal(got, want)
    codes = np.repeat(run_codes, run_counts)
    pd.testing.assert_series_equal(pd.Series(_fast.string_array(codes, strings)), want)


def test_frame_layout_matches_sort_order_and_bounds() -> None:
    rng = np.random.default_rng(14)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        part = np.sort(rng.integers(0, 2, n)).astype(np.intp)
        trial = rng.integers(0, 3, n).astype(np.int64)
        eye = rng.integers(0, 2, n).astype(np.intp)
        t = rng.integers(0, 5, n).astype(np.int64)
        if rng.random() < 0.5:
            order = np.lexsort((t, eye, trial, part))
            part, trial, eye, t = part[order], trial[order], eye[order], t[order]
        ok, bounds = _kernels.frame_layout(part, trial, eye, t)
        assert ok == (_sort_order(part, trial, eye, t) is None)
        if ok:
            change = np.flatnonzero((np.diff(part) != 0) | (np.diff(trial) != 0)) + 1
            np.testing.assert_array_equal(bounds, np.concatenate(([0], change, [n])))


def test_frame_layout_on_long_frames_with_one_disorder() -> None:
    # Frames laid out as recordings are (long trials, two eyes, rising time), with one
    # disorder planted anywhere in most of them, in the narrow key types of the fast path.
    rng = np.random.default_rng(16)
    for _ in range(300):
        n = int(rng.integers(200, 3000))
        part = np.sort(rng.integers(0, 2, n)).astype(np.int8)
        trial = np.sort(rng.integers(0, 6, n)).astype(np.int32)
        eye = rng.integers(0, 2, n).astype(np.int8)
        t = rng.integers(0, 10**6, n).astype(np.int64)
        order = np.lexsort((t, eye, trial, part))
        part, trial, eye, t = part[order], trial[order], eye[order], t[order]
        if rng.random() < 0.8:
            i = int(rng.integers(1, n))
            col = (part, trial, eye, t)[int(rng.integers(0, 4))]
            col[i - 1], col[i] = col[i], col[i - 1]
        ok, bounds = _kernels.frame_layout(part, trial, eye, t)
        keys = [a.astype(np.int64) for a in (part, trial, eye, t)]
        assert ok == (_sort_order(*keys) is None)
        if ok:
            change = np.flatnonzero((np.diff(keys[0]) != 0) | (np.diff(keys[1]) != 0)) + 1
            np.testing.assert_array_equal(bounds, np.concatenate(([0], change, [n])))


def test_kahan_group_sum_matches_pandas() -> None:
    rng = np.random.default_rng(15)
    for _ in range(100):
        n = int(rng.integers(2, 2000))
        g = int(rng.integers(2, 40))
        v = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 8, n)
        labels = rng.integers(0, g, n).astype(np.intp)
        ref = pd.Series(v).groupby(labels).sum()
        got = _kernels.kahan_group_sum(v, labels, g)[ref.index.to_numpy()]
        np.testing.assert_array_equal(got, ref.to_numpy())


def test_match_strings_needs_distinct_lengths() -> None:
    # Equal-length candidates cannot be told apart by length: the caller then hashes.
    arr = pa.array(["left", "both"], type=pa.large_string())
    assert _fast._arrow_codes(arr, ("left", "both")) is None
    codes, uniques = _fast._codes_of(pd.Series(["left", "both", "left"], dtype="str"), ("both", "left"))
    np.testing.assert_array_equal(codes, [1, 0, 1])
    assert uniques == ["both", "left"]


def _slow_edges(step: np.ndarray, s_on: float, ps: np.ndarray, pe: np.ndarray) -> tuple[list[int], list[int]]:
    """Onsets and offsets of the peaks from the last/next slow sample, looked up naively."""
    n = step.size
    slow = ~(step >= s_on)
    onset, offset = [], []
    for a, b in zip(ps.tolist(), pe.tolist(), strict=True):
        before = np.flatnonzero(slow[:a])
        onset.append(min(int(before[-1]) + 1 if before.size else 0, a))
        after = np.flatnonzero(slow[b:])
        offset.append(max(b + int(after[0]) if after.size else n, b))
    return onset, offset


def test_runs_above_and_peak_edges_match_masks() -> None:
    rng = np.random.default_rng(21)
    for _ in range(400):
        n = int(rng.integers(1, 120))
        v = np.round(rng.exponential(size=n) * 3, 1)
        v[rng.random(n) < 0.1] = np.nan
        thr = float(rng.choice(v[np.isfinite(v)])) if np.isfinite(v).any() and rng.random() < 0.5 else 3.0
        rs, re = _kernels._runs_above(v, thr)
        edges = np.diff(np.r_[0, (v > thr).astype(np.int8), 0])
        ref_s, ref_e = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        np.testing.assert_array_equal(rs, ref_s)
        np.testing.assert_array_equal(re, ref_e)
        step = np.round(rng.exponential(size=n) * 3, 1)
        step[rng.random(n) < 0.1] = np.nan
        s_on = float(rng.uniform(0, 6))
        onset, offset = _kernels._peak_edges(step, s_on, rs, re)
        ref_on, ref_off = _slow_edges(step, s_on, rs, re)
        assert onset.tolist() == ref_on
        assert offset.tolist() == ref_off


def test_savgol_speed_and_finite_subset_match_numpy() -> None:
    rng = np.random.default_rng(22)
    # The longer trials are over THRESHOLD_SAMPLE_CAP, so its subset is thinned.
    bounds = np.array([0, 3, 40, 41, 140, 2_641, 300_140], dtype=np.intp)
    n = int(bounds[-1])
    xd = rng.standard_normal(n).cumsum()
    yd = rng.standard_normal(n).cumsum()
    xd[rng.random(n) < 0.05] = np.nan
    win = 7
    coeffs = np.linspace(-1.0, 1.0, win)
    trials = np.arange(bounds.size - 1, dtype=np.intp)
    cores = [np.convolve(src, coeffs, mode="valid") for src in (xd, yd)]
    vx, vy, v = np.empty(n), np.empty(n), np.empty(n)
    _kernels.savgol_assemble(cores[0], 0, vx, bounds, trials, win)
    _kernels.savgol_assemble(cores[1], 0, vy, bounds, trials, win)
    _kernels.savgol_speed(cores[0], cores[1], 0, v, bounds, trials, win)
    np.testing.assert_array_equal(v, np.sqrt(vx * vx + vy * vy))
    out = np.empty(n)
    for a, b in itertools.pairwise(bounds):
        m = _kernels._finite_subset(v, a, b, out, 0)
        seg = v[a:b]
        np.testing.assert_array_equal(out[:m], _strided_subset(seg, np.isfinite(seg)))


def test_masked_float64_matches_cast_and_mask() -> None:
    rng = np.random.default_rng(23)
    x = (rng.random(1000) * 1920).astype(np.float32)
    x[::17] = np.nan
    valid = rng.random(1000) < 0.9
    ref = x.astype(np.float64)
    ref[~valid] = np.nan
    np.testing.assert_array_equal(_kernels.masked_float64(x, valid), ref)


def test_rad_to_deg_multiplication_is_np_degrees() -> None:
    from pov_pipeline.gaze.geometry import RAD_TO_DEG as _RAD_TO_DEG

    rng = np.random.default_rng(24)
    a = np.concatenate(
        [
            rng.standard_normal(200_000) * 10.0 ** rng.uniform(-300, 300, 200_000),
            rng.uniform(-np.pi / 2, np.pi / 2, 200_000),
            [np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324],
        ]
    )
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal((a * _RAD_TO_DEG).view(np.int64), np.degrees(a).view(np.int64))


def _arctan_inputs() -> np.ndarray:
    rng = np.random.default_rng(25)
    t3p8 = 2.41421356237309504880
    edges = [0.66, t3p8, 1.0, 1e-8, 5e-324, 1e300]
    return np.concatenate(
        [
            rng.uniform(-3.0, 3.0, 300_000),
            rng.standard_cauchy(100_000) * 100.0,
            rng.standard_normal(50_000) * 10.0 ** rng.uniform(-300, 300, 50_000),
            [v for e in edges for v in (e, -e, np.nextafter(e, 0.0), np.nextafter(e, np.inf))],
            [np.nan, np.inf, -np.inf, 0.0, -0.0],
        ]
    )


def test_compiled_px_to_deg_is_arctan_deg_bit_for_bit() -> None:
    from pov_pipeline.gaze.geometry import arctan_deg

    a = _arctan_inputs()
    for centre, scale in ((0.0, 1.0), (960.0, 0.000531)):
        out = np.empty_like(a)
        _kernels.px_to_deg(a, centre, scale, out)
        np.testing.assert_array_equal(out.view(np.int64), arctan_deg((a - centre) * scale).view(np.int64))
    # In place, as the detector calls it.
    b = a.copy()
    _kernels.px_to_deg(b, 0.0, 1.0, b)
    np.testing.assert_array_equal(b.view(np.int64), arctan_deg(a).view(np.int64))
    # Blocks of 1024 whose every |t| is at most 0.66 skip the range reduction: on its edge, with
    # NaNs, signed zeros and subnormals; the last block has one value just past the edge.
    rng = np.random.default_rng(31)
    c = rng.uniform(-0.66, 0.66, 4096)
    c[::97] = np.nan
    c[:6] = [0.66, -0.66, -0.0, 0.0, 5e-324, -1e-300]
    c[-1] = np.nextafter(0.66, 1.0)
    for centre, scale in ((0.0, 1.0), (960.0, -1.0 / 960.0 * 0.66)):
        pix = c / scale + centre if centre else c
        out = np.empty_like(pix)
        _kernels.px_to_deg(pix, centre, scale, out)
        np.testing.assert_array_equal(out.view(np.int64), arctan_deg((pix - centre) * scale).view(np.int64))
    assert _kernels._within_small_range(c[:1024], 0.0, 1.0)
    assert not _kernels._within_small_range(c[-1024:], 0.0, 1.0)


def test_arctan_deg_is_within_two_ulp_of_numpy() -> None:
    from pov_pipeline.gaze.geometry import arctan_deg

    a = _arctan_inputs()
    ours, ref = arctan_deg(a), np.degrees(np.arctan(a))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(ref))
    ok = np.isfinite(ref)
    # Relative to the float spacing of the result; tiny results compare to the smallest normal.
    spacing = np.spacing(np.maximum(np.abs(ref[ok]), np.finfo(np.float64).tiny))
    assert (np.abs(ours[ok] - ref[ok]) / spacing).max() <= 2.0
    assert arctan_deg(np.inf) == 90.0 and arctan_deg(-np.inf) == -90.0 and arctan_deg(1.0) == 45.0


def test_discard_and_absorb_matches_reference_passes() -> None:
    """One walk equals the reference's absorb, discard, absorb (the first absorb is redundant)."""
    from pov_pipeline.gaze import detection as ref

    rng = np.random.default_rng(21)
    dt = 1000.0
    for _ in range(3000):
        n = int(rng.integers(1, 60))
        # Runs of random labels and lengths: short and long fixations next to blinks, lost
        # samples, saccades, PSOs and unclassified samples, in every order.
        lengths = rng.integers(1, 12, n)
        lab = np.repeat(rng.integers(0, 6, n), lengths).astype(np.int8)
        t = np.cumsum(rng.choice([dt, dt, dt, 2 * dt], lab.size)).astype(np.float64)
        min_ms = float(rng.choice([3.0, 5.0, 8.0]))
        want = ref._absorb_into_blinks(
            ref._discard_short(ref._absorb_into_blinks(lab.copy()), t, dt, ref.FIXATION, min_ms)
        )
        got = lab.copy()
        _kernels._discard_and_absorb(got, t, dt, min_ms)
        np.testing.assert_array_equal(got, want)


def test_true_runs_match_mask_edges() -> None:
    """Runs of lost samples, found a word at a time, on slices that start off a word boundary."""
    rng = np.random.default_rng(31)
    for _ in range(300):
        n = int(rng.integers(0, 90))
        density = float(rng.choice([0.02, 0.3, 0.9]))
        # Runs of a few samples, as blinks are: a random walk over a flag.
        full = np.cumsum(rng.random(n + 7) < density) % 2 == 1
        start = int(rng.integers(0, 8))
        mask = full[start : start + n]
        rs, re = _kernels._true_runs(mask)
        edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
        np.testing.assert_array_equal(rs, np.flatnonzero(edges == 1))
        np.testing.assert_array_equal(re, np.flatnonzero(edges == -1))


def test_median3_matches_moving_median_with_lost_runs() -> None:
    """The one-pass compiled median equals moving_median per trial, around NaN runs of any length."""
    from pov_pipeline.gaze.preprocess import moving_median

    rng = np.random.default_rng(37)
    for _ in range(100):
        lengths = rng.integers(1, 40, size=int(rng.integers(1, 6)))
        bounds = np.r_[0, np.cumsum(lengths)].astype(np.intp)
        a = np.round(rng.normal(0, 5, size=int(bounds[-1])), 1)
        lost = np.cumsum(rng.random(a.size) < 0.15) % 3 == 1
        a[lost] = np.nan
        got = _kernels.median3(a, bounds)
        for lo, hi in itertools.pairwise(bounds.tolist()):
            np.testing.assert_array_equal(got[lo:hi], moving_median(a[lo:hi], 3))


def test_trial_rates_match_median_interval() -> None:
    """Regular trials take the shortcut, jittered ones the median; a repeated stamp is reported."""
    rng = np.random.default_rng(41)
    trials = [
        np.arange(50) * 2000.0,  # 500 Hz, regular
        1e6 + np.arange(40) * 1000.0,  # 1000 Hz, regular
        np.cumsum(rng.choice([4000.0, 5000.0, 6000.0], size=30)),  # jittered
        np.r_[0.0, 5000.0],  # two samples
        np.r_[7.0],  # one sample: unknown rate
        np.arange(20) * 16667.0 + np.r_[np.zeros(10), np.full(10, 3.0)],  # one odd interval
    ]
    t = np.concatenate(trials)
    bounds = np.r_[0, np.cumsum([x.size for x in trials])].astype(np.intp)
    rates, bad = _kernels.trial_rates(t, bounds)
    assert bad == -1
    for k, x in enumerate(trials):
        d = np.diff(x)
        expected = 1e6 / np.median(d[d > 0]) if d.size else np.nan
        np.testing.assert_array_equal(rates[k], expected)
    t_bad = t.copy()
    t_bad[bounds[2] + 5] = t_bad[bounds[2] + 4]  # a repeated stamp in the third trial
    assert _kernels.trial_rates(t_bad, bounds)[1] == 2


def test_cut_spans_packs_whole_trials_greedily() -> None:
    rng = np.random.default_rng(41)
    lengths = rng.integers(1, 400, 300)
    lengths[[5, 77]] = [1500, 1000]  # longer than a span on their own
    bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.intp)
    trials = np.flatnonzero(rng.random(300) < 0.7).astype(np.intp)
    trials = np.union1d(trials, [5, 77]).astype(np.intp)
    spans = _fast._cut_spans(bounds, trials, 1000)
    np.testing.assert_array_equal(np.concatenate([tr for _, _, tr in spans]), trials)
    for i, (a, b, tr) in enumerate(spans):
        assert (a, b) == (bounds[tr[0]], bounds[tr[-1] + 1])
        assert b - a <= 1000 or tr.size == 1
        if i + 1 < len(spans):
            # Greedy: the next trial would have taken the span past the limit.
            assert bounds[spans[i + 1][2][0] + 1] - a > 1000
