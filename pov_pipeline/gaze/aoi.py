"""Areas of interest: hit-testing fixations against object outlines and caption word boxes.

AOIs come as a table with the columns of :data:`pov_pipeline.schemas.AOIS`, one row per AOI, in
screen pixels. Three shapes are supported:

``rect``
    The bounding box ``x0_px, y0_px, x1_px, y1_px`` (word boxes, box-annotated objects).
``polygon``
    ``points_px = [x0, y0, x1, y1, ...]``, closed implicitly, convex or concave (even-odd rule).
``ellipse``
    ``points_px = [cx, cy, rx, ry]``, axis-aligned.

Conventions (fixed here so every table agrees):

* **Borders are inclusive.** A point exactly on an AOI's boundary is inside it (distance 0).
* **Distance** is the Euclidean distance in px from the point to the AOI's boundary for points
  outside, and 0 for points inside. The ellipse distance is exact (Eberly's root
  equation, solved by Newton's method), not the
  algebraic approximation.
* **Tolerance.** A point is a *candidate* for an AOI when its distance is ``<= tolerance_px``.
  This absorbs calibration offsets of a fraction of a degree (Holmqvist et al. 2011, ch. 6).
* **Overlaps.** Among the candidates the one with the smallest distance wins, so a point inside
  an AOI always beats a near miss of another. Ties (typically a point inside several nested or
  overlapping AOIs) go, with ``overlap_rule="smallest"`` (default), to the AOI with the smallest
  area - the most specific one, e.g. a cup standing on a table - then to the one whose centroid is
  nearest, then to the first row. ``overlap_rule="nearest_centroid"`` swaps the first two keys.
* **Screen.** A fixation is on screen when ``0 <= x_px < width`` and ``0 <= y_px < height``;
  off-screen fixations (and fixations without a position) are labelled ``off_screen`` whatever
  AOIs lie near the screen edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from pov_pipeline.gaze import _kernels
from pov_pipeline.gaze.fixations import (
    _arrow_strings,
    _has_missing,
    _in_sort_order,
    _is_inferred_str,
    _key_array,
)
from pov_pipeline.schemas import AOI_BACKGROUND, AOI_OFF_SCREEN

__all__ = [
    "PreparedAois",
    "StimulusAois",
    "aoi_distances",
    "deg_per_px_at_centre",
    "dwell_metrics",
    "hit_test",
    "map_fixations_to_aois",
    "prepare_aois",
    "prepare_stimulus_aois",
]

OverlapRule = Literal["smallest", "nearest_centroid"]

#: Points closer than this to a polygon edge count as on the border, absorbing float round-off
#: of the ray-casting test (whose result on the edge itself is arbitrary).
_BORDER_EPS_PX = 1e-6

#: Upper bound on the size of the (points x edges) work arrays, to keep memory flat for 1M points.
_CHUNK_ELEMENTS = 4_000_000

_ELLIPSE_NEWTON_STEPS = 16


@dataclass(frozen=True)
class PreparedAois:
    """AOIs of one stimulus, parsed once into arrays for repeated hit-testing.

    Attributes
    ----------
    shapes : tuple[str, ...]
        ``rect``, ``polygon`` or ``ellipse`` per AOI.
    params : tuple[np.ndarray, ...]
        Per AOI: ``[x0, y0, x1, y1]`` (rect), ``(K, 2)`` vertices (polygon) or ``[cx, cy, rx, ry]``
        (ellipse), float64 px.
    area_px2 : np.ndarray
        Area per AOI in px², used for the overlap rule.
    centroid_px : np.ndarray
        ``(M, 2)`` centroid per AOI in px.
    """

    shapes: tuple[str, ...]
    params: tuple[np.ndarray, ...]
    area_px2: np.ndarray
    centroid_px: np.ndarray

    def __len__(self) -> int:
        return len(self.shapes)


def deg_per_px_at_centre(
    screen_px: Sequence[int],
    screen_mm: Sequence[float],
    viewing_distance_mm: float,
) -> float:
    """Visual angle of one pixel at the screen centre, averaged over both axes.

    Parameters
    ----------
    screen_px : Sequence[int]
        Screen width and height in px.
    screen_mm : Sequence[float]
        Screen width and height in mm.
    viewing_distance_mm : float
        Eye-to-screen distance in mm.

    Returns
    -------
    float
        Degrees per pixel: ``atan(mm_per_px / distance)`` for a one-pixel step at the centre.
    """
    mm_per_px = np.asarray(screen_mm, dtype=np.float64) / np.asarray(screen_px, dtype=np.float64)
    # A 1-px step centred on the screen centre: +-0.5 px around the optical axis.
    per_axis = 2.0 * np.degrees(np.arctan(0.5 * mm_per_px / float(viewing_distance_mm)))
    return float(per_axis.mean())


def _polygon_area_centroid(vertices: np.ndarray) -> tuple[float, np.ndarray]:
    x, y = vertices[:, 0], vertices[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    signed_area = 0.5 * cross.sum()
    if abs(signed_area) < 1e-12:
        return 0.0, vertices.mean(axis=0)
    cx = ((x + xn) * cross).sum() / (6.0 * signed_area)
    cy = ((y + yn) * cross).sum() / (6.0 * signed_area)
    return abs(float(signed_area)), np.array([cx, cy])


def _points_of(value: object) -> np.ndarray:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return np.empty(0, dtype=np.float64)
    return np.asarray(value, dtype=np.float64).ravel()


def prepare_aois(aois: pd.DataFrame) -> PreparedAois:
    """Parse an AOI table (columns of ``schemas.AOIS``) into arrays, in row order.

    Parameters
    ----------
    aois : pd.DataFrame
        Needs ``shape``, ``x0_px``, ``y0_px``, ``x1_px``, ``y1_px`` and ``points_px``.

    Returns
    -------
    PreparedAois
        Shapes, parameters, areas and centroids.

    Raises
    ------
    ValueError
        On an unknown shape, a polygon with fewer than 3 vertices or an odd number of
        coordinates, or an ellipse without exactly ``cx, cy, rx, ry``.
    """
    shapes: list[str] = []
    params: list[np.ndarray] = []
    areas = np.zeros(len(aois), dtype=np.float64)
    centroids = np.zeros((len(aois), 2), dtype=np.float64)
    bbox = aois[["x0_px", "y0_px", "x1_px", "y1_px"]].to_numpy(dtype=np.float64)
    points_col = aois["points_px"].tolist() if "points_px" in aois else [None] * len(aois)
    ids = aois["aoi_id"].tolist() if "aoi_id" in aois else list(range(len(aois)))
    for i, (shape, points) in enumerate(zip(aois["shape"].tolist(), points_col, strict=True)):
        shape = str(shape)
        pts = _points_of(points)
        if shape == "rect":
            x0, y0, x1, y1 = bbox[i]
            p = np.array([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)])
            areas[i] = (p[2] - p[0]) * (p[3] - p[1])
            centroids[i] = [(p[0] + p[2]) / 2.0, (p[1] + p[3]) / 2.0]
        elif shape == "polygon":
            if pts.size % 2 or pts.size < 6:
                raise ValueError(
                    f"AOI {ids[i]!r}: polygon needs x0,y0,x1,y1,... with at least 3 vertices, "
                    f"found {pts.size} numbers"
                )
            p = pts.reshape(-1, 2)
            areas[i], centroids[i] = _polygon_area_centroid(p)
        elif shape == "ellipse":
            if pts.size != 4:
                raise ValueError(f"AOI {ids[i]!r}: ellipse needs cx,cy,rx,ry, found {pts.size} numbers")
            p = np.array([pts[0], pts[1], abs(pts[2]), abs(pts[3])])
            areas[i] = math.pi * p[2] * p[3]
            centroids[i] = p[:2]
        else:
            raise ValueError(f"AOI {ids[i]!r}: expected shape rect, polygon or ellipse, found {shape!r}")
        shapes.append(shape)
        params.append(p)
    return PreparedAois(tuple(shapes), tuple(params), areas, centroids)


def _rect_distance(x: np.ndarray, y: np.ndarray, rect: np.ndarray) -> np.ndarray:
    dx = np.maximum(np.maximum(rect[0] - x, x - rect[2]), 0.0)
    dy = np.maximum(np.maximum(rect[1] - y, y - rect[3]), 0.0)
    return np.hypot(dx, dy)


def _polygon_distance(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    ax, ay = vertices[:, 0], vertices[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    ex, ey = bx - ax, by - ay
    len2 = ex * ex + ey * ey
    safe_len2 = np.where(len2 > 0, len2, 1.0)
    safe_ey = np.where(ey != 0, ey, 1.0)
    out = np.empty(x.shape[0], dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(1, len(ax)))
    for start in range(0, x.shape[0], step):
        px = x[start : start + step, None]
        py = y[start : start + step, None]
        # Nearest point on each edge segment, then the closest edge overall.
        t = np.clip(((px - ax) * ex + (py - ay) * ey) / safe_len2, 0.0, 1.0)
        edge_d2 = (px - (ax + t * ex)) ** 2 + (py - (ay + t * ey)) ** 2
        out[start : start + step] = np.sqrt(edge_d2.min(axis=1))
    # Only points within the bounding box can be inside: ray-cast just those (most fixations
    # of a scene fall outside any given object).
    in_box = (x >= ax.min()) & (x <= ax.max()) & (y >= ay.min()) & (y <= ay.max())
    idx = np.flatnonzero(in_box & (out > _BORDER_EPS_PX))
    for start in range(0, idx.shape[0], step):
        rows = idx[start : start + step]
        px, py = x[rows, None], y[rows, None]
        # Even-odd ray casting towards +x; handles concave outlines.
        straddles = (ay > py) != (by > py)
        x_cross = ax + (py - ay) * ex / safe_ey
        inside = (straddles & (px < x_cross)).sum(axis=1) % 2 == 1
        out[rows[inside]] = 0.0
    out[out <= _BORDER_EPS_PX] = 0.0
    return out


def _ellipse_distance(x: np.ndarray, y: np.ndarray, ellipse: np.ndarray) -> np.ndarray:
    cx, cy, rx, ry = ellipse
    if rx == 0.0 or ry == 0.0:
        # Degenerate ellipse: a segment (or a point), which is a zero-height rectangle.
        return _rect_distance(x, y, np.array([cx - rx, cy - ry, cx + rx, cy + ry]))
    # Fold into the first quadrant with the major axis along u (Eberly 2013, "Distance from a
    # point to an ellipse"); the problem is symmetric in both axes.
    u, v = np.abs(x - cx), np.abs(y - cy)
    e0, e1 = (rx, ry) if rx >= ry else (ry, rx)
    if rx < ry:
        u, v = v, u
    z0, z1 = u / e0, v / e1
    g = z0 * z0 + z1 * z1 - 1.0
    out = np.zeros(x.shape[0], dtype=np.float64)
    outside = g > 0.0
    if not outside.any():
        return out
    out[outside] = _outside_ellipse_distance(u[outside], v[outside], z0[outside], z1[outside], (e0 / e1) ** 2)
    return out


def _outside_ellipse_distance(
    u: np.ndarray, v: np.ndarray, z0: np.ndarray, z1: np.ndarray, r0: np.ndarray | float
) -> np.ndarray:
    """Distance of first-quadrant points outside an ellipse with semi-axes ratio² ``r0`` (Eberly 2013).

    ``(u, v)`` are the folded coordinates (major axis along u), ``(z0, z1)`` them divided by the
    semi-axes; ``r0`` is a scalar or one value per point.
    """
    n0 = r0 * z0
    # The root s of F(s) = (n0/(s+r0))^2 + (z1/(s+1))^2 - 1 is positive for outside points.
    # Each term alone reaching 1 bounds it below, and F is convex and decreasing there, so
    # Newton's method from that bound (where F >= 0) rises monotonically to the root without
    # overshooting; the bracket [lo, hi] guards against round-off.
    lo = np.maximum(np.maximum(n0 - r0, z1 - 1.0), 0.0)
    hi = np.hypot(n0, z1) - 1.0
    s = lo
    for _ in range(_ELLIPSE_NEWTON_STEPS):
        a = n0 / (s + r0)
        b = z1 / (s + 1.0)
        f = a * a + b * b - 1.0
        df = -2.0 * (a * a / (s + r0) + b * b / (s + 1.0))
        s = np.clip(s - f / np.where(df < 0.0, df, -1.0), lo, hi)
    qx = r0 * u / (s + r0)
    qy = v / (s + 1.0)
    return np.hypot(qx - u, qy - v)


def aoi_distances(x_px: np.ndarray, y_px: np.ndarray, aois: pd.DataFrame | PreparedAois) -> np.ndarray:
    """Distance from every point to every AOI (0 inside or on the border).

    Parameters
    ----------
    x_px, y_px : np.ndarray
        Point coordinates in screen px, shape ``(N,)``. NaN coordinates give NaN distances.
    aois : pd.DataFrame | PreparedAois
        AOI table (``schemas.AOIS`` columns) or its prepared form.

    Returns
    -------
    np.ndarray
        ``(N, M)`` float64 distances in px, columns in AOI row order.
    """
    prepared = aois if isinstance(aois, PreparedAois) else prepare_aois(aois)
    x = np.asarray(x_px, dtype=np.float64).ravel()
    y = np.asarray(y_px, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x_px and y_px differ in length: {x.shape[0]} != {y.shape[0]}")
    dist = np.empty((x.shape[0], len(prepared)), dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    xf, yf = x[finite], y[finite]
    for j, (shape, p) in enumerate(zip(prepared.shapes, prepared.params, strict=True)):
        col = np.full(x.shape[0], np.nan)
        if shape == "rect":
            col[finite] = _rect_distance(xf, yf, p)
        elif shape == "polygon":
            col[finite] = _polygon_distance(xf, yf, p)
        else:
            col[finite] = _ellipse_distance(xf, yf, p)
        dist[:, j] = col
    return dist


def hit_test(
    x_px: np.ndarray,
    y_px: np.ndarray,
    aois_df: pd.DataFrame | PreparedAois,
    *,
    tolerance_px: float = 0.0,
    overlap_rule: OverlapRule = "smallest",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Assign each point to at most one AOI.

    Parameters
    ----------
    x_px, y_px : np.ndarray
        Point coordinates in screen px, shape ``(N,)``.
    aois_df : pd.DataFrame | PreparedAois
        AOIs of one stimulus (``schemas.AOIS`` columns) or their prepared form.
    tolerance_px : float
        Margin around each AOI in px within which a point still counts (default 0: borders only).
    overlap_rule : {"smallest", "nearest_centroid"}
        How to break ties between AOIs at the same (usually zero) distance; see the module
        docstring.

    Returns
    -------
    aoi_index : np.ndarray
        int64 ``(N,)`` row position of the chosen AOI, ``-1`` when no AOI is within tolerance
        (or the point is NaN).
    distance_px : np.ndarray
        float64 ``(N,)`` distance to the chosen AOI; for points without an AOI, the distance to
        the nearest AOI (``inf`` when the stimulus has none, NaN for NaN points).
    n_candidates : np.ndarray
        int32 ``(N,)`` number of AOIs within tolerance (``> 1`` flags ambiguous fixations).
    """
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px must be >= 0, found {tolerance_px}")
    if overlap_rule not in ("smallest", "nearest_centroid"):
        raise ValueError(f"overlap_rule must be 'smallest' or 'nearest_centroid', found {overlap_rule!r}")
    prepared = aois_df if isinstance(aois_df, PreparedAois) else prepare_aois(aois_df)
    x = np.asarray(x_px, dtype=np.float64).ravel()
    y = np.asarray(y_px, dtype=np.float64).ravel()
    n = x.shape[0]
    if len(prepared) == 0:
        nan_pt = ~(np.isfinite(x) & np.isfinite(y))
        return (
            np.full(n, -1, dtype=np.int64),
            np.where(nan_pt, np.nan, np.inf),
            np.zeros(n, dtype=np.int32),
        )
    dist = aoi_distances(x, y, prepared)
    candidate = dist <= tolerance_px  # NaN compares False
    n_candidates = candidate.sum(axis=1).astype(np.int32)

    centroid_d = np.hypot(x[:, None] - prepared.centroid_px[:, 0], y[:, None] - prepared.centroid_px[:, 1])
    area = np.broadcast_to(prepared.area_px2, dist.shape)
    first, second = (area, centroid_d) if overlap_rule == "smallest" else (centroid_d, area)
    # Lexicographic arg-min over (distance, first key, second key, column) in one pass: lexsort
    # per row is costly, so rank candidates by successive masking of the minima instead.
    masked = np.where(candidate, dist, np.inf)
    keep = candidate & (masked == masked.min(axis=1, keepdims=True))
    for key in (first, second):
        k = np.where(keep, key, np.inf)
        keep &= k == k.min(axis=1, keepdims=True)
    has = n_candidates > 0
    aoi_index = np.where(has, np.argmax(keep, axis=1), -1).astype(np.int64)

    nearest = np.where(np.isnan(dist), np.inf, dist).min(axis=1)
    nearest = np.where(np.isfinite(x) & np.isfinite(y), nearest, np.nan)
    distance_px = np.where(has, dist[np.arange(n), np.maximum(aoi_index, 0)], nearest)
    return aoi_index, distance_px, n_candidates


