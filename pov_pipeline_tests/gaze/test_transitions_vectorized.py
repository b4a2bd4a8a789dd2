"""Vectorized sequences, transitions and entropies against a per-trial reference loop."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze.transitions import aoi_sequences, transition_table


def _hits(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 600
    frame = pd.DataFrame(
        {
            "participant": rng.choice(["p2", "p1", "p10"], n),
            "trial": rng.integers(1, 12, n).astype(np.int32),
            "stimulus_id": rng.choice(["s2", "s1"], n),
            "event_index": rng.permutation(n),
            "aoi_id": rng.choice(["obj:b", "obj:a", "word:0", "word:10", "background", "off_screen"], n),
            "duration_ms": rng.uniform(40, 500, n).round(1),
        }
    )
    return frame


def _reference(hits: pd.DataFrame, collapse: bool, weighting: str):
    """Plain Python per trial: sequences, transition counts, Krejtz et al.'s entropies."""
    seq_rows, tt_rows = [], []
    ordered = hits.sort_values(["participant", "trial", "stimulus_id", "event_index"], kind="stable")
    for key, g in ordered.groupby(["participant", "trial", "stimulus_id"], sort=True):
        ids, dur = g["aoi_id"].tolist(), g["duration_ms"].tolist()
        if collapse:
            ci, cd = [ids[0]], [dur[0]]
            for a, d in zip(ids[1:], dur[1:], strict=True):
                if a == ci[-1]:
                    cd[-1] += d
                else:
                    ci.append(a), cd.append(d)
            ids, dur = ci, cd
        w = [1.0] * len(ids) if weighting == "fixations" else dur
        pi = {a: sum(x for b, x in zip(ids, w, strict=True) if b == a) / sum(w) for a in set(ids)}
        counts: dict[tuple[str, str], int] = {}
        for a, b in itertools.pairwise(ids):
            counts[(a, b)] = counts.get((a, b), 0) + 1
        rows = {a: sum(c for (f, _), c in counts.items() if f == a) for a in set(ids)}
        h_t = 0.0
        for (a, b), c in sorted(counts.items()):
            p = c / rows[a]
            tt_rows.append((*key, a, b, c, p))
            h_t -= pi[a] * p * math.log2(p)
        h_s = -sum(p * math.log2(p) for p in pi.values())
        seq_rows.append((*key, ids, len(g), len(ids), len(set(ids)), h_s, h_t))
    return seq_rows, tt_rows


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("collapse", [False, True])
@pytest.mark.parametrize("weighting", ["fixations", "dwell"])
def test_sequences_and_table_match_reference(seed: int, collapse: bool, weighting: str) -> None:
    hits = _hits(seed)
    seq_ref, tt_ref = _reference(hits, collapse, weighting)
    seq = aoi_sequences(hits, collapse_repeats=collapse, weighting=weighting)
    assert len(seq) == len(seq_ref)
    for row, ref in zip(seq.itertuples(index=False), seq_ref, strict=True):
        assert (row.participant, row.trial, row.stimulus_id) == ref[:3]
        assert row.sequence == ref[3]
        assert (row.n_fixations, row.n_elements, row.n_distinct_aois) == ref[4:7]
        assert row.stationary_entropy_bits == pytest.approx(ref[7], rel=1e-12, abs=1e-12)
        assert row.transition_entropy_bits == pytest.approx(ref[8], rel=1e-12, abs=1e-12)
    table = transition_table(hits, collapse_repeats=collapse)
    got = list(table.itertuples(index=False, name=None))
    assert [r[:6] for r in got] == [r[:6] for r in tt_ref]
    np.testing.assert_allclose([r[6] for r in got], [r[6] for r in tt_ref], rtol=1e-15)
    assert table["count"].dtype == np.int32
    # Built from the sequences, the table is the same.
    pd.testing.assert_frame_equal(transition_table(seq), table)


def test_empty_and_single_element_trials() -> None:
    hits = _hits(3).iloc[:1]
    seq = aoi_sequences(hits)
    assert seq["transition_entropy_bits"].tolist() == [0.0]
    assert seq["stationary_entropy_bits"].tolist() == [0.0]
    assert len(transition_table(hits)) == 0
