"""Per-trial data quality on synthetic gaze with known loss, noise and off-screen share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze.quality import px_to_deg_xy, quality_flags, trial_quality

SCREEN_PX = (1920, 1080)
SCREEN_MM = (531.0, 299.0)
DISTANCE_MM = 650.0


def _deg_to_px(x_deg: np.ndarray, y_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = SCREEN_PX[0] / 2 + np.tan(np.radians(x_deg)) * DISTANCE_MM * SCREEN_PX[0] / SCREEN_MM[0]
    y = SCREEN_PX[1] / 2 + np.tan(np.radians(y_deg)) * DISTANCE_MM * SCREEN_PX[1] / SCREEN_MM[1]
    return x, y


def _trial(
    rng: np.random.Generator,
    *,
    trial: int,
    n: int,
    rate_hz: float,
    sigma_deg: float,
    loss: slice | None = None,
    off: slice | None = None,
    eye: str = "left",
) -> pd.DataFrame:
    """Stationary gaze near the centre plus white noise of ``sigma_deg`` per axis."""
    x_deg = 1.0 + rng.normal(0.0, sigma_deg, n)
    y_deg = -0.5 + rng.normal(0.0, sigma_deg, n)
    x, y = _deg_to_px(x_deg, y_deg)
    valid = np.ones(n, dtype=bool)
    if loss is not None:
        valid[loss] = False
    if off is not None:
        x[off] = SCREEN_PX[0] + 50.0
    x[~valid] = np.nan
    y[~valid] = np.nan
    return pd.DataFrame(
        {
            "participant": "p1",
            "trial": np.int32(trial),
            "stimulus_id": f"s{trial}",
            "t_us": (1_000_000 + np.arange(n) * 1e6 / rate_hz).astype(np.int64),
            "x_px": x.astype(np.float32),
            "y_px": y.astype(np.float32),
            "pupil": np.float32(1000.0),
            "valid": valid,
            "eye": eye,
        }
    )


def _quality(samples: pd.DataFrame, **kwargs) -> pd.DataFrame:
    return trial_quality(
        samples, screen_px=SCREEN_PX, screen_mm=SCREEN_MM, viewing_distance_mm=DISTANCE_MM, **kwargs
    )


def test_px_to_deg_xy_centre_and_edge() -> None:
    x, y = px_to_deg_xy(
        np.array([960.0, 1920.0]),
        np.array([540.0, 0.0]),
        screen_px=SCREEN_PX,
        screen_mm=SCREEN_MM,
        viewing_distance_mm=DISTANCE_MM,
    )
    np.testing.assert_allclose(x, [0.0, np.degrees(np.arctan(265.5 / 650.0))])
    np.testing.assert_allclose(y, [0.0, -np.degrees(np.arctan(149.5 / 650.0))])


def test_known_loss_noise_and_rates() -> None:
    rng = np.random.default_rng(42)
    sigma = 0.05
    samples = pd.concat(
        [
            _trial(rng, trial=1, n=5000, rate_hz=500, sigma_deg=sigma, loss=slice(1000, 1500)),
            _trial(rng, trial=2, n=3000, rate_hz=1000, sigma_deg=2 * sigma, off=slice(0, 300)),
            # Right eye of trial 1, noisier and no loss.
            _trial(rng, trial=1, n=5000, rate_hz=500, sigma_deg=3 * sigma, eye="right"),
        ]
    ).sample(frac=1.0, random_state=1)  # row order must not matter
    q = _quality(samples).set_index(["trial", "eye"])
    assert list(q.index) == [(1, "left"), (1, "right"), (2, "left")]

    t1 = q.loc[(1, "left")]
    assert t1["n_samples"] == 5000 and t1["n_valid"] == 4500
    assert t1["track_loss_pct"] == pytest.approx(10.0)
    assert t1["off_screen_pct"] == 0.0
    assert t1["nominal_sampling_rate_hz"] == pytest.approx(500.0)
    assert t1["duration_ms"] == pytest.approx(10_000.0)
    assert t1["effective_sampling_rate_hz"] == pytest.approx(450.0)
    # White noise of sigma per axis: RMS-S2S = 2 sigma, STD = sqrt(2) sigma (small-angle regime).
    assert t1["precision_rms_s2s_deg"] == pytest.approx(2 * sigma, rel=0.05)
    assert t1["precision_std_deg"] == pytest.approx(np.sqrt(2) * sigma, rel=0.05)
    assert t1["n_precision_windows"] == 45  # 50 windows of 200 ms, 5 fully lost

    t2 = q.loc[(2, "left")]
    assert t2["nominal_sampling_rate_hz"] == pytest.approx(1000.0)
    assert t2["track_loss_pct"] == 0.0 and t2["off_screen_pct"] == pytest.approx(10.0)
    right = q.loc[(1, "right")]
    assert right["precision_rms_s2s_deg"] == pytest.approx(6 * sigma, rel=0.05)


def test_precision_robust_to_saccades_with_windows() -> None:
    rng = np.random.default_rng(5)
    sigma = 0.03
    samples = _trial(rng, trial=1, n=5000, rate_hz=500, sigma_deg=sigma)
    # Insert 8 jumps of 10° (saccade-like steps) by shifting later segments.
    shift = np.zeros(5000)
    for k, start in enumerate(range(300, 5000, 600)):
        shift[start:] += (-1) ** k * 10.0
    x, _ = _deg_to_px(1.0 + shift, np.zeros(5000))
    x0, _ = _deg_to_px(np.ones(5000), np.zeros(5000))
    samples["x_px"] = (samples["x_px"].to_numpy() + (x - x0)).astype(np.float32)
    windowed = _quality(samples).iloc[0]
    whole = _quality(samples, window_ms=None).iloc[0]
    assert windowed["precision_rms_s2s_deg"] == pytest.approx(2 * sigma, rel=0.1)
    assert whole["precision_rms_s2s_deg"] > 5 * windowed["precision_rms_s2s_deg"]
    assert whole["n_precision_windows"] == 1


def test_all_lost_trial_and_flags() -> None:
    rng = np.random.default_rng(0)
    samples = pd.concat(
        [
            _trial(rng, trial=1, n=1000, rate_hz=500, sigma_deg=0.02),
            _trial(rng, trial=2, n=1000, rate_hz=500, sigma_deg=0.02, loss=slice(0, 1000)),
            _trial(rng, trial=3, n=1000, rate_hz=500, sigma_deg=0.5, off=slice(0, 200)),
        ]
    )
    q = _quality(samples)
    lost = q.set_index("trial").loc[2]
    assert lost["track_loss_pct"] == 100.0 and lost["effective_sampling_rate_hz"] == 0.0
    assert np.isnan(lost["precision_rms_s2s_deg"]) and lost["n_precision_windows"] == 0

    flags = quality_flags(q, expected_sampling_rate_hz=1000.0).set_index("trial")
    assert not flags.loc[1, ["flag_track_loss", "flag_precision_rms", "flag_off_screen"]].any()
    assert flags.loc[1, "flags"] == "rate_mismatch"
    assert flags.loc[2, "flag_track_loss"] and flags.loc[2, "flag_no_precision"]
    assert flags.loc[2, "flag_low_effective_rate"]
    assert flags.loc[3, "flag_precision_rms"] and flags.loc[3, "flag_off_screen"]
    # sigma 0.5° per axis: RMS-S2S about 1° (flagged), STD about 0.71° (under the 1° limit).
    assert flags.loc[3, "flags"] == "precision_rms;off_screen;rate_mismatch"
    assert flags["flag_any"].all()
    ok = quality_flags(q, expected_sampling_rate_hz=500.0).set_index("trial")
    assert not ok.loc[1, "flag_any"] and ok.loc[1, "flags"] == ""


def test_empty_input() -> None:
    empty = _trial(np.random.default_rng(0), trial=1, n=10, rate_hz=500, sigma_deg=0.1).iloc[:0]
    q = _quality(empty)
    assert len(q) == 0 and "precision_rms_s2s_deg" in q
    assert len(quality_flags(q)) == 0
