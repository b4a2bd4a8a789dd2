"""The compiled fast path gives exactly what the numpy reference gives (labels, events, params).

The first test in a process pays the kernels' load from numba's on-disk cache (about a second),
or their compilation on a machine that has none yet (tens of seconds, once per machine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze import _fast, _kernels
from pov_pipeline.gaze.detection import AdaptiveParams, IVTParams, detect_events, detect_trials
from pov_pipeline.gaze.evaluation import agreement_row, load_lund_recordings, synthetic_gaze
from pov_pipeline.schemas import SAMPLE_LABELS

CASES = [
    (500, 0, "adaptive", AdaptiveParams()),
    (1000, 1, "adaptive", AdaptiveParams(median_filter_window_samples=1, gap_fill_max_ms=30.0)),
    (60, 2, "adaptive", AdaptiveParams()),
    (2000, 3, "adaptive", AdaptiveParams(pso_gap_close_ms=0.0, min_saccade_amplitude_deg=0.0)),
    (500, 4, "ivt", IVTParams()),
    (60, 5, "ivt", IVTParams(noise_window_samples=1, merge_adjacent_fixations=False)),
    (1000, 6, "ivt", IVTParams(discard_short_fixations=False, velocity_window_ms=10.0)),
]


def _noisy(rate_hz: float, seed: int, duration_s: float = 8.0) -> tuple[np.ndarray, ...]:
    g = synthetic_gaze(duration_s, rate_hz, seed=seed, blink_every_s=2.0, noise_px=1.0)
    x, y = g.x_px.copy(), g.y_px.copy()
    rng = np.random.default_rng(seed)
    x[rng.choice(x.size, 20, replace=False)] = -5000.0  # off-screen samples
    y[rng.choice(y.size, 30, replace=False)] = np.nan  # single-sample dropouts
    return g.t_us, x, y, g.geometry


def _assert_same(a, b) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.labels.dtype == b.labels.dtype == np.int8
    assert a.params_used.keys() == b.params_used.keys()
    for key, value in a.params_used.items():
        other = b.params_used[key]
        assert value == other or (value != value and other != other), key  # NaN == NaN here
    pd.testing.assert_frame_equal(a.events, b.events, check_exact=True)


@pytest.mark.parametrize(("rate_hz", "seed", "method", "params"), CASES)
def test_detect_events_fast_matches_reference(rate_hz: int, seed: int, method: str, params) -> None:  # type: ignore[no-untyped-def]
    t, x, y, geometry = _noisy(rate_hz, seed)
    fast = detect_events(t, x, y, geometry=geometry, method=method, params=params)
    ref = detect_events(t, x, y, geometry=geometry, method=method, params=params, engine="numpy")
    _assert_same(fast, ref)
    # Not trivially equal: the signal holds every kind of event.
    found = set(np.unique(fast.labels).tolist())
    assert {0, 1} <= found
    assert found & {3, 4}


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 12])
def test_tiny_recordings_match_reference(n: int) -> None:
    t, x, y, geometry = _noisy(500, 7, duration_s=1.0)
    for method in ("adaptive", "ivt"):
        fast = detect_events(t[:n], x[:n], y[:n], geometry=geometry, method=method)
        ref = detect_events(t[:n], x[:n], y[:n], geometry=geometry, method=method, engine="numpy")
        _assert_same(fast, ref)


def test_all_lost_and_unsorted_time() -> None:
    t, x, y, geometry = _noisy(500, 8, duration_s=1.0)
    nan = np.full(t.size, np.nan)
    _assert_same(
        detect_events(t, nan, nan, geometry=geometry),
        detect_events(t, nan, nan, geometry=geometry, engine="numpy"),
    )
    with pytest.raises(ValueError, match="increasing"):
        detect_events(t[::-1], x, y, geometry=geometry)
    with pytest.raises(ValueError, match="engine"):
        detect_events(t, x, y, geometry=geometry, engine="cuda")  # type: ignore[arg-type]


def _frame() -> tuple[pd.DataFrame, object]:
    """Two participants, mono and binocular trials (one misaligned), a one-sample trial, shuffled."""
    parts = []
    for p, (rate, seed) in enumerate([(500, 10), (120, 11)]):
        t, x, y, geometry = _noisy(rate, seed, duration_s=12.0)
        n = t.size
        trial = np.minimum(np.arange(n) // max(n // 7, 1), 6).astype(np.int32)
        trial[-1] = 99  # a one-sample trial
        valid = np.isfinite(x) & np.isfinite(y)
        base = pd.DataFrame(
            {
                "participant": f"P{p}",
                "trial": trial,
                "stimulus_id": np.asarray([f"s{k}" for k in trial]),
                "t_us": t,
                "x_px": np.where(valid, x, 0.0).astype(np.float32),
                "y_px": np.where(valid, y, 0.0).astype(np.float32),
                "pupil": np.float32(3.0),
                "valid": valid,
                "eye": "left",
            }
        )
        parts.append(base)
        if p == 1:
            # Right eye of trials 1-3, slightly offset; trial 3 has one right sample missing.
            right = base[base["trial"].isin([1, 2, 3])].copy()
            right["eye"] = "right"
            right["x_px"] += np.float32(2.0)
            right = right.drop(right.index[right["trial"] == 3][5])
            parts.append(right)
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return frame, geometry


@pytest.mark.parametrize("method", ["adaptive", "ivt"])
@pytest.mark.parametrize("eye_mode", ["average", "best"])
def test_detect_trials_fast_matches_reference(method: str, eye_mode: str) -> None:
    frame, geometry = _frame()
    labels, events = detect_trials(frame, geometry, method=method, eye_mode=eye_mode)
    ref_labels, ref_events = detect_trials(frame, geometry, method=method, eye_mode=eye_mode, engine="numpy")
    pd.testing.assert_frame_equal(labels, ref_labels, check_exact=True)
    pd.testing.assert_frame_equal(events, ref_events, check_exact=True)
    assert set(labels["eye"]) == ({"left", "binocular"} if eye_mode == "average" else {"left"})
    assert len(events) > 50


def test_detect_trials_unsupported_params_use_reference() -> None:
    frame, geometry = _frame()
    params = {"median_filter_window_samples": 5}
    assert not _fast.supported("adaptive", AdaptiveParams(**params))
    labels, _ = detect_trials(frame, geometry, params=params)
    ref, _ = detect_trials(frame, geometry, params=params, engine="numpy")
    pd.testing.assert_frame_equal(labels, ref, check_exact=True)


def test_string_array_matches_object_strings() -> None:
    strings = ("fixation", "é", "", "a-much-longer-participant-identifier")
    codes = np.repeat(np.array([0, 1, 1, 2, 3, 0], dtype=np.intp), [3, 1, 2, 4, 1, 5])
    got = pd.Series(_fast.string_array(codes, strings))
    want = pd.Series(np.asarray(strings, dtype=object)[codes])
    pd.testing.assert_series_equal(got, want)


def test_pairwise_sums_match_numpy() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 6000) * 1e3
    for n in (1, 2, 7, 8, 9, 127, 128, 129, 300, 1000, 5003):
        s = int(rng.integers(0, 500))
        assert _kernels._pairwise_sum(a, s, n) == np.add.reduce(a[s : s + n])
        assert _kernels._reduceat_sum(a, s, n) == np.add.reduceat(a, [s, s + n])[0]


@pytest.mark.needs_shared
def test_lund_fast_path_matches_reference_and_kappa(refdata: Path) -> None:
    folder = refdata / "andersson2017_lund" / "mat" / "img"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    kappas = []
    for r in load_lund_recordings(folder):
        for method in ("adaptive", "ivt"):
            fast = detect_events(r.t_us, r.x_px, r.y_px, geometry=r.geometry, method=method)
            ref = detect_events(r.t_us, r.x_px, r.y_px, geometry=r.geometry, method=method, engine="numpy")
            _assert_same(fast, ref)
            if method == "adaptive":
                kappas.append(
                    agreement_row(r, fast.labels == SAMPLE_LABELS.index("fixation"), method)["kappa_mean"]
                )
    # The measured mean kappa of the adaptive detector against the Lund coders.
    assert float(np.mean(kappas)) == pytest.approx(0.870, abs=0.0005)
