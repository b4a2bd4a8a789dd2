"""Systematic gaze offset (calibration error, drift) estimated from where fixations land on the AOIs.

A video eye tracker's calibration leaves a constant offset of typically 0.3–1° per session. For large
image objects that hardly matters, but caption words are about 1° tall and 1–4° wide, so a 0.7° offset
moves many word fixations onto the neighbouring word or off the line, and with them the transitions
between a word and the object it names. Reading research corrects this by aligning fixations to the
text (Carr et al. 2022, "Algorithms for the automated correction of vertical drift in eye-tracking
data", Behavior Research Methods); here the text and the objects are aligned together, in 2-D.

Method: for a grid of candidate offsets within ``max_offset_deg`` (step ``step_deg``), count the
fixations whose shifted centroid falls inside an AOI bounding box of its own stimulus. The count is
smoothed over neighbouring candidates (3 × 3), and the estimate is the centre of the candidates
within noise of the best count (wide boxes give a plateau rather than a peak). Rectangles keep the count
cheap and separable in x and y (one matrix product per AOI slot), and for the estimate of a *shift*
a bounding box is as informative as the exact outline. Fixations on overlapping boxes count once per
box, which favours no direction. The estimate is applied only when it is supported: enough fixations,
and more of them inside an AOI than without the shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit
from scipy.ndimage import uniform_filter

from pov_pipeline.gaze import _kernels  # noqa: F401  (sets numba's cache folder before the kernels below)
from pov_pipeline.gaze.fixations import _arrow_strings
from pov_pipeline.schemas import GAZE_OFFSETS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Columns of the ``gaze_offsets`` table, in order.
GAZE_OFFSET_COLUMNS: tuple[str, ...] = tuple(GAZE_OFFSETS.names)


@dataclass(frozen=True)
class GazeOffset:
    """One estimated offset: subtract ``(offset_x_px, offset_y_px)`` from gaze to correct it.

    Attributes
    ----------
    offset_x_px, offset_y_px:
        The estimated systematic error (gaze minus true position), in px. Zero when not applied.
    n_fixations:
        Fixations the estimate used.
    inside_share_before, inside_share_after:
        Share of those fixations inside an AOI bounding box without and with the correction.
    applied:
        Whether the offset is supported (see :func:`estimate_gaze_offset`); if not, both offsets are 0.
    """

    offset_x_px: float
    offset_y_px: float
    n_fixations: int
    inside_share_before: float
    inside_share_after: float
    applied: bool


def _inside_share(x_px: FloatArray, y_px: FloatArray, boxes_px: FloatArray) -> float:
    """Share of fixations inside at least one of their boxes."""
    with np.errstate(invalid="ignore"):
        inside = (
            (x_px[:, None] >= boxes_px[:, :, 0])
            & (x_px[:, None] <= boxes_px[:, :, 2])
            & (y_px[:, None] >= boxes_px[:, :, 1])
            & (y_px[:, None] <= boxes_px[:, :, 3])
        )
    return float(inside.any(axis=1).mean()) if x_px.size else 0.0


def _inside_counts(
    x_px: FloatArray, y_px: FloatArray, boxes_px: FloatArray, offsets_px: FloatArray
) -> FloatArray:
    """``counts[i, j]``: (fixation, box) pairs inside after shifting by ``(-offsets[i], -offsets[j])``.

    A box holds the shifted fixation for a contiguous run of x shifts and one of y shifts, so every
    (fixation, box) pair adds 1 to a rectangle of the grid: four entries of a 2-D difference array,
    summed up at the end. Cost O(pairs + grid) instead of O(pairs × grid).
    """
    n = offsets_px.size
    step = offsets_px[1] - offsets_px[0]

    def shift_range(v: FloatArray, low: FloatArray, high: FloatArray) -> tuple[np.ndarray, np.ndarray]:
        # low <= v - offset <= high  <=>  v - high <= offset <= v - low
        first = np.ceil((v - high - offsets_px[0]) / step)
        last = np.floor((v - low - offsets_px[0]) / step)
        return np.clip(first, 0, n).astype(np.int64), np.clip(last, -1, n - 1).astype(np.int64)

    # On the whole (fixation, slot) grid: cheaper than gathering the real boxes first. The NaN
    # padding gives meaningless ranges (hence no warnings), dropped with ``ok``.
    with np.errstate(invalid="ignore"):
        x0, x1 = shift_range(x_px[:, None], boxes_px[:, :, 0], boxes_px[:, :, 2])
        y0, y1 = shift_range(y_px[:, None], boxes_px[:, :, 1], boxes_px[:, :, 3])
    ok = np.isfinite(boxes_px[:, :, 0]) & (x0 <= x1) & (y0 <= y1)
    x0, x1, y0, y1 = x0[ok], x1[ok] + 1, y0[ok], y1[ok] + 1
    side = n + 1
    # Integer counts: every partial sum is exact, so the order of the additions does not matter.
    plus = np.bincount(np.concatenate([x0 * side + y0, x1 * side + y1]), minlength=side * side)
    minus = np.bincount(np.concatenate([x1 * side + y0, x0 * side + y1]), minlength=side * side)
    diff = (plus - minus).reshape(side, side)
    return diff.cumsum(axis=0).cumsum(axis=1)[:n, :n].astype(np.float64)


@njit(cache=True)
def _clipped_int(v: float, low: int, high: int) -> int:
    """``int(np.clip(v, low, high))`` of a non-NaN float."""
    if v < low:
        return low
    if v > high:
        return high
    return int(v)


@njit(cache=True)
def _grid_counts_kernel(
    x: FloatArray, y: FloatArray, pos: IntArray, table: FloatArray, first_offset: float, step: float, n: int
) -> FloatArray:
    """:func:`_inside_counts` of the boxes ``table[pos]``, without gathering them.

    The same arithmetic per (fixation, box); the counts are integers, exact in any order of
    addition. Boxes with a finite ``x0`` must have no NaN coordinate (the caller checks).
    """
    side = n + 1
    diff = np.zeros((side, side), dtype=np.int64)
    # A box further than a whole step beyond the grid holds the fixation at no offset: its
    # range is empty whatever the rounding, so the divisions are skipped.
    above, below = (n + 1) * step, -2.0 * step
    for i in range(x.size):
        row = pos[i]
        for k in range(table.shape[1]):
            if not np.isfinite(table[row, k, 0]):
                continue
            # low <= v - offset <= high  <=>  v - high <= offset <= v - low
            xh = x[i] - table[row, k, 2] - first_offset
            xl = x[i] - table[row, k, 0] - first_offset
            yh = y[i] - table[row, k, 3] - first_offset
            yl = y[i] - table[row, k, 1] - first_offset
            if xh > above or xl < below or yh > above or yl < below:
                continue
            x0 = _clipped_int(np.ceil(xh / step), 0, n)
            x1 = _clipped_int(np.floor(xl / step), -1, n - 1)
            y0 = _clipped_int(np.ceil(yh / step), 0, n)
            y1 = _clipped_int(np.floor(yl / step), -1, n - 1)
            if x0 <= x1 and y0 <= y1:
                diff[x0, y0] += 1
                diff[x1 + 1, y0] -= 1
                diff[x0, y1 + 1] -= 1
                diff[x1 + 1, y1 + 1] += 1
    counts = np.empty((n, n), dtype=np.float64)
    for i in range(side):
        for j in range(side):
            # 2-D prefix sums, in place.
            if i:
                diff[i, j] += diff[i - 1, j]
            if j:
                diff[i, j] += diff[i, j - 1]
            if i and j:
                diff[i, j] -= diff[i - 1, j - 1]
            if i < n and j < n:
                counts[i, j] = diff[i, j]
    return counts


@njit(cache=True)
def _inside_count_kernel(x: FloatArray, y: FloatArray, pos: IntArray, table: FloatArray) -> int:
    """Fixations inside at least one of their boxes ``table[pos]`` (:func:`_inside_share` times n)."""
    count = 0
    for i in range(x.size):
        row = pos[i]
        for k in range(table.shape[1]):
            if (
                x[i] >= table[row, k, 0]
                and x[i] <= table[row, k, 2]
                and y[i] >= table[row, k, 1]
                and y[i] <= table[row, k, 3]
            ):
                count += 1
                break
    return count


def estimate_gaze_offset(
    x_px: npt.ArrayLike,
    y_px: npt.ArrayLike,
    boxes_px: npt.ArrayLike,
    *,
    px_per_deg: float,
    max_offset_deg: float = 2.0,
    step_deg: float = 0.05,
    min_fixations: int = 30,
    min_gain: float = 0.02,
) -> GazeOffset:
    """Estimate the constant offset of a set of fixations from the AOIs they land on.

    Parameters
    ----------
    x_px, y_px:
        Fixation centroids in screen px, shape ``(n,)``; NaN centroids are ignored.
    boxes_px:
        Per fixation, the bounding boxes ``(x0, y0, x1, y1)`` of its stimulus's AOIs, shape
        ``(n, K, 4)``, padded with NaN where a stimulus has fewer than ``K`` AOIs.
    px_per_deg:
        Pixels per degree of visual angle (at the screen centre).
    max_offset_deg:
        Largest offset searched along each axis, in degrees. 2° covers a poor calibration; an offset
        much larger than the spacing of the AOIs cannot be told apart from a different layout.
    step_deg:
        Grid step in degrees.
    min_fixations:
        Fewer usable fixations than this: no estimate (offset 0, ``applied=False``).
    min_gain:
        The offset is applied only if it raises the share of fixations inside an AOI by at least this
        much (absolute); otherwise the data give no reason to move them.

    Returns
    -------
    GazeOffset
    """
    x = np.asarray(x_px, dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    boxes = np.asarray(boxes_px, dtype=np.float64)
    if boxes.ndim != 3 or boxes.shape[0] != x.size or boxes.shape[2] != 4 or y.shape != x.shape:
        raise ValueError(f"boxes_px must be (n, K, 4) for n={x.size} fixations, got {boxes.shape}")
    return _estimate(
        x,
        y,
        boxes,
        np.arange(x.size),
        px_per_deg=px_per_deg,
        max_offset_deg=max_offset_deg,
        step_deg=step_deg,
        min_fixations=min_fixations,
        min_gain=min_gain,
    )


def _estimate(
    x: FloatArray,
    y: FloatArray,
    table: FloatArray,
    pos: IntArray,
    *,
    px_per_deg: float,
    max_offset_deg: float,
    step_deg: float,
    min_fixations: int,
    min_gain: float,
) -> GazeOffset:
    """:func:`estimate_gaze_offset` with fixation ``i``'s boxes in ``table[pos[i]]`` (``(S, K, 4)``).

    The AOI table of a study serves every fixation: no per-fixation copy of its boxes.
    """
    if px_per_deg <= 0 or max_offset_deg <= 0 or step_deg <= 0:
        raise ValueError("px_per_deg, max_offset_deg and step_deg must be positive")
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.all():
        x, y, pos = x[ok], y[ok], pos[ok]
    n = int(x.size)
    if n == 0 or table.shape[1] == 0:
        return GazeOffset(0.0, 0.0, n, 0.0, 0.0, False)
    n_steps = round(max_offset_deg / step_deg)
    offsets = np.arange(-n_steps, n_steps + 1) * step_deg * px_per_deg
    # The compiled loops need every box with a finite x0 to be complete; anything else (never
    # seen in an AOI table) takes the array code on the gathered boxes.
    compiled = not (np.isfinite(table[:, :, :1]) & np.isnan(table[:, :, 1:])).any()
    pos = np.ascontiguousarray(pos, dtype=np.int64)
    table = np.ascontiguousarray(table, dtype=np.float64)

    def share(xs: FloatArray, ys: FloatArray) -> float:
        if compiled:
            return _inside_count_kernel(xs, ys, pos, table) / n
        return _inside_share(xs, ys, table[pos])

    if compiled:
        counts = _grid_counts_kernel(x, y, pos, table, offsets[0], offsets[1] - offsets[0], offsets.size)
    else:
        counts = _inside_counts(x, y, table[pos], offsets)
    before = share(x, y)
    smooth = uniform_filter(counts, size=3, mode="nearest")
    # Wide boxes make a plateau of near-equal counts; its centre is the estimate that is least
    # pulled towards either edge (the argmax alone lands anywhere on it).
    plateau = smooth >= smooth.max() - max(1.0, 0.005 * n)
    ii, jj = np.nonzero(plateau)
    dx, dy = float(offsets[ii].mean()), float(offsets[jj].mean())
    after = share(x - dx, y - dy)
    if n < min_fixations or after - before < min_gain:
        return GazeOffset(0.0, 0.0, n, before, before, False)
    return GazeOffset(dx, dy, n, before, after, True)


def aoi_box_table(aois: pd.DataFrame) -> tuple[pd.Index, FloatArray]:
    """Stimulus ids and their AOI bounding boxes ``(S + 1, K, 4)``, padded with NaN.

    The last row is all NaN: it stands for stimuli without AOIs. ``aois`` has the ``schemas.AOIS``
    columns; every shape has its bounding box there.
    """
    sids = aois["stimulus_id"].to_numpy().astype(str)
    names, inverse = np.unique(sids, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(names.size))
    slot = np.empty(sids.size, dtype=np.int64)
    slot[order] = np.arange(sids.size) - starts[inverse[order]]
    k = int(slot.max()) + 1 if sids.size else 0
    table = np.full((names.size + 1, k, 4), np.nan)
    table[inverse, slot] = aois[["x0_px", "y0_px", "x1_px", "y1_px"]].to_numpy(np.float64)
    return pd.Index(names), table


def aoi_boxes_per_fixation(
    stimulus_ids: npt.ArrayLike | pd.Series, aois: pd.DataFrame | tuple[pd.Index, FloatArray]
) -> FloatArray:
    """Bounding boxes of each fixation's stimulus AOIs, ``(n, K, 4)`` padded with NaN.

    ``aois`` is the AOI table or its :func:`aoi_box_table` (to parse it once for many sessions).
    Ids are matched as ``str`` (a missing id as ``"nan"``).
    """
    names, table = aoi_box_table(aois) if isinstance(aois, pd.DataFrame) else aois
    return table[_box_rows(stimulus_ids, names)]


def _box_rows(stimulus_ids: npt.ArrayLike | pd.Series, names: pd.Index) -> IntArray:
    """Row of each fixation's stimulus in an :func:`aoi_box_table` (``len(names)``: no AOIs)."""
    data = _arrow_strings(stimulus_ids) if isinstance(stimulus_ids, pd.Series) else None
    if data is not None and len(names):
        # Looked up in Arrow, in one pass; the ``str`` conversion per row is what costs. Rows it
        # does not resolve (missing ids, which ``str`` makes "nan", or unknown ones) take the
        # conversion below, so that ids match exactly as there.
        value_set = pa.array(names.to_numpy(dtype=object), type=data.type)
        pos = pc.fill_null(pc.index_in(data, value_set=value_set), -1).to_numpy().astype(np.int64)
        unresolved = np.flatnonzero(pos < 0)
        if unresolved.size:
            pos[unresolved] = names.get_indexer(np.asarray(stimulus_ids)[unresolved].astype(str))
    else:
        pos = names.get_indexer(np.asarray(stimulus_ids).astype(str))
    return np.where(pos >= 0, pos, len(names))