_RECT, _POLYGON, _ELLIPSE = 0, 1, 2


@dataclass(frozen=True)
class StimulusAois:
    """AOIs of every stimulus, flattened so that all fixations are hit-tested in one pass.

    Rows are grouped by stimulus (stimuli in order of first appearance, AOIs of a stimulus in
    table order, which is the order the overlap rule's last tie-break uses).

    Attributes
    ----------
    stimulus_ids : pd.Index
        Distinct stimulus ids (as ``str``); stimulus ``s`` owns AOI rows
        ``offsets[s]:offsets[s + 1]``.
    offsets : np.ndarray
        int64 ``(S + 1,)`` row offsets per stimulus.
    aoi_id, aoi_kind : np.ndarray
        object ``(M,)`` ids and kinds.
    kind_code : np.ndarray
        int8 ``(M,)``: 0 box distance (rects and degenerate ellipses), 1 polygon, 2 ellipse.
    box_px : np.ndarray
        ``(M, 4)`` ``x0, y0, x1, y1`` used by the box distance, float64 px.
    ellipse : np.ndarray
        ``(M, 6)`` ``cx, cy, e0, e1, r0, swap`` (semi-axes major first, ``r0 = (e0 / e1)**2``,
        ``swap`` 1 when the major axis is vertical); zeros for other shapes.
    vertex_offsets : np.ndarray
        int64 ``(M + 1,)`` offsets into the vertex arrays (empty ranges for non-polygons).
    vertex_px : np.ndarray
        ``(V, 2)`` polygon vertices, float64 px.
    next_vertex : np.ndarray
        int64 ``(V,)`` index of the following vertex of the same polygon (closing the ring).
    area_px2 : np.ndarray
        Area per AOI in px².
    centroid_px : np.ndarray
        ``(M, 2)`` centroid per AOI in px.
    """

    stimulus_ids: pd.Index
    offsets: np.ndarray
    aoi_id: np.ndarray
    aoi_kind: np.ndarray
    kind_code: np.ndarray
    box_px: np.ndarray
    ellipse: np.ndarray
    vertex_offsets: np.ndarray
    vertex_px: np.ndarray
    next_vertex: np.ndarray
    area_px2: np.ndarray
    centroid_px: np.ndarray

    def __len__(self) -> int:
        return len(self.aoi_id)

    @cached_property
    def stimulus_ids_arrow(self) -> pa.Array:
        """``stimulus_ids`` as an Arrow string array, for lookups in Arrow."""
        return pa.array(self.stimulus_ids.to_numpy(dtype=object), type=pa.large_string())

    @cached_property
    def search_bounds(self) -> tuple[np.ndarray, ...]:
        """Per AOI, its bounding box and a point in or on it: ``x0, y0, x1, y1, ax, ay`` (px).

        Rects (and degenerate ellipses) keep ``box_px``; polygons span their vertices, with the
        first vertex as their point; ellipses span ``centre ± semi-axes``, with the centre.
        Separate contiguous arrays, for cheap gathers.
        """
        bounds = self.box_px.copy()
        anchor = self.box_px[:, :2].copy()
        poly = np.flatnonzero(self.kind_code == _POLYGON)
        if poly.size:
            starts = self.vertex_offsets[poly]
            # Each reduceat segment runs to the next start: polygons are the only rows with
            # vertices, so consecutive polygons' segments are exactly their own vertices.
            bounds[poly] = np.c_[
                np.minimum.reduceat(self.vertex_px, starts), np.maximum.reduceat(self.vertex_px, starts)
            ]
            anchor[poly] = self.vertex_px[starts]
            # A non-finite vertex: NaN bounds, so that the exact distance is always computed.
            finite = np.logical_and.reduceat(np.isfinite(self.vertex_px).all(axis=1), starts)
            bounds[poly[~finite]] = np.nan
        ell = np.flatnonzero(self.kind_code == _ELLIPSE)
        if ell.size:
            cx, cy, e0, e1, _, swap = self.ellipse[ell].T
            rx, ry = np.where(swap > 0, e1, e0), np.where(swap > 0, e0, e1)
            bounds[ell] = np.c_[cx - rx, cy - ry, cx + rx, cy + ry]
            anchor[ell] = np.c_[cx, cy]
            bounds[ell[~np.isfinite(self.ellipse[ell]).all(axis=1)]] = np.nan
        return tuple(np.ascontiguousarray(c) for c in (*bounds.T, *anchor.T))

    @cached_property
    def aoi_id_labels(self) -> pd.api.extensions.ExtensionArray | None:
        """``[*aoi_id, background, off_screen]`` as a ``str`` array (``None``: not strings)."""
        return _labels(self.aoi_id)

    @cached_property
    def aoi_kind_labels(self) -> pd.api.extensions.ExtensionArray | None:
        """``[*aoi_kind, background, off_screen]`` as a ``str`` array (``None``: not strings)."""
        return _labels(self.aoi_kind)


