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

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.ndimage import uniform_filter

from pov_pipeline.schemas import GAZE_OFFSETS

FloatArray = npt.NDArray[np.float64]

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
    fix, slot = np.nonzero(np.isfinite(boxes_px[:, :, 0]))
    b = boxes_px[fix, slot]  # (m, 4)
    n = offsets_px.size
    step = offsets_px[1] - offsets_px[0]

    def shift_range(v: FloatArray, low: FloatArray, high: FloatArray) -> tuple[np.ndarray, np.ndarray]:
        # low <= v - offset <= high  <=>  v - high <= offset <= v - low
        first = np.ceil((v - high - offsets_px[0]) / step)
        last = np.floor((v - low - offsets_px[0]) / step)
        return np.clip(first, 0, n).astype(np.int64), np.clip(last, -1, n - 1).astype(np.int64)

    x0, x1 = shift_range(x_px[fix], b[:, 0], b[:, 2])
    y0, y1 = shift_range(y_px[fix], b[:, 1], b[:, 3])
    ok = (x0 <= x1) & (y0 <= y1)
    x0, x1, y0, y1 = x0[ok], x1[ok] + 1, y0[ok], y1[ok] + 1
    side = n + 1
    index = np.concatenate([x0 * side + y0, x1 * side + y0, x0 * side + y1, x1 * side + y1])
    weight = np.concatenate([np.ones(x0.size), -np.ones(x0.size), -np.ones(x0.size), np.ones(x0.size)])
    diff = np.bincount(index, weights=weight, minlength=side * side).reshape(side, side)
    return diff.cumsum(axis=0).cumsum(axis=1)[:n, :n]


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
    if px_per_deg <= 0 or max_offset_deg <= 0 or step_deg <= 0:
        raise ValueError("px_per_deg, max_offset_deg and step_deg must be positive")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, boxes = x[ok], y[ok], boxes[ok]
    n = int(x.size)
    if n == 0 or boxes.shape[1] == 0:
        return GazeOffset(0.0, 0.0, n, 0.0, 0.0, False)
    n_steps = round(max_offset_deg / step_deg)
    offsets = np.arange(-n_steps, n_steps + 1) * step_deg * px_per_deg
    counts = _inside_counts(x, y, boxes, offsets)
    before = _inside_share(x, y, boxes)
    smooth = uniform_filter(counts, size=3, mode="nearest")
    # Wide boxes make a plateau of near-equal counts; its centre is the estimate that is least
    # pulled towards either edge (the argmax alone lands anywhere on it).
    plateau = smooth >= smooth.max() - max(1.0, 0.005 * n)
    ii, jj = np.nonzero(plateau)
    dx, dy = float(offsets[ii].mean()), float(offsets[jj].mean())
    after = _inside_share(x - dx, y - dy, boxes)
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
    stimulus_ids: npt.ArrayLike, aois: pd.DataFrame | tuple[pd.Index, FloatArray]
) -> FloatArray:
    """Bounding boxes of each fixation's stimulus AOIs, ``(n, K, 4)`` padded with NaN.

    ``aois`` is the AOI table or its :func:`aoi_box_table` (to parse it once for many sessions).
    """
    names, table = aoi_box_table(aois) if isinstance(aois, pd.DataFrame) else aois
    pos = names.get_indexer(np.asarray(stimulus_ids).astype(str))
    return table[np.where(pos >= 0, pos, len(names))]


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
    for (participant, eye), g in fixations.groupby(["participant", "eye"], sort=True):
        est = estimate_gaze_offset(
            g["x_px"].to_numpy(),
            g["y_px"].to_numpy(),
            aoi_boxes_per_fixation(g["stimulus_id"].to_numpy(), boxes),
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


def apply_gaze_offsets(fixations: pd.DataFrame, offsets: pd.DataFrame) -> pd.DataFrame:
    """Fixations with the ``(participant, eye)`` offset subtracted from ``x_px, y_px`` (a copy).

    Rows without an offset are left as they are. Degree columns are not touched: the AOI mapping works
    in px, and the ``fixations`` table keeps what the tracker reported.
    """
    out = fixations.copy()
    if not len(out) or not len(offsets):
        return out
    key = out[["participant", "eye"]].merge(
        offsets[["participant", "eye", "offset_x_px", "offset_y_px"]], on=["participant", "eye"], how="left"
    )
    out["x_px"] = out["x_px"].to_numpy() - key["offset_x_px"].fillna(0.0).to_numpy()
    out["y_px"] = out["y_px"].to_numpy() - key["offset_y_px"].fillna(0.0).to_numpy()
    return out
