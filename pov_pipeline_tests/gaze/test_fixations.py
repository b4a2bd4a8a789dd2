"""The ``fixations`` table (``pov_pipeline.gaze.fixations``): the array path against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze import fixations as fx_mod
from pov_pipeline.gaze.fixations import fixation_table


def _reference(events: pd.DataFrame) -> pd.DataFrame:
    """What the ``fixations`` asset computed before: filter, stable sort, group-wise count."""
    table = events[events["event"] == "fixation"].copy()
    table = table.sort_values(["participant", "trial", "onset_ms"], kind="stable").reset_index(drop=True)
    table["fixation_index"] = table.groupby(["participant", "trial"]).cumcount().astype("int32")
    return table


KIND_P = [0.5, 0.3, 0.15, 0.05]


def _events(seed: int, participants: tuple[str, ...] = ("p01",)) -> pd.DataFrame:
    """Detection-like events: per participant, trial by trial in onset order."""
    rng = np.random.default_rng(seed)
    parts = []
    for p in participants:
        for trial in range(1, 9):
            n = int(rng.integers(0, 30))
            onset = np.cumsum(rng.uniform(5, 400, n))
            parts.append(
                pd.DataFrame(
                    {
                        "participant": p,
                        "trial": np.int32(trial),
                        "stimulus_id": f"s{trial % 3}",
                        "eye": "binocular",
                        "event_index": np.arange(n, dtype=np.int32),
                        "event": rng.choice(
                            ["fixation", "saccade", "pso", "blink"], n, p=[0.5, 0.3, 0.15, 0.05]
                        ),
                        "onset_ms": onset,
                        "duration_ms": rng.uniform(10, 500, n),
                        "x_px": rng.uniform(0, 1920, n),
                    }
                )
            )
    events = pd.concat(parts, ignore_index=True)
    for c in ("participant", "stimulus_id", "eye", "event"):
        events[c] = events[c].astype("str")
    return events


def _check(events: pd.DataFrame) -> pd.DataFrame:
    got = fixation_table(events)
    pd.testing.assert_frame_equal(got, _reference(events), check_exact=True)
    assert isinstance(got.index, pd.RangeIndex) and got["fixation_index"].dtype == np.int32
    return got


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("participants", [("p01",), ("p01", "p02", "p10")])
def test_sorted_events_take_the_array_path_and_match(
    seed: int, participants: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _events(seed, participants)

    def no_fallback(_: pd.DataFrame) -> pd.DataFrame:
        raise AssertionError("sorted detection output should not need the pandas path")

    monkeypatch.setattr(fx_mod, "_fixation_table_pandas", no_fallback)
    got = _check(events)
    assert (got["event"] == "fixation").all()
    # The per-trial count restarts at every (participant, trial).
    first = got.groupby(["participant", "trial"]).head(1)
    assert (first["fixation_index"] == 0).all()


def test_unsorted_and_odd_inputs_take_the_pandas_path_and_match() -> None:
    events = _events(2, ("p01", "p02"))
    _check(events.sample(frac=1.0, random_state=3))  # unsorted rows
    _check(pd.concat([events[events["participant"] == "p02"], events[events["participant"] == "p01"]]))
    ties = events.assign(onset_ms=np.floor(events["onset_ms"] / 300.0) * 300.0)
    _check(ties)  # equal onsets keep their row order (stable)
    odd = events.copy()
    odd.index = np.arange(len(odd))[::-1] * 2
    _check(odd)  # any index: a fresh RangeIndex comes out
    onset = events["onset_ms"].to_numpy().copy()
    onset[[3, 4]] = np.nan
    _check(events.assign(onset_ms=onset))  # NaN onsets sort last within their trial
    objects = events.astype({"participant": object, "event": object})
    _check(objects)
    _check(events.iloc[0:0])
    _check(events[events["event"] != "fixation"])


def test_missing_participant_behaves_as_pandas() -> None:
    events = _events(4)
    part = events["participant"].to_numpy(dtype=object).copy()
    part[2] = np.nan
    events["participant"] = pd.array(part, dtype="str")
    with pytest.raises(Exception) as ours:
        fixation_table(events)
    with pytest.raises(Exception) as theirs:
        _reference(events)
    assert type(ours.value) is type(theirs.value)


def test_helpers() -> None:
    col = pd.Series(["b", "a", None, "c", "a", "é", "B"], dtype="str")
    codes, values = fx_mod._factorize_sorted(col)
    ref_codes, ref_values = pd.factorize(col, sort=True)
    np.testing.assert_array_equal(codes, ref_codes)
    assert list(values) == list(ref_values)
    const = pd.Series(["x"] * 5, dtype="str")
    np.testing.assert_array_equal(fx_mod._sort_codes(const), np.zeros(5))
    np.testing.assert_array_equal(fx_mod._equals(col, "a"), (col == "a").to_numpy(dtype=bool))
    assert fx_mod._in_sort_order(
        np.array([0, 0, 1, 1]), np.array([2, 3, 1, 1]), np.array([5.0, 1.0, 1.0, 1.0])
    )
    assert not fx_mod._in_sort_order(np.array([0, 0]), np.array([1, 1]), np.array([2.0, 1.0]))
    # NaN passes only at the end of its group, where a sort puts it.
    assert fx_mod._in_sort_order(np.array([0, 1]), np.array([1.0, np.nan]))
    assert not fx_mod._in_sort_order(np.array([0, 0]), np.array([np.nan, 1.0]))
    np.testing.assert_array_equal(fx_mod._run_index(np.array([1, 1, 2, 2, 2, 1])), [0, 1, 0, 1, 2, 0])
