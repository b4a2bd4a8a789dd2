"""The fast paths of ``pov_pipeline.gaze.drift`` give exactly what the plain array and pandas code gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze import drift
from pov_pipeline.gaze.drift import (
    aoi_box_table,
    aoi_boxes_per_fixation,
    apply_gaze_offsets,
    estimate_gaze_offset,
    gaze_offsets,
)

PX_PER_DEG = 40.0


def _random_boxes(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = rng.uniform(0, 1920, n), rng.uniform(0, 1080, n)
    b0, b1 = rng.uniform(0, 1800, (n, k)), rng.uniform(0, 1000, (n, k))
    boxes = np.stack([b0, b1, b0 + rng.uniform(5, 300, (n, k)), b1 + rng.uniform(5, 200, (n, k))], axis=-1)
    boxes[rng.random((n, k)) < 0.3] = np.nan  # padding
    if n:
        boxes[0, 0, 2] = np.inf  # unbounded sides are allowed
    return x, y, boxes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_counts_match_the_array_code(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y, boxes = _random_boxes(rng, 400, 7)
    offsets = np.arange(-40, 41) * 0.05 * PX_PER_DEG
    pos = np.arange(x.size)
    want = drift._inside_counts(x, y, boxes, offsets)
    got = drift._grid_counts_kernel(x, y, pos, boxes, offsets[0], offsets[1] - offsets[0], offsets.size)
    np.testing.assert_array_equal(got, want)
    assert drift._inside_count_kernel(x, y, pos, boxes) / x.size == drift._inside_share(x, y, boxes)


def test_estimate_on_incomplete_boxes_takes_the_array_code(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    x, y, boxes = _random_boxes(rng, 200, 5)
    blank = boxes.copy()
    blank[1, 0] = np.nan
    want = estimate_gaze_offset(x, y, blank, px_per_deg=PX_PER_DEG, min_fixations=5, min_gain=0.0)
    # Finite x0 but a NaN y0: never inside, as a blank slot, but not for the compiled loops.
    boxes[1, 0] = [10.0, np.nan, 50.0, 60.0]

    def compiled(*_: object) -> None:
        raise AssertionError("incomplete boxes must take the array code")

    monkeypatch.setattr(drift, "_grid_counts_kernel", compiled)
    monkeypatch.setattr(drift, "_inside_count_kernel", compiled)
    assert estimate_gaze_offset(x, y, boxes, px_per_deg=PX_PER_DEG, min_fixations=5, min_gain=0.0) == want


def _fixations(rng: np.random.Generator, groups: list[tuple[str, str]], n: int) -> pd.DataFrame:
    frames = []
    for participant, eye in groups:
        frames.append(
            pd.DataFrame(
                {
                    "participant": participant,
                    "eye": eye,
                    "stimulus_id": rng.choice(["s1", "s2", "s3", "unknown"], n),
                    "x_px": rng.uniform(0, 1920, n),
                    "y_px": rng.uniform(0, 1080, n),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    return out.astype({"participant": "str", "eye": "str", "stimulus_id": "str"})


def _aois(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for s in ("s1", "s2", "s3"):
        for _ in range(int(rng.integers(1, 9))):
            x0, y0 = rng.uniform(0, 1700), rng.uniform(0, 900)
            rows.append({"stimulus_id": s, "x0_px": x0, "y0_px": y0, "x1_px": x0 + 200, "y1_px": y0 + 150})
    return pd.DataFrame(rows)


def _reference_offsets(fixations: pd.DataFrame, aois: pd.DataFrame) -> pd.DataFrame:
    """One estimate per ``groupby`` group on the gathered boxes: the readable path."""
    rows = []
    for (participant, eye), g in fixations.groupby(["participant", "eye"], sort=True):
        boxes = aoi_boxes_per_fixation(g["stimulus_id"].to_numpy(dtype=object), aois)
        est = estimate_gaze_offset(g["x_px"].to_numpy(), g["y_px"].to_numpy(), boxes, px_per_deg=PX_PER_DEG)
        rows.append(
            {
                "participant": participant,
                "eye": eye,
                "offset_x_px": est.offset_x_px,
                "offset_y_px": est.offset_y_px,
                "offset_x_deg": est.offset_x_px / PX_PER_DEG,
                "offset_y_deg": est.offset_y_px / PX_PER_DEG,
                "n_fixations": est.n_fixations,
                "inside_share_before": est.inside_share_before,
                "inside_share_after": est.inside_share_after,
                "applied": est.applied,
            }
        )
    return pd.DataFrame(rows, columns=drift.GAZE_OFFSET_COLUMNS)


@pytest.mark.parametrize(
    "groups",
    [
        [("p1", "binocular")],  # one session: no grouping
        [("p1", "left"), ("p1", "right")],
        [("p2", "left"), ("p1", "left"), ("p3", "right")],
    ],
)
def test_offsets_of_one_and_of_several_groups(groups: list[tuple[str, str]]) -> None:
    rng = np.random.default_rng(len(groups))
    aois = _aois(rng)
    fix = _fixations(rng, groups, 150)
    want = _reference_offsets(fix, aois)
    for table in (aois, aoi_box_table(aois)):
        got = gaze_offsets(fix, table, px_per_deg=PX_PER_DEG)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    # Object columns and missing ids take the general path, with the same result.
    objects = fix.astype(object)
    objects.loc[3, "stimulus_id"] = np.nan
    pd.testing.assert_frame_equal(
        gaze_offsets(objects, aois, px_per_deg=PX_PER_DEG),
        _reference_offsets(objects, aois),
        check_exact=True,
    )


def test_box_rows_match_str_lookup() -> None:
    aois = _aois(np.random.default_rng(7))
    ids = pd.Series(["s2", None, "nope", "s1", "s3", "nan"], dtype="str")
    want = aoi_boxes_per_fixation(ids.to_numpy(dtype=object), aois)
    for arg in (ids, ids.astype(object), ids.tolist()):
        np.testing.assert_array_equal(aoi_boxes_per_fixation(arg, aois), want)


def _reference_apply(fixations: pd.DataFrame, offsets: pd.DataFrame) -> pd.DataFrame:
    out = fixations.copy()
    if not len(out) or not len(offsets):
        return out
    key = out[["participant", "eye"]].merge(
        offsets[["participant", "eye", "offset_x_px", "offset_y_px"]], on=["participant", "eye"], how="left"
    )
    out["x_px"] = out["x_px"].to_numpy() - key["offset_x_px"].fillna(0.0).to_numpy()
    out["y_px"] = out["y_px"].to_numpy() - key["offset_y_px"].fillna(0.0).to_numpy()
    return out


def test_apply_matches_the_merge() -> None:
    rng = np.random.default_rng(9)
    fix = _fixations(rng, [("p1", "left"), ("p1", "right"), ("p2", "left")], 40)
    offsets = pd.DataFrame(
        {
            "participant": ["p1", "p2", "p9", "p1"],
            "eye": ["left", "left", "left", "right"],
            "offset_x_px": [3.5, np.nan, 7.0, -np.inf],
            "offset_y_px": [-1.25, 2.0, 1.0, 0.5],
        }
    ).astype({"participant": "str", "eye": "str"})
    cases = [
        offsets,
        offsets.iloc[:1],
        offsets.iloc[0:0],
        offsets.astype({"participant": object}),
        offsets.assign(participant=pd.array(["p1", None, "p9", "p1"], dtype="str")),
    ]
    for table in cases:
        pd.testing.assert_frame_equal(
            apply_gaze_offsets(fix, table), _reference_apply(fix, table), check_exact=True
        )
    # A duplicate key repeats rows in the merge, which fails as before.
    with pytest.raises(ValueError):
        _reference_apply(fix, pd.concat([offsets, offsets]))
    with pytest.raises(ValueError):
        apply_gaze_offsets(fix, pd.concat([offsets, offsets]))
    # The input is left alone.
    before = fix.copy()
    apply_gaze_offsets(fix, offsets)
    pd.testing.assert_frame_equal(fix, before)
