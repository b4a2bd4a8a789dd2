"""AOI masks in image px and coverage-weighted RoI pooling on grids with known values."""

from __future__ import annotations

import numpy as np
import pytest

from pov_pipeline.features import ImagePlacement, aoi_mask, mask_to_grid, roi_pool

# A 40×40 px image shown at (100, 200) at twice its size: screen = 100 + 2·x, 200 + 2·y.
PLACE = ImagePlacement(
    left_px=100, top_px=200, width_px=80, height_px=80, file_width_px=40, file_height_px=40
)


def _grid() -> np.ndarray:
    """4×4 grid (10 px cells); channel 0 = cell index row*4+col, channel 1 = constant 5."""
    g = np.zeros((2, 4, 4), np.float32)
    g[0] = np.arange(16, dtype=np.float32).reshape(4, 4)
    g[1] = 5.0
    return g


def test_screen_to_image_px() -> None:
    x, y = PLACE.to_image_px(np.array([100.0, 180.0]), np.array([200.0, 240.0]))
    assert x.tolist() == [0.0, 40.0] and y.tolist() == [0.0, 20.0]


def test_cell_aligned_box_pools_exactly_its_cells() -> None:
    # Image px x 10..30, y 0..20 → cells rows 0-1, cols 1-2 → indices 1, 2, 5, 6.
    mask = aoi_mask("rect", (120.0, 200.0, 160.0, 240.0), None, PLACE)
    assert mask.sum() == 20 * 20
    cov = mask_to_grid(mask, (4, 4))
    expected = np.zeros((4, 4))
    expected[0:2, 1:3] = 1.0
    np.testing.assert_allclose(cov, expected, atol=1e-6)
    np.testing.assert_allclose(roi_pool(_grid(), cov), [3.5, 5.0], rtol=1e-6)


def test_partial_cells_are_weighted_by_covered_area() -> None:
    # Image px x 5..20, y 0..10: half of cell 0 and all of cell 1 → (0.5·0 + 1·1) / 1.5.
    mask = aoi_mask("rect", (110.0, 200.0, 140.0, 220.0), None, PLACE)
    cov = mask_to_grid(mask, (4, 4))
    assert cov[0, 0] == pytest.approx(0.5) and cov[0, 1] == pytest.approx(1.0)
    assert cov.sum() == pytest.approx(1.5)
    np.testing.assert_allclose(roi_pool(_grid(), cov)[0], 1.0 / 1.5, rtol=1e-5)


def test_polygon_triangle_covers_half_of_its_box() -> None:
    # Lower-left triangle of the whole image (image px (0,0), (0,40), (40,40)).
    pts = [100.0, 200.0, 100.0, 280.0, 180.0, 280.0]
    mask = aoi_mask("polygon", (100.0, 200.0, 180.0, 280.0), pts, PLACE)
    assert mask.sum() / mask.size == pytest.approx(0.5, abs=0.03)
    cov = mask_to_grid(mask, (4, 4))
    # Cells strictly below the diagonal are full, above it empty, on it about half.
    assert cov[3, 0] == pytest.approx(1.0) and cov[0, 3] == pytest.approx(0.0)
    assert cov[1, 1] == pytest.approx(0.5, abs=0.1)
    g = _grid()
    expected = (g[0] * cov).sum() / cov.sum()
    np.testing.assert_allclose(roi_pool(g, cov)[0], expected, rtol=1e-6)
    # The lower-left half holds the larger row indices, so its mean index exceeds the grid mean.
    assert roi_pool(g, cov)[0] > g[0].mean()


def test_ellipse_area() -> None:
    # Circle of radius 10 image px at the image centre (screen cx=140, cy=240, r=20).
    mask = aoi_mask("ellipse", (120.0, 220.0, 160.0, 260.0), [140.0, 240.0, 20.0, 20.0], PLACE)
    assert mask.sum() == pytest.approx(np.pi * 100, rel=0.03)


def test_aoi_outside_the_image_pools_to_nan() -> None:
    mask = aoi_mask("rect", (0.0, 0.0, 90.0, 90.0), None, PLACE)
    cov = mask_to_grid(mask, (4, 4))
    assert cov.sum() == 0
    assert np.isnan(roi_pool(_grid(), cov)).all()


def test_non_integer_cell_size_keeps_total_area() -> None:
    # 40 px onto 3 cells: each cell is 13.33 px; a full mask must still give coverage 1 everywhere.
    cov = mask_to_grid(np.ones((40, 40), np.float32), (3, 3))
    np.testing.assert_allclose(cov, 1.0, atol=1e-6)
    half = np.zeros((40, 40), np.float32)
    half[:, :20] = 1.0
    cov = mask_to_grid(half, (3, 3))
    assert cov.sum() == pytest.approx(4.5, abs=1e-4)
