"""Vectorized trial quality against a readable per-trial, per-window reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze.quality import px_to_deg_xy, trial_quality

SCREEN_PX, SCREEN_MM, DIST = (1920, 1080), (531.0, 299.0), 650.0


def _samples(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for participant in ("p2", "p1"):
        for trial in (3, 1, 2):
            for eye in ("right", "left"):
                n = int(rng.integers(1, 700))
                rate = rng.choice([120.0, 500.0, 1000.0])
                t = (1_000_000 * trial + np.arange(n) * 1e6 / rate + rng.integers(0, 2, n)).astype(np.int64)
                x = rng.normal(960, 80, n) + np.cumsum(rng.normal(0, 2, n))
                y = rng.normal(540, 60, n)
                x[rng.random(n) < 0.05] = 2000.0  # off screen
                valid = rng.random(n) > 0.1
                x[~valid & (rng.random(n) < 0.5)] = np.nan
                parts.append(
                    pd.DataFrame(
                        {
                            "participant": participant,
                            "trial": np.int32(trial),
                            "stimulus_id": f"s{trial}",
                            "t_us": t,
                            "x_px": x.astype(np.float32),
                            "y_px": y.astype(np.float32),
                            "valid": valid,
                            "eye": eye,
                        }
                    )
                )
    frame = pd.concat(parts, ignore_index=True)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _reference(samples: pd.DataFrame, window_ms: float | None) -> pd.DataFrame:
    rows = []
    for (p, trial, eye), g in samples.groupby(["participant", "trial", "eye"], sort=True):
        g = g.sort_values("t_us", kind="stable")
        t = g["t_us"].to_numpy(np.int64)
        x, y = g["x_px"].to_numpy(np.float64), g["y_px"].to_numpy(np.float64)
        ok = g["valid"].to_numpy() & np.isfinite(x) & np.isfinite(y)
        med = float(np.median(np.diff(t))) if len(t) > 1 else np.nan
        duration = t[-1] - t[0] + (0.0 if np.isnan(med) else med)
        xd, yd = px_to_deg_xy(x, y, screen_px=SCREEN_PX, screen_mm=SCREEN_MM, viewing_distance_mm=DIST)
        vec = np.c_[np.tan(np.radians(xd)) * DIST, np.tan(np.radians(yd)) * DIST, np.full(len(x), DIST)]
        win = np.zeros(len(t), int) if window_ms is None else (t - t[0]) // round(window_ms * 1000)
        need = 2.0 if window_ms is None or np.isnan(med) else max(2.0, 0.5 * window_ms * 1000 / med)
        rms, std = [], []
        for w in np.unique(win):
            idx = np.flatnonzero(win == w)
            # A pair belongs to the window of its second sample.
            pairs = [(j - 1, j) for j in idx if j > 0 and ok[j - 1] and ok[j]]
            if len(pairs) >= need:
                a = np.array([vec[i] for i, _ in pairs])
                b = np.array([vec[j] for _, j in pairs])
                ang = np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), (a * b).sum(axis=1)))
                rms.append(np.mean(ang**2))
            pts = idx[ok[idx]]
            if len(pts) - 1 >= need:
                std.append(np.sqrt(np.var(xd[pts], ddof=1) + np.var(yd[pts], ddof=1)))
        rows.append(
            {
                "participant": p,
                "trial": trial,
                "eye": eye,
                "n_samples": len(t),
                "n_valid": int(ok.sum()),
                "duration_ms": duration / 1000.0,
                "off_screen_pct": 100.0
                * (ok & ~((x >= 0) & (x < 1920) & (y >= 0) & (y < 1080))).sum()
                / len(t),
                "precision_rms_s2s_deg": np.sqrt(np.median(rms)) if rms else np.nan,
                "precision_std_deg": np.median(std) if std else np.nan,
                "n_precision_windows": len(rms),
                "nominal_sampling_rate_hz": 1e6 / med,
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("window_ms", [200.0, None])
def test_trial_quality_matches_reference(seed: int, window_ms: float | None) -> None:
    samples = _samples(seed)
    got = trial_quality(
        samples, screen_px=SCREEN_PX, screen_mm=SCREEN_MM, viewing_distance_mm=DIST, window_ms=window_ms
    )
    ref = _reference(samples, window_ms)
    assert (
        got[["participant", "trial", "eye"]].values.tolist()
        == ref[["participant", "trial", "eye"]].values.tolist()
    )
    for col in ("n_samples", "n_valid", "n_precision_windows"):
        assert got[col].tolist() == ref[col].tolist(), col
    for col in (
        "duration_ms",
        "off_screen_pct",
        "precision_rms_s2s_deg",
        "precision_std_deg",
        "nominal_sampling_rate_hz",
    ):
        np.testing.assert_allclose(got[col], ref[col], rtol=1e-9, atol=1e-12, err_msg=col)
    # Input order does not matter.
    again = trial_quality(
        samples.iloc[::-1],
        screen_px=SCREEN_PX,
        screen_mm=SCREEN_MM,
        viewing_distance_mm=DIST,
        window_ms=window_ms,
    )
    pd.testing.assert_frame_equal(again, got)
