"""Geometry against the Lund ``pixels2degrees.m`` formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pov_pipeline.gaze.geometry import ScreenGeometry, pixels_to_degrees


def lund_formula(px: float) -> float:
    return 2 * math.atan(px * (0.38 / 1024) / 0.67 / 2) * 180 / math.pi


def test_lund_deg_per_px_matches_published_value() -> None:
    g = ScreenGeometry.lund2013()
    assert g.deg_per_px == pytest.approx(lund_formula(1.0), rel=1e-12)
    assert g.deg_per_px == pytest.approx(0.0317, abs=5e-5)


@pytest.mark.parametrize("size_px", [1.0, 10.0, 100.0, 512.0, 1024.0])
def test_pixels_to_degrees_matches_lund_formula(size_px: float) -> None:
    g = ScreenGeometry.lund2013()
    assert float(pixels_to_degrees(size_px, g)) == pytest.approx(lund_formula(size_px), rel=1e-12)


def test_px_to_deg_is_zero_at_centre_and_antisymmetric() -> None:
    g = ScreenGeometry.lund2013()
    x, y = g.px_to_deg([512.0, 512.0 + 200, 512.0 - 200], [384.0, 384.0 - 100, 384.0 + 100])
    assert x[0] == 0.0 and y[0] == 0.0
    assert x[1] == pytest.approx(-x[2]) and y[1] == pytest.approx(-y[2])
    # Half the screen width from the centre subtends half the full-screen angle.
    assert g.px_to_deg(1024.0, 384.0)[0] == pytest.approx(g.screen_width_deg / 2)
    assert g.screen_width_deg == pytest.approx(31.7, abs=0.1)


def test_px_deg_round_trip_and_nan() -> None:
    g = ScreenGeometry(1920, 1080, 531.0, 299.0, 650.0)
    xs = np.array([0.0, 100.5, 960.0, 1919.0, np.nan])
    ys = np.array([0.0, 1079.0, 540.0, 12.0, np.nan])
    xd, yd = g.px_to_deg(xs, ys)
    xb, yb = g.deg_to_px(xd, yd)
    np.testing.assert_allclose(xb[:-1], xs[:-1], atol=1e-9)
    np.testing.assert_allclose(yb[:-1], ys[:-1], atol=1e-9)
    assert np.isnan(xd[-1]) and np.isnan(yb[-1])


def test_invalid_geometry_rejected() -> None:
    with pytest.raises(ValueError, match="viewing_distance_mm"):
        ScreenGeometry(1024, 768, 380.0, 300.0, 0.0)


def test_from_session_reads_the_screen_fields() -> None:
    from pov_pipeline.ingest import SessionInfo

    session = SessionInfo(
        participant_id="p001",
        tracker="EyeLink",
        format="asc",
        gaze_file="gaze.asc",
        sampling_rate_hz=500.0,
        screen_px=(1920, 1080),
        screen_mm=(531.0, 299.0),
        viewing_distance_mm=650.0,
        eye="left",
    )
    assert ScreenGeometry.from_session(session) == ScreenGeometry(1920, 1080, 531.0, 299.0, 650.0)
    bad = SessionInfo(**{**session.__dict__, "viewing_distance_mm": 0.0})
    with pytest.raises(ValueError, match="viewing_distance_mm"):
        ScreenGeometry.from_session(bad)
