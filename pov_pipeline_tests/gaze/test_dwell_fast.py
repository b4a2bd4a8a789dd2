"""The array path of ``dwell_metrics`` gives exactly what the pandas groupby path gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze import aoi as aoi_mod
from pov_pipeline.gaze.aoi import dwell_metrics


def _hits(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = []
    stimuli = [f"s{k:02d}" for k in range(6)]
    aoi_ids = ["obj:a", "obj:b", "word:0", "word:1", "background", "off_screen"]
    for p in ("p02", "p10", "p01"):
        for trial in rng.permutation(12)[:8]:
            stim = stimuli[int(rng.integers(0, len(stimuli)))]
            n = int(rng.integers(1, 25))
            for e in range(n):
                rows.append(
                    {
                        "participant": p,
                        "trial": np.int32(trial),
                        "stimulus_id": stim,
                        "event_index": np.int32(3 * e + int(rng.integers(0, 3))),
                        "onset_in_trial_ms": float(rng.uniform(0, 9000)),
                        # Durations with many significant bits, so summation order shows.
                        "duration_ms": float(rng.exponential(200.0)) + 1e-7 * float(rng.random()),
                        "aoi_id": aoi_ids[int(rng.integers(0, len(aoi_ids)))],
                    }
                )
    hits = pd.DataFrame(rows)
    hits["participant"] = hits["participant"].astype("str")
    hits["stimulus_id"] = hits["stimulus_id"].astype("str")
    hits["aoi_id"] = hits["aoi_id"].astype("str")
    hits = hits.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    aois = pd.DataFrame(
        [
            {"stimulus_id": s, "aoi_id": a, "aoi_kind": a.split(":")[0] if ":" in a else a}
            for s in stimuli
            for a in ("obj:a", "obj:b", "obj:c", "word:0", "word:1", "word:2")
        ]
    )
    aois["aoi_kind"] = aois["aoi_kind"].replace({"obj": "object"})
    return hits, aois


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("with_aois", [False, True])
@pytest.mark.parametrize("with_kind", [False, True])
def test_dwell_fast_matches_pandas(seed: int, with_aois: bool, with_kind: bool) -> None:
    hits, aois = _hits(seed)
    if with_kind:
        hits["aoi_kind"] = aoi_mod._kind_from_id(hits["aoi_id"])
    use = aois if with_aois else None
    fast = aoi_mod._dwell_metrics_fast(hits, use)
    assert fast is not None
    ref = aoi_mod._dwell_metrics_pandas(hits, use)
    pd.testing.assert_frame_equal(fast, ref, check_exact=True)
    pd.testing.assert_frame_equal(dwell_metrics(hits, aois=use), ref, check_exact=True)


def test_dwell_single_trial_and_missing_values_fall_back() -> None:
    hits, _ = _hits(3)
    one = hits[
        (hits["participant"] == hits["participant"].iloc[0]) & (hits["trial"] == hits["trial"].iloc[0])
    ]
    one = one.assign(aoi_id="obj:a")
    pd.testing.assert_frame_equal(
        dwell_metrics(one), aoi_mod._dwell_metrics_pandas(one, None), check_exact=True
    )
    holes = hits.copy()
    holes.loc[3, "onset_in_trial_ms"] = np.nan
    assert aoi_mod._dwell_metrics_fast(holes, None) is None
    pd.testing.assert_frame_equal(dwell_metrics(holes), aoi_mod._dwell_metrics_pandas(holes, None))


@pytest.mark.parametrize("layout", ["contiguous", "shuffled", "one"])
def test_group_sum_matches_pandas(layout: str) -> None:
    rng = np.random.default_rng(21)
    v = rng.exponential(200.0, 3000) + 1e-7 * rng.random(3000)
    labels = {
        "contiguous": np.repeat(np.arange(150), 20),
        "shuffled": rng.integers(0, 150, 3000),
        "one": np.zeros(3000, dtype=np.int64),
    }[layout].astype(np.intp)
    n_groups = int(labels.max()) + 1
    ref = pd.Series(v).groupby(labels).sum()
    got = aoi_mod._group_sum(v, labels, n_groups)[ref.index.to_numpy()]
    np.testing.assert_array_equal(got, ref.to_numpy())
