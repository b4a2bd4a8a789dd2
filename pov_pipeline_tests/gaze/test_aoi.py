"""AOI hit-testing, fixation mapping and dwell metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze.aoi import (
    aoi_distances,
    deg_per_px_at_centre,
    dwell_metrics,
    hit_test,
    map_fixations_to_aois,
    prepare_aois,
)


def _aoi(aoi_id: str, shape: str, bbox: tuple[float, float, float, float], points=None, stim="s1"):
    kind = "word" if aoi_id.startswith("word:") else "object"
    return {
        "stimulus_id": stim,
        "aoi_id": aoi_id,
        "aoi_kind": kind,
        "label": aoi_id.split(":", 1)[1],
        "shape": shape,
        "x0_px": bbox[0],
        "y0_px": bbox[1],
        "x1_px": bbox[2],
        "y1_px": bbox[3],
        "points_px": points,
        "word_index": int(aoi_id.split(":")[1]) if kind == "word" else -1,
        "is_central": False,
    }


# A concave "C"-shaped polygon opening to the right: the notch (x 40..100, y 30..70) is outside.
C_SHAPE = [0, 0, 100, 0, 100, 30, 40, 30, 40, 70, 100, 70, 100, 100, 0, 100]


@pytest.fixture
def aois() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _aoi("obj:table", "rect", (100, 100, 500, 400)),
            _aoi("obj:cup", "rect", (200, 150, 260, 210)),  # nested in the table
            _aoi(
                "obj:c",
                "polygon",
                (600, 100, 700, 200),
                [v + (600 if i % 2 == 0 else 100) for i, v in enumerate(C_SHAPE)],
            ),
            _aoi("obj:ball", "ellipse", (800, 100, 1000, 200), [900, 150, 100, 50]),
            _aoi("word:0", "rect", (100, 900, 180, 940)),
        ]
    )


def test_rect_border_is_inclusive(aois: pd.DataFrame) -> None:
    word = aois.iloc[[4]]
    x = np.array([100.0, 180.0, 140.0, 99.9, 180.1])
    y = np.array([900.0, 940.0, 900.0, 920.0, 920.0])
    idx, dist, ncand = hit_test(x, y, word, tolerance_px=0.0)
    np.testing.assert_array_equal(idx, [0, 0, 0, -1, -1])
    np.testing.assert_allclose(dist, [0, 0, 0, 0.1, 0.1], atol=1e-9)
    np.testing.assert_array_equal(ncand, [1, 1, 1, 0, 0])


def test_polygon_and_ellipse_border_inclusive(aois: pd.DataFrame) -> None:
    # Polygon vertex, polygon edge inside the notch, ellipse extreme points.
    x = np.array([600.0, 640.0, 1000.0, 900.0, 900.0])
    y = np.array([100.0, 150.0, 150.0, 100.0, 200.0])
    idx, dist, _ = hit_test(x, y, aois, tolerance_px=0.0)
    np.testing.assert_array_equal(idx, [2, 2, 3, 3, 3])
    np.testing.assert_allclose(dist, 0.0, atol=1e-9)


def test_concave_polygon_notch_is_outside(aois: pd.DataFrame) -> None:
    poly = aois.iloc[[2]]
    # Points in the left bar, in the notch, in the top arm, in the bottom arm.
    x = np.array([620.0, 680.0, 680.0, 680.0, 650.0])
    y = np.array([150.0, 150.0, 115.0, 185.0, 150.0])
    idx, dist, _ = hit_test(x, y, poly, tolerance_px=0.0)
    np.testing.assert_array_equal(idx, [0, -1, 0, 0, -1])
    # Notch points: nearest boundary is the notch's inner wall at x = 640 or its top/bottom.
    np.testing.assert_allclose(dist[[1, 4]], [20.0, 10.0])


def test_ellipse_distance_matches_brute_force() -> None:
    aois = pd.DataFrame([_aoi("obj:e", "ellipse", (0, 0, 0, 0), [300, 200, 120, 40])])
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 600, 300)
    y = rng.uniform(0, 400, 300)
    d = aoi_distances(x, y, aois)[:, 0]
    theta = np.linspace(0, 2 * np.pi, 100_001)
    ex, ey = 300 + 120 * np.cos(theta), 200 + 40 * np.sin(theta)
    brute = np.sqrt(((x[:, None] - ex) ** 2 + (y[:, None] - ey) ** 2).min(axis=1))
    inside = ((x - 300) / 120) ** 2 + ((y - 200) / 40) ** 2 <= 1
    np.testing.assert_allclose(d, np.where(inside, 0.0, brute), atol=1e-2)
    # Tall ellipse (ry > rx) goes through the axis swap.
    tall = pd.DataFrame([_aoi("obj:t", "ellipse", (0, 0, 0, 0), [0, 0, 10, 50])])
    np.testing.assert_allclose(
        aoi_distances(np.array([0.0, 30.0]), np.array([70.0, 0.0]), tall)[:, 0], [20.0, 20.0]
    )


def test_overlap_nested_smallest_wins(aois: pd.DataFrame) -> None:
    # Inside both table and cup: the smaller (cup) wins; inside the table only: table.
    idx, dist, ncand = hit_test(np.array([230.0, 300.0]), np.array([180.0, 300.0]), aois)
    np.testing.assert_array_equal(idx, [1, 0])
    np.testing.assert_array_equal(ncand, [2, 1])
    np.testing.assert_array_equal(dist, [0.0, 0.0])


def test_overlap_nearest_centroid_rule() -> None:
    # Two equal-area rectangles overlapping on x 100..150; the point is nearer B's centre.
    two = pd.DataFrame([_aoi("obj:a", "rect", (0, 0, 150, 100)), _aoi("obj:b", "rect", (100, 0, 250, 100))])
    idx, _, ncand = hit_test(
        np.array([140.0, 110.0]), np.array([50.0, 50.0]), two, overlap_rule="nearest_centroid"
    )
    np.testing.assert_array_equal(idx, [1, 0])
    np.testing.assert_array_equal(ncand, [2, 2])
    # Exactly in the middle with equal areas: deterministic first row.
    idx, _, _ = hit_test(np.array([125.0]), np.array([50.0]), two)
    np.testing.assert_array_equal(idx, [0])


def test_inside_beats_near_miss_and_tolerance(aois: pd.DataFrame) -> None:
    # 5 px right of the cup, inside the table: the table (distance 0) beats the cup (5 px).
    idx, dist, ncand = hit_test(np.array([265.0]), np.array([180.0]), aois, tolerance_px=10.0)
    assert idx[0] == 0 and dist[0] == 0.0 and ncand[0] == 2
    # Near miss of the word box (8 px below) is captured with 10 px tolerance, a 30 px miss is not.
    idx, dist, ncand = hit_test(np.array([140.0, 140.0]), np.array([948.0, 970.0]), aois, tolerance_px=10.0)
    np.testing.assert_array_equal(idx, [4, -1])
    np.testing.assert_allclose(dist, [8.0, 30.0])
    np.testing.assert_array_equal(ncand, [1, 0])
    # Two near misses: the nearer wins.
    two = pd.DataFrame([_aoi("obj:a", "rect", (0, 0, 100, 100)), _aoi("obj:b", "rect", (110, 0, 200, 100))])
    idx, dist, ncand = hit_test(np.array([104.0]), np.array([50.0]), two, tolerance_px=10.0)
    assert idx[0] == 0 and dist[0] == 4.0 and ncand[0] == 2


def test_hit_test_nan_and_no_aois(aois: pd.DataFrame) -> None:
    idx, dist, ncand = hit_test(np.array([np.nan]), np.array([1.0]), aois, tolerance_px=5)
    assert idx[0] == -1 and np.isnan(dist[0]) and ncand[0] == 0
    idx, dist, _ = hit_test(np.array([1.0]), np.array([1.0]), aois.iloc[:0])
    assert idx[0] == -1 and np.isinf(dist[0])


def test_prepare_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="polygon"):
        prepare_aois(pd.DataFrame([_aoi("obj:x", "polygon", (0, 0, 1, 1), [0, 0, 1, 1])]))
    with pytest.raises(ValueError, match="ellipse"):
        prepare_aois(pd.DataFrame([_aoi("obj:x", "ellipse", (0, 0, 1, 1), [0, 0, 1])]))
    with pytest.raises(ValueError, match="shape"):
        prepare_aois(pd.DataFrame([_aoi("obj:x", "star", (0, 0, 1, 1))]))


def _fixations(rows: list[tuple], participant: str = "p1") -> pd.DataFrame:
    """rows: (trial, stimulus_id, x, y, duration_ms); onsets are back to back within a trial."""
    frame = pd.DataFrame(rows, columns=["trial", "stimulus_id", "x_px", "y_px", "duration_ms"])
    frame.insert(0, "participant", participant)
    frame["event_index"] = frame.groupby("trial").cumcount()
    frame["onset_in_trial_ms"] = frame.groupby("trial")["duration_ms"].cumsum() - frame["duration_ms"]
    frame["onset_ms"] = frame["onset_in_trial_ms"] + 10_000.0 * frame["trial"]
    frame["offset_ms"] = frame["onset_ms"] + frame["duration_ms"]
    return frame


def test_map_fixations_per_stimulus_and_off_screen(aois: pd.DataFrame) -> None:
    other = pd.DataFrame([_aoi("obj:cup", "rect", (0, 0, 50, 50), stim="s2")])
    all_aois = pd.concat([aois, other], ignore_index=True)
    fix = _fixations(
        [
            (1, "s1", 230.0, 180.0, 200.0),  # cup (nested in table)
            (1, "s1", 10.0, 10.0, 150.0),  # s1 has nothing there: background
            (1, "s1", -5.0, 500.0, 100.0),  # left of the screen
            (1, "s1", 140.0, 1080.0, 100.0),  # y == height is off screen
            (2, "s2", 10.0, 10.0, 300.0),  # s2's own cup
            (2, "s2", 230.0, 180.0, 300.0),  # s1's cup location, but s2 has no AOI there
            (2, "s2", np.nan, np.nan, 300.0),  # no position
        ]
    )
    dpp = 0.025
    hits = map_fixations_to_aois(
        fix.iloc[::-1], all_aois, screen_px=(1920, 1080), tolerance_deg=0.5, deg_per_px=dpp
    )
    assert hits["event_index"].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert hits["aoi_id"].tolist() == [
        "obj:cup",
        "background",
        "off_screen",
        "off_screen",
        "obj:cup",
        "background",
        "off_screen",
    ]
    assert hits["aoi_kind"].tolist() == [
        "object",
        "background",
        "off_screen",
        "off_screen",
        "object",
        "background",
        "off_screen",
    ]
    assert hits["n_candidates"].tolist() == [2, 0, 0, 0, 1, 0, 0]
    assert hits["distance_deg"].iloc[0] == 0.0
    # Background: distance to the nearest AOI of the stimulus, in degrees.
    assert hits["distance_deg"].iloc[1] == pytest.approx(np.hypot(90, 90) * dpp)
    assert hits["distance_deg"].iloc[5] == pytest.approx(np.hypot(180, 130) * dpp)
    assert hits[["distance_deg"]].iloc[[2, 3, 6]].isna().all().all()
    assert hits["duration_ms"].tolist() == fix["duration_ms"].tolist()


def test_map_fixations_tolerance_in_degrees(aois: pd.DataFrame) -> None:
    # 0.5° at 0.025 °/px = 20 px: 15 px below the word box is captured, 25 px is not.
    fix = _fixations([(1, "s1", 140.0, 955.0, 100.0), (1, "s1", 140.0, 965.0, 100.0)])
    hits = map_fixations_to_aois(fix, aois, screen_px=(1920, 1080), tolerance_deg=0.5, deg_per_px=0.025)
    assert hits["aoi_id"].tolist() == ["word:0", "background"]
    np.testing.assert_allclose(hits["distance_deg"], [15 * 0.025, 25 * 0.025])


def test_deg_per_px_at_centre() -> None:
    # 1920 px over 531 mm at 650 mm: about 0.0244 °/px horizontally, similar vertically.
    dpp = deg_per_px_at_centre((1920, 1080), (531.0, 299.0), 650.0)
    assert dpp == pytest.approx(np.degrees(np.arctan(531 / 1920 / 650)), rel=1e-3)


def test_dwell_metrics_visits_and_ttff() -> None:
    # Trial 1 sequence: A A B A C A  -> A: 3 visits (revisits 2), TTFF 0; B: 1 visit, TTFF 300.
    hits = pd.DataFrame(
        {
            "participant": "p1",
            "trial": 1,
            "stimulus_id": "s1",
            "event_index": [0, 1, 2, 3, 4, 5],
            "onset_in_trial_ms": [0.0, 100.0, 300.0, 450.0, 700.0, 800.0],
            "duration_ms": [90.0, 180.0, 140.0, 240.0, 90.0, 50.0],
            "aoi_id": ["obj:a", "obj:a", "obj:b", "obj:a", "background", "obj:a"],
        }
    )
    # A second trial whose first fixation is also on obj:a must not merge visits across trials.
    trial2 = pd.DataFrame(
        {
            "participant": "p1",
            "trial": 2,
            "stimulus_id": "s1",
            "event_index": [0],
            "onset_in_trial_ms": [120.0],
            "duration_ms": [60.0],
            "aoi_id": ["obj:a"],
        }
    )
    both = pd.concat([trial2, hits.iloc[::-1]], ignore_index=True)
    aois = pd.DataFrame(
        [
            _aoi("obj:a", "rect", (0, 0, 1, 1)),
            _aoi("obj:b", "rect", (0, 0, 1, 1)),
            _aoi("word:0", "rect", (0, 0, 1, 1)),
        ]
    )
    dm = dwell_metrics(both, aois=aois).set_index(["trial", "aoi_id"])
    a = dm.loc[(1, "obj:a")]
    assert a["time_to_first_fixation_ms"] == 0.0
    assert a["first_fixation_duration_ms"] == 90.0
    assert a["dwell_time_ms"] == 90 + 180 + 240 + 50
    assert a["fixation_count"] == 4 and a["visit_count"] == 3 and a["revisit_count"] == 2
    assert a["dwell_share"] == pytest.approx(560 / 790)
    b = dm.loc[(1, "obj:b")]
    assert (b["time_to_first_fixation_ms"], b["visit_count"], b["revisit_count"]) == (300.0, 1, 0)
    assert dm.loc[(1, "background"), "aoi_kind"] == "background"
    assert dm.loc[(2, "obj:a"), "visit_count"] == 1
    assert dm.loc[(2, "obj:a"), "time_to_first_fixation_ms"] == 120.0
    # Unvisited AOIs appear with zero dwell and NaN times.
    w = dm.loc[(1, "word:0")]
    assert w["dwell_time_ms"] == 0.0 and w["fixation_count"] == 0 and np.isnan(w["time_to_first_fixation_ms"])
    assert w["aoi_kind"] == "word" and w["revisit_count"] == 0
    assert len(dm.loc[2]) == 3  # obj:a visited + obj:b and word:0 unvisited
    assert dm["visit_count"].dtype == np.int32


def test_polygon_equals_rect_for_a_box() -> None:
    # The same box as a rect and as a (clockwise, then counter-clockwise) polygon.
    box = (120.0, 80.0, 420.0, 260.0)
    cw = [120, 80, 420, 80, 420, 260, 120, 260]
    ccw = [120, 260, 420, 260, 420, 80, 120, 80]
    aois = pd.DataFrame(
        [_aoi("obj:r", "rect", box), _aoi("obj:p", "polygon", box, cw), _aoi("obj:q", "polygon", box, ccw)]
    )
    rng = np.random.default_rng(123)
    x = np.r_[rng.uniform(0, 600, 2000), [120.0, 420.0, 270.0]]
    y = np.r_[rng.uniform(0, 400, 2000), [80.0, 170.0, 260.0]]
    d = aoi_distances(x, y, aois)
    np.testing.assert_allclose(d[:, 1], d[:, 0], atol=1e-9)
    np.testing.assert_allclose(d[:, 2], d[:, 0], atol=1e-9)
    assert (d[-3:] == 0).all()
