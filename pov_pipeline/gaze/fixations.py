"""The ``fixations`` table, and the frame helpers the post-detection stage shares.

``fixations`` is the fixation events of ``gaze_events``, numbered within each trial. Detection
emits each participant's events trial by trial in onset order, so the table is normally already in
its final row order: that is checked on integer codes and the sort is skipped when it would not
move a row. Anything else (unsorted input, missing keys) takes the pandas reference path, which
gives the same table.

The helpers work on the ``str`` columns these tables hold (pandas strings backed by Arrow) in
Arrow directly: for a few thousand rows pandas' per-call overhead on such columns (comparisons,
``factorize``) costs several times the work itself. Other column types take the pandas route.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["fixation_table"]

#: Sort keys of the table; ``fixation_index`` counts rows within (participant, trial).
_SORT_KEYS = ["participant", "trial", "onset_ms"]


def _arrow_strings(column: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow data of a ``str`` column backed by Arrow, else ``None``."""
    arr = column.array
    if not (isinstance(column.dtype, pd.StringDtype) and hasattr(arr, "__arrow_array__")):
        return None
    data = arr.__arrow_array__()
    if isinstance(data, pa.Array):
        data = pa.chunked_array([data])
    if not (pa.types.is_string(data.type) or pa.types.is_large_string(data.type)):
        return None
    return data


def _is_inferred_str(dtype: object) -> bool:
    """Whether ``dtype`` is what a frame infers from Python strings (pandas' default ``str``)."""
    return dtype == pd.StringDtype(na_value=np.nan)


def _has_missing(column: pd.Series) -> bool:
    """``column.isna().any()``, read from Arrow's null count or numpy's NaN test where it can."""
    data = _arrow_strings(column)
    if data is not None:
        return data.null_count > 0
    if _is_numpy_kind(column, "iub"):
        return False
    if _is_numpy_kind(column, "f"):
        return bool(np.isnan(column.to_numpy()).any())
    return bool(column.isna().any())


def _equals(column: pd.Series, value: str) -> npt.NDArray[np.bool_]:
    """``(column == value).to_numpy()``: missing values give False."""
    data = _arrow_strings(column)
    if data is None:
        return (column == value).to_numpy(dtype=bool)
    eq = pc.equal(data, pa.scalar(value, type=data.type))
    if eq.null_count:
        eq = pc.fill_null(eq, False)
    return np.asarray(eq.to_numpy(), dtype=bool)


def _factorize_sorted(
    column: pd.Series, *, with_values: bool = True
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.object_] | None]:
    """``pd.factorize(column, sort=True)``: codes (-1 where missing) and the distinct values.

    Codes order like the values, so they stand in for them in sorts and comparisons. Arrow
    strings are dictionary-encoded and the few distinct values sorted in Arrow, the ordering
    ``factorize`` itself uses for them. ``with_values=False`` skips the distinct values (``None``).
    """
    data = _arrow_strings(column)
    if data is None:
        codes, uniques = pd.factorize(column, sort=True, use_na_sentinel=True)
        return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)
    # One dictionary for all rows (chunks may each have their own).
    encoded = pc.dictionary_encode(data.combine_chunks() if data.num_chunks != 1 else data.chunk(0))
    dictionary, indices = encoded.dictionary, encoded.indices
    m = len(dictionary)
    if m > 1:
        order = pc.array_sort_indices(dictionary).to_numpy()
        rank = np.empty(m + 1, dtype=np.int64)
        rank[order] = np.arange(m)
    else:
        order, rank = np.arange(m), np.arange(m + 1, dtype=np.int64)
    # Missing rows have a null index: the extra slot holds their -1.
    rank[m] = -1
    if indices.null_count:
        indices = pc.fill_null(indices, m)
    codes = rank[indices.to_numpy()]
    if not with_values:
        return codes, None
    return codes, np.asarray(dictionary.to_pylist(), dtype=object)[order]


def _sort_codes(column: pd.Series) -> npt.NDArray[np.int64]:
    """Integer codes that order and compare like the values; -1 where a value is missing."""
    return _factorize_sorted(column, with_values=False)[0]


