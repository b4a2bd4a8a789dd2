"""AOI sequences, transition tables/matrices and gaze transition entropy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze.transitions import aoi_sequences, transition_matrix, transition_table


def _hits(seqs: dict[tuple[str, int], list[str]], durations: dict | None = None) -> pd.DataFrame:
    rows = []
    for (participant, trial), seq in seqs.items():
        durs = (durations or {}).get((participant, trial), [100.0] * len(seq))
        for i, (aoi, dur) in enumerate(zip(seq, durs, strict=True)):
            rows.append(
                {
                    "participant": participant,
                    "trial": trial,
                    "stimulus_id": f"s{trial}",
                    "event_index": i,
                    "aoi_id": aoi,
                    "duration_ms": dur,
                }
            )
    # Shuffle the rows: order must come from event_index, not from the input order.
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)


def test_transition_matrix_hand_computed() -> None:
    seq = ["A", "B", "A", "C", "C", "A", "B"]
    ids = ["A", "B", "C"]
    expected = np.array([[0, 2, 1], [1, 0, 0], [1, 0, 1]])
    np.testing.assert_array_equal(transition_matrix(seq, ids), expected)
    np.testing.assert_allclose(
        transition_matrix(seq, ids, normalize=True),
        [[0, 2 / 3, 1 / 3], [1, 0, 0], [0.5, 0, 0.5]],
    )
    no_self = transition_matrix(seq, ids, include_self=False, normalize=True)
    np.testing.assert_allclose(no_self, [[0, 2 / 3, 1 / 3], [1, 0, 0], [1, 0, 0]])
    # Unknown ids drop their transitions; a row without outgoing transitions stays 0.
    m = transition_matrix(["A", "X", "B", "D"], ["A", "B", "D"], normalize=True)
    np.testing.assert_allclose(m, [[0, 0, 0], [0, 0, 1], [0, 0, 0]])
    assert transition_matrix(["A"], ids).sum() == 0
    with pytest.raises(ValueError, match="unique"):
        transition_matrix(seq, ["A", "A"])


def test_transition_table_matches_matrix_and_is_sorted() -> None:
    seqs = {("p", 2): list("ABACCAB"), ("p", 1): list("CCB"), ("q", 1): ["A"]}
    table = transition_table(_hits(seqs))
    assert list(table.columns) == [
        "participant",
        "trial",
        "stimulus_id",
        "from_aoi",
        "to_aoi",
        "count",
        "prob",
    ]
    assert table["count"].dtype == np.int32 and table["prob"].dtype == np.float64
    keys = ["participant", "trial", "stimulus_id", "from_aoi", "to_aoi"]
    assert table[keys].equals(table[keys].sort_values(keys).reset_index(drop=True))
    assert set(zip(table["participant"], table["trial"], strict=True)) == {("p", 1), ("p", 2)}
    for (participant, trial), seq in seqs.items():
        sub = table[(table["participant"] == participant) & (table["trial"] == trial)]
        ids = sorted(set(seq))
        dense = np.zeros((len(ids), len(ids)), dtype=np.int64)
        for f, t, c in zip(sub["from_aoi"], sub["to_aoi"], sub["count"], strict=True):
            dense[ids.index(f), ids.index(t)] = c
        np.testing.assert_array_equal(dense, transition_matrix(seq, ids))
    p2 = table[table["trial"] == 2].set_index(["from_aoi", "to_aoi"])["prob"]
    assert p2[("A", "B")] == pytest.approx(2 / 3) and p2[("C", "C")] == pytest.approx(0.5)


def test_transition_table_collapse_and_self() -> None:
    hits = _hits({("p", 1): list("AABBBCA")})
    raw = transition_table(hits).set_index(["from_aoi", "to_aoi"])["count"].to_dict()
    assert raw == {("A", "A"): 1, ("A", "B"): 1, ("B", "B"): 2, ("B", "C"): 1, ("C", "A"): 1}
    no_self = transition_table(hits, include_self=False).set_index(["from_aoi", "to_aoi"])
    assert no_self["count"].to_dict() == {("A", "B"): 1, ("B", "C"): 1, ("C", "A"): 1}
    assert (no_self["prob"] == 1.0).all()
    collapsed = transition_table(hits, collapse_repeats=True).set_index(["from_aoi", "to_aoi"])
    assert collapsed["count"].to_dict() == {("A", "B"): 1, ("B", "C"): 1, ("C", "A"): 1}


def test_transition_table_from_sequences_equals_from_hits() -> None:
    hits = _hits({("p", 1): list("ABBCA"), ("p", 2): list("CABAB"), ("r", 5): list("AAAA")})
    for collapse in (False, True):
        seqs = aoi_sequences(hits, collapse_repeats=collapse)
        pd.testing.assert_frame_equal(
            transition_table(seqs), transition_table(hits, collapse_repeats=collapse)
        )


def test_sequences_order_and_collapse() -> None:
    hits = _hits({("p", 1): list("AABBBCA")}, {("p", 1): [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]})
    seq = aoi_sequences(hits).iloc[0]
    assert seq["sequence"] == list("AABBBCA") and seq["dwell_ms"] == [10, 20, 30, 40, 50, 60, 70]
    assert seq["n_fixations"] == 7 and seq["n_elements"] == 7 and seq["n_distinct_aois"] == 3
    col = aoi_sequences(hits, collapse_repeats=True).iloc[0]
    assert col["sequence"] == list("ABCA") and col["dwell_ms"] == [30.0, 120.0, 60.0, 70.0]
    assert col["n_fixations"] == 7 and col["n_elements"] == 4


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_entropy_uniform_and_deterministic_cycle(n: int) -> None:
    # A deterministic cycle over n AOIs visits each equally: H_s = log2 n, H_t = 0.
    ids = [f"obj:{i}" for i in range(n)]
    out = aoi_sequences(_hits({("p", 1): ids * 4}), n_states=n).iloc[0]
    assert out["stationary_entropy_bits"] == pytest.approx(math.log2(n))
    assert out["transition_entropy_bits"] == 0.0
    assert out["stationary_entropy_norm"] == pytest.approx(1.0)
    assert out["transition_entropy_norm"] == 0.0


def test_entropy_closed_form_random_like_sequence() -> None:
    # AABBBC: pi = (2, 3, 1)/6; rows: A -> (A, B) = (1/2, 1/2), B -> (B, C) = (2/3, 1/3).
    out = aoi_sequences(_hits({("p", 1): list("AABBBC")}))
    row = out.iloc[0]
    pi = np.array([2, 3, 1]) / 6
    h_s = -(pi * np.log2(pi)).sum()
    h_b = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    h_t = pi[0] * 1.0 + pi[1] * h_b
    assert row["stationary_entropy_bits"] == pytest.approx(h_s)
    assert row["transition_entropy_bits"] == pytest.approx(h_t)
    assert row["stationary_entropy_norm"] == pytest.approx(h_s / math.log2(3))
    # A per-stimulus state count changes only the normalisation.
    other = aoi_sequences(_hits({("p", 1): list("AABBBC")}), n_states={"s1": 8}).iloc[0]
    assert other["transition_entropy_norm"] == pytest.approx(h_t / 3.0)


def test_entropy_dwell_weighting_and_single_fixation() -> None:
    hits = _hits({("p", 1): list("AB"), ("p", 2): ["A"]}, {("p", 1): [300.0, 100.0], ("p", 2): [50.0]})
    out = aoi_sequences(hits, weighting="dwell").set_index("trial")
    pi = np.array([0.75, 0.25])
    assert out.loc[1, "stationary_entropy_bits"] == pytest.approx(-(pi * np.log2(pi)).sum())
    # A -> B is certain: H_t = 0.
    assert out.loc[1, "transition_entropy_bits"] == 0.0
    assert out.loc[2, "stationary_entropy_bits"] == 0.0 and out.loc[2, "transition_entropy_bits"] == 0.0
    assert np.isnan(out.loc[2, "stationary_entropy_norm"])
    with pytest.raises(ValueError, match="weighting"):
        aoi_sequences(hits, weighting="time")  # type: ignore[arg-type]


def test_entropy_matches_per_trial_reference() -> None:
    # Many random trials at once must agree with a direct per-trial computation.
    rng = np.random.default_rng(11)
    seqs = {("p", t): list(rng.choice(list("ABCDE"), size=rng.integers(1, 30))) for t in range(40)}
    out = aoi_sequences(_hits(seqs)).set_index("trial")
    for (_, t), seq in seqs.items():
        ids = sorted(set(seq))
        counts = np.array([seq.count(a) for a in ids], dtype=float)
        pi = counts / counts.sum()
        p = transition_matrix(seq, ids, normalize=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            row_h = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
        assert out.loc[t, "sequence"] == seq
        assert out.loc[t, "stationary_entropy_bits"] == pytest.approx(-(pi * np.log2(pi)).sum())
        assert out.loc[t, "transition_entropy_bits"] == pytest.approx((pi * row_h).sum(), abs=1e-12)


def test_short_fixations_are_dropped_before_sequences_and_transitions() -> None:
    hits = _hits(
        {("p1", 1): ["A", "B", "A", "C"], ("p1", 2): ["B", "C"]},
        {("p1", 1): [200.0, 50.0, 150.0, 80.0], ("p1", 2): [40.0, 79.9]},
    )
    seq = aoi_sequences(hits, min_fixation_ms=80.0)
    # Trial 2 has nothing left; in trial 1 the two A fixations become consecutive, 80 ms stays.
    assert seq["trial"].tolist() == [1]
    assert seq["sequence"].iloc[0] == ["A", "A", "C"]
    assert seq["dwell_ms"].iloc[0] == [200.0, 150.0, 80.0]
    assert seq["n_fixations"].iloc[0] == 3
    collapsed = aoi_sequences(hits, collapse_repeats=True, min_fixation_ms=80.0)
    assert collapsed["sequence"].iloc[0] == ["A", "C"] and collapsed["dwell_ms"].iloc[0] == [350.0, 80.0]
    table = transition_table(hits, min_fixation_ms=80.0)
    assert list(zip(table["from_aoi"], table["to_aoi"], table["count"], strict=True)) == [
        ("A", "A", 1),
        ("A", "C", 1),
    ]
    # The default keeps everything; unknown (NaN) durations are never dropped.
    assert aoi_sequences(hits)["sequence"].tolist() == [["A", "B", "A", "C"], ["B", "C"]]
    unknown = hits.assign(duration_ms=np.nan)
    assert aoi_sequences(unknown, min_fixation_ms=80.0)["n_fixations"].tolist() == [4, 2]
