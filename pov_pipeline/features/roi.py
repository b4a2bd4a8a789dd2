"""AOI masks on the image and RoI pooling of a feature grid.

AOIs are given in screen px; the image is drawn at ``image_left_px, image_top_px`` scaled to
``image_width_px × image_height_px``. A mask is rasterised at the image file's own resolution, then
area-downsampled (PIL ``BOX`` filter: each grid cell gets the exact fraction of its image area the
AOI covers) to the feature grid. The pooled vector is the coverage-weighted mean of grid cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class ImagePlacement:
    """Where the image was shown and how large its file is.

    Attributes
    ----------
    left_px, top_px:
        Screen position of the image's top-left corner.
    width_px, height_px:
        Displayed size on screen.
    file_width_px, file_height_px:
        Pixel size of the image file (may differ from the displayed size when scaled).
    """

    left_px: float
    top_px: float
    width_px: float
    height_px: float
    file_width_px: int
    file_height_px: int

    def to_image_px(self, x_screen_px: np.ndarray, y_screen_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Screen px → image-file px (continuous coordinates, 0 at the image's left/top edge)."""
        sx = self.file_width_px / self.width_px
        sy = self.file_height_px / self.height_px
        return (np.asarray(x_screen_px, float) - self.left_px) * sx, (
            np.asarray(y_screen_px, float) - self.top_px
        ) * sy


def aoi_mask(
    shape: str,
    bbox_screen_px: tuple[float, float, float, float],
    points_screen_px: np.ndarray | list[float] | None,
    placement: ImagePlacement,
) -> np.ndarray:
    """Rasterise one AOI at image-file resolution.

    Parameters
    ----------
    shape:
        ``rect`` (uses the bbox), ``polygon`` (points ``x0,y0,x1,y1,...``) or ``ellipse``
        (points ``cx,cy,rx,ry``; falls back to the bbox when points are missing).
    bbox_screen_px:
        ``(x0, y0, x1, y1)`` in screen px.
    points_screen_px:
        Flat point list in screen px, as in ``schemas.AOIS.points_px``.
    placement:
        Image placement on the screen.

    Returns
    -------
    np.ndarray
        ``(file_height_px, file_width_px)`` float32 mask in {0, 1}; parts outside the image are
        clipped away.
    """
    w, h = placement.file_width_px, placement.file_height_px
    pts = None if points_screen_px is None else np.asarray(points_screen_px, dtype=float).ravel()
    if shape == "polygon" and pts is not None and pts.size >= 6:
        img = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(img)
        xs, ys = placement.to_image_px(pts[0::2], pts[1::2])
        draw.polygon(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=255)
        return (np.asarray(img, dtype=np.float32) > 127).astype(np.float32)
    # Rectangles and ellipses are tested at pixel centres, which is exact for pixel-aligned boxes.
    cx_px = (np.arange(w, dtype=float) + 0.5)[None, :]
    cy_px = (np.arange(h, dtype=float) + 0.5)[:, None]
    if shape == "ellipse" and pts is not None and pts.size >= 4:
        (ecx,), (ecy,) = placement.to_image_px(pts[0:1], pts[1:2])
        erx = pts[2] * placement.file_width_px / placement.width_px
        ery = pts[3] * placement.file_height_px / placement.height_px
        if erx <= 0 or ery <= 0:
            return np.zeros((h, w), np.float32)
        return (((cx_px - ecx) / erx) ** 2 + ((cy_px - ecy) / ery) ** 2 <= 1.0).astype(np.float32)
    x0, y0, x1, y1 = bbox_screen_px
    (ix0, ix1), (iy0, iy1) = placement.to_image_px(np.array([x0, x1]), np.array([y0, y1]))
    return (((cx_px >= ix0) & (cx_px < ix1)) & ((cy_px >= iy0) & (cy_px < iy1))).astype(np.float32)


def mask_to_grid(mask: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Fraction of each grid cell's area covered by ``mask`` (exact area averaging, any ratio)."""
    gh, gw = grid_hw
    small = Image.fromarray(np.ascontiguousarray(mask, dtype=np.float32), mode="F").resize(
        (gw, gh), Image.Resampling.BOX
    )
    return np.clip(np.asarray(small, dtype=np.float32), 0.0, 1.0)


def roi_pool(grid: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Coverage-weighted mean of grid cells.

    Parameters
    ----------
    grid:
        ``(C, H, W)`` feature grid.
    coverage:
        ``(H, W)`` weights in [0, 1] (see :func:`mask_to_grid`).

    Returns
    -------
    np.ndarray
        ``(C,)`` float32; NaN when the coverage is all zero (the AOI lies outside the image).
    """
    total = float(coverage.sum())
    if total <= 0.0:
        return np.full(grid.shape[0], np.nan, dtype=np.float32)
    return (np.tensordot(grid, coverage, axes=([1, 2], [0, 1])) / total).astype(np.float32)
