"""The compiled segment sort of the adaptive thresholds gives exactly numpy's sorted values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pov_pipeline.gaze import _kernels as kern


def _check(segments: list[np.ndarray]) -> None:
    offsets = np.zeros(len(segments) + 1, dtype=np.intp)
    offsets[1:] = np.cumsum([s.size for s in segments])
    buf = np.concatenate(segments) if segments else np.empty(0)
    kern.sort_segments(buf, offsets)
    for k, seg in enumerate(segments):
        got = buf[offsets[k] : offsets[k + 1]]
        want = seg if seg.size < 10 else np.sort(seg)
        # Bit patterns, so that a -0.0 / 0.0 swap or any rounding would show.
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))


def _speeds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Fixation noise, saccade speeds, float-noise near zero and quantized ties, shuffled."""
    v = np.exp(rng.normal(2.0, 0.8, n))
    v[: n // 10] = rng.uniform(50, 600, n // 10)
    v[n // 10 : n // 10 + n // 50] = rng.uniform(0, 1e-12, n // 50)
    v[-n // 20 :] = np.round(v[-n // 20 :])
    return rng.permutation(v)


def test_realistic_speed_segments() -> None:
    rng = np.random.default_rng(3)
    _check([_speeds(rng, int(n)) for n in rng.integers(1, 6000, 40)])


@pytest.mark.parametrize(
    "values",
    [
        np.zeros(500),
        np.r_[np.zeros(400), np.linspace(0, 1, 400)],
        np.r_[np.full(300, 7.0), np.full(300, 7.0 + 1e-15), np.full(300, 7.0 - 1e-15)],
        np.r_[np.linspace(1e-300, 1e-290, 300), 5e-324, 1e300, 0.0, 2.0],
        np.linspace(-5.0, 3.0, 1001),
        np.r_[np.full(200, 1e6), np.linspace(0.5, 50, 2000)],
        np.arange(12, dtype=float)[::-1],
    ],
)
def test_edge_cases(values: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    _check([rng.permutation(values), values.copy()])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(allow_nan=False, allow_infinity=True, width=64), min_size=0, max_size=120),
        min_size=1,
        max_size=6,
    )
)
def test_any_finite_or_infinite_values(segments: list[list[float]]) -> None:
    # np.sort orders -0.0 and 0.0 as equal; the radix key puts -0.0 first: compare as values there.
    arrays = [np.array(s, dtype=np.float64) for s in segments]
    offsets = np.zeros(len(arrays) + 1, dtype=np.intp)
    offsets[1:] = np.cumsum([a.size for a in arrays])
    buf = np.concatenate(arrays)
    kern.sort_segments(buf, offsets)
    for k, a in enumerate(arrays):
        got = buf[offsets[k] : offsets[k + 1]]
        np.testing.assert_array_equal(got, a if a.size < 10 else np.sort(a))