def _is_numpy_kind(column: pd.Series, kinds: str) -> bool:
    """Whether the column is a plain numpy column of one of the dtype ``kinds`` (``"iuf"``)."""
    return isinstance(column.dtype, np.dtype) and column.dtype.kind in kinds


def _key_array(column: pd.Series) -> npt.NDArray[Any] | None:
    """The column as an array that sorts and compares like it, or ``None`` if a value is missing.

    Numbers are used as they are (no hashing); anything else is replaced by sorted codes.
    """
    if _is_numpy_kind(column, "iub"):
        return column.to_numpy()
    if _is_numpy_kind(column, "f"):
        values = column.to_numpy()
        return None if np.isnan(values).any() else values
    codes = _sort_codes(column)
    return None if (codes < 0).any() else codes


def _in_sort_order(*keys: npt.NDArray[Any]) -> bool:
    """Whether a stable sort by ``keys`` (first key first) would leave every row in place.

    That is the case exactly when every row's key tuple is >= the previous one,
    lexicographically. Comparisons with NaN are False, so a NaN passes only where an earlier key
    rises (the end of its group, where the sort puts it): the check can fail on sorted input,
    never pass on unsorted input.
    """
    if keys[0].shape[0] < 2:
        return True
    ok = np.zeros(keys[0].shape[0] - 1, dtype=bool)
    tied = np.ones_like(ok)
    with np.errstate(invalid="ignore"):
        for k in keys:
            ok |= tied & (k[1:] > k[:-1])
            tied &= k[1:] == k[:-1]
    return bool((ok | tied).all())


def _run_index(*keys: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """0, 1, 2, ... within each run of rows with equal keys (``groupby.cumcount`` of grouped rows)."""
    n = keys[0].shape[0]
    start = np.zeros(n, dtype=bool)
    start[:1] = True
    for k in keys:
        start[1:] |= k[1:] != k[:-1]
    first = np.flatnonzero(start)
    return np.arange(n, dtype=np.int64) - np.repeat(first, np.diff(np.r_[first, n]))


def _fixation_table_pandas(events: pd.DataFrame) -> pd.DataFrame:
    """The reference: filter, stable sort, group-wise count (any input, including missing keys)."""
    table = events[events["event"] == "fixation"]
    table = table.sort_values(_SORT_KEYS, kind="stable").reset_index(drop=True)
    table["fixation_index"] = table.groupby(["participant", "trial"]).cumcount().astype("int32")
    return table


def fixation_table(events: pd.DataFrame) -> pd.DataFrame:
    """Fixation events only, sorted by ``participant, trial, onset_ms`` and numbered per trial.

    Parameters
    ----------
    events : pd.DataFrame
        The ``gaze_events`` table (at least ``event, participant, trial, onset_ms``; ``onset_ms``
        in ms on the tracker clock).

    Returns
    -------
    pd.DataFrame
        The rows with ``event == "fixation"``, every column of ``events`` kept, in stable
        ``participant, trial, onset_ms`` order with a fresh ``RangeIndex``, plus
        ``fixation_index`` (int32): 0, 1, ... in that order within each (participant, trial).
    """
    columns = events.columns
    if "fixation_index" in columns or columns.has_duplicates or not set(_SORT_KEYS) <= set(columns):
        return _fixation_table_pandas(events)
    trial, onset_ms = events["trial"], events["onset_ms"]
    # Integer trials only: a missing trial would drop out of the group-wise count.
    if not (_is_numpy_kind(trial, "iu") and _is_numpy_kind(onset_ms, "iuf")):
        return _fixation_table_pandas(events)
    rows = np.flatnonzero(_equals(events["event"], "fixation"))
    part = _sort_codes(events["participant"])[rows]
    trial_values = trial.to_numpy()[rows]
    onset = onset_ms.to_numpy()[rows]
    if (part < 0).any() or not _in_sort_order(part, trial_values, onset):
        return _fixation_table_pandas(events)
    # Sorted rows are grouped by (participant, trial) already: the count restarts at each change.
    index = _run_index(part, trial_values)
    table = events.take(rows)
    table.index = pd.RangeIndex(rows.size)
    table.insert(len(columns), "fixation_index", index.astype(np.int32))
    return table