def _single_group(fixations: pd.DataFrame, keys: Sequence[str]) -> tuple[str, ...] | None:
    """The key of a frame whose ``keys`` columns each hold one value and no missing one.

    That is one session's fixations, the usual input: grouping them would only cost time. ``None``
    for anything else, including columns that are not Arrow strings.
    """
    if not len(fixations):
        return None
    key = []
    for k in keys:
        data = _arrow_strings(fixations[k])
        if data is None or data.null_count:
            return None
        bounds = pc.min_max(data)
        if bounds["min"] != bounds["max"]:
            return None
        key.append(bounds["min"].as_py())
    return tuple(key)


def gaze_offsets(
    fixations: pd.DataFrame,
    aois: pd.DataFrame | tuple[pd.Index, FloatArray],
    *,
    px_per_deg: float,
    max_offset_deg: float = 2.0,
    step_deg: float = 0.05,
    min_fixations: int = 30,
    min_gain: float = 0.02,
) -> pd.DataFrame:
    """One offset per ``(participant, eye)`` of a session's fixations (the ``gaze_offsets`` table).

    Parameters are those of :func:`estimate_gaze_offset`; ``aois`` is the AOI table or its
    :func:`aoi_box_table`; ``fixations`` needs ``participant, eye,
    stimulus_id, x_px, y_px``. Returns ``participant, eye, offset_x_px, offset_y_px, offset_x_deg,
    offset_y_deg, n_fixations, inside_share_before, inside_share_after, applied``.
    """
    rows = []
    boxes = aoi_box_table(aois) if isinstance(aois, pd.DataFrame) else aois
    keys = ["participant", "eye"]
    single = _single_group(fixations, keys)
    # A session's fixations are one group: the frame itself, rows in order, as groupby yields it.
    groups = [(single, fixations)] if single is not None else fixations.groupby(keys, sort=True)
    for (participant, eye), g in groups:
        est = _estimate(
            np.asarray(g["x_px"].to_numpy(), dtype=np.float64),
            np.asarray(g["y_px"].to_numpy(), dtype=np.float64),
            boxes[1],
            _box_rows(g["stimulus_id"], boxes[0]),
            px_per_deg=px_per_deg,
            max_offset_deg=max_offset_deg,
            step_deg=step_deg,
            min_fixations=min_fixations,
            min_gain=min_gain,
        )
        rows.append(
            {
                "participant": participant,
                "eye": eye,
                "offset_x_px": est.offset_x_px,
                "offset_y_px": est.offset_y_px,
                "offset_x_deg": est.offset_x_px / px_per_deg,
                "offset_y_deg": est.offset_y_px / px_per_deg,
                "n_fixations": est.n_fixations,
                "inside_share_before": est.inside_share_before,
                "inside_share_after": est.inside_share_after,
                "applied": est.applied,
            }
        )
    return pd.DataFrame(rows, columns=GAZE_OFFSET_COLUMNS)