def _labels(values: np.ndarray) -> pd.api.extensions.ExtensionArray | None:
    """``[*values, background, off_screen]`` in Arrow, or ``None`` for labels it does not take."""
    labels = np.r_[np.asarray(values, dtype=object), np.array([AOI_BACKGROUND, AOI_OFF_SCREEN], dtype=object)]
    try:
        table = pa.array(labels, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return pd.array(table, dtype="str")


def prepare_stimulus_aois(aois: pd.DataFrame) -> StimulusAois:
    """Parse the AOI table of a whole study once for :func:`map_fixations_to_aois`.

    Parameters
    ----------
    aois : pd.DataFrame
        AOIs of all stimuli (``schemas.AOIS`` columns: ``stimulus_id, aoi_id, aoi_kind, shape``,
        the bounding box and ``points_px``). Rows without a stimulus id are ignored.

    Returns
    -------
    StimulusAois
        Flattened arrays; pass it instead of the table when mapping many participants against
        the same AOIs, so that the table is parsed only once.

    Raises
    ------
    ValueError
        On the malformed shapes :func:`prepare_aois` rejects.
    """
    if len(aois):
        sid = aois["stimulus_id"]
        keep = sid.notna().to_numpy()
        # Same grouping as ``groupby("stimulus_id", sort=False)`` keyed by ``str``.
        codes, uniques = pd.factorize(sid[keep].astype(str), use_na_sentinel=False)
        order = np.flatnonzero(keep)[np.argsort(codes, kind="stable")]
        table = aois.iloc[order]
        counts = np.bincount(codes, minlength=len(uniques))
        stimulus_ids = pd.Index(np.asarray(uniques, dtype=object))
    else:
        table = aois
        counts = np.zeros(0, dtype=np.int64)
        stimulus_ids = pd.Index([], dtype=object)
    m = len(table)
    shape = table["shape"].astype(str).to_numpy(dtype=object) if m else np.zeros(0, dtype=object)
    ids = table["aoi_id"].to_numpy(dtype=object) if m else np.zeros(0, dtype=object)
    bad = np.flatnonzero(~np.isin(shape, ("rect", "polygon", "ellipse")))
    if bad.size:
        i = bad[0]
        raise ValueError(f"AOI {ids[i]!r}: expected shape rect, polygon or ellipse, found {shape[i]!r}")
    points_col = table["points_px"].tolist() if "points_px" in table else [None] * m
    points = [_points_of(v) for v in points_col]
    n_points = np.fromiter((p.size for p in points), dtype=np.int64, count=m)
    is_rect, is_poly, is_ell = shape == "rect", shape == "polygon", shape == "ellipse"
    bad = np.flatnonzero(is_poly & ((n_points % 2 == 1) | (n_points < 6)))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"AOI {ids[i]!r}: polygon needs x0,y0,x1,y1,... with at least 3 vertices, "
            f"found {n_points[i]} numbers"
        )
    bad = np.flatnonzero(is_ell & (n_points != 4))
    if bad.size:
        i = bad[0]
        raise ValueError(f"AOI {ids[i]!r}: ellipse needs cx,cy,rx,ry, found {n_points[i]} numbers")

    kind_code = np.zeros(m, dtype=np.int8)
    box = np.zeros((m, 4), dtype=np.float64)
    ellipse = np.zeros((m, 6), dtype=np.float64)
    area = np.zeros(m, dtype=np.float64)
    centroid = np.zeros((m, 2), dtype=np.float64)

    r = np.flatnonzero(is_rect)
    if r.size:
        x0, y0, x1, y1 = table[["x0_px", "y0_px", "x1_px", "y1_px"]].to_numpy(dtype=np.float64)[r].T
        b = np.c_[np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)]
        box[r] = b
        area[r] = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        centroid[r] = np.c_[(b[:, 0] + b[:, 2]) / 2.0, (b[:, 1] + b[:, 3]) / 2.0]

    e = np.flatnonzero(is_ell)
    if e.size:
        p = np.stack([points[i] for i in e])
        cx, cy, rx, ry = p[:, 0], p[:, 1], np.abs(p[:, 2]), np.abs(p[:, 3])
        area[e] = math.pi * rx * ry
        centroid[e] = np.c_[cx, cy]
        flat = (rx == 0.0) | (ry == 0.0)
        # Degenerate ellipses are segments (or points): box distance.
        box[e[flat]] = np.c_[cx - rx, cy - ry, cx + rx, cy + ry][flat]
        kind_code[e[~flat]] = _ELLIPSE
        e0, e1 = np.maximum(rx, ry), np.minimum(rx, ry)
        # Python's float ``**`` (C pow) can differ in the last bit from numpy's array square;
        # the per-stimulus path uses the former.
        r0 = np.array([q**2 for q in (e0 / np.where(e1 > 0, e1, 1.0)).tolist()], dtype=np.float64)
        ellipse[e] = np.c_[cx, cy, e0, e1, r0, (rx < ry).astype(np.float64)]

    poly = np.flatnonzero(is_poly)
    vertex_counts = np.where(is_poly, n_points // 2, 0)
    vertex_offsets = np.r_[0, np.cumsum(vertex_counts)].astype(np.int64)
    if poly.size:
        kind_code[poly] = _POLYGON
        vertices = np.concatenate([points[i] for i in poly]).reshape(-1, 2)
        # Same sums as ``_polygon_area_centroid`` to the bit: numpy's row sums of a 2-D block
        # equal the 1-D sums of each row, so polygons are batched by vertex count.
        for k in np.unique(vertex_counts[poly]):
            rows = poly[vertex_counts[poly] == k]
            v = np.stack([points[i].reshape(-1, 2) for i in rows])
            x, y = v[:, :, 0], v[:, :, 1]
            xn, yn = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
            cross = x * yn - xn * y
            signed = 0.5 * cross.sum(axis=1)
            ok = np.abs(signed) >= 1e-12
            safe = np.where(ok, signed, 1.0)
            area[rows] = np.where(ok, np.abs(signed), 0.0)
            cxs = ((x + xn) * cross).sum(axis=1) / (6.0 * safe)
            cys = ((y + yn) * cross).sum(axis=1) / (6.0 * safe)
            centroid[rows] = np.c_[cxs, cys]
            for j in np.flatnonzero(~ok):
                centroid[rows[j]] = v[j].mean(axis=0)
    else:
        vertices = np.zeros((0, 2), dtype=np.float64)
    nxt = np.arange(1, len(vertices) + 1, dtype=np.int64)
    # The last vertex of each polygon closes back onto its first.
    nxt[vertex_offsets[poly + 1] - 1] = vertex_offsets[poly]
    return StimulusAois(
        stimulus_ids=stimulus_ids,
        offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
        aoi_id=ids,
        aoi_kind=table["aoi_kind"].to_numpy(dtype=object) if m else np.zeros(0, dtype=object),
        kind_code=kind_code,
        box_px=box,
        ellipse=ellipse,
        vertex_offsets=vertex_offsets,
        vertex_px=vertices,
        next_vertex=nxt,
        area_px2=area,
        centroid_px=centroid,
    )


def _pair_distances(px: np.ndarray, py: np.ndarray, aoi: np.ndarray, st: StimulusAois) -> np.ndarray:
    """Distance of point ``k`` to AOI ``aoi[k]`` for every (point, AOI) pair, float64 px.

    Element for element the same arithmetic as the per-shape functions, so results agree with
    :func:`aoi_distances` to the bit.
    """
    out = np.empty(px.shape[0], dtype=np.float64)
    code = st.kind_code[aoi]

    k = np.flatnonzero(code == _RECT)
    if k.size:
        b = st.box_px[aoi[k]]
        x, y = px[k], py[k]
        dx = np.maximum(np.maximum(b[:, 0] - x, x - b[:, 2]), 0.0)
        dy = np.maximum(np.maximum(b[:, 1] - y, y - b[:, 3]), 0.0)
        out[k] = np.hypot(dx, dy)

    k = np.flatnonzero(code == _ELLIPSE)
    if k.size:
        out[k] = _pair_ellipse_distance(px[k], py[k], st.ellipse[aoi[k]])

    k = np.flatnonzero(code == _POLYGON)
    if k.size:
        out[k] = _pair_polygon_distance(px[k], py[k], aoi[k], st)
    return out


def _pair_ellipse_distance(x: np.ndarray, y: np.ndarray, e: np.ndarray) -> np.ndarray:
    cx, cy, e0, e1, r0, swap = e.T
    u, v = np.abs(x - cx), np.abs(y - cy)
    swap = swap > 0
    u, v = np.where(swap, v, u), np.where(swap, u, v)
    z0, z1 = u / e0, v / e1
    g = z0 * z0 + z1 * z1 - 1.0
    out = np.zeros(x.shape[0], dtype=np.float64)
    outside = g > 0.0
    if not outside.any():
        return out
    # One ellipse per element: the same root finding as ``_ellipse_distance``.
    out[outside] = _outside_ellipse_distance(u[outside], v[outside], z0[outside], z1[outside], r0[outside])
    return out


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(c) for c in counts])`` without the loop."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def _pair_polygon_distance(x: np.ndarray, y: np.ndarray, aoi: np.ndarray, st: StimulusAois) -> np.ndarray:
    n_edges = st.vertex_offsets[aoi + 1] - st.vertex_offsets[aoi]
    seg = np.cumsum(n_edges) - n_edges
    edge = np.repeat(st.vertex_offsets[aoi], n_edges) + _ragged_arange(n_edges)
    pair = np.repeat(np.arange(x.shape[0]), n_edges)
    vx, vy = st.vertex_px[:, 0], st.vertex_px[:, 1]
    nxt = st.next_vertex[edge]
    ax, ay = vx[edge], vy[edge]
    bx, by = vx[nxt], vy[nxt]
    ex, ey = bx - ax, by - ay
    len2 = ex * ex + ey * ey
    safe_len2 = np.where(len2 > 0, len2, 1.0)
    safe_ey = np.where(ey != 0, ey, 1.0)
    px, py = x[pair], y[pair]
    t = np.clip(((px - ax) * ex + (py - ay) * ey) / safe_len2, 0.0, 1.0)
    edge_d2 = (px - (ax + t * ex)) ** 2 + (py - (ay + t * ey)) ** 2
    out = np.sqrt(np.minimum.reduceat(edge_d2, seg))
    # Even-odd ray casting towards +x, kept only where the per-stimulus path applies it: inside
    # the polygon's bounding box and off its border.
    crossings = np.add.reduceat(((ay > py) != (by > py)) & (px < ax + (py - ay) * ex / safe_ey), seg)
    lo = np.minimum.reduceat(np.c_[ax, ay], seg)
    hi = np.maximum.reduceat(np.c_[ax, ay], seg)
    in_box = (x >= lo[:, 0]) & (x <= hi[:, 0]) & (y >= lo[:, 1]) & (y <= hi[:, 1])
    out[in_box & (out > _BORDER_EPS_PX) & (crossings % 2 == 1)] = 0.0
    out[out <= _BORDER_EPS_PX] = 0.0
    return out


