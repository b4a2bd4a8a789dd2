"""Compiled (numba) kernels of the frame-level detectors (every trial of a frame in one call),
plus the per-sample passes of ``trial_quality`` and the group sums of ``dwell_metrics``.

Each kernel takes the concatenated samples of many trials plus ``bounds`` (trial ``k`` is
``[bounds[k], bounds[k + 1])``) and loops over the trials inside compiled code, so a frame of
thousands of short trials costs no Python per trial. The arithmetic is the numpy reference's
(:mod:`pov_pipeline.gaze.detection`), operation by operation, so labels and event values come out
bit-identical: sums follow numpy's pairwise summation, medians are taken from sorted values (sorted
here: a sorted array does not depend on the algorithm), the arctangent is our own
(:func:`~pov_pipeline.gaze.geometry.arctan_deg`, operation by operation), and the step whose numpy
implementation may round differently from a compiled loop (the Savitzky-Golay convolution) is
left to numpy by the caller.

The kernels are compiled with ``cache=True``: the first call on a machine pays the compilation
(tens of seconds), later processes load the machine code from the cache. When the package folder
is not writable the cache goes to ``NUMBA_CACHE_DIR``, defaulting to a folder in the temp dir.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

if "NUMBA_CACHE_DIR" not in os.environ and not os.access(Path(__file__).parent, os.W_OK):
    # numba would otherwise try the user cache folder, which may be read-only too (containers).
    os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / "pov_pipeline_numba_cache")

import numba
import numpy as np
import numpy.typing as npt
from numba import njit

from pov_pipeline.gaze.detection import EVENT_COLUMNS, THRESHOLD_SAMPLE_CAP
from pov_pipeline.gaze.geometry import ATAN_MOREBITS, ATAN_P, ATAN_Q, ATAN_T3P8, RAD_TO_DEG

if os.environ.get("NUMBA_CACHE_DIR") and not numba.config.CACHE_DIR:
    numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
Int8Array = npt.NDArray[np.int8]

FIXATION, SACCADE, PSO, BLINK, LOST, UNCLASSIFIED = 0, 1, 2, 3, 4, 5
_MEDIAN_EXACT_MIN = 4096

#: Layout of the float parameter vector the adaptive kernels take.
ADAPTIVE_FLOAT_PARAMS: tuple[str, ...] = (
    "initial_peak_threshold_deg_s",  # 0
    "peak_threshold_sd",  # 1
    "onset_threshold_sd",  # 2
    "min_peak_threshold_deg_s",  # 3
    "max_peak_threshold_deg_s",  # 4
    "min_onset_threshold_deg_s",  # 5
    "threshold_max_iterations",  # 6
    "min_saccade_duration_ms",  # 7
    "min_saccade_amplitude_deg",  # 8
    "amplitude_window_ms",  # 9
    "pso_window_ms",  # 10
    "strong_pso_window_ms",  # 11
    "pso_threshold_sd",  # 12
    "pso_gap_close_ms",  # 13
    "pso_max_duration_ms",  # 14
    "blink_min_lost_ms",  # 15
    "blink_max_lost_ms",  # 16
    "blink_margin_ms",  # 17
    "min_fixation_duration_ms",  # 18
)
#: Per-trial outputs of the adaptive kernels, in column order.
ADAPTIVE_INFO: tuple[str, ...] = (
    "peak_threshold_deg_s",
    "onset_threshold_deg_s",
    "noise_mean_deg_s",
    "noise_sd_deg_s",
    "step_noise_median_deg_s",
    "step_noise_sd_deg_s",
    "step_onset_deg_s",
)

#: Columns of :func:`event_table`'s float output, in order: the event table's float columns.
EVENT_FLOAT_COLUMNS: tuple[str, ...] = tuple(
    c for c in EVENT_COLUMNS if c not in ("event", "start_index", "end_index", "n_samples")
)


# --------------------------------------------------------------------------------------------
# numpy-exact building blocks
# --------------------------------------------------------------------------------------------

_P0, _P1, _P2, _P3, _P4 = ATAN_P
_Q0, _Q1, _Q2, _Q3, _Q4 = ATAN_Q


# Inlined into both block loops (so they still compile to vector code); the numpy error model
# because q, the divisor, is >= 194.
@njit(cache=True, error_model="numpy", inline="always")
def _atan_reduced(xr: float) -> float:
    """Cephes' ``atan`` of a reduced argument ``|xr| <= 0.66``: ``xr + xr^3 P(xr^2) / Q(xr^2)``."""
    z = xr * xr
    p = (((_P0 * z + _P1) * z + _P2) * z + _P3) * z + _P4
    q = ((((z + _Q0) * z + _Q1) * z + _Q2) * z + _Q3) * z + _Q4
    return xr * (z * p / q) + xr


# numpy's error model: no zero-divisor checks, so the loop compiles to vector code (the
# divisors are never zero: 1, |t| + 1, or |t| > 2.4, and the polynomial q is >= 194).
@njit(cache=True, error_model="numpy")
def _arctan_deg_block(a: FloatArray, centre: float, scale: float, out: FloatArray) -> None:
    # ``out`` must not overlap ``a``: LLVM then vectorizes the loop (its run-time overlap check
    # sends an in-place call down the scalar path, three times slower).
    for i in range(a.size):
        t = (a[i] - centre) * scale
        x = abs(t)
        big = x > ATAN_T3P8
        mid = x > 0.66
        num = -1.0 if big else (x - 1.0 if mid else x)
        den = x if big else (x + 1.0 if mid else 1.0)
        base = np.pi / 2 if big else (np.pi / 4 if mid else 0.0)
        low = ATAN_MOREBITS if big else (0.5 * ATAN_MOREBITS if mid else 0.0)
        angle = base + (_atan_reduced(num / den) + low)
        out[i] = np.copysign(angle, t) * RAD_TO_DEG


# Same error model and reasoning as _arctan_deg_block.
@njit(cache=True, error_model="numpy")
def _arctan_deg_small_block(a: FloatArray, centre: float, scale: float, out: FloatArray) -> None:
    """:func:`_arctan_deg_block` where every ``|t|`` is at most 0.66: no range reduction.

    The general loop then divides by 1, which is exact; skipping that division leaves the
    same bits and halves the divisions, which bound the loop.
    """
    for i in range(a.size):
        t = (a[i] - centre) * scale
        angle = 0.0 + (_atan_reduced(abs(t)) + 0.0)
        out[i] = np.copysign(angle, t) * RAD_TO_DEG


@njit(cache=True)
def _within_small_range(a: FloatArray, centre: float, scale: float) -> bool:
    """Whether ``|(a[i] - centre) * scale| <= 0.66`` for every non-NaN ``a[i]``.

    ``t`` is monotone in ``a``, so the extremes of ``a`` decide; NaNs fail both comparisons.
    """
    lo = np.inf
    hi = -np.inf
    for i in range(a.size):
        v = a[i]
        lo = v if v < lo else lo
        hi = v if v > hi else hi
    if lo > hi:
        return True
    return abs((lo - centre) * scale) <= 0.66 and abs((hi - centre) * scale) <= 0.66


@njit(cache=True)
def px_to_deg(a: FloatArray, centre: float, scale: float, out: FloatArray) -> None:
    """``arctan_deg((a - centre) * scale)`` into ``out`` (may be ``a``), the same bits.

    The reduction of :func:`~pov_pipeline.gaze.geometry.arctan_deg` is made branch-free (one
    division for all three ranges: by 1 it is exact), which lets the loop run in SIMD. Blocks
    go through a small scratch buffer, so converting in place stays vectorized. Gaze within
    about 33 degrees of the screen centre, the usual block, takes the loop without the
    reduction.
    """
    block = np.empty(1024)
    for lo in range(0, a.size, 1024):
        hi = min(lo + 1024, a.size)
        if _within_small_range(a[lo:hi], centre, scale):
            _arctan_deg_small_block(a[lo:hi], centre, scale, block[: hi - lo])
        else:
            _arctan_deg_block(a[lo:hi], centre, scale, block[: hi - lo])
        out[lo:hi] = block[: hi - lo]


