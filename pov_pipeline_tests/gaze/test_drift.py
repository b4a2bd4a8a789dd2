"""Systematic gaze offset estimated from AOI landing positions (``pov_pipeline.gaze.drift``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze.drift import (
    aoi_boxes_per_fixation,
    apply_gaze_offsets,
    estimate_gaze_offset,
    gaze_offsets,
)

PX_PER_DEG = 40.0


def _caption_and_objects() -> np.ndarray:
    """One stimulus: five words on a line (1° tall, 2–4° wide) and three objects."""
    words = [(300 + 130 * i, 900, 300 + 130 * i + w, 940) for i, w in enumerate([80, 120, 100, 90, 110])]
    objects = [(400, 200, 700, 500), (900, 300, 1100, 450), (1200, 150, 1500, 400)]
    return np.array(words + objects, dtype=float)


def _landings(
    boxes: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    which = rng.integers(0, len(boxes), n)
    b = boxes[which]
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    x = cx + 0.2 * (b[:, 2] - b[:, 0]) * rng.standard_normal(n)
    y = cy + 0.12 * (b[:, 3] - b[:, 1]) * rng.standard_normal(n)
    return x, y, np.broadcast_to(boxes, (n, *boxes.shape)).copy()


@pytest.mark.parametrize("offset_deg", [(0.6, -0.4), (-1.2, 0.3), (0.0, 0.9)])
def test_known_offset_is_recovered_within_a_grid_step(offset_deg: tuple[float, float]) -> None:
    rng = np.random.default_rng(1)
    x, y, boxes = _landings(_caption_and_objects(), 600, rng)
    dx, dy = (v * PX_PER_DEG for v in offset_deg)
    est = estimate_gaze_offset(x + dx, y + dy, boxes, px_per_deg=PX_PER_DEG)
    assert est.applied
    assert abs(est.offset_x_px - dx) <= 0.1 * PX_PER_DEG
    assert abs(est.offset_y_px - dy) <= 0.1 * PX_PER_DEG
    assert est.inside_share_after > est.inside_share_before + 0.1
    assert est.n_fixations == 600


def test_well_calibrated_data_is_left_alone() -> None:
    rng = np.random.default_rng(2)
    x, y, boxes = _landings(_caption_and_objects(), 600, rng)
    est = estimate_gaze_offset(x, y, boxes, px_per_deg=PX_PER_DEG)
    assert not est.applied
    assert (est.offset_x_px, est.offset_y_px) == (0.0, 0.0)


def test_too_few_fixations_and_nan_centroids_give_no_correction() -> None:
    rng = np.random.default_rng(3)
    x, y, boxes = _landings(_caption_and_objects(), 20, rng)
    x[:5] = np.nan
    est = estimate_gaze_offset(x + 30, y, boxes, px_per_deg=PX_PER_DEG)
    assert est.n_fixations == 15 and not est.applied


def test_shape_errors_are_reported() -> None:
    with pytest.raises(ValueError, match=r"\(n, K, 4\)"):
        estimate_gaze_offset([1.0, 2.0], [1.0, 2.0], np.zeros((3, 2, 4)), px_per_deg=PX_PER_DEG)


def test_demo_participants_calibration_offsets_are_recovered() -> None:
    # The demo generator's scanpaths land inside its AOIs; its participants add a 0.2–1° calibration
    # offset to every sample. The estimate must find that offset from the landings alone.
    from pov_pipeline.demo.participants import make_participant, px_per_deg
    from pov_pipeline.demo.scanpath import simulate_scanpaths, stimulus_arrays
    from pov_pipeline.demo.stimuli import make_stimuli

    stimuli = make_stimuli(40, seed=5)
    arrays = stimulus_arrays(stimuli)
    ppd = px_per_deg()
    boxes_all = np.where((arrays.shape >= 0)[..., None], arrays.bbox, np.nan)
    for k in (1, 2, 3):
        participant = make_participant(5, k)
        rng = np.random.default_rng([5, k])
        paths = simulate_scanpaths(arrays, np.arange(len(stimuli)), participant, 3.0, rng)
        real = np.arange(paths.state.shape[1])[None, :] < paths.n_fix[:, None]
        stim = np.broadcast_to(paths.stim[:, None], real.shape)[real]
        dx, dy = participant.calib_offset_px
        x = paths.x_px[real] + dx + rng.normal(0, 0.1 * ppd, real.sum())
        y = paths.y_px[real] + dy + rng.normal(0, 0.1 * ppd, real.sum())
        est = estimate_gaze_offset(x, y, boxes_all[stim], px_per_deg=ppd)
        assert est.applied
        assert np.hypot(est.offset_x_px - dx, est.offset_y_px - dy) < 0.15 * ppd, (k, est, (dx, dy))


def test_table_functions_group_by_participant_and_eye() -> None:
    rng = np.random.default_rng(4)
    boxes = _caption_and_objects()
    aois = pd.DataFrame(
        {
            "stimulus_id": "s1",
            "x0_px": boxes[:, 0],
            "y0_px": boxes[:, 1],
            "x1_px": boxes[:, 2],
            "y1_px": boxes[:, 3],
        }
    )
    frames = []
    for participant, eye, shift in (("p1", "left", (24.0, -16.0)), ("p2", "right", (0.0, 0.0))):
        x, y, _ = _landings(boxes, 300, rng)
        frames.append(
            pd.DataFrame(
                {
                    "participant": participant,
                    "eye": eye,
                    "stimulus_id": "s1",
                    "x_px": x + shift[0],
                    "y_px": y + shift[1],
                }
            )
        )
    fix = pd.concat(frames, ignore_index=True)
    fix.loc[0, "stimulus_id"] = "unknown"  # no AOIs: counted, never inside
    table = gaze_offsets(fix, aois, px_per_deg=PX_PER_DEG)
    assert list(table["participant"]) == ["p1", "p2"]
    assert list(table["applied"]) == [True, False]
    assert table.loc[0, "offset_x_px"] == pytest.approx(24.0, abs=4.0)
    assert table.loc[0, "offset_y_deg"] == pytest.approx(-16.0 / PX_PER_DEG, abs=0.1)
    corrected = apply_gaze_offsets(fix, table)
    moved = corrected["participant"] == "p1"
    np.testing.assert_allclose(
        corrected.loc[moved, "x_px"], fix.loc[moved, "x_px"] - table.loc[0, "offset_x_px"]
    )
    np.testing.assert_array_equal(corrected.loc[~moved, "y_px"], fix.loc[~moved, "y_px"])


def test_boxes_are_padded_per_stimulus() -> None:
    aois = pd.DataFrame(
        {
            "stimulus_id": ["a", "b", "b"],
            "x0_px": [0.0, 10.0, 20.0],
            "y0_px": [0.0, 10.0, 20.0],
            "x1_px": [1.0, 11.0, 21.0],
            "y1_px": [1.0, 11.0, 21.0],
        }
    )
    out = aoi_boxes_per_fixation(["b", "a", "zzz"], aois)
    assert out.shape == (3, 2, 4)
    np.testing.assert_array_equal(out[0], [[10, 10, 11, 11], [20, 20, 21, 21]])
    np.testing.assert_array_equal(out[1, 0], [0, 0, 1, 1])
    assert np.isnan(out[1, 1]).all() and np.isnan(out[2]).all()