#: Margin of the bounding-box pruning in :func:`_box_pass`: relative and in
#: px, far above the round-off of any distance computed here, so that pruning never drops a pair
#: whose computed distance could matter.
_REACH_REL, _REACH_PX = 0.01, 1.0


@njit(cache=True)
def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats (NaN wins; a tie returns ``a``)."""
    return a if (a >= b or a != a) else b


@njit(cache=True)
def _minimum(a: float, b: float) -> float:
    """``np.minimum`` of two floats (NaN wins; a tie returns ``a``)."""
    return a if (a <= b or a != a) else b


@njit(cache=True)
def _box_pass(
    x: np.ndarray,
    y: np.ndarray,
    first: np.ndarray,
    counts: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    kind: np.ndarray,
    tolerance_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (point, AOI of its stimulus) pair: its AOI row, its point, the exact distance of
    rects (``inf`` for other shapes) and whether another shape's exact distance is needed.

    Point ``p`` has the AOI rows ``first[p] : first[p] + counts[p]``; pairs come contiguous per
    point, AOIs in table order. ``bounds`` is :attr:`StimulusAois.search_bounds`. The distance to
    an AOI's bounding box is a lower bound of its exact distance (and, for rects, that distance:
    the arithmetic of :func:`_pair_distances`), the distance to a point of the shape (a polygon
    vertex, an ellipse centre) an upper bound. A polygon or ellipse whose box lies beyond both
    the tolerance and the point's smallest upper bound, with a margin far above round-off, is
    neither a candidate nor the nearest AOI: its exact distance, the costly part of the hit
    test, is not needed.
    """
    x0, y0, x1, y1, ax, ay = bounds
    total = counts.sum()
    aoi = np.empty(total, dtype=np.int64)
    owner = np.empty(total, dtype=np.int64)
    dist = np.empty(total, dtype=np.float64)
    need = np.zeros(total, dtype=np.bool_)
    k = 0
    for p in range(x.size):
        start = k
        smallest = np.inf
        for j in range(counts[p]):
            a = first[p] + j
            dx = _maximum(_maximum(x0[a] - x[p], x[p] - x1[a]), 0.0)
            dy = _maximum(_maximum(y0[a] - y[p], y[p] - y1[a]), 0.0)
            lower = np.hypot(dx, dy)
            # Rects: the box distance is exact. Others: the distance to their anchor point.
            upper = lower if kind[a] == _RECT else np.sqrt((x[p] - ax[a]) ** 2 + (y[p] - ay[a]) ** 2)
            smallest = _minimum(smallest, upper)
            aoi[k], owner[k], dist[k] = a, p, lower
            k += 1
        reach = _maximum(smallest, tolerance_px) * (1.0 + _REACH_REL) + _REACH_PX
        for i in range(start, k):
            if kind[aoi[i]] != _RECT:
                # NaN bounds compare False: such pairs are computed.
                need[i] = not dist[i] > reach
                dist[i] = np.inf
    return aoi, owner, dist, need


