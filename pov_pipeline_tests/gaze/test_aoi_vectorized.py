"""The all-stimuli vectorized AOI mapping against a readable per-stimulus reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze.aoi import hit_test, map_fixations_to_aois, prepare_aois, prepare_stimulus_aois
from pov_pipeline.schemas import AOI_BACKGROUND, AOI_OFF_SCREEN

SCREEN = (1920, 1080)


def _random_aois(rng: np.random.Generator, n_stimuli: int) -> pd.DataFrame:
    rows = []
    for s in range(n_stimuli):
        for k in range(int(rng.integers(0, 9))):
            shape = rng.choice(["rect", "polygon", "ellipse"])
            cx, cy = rng.uniform(-100, SCREEN[0] + 100), rng.uniform(-100, SCREEN[1] + 100)
            w, h = rng.uniform(0, 400), rng.uniform(0, 300)
            points = None
            if shape == "rect":
                bbox = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                if rng.random() < 0.2:  # reversed corners
                    bbox = (bbox[2], bbox[3], bbox[0], bbox[1])
            elif shape == "ellipse":
                rx, ry = (0.0 if rng.random() < 0.1 else w / 2), h / 2
                points = [cx, cy, rx, ry]
                bbox = (cx - rx, cy - ry, cx + rx, cy + ry)
            else:
                # Star-shaped (often concave) polygon with 3..12 vertices, either orientation.
                m = int(rng.integers(3, 13))
                ang = np.sort(rng.uniform(0, 2 * np.pi, m)) * (1 if rng.random() < 0.5 else -1)
                rad = rng.uniform(0.3, 1.0, m) * max(w, 1.0) / 2
                xy = np.c_[cx + rad * np.cos(ang), cy + rad * np.sin(ang)]
                if rng.random() < 0.05:
                    xy[:] = xy[0]  # degenerate: zero area
                points = xy.ravel().tolist()
                bbox = (xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max())
            kind = "word" if k % 3 == 2 else "object"
            rows.append(
                {
                    "stimulus_id": f"s{s:03d}",
                    "aoi_id": f"word:{k}" if kind == "word" else f"obj:o{k}",
                    "aoi_kind": kind,
                    "shape": shape,
                    "x0_px": bbox[0],
                    "y0_px": bbox[1],
                    "x1_px": bbox[2],
                    "y1_px": bbox[3],
                    "points_px": points,
                }
            )
        if s % 4 == 0 and rows:
            # An exact duplicate of the previous AOI: ties broken by table order.
            rows.append({**rows[-1], "aoi_id": rows[-1]["aoi_id"] + "_dup", "stimulus_id": f"s{s:03d}"})
    frame = pd.DataFrame(rows)
    # Shuffle so that a stimulus's AOIs are not contiguous in the table.
    return frame.sample(frac=1.0, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)


def _random_fixations(rng: np.random.Generator, aois: pd.DataFrame, n: int) -> pd.DataFrame:
    stimuli = np.r_[aois["stimulus_id"].unique(), ["s_none"]]
    stim = rng.choice(stimuli, n)
    x = rng.uniform(-50, SCREEN[0] + 50, n)
    y = rng.uniform(-50, SCREEN[1] + 50, n)
    # Points exactly on AOI borders, vertices and box corners.
    on = rng.random(n) < 0.3
    picks = aois.iloc[rng.integers(0, len(aois), n)]
    x = np.where(on, picks["x0_px"].to_numpy(), x)
    y = np.where(on & (rng.random(n) < 0.5), picks["y1_px"].to_numpy(), y)
    stim = np.where(on, picks["stimulus_id"].to_numpy(), stim)
    x[rng.random(n) < 0.02] = np.nan
    x[rng.random(n) < 0.02] = SCREEN[0]  # right edge is off screen
    trial = rng.integers(1, 30, n)
    frame = pd.DataFrame(
        {
            "participant": rng.choice(["p2", "p1"], n),
            "trial": trial.astype(np.int32),
            "stimulus_id": stim,
            "event_index": rng.permutation(n),
            "onset_in_trial_ms": rng.uniform(0, 3000, n),
            "duration_ms": rng.uniform(40, 600, n),
            "x_px": x.astype(np.float32),
            "y_px": y.astype(np.float32),
        }
    )
    frame.loc[rng.random(n) < 0.01, "stimulus_id"] = None
    return frame


def _reference(fixations: pd.DataFrame, aois: pd.DataFrame, *, tol_deg: float, dpp: float, rule: str):
    """One stimulus at a time through :func:`hit_test`, the readable path."""
    out = fixations.sort_values(["participant", "trial", "event_index"], kind="stable").reset_index(drop=True)
    ids, kinds, dist, ncand = [], [], [], []
    groups = {str(k): g for k, g in aois.groupby("stimulus_id", sort=False)}
    for _, row in out.iterrows():
        x, y = float(row["x_px"]), float(row["y_px"])
        if not (0 <= x < SCREEN[0] and 0 <= y < SCREEN[1]):
            ids.append(AOI_OFF_SCREEN), kinds.append(AOI_OFF_SCREEN), dist.append(np.nan), ncand.append(0)
            continue
        group = groups.get(str(row["stimulus_id"])) if pd.notna(row["stimulus_id"]) else None
        if group is None:
            ids.append(AOI_BACKGROUND), kinds.append(AOI_BACKGROUND), dist.append(np.inf), ncand.append(0)
            continue
        i, d, c = hit_test(np.array([x]), np.array([y]), group, tolerance_px=tol_deg / dpp, overlap_rule=rule)
        hit = i[0] >= 0
        ids.append(group["aoi_id"].iloc[i[0]] if hit else AOI_BACKGROUND)
        kinds.append(group["aoi_kind"].iloc[i[0]] if hit else AOI_BACKGROUND)
        dist.append(d[0])
        ncand.append(c[0])
    out["aoi_id"] = pd.Series(ids, dtype="str")
    out["aoi_kind"] = pd.Series(kinds, dtype="str")
    out["distance_deg"] = np.asarray(dist, dtype=np.float64) * dpp
    out["n_candidates"] = np.asarray(ncand, dtype=np.int32)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rule", ["smallest", "nearest_centroid"])
def test_map_matches_per_stimulus_reference(seed: int, rule: str) -> None:
    rng = np.random.default_rng(seed)
    aois = _random_aois(rng, 12)
    fix = _random_fixations(rng, aois, 400)
    tol = [0.0, 0.5, 3.0][seed]
    got = map_fixations_to_aois(
        fix, aois, screen_px=SCREEN, tolerance_deg=tol, deg_per_px=0.025, overlap_rule=rule
    )
    want = _reference(fix, aois, tol_deg=tol, dpp=0.025, rule=rule)
    # Bit-for-bit: same arithmetic per (fixation, AOI) pair as the per-stimulus path.
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert (got["n_candidates"] > 1).any() and (got["aoi_id"] == AOI_OFF_SCREEN).any()
    # The prepared form gives the same table.
    again = map_fixations_to_aois(
        fix,
        prepare_stimulus_aois(aois),
        screen_px=SCREEN,
        tolerance_deg=tol,
        deg_per_px=0.025,
        overlap_rule=rule,
    )
    pd.testing.assert_frame_equal(again, got, check_exact=True)


def test_prepared_areas_and_centroids_match_per_stimulus() -> None:
    aois = _random_aois(np.random.default_rng(5), 20)
    st = prepare_stimulus_aois(aois)
    for k, sid in enumerate(st.stimulus_ids):
        group = aois[aois["stimulus_id"] == sid]
        ref = prepare_aois(group)
        sl = slice(st.offsets[k], st.offsets[k + 1])
        np.testing.assert_array_equal(st.area_px2[sl], ref.area_px2)
        np.testing.assert_array_equal(st.centroid_px[sl], ref.centroid_px)
        assert list(st.aoi_id[sl]) == group["aoi_id"].tolist()


def test_map_without_aois_and_without_fixations() -> None:
    aois = _random_aois(np.random.default_rng(3), 3)
    fix = _random_fixations(np.random.default_rng(4), aois, 20)
    none = map_fixations_to_aois(fix, aois.iloc[:0], screen_px=SCREEN, deg_per_px=0.025)
    assert set(none["aoi_id"]) <= {AOI_BACKGROUND, AOI_OFF_SCREEN}
    assert np.isinf(none.loc[none["aoi_id"] == AOI_BACKGROUND, "distance_deg"]).all()
    empty = map_fixations_to_aois(fix.iloc[:0], aois, screen_px=SCREEN, deg_per_px=0.025)
    assert len(empty) == 0 and "aoi_id" in empty


@pytest.mark.parametrize("seed", [6, 7])
def test_map_of_sorted_fixations_skips_the_sort(seed: int) -> None:
    """A session's fixations come sorted: same table, in and out of order, with any index."""
    rng = np.random.default_rng(seed)
    aois = _random_aois(rng, 10)
    fix = _random_fixations(rng, aois, 300)
    prepared = prepare_stimulus_aois(aois)
    kw = {"screen_px": SCREEN, "deg_per_px": 0.025, "tolerance_deg": float(rng.uniform(0.0, 3.0))}
    want = _reference(fix, aois, tol_deg=kw["tolerance_deg"], dpp=0.025, rule="smallest")
    ordered = fix.sort_values(["participant", "trial", "event_index"]).reset_index(drop=True)
    for frame in (fix, ordered, ordered.set_axis(np.arange(len(ordered)) * 3)):
        got = map_fixations_to_aois(frame, prepared, **kw)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    # Mapping an aoi_hits table again replaces its hit columns in place.
    again = map_fixations_to_aois(want, prepared, **kw)
    pd.testing.assert_frame_equal(again, want, check_exact=True)
