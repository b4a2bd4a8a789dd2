"""AOI sequences, first-order transition counts and gaze transition entropy.

A trial's *AOI sequence* is the list of AOI ids of its fixations in temporal order
(``event_index``). With ``collapse_repeats=True`` consecutive fixations on the same AOI merge
into one *visit* (their durations add up), which is the "gaze" sequence of scanpath work and
removes self-transitions.

Entropy (Krejtz et al. 2015, "Gaze transition entropy", ACM TAP 13(1)):

``stationary_entropy_bits``
    ``H_s = -sum_i pi_i log2 pi_i``.
``transition_entropy_bits``
    ``H_t = -sum_i pi_i sum_j p_ij log2 p_ij`` with ``p_ij`` the row-normalised first-order
    transition counts of the sequence.

``pi`` is estimated from the sequence itself, as the proportion of its elements (fixations, or
visits when collapsed) on each AOI - Krejtz et al.'s empirical estimate; ``weighting="dwell"``
uses the proportion of dwell time instead. Both entropies are computed on the sequence as
returned, so self-transitions count unless ``collapse_repeats`` removed them. The normalised
versions divide by ``log2(n_states)``, ``n_states`` being the number of AOIs of the stimulus when
given, else the number of distinct AOIs in the sequence (NaN when fewer than 2).

Everything is vectorized across all trials at once (group shifts and group-by counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["aoi_sequences", "transition_matrix", "transition_table"]

_KEYS = ["participant", "trial", "stimulus_id"]

Weighting = Literal["fixations", "dwell"]


def _new_trial(frame: pd.DataFrame) -> np.ndarray:
    """True where a row starts a new (participant, trial, stimulus) group of a sorted frame."""
    start = np.ones(len(frame), dtype=bool)
    if len(frame) > 1:
        same = np.ones(len(frame) - 1, dtype=bool)
        for key in _KEYS:
            # Integer codes compare far faster than (Arrow-backed) strings.
            col = pd.factorize(frame[key], use_na_sentinel=False)[0]
            same &= col[1:] == col[:-1]
        start[1:] = ~same
    return start


def _units(aoi_hits: pd.DataFrame, *, collapse_repeats: bool) -> pd.DataFrame:
    """Sorted sequence elements: keys, ``aoi_id``, ``duration_ms``, ``n_fix`` and ``start``."""
    cols = [*_KEYS, "event_index", "aoi_id"]
    hits = aoi_hits[cols + (["duration_ms"] if "duration_ms" in aoi_hits else [])]
    hits = hits.sort_values([*_KEYS, "event_index"], kind="stable").reset_index(drop=True)
    if "duration_ms" not in hits:
        hits = hits.assign(duration_ms=np.nan)
    start = _new_trial(hits)
    if not collapse_repeats or len(hits) == 0:
        return hits.assign(n_fix=np.int64(1), start=start).drop(columns="event_index")
    ids = pd.factorize(hits["aoi_id"], use_na_sentinel=False)[0]
    new_run = start.copy()
    new_run[1:] |= ids[1:] != ids[:-1]
    run = np.cumsum(new_run) - 1
    first = np.flatnonzero(new_run)
    units = hits.iloc[first][[*_KEYS, "aoi_id"]].reset_index(drop=True)
    units["duration_ms"] = np.bincount(run, weights=hits["duration_ms"].to_numpy(dtype=np.float64))
    units["n_fix"] = np.bincount(run)
    units["start"] = start[first]
    return units


def _pairs(units: pd.DataFrame, *, include_self: bool) -> pd.DataFrame:
    """Consecutive (from, to) pairs within each trial."""
    ids = units["aoi_id"].to_numpy()
    start = units["start"].to_numpy()
    ok = ~start[1:]
    pairs = units.iloc[:-1][_KEYS].reset_index(drop=True).loc[ok]
    pairs = pairs.assign(from_aoi=ids[:-1][ok], to_aoi=ids[1:][ok])
    if not include_self:
        pairs = pairs.loc[pairs["from_aoi"].to_numpy() != pairs["to_aoi"].to_numpy()]
    return pairs.reset_index(drop=True)


def _counts(pairs: pd.DataFrame) -> pd.DataFrame:
    keys = [*_KEYS, "from_aoi", "to_aoi"]
    table = pairs.groupby(keys, sort=True, dropna=False).size().rename("count").reset_index()
    row_total = table.groupby([*_KEYS, "from_aoi"], sort=False, dropna=False)["count"].transform("sum")
    table["count"] = table["count"].astype(np.int32)
    table["prob"] = table["count"].to_numpy(dtype=np.float64) / row_total.to_numpy(dtype=np.float64)
    return table


def _from_sequences(sequences: pd.DataFrame) -> pd.DataFrame:
    """Rebuild an aoi_hits-like frame (keys, event_index, aoi_id, duration_ms) from sequences."""
    cols = [*_KEYS, "sequence"] + (["dwell_ms"] if "dwell_ms" in sequences else [])
    flat = sequences[cols].explode(cols[3:], ignore_index=True)
    flat = flat.loc[flat["sequence"].notna()]
    flat = flat.rename(columns={"sequence": "aoi_id", "dwell_ms": "duration_ms"})
    flat["event_index"] = flat.groupby(_KEYS, sort=False).cumcount()
    if "duration_ms" in flat:
        flat["duration_ms"] = flat["duration_ms"].astype(np.float64)
    return flat


def transition_table(
    data: pd.DataFrame,
    *,
    collapse_repeats: bool = False,
    include_self: bool = True,
) -> pd.DataFrame:
    """First-order AOI transition counts and probabilities of every trial.

    Parameters
    ----------
    data : pd.DataFrame
        Either ``aoi_hits`` (``participant, trial, stimulus_id, event_index, aoi_id``) or the
        output of :func:`aoi_sequences` (a ``sequence`` list column, taken as already in order
        and collapsed or not as it was built).
    collapse_repeats : bool
        Merge consecutive fixations on the same AOI before counting (aoi_hits input only).
    include_self : bool
        Keep self-transitions (``from_aoi == to_aoi``); they only exist without collapsing.

    Returns
    -------
    pd.DataFrame
        Long table ``participant, trial, stimulus_id, from_aoi, to_aoi, count`` (int32),
        ``prob`` (float64, ``count`` over the row total of ``from_aoi`` in the trial), sorted by
        all five keys. Trials with fewer than two elements contribute no rows.
    """
    if "sequence" in data:
        hits = _from_sequences(data)
        collapse_repeats = False
    else:
        hits = data
    units = _units(hits, collapse_repeats=collapse_repeats)
    table = _counts(_pairs(units, include_self=include_self))
    return table.reset_index(drop=True)


def aoi_sequences(
    aoi_hits: pd.DataFrame,
    *,
    collapse_repeats: bool = False,
    weighting: Weighting = "fixations",
    n_states: int | Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """AOI sequence and gaze entropies of every trial.

    Parameters
    ----------
    aoi_hits : pd.DataFrame
        Output of :func:`pov_pipeline.gaze.aoi.map_fixations_to_aois` (needs
        ``participant, trial, stimulus_id, event_index, aoi_id, duration_ms``).
    collapse_repeats : bool
        Merge consecutive fixations on the same AOI into one element (durations summed).
    weighting : {"fixations", "dwell"}
        Estimate of the stationary distribution ``pi``: share of sequence elements, or share of
        dwell time, per AOI.
    n_states : int | Mapping[str, int] | None
        Number of AOIs for the normalised entropies: one number, or per ``stimulus_id`` (e.g.
        the stimulus's AOI count + 2 for background and off-screen). ``None``: the number of
        distinct AOIs in each sequence.

    Returns
    -------
    pd.DataFrame
        One row per ``(participant, trial, stimulus_id)``, sorted, with ``sequence`` (list of
        AOI ids), ``dwell_ms`` (list of float durations aligned with ``sequence``),
        ``n_fixations`` (int32, before collapsing), ``n_elements`` (int32, ``len(sequence)``),
        ``n_distinct_aois`` (int32), ``stationary_entropy_bits``, ``transition_entropy_bits``,
        ``stationary_entropy_norm``, ``transition_entropy_norm`` (float64).
    """
    if weighting not in ("fixations", "dwell"):
        raise ValueError(f"weighting must be 'fixations' or 'dwell', found {weighting!r}")
    units = _units(aoi_hits, collapse_repeats=collapse_repeats)
    grouped = units.groupby(_KEYS, sort=True, dropna=False)
    out = grouped.agg(
        sequence=("aoi_id", list),
        dwell_ms=("duration_ms", list),
        n_fixations=("n_fix", "sum"),
        n_elements=("aoi_id", "size"),
        n_distinct_aois=("aoi_id", "nunique"),
    ).reset_index()
    for col in ("n_fixations", "n_elements", "n_distinct_aois"):
        out[col] = out[col].astype(np.int32)

    # Stationary distribution per (trial, AOI).
    if weighting == "fixations":
        units = units.assign(_w=1.0)
    else:
        units = units.assign(_w=units["duration_ms"].to_numpy(dtype=np.float64))
    pi = units.groupby([*_KEYS, "aoi_id"], sort=False, dropna=False)["_w"].sum().rename("pi").reset_index()
    pi["pi"] = pi["pi"] / pi.groupby(_KEYS, sort=False, dropna=False)["pi"].transform("sum")
    pi["_h"] = _plogp(pi["pi"].to_numpy())
    h_s = pi.groupby(_KEYS, sort=False, dropna=False)["_h"].sum().rename("stationary_entropy_bits")

    # Row entropies of the transition matrix, weighted by pi of the row's AOI.
    table = _counts(_pairs(units, include_self=True))
    table["_h"] = _plogp(table["prob"].to_numpy())
    rows = table.groupby([*_KEYS, "from_aoi"], sort=False, dropna=False)["_h"].sum().reset_index()
    rows = rows.merge(
        pi[[*_KEYS, "aoi_id", "pi"]].rename(columns={"aoi_id": "from_aoi"}),
        on=[*_KEYS, "from_aoi"],
        how="left",
    )
    rows["_wh"] = rows["pi"] * rows["_h"]
    h_t = rows.groupby(_KEYS, sort=False, dropna=False)["_wh"].sum().rename("transition_entropy_bits")

    out = out.merge(h_s, left_on=_KEYS, right_index=True, how="left")
    out = out.merge(h_t, left_on=_KEYS, right_index=True, how="left")
    # A trial with a single element has no transitions: its transition entropy is 0 (certain).
    out["transition_entropy_bits"] = out["transition_entropy_bits"].fillna(0.0).astype(np.float64)
    out["stationary_entropy_bits"] = out["stationary_entropy_bits"].astype(np.float64)

    if n_states is None:
        states = out["n_distinct_aois"].to_numpy(dtype=np.float64)
    elif isinstance(n_states, Mapping):
        states = out["stimulus_id"].map(dict(n_states)).to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        states = np.full(len(out), float(n_states))
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(states >= 2, np.log2(states), np.nan)
        out["stationary_entropy_norm"] = out["stationary_entropy_bits"].to_numpy() / norm
        out["transition_entropy_norm"] = out["transition_entropy_bits"].to_numpy() / norm
    return out.reset_index(drop=True)


def _plogp(p: np.ndarray) -> np.ndarray:
    """``-p log2 p`` with the limit 0 at ``p = 0``."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # "+ 0.0" turns the -0.0 of p = 1 into 0.0.
        return np.where(p > 0, -p * np.log2(p), 0.0) + 0.0


def transition_matrix(
    sequence: Sequence[str] | np.ndarray,
    aoi_ids: Sequence[str],
    *,
    normalize: bool = False,
    include_self: bool = True,
) -> np.ndarray:
    """Dense first-order transition matrix of one AOI sequence.

    Parameters
    ----------
    sequence : Sequence[str] | np.ndarray
        AOI ids in temporal order.
    aoi_ids : Sequence[str]
        The state order of the matrix (rows = from, columns = to). Transitions touching an id
        not listed are dropped.
    normalize : bool
        Row-normalise counts into probabilities; rows without outgoing transitions stay 0.
    include_self : bool
        Keep the diagonal (self-transitions).

    Returns
    -------
    np.ndarray
        ``(len(aoi_ids), len(aoi_ids))``: int64 counts, or float64 probabilities when
        ``normalize``.
    """
    states = pd.Index(list(aoi_ids))
    if not states.is_unique:
        raise ValueError("aoi_ids must be unique")
    m = len(states)
    counts = np.zeros((m, m), dtype=np.int64)
    seq = np.asarray(list(sequence), dtype=object)
    if seq.size >= 2 and m:
        code = states.get_indexer(seq)
        a, b = code[:-1], code[1:]
        ok = (a >= 0) & (b >= 0)
        if not include_self:
            ok &= a != b
        np.add.at(counts, (a[ok], b[ok]), 1)
    if not normalize:
        return counts
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros((m, m), dtype=np.float64), where=total > 0)