def _hit_test_stimuli(
    x: np.ndarray,
    y: np.ndarray,
    stimulus: np.ndarray,
    st: StimulusAois,
    *,
    tolerance_px: float,
    overlap_rule: OverlapRule,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`hit_test` of finite points, each against the AOIs of its own stimulus, at once.

    ``stimulus`` holds row positions into ``st.stimulus_ids`` (``-1``: no AOIs). Returns the
    global AOI row (``-1`` none), the distance (``inf`` without AOIs) and the candidate count.
    """
    n = x.shape[0]
    aoi_index = np.full(n, -1, dtype=np.int64)
    distance_px = np.full(n, np.inf)
    n_candidates = np.zeros(n, dtype=np.int32)
    if len(st.stimulus_ids) == 0:
        return aoi_index, distance_px, n_candidates
    safe = np.maximum(stimulus, 0)
    counts = np.where(stimulus >= 0, st.offsets[safe + 1] - st.offsets[safe], 0)
    pts = np.flatnonzero(counts > 0)
    if pts.size == 0:
        return aoi_index, distance_px, n_candidates
    counts = counts[pts]
    xs, ys = x[pts], y[pts]
    # One row per (point, AOI of its stimulus), contiguous per point, AOIs in table order.
    aoi, owner, dist, need = _box_pass(
        xs, ys, st.offsets[stimulus[pts]], counts, st.search_bounds, st.kind_code, float(tolerance_px)
    )
    needed = np.flatnonzero(need)
    if needed.size:
        dist[needed] = _pair_distances(xs[owner[needed]], ys[owner[needed]], aoi[needed], st)
    seg = np.cumsum(counts) - counts

    candidate = dist <= tolerance_px
    cand = np.flatnonzero(candidate)
    ncand = np.bincount(owner[cand], minlength=pts.size).astype(np.int32)
    # Lexicographic arg-min per point over (distance, first key, second key, table order), on
    # the candidate pairs only (few: about one per point), grouped by point as all pairs are.
    chosen = np.full(pts.size, aoi.size, dtype=np.int64)
    if cand.size:
        c_owner = owner[cand]
        c_start = np.flatnonzero(np.r_[True, c_owner[1:] != c_owner[:-1]])
        c_run = np.cumsum(np.r_[True, c_owner[1:] != c_owner[:-1]]) - 1
        c_aoi = aoi[cand]
        c_dist = dist[cand]
        c_x, c_y = xs[c_owner], ys[c_owner]
        centroid_d = np.hypot(c_x - st.centroid_px[c_aoi, 0], c_y - st.centroid_px[c_aoi, 1])
        area = st.area_px2[c_aoi]
        first, second = (area, centroid_d) if overlap_rule == "smallest" else (centroid_d, area)
        keep = c_dist == np.minimum.reduceat(c_dist, c_start)[c_run]
        for key in (first, second):
            k = np.where(keep, key, np.inf)
            keep &= k == np.minimum.reduceat(k, c_start)[c_run]
        # Positions among all pairs; none kept (NaN keys) leaves the sentinel ``aoi.size``.
        position = np.where(keep, cand, aoi.size)
        chosen[c_owner[c_start]] = np.minimum.reduceat(position, c_start)
    has = ncand > 0
    nearest = np.minimum.reduceat(dist, seg)
    aoi_index[pts] = np.where(has, aoi[np.minimum(chosen, aoi.size - 1)], -1)
    distance_px[pts] = np.where(has, dist[np.minimum(chosen, aoi.size - 1)], nearest)
    n_candidates[pts] = ncand
    return aoi_index, distance_px, n_candidates


def _string_column(
    values: np.ndarray, labels: pd.api.extensions.ExtensionArray | None, code: np.ndarray
) -> pd.api.extensions.ExtensionArray:
    """``str`` column of ``[*values, background, off_screen][code]``.

    Taken in Arrow from the few distinct ``labels`` (see :attr:`StimulusAois.aoi_id_labels`):
    converting one Python string per fixation is what an object array costs. Labels Arrow does
    not take as strings (``labels`` is ``None``) go the object way.
    """
    if labels is None:
        objects = np.r_[
            np.asarray(values, dtype=object), np.array([AOI_BACKGROUND, AOI_OFF_SCREEN], dtype=object)
        ]
        return pd.array(objects[code], dtype="str")
    return labels.take(code)


def map_fixations_to_aois(
    fixations: pd.DataFrame,
    aois: pd.DataFrame | StimulusAois,
    *,
    screen_px: Sequence[int],
    tolerance_deg: float = 0.5,
    deg_per_px: float,
    overlap_rule: OverlapRule = "smallest",
) -> pd.DataFrame:
    """Label each fixation with the AOI it lands on (the ``aoi_hits`` table).

    Parameters
    ----------
    fixations : pd.DataFrame
        One row per fixation with at least ``participant, trial, stimulus_id, event_index,
        onset_in_trial_ms, duration_ms, x_px, y_px``; further columns are kept.
    aois : pd.DataFrame | StimulusAois
        AOIs of all stimuli (``schemas.AOIS`` columns), or their :func:`prepare_stimulus_aois`
        form to parse them only once for many calls. Each fixation is only tested against its
        own stimulus's AOIs.
    screen_px : Sequence[int]
        Screen width and height in px; fixations outside become ``off_screen``.
    tolerance_deg : float
        Margin around each AOI in degrees of visual angle (default 0.5°, about the accuracy of a
        well-calibrated video tracker).
    deg_per_px : float
        Visual angle of one pixel (see :func:`deg_per_px_at_centre`), converting the tolerance
        and the distances.
    overlap_rule : {"smallest", "nearest_centroid"}
        Tie-break between overlapping AOIs; see the module docstring.

    Returns
    -------
    pd.DataFrame
        The fixation columns plus ``aoi_id`` (``obj:<label>``, ``word:<i>``, ``background`` or
        ``off_screen``), ``aoi_kind`` (``object``, ``word``, ``background``, ``off_screen``),
        ``distance_deg`` (float64: 0 inside, the margin for tolerance hits, the distance to the
        nearest AOI for background, NaN for off-screen) and ``n_candidates`` (int32). Rows are
        sorted by ``participant, trial, event_index``.
    """
    if deg_per_px <= 0:
        raise ValueError(f"deg_per_px must be > 0, found {deg_per_px}")
    width, height = float(screen_px[0]), float(screen_px[1])
    tolerance_px = float(tolerance_deg) / float(deg_per_px)
    out = _in_key_order(fixations, ["participant", "trial", "event_index"])
    n = len(out)
    x = out["x_px"].to_numpy(dtype=np.float64, na_value=np.nan)
    y = out["y_px"].to_numpy(dtype=np.float64, na_value=np.nan)
    on_screen = (x >= 0) & (x < width) & (y >= 0) & (y < height)  # False for NaN

    st = aois if isinstance(aois, StimulusAois) else prepare_stimulus_aois(aois)
    on_idx = np.flatnonzero(on_screen)
    # Fixations without a stimulus id match no AOIs (they stay background), as in a group-by.
    stimulus = _stimulus_rows(out["stimulus_id"], st)[on_idx]
    idx, dist, ncand = _hit_test_stimuli(
        x[on_idx], y[on_idx], stimulus, st, tolerance_px=tolerance_px, overlap_rule=overlap_rule
    )
    hit = idx >= 0
    # Row codes into the AOI rows, then background and off-screen after them.
    m = len(st.aoi_id)
    code = np.full(n, m, dtype=np.int64)
    code[on_idx[hit]] = idx[hit]
    code[~on_screen] = m + 1
    distance_px = np.full(n, np.nan)
    n_candidates = np.zeros(n, dtype=np.int32)
    distance_px[on_idx] = dist
    n_candidates[on_idx] = ncand
    distance_px[~on_screen] = np.nan
    new = {
        "aoi_id": _string_column(st.aoi_id, st.aoi_id_labels, code),
        "aoi_kind": _string_column(st.aoi_kind, st.aoi_kind_labels, code),
        "distance_deg": distance_px * float(deg_per_px),
        "n_candidates": n_candidates,
    }
    if any(c in out.columns for c in new):
        # Mapping a table that has them already (aoi_hits): replace them where they are.
        out = out.copy(deep=False)
        for k, v in new.items():
            out[k] = pd.Series(v, index=out.index)
        return out
    # One concat instead of four column inserts: each insert into a frame with string column
    # labels costs more than the whole concat.
    return pd.concat([out, pd.DataFrame(new, index=out.index, copy=False)], axis=1)


def _in_key_order(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``frame.sort_values(keys, kind="stable").reset_index(drop=True)``, skipping the sort when
    it would not move a row (the fixations of a session come in this order).
    """
    arrays = [_key_array(frame[k]) for k in keys]
    present = [a for a in arrays if a is not None]
    if len(present) < len(keys) or not _in_sort_order(*present):
        return frame.sort_values(keys, kind="stable").reset_index(drop=True)
    if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1:
        return frame
    return frame.reset_index(drop=True)


def _stimulus_rows(stimulus_id: pd.Series, st: StimulusAois) -> npt.NDArray[np.int64]:
    """Position of each row's stimulus in ``st.stimulus_ids`` (``-1``: missing id or no AOIs).

    Ids are compared as ``str``; Arrow strings are looked up in Arrow, in one pass.
    """
    out = np.full(len(stimulus_id), -1, dtype=np.int64)
    if not len(st.stimulus_ids) or not len(stimulus_id):
        return out
    data = _arrow_strings(stimulus_id)
    if data is not None:
        found = pc.index_in(data, value_set=st.stimulus_ids_arrow.cast(data.type))
        if found.null_count:
            found = pc.fill_null(found, -1)
        return found.to_numpy().astype(np.int64)
    known = stimulus_id.notna().to_numpy()
    out[known] = st.stimulus_ids.get_indexer(stimulus_id[known].astype(str).to_numpy(dtype=object))
    return out


_GROUP_KEYS = ["participant", "trial", "stimulus_id"]


def dwell_metrics(aoi_hits: pd.DataFrame, *, aois: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-AOI dwell measures of each trial (Holmqvist et al. 2011, ch. 7).

    A *visit* (a.k.a. dwell or gaze) is a run of consecutive fixations on the same AOI.

    Parameters
    ----------
    aoi_hits : pd.DataFrame
        Output of :func:`map_fixations_to_aois` (needs ``participant, trial, stimulus_id,
        event_index, onset_in_trial_ms, duration_ms, aoi_id``; ``aoi_kind`` if present).
    aois : pd.DataFrame | None
        When given, AOIs of each trial's stimulus that were never fixated are added with
        zero dwell, zero counts and NaN times, so every trial has a row per AOI.

    Returns
    -------
    pd.DataFrame
        One row per ``(participant, trial, stimulus_id, aoi_id)`` with ``aoi_kind``,
        ``time_to_first_fixation_ms`` (``onset_in_trial_ms`` of the first fixation on the AOI),
        ``first_fixation_duration_ms``, ``dwell_time_ms`` (sum of fixation durations),
        ``dwell_share`` (dwell over the trial's total fixation duration), ``fixation_count``,
        ``visit_count`` and ``revisit_count`` (``visit_count - 1``, floored at 0), sorted by the
        keys.
    """
    fast = _dwell_metrics_fast(aoi_hits, aois)
    if fast is not None:
        return fast
    return _dwell_metrics_pandas(aoi_hits, aois)


_DWELL_COLUMNS = [
    *_GROUP_KEYS,
    "aoi_id",
    "aoi_kind",
    "time_to_first_fixation_ms",
    "first_fixation_duration_ms",
    "dwell_time_ms",
    "dwell_share",
    "fixation_count",
    "visit_count",
    "revisit_count",
]


def _take_values(
    column: pd.Series, rows: npt.NDArray[np.intp]
) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """``column.to_numpy()[rows]`` as a frame constructor stores it.

    ``str`` columns stay in Arrow (the constructor would turn their Python strings back into
    the same ``str`` array; the caller has ruled out missing values); anything else is what
    ``to_numpy`` gives.
    """
    if rows.size and _is_inferred_str(column.dtype) and _arrow_strings(column) is not None:
        return column.array.take(rows)
    return column.to_numpy()[rows]


def _group_sum(
    values: npt.NDArray[np.float64], labels: npt.NDArray[np.intp], n_groups: int
) -> npt.NDArray[np.float64]:
    """``pd.Series(values).groupby(labels).sum()`` for labels ``0 .. n_groups - 1``, all present.

    pandas reduces monotonic labels segment by segment (``np.add.reduceat``) and any other
    labels row by row with Kahan compensation; both are reproduced bit for bit.
    """
    if labels.size and not np.any(labels[1:] < labels[:-1]):
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        return np.add.reduceat(values, starts)
    return _kernels.kahan_group_sum(values, labels, n_groups)


def _dwell_metrics_fast(aoi_hits: pd.DataFrame, aois: pd.DataFrame | None) -> pd.DataFrame | None:
    """:func:`dwell_metrics` on integer codes: one sort, array reductions, no pandas groupby.

    Returns ``None`` for inputs whose pandas semantics it does not reproduce (missing keys or
    values, where ``groupby(...).first()`` would skip rows), which then take the pandas path.
    """
    need = [*_GROUP_KEYS, "event_index", "onset_in_trial_ms", "duration_ms", "aoi_id"]
    if len(aoi_hits) == 0:
        return None
    # Each column fetched once: a column lookup costs about what the work on it does here.
    col = {c: aoi_hits[c] for c in [*need, "aoi_kind"] if c in aoi_hits}
    if any(_has_missing(c) for c in col.values()):
        return None
    if aois is not None and len(aois) and aois.duplicated(["stimulus_id", "aoi_id"]).any():
        return None
    # Keys that order and compare like the values (numbers as they are, strings as sorted codes).
    part, trial, stim, aoi = (_key_array(col[k]) for k in [*_GROUP_KEYS, "aoi_id"])
    event = col["event_index"].to_numpy()
    # The row order of sort_values([participant, trial, event_index], kind="stable").
    order = np.lexsort((event, trial, part))
    part, trial, stim, aoi = part[order], trial[order], stim[order], aoi[order]
    onset = col["onset_in_trial_ms"].to_numpy(dtype=np.float64)[order]
    dur = col["duration_ms"].to_numpy(dtype=np.float64)[order]
    n = order.size
    new_visit = np.ones(n, dtype=np.int64)
    new_visit[1:] = ~((part[1:] == part[:-1]) & (trial[1:] == trial[:-1]) & (aoi[1:] == aoi[:-1]))

    def labels_of(*keys: npt.NDArray[Any]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], int]:
        # Stable: within a group the rows keep the order above, as groupby's "first" sees them.
        by = np.lexsort(keys[::-1])
        change = np.zeros(n, dtype=bool)
        change[0] = True
        for k in keys:
            kb = k[by]
            change[1:] |= kb[1:] != kb[:-1]
        lab = np.empty(n, dtype=np.intp)
        lab[by] = np.cumsum(change) - 1
        return lab, by[change], int(change.sum())

    g_lab, g_first, n_groups = labels_of(part, trial, stim, aoi)
    t_lab, _, n_trials = labels_of(part, trial, stim)
    dwell = _group_sum(dur, g_lab, n_groups)
    total = _group_sum(dur, t_lab, n_trials)[t_lab[g_first]]
    rows = order[g_first]
    # Only the output's key columns are taken, not whole rows of the wide hits table.
    key_values = {k: _take_values(col[k], rows) for k in [*_GROUP_KEYS, "aoi_id"]}
    if "aoi_kind" in col:
        kind = _take_values(col["aoi_kind"], rows)
    else:
        kind = _kind_from_id(pd.Series(key_values["aoi_id"])).to_numpy()
    visits = np.bincount(g_lab, weights=new_visit, minlength=n_groups).astype(np.int32)
    counts = np.bincount(g_lab, minlength=n_groups).astype(np.int32)
    columns = {
        **key_values,
        "aoi_kind": kind,
        "time_to_first_fixation_ms": onset[g_first],
        "first_fixation_duration_ms": dur[g_first],
        "dwell_time_ms": dwell,
        "fixation_count": counts,
        "visit_count": visits,
    }
    if aois is None or not len(aois):
        with np.errstate(divide="ignore", invalid="ignore"):
            columns["dwell_share"] = np.where(total > 0, dwell / total, np.nan)
        columns["revisit_count"] = np.maximum(visits - 1, 0).astype(np.int32)
        # The finished table in one constructor: inserting columns one by one costs more.
        return pd.DataFrame({c: columns[c] for c in _DWELL_COLUMNS}, copy=False)
    out = pd.DataFrame({**columns, "_total": total})
    keys = [*_GROUP_KEYS, "aoi_id"]
    # Never-fixated AOIs of each trial's stimulus, with zero dwell.
    trials = out[[*_GROUP_KEYS, "_total"]].drop_duplicates(_GROUP_KEYS)
    every = trials.merge(aois[["stimulus_id", "aoi_id", "aoi_kind"]], on="stimulus_id", how="inner")
    missing = every.merge(out[keys], on=keys, how="left", indicator=True)
    missing = missing.loc[missing["_merge"] == "left_only", [*keys, "aoi_kind", "_total"]]
    if len(missing):
        missing = missing.assign(
            time_to_first_fixation_ms=np.nan,
            first_fixation_duration_ms=np.nan,
            dwell_time_ms=0.0,
            fixation_count=np.int32(0),
            visit_count=np.int32(0),
        )
        out = pd.concat([out, missing], ignore_index=True)
        out = out.sort_values(keys, kind="stable").reset_index(drop=True)
    total_ms = out["_total"].to_numpy(dtype=np.float64)
    dwell_ms = out["dwell_time_ms"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["dwell_share"] = np.where(total_ms > 0, dwell_ms / total_ms, np.nan)
    out["fixation_count"] = out["fixation_count"].astype(np.int32)
    out["visit_count"] = out["visit_count"].astype(np.int32)
    out["revisit_count"] = np.maximum(out["visit_count"] - 1, 0).astype(np.int32)
    return out[_DWELL_COLUMNS]


def _dwell_metrics_pandas(aoi_hits: pd.DataFrame, aois: pd.DataFrame | None) -> pd.DataFrame:
    """:func:`dwell_metrics` with pandas groupby: the reference, and the path for missing values."""
    hits = aoi_hits.sort_values(["participant", "trial", "event_index"], kind="stable").reset_index(drop=True)
    if "aoi_kind" not in hits:
        hits = hits.assign(aoi_kind=_kind_from_id(hits["aoi_id"]))
    same_trial = (hits["participant"].eq(hits["participant"].shift())) & hits["trial"].eq(
        hits["trial"].shift()
    )
    new_visit = ~(same_trial & hits["aoi_id"].eq(hits["aoi_id"].shift()))
    hits = hits.assign(_new_visit=new_visit.astype(np.int32))
    keys = [*_GROUP_KEYS, "aoi_id"]
    grouped = hits.groupby(keys, sort=True, dropna=False)
    out = grouped.agg(
        aoi_kind=("aoi_kind", "first"),
        time_to_first_fixation_ms=("onset_in_trial_ms", "first"),
        first_fixation_duration_ms=("duration_ms", "first"),
        dwell_time_ms=("duration_ms", "sum"),
        fixation_count=("duration_ms", "size"),
        visit_count=("_new_visit", "sum"),
    ).reset_index()
    total = hits.groupby(_GROUP_KEYS, sort=False, dropna=False)["duration_ms"].sum().rename("_total")
    if aois is not None and len(aois):
        trials = hits[_GROUP_KEYS].drop_duplicates()
        every = trials.merge(aois[["stimulus_id", "aoi_id", "aoi_kind"]], on="stimulus_id", how="inner")
        missing = every.merge(out[keys], on=keys, how="left", indicator=True)
        missing = missing.loc[missing["_merge"] == "left_only", [*keys, "aoi_kind"]]
        if len(missing):
            missing = missing.assign(
                time_to_first_fixation_ms=np.nan,
                first_fixation_duration_ms=np.nan,
                dwell_time_ms=0.0,
                fixation_count=0,
                visit_count=0,
            )
            out = pd.concat([out, missing], ignore_index=True)
    out = out.merge(total, left_on=_GROUP_KEYS, right_index=True, how="left")
    out["dwell_time_ms"] = out["dwell_time_ms"].astype(np.float64)
    out["dwell_share"] = np.where(out["_total"] > 0, out["dwell_time_ms"] / out["_total"], np.nan)
    out["time_to_first_fixation_ms"] = out["time_to_first_fixation_ms"].astype(np.float64)
    out["first_fixation_duration_ms"] = out["first_fixation_duration_ms"].astype(np.float64)
    out["fixation_count"] = out["fixation_count"].astype(np.int32)
    out["visit_count"] = out["visit_count"].astype(np.int32)
    out["revisit_count"] = np.maximum(out["visit_count"] - 1, 0).astype(np.int32)
    out = out.drop(columns="_total").sort_values(keys, kind="stable").reset_index(drop=True)
    return out[
        [
            *keys,
            "aoi_kind",
            "time_to_first_fixation_ms",
            "first_fixation_duration_ms",
            "dwell_time_ms",
            "dwell_share",
            "fixation_count",
            "visit_count",
            "revisit_count",
        ]
    ]


def _kind_from_id(aoi_id: pd.Series) -> pd.Series:
    s = aoi_id.astype(str)
    return pd.Series(
        np.select(
            [s.str.startswith("obj:"), s.str.startswith("word:"), s.eq(AOI_OFF_SCREEN)],
            ["object", "word", AOI_OFF_SCREEN],
            default=AOI_BACKGROUND,
        ),
        index=aoi_id.index,
    )