def _offset_rows(fixations: pd.DataFrame, offsets: pd.DataFrame) -> npt.NDArray[np.intp] | None:
    """Per fixation, the row of ``offsets`` with its ``(participant, eye)`` (-1: none).

    ``None`` where a left merge on the keys could do anything else than pick at most one row
    (duplicate or missing keys in ``offsets``, which the merge matches NaN to NaN) or the columns
    are not Arrow strings.
    """
    keys = ["participant", "eye"]
    data = [_arrow_strings(fixations[k]) for k in keys]
    wanted = [offsets[k] for k in keys]
    if any(d is None for d in data) or any(_arrow_strings(w) is None for w in wanted):
        return None
    # The offsets table has a row or two per session: its keys are handled as Python lists.
    off_codes, fix_codes = [], []
    for column, values in zip(data, (w.tolist() for w in wanted), strict=True):
        if not all(isinstance(v, str) for v in values):
            return None
        distinct = list(dict.fromkeys(values))
        off_codes.append(np.array([distinct.index(v) for v in values], dtype=np.intp))
        # Each fixation's value among them, in Arrow (-1: none or missing).
        found = pc.index_in(column, value_set=pa.array(distinct, type=column.type))
        if found.null_count:
            found = pc.fill_null(found, -1)
        fix_codes.append(found.to_numpy().astype(np.intp))
    (off_part, off_eye), (part, eye) = off_codes, fix_codes
    lut = np.full((off_part.max(initial=0) + 2, off_eye.max(initial=0) + 2), -1, dtype=np.intp)
    lut[off_part, off_eye] = np.arange(len(offsets))
    if np.count_nonzero(lut >= 0) != len(offsets):
        return None  # a duplicate key: the merge would repeat fixations
    # -1 codes index the last row and column, which stay -1.
    return lut[part, eye]