def _pairwise_block_py(a: FloatArray, lo: int, n: int) -> float:
    """numpy's pairwise sum of a block of at most 128 values."""
    # A view indexed from zero spares numba's negative-index handling on every read.
    blk = a[lo : lo + n]
    if n < 8:
        res = 0.0
        for i in range(n):
            res += blk[i]
        return res
    r0, r1, r2, r3 = blk[0], blk[1], blk[2], blk[3]
    r4, r5, r6, r7 = blk[4], blk[5], blk[6], blk[7]
    stop = n - (n % 8)
    for i in range(8, stop, 8):
        r0 += blk[i]
        r1 += blk[i + 1]
        r2 += blk[i + 2]
        r3 += blk[i + 3]
        r4 += blk[i + 4]
        r5 += blk[i + 5]
        r6 += blk[i + 6]
        r7 += blk[i + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(stop, n):
        res += blk[i]
    return res


_pairwise_block = njit(cache=True)(_pairwise_block_py)


@njit(cache=True)
def _pairwise_sum(a: FloatArray, lo: int, n: int) -> float:
    """numpy's pairwise summation of ``a[lo:lo + n]`` (its inner loop of ``add`` reductions).

    numpy halves blocks longer than 128 recursively. The first levels (up to about a thousand
    values: every event) are unrolled into plain calls; longer runs walk the same tree with an
    explicit stack (numba's on-disk cache does not hold self-recursive functions reliably).
    """
    if n <= 128:
        return _pairwise_block(a, lo, n)
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_level1(a, lo, n2) + _pairwise_level1(a, lo + n2, n - n2)


@njit(cache=True)
def _pairwise_level1(a: FloatArray, lo: int, n: int) -> float:
    if n <= 128:
        return _pairwise_block(a, lo, n)
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_level2(a, lo, n2) + _pairwise_level2(a, lo + n2, n - n2)


@njit(cache=True)
def _pairwise_level2(a: FloatArray, lo: int, n: int) -> float:
    if n <= 128:
        return _pairwise_block(a, lo, n)
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_stack(a, lo, n2) + _pairwise_stack(a, lo + n2, n - n2)


@njit(cache=True)
def _pairwise_stack(a: FloatArray, lo: int, n: int) -> float:
    """The pairwise tree of any size, walked with an explicit stack."""
    if n <= 128:
        return _pairwise_block(a, lo, n)
    node_lo = np.empty(128, dtype=np.int64)
    node_n = np.empty(128, dtype=np.int64)
    node_state = np.zeros(128, dtype=np.int64)
    vals = np.empty(128)
    top = 0
    nv = 0
    node_lo[0], node_n[0], node_state[0] = lo, n, 0
    while top >= 0:
        cl, cn = node_lo[top], node_n[top]
        if cn <= 128:
            vals[nv] = _pairwise_block(a, cl, cn)
            nv += 1
            top -= 1
            continue
        n2 = cn // 2
        n2 -= n2 % 8
        st = node_state[top]
        if st == 0:
            node_state[top] = 1
            top += 1
            node_lo[top], node_n[top], node_state[top] = cl, n2, 0
        elif st == 1:
            node_state[top] = 2
            top += 1
            node_lo[top], node_n[top], node_state[top] = cl + n2, cn - n2, 0
        else:
            right = vals[nv - 1]
            left = vals[nv - 2]
            nv -= 2
            vals[nv] = left + right
            nv += 1
            top -= 1
    return vals[0]


@njit(cache=True)
def _reduceat_sum(a: FloatArray, lo: int, n: int) -> float:
    """``np.add.reduceat`` of one segment: the first value plus the pairwise sum of the rest."""
    return a[lo] + _pairwise_sum(a, lo + 1, n - 1)


@njit(cache=True)
def _middle(s: FloatArray, lo: int, n: int) -> float:
    """``np.median`` of the sorted values ``s[lo:lo + n]``."""
    k = n // 2
    if n % 2:
        return s[lo + k]
    return (s[lo + k - 1] + s[lo + k]) / 2.0


@njit(cache=True)
def _kth_deviation(s: FloatArray, lo: int, n: int, mid: float, k: int) -> float:
    """``k``-th smallest of ``abs(s[lo:lo + n] - mid)`` for sorted ``s``, without sorting.

    The deviations below ``mid`` (read backwards) and those at or above it are two sorted
    sequences; a binary search for how many of the ``k + 1`` smallest come from each gives the
    value ``np.partition`` would in ``O(log n)``.
    """
    split = lo + np.searchsorted(s[lo : lo + n], mid)
    n_left = split - lo
    n_right = lo + n - split
    take = k + 1
    i_lo = max(0, take - n_right)
    i_hi = min(take, n_left)
    # Smallest count i from the left for which the right's last taken value is not above the
    # left's next one: the predicate is monotone since both sequences increase.
    while i_lo < i_hi:
        i = (i_lo + i_hi) // 2
        j = take - i
        if abs(s[split + j - 1] - mid) > abs(s[split - 1 - i] - mid):
            i_lo = i + 1
        else:
            i_hi = i
    i = i_lo
    j = take - i
    val = -np.inf
    if i > 0:
        val = abs(s[split - i] - mid)
    if j > 0:
        val = max(val, abs(s[split + j - 1] - mid))
    return val


@njit(cache=True)
def _median_and_mad(s: FloatArray, lo: int, n: int) -> tuple[float, float]:
    """Median of sorted ``s[lo:lo + n]`` and the median of the absolute deviations from it."""
    mid = _middle(s, lo, n)
    k = n // 2
    if n % 2:
        return mid, _kth_deviation(s, lo, n, mid, k)
    return mid, (_kth_deviation(s, lo, n, mid, k - 1) + _kth_deviation(s, lo, n, mid, k)) / 2.0


@njit(cache=True)
def _subset_stride(count: int) -> int:
    """Stride of ``detection._strided_subset``: thin ``count`` kept values to the cap."""
    if count > THRESHOLD_SAMPLE_CAP:
        return (count + THRESHOLD_SAMPLE_CAP - 1) // THRESHOLD_SAMPLE_CAP
    return 1


@njit(cache=True)
def _exact_median(a: FloatArray) -> float:
    """``np.median`` of NaN-free ``a`` (via a strided guess verified by counting, when large)."""
    n = a.size
    if n < 64:
        s = np.sort(a)
        return _middle(s, 0, n)
    # Regular sampling makes nearly all intervals equal: a guess from a strided subset is then
    # the median, which counting confirms (or refutes, and the full sort decides).
    sub = np.sort(a[:: n // (1024 if n >= _MEDIAN_EXACT_MIN else 32)])
    guess = _middle(sub, 0, sub.size)
    below = 0
    equal = 0
    for i in range(n):
        if a[i] < guess:
            below += 1
        elif a[i] == guess:
            equal += 1
    if below <= (n - 1) // 2 and below + equal > n // 2:
        return guess
    s = np.sort(a)
    return _middle(s, 0, n)


@njit(cache=True)
def _samples(duration_ms: float, dt_us: float) -> int:
    """``max(1, round(duration_ms * 1000 / dt_us))`` with Python's round-half-even."""
    return max(1, int(np.rint(duration_ms * 1000.0 / dt_us)))


@njit(cache=True)
def _duration_ms(t: FloatArray, s: int, e: int, hi: int, dt_us: float) -> float:
    """Duration of ``[s, e)`` in a trial ending at ``hi``: to the next sample, or one interval."""
    t_after = t[e] if e < hi else t[hi - 1] + dt_us
    return (t_after - t[s]) / 1000.0


@njit(cache=True)
def _merge_sorted(s: IntArray, e: IntArray, n: int) -> tuple[IntArray, IntArray]:
    """Union of intervals ``[s, e)`` clipped to ``[0, n)`` as sorted disjoint runs."""
    m = s.size
    cs = np.empty(m, dtype=np.intp)
    ce = np.empty(m, dtype=np.intp)
    c = 0
    for i in range(m):
        a = min(max(s[i], 0), n)
        b = min(max(e[i], 0), n)
        if b > a:
            cs[c] = a
            ce[c] = b
            c += 1
    cs, ce = cs[:c], ce[:c]
    ordered = True
    for i in range(1, c):
        ordered &= cs[i - 1] <= cs[i]
    if not ordered:
        # The callers' intervals nearly always come in order already: a stable sort is the
        # identity then, and its allocations are spared.
        order = np.argsort(cs, kind="mergesort")
        cs, ce = cs[order], ce[order]
    rs = np.empty(c, dtype=np.intp)
    re = np.empty(c, dtype=np.intp)
    r = 0
    for i in range(c):
        if r > 0 and cs[i] <= re[r - 1]:
            re[r - 1] = max(re[r - 1], ce[i])
        else:
            rs[r] = cs[i]
            re[r] = ce[i]
            r += 1
    return rs[:r], re[:r]


@njit(cache=True)
def _runs_above(a: FloatArray, thr: float) -> tuple[IntArray, IntArray]:
    """Start and end indices of the runs of ``a > thr`` (NaN is not above), in one pass."""
    n = a.size
    # A run takes at least two samples of the mask (itself and a gap), so this bounds the count;
    # untouched pages of the buffers are never faulted in.
    rs = np.empty((n + 1) // 2, dtype=np.intp)
    re = np.empty((n + 1) // 2, dtype=np.intp)
    c = 0
    inside = False
    for i in range(n):
        hi = a[i] > thr
        if hi and not inside:
            rs[c] = i
        elif inside and not hi:
            re[c] = i
            c += 1
        inside = hi
    if inside:
        re[c] = n
        c += 1
    return rs[:c], re[:c]


@njit(cache=True)
def _peak_edges(step: FloatArray, s_on: float, ps: IntArray, pe: IntArray) -> tuple[IntArray, IntArray]:
    """Widen the peaks ``[ps, pe)`` back and forth to the samples reached slowly (``step < s_on``).

    Onset: one past the last slow sample before the peak (0 when none); offset: the first slow
    sample at or after its end (``n`` when none). Each scan stops at the neighbouring peak and
    takes that peak's answer when it finds nothing, so all scans together cost one pass.
    """
    n = step.size
    m = ps.size
    onset = np.empty(m, dtype=np.intp)
    offset = np.empty(m, dtype=np.intp)
    prev = 0
    for r in range(m):
        a = ps[r]
        stop = ps[r - 1] if r > 0 else 0
        o = prev if r > 0 else 0
        for i in range(a - 1, stop - 1, -1):
            if not step[i] >= s_on:
                o = i + 1
                break
        onset[r] = min(o, a)
        prev = o
    nxt = n
    for r in range(m - 1, -1, -1):
        b = pe[r]
        stop = pe[r + 1] if r < m - 1 else n
        f = nxt if r < m - 1 else n
        for i in range(b, stop):
            if not step[i] >= s_on:
                f = i
                break
        offset[r] = max(f, b)
        nxt = f
    return onset, offset


@njit(cache=True)
def _window_mean(
    xd: FloatArray, yd: FloatArray, lo: int, hi: int, k: int, buf: FloatArray
) -> tuple[float, float, int]:
    """Mean of the finite positions in ``[lo, hi)`` (at most ``k``), summed as numpy sums a row."""
    n = xd.size
    cnt = 0
    for j in range(k):
        idx = min(lo + j, n - 1)
        ok = lo + j < hi and np.isfinite(xd[idx]) and np.isfinite(yd[idx])
        buf[j] = xd[idx] if ok else 0.0
        buf[k + j] = yd[idx] if ok else 0.0
        if ok:
            cnt += 1
    denom = max(cnt, 1)
    return _pairwise_sum(buf, 0, k) / denom, _pairwise_sum(buf, k, k) / denom, cnt


@njit(cache=True)
def _discard_and_absorb(lab: Int8Array, t: FloatArray, dt_us: float, min_ms: float) -> None:
    """``_discard_short`` then the reference's ``_absorb_into_blinks``, in one walk over the runs.

    Short fixations become unclassified, then every maximal stretch of saccade, PSO and
    unclassified samples next to a blink becomes blink. The reference also absorbs once before
    discarding; that pass changes no fixation run and only blinks part of a stretch that this
    one blinks whole, so it is left out. One walk instead of three per trial.
    """
    n = lab.size
    words = lab[: n // 8 * 8].view(np.uint64)
    stretch = -1  # start of the open stretch of absorbable samples, -1 when none
    after_blink = False
    i = 0
    while i < n:
        c = lab[i]
        s = i
        # Relabelling only touches samples before i: the words ahead are still current.
        i = _run_end(lab, words, s, n)
        if c == FIXATION and _duration_ms(t, s, i, n, dt_us) < min_ms - 1e-9:
            lab[s:i] = UNCLASSIFIED
            c = UNCLASSIFIED
        if c in (SACCADE, PSO, UNCLASSIFIED):
            if stretch < 0:
                stretch = s
                after_blink = s > 0 and lab[s - 1] == BLINK
            continue
        if stretch >= 0 and (after_blink or c == BLINK):
            lab[stretch:s] = BLINK
        stretch = -1
    if stretch >= 0 and after_blink:
        lab[stretch:n] = BLINK


@njit(cache=True)
def _init_labels(lost: BoolArray, lab: Int8Array) -> tuple[IntArray, IntArray]:
    """Label lost samples LOST, the others FIXATION, and return the runs of lost samples.

    Marking the lost samples first (the reference marks them after the saccades and PSOs, which
    then skip them) spares a pass over the labels.
    """
    for i in range(lost.size):
        lab[i] = LOST if lost[i] else FIXATION
    return _true_runs(lost)


@njit(cache=True)
def _true_runs(mask: BoolArray) -> tuple[IntArray, IntArray]:
    """Start and end indices of the runs of ``True`` in ``mask``.

    Most samples are not lost: the stretches between runs are skipped eight flags per
    comparison (``mask`` read as 8-byte words), where a per-sample walk costs a compare and a
    branch per sample.
    """
    n = mask.size
    words = mask[: n // 8 * 8].view(np.uint64)
    rs = np.empty((n + 1) // 2, dtype=np.intp)
    re = np.empty((n + 1) // 2, dtype=np.intp)
    c = 0
    i = 0
    while i < n:
        if not mask[i]:
            i += 1
            if i % 8 == 0:
                w = i // 8
                while w < words.size and words[w] == 0:
                    w += 1
                i = w * 8
            continue
        rs[c] = i
        while i < n and mask[i]:
            i += 1
        re[c] = i
        c += 1
    return rs[:c], re[:c]


@njit(cache=True)
def _paint_unlost(lab: Int8Array, lo: int, hi: int, code: int) -> None:
    """``lab[lo:hi] = code`` except on lost samples (see :func:`_init_labels`)."""
    for i in range(lo, hi):
        if lab[i] != LOST:
            lab[i] = code


@njit(cache=True)
def _discard_short(lab: Int8Array, t: FloatArray, dt_us: float, min_ms: float) -> None:
    n = lab.size
    i = 0
    while i < n:
        if lab[i] != FIXATION:
            i += 1
            continue
        s = i
        while i < n and lab[i] == FIXATION:
            i += 1
        if _duration_ms(t, s, i, n, dt_us) < min_ms - 1e-9:
            lab[s:i] = UNCLASSIFIED


# --------------------------------------------------------------------------------------------
# Shared frame kernels
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def trial_rates(t: FloatArray, bounds: IntArray) -> tuple[FloatArray, int]:
    """Sampling rate of every trial (``1e6 / median`` of its positive intervals; NaN when none).

    Returns the rates and the index of the first trial whose stamps do not strictly increase
    (``-1`` when all do).
    """
    n_tr = bounds.size - 1
    rates = np.full(n_tr, np.nan)
    bad_trial = -1
    for k in range(n_tr):
        a, b = bounds[k], bounds[k + 1]
        if b - a < 2:
            continue
        # Regular sampling, the usual case: every interval equals the first, which is then
        # their median. One vector-code count over the trial instead of a copy and a median.
        d0 = t[a + 1] - t[a]
        ta, tb = t[a : b - 1], t[a + 1 : b]
        same = 0
        for i in range(b - a - 1):
            same += (tb[i] - ta[i]) == d0
        if d0 > 0 and same == b - a - 1:
            rates[k] = 1e6 / d0
            continue
        d = np.empty(b - a - 1)
        m = 0
        for i in range(a + 1, b):
            di = t[i] - t[i - 1]
            if di > 0:
                d[m] = di
                m += 1
            elif bad_trial < 0:
                bad_trial = k
        if m:
            rates[k] = 1e6 / _exact_median(d[:m])
    return rates, bad_trial


@njit(cache=True)
def blank_and_fill(
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    bounds: IntArray,
    dt_us: FloatArray,
    width_px: float,
    height_px: float,
    margin_fraction: float,
    blank_offscreen: bool,
    max_gap_ms: float,
) -> tuple[FloatArray, FloatArray, BoolArray, BoolArray]:
    """Blank off-screen samples (optionally), then interpolate short lost runs, into new arrays.

    ``x`` and ``y`` (pixels) are only read: the blanked and filled positions are written to
    fresh arrays in the pass that reads them, which spares the caller a copy of each.

    Returns the blanked and filled ``x`` and ``y``, the mask of blanked off-screen samples and
    the mask of samples still lost after filling (as ``fill_gaps_inplace`` reports it).
    """
    n = t.size
    xo = np.empty(n)
    yo = np.empty(n)
    off = np.empty(n, dtype=np.bool_)
    lost = np.empty(n, dtype=np.bool_)
    mx = margin_fraction * width_px
    my = margin_fraction * height_px
    lo_x, hi_x = -mx, width_px + mx
    lo_y, hi_y = -my, height_px + my
    # Flags and selects instead of branches: the pass compiles to vector code.
    for i in range(n):
        xi, yi = x[i], y[i]
        o = blank_offscreen & ((xi < lo_x) | (xi > hi_x) | (yi < lo_y) | (yi > hi_y))
        gone = o | (xi != xi) | (yi != yi)
        off[i] = o
        lost[i] = gone
        xo[i] = np.nan if gone else xi
        yo[i] = np.nan if gone else yi
    for k in range(bounds.size - 1):
        a, b = bounds[k], bounds[k + 1]
        # Filling a run clears only that run's flags: the runs found up front stay valid.
        rs, re = _true_runs(lost[a:b])
        for r in range(rs.size):
            s, e = a + rs[r], a + re[r]
            if s == a or e == b:
                continue
            gap_ms = (t[e] - t[s - 1] - dt_us[k]) / 1000.0
            if not gap_ms <= max_gap_ms + 1e-9:
                continue
            t0, t1 = t[s - 1], t[e]
            for arr in (xo, yo):
                f0, f1 = arr[s - 1], arr[e]
                slope = (f1 - f0) / (t1 - t0)
                for j in range(s, e):
                    tj = t[j]
                    # np.interp's arithmetic, its special cases included.
                    if tj == t0:
                        val = f0
                    elif tj == t1:
                        val = f1
                    else:
                        val = slope * (tj - t0) + f0
                        if np.isnan(val):
                            val = slope * (tj - t1) + f1
                            if np.isnan(val) and f0 == f1:
                                val = f0
                    arr[j] = val
            for j in range(s, e):
                lost[j] = False
    return xo, yo, off, lost


# numpy's error model: no zero-divisor check on the mean's count (1 to 3), so the loop
# compiles to vector code.
@njit(cache=True, error_model="numpy")
def median3(a: FloatArray, bounds: IntArray) -> FloatArray:
    """NaN-aware centred median of three within each trial (``moving_median(..., 3)``)."""
    out = np.empty_like(a)
    for k in range(bounds.size - 1):
        lo, hi = bounds[k], bounds[k + 1]
        out[lo] = a[lo]
        out[hi - 1] = a[hi - 1]
        if hi - lo < 3:
            continue
        # Shifted views indexed from zero: the loop compiles to vector code (plain compares
        # and selects; numba's min and max and bool arithmetic keep it scalar). A window with
        # a NaN takes moving_median's answer, so blinks need no second pass: NaN at a NaN
        # centre, else the mean of the valid values (summed from 0.0 in window order).
        prev, cur, nxt, dst = a[lo : hi - 2], a[lo + 1 : hi - 1], a[lo + 2 : hi], out[lo + 1 : hi - 1]
        for j in range(hi - lo - 2):
            p, c, q = prev[j], cur[j], nxt[j]
            p_ok = p == p
            q_ok = q == q
            small = p if p < c else c
            large = c if p < c else p
            med = small if small > q else (q if q < large else large)
            count = 3.0 - (0.0 if p_ok else 1.0) - (0.0 if q_ok else 1.0)
            mean = (((0.0 + (p if p_ok else 0.0)) + c) + (q if q_ok else 0.0)) / count
            dst[j] = med if p_ok & q_ok & (c == c) else mean
    return out


@njit(cache=True)
def savgol_assemble(
    core: FloatArray, core_offset: int, out: FloatArray, bounds: IntArray, trials: IntArray, window: int
) -> None:
    """Copy a 'valid' convolution of the frame into the selected trials, edges held per trial.

    ``core[j - core_offset]`` is the full-window value centred on frame sample ``j + window // 2``.
    A trial shorter than the window gets NaN (a derivative has no value there).
    """
    half = window // 2
    for k in trials:
        a, b = bounds[k], bounds[k + 1]
        if b - a < window:
            out[a:b] = np.nan
            continue
        first = core[a - core_offset]
        last = core[b - window - core_offset]
        for i in range(a, a + half):
            out[i] = first
        for i in range(a + half, b - half):
            out[i] = core[i - half - core_offset]
        for i in range(b - half, b):
            out[i] = last


@njit(cache=True)
def savgol_speed(
    core_x: FloatArray,
    core_y: FloatArray,
    core_offset: int,
    v: FloatArray,
    bounds: IntArray,
    trials: IntArray,
    window: int,
) -> None:
    """:func:`savgol_assemble` of both velocity components, written as the speed into ``v``.

    The components are never stored: ``v = sqrt(vx * vx + vy * vy)``, per sample, as the
    numpy reference computes it.
    """
    half = window // 2
    for k in trials:
        a, b = bounds[k], bounds[k + 1]
        if b - a < window:
            v[a:b] = np.nan
            continue
        fx = core_x[a - core_offset]
        fy = core_y[a - core_offset]
        first = np.sqrt(fx * fx + fy * fy)
        lx = core_x[b - window - core_offset]
        ly = core_y[b - window - core_offset]
        last = np.sqrt(lx * lx + ly * ly)
        for i in range(a, a + half):
            v[i] = first
        # Shifted views indexed from zero: the loop then compiles to vector code.
        lo = a - core_offset
        cx = core_x[lo : lo + b - a - 2 * half]
        cy = core_y[lo : lo + b - a - 2 * half]
        dst = v[a + half : b - half]
        for i in range(dst.size):
            qx = cx[i] * cx[i]
            qy = cy[i] * cy[i]
            dst[i] = np.sqrt(qx + qy)
        for i in range(b - half, b):
            v[i] = last


@njit(cache=True)
def _finite_subset(v: FloatArray, lo: int, hi: int, out: FloatArray, o: int) -> int:
    """The finite speeds of ``v[lo:hi]``, thinned to the cap (:func:`_subset_stride`), written to ``out[o:]``.

    Returns their count. The copy is branch-free: every value is written, the position only
    advances past kept ones, so ``out`` may be ``v`` itself when ``o <= lo`` (no write lands past
    the sample being read); the thinning then compacts the copy.
    """
    m = 0
    for i in range(lo, hi):
        out[o + m] = v[i]
        m += np.isfinite(v[i])
    return _thin_in_place(out, o, m)


@njit(cache=True)
def _thin_in_place(out: FloatArray, o: int, m: int) -> int:
    """Keep every stride-th of the ``m`` values at ``out[o:]`` (:func:`_subset_stride`), in place."""
    stride = _subset_stride(m)
    if stride == 1:
        return m
    kept = (m + stride - 1) // stride
    # Forward: value j comes from j * stride >= j, which no earlier write has touched.
    for j in range(1, kept):
        out[o + j] = out[o + j * stride]
    return kept


@njit(cache=True)
def masked_float64(a: npt.NDArray[Any], valid: BoolArray) -> FloatArray:
    """``a`` as ``float64``, NaN where not ``valid`` (one pass instead of a cast and a masked store)."""
    out = np.empty(a.size)
    for i in range(a.size):
        out[i] = np.float64(a[i]) if valid[i] else np.nan
    return out


@njit(cache=True)
def code_runs(codes: IntArray) -> tuple[IntArray, IntArray]:
    """Runs of equal values of ``codes``: the value and the length of each run."""
    n = codes.size
    run_codes = np.empty(n, dtype=np.intp)
    run_counts = np.empty(n, dtype=np.intp)
    r = 0
    i = 0
    while i < n:
        c = codes[i]
        rest = codes[i + 1 :]
        j = 0
        while j < rest.size and rest[j] == c:
            j += 1
        run_codes[r] = c
        run_counts[r] = j + 1
        r += 1
        i += j + 1
    return run_codes[:r].copy(), run_counts[:r].copy()


@njit(cache=True)
def run_string_buffers(
    run_codes: IntArray,
    run_counts: IntArray,
    pool: npt.NDArray[np.uint8],
    lengths: IntArray,
    width: int,
    with_offsets: bool = True,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Arrow ``large_string`` offsets and data of ``strings[run_codes[r]]`` repeated ``run_counts[r]`` times.

    ``pool`` holds string ``c`` at ``[c * width, c * width + lengths[c])``. Within a run the
    offsets step by one length and the data is the string repeated: written once and then
    doubled by block copies, which runs at memory speed instead of string by string.
    Without ``with_offsets`` the offsets come back empty (the caller has them already).
    """
    n = 0
    total = 0
    for r in range(run_codes.size):
        n += run_counts[r]
        total += run_counts[r] * lengths[run_codes[r]]
    offsets = np.empty(n + 1 if with_offsets else 0, dtype=np.int64)
    if with_offsets:
        offsets[0] = 0
    data = np.empty(total, dtype=np.uint8)
    i = 0
    o = 0
    for r in range(run_codes.size):
        c = run_codes[r]
        cnt = run_counts[r]
        size_one = lengths[c]
        if with_offsets:
            seg = offsets[i + 1 : i + 1 + cnt]
            for q in range(cnt):
                seg[q] = o + size_one * (q + 1)
        size = cnt * size_one
        if size:
            # Element loops, not slice assignments: numba compiles an array-to-array slice
            # assignment to a generic strided copy, ten times slower on bytes than these loops.
            run = data[o : o + size]
            src = pool[c * width : c * width + size_one]
            for q in range(size_one):
                run[q] = src[q]
            filled = size_one
            while filled < size:
                m = min(filled, size - filled)
                dst = run[filled : filled + m]
                for q in range(m):
                    dst[q] = run[q]
                filled += m
        i += cnt
        o += size
    return offsets, data


@njit(cache=True)
def _repeats(
    data: npt.NDArray[np.uint8],
    words: npt.NDArray[np.uint64],
    a: int,
    e: int,
    m: int,
    pool: npt.NDArray[np.uint8],
    base: int,
) -> bool:
    """Whether ``data[a:e]`` (a multiple of ``m > 0`` bytes) is ``pool[base:base + m]`` repeated.

    ``words`` is ``data`` read as 8-byte words. The first ``8 * m`` bytes (a whole number of
    strings and of words) are compared byte by byte; past them every aligned word is compared
    with the word ``8 * m`` bytes before it, and the bytes after the last whole word with the
    string before: together, a proof that the block repeats the candidate. Whole words compare
    eight bytes per lane where bytes widen to one per lane (0.05 instead of 0.32 ms for 1.8 MB).
    """
    p = 8 * m
    head = min(e, max(a + p, ((a + 7) // 8) * 8 + p))
    diff = 0
    for q in range(a, head):
        diff |= data[q] ^ pool[base + (q - a) % m]
    w0 = max((head - p) // 8, (a + 7) // 8)
    w1 = e // 8
    acc = np.uint64(0)
    if w1 - m > w0:
        # Two views and a range index: the loop then compiles to vector code.
        later = words[w0 + m : w1]
        earlier = words[w0 : w1 - m]
        for q in range(later.size):
            acc |= later[q] ^ earlier[q]
    for q in range(max(head, w1 * 8), e):
        diff |= data[q] ^ data[q - m]
    return diff == 0 and acc == 0


@njit(cache=True)
def match_strings(
    offsets: npt.NDArray[np.int32] | npt.NDArray[np.int64],
    data: npt.NDArray[np.uint8],
    words: npt.NDArray[np.uint64],
    pool: npt.NDArray[np.uint8],
    lengths: IntArray,
    width: int,
    out: IntArray,
    seen: BoolArray,
) -> bool:
    """Code each string of an Arrow string array by the candidate it equals, into ``out``.

    ``seen[c]`` is set for every candidate found.

    String ``i`` is ``data[offsets[i]:offsets[i + 1]]`` (``words``: ``data`` read as whole 8-byte
    words), candidate ``c`` is
    ``pool[c * width : c * width + lengths[c]]``; the candidates must differ in length (else
    False). Returns False as soon as a string equals no candidate.

    Key columns come in long runs of one value. A run of strings of one length is that
    candidate repeated (:func:`_repeats`): one branch-free comparison over the block, instead of
    a hash or a string comparison per row.
    """
    n_cand = lengths.size
    if n_cand == 0:
        return out.size == 0
    by_len = np.full(int(lengths.max()) + 2, -1, dtype=np.intp)
    for c in range(n_cand):
        if by_len[lengths[c]] != -1:
            return False
        by_len[lengths[c]] = c
    max_len = by_len.size - 1
    n = out.size
    i = 0
    while i < n:
        m = offsets[i + 1] - offsets[i]
        c = by_len[min(m, max_len)]
        if c < 0:
            return False
        j = i + 1
        # The run's end: whole blocks of lengths are checked with vector code, only the block
        # where it ends is scanned one by one.
        while j < n:
            stop = min(j + 256, n)
            nxt, cur = offsets[j + 1 : stop + 1], offsets[j:stop]
            other = False
            for q in range(stop - j):
                other |= nxt[q] - cur[q] != m
            if other:
                while offsets[j + 1] - offsets[j] == m:
                    j += 1
                break
            j = stop
        if m and not _repeats(data, words, offsets[i], offsets[j], m, pool, c * width):
            return False
        out[i:j] = c
        seen[c] = True
        i = j
    return True


@njit(cache=True)
def frame_layout(
    part: IntArray, trial: npt.NDArray[np.int64], eye: IntArray, t: npt.NDArray[np.int64]
) -> tuple[bool, IntArray]:
    """Whether rows are sorted by (participant, trial, eye, t) and, if so, the trial bounds.

    A trial is a run of equal (participant, trial); the bounds are its first rows plus the row
    count. One pass instead of a ``diff`` and a comparison array per key.
    """
    n = part.size
    starts = np.empty(n + 1, dtype=np.intp)
    starts[0] = 0
    m = 1
    for i in range(1, n):
        if part[i] != part[i - 1]:
            if part[i] < part[i - 1]:
                return False, starts[:0]
        elif trial[i] != trial[i - 1]:
            if trial[i] < trial[i - 1]:
                return False, starts[:0]
        elif eye[i] != eye[i - 1]:
            if eye[i] < eye[i - 1]:
                return False, starts[:0]
            continue
        elif t[i] < t[i - 1]:
            return False, starts[:0]
        else:
            continue
        starts[m] = i
        m += 1
    starts[m] = n
    return True, starts[: m + 1].copy()


@njit(cache=True)
def combine_aligned_eyes(
    t: npt.NDArray[np.int64],
    x: npt.NDArray[np.floating],
    y: npt.NDArray[np.floating],
    valid: BoolArray,
    eye: IntArray,
    bounds: IntArray,
) -> tuple[BoolArray, IntArray, npt.NDArray[np.int64], FloatArray, FloatArray]:
    """Tobii "average" eye of binocular trials laid out as a left block then a right block.

    A trial qualifies when its first half is eye code 0, its second half eye code 1 and both
    halves have the same time stamps; returns that flag per trial, the new trial bounds and the
    combined ``t``/``x``/``y`` (qualifying trials halve and keep the time stamps of their first
    half, the others are copied through unchanged). Positions are read as ``float64``, NaN where
    not ``valid`` (:func:`masked_float64` folded into this pass).
    """
    n_tr = bounds.size - 1
    ok = np.zeros(n_tr, dtype=np.bool_)
    new_bounds = np.empty(n_tr + 1, dtype=np.intp)
    new_bounds[0] = 0
    for k in range(n_tr):
        a, b = bounds[k], bounds[k + 1]
        m = b - a
        good = m % 2 == 0 and m > 0
        if good:
            h = m // 2
            # No early exit: the whole-trial test compiles to vector code and trials nearly
            # always qualify.
            el, er, tl, tr = eye[a : a + h], eye[a + h : b], t[a : a + h], t[a + h : b]
            bad = False
            for i in range(h):
                bad |= (el[i] != 0) | (er[i] != 1) | (tl[i] != tr[i])
            good = not bad
        ok[k] = good
        new_bounds[k + 1] = new_bounds[k] + (m // 2 if good else m)
    n_out = new_bounds[n_tr]
    to = np.empty(n_out, dtype=np.int64)
    xo = np.empty(n_out)
    yo = np.empty(n_out)
    for k in range(n_tr):
        a, b = bounds[k], bounds[k + 1]
        o = new_bounds[k]
        if not ok[k]:
            for i in range(b - a):
                to[o + i] = t[a + i]
                xo[o + i] = np.float64(x[a + i]) if valid[a + i] else np.nan
                yo[o + i] = np.float64(y[a + i]) if valid[a + i] else np.nan
            continue
        h = (b - a) // 2
        lxs, lys, rxs, rys = x[a : a + h], y[a : a + h], x[a + h : b], y[a + h : b]
        lvs, rvs = valid[a : a + h], valid[a + h : b]
        ts, dt, dx, dy = t[a : a + h], to[o : o + h], xo[o : o + h], yo[o : o + h]
        for i in range(h):
            lx = np.float64(lxs[i]) if lvs[i] else np.nan
            ly = np.float64(lys[i]) if lvs[i] else np.nan
            rx = np.float64(rxs[i]) if rvs[i] else np.nan
            ry = np.float64(rys[i]) if rvs[i] else np.nan
            l_ok = (lx == lx) & (ly == ly)
            r_ok = (rx == rx) & (ry == ry)
            # Selects instead of branches: the mean where both eyes are valid, else the valid
            # eye, else NaN.
            one_x = lx if l_ok else rx
            one_y = ly if l_ok else ry
            dt[i] = ts[i]
            dx[i] = 0.5 * (lx + rx) if (l_ok & r_ok) else (one_x if (l_ok | r_ok) else np.nan)
            dy[i] = 0.5 * (ly + ry) if (l_ok & r_ok) else (one_y if (l_ok | r_ok) else np.nan)
    return ok, new_bounds, to, xo, yo


# Order-preserving integer keys of float64 values: the bits read as int64, the non-sign bits of
# negative values flipped. Keys compare as the values do (-0.0 below +0.0, NaN beyond the
# infinities), and integer maxima and minima compile to vector code where the float selects
# of a NaN-propagating reduction do not. The transform is its own inverse.
_KEY_FLIP = np.int64(0x7FFF_FFFF_FFFF_FFFF)
_KEY_LOW = np.int64(-0x8000_0000_0000_0000)  # below every key
_KEY_HIGH = np.int64(0x7FFF_FFFF_FFFF_FFFF)  # above every key
_KEY_POS_INF = np.int64(0x7FF0_0000_0000_0000)  # key of +inf
_KEY_NEG_INF = np.int64(-0x7FF0_0000_0000_0001)  # key of -inf


@njit(inline="always")
def _run_end(lab: Int8Array, words: npt.NDArray[np.uint64], s: int, b: int) -> int:
    """End of the run of ``lab[s]`` that starts at ``s`` (at most ``b``).

    ``words`` is ``lab`` read as 8-byte words: past the first word boundary the run is followed
    eight labels per comparison.
    """
    c = lab[s]
    e = s + 1
    stop = min(b, (e + 7) // 8 * 8)
    while e < stop and lab[e] == c:
        e += 1
    if e < stop or e >= b:
        return e
    pattern = np.uint64(np.uint8(c)) * np.uint64(0x0101_0101_0101_0101)
    w = e // 8
    w_end = b // 8
    while w < w_end and words[w] == pattern:
        w += 1
    e = w * 8
    while e < b and lab[e] == c:
        e += 1
    return e


@njit(inline="always")
def _run_keys(
    x: FloatArray,
    y: FloatArray,
    xd_bits: npt.NDArray[np.int64],
    yd_bits: npt.NDArray[np.int64],
    v: FloatArray,
    v_bits: npt.NDArray[np.int64],
    s: int,
    e: int,
) -> tuple[int, int, int, int, int, int]:
    """One vectorized pass over the run ``[s, e)``.

    Returns the count of lost samples (``x`` or ``y`` NaN), the largest and smallest key of
    ``xd`` and of ``yd`` (a NaN among them shows as a key beyond the infinities), and the
    largest raw bits of the non-NaN speeds (``_KEY_LOW`` when all are NaN). The raw bits of
    non-negative values are their keys, so a positive maximum is the largest speed; the
    caller redoes the rare runs whose maximum is not positive.
    """
    rx, ry, rv = x[s:e], y[s:e], v[s:e]
    kx, ky, kv = xd_bits[s:e], yd_bits[s:e], v_bits[s:e]
    nbad = 0
    hx = hy = pk = _KEY_LOW
    lx = ly = _KEY_HIGH
    for i in range(e - s):
        nbad += (rx[i] != rx[i]) | (ry[i] != ry[i])
        bits = kx[i]
        key = bits ^ ((bits >> 63) & _KEY_FLIP)
        hx = max(hx, key)
        lx = min(lx, key)
        bits = ky[i]
        key = bits ^ ((bits >> 63) & _KEY_FLIP)
        hy = max(hy, key)
        ly = min(ly, key)
        pk = max(pk, kv[i] if rv[i] == rv[i] else _KEY_LOW)
    return nbad, hx, lx, hy, ly, pk


@njit(cache=True)
def _valid_keys(
    x: FloatArray, y: FloatArray, a: FloatArray, a_bits: npt.NDArray[np.int64], s: int, e: int
) -> tuple[int, int]:
    """Largest and smallest key of ``a`` over the samples of ``[s, e)`` where ``x``, ``y`` and
    ``a`` are all valid (``_KEY_LOW``, ``_KEY_HIGH`` when there is none)."""
    rx, ry, ra, ka = x[s:e], y[s:e], a[s:e], a_bits[s:e]
    hi = _KEY_LOW
    lo = _KEY_HIGH
    for i in range(e - s):
        ok = (rx[i] == rx[i]) & (ry[i] == ry[i]) & (ra[i] == ra[i])
        bits = ka[i]
        key = bits ^ ((bits >> 63) & _KEY_FLIP)
        hi = max(hi, key if ok else _KEY_LOW)
        lo = min(lo, key if ok else _KEY_HIGH)
    return hi, lo


@njit(inline="always")
def _key_value(key: int, cell: npt.NDArray[np.int64], cell_f: FloatArray) -> float:
    """The float64 of a key (``cell_f`` is ``cell`` read as float64)."""
    cell[0] = key ^ ((key >> 63) & _KEY_FLIP)
    return cell_f[0]


@njit(cache=True)
def _run_peak(v: FloatArray, s: int, e: int) -> float:
    """``np.fmax`` reduction of ``v[s:e]``: the largest non-NaN value, NaN when none."""
    peak = -np.inf
    any_speed = False
    for i in range(s, e):
        val = v[i]
        peak = val if val > peak else peak
        any_speed |= val == val
    return peak if any_speed else np.nan


@njit(inline="always")
def _pairwise_block2(a: FloatArray, b: FloatArray, lo: int, n: int) -> tuple[float, float]:
    """numpy's pairwise sum of a block (``n <= 128``) of ``a`` and of ``b`` over ``[lo, lo + n)``
    in one loop: the additions of :func:`_pairwise_block_py` in its order, twice the independent
    work per step (a block of fewer than 8 starts from -0.0, as numpy's does)."""
    p = a[lo : lo + n]
    q = b[lo : lo + n]
    if n < 8:
        # numpy starts short blocks from -0.0, the additive identity that keeps a sum of
        # negative zeros negative (-0.0 + x is x for every other x).
        ra = -0.0
        rb = -0.0
        for i in range(n):
            ra += p[i]
            rb += q[i]
        return ra, rb
    a0, a1, a2, a3, a4, a5, a6, a7 = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    b0, b1, b2, b3, b4, b5, b6, b7 = q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]
    stop = n - (n % 8)
    for i in range(8, stop, 8):
        # Windows indexed by constants: no negative-index fix-up per read.
        u = p[i : i + 8]
        w = q[i : i + 8]
        a0 += u[0]
        a1 += u[1]
        a2 += u[2]
        a3 += u[3]
        a4 += u[4]
        a5 += u[5]
        a6 += u[6]
        a7 += u[7]
        b0 += w[0]
        b1 += w[1]
        b2 += w[2]
        b3 += w[3]
        b4 += w[4]
        b5 += w[5]
        b6 += w[6]
        b7 += w[7]
    ra = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    rb = ((b0 + b1) + (b2 + b3)) + ((b4 + b5) + (b6 + b7))
    for i in range(stop, n):
        ra += p[i]
        rb += q[i]
    return ra, rb


@njit(cache=True)
def _pairwise4(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    d: FloatArray,
    lo: int,
    n: int,
    stack: npt.NDArray[np.int64],
    vals: FloatArray,
) -> tuple[float, float, float, float]:
    """:func:`_pairwise_sum` of four arrays over the same ``[lo, lo + n)``, in one walk of the tree.

    The tree is walked with an explicit stack (``stack``: ``(64, 3)`` node start, size and
    state; ``vals``: ``(64, 4)`` partial sums), left child before right as numpy recurses.
    """
    if n <= 128:
        sa, sb = _pairwise_block2(a, b, lo, n)
        sc, sd = _pairwise_block2(c, d, lo, n)
        return sa, sb, sc, sd
    top = 0
    nv = 0
    stack[0, 0], stack[0, 1], stack[0, 2] = lo, n, 0
    while top >= 0:
        cl, cn, state = stack[top, 0], stack[top, 1], stack[top, 2]
        if cn <= 128:
            vals[nv, 0], vals[nv, 1] = _pairwise_block2(a, b, cl, cn)
            vals[nv, 2], vals[nv, 3] = _pairwise_block2(c, d, cl, cn)
            nv += 1
            top -= 1
            continue
        n2 = cn // 2
        n2 -= n2 % 8
        if state == 0:
            stack[top, 2] = 1
            top += 1
            stack[top, 0], stack[top, 1], stack[top, 2] = cl, n2, 0
        elif state == 1:
            stack[top, 2] = 2
            top += 1
            stack[top, 0], stack[top, 1], stack[top, 2] = cl + n2, cn - n2, 0
        else:
            for j in range(4):
                vals[nv - 2, j] = vals[nv - 2, j] + vals[nv - 1, j]
            nv -= 1
            top -= 1
    return vals[0, 0], vals[0, 1], vals[0, 2], vals[0, 3]


@njit(cache=True)
def _run_mean(
    x: FloatArray,
    y: FloatArray,
    xd: FloatArray,
    yd: FloatArray,
    s: int,
    m: int,
    cnt: int,
    buf: FloatArray,
    stack: npt.NDArray[np.int64],
    vals: FloatArray,
) -> tuple[float, float, float, float]:
    """``mean_of`` of ``_event_columns`` for the four columns of a dirty run ``[s, s + m)``.

    ``cnt`` is the number of valid samples (``x`` and ``y`` not NaN). The lost samples count as
    absent: the values go through ``buf`` (``(4, >= m)``), zero where lost, and are summed as
    the reference sums them (``np.add.reduceat``). NaN when none is valid.
    """
    if cnt == 0:
        return np.nan, np.nan, np.nan, np.nan
    for i in range(m):
        ok = not (np.isnan(x[s + i]) or np.isnan(y[s + i]))
        buf[0, i] = x[s + i] if ok else 0.0
        buf[1, i] = y[s + i] if ok else 0.0
        buf[2, i] = xd[s + i] if ok else 0.0
        buf[3, i] = yd[s + i] if ok else 0.0
    a, b, c, d = buf[0], buf[1], buf[2], buf[3]
    sa, sb, sc, sd = _pairwise4(a, b, c, d, 1, m - 1, stack, vals)
    return (a[0] + sa) / cnt, (b[0] + sb) / cnt, (c[0] + sc) / cnt, (d[0] + sd) / cnt


@njit(cache=True)
def _run_span(
    x: FloatArray,
    y: FloatArray,
    xd: FloatArray,
    yd: FloatArray,
    xd_bits: npt.NDArray[np.int64],
    yd_bits: npt.NDArray[np.int64],
    s: int,
    e: int,
    cell: npt.NDArray[np.int64],
    cell_f: FloatArray,
) -> float:
    """``span_of(xd) + span_of(yd)`` of ``_event_columns`` for a dirty run: ``np.fmax`` minus
    ``np.fmin`` over its valid samples, NaN when none is valid.

    The sign of a zero extreme may differ from the reference's first-found one; the difference
    of the extremes does not (``+-0 - +-0`` is ``+0``; with one side nonzero the zero's sign
    is absorbed).
    """
    hx, lx = _valid_keys(x, y, xd, xd_bits, s, e)
    hy, ly = _valid_keys(x, y, yd, yd_bits, s, e)
    span_x = np.nan if hx == _KEY_LOW else _key_value(hx, cell, cell_f) - _key_value(lx, cell, cell_f)
    span_y = np.nan if hy == _KEY_LOW else _key_value(hy, cell, cell_f) - _key_value(ly, cell, cell_f)
    return span_x + span_y


@njit(cache=True)
def event_table(
    lab: Int8Array,
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    xd: FloatArray,
    yd: FloatArray,
    v: FloatArray,
    bounds: IntArray,
    dts: FloatArray,
) -> tuple[IntArray, npt.NDArray[np.int8], npt.NDArray[np.int64], FloatArray]:
    """``_event_columns`` of every trial at once.

    Returns, per event (every run of a label other than ``unclassified``, cut at trial bounds):
    its trial, its code, an ``(n, 3)`` int64 array ``start_index, end_index, n_samples`` (within
    the trial) and an ``(n, len(EVENT_FLOAT_COLUMNS))`` float array. All arrays must be
    C-contiguous (the reductions read the floats' bits).

    Each run is read in one vectorized pass (lost count, extremes, peak speed) and, when clean,
    summed in place by numpy's pairwise order; only dirty runs take further passes.
    """
    n_tr = bounds.size - 1
    count = 0
    for k in range(n_tr):
        a, b = bounds[k], bounds[k + 1]
        if b > a:
            count += lab[a] != UNCLASSIFIED
        # Shifted views indexed from zero: the count compiles to vector code.
        prev, cur = lab[a : b - 1], lab[a + 1 : b]
        for i in range(prev.size):
            count += (cur[i] != prev[i]) & (cur[i] != UNCLASSIFIED)
    trial = np.empty(count, dtype=np.intp)
    codes = np.empty(count, dtype=np.int8)
    ints = np.empty((count, 3), dtype=np.int64)
    fl = np.empty((count, 14))
    words = lab[: lab.size // 8 * 8].view(np.uint64)
    xd_bits = xd.view(np.int64)
    yd_bits = yd.view(np.int64)
    v_bits = v.view(np.int64)
    cell = np.empty(1, dtype=np.int64)
    cell_f = cell.view(np.float64)
    # Scratch of the dirty runs' masked sums, grown to the longest of them, and of the
    # pairwise trees of the runs over 129 samples.
    buf = np.empty((4, 0))
    stack = np.empty((64, 3), dtype=np.int64)
    vals = np.empty((64, 4))
    r = 0
    for k in range(n_tr):
        a, b = bounds[k], bounds[k + 1]
        s = a
        while s < b:
            e = _run_end(lab, words, s, b)
            c = lab[s]
            if c == UNCLASSIFIED:
                s = e
                continue
            m = e - s
            nbad, hx, lx, hy, ly, pk = _run_keys(x, y, xd_bits, yd_bits, v, v_bits, s, e)
            # A positive maximum is that of the values; at or below +0.0 (all speeds zero,
            # negative or NaN) the reference's first-found maximum is taken the slow way.
            peak = _key_value(pk, cell, cell_f) if pk > 0 else _run_peak(v, s, e)
            if nbad == 0:
                # np.maximum / np.minimum reductions: a NaN propagates. The difference of the
                # extremes does not depend on the sign of a zero extreme (see _run_span).
                if hx > _KEY_POS_INF or lx < _KEY_NEG_INF:
                    span_x = np.nan
                else:
                    span_x = _key_value(hx, cell, cell_f) - _key_value(lx, cell, cell_f)
                if hy > _KEY_POS_INF or ly < _KEY_NEG_INF:
                    span_y = np.nan
                else:
                    span_y = _key_value(hy, cell, cell_f) - _key_value(ly, cell, cell_f)
                disp = span_x + span_y
            else:
                disp = _run_span(x, y, xd, yd, xd_bits, yd_bits, s, e, cell, cell_f)
            if nbad == 0:
                # np.add.reduceat's first value plus numpy's pairwise sum of the rest. A run of
                # at most 129 samples (most events) is one pairwise block per column, inlined.
                if m <= 129:
                    tx, ty = _pairwise_block2(x, y, s + 1, m - 1)
                    txd, tyd = _pairwise_block2(xd, yd, s + 1, m - 1)
                else:
                    tx, ty, txd, tyd = _pairwise4(x, y, xd, yd, s + 1, m - 1, stack, vals)
                mx = (x[s] + tx) / m
                my = (y[s] + ty) / m
                mxd = (xd[s] + txd) / m
                myd = (yd[s] + tyd) / m
            else:
                if buf.shape[1] < m:
                    buf = np.empty((4, max(m, 2 * buf.shape[1])))
                mx, my, mxd, myd = _run_mean(x, y, xd, yd, s, m, m - nbad, buf, stack, vals)
            last = e - 1
            ok_last = not (np.isnan(x[last]) or np.isnan(y[last]))
            exd = xd[last] if ok_last else np.nan
            eyd = yd[last] if ok_last else np.nan
            before = max(s - 1, 0)
            use_before = s > a and not (np.isnan(x[before]) or np.isnan(y[before]))
            first = before if use_before else s
            ok_first = not (np.isnan(x[first]) or np.isnan(y[first]))
            sxd = xd[first] if ok_first else np.nan
            syd = yd[first] if ok_first else np.nan
            onset = t[s] / 1000.0
            offset = (t[e] if e < b else t[b - 1] + dts[k]) / 1000.0
            trial[r] = k
            codes[r] = c
            ints[r, 0] = s - a
            ints[r, 1] = last - a
            ints[r, 2] = m
            fl[r, 0] = onset
            fl[r, 1] = offset
            fl[r, 2] = offset - onset
            fl[r, 3] = mx
            fl[r, 4] = my
            fl[r, 5] = mxd
            fl[r, 6] = myd
            fl[r, 7] = disp
            fl[r, 8] = np.hypot(exd - sxd, eyd - syd)
            fl[r, 9] = peak
            fl[r, 10] = x[s]
            fl[r, 11] = y[s]
            fl[r, 12] = x[last]
            fl[r, 13] = y[last]
            r += 1
            s = e
    return trial, codes, ints, fl


# --------------------------------------------------------------------------------------------
# Sorting the threshold subsets
# --------------------------------------------------------------------------------------------

#: Runs of values this short are finished by insertion sort, longer ones by a comparison sort.
_INSERTION_MAX = 32
#: Radix digit width (bits); the sort keys have two digits.
_RADIX_DIGIT_BITS = 11
#: Segments shorter than this use digits one bit narrower: half the histogram to clear and sum.
_RADIX_SHORT = 1024
#: Values further than this many octaves below a segment's largest share the lowest key. Wide
#: enough that the float noise of a held position (1e-13 deg/s beside saccades of hundreds) keeps
#: keys of its own: a shared lowest key would leave a long run for the comparison sort.
_RADIX_OCTAVES = 60


@njit(cache=True)
def _insertion_sort(a: FloatArray, lo: int, hi: int) -> None:
    for i in range(lo + 1, hi):
        x = a[i]
        j = i - 1
        while j >= lo and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@njit(cache=True)
def _radix_sort(a: FloatArray, key: IntArray, tmp_key: IntArray, tmp_val: FloatArray, hist: IntArray) -> None:
    """Sort NaN-free ``a`` in place: a two-digit radix sort on a coarse key, finished by comparison.

    The key is the top of the float's bit pattern (made monotone for negative values), i.e. a
    log-scale bucket: it is non-decreasing in the value, so after the radix passes only runs of
    equal keys can be out of order, and sorting those by value gives exactly the sorted array.
    Speeds spread over a few octaves with ties (quantized positions), which defeats linear
    buckets; the log key keeps runs short, and the passes cost no branches on the data.
    """
    n = a.size
    if n <= _INSERTION_MAX:
        _insertion_sort(a, 0, n)
        return
    bits = a.view(np.int64)
    kmin = np.int64(1) << 62
    kmax = -kmin
    for i in range(n):
        b = bits[i]
        # Halved so that differences of keys cannot overflow.
        k = (b if b >= 0 else b ^ np.int64(0x7FFFFFFFFFFFFFFF)) >> 1
        key[i] = k
        kmin = min(kmin, k)
        kmax = max(kmax, k)
    # One exponent step is 1 << 51 in halved bits.
    klo = max(kmin, kmax - (np.int64(_RADIX_OCTAVES) << 51))
    db = _RADIX_DIGIT_BITS if n >= _RADIX_SHORT else _RADIX_DIGIT_BITS - 1
    shift = 0
    while ((kmax - klo) >> shift) >= (1 << (2 * db)):
        shift += 1
    nd = 1 << db
    # Unsigned digits and positions: numba then drops its negative-index wrap-around check from
    # every histogram and scatter access (a fifth of the sort's time).
    mask = np.uint64(nd - 1)
    udb = np.uint64(db)
    ushift = np.uint64(shift)
    one = np.uint64(1)
    h0 = hist[:nd]
    h1 = hist[nd : 2 * nd]
    h0[:] = 0
    h1[:] = 0
    ukey = key.view(np.uint64)
    utmp = tmp_key.view(np.uint64)
    for i in range(n):
        k = np.uint64(max(key[i], klo) - klo) >> ushift
        ukey[i] = k
        h0[k & mask] += 1
        h1[k >> udb] += 1
    c0 = 0
    c1 = 0
    for d in range(nd):
        x0 = h0[d]
        h0[d] = c0
        c0 += x0
        x1 = h1[d]
        h1[d] = c1
        c1 += x1
    for i in range(n):
        k = ukey[i]
        d = k & mask
        j = np.uint64(h0[d])
        h0[d] = j + one
        utmp[j] = k
        tmp_val[j] = a[i]
    for i in range(n):
        k = utmp[i]
        d = k >> udb
        j = np.uint64(h1[d])
        h1[d] = j + one
        ukey[j] = k
        a[j] = tmp_val[i]
    _sort_tied_keys(a, key)


@njit(cache=True)
def _sort_tied_keys(a: FloatArray, key: IntArray) -> None:
    """Finish a sort by key: sort each run of equal keys that holds a descent.

    A run without a descent is sorted already, and keys differ between runs, so only the
    (few) runs where two distinct values share a key are visited: the scan for descents is
    one predictable comparison per value instead of a walk over every run.
    """
    n = a.size
    i = 1
    while i < n:
        if not a[i] < a[i - 1]:
            i += 1
            continue
        k = key[i]
        lo = i - 1
        while lo > 0 and key[lo - 1] == k:
            lo -= 1
        hi = i + 1
        while hi < n and key[hi] == k:
            hi += 1
        if hi - lo > _INSERTION_MAX:
            a[lo:hi] = np.sort(a[lo:hi])
        else:
            _insertion_sort(a, lo, hi)
        # a[hi] has a larger key than the run: no descent there.
        i = hi + 1


@njit(cache=True)
def sort_segments(buf: FloatArray, offsets: IntArray) -> None:
    """Sort each NaN-free ``buf[offsets[k]:offsets[k + 1]]`` of ten values or more in place.

    The result holds exactly the values ``np.sort`` gives (a sorted array is unique up to equal
    values), about twice as fast on speed subsets of a few thousand values.
    """
    key, tmp_key, tmp_val, hist = _radix_scratch(_longest(offsets))
    for k in range(offsets.size - 1):
        lo, hi = offsets[k], offsets[k + 1]
        if hi - lo >= 10:
            _radix_sort(buf[lo:hi], key, tmp_key, tmp_val, hist)


@njit(cache=True)
def _longest(bounds: IntArray) -> int:
    """Length of the longest segment ``[bounds[k], bounds[k + 1])``."""
    maxn = 0
    for k in range(bounds.size - 1):
        maxn = max(maxn, bounds[k + 1] - bounds[k])
    return maxn


@njit(cache=True)
def _radix_scratch(maxn: int) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """Work arrays of :func:`_radix_sort` for segments of up to ``maxn`` values."""
    return (
        np.empty(maxn, dtype=np.int64),
        np.empty(maxn, dtype=np.int64),
        np.empty(maxn),
        np.empty(2 << _RADIX_DIGIT_BITS, dtype=np.int64),
    )


# --------------------------------------------------------------------------------------------
# Adaptive detector
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def _peak_threshold(s: FloatArray, size: int, p: FloatArray, info: FloatArray) -> None:
    """Peak and onset thresholds from the sorted speed subset ``s[:size]`` into ``info[0:4]``.

    The reference's iteration: median and MAD of the speeds below the threshold, until the
    threshold moves by less than 1 deg/s.
    """
    if size < 10:
        pt, on_thr, mean, sd = p[0], p[5] * 3, 0.0, 0.0
    else:
        pt = p[0]
        mean = 0.0
        sd = 0.0
        for _ in range(int(p[6])):
            nb = np.searchsorted(s[:size], pt)
            if nb < 10:
                break
            mean, mad = _median_and_mad(s, 0, nb)
            sd = 1.4826 * mad
            new = mean + p[1] * sd
            if abs(new - pt) < 1.0:
                pt = new
                break
            pt = new
        pt = min(max(pt, p[3]), p[4])
        onset = max(mean + p[2] * sd, p[5])
        on_thr = min(onset, pt)
    info[0] = pt
    info[1] = on_thr
    info[2] = mean
    info[3] = sd


# numpy's error model: no zero-divisor check per sample (the divisors, sample intervals, are
# positive), so the step loop compiles to vector code; results are the same IEEE divisions.
@njit(cache=True, error_model="numpy")
def _step_speed(t: FloatArray, xd: FloatArray, yd: FloatArray, out: FloatArray) -> None:
    """Sample-to-sample speed of one trial into ``out[:t.size]``.

    0 at the first sample and where not finite, as the reference has it.
    """
    n = t.size
    if n == 0:
        return
    out[0] = 0.0
    # Shifted views indexed from zero: the loop then compiles to vector code.
    x0, x1, y0, y1 = xd[: n - 1], xd[1:], yd[: n - 1], yd[1:]
    t0, t1, dst = t[: n - 1], t[1:], out[1:n]
    for i in range(n - 1):
        ddx = x1[i] - x0[i]
        ddy = y1[i] - y0[i]
        ddx = ddx * ddx
        ddy = ddy * ddy
        s = np.sqrt(ddx + ddy) / ((t1[i] - t0[i]) * 1e-6)
        dst[i] = s if np.isfinite(s) else 0.0


@njit(cache=True)
def adaptive_trials(
    t: FloatArray,
    xd: FloatArray,
    yd: FloatArray,
    v: FloatArray,
    lost: BoolArray,
    bounds: IntArray,
    dts: FloatArray,
    p: FloatArray,
) -> tuple[Int8Array, FloatArray]:
    """Labels of every trial and its adapted thresholds (an ``(n_trials, 7)`` array, :data:`ADAPTIVE_INFO`).

    Each trial runs start to end before the next: speed subset, its sort and the peak
    threshold, the step speed, its quiet subset and noise, then the labels. A trial's arrays
    (tens of KB) then stay in cache across these steps, where frame-wide passes would stream
    every array from memory again for each step; the step speed and the subsets live in
    trial-sized scratch, not frame-sized arrays.
    """
    n_tr = bounds.size - 1
    info = np.zeros((n_tr, 7))
    lab = np.empty(t.size, dtype=np.int8)
    maxn = _longest(bounds)
    sub = np.empty(maxn)
    step = np.empty(maxn)
    key, tmp_key, tmp_val, hist = _radix_scratch(maxn)
    for k in range(n_tr):
        a, b = bounds[k], bounds[k + 1]
        m = _finite_subset(v, a, b, sub, 0)
        if m >= 10:
            _radix_sort(sub[:m], key, tmp_key, tmp_val, hist)
        _peak_threshold(sub, m, p, info[k])
        _step_speed(t[a:b], xd[a:b], yd[a:b], step)
        q = _copy_quiet(step, v[a:b], info[k, 0], 0, b - a, sub, 0)
        s_med = 0.0
        s_sd = 0.0
        if q >= 10:
            _radix_sort(sub[:q], key, tmp_key, tmp_val, hist)
            s_med, s_mad = _median_and_mad(sub, 0, q)
            s_sd = 1.4826 * s_mad
        info[k, 4] = s_med
        info[k, 5] = s_sd
        info[k, 6] = max(s_med + p[2] * s_sd, p[5])
        _adaptive_trial(
            t[a:b], xd[a:b], yd[a:b], v[a:b], step[: b - a], lost[a:b], dts[k], p, info[k], lab[a:b]
        )
    return lab, info


@njit(cache=True)
def _copy_quiet(step: FloatArray, v: FloatArray, pt: float, lo: int, hi: int, out: FloatArray, o: int) -> int:
    """Steps kept where the speed is below ``pt`` and the step positive, thinned like the speeds.

    The mask is never stored, and the copy is branch-free: every value is written, the position
    only advances past kept ones (``o + m <= i``: nothing is clobbered); the thinning then
    compacts the copy.
    """
    m = 0
    for i in range(lo, hi):
        out[o + m] = step[i]
        m += (not v[i] >= pt) & (step[i] > 0)
    return _thin_in_place(out, o, m)


@njit(cache=True)
def _adaptive_trial(
    t: FloatArray,
    xd: FloatArray,
    yd: FloatArray,
    v: FloatArray,
    step: FloatArray,
    lost: BoolArray,
    dt: float,
    p: FloatArray,
    info: FloatArray,
    lab: Int8Array,
) -> None:
    n = t.size
    pt = info[0]
    s_med, s_sd = info[4], info[5]
    s_on = max(s_med + p[2] * s_sd, p[5])
    s_pso = max(s_med + p[12] * s_sd, p[5])
    ls, le = _init_labels(lost, lab)
    ps, pe = _runs_above(v, pt)
    if ps.size:
        onset, offset = _peak_edges(step, s_on, ps, pe)
        sac_s, sac_e = _merge_sorted(onset, offset, n)
        # The filters compact the (fresh) interval arrays in place instead of masking copies.
        m = 0
        for r in range(sac_s.size):
            if _duration_ms(t, sac_s[r], sac_e[r], n, dt) >= p[7]:
                sac_s[m], sac_e[m] = sac_s[r], sac_e[r]
                m += 1
        sac_s, sac_e = sac_s[:m], sac_e[:m]
        if p[8] > 0 and sac_s.size:
            k = _samples(p[9], dt)
            buf = np.empty(2 * k)
            m = 0
            for r in range(sac_s.size):
                bx, by, nb = _window_mean(xd, yd, max(sac_s[r] - k, 0), sac_s[r], k, buf)
                ax, ay, na = _window_mean(xd, yd, sac_e[r], min(sac_e[r] + k, n), k, buf)
                amp = np.hypot(ax - bx, ay - by)
                if amp >= p[8] or nb == 0 or na == 0:
                    sac_s[m], sac_e[m] = sac_s[r], sac_e[r]
                    m += 1
            sac_s, sac_e = sac_s[:m], sac_e[:m]
        pw = _samples(p[10], dt)
        strong_win = _samples(p[11], dt)
        # Peaks starting within the strong-PSO window after a saccade chain onto it as a PSO.
        m = sac_s.size
        head_s = np.empty(m, dtype=np.intp)
        head_e = np.empty(m, dtype=np.intp)
        chain_e = np.empty(m, dtype=np.intp)
        g = -1
        for r in range(m):
            if r > 0 and sac_s[r] - sac_e[r - 1] < strong_win:
                chain_e[g] = max(chain_e[g], sac_e[r])
            else:
                g += 1
                head_s[g] = sac_s[r]
                head_e[g] = sac_e[r]
                chain_e[g] = max(0, sac_e[r])
        g += 1
        head_s, head_e, chain_e = head_s[:g], head_e[:g], chain_e[:g]
        ms, me = _merge_sorted(head_s, head_e, n)
        for r in range(ms.size):
            _paint_unlost(lab, ms[r], me[r], SACCADE)
        ms, me = _merge_sorted(head_e, chain_e, n)
        for r in range(ms.size):
            _paint_unlost(lab, ms[r], me[r], PSO)

        hs, he = _runs_above(step, s_pso)
        gap = _samples(p[13], dt) if p[13] > 0 else 0
        if gap and hs.size > 1:
            ends = np.empty(hs.size, dtype=np.intp)
            for r in range(hs.size - 1):
                ends[r] = hs[r + 1] if hs[r + 1] - he[r] <= gap else he[r]
            ends[-1] = he[-1]
            hs, he = _merge_sorted(hs, ends, n)
        pmax = _samples(p[14], dt)
        pso_s = np.empty(g, dtype=np.intp)
        pso_e = np.empty(g, dtype=np.intp)
        c = 0
        for r in range(g):
            after = chain_e[r]
            if after >= n:
                continue
            j = np.searchsorted(he, after, side="right")
            if j >= hs.size:
                continue
            first_hi = max(hs[j], after)
            if first_hi < after + pw and first_hi < n:
                # The PSO keeps the sample at which the signal comes to rest.
                nl = he[np.searchsorted(he, first_hi, side="right")]
                pso_s[c] = after
                pso_e[c] = min(min(nl + 1, n), after + pmax)
                c += 1
        ms, me = _merge_sorted(pso_s[:c], pso_e[:c], n)
        for r in range(ms.size):
            for i in range(ms[r], me[r]):
                if lab[i] == FIXATION:
                    lab[i] = PSO

    # Blinks: long lost runs, widened by a margin and over the unstable signal around them.
    if ls.size:
        m_b = _samples(p[17], dt)
        for r in range(ls.size):
            d = _duration_ms(t, ls[r], le[r], n, dt)
            if d >= p[15] and d <= p[16]:
                lab[max(ls[r] - m_b, 0) : min(le[r] + m_b, n)] = BLINK
    _discard_and_absorb(lab, t, dt, p[18])


# --------------------------------------------------------------------------------------------
# I-VT
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def window_velocity(
    t: FloatArray, xd: FloatArray, yd: FloatArray, bounds: IntArray, half: IntArray
) -> FloatArray:
    """``velocity_deg_s`` of every trial, trial ``k`` with half-window ``half[k]`` samples."""
    n = t.size
    v = np.empty(n)
    for k in range(bounds.size - 1):
        a, b = bounds[k], bounds[k + 1]
        if b - a < 2:
            v[a:b] = np.nan
            continue
        h = half[k]
        for i in range(a, b):
            hi = min(i + h, b - 1)
            lo = max(i - h, a)
            dts = (t[hi] - t[lo]) * 1e-6
            val = np.hypot(xd[hi] - xd[lo], yd[hi] - yd[lo])
            val = val / dts
            if not dts > 0 or np.isnan(xd[i]) or np.isnan(yd[i]):
                val = np.nan
            v[i] = val
    return v


@njit(cache=True)
def ivt_labels(
    t: FloatArray,
    xd: FloatArray,
    yd: FloatArray,
    v: FloatArray,
    bounds: IntArray,
    dts: FloatArray,
    threshold_deg_s: float,
    merge: bool,
    merge_max_gap_ms: float,
    merge_max_angle_deg: float,
    discard: bool,
    min_fixation_ms: float,
) -> Int8Array:
    """Labels of the Tobii I-VT filter (``_ivt``) for every trial."""
    n = t.size
    lab = np.empty(n, dtype=np.int8)
    for i in range(n):
        if np.isnan(xd[i]) or np.isnan(yd[i]):
            lab[i] = LOST
        elif np.isnan(v[i]):
            lab[i] = UNCLASSIFIED
        elif v[i] > threshold_deg_s:
            lab[i] = SACCADE
        else:
            lab[i] = FIXATION
    for k in range(bounds.size - 1):
        a, b = bounds[k], bounds[k + 1]
        tl = lab[a:b]
        if merge:
            _merge_fixations(tl, t[a:b], xd[a:b], yd[a:b], dts[k], merge_max_gap_ms, merge_max_angle_deg)
        if discard:
            _discard_short(tl, t[a:b], dts[k], min_fixation_ms)
    return lab


@njit(cache=True)
def _merge_fixations(
    lab: Int8Array,
    t: FloatArray,
    xd: FloatArray,
    yd: FloatArray,
    dt: float,
    max_gap_ms: float,
    max_angle_deg: float,
) -> None:
    """Relabel the gap between two fixations close in time and space as fixation."""
    n = lab.size
    count = 0
    for i in range(n):
        if lab[i] == FIXATION and (i == 0 or lab[i - 1] != FIXATION):
            count += 1
    if count < 2:
        return
    fs = np.empty(count, dtype=np.intp)
    fe = np.empty(count, dtype=np.intp)
    cx = np.empty(count)
    cy = np.empty(count)
    c = 0
    i = 0
    while i < n:
        if lab[i] != FIXATION:
            i += 1
            continue
        s = i
        while i < n and lab[i] == FIXATION:
            i += 1
        fs[c] = s
        fe[c] = i
        cx[c] = _reduceat_sum(xd, s, i - s) / (i - s)
        cy[c] = _reduceat_sum(yd, s, i - s) / (i - s)
        c += 1
    for r in range(count - 1):
        e = fe[r]
        t_end = t[e] if e < n else t[n - 1] + dt
        gap_ms = (t[fs[r + 1]] - t_end) / 1000.0
        angle = np.hypot(cx[r + 1] - cx[r], cy[r + 1] - cy[r])
        if gap_ms <= max_gap_ms and angle <= max_angle_deg:
            lab[fe[r] : fs[r + 1]] = FIXATION


# --------------------------------------------------------------------------------------------
# Data quality
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def _median_of_prefix(vals: FloatArray, m: int) -> float:
    """``(v[lo] + v[hi]) / 2`` of the sorted ``vals[:m]`` (``trial_quality``'s group median)."""
    if m == 0:
        return np.nan
    s = np.sort(vals[:m])
    return (s[(m - 1) // 2] + s[m // 2]) / 2.0


@njit(cache=True)
def s2s_cross_dot(mm_x: FloatArray, mm_y: FloatArray, d: float) -> tuple[FloatArray, FloatArray]:
    """``|a x b|`` and ``a . b`` of consecutive gaze vectors ``(mm_x, mm_y, d)``, first row NaN.

    ``trial_quality``'s arithmetic, operation by operation, without its eleven temporaries; the
    caller takes ``arctan2`` in numpy (vectorized).
    """
    n = mm_x.size
    cross = np.empty(n)
    dot = np.empty(n)
    if n:
        cross[0] = np.nan
        dot[0] = np.nan
    # Shifted views indexed from zero: the loop then compiles to vector code.
    pax, pay, pbx, pby = mm_x[:-1], mm_y[:-1], mm_x[1:], mm_y[1:]
    oc, od = cross[1:], dot[1:]
    for i in range(n - 1):
        ax = pax[i]
        ay = pay[i]
        bx = pbx[i]
        by = pby[i]
        c1 = ay * d - d * by
        c2 = d * bx - ax * d
        c3 = ax * by - ay * bx
        oc[i] = np.sqrt(c1 * c1 + c2 * c2 + c3 * c3)
        od[i] = ax * bx + ay * by + d * d
    return cross, dot


@njit(cache=True)
def quality_windows(
    t_us: npt.NDArray[np.int64],
    s2s_deg: FloatArray,
    x_deg: FloatArray,
    y_deg: FloatArray,
    valid: BoolArray,
    first_row: IntArray,
    min_pairs: FloatArray,
    window_us: int,
) -> tuple[FloatArray, IntArray, FloatArray]:
    """Precision of every group of ``trial_quality`` in one pass over its rows.

    Rows are sorted by group, then time; group ``g`` is ``[first_row[g], first_row[g + 1])``
    (the last one ends at the end). ``window_us <= 0`` makes a group one window.
    ``s2s_deg[r]`` is the angle between rows ``r - 1`` and ``r``.

    Per window (a run of ``(t - t_first) // window_us``) the RMS of the sample-to-sample
    angles of its valid pairs and ``sqrt(var(x_deg) + var(y_deg))`` of its valid samples are
    taken, sums as ``np.add.reduceat`` does them, and the medians over the windows with enough
    pairs (:func:`_median_of_prefix`) are returned: RMS-S2S, the number of RMS windows, STD.
    """
    n = t_us.size
    n_groups = first_row.size
    rms = np.full(n_groups, np.nan)
    n_windows = np.zeros(n_groups, dtype=np.intp)
    std = np.full(n_groups, np.nan)
    # Per-window scratch (squared angles, degree positions) and per-group window values.
    sq = np.empty(n)
    xs = np.empty(n)
    ys = np.empty(n)
    win_rms = np.empty(n)
    win_std = np.empty(n)
    for g in range(n_groups):
        a = first_row[g]
        b = first_row[g + 1] if g + 1 < n_groups else n
        t0 = t_us[a]
        need = min_pairs[g]
        n_rms = 0
        n_std = 0
        i = a
        while i < b:
            j = b
            if window_us > 0:
                w = (t_us[i] - t0) // window_us
                j = i + 1
                while j < b and (t_us[j] - t0) // window_us == w:
                    j += 1
            m_pairs = 0
            m_pts = 0
            for r in range(i, j):
                if not valid[r]:
                    continue
                xs[m_pts] = x_deg[r]
                ys[m_pts] = y_deg[r]
                m_pts += 1
                if r > a and valid[r - 1]:
                    sq[m_pairs] = s2s_deg[r] * s2s_deg[r]
                    m_pairs += 1
            if m_pairs > 0 and m_pairs >= need:
                win_rms[n_rms] = _reduceat_sum(sq, 0, m_pairs) / m_pairs
                n_rms += 1
            if m_pts > 1 and m_pts - 1 >= need:
                var = 0.0
                for arr in (xs, ys):
                    mean = _reduceat_sum(arr, 0, m_pts) / m_pts
                    for q in range(m_pts):
                        dev = arr[q] - mean
                        arr[q] = dev * dev
                    var += _reduceat_sum(arr, 0, m_pts) / (m_pts - 1)
                win_std[n_std] = np.sqrt(var)
                n_std += 1
            i = j
        rms[g] = np.sqrt(_median_of_prefix(win_rms, n_rms))
        n_windows[g] = n_rms
        std[g] = _median_of_prefix(win_std, n_std)
    return rms, n_windows, std


# --------------------------------------------------------------------------------------------
# Dwell
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def kahan_group_sum(values: FloatArray, labels: IntArray, n_groups: int) -> FloatArray:
    """Sum of ``values`` per label, in row order with Kahan compensation (pandas' ``groupby.sum``)."""
    total = np.zeros(n_groups)
    comp = np.zeros(n_groups)
    for i in range(values.size):
        g = labels[i]
        y = values[i] - comp[g]
        t = total[g] + y
        c = t - total[g] - y
        # An infinite sum leaves a NaN compensation, which pandas resets.
        comp[g] = c if c == c else 0.0
        total[g] = t
    return total
