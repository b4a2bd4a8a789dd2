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

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from pov_pipeline.gaze.fixations import _arrow_strings, _factorize_sorted, _has_missing, _is_inferred_str

__all__ = ["aoi_sequences", "transition_matrix", "transition_table"]

_KEYS = ["participant", "trial", "stimulus_id"]

Weighting = Literal["fixations", "dwell"]


def _codes(column: pd.Series, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Codes that sort like the values (missing last) and the matching distinct values.

    ``keep`` selects the rows coded (a boolean mask); the distinct values may then include some
    that only dropped rows hold, which changes no order or comparison.
    """
    codes, uniques = _factorize_sorted(column)
    if keep is not None:
        codes = codes[keep]
    if (codes < 0).any():
        kept = column if keep is None else column[keep]
        missing = kept[kept.isna()].iloc[0]
        codes = np.where(codes < 0, len(uniques), codes)
        uniques = np.r_[uniques, np.array([missing], dtype=object)]
    return codes.astype(np.int64, copy=False), uniques


def _sort_key(column: pd.Series, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Values that sort and compare like the column (missing last), and the distinct values.

    Integers are their own key (no hashing) and complete Arrow strings need only their codes:
    neither needs the distinct values (see :func:`_key_values`).
    """
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":
        values = column.to_numpy()
        return (values if keep is None else values[keep]), None
    data = _arrow_strings(column)
    if data is not None and not data.null_count:
        # Complete strings are taken by row as well: their codes suffice.
        codes = _factorize_sorted(column, with_values=False)[0]
        return (codes if keep is None else codes[keep]), None
    return _codes(column, keep)


def _key_values(
    column: pd.Series, rows: np.ndarray, uniques: np.ndarray | None, codes: np.ndarray
) -> pd.api.extensions.ExtensionArray:
    """``uniques[codes]`` as an array of ``column``'s dtype; ``rows`` hold those values.

    Taking the rows keeps string columns in Arrow (no round trip through Python objects); only
    missing values, which factorize merges into one, and float keys (-0.0 == 0.0) need the codes.
    """
    kind = getattr(column.dtype, "kind", "O")
    if kind in "iuO" or isinstance(column.dtype, pd.StringDtype):
        values = column.array
        if uniques is None or not _has_missing(column):
            return values.take(rows)
    return pd.Series(uniques[codes], dtype=column.dtype).array


class _Units:
    """Sequence elements of all trials in order, as integer codes.

    ``group`` numbers the (participant, trial, stimulus) groups in sorted order, ``keys`` holds
    their key values (one array per key column); ``aoi`` indexes ``aoi_ids`` (sorted, so code
    order is string order).
    """

    def __init__(
        self, aoi_hits: pd.DataFrame, *, collapse_repeats: bool, min_fixation_ms: float = 0.0
    ) -> None:
        # Each column fetched once: a column lookup costs about what the work on it does here.
        col = {c: aoi_hits[c] for c in [*_KEYS, "event_index", "aoi_id", "duration_ms"] if c in aoi_hits}
        # Rows are dropped from the arrays, not from the wide frame: taking whole rows costs more.
        keep: np.ndarray | None = None
        duration = (
            col["duration_ms"].to_numpy(dtype=np.float64, na_value=np.nan) if "duration_ms" in col else None
        )
        if min_fixation_ms > 0 and duration is not None:
            # NaN durations (unknown) stay: the comparison is False for them.
            keep = ~(duration < min_fixation_ms)
            if keep.all():
                keep = None
        rows = np.arange(len(aoi_hits)) if keep is None else np.flatnonzero(keep)
        key_codes = [_sort_key(col[k], keep) for k in _KEYS]
        event = col["event_index"].to_numpy()
        if keep is not None:
            event = event[keep]
        order = np.lexsort((event, *[c for c, _ in key_codes][::-1]))
        kc = [c[order] for c, _ in key_codes]
        n = order.shape[0]
        start = np.zeros(n, dtype=bool)
        start[:1] = True
        for c in kc:
            start[1:] |= c[1:] != c[:-1]
        aoi, self.aoi_ids = _codes(col["aoi_id"], keep)
        self.aoi_dtype = col["aoi_id"].dtype if _is_inferred_str(col["aoi_id"].dtype) else None
        aoi = aoi[order]
        dur = duration[rows][order] if duration is not None else np.full(n, np.nan)
        n_fix = np.ones(n, dtype=np.int64)
        if collapse_repeats and n:
            new_run = start.copy()
            new_run[1:] |= aoi[1:] != aoi[:-1]
            run = np.cumsum(new_run) - 1
            first = np.flatnonzero(new_run)
            dur = np.bincount(run, weights=dur)
            n_fix = np.bincount(run)
            aoi, start, kc = aoi[first], start[first], [c[first] for c in kc]
            order = order[first]
        self.aoi, self.duration_ms, self.n_fix, self.start = aoi, dur, n_fix, start
        self.group = np.cumsum(start) - 1
        heads = np.flatnonzero(start)
        self.n_groups = heads.shape[0]
        self.keys: dict[str, Any] = {
            k: _key_values(col[k], rows[order[heads]], u, c[heads])
            for k, (_, u), c in zip(_KEYS, key_codes, kc, strict=True)
        }

    def aoi_labels(self) -> np.ndarray | pd.api.extensions.ExtensionArray:
        """``aoi_ids`` as a column of them becomes: the ``str`` array a frame would infer from
        them (for Arrow strings without missing ids; taking from it is cheaper than inferring
        each time), else the objects themselves.
        """
        if self.aoi_dtype is not None and all(isinstance(v, str) for v in self.aoi_ids):
            return pd.array(self.aoi_ids, dtype=self.aoi_dtype)
        return self.aoi_ids

    def pairs(self, *, include_self: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Group, from and to codes of consecutive elements within each trial."""
        ok = ~self.start[1:]
        g, a, b = self.group[1:][ok], self.aoi[:-1][ok], self.aoi[1:][ok]
        if not include_self:
            keep = a != b
            g, a, b = g[keep], a[keep], b[keep]
        return g, a, b


def _count_pairs(units: _Units, *, include_self: bool) -> tuple[np.ndarray, ...]:
    """Sorted distinct (group, from, to) with counts and row-normalised probabilities."""
    g, a, b = units.pairs(include_self=include_self)
    m = max(len(units.aoi_ids), 1)
    key = (g * m + a) * m + b
    uniq, count = np.unique(key, return_counts=True)
    g, rest = np.divmod(uniq, m * m)
    a, b = np.divmod(rest, m)
    row = g * m + a
    # Rows of one (group, from) are contiguous after the sort.
    change = np.ones(row.shape[0], dtype=bool)
    change[1:] = row[1:] != row[:-1]
    seg = np.flatnonzero(change)
    total = np.add.reduceat(count, seg) if seg.size else np.zeros(0, dtype=np.int64)
    prob = count / np.repeat(total, np.diff(np.r_[seg, count.shape[0]])).astype(np.float64)
    return g, a, b, count, prob


def _counts_frame(units: _Units, *, include_self: bool) -> pd.DataFrame:
    g, a, b, count, prob = _count_pairs(units, include_self=include_self)
    # One frame built from a dict: column-by-column inserts cost more than the counting here.
    columns: dict[str, Any] = {k: v.take(g) for k, v in units.keys.items()}
    labels = units.aoi_labels() if g.size else units.aoi_ids
    columns["from_aoi"] = labels.take(a)
    columns["to_aoi"] = labels.take(b)
    columns["count"] = count.astype(np.int32)
    columns["prob"] = prob
    return pd.DataFrame(columns, copy=False)


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
    min_fixation_ms: float = 0.0,
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
    min_fixation_ms : float
        Drop fixations shorter than this before anything else (aoi_hits input only), so the
        fixations around a dropped one become consecutive (see :func:`aoi_sequences`).

    Returns
    -------
    pd.DataFrame
        Long table ``participant, trial, stimulus_id, from_aoi, to_aoi, count`` (int32),
        ``prob`` (float64, ``count`` over the row total of ``from_aoi`` in the trial), sorted by
        all five keys. Trials with fewer than two elements contribute no rows.
    """
    if "sequence" in data:
        hits = _from_sequences(data)
        min_fixation_ms = 0.0
    else:
        hits = data
    units = _Units(hits, collapse_repeats=collapse_repeats, min_fixation_ms=min_fixation_ms)
    return _counts_frame(units, include_self=include_self)


def aoi_sequences(
    aoi_hits: pd.DataFrame,
    *,
    collapse_repeats: bool = False,
    weighting: Weighting = "fixations",
    n_states: int | Mapping[str, int] | None = None,
    min_fixation_ms: float = 0.0,
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
    min_fixation_ms : float
        Drop fixations shorter than this (NaN durations stay) before building the sequence, and so
        before collapsing: ``A(200) B(50) A(150)`` with 80 ms becomes ``A A`` (or one visit ``A``).
        Reading research commonly excludes fixations under 80 ms as too short for lexical
        processing (Rayner 1998); a trial with no fixation left has no row.

    Returns
    -------
    pd.DataFrame
        One row per ``(participant, trial, stimulus_id)``, sorted, with ``sequence`` (list of
        AOI ids), ``dwell_ms`` (list of float durations aligned with ``sequence``),
        ``n_fixations`` (int32, kept fixations before collapsing), ``n_elements`` (int32, ``len(sequence)``),
        ``n_distinct_aois`` (int32), ``stationary_entropy_bits``, ``transition_entropy_bits``,
        ``stationary_entropy_norm``, ``transition_entropy_norm`` (float64).
    """
    if weighting not in ("fixations", "dwell"):
        raise ValueError(f"weighting must be 'fixations' or 'dwell', found {weighting!r}")
    units = _Units(aoi_hits, collapse_repeats=collapse_repeats, min_fixation_ms=min_fixation_ms)
    out: dict[str, Any] = dict(units.keys)
    n_groups, m = units.n_groups, max(len(units.aoi_ids), 1)
    g = units.group
    bounds = np.r_[np.flatnonzero(units.start), g.shape[0]]
    ids = units.aoi_ids[units.aoi].tolist()
    dur = units.duration_ms.tolist()
    # One Python list per trial is what the column holds; slicing flat lists is the cheap way.
    out["sequence"] = [ids[i:j] for i, j in itertools.pairwise(bounds)]
    out["dwell_ms"] = [dur[i:j] for i, j in itertools.pairwise(bounds)]
    out["n_fixations"] = np.bincount(g, weights=units.n_fix, minlength=n_groups).astype(np.int32)
    out["n_elements"] = np.bincount(g, minlength=n_groups).astype(np.int32)
    cell, inverse = np.unique(g * m + units.aoi, return_inverse=True)
    cell_group = cell // m
    out["n_distinct_aois"] = np.bincount(cell_group, minlength=n_groups).astype(np.int32)

    # Stationary distribution per (trial, AOI).
    w = np.ones(g.shape[0]) if weighting == "fixations" else units.duration_ms
    pi = np.bincount(inverse, weights=w, minlength=cell.shape[0])
    pi = pi / np.bincount(cell_group, weights=pi, minlength=n_groups)[cell_group]
    h_s = np.bincount(cell_group, weights=_plogp(pi), minlength=n_groups)

    # Row entropies of the transition matrix, weighted by pi of the row's AOI.
    tg, ta, _, _, prob = _count_pairs(units, include_self=True)
    row, row_inv = np.unique(tg * m + ta, return_inverse=True)
    h_row = np.bincount(row_inv, weights=_plogp(prob), minlength=row.shape[0])
    # Every (trial, from) row is a (trial, AOI) cell of the sequence.
    pi_row = pi[np.searchsorted(cell, row)]
    h_t = np.bincount(row // m, weights=pi_row * h_row, minlength=n_groups)
    has_rows = np.bincount(row // m, minlength=n_groups) > 0
    # A trial with a single element has no transitions: its transition entropy is 0 (certain).
    out["stationary_entropy_bits"] = h_s.astype(np.float64)
    out["transition_entropy_bits"] = np.where(has_rows, h_t, 0.0).astype(np.float64)

    if n_states is None:
        states = out["n_distinct_aois"].astype(np.float64)
    elif isinstance(n_states, Mapping):
        stimulus = pd.Series(units.keys["stimulus_id"])
        states = stimulus.map(dict(n_states)).to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        states = np.full(n_groups, float(n_states))
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(states >= 2, np.log2(states), np.nan)
        out["stationary_entropy_norm"] = out["stationary_entropy_bits"] / norm
        out["transition_entropy_norm"] = out["transition_entropy_bits"] / norm
    # One frame built from a dict: column-by-column inserts cost more than the entropies here.
    return pd.DataFrame(out, copy=False)


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