def apply_gaze_offsets(fixations: pd.DataFrame, offsets: pd.DataFrame) -> pd.DataFrame:
    """Fixations with the ``(participant, eye)`` offset subtracted from ``x_px, y_px`` (a copy).

    Rows without an offset are left as they are. Degree columns are not touched: the AOI mapping works
    in px, and the ``fixations`` table keeps what the tracker reported.
    """
    if not len(fixations) or not len(offsets):
        return fixations.copy()
    rows = None
    if offsets["offset_x_px"].dtype == np.float64 and offsets["offset_y_px"].dtype == np.float64:
        rows = _offset_rows(fixations, offsets)
    if rows is None:
        out = fixations.copy()
        key = out[["participant", "eye"]].merge(
            offsets[["participant", "eye", "offset_x_px", "offset_y_px"]],
            on=["participant", "eye"],
            how="left",
        )
        out["x_px"] = out["x_px"].to_numpy() - key["offset_x_px"].fillna(0.0).to_numpy()
        out["y_px"] = out["y_px"].to_numpy() - key["offset_y_px"].fillna(0.0).to_numpy()
        return out
    # A lookup by row code instead of a merge; no offset (and a NaN one) subtracts 0.
    dx, dy = (offsets[c].to_numpy() for c in ("offset_x_px", "offset_y_px"))
    dx = np.r_[np.where(np.isnan(dx), 0.0, dx), 0.0][rows]
    dy = np.r_[np.where(np.isnan(dy), 0.0, dy), 0.0][rows]
    # Copy-on-write: a shallow copy is a copy, and replacing two columns copies nothing else.
    out = fixations.copy(deep=False)
    out["x_px"] = out["x_px"].to_numpy() - dx
    out["y_px"] = out["y_px"].to_numpy() - dy
    return out
