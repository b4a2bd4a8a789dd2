"""Screen geometry: exact (atan-based) conversion between screen pixels and visual degrees.

Conventions follow the Lund ``pixels2degrees.m`` helper (Andersson et al. 2017): a distance of
``s`` pixels seen centred on the line of sight subtends ``2 * atan(s * mm_per_px / 2 / D)``
degrees. Gaze positions are converted relative to the screen centre, per axis, with
``atan(offset_mm / D)``, which is exact for a viewer facing the screen centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.floating]

# Cephes' ``atan`` (Moshier): reduction to |t| <= 0.66, then t + t^3 P(t^2)/Q(t^2).
ATAN_P: tuple[float, ...] = (
    -8.750608600031904122785e-1,
    -1.615753718733365076637e1,
    -7.500855792314704667340e1,
    -1.228866684490136173410e2,
    -6.485021904942025371773e1,
)
ATAN_Q: tuple[float, ...] = (
    2.485846490142306297962e1,
    1.650270098316988542046e2,
    4.328810604912902668951e2,
    4.853903996359136964868e2,
    1.945506571482613964425e2,
)
#: Low-order bits of pi/2 lost in its float64 rounding.
ATAN_MOREBITS = 6.123233995736765886130e-17
#: tan(3 pi / 8): above it the reduction is atan(t) = pi/2 - atan(1/t).
ATAN_T3P8 = 2.41421356237309504880
#: numpy's ``npy_rad2deg`` factor: multiplying by it is ``np.degrees`` exactly.
RAD_TO_DEG = 180.0 / np.pi


def arctan_deg(tangent: ArrayLike) -> FloatArray:
    """Angle in degrees whose tangent is ``tangent``: ``np.degrees(np.arctan(tangent))`` to 2 ulp.

    The same bits on every machine and in the compiled detector (``_kernels.tan_to_deg``
    performs these operations in this order), where numpy's own ``arctan`` is the C library's
    on one CPU and a SIMD approximation on another, and runs about ten times slower than this
    in compiled code. NaN stays NaN, the sign of zero is kept.
    """
    t = np.asarray(tangent, dtype=np.float64)
    x = np.abs(t)
    big = x > ATAN_T3P8
    mid = (x > 0.66) & ~big
    num = np.where(big, -1.0, np.where(mid, x - 1.0, x))
    den = np.where(big, x, np.where(mid, x + 1.0, 1.0))
    base = np.where(big, np.pi / 2, np.where(mid, np.pi / 4, 0.0))
    low = np.where(big, ATAN_MOREBITS, np.where(mid, 0.5 * ATAN_MOREBITS, 0.0))
    xr = num / den
    z = xr * xr
    p0, p1, p2, p3, p4 = ATAN_P
    q0, q1, q2, q3, q4 = ATAN_Q
    p = (((p0 * z + p1) * z + p2) * z + p3) * z + p4
    q = ((((z + q0) * z + q1) * z + q2) * z + q3) * z + q4
    angle = base + ((xr * (z * p / q) + xr) + low)
    return np.copysign(angle, t) * RAD_TO_DEG


class ScreenSetup(Protocol):
    """What a session record says about its screen (``ingest.SessionInfo`` has these fields)."""

    @property
    def screen_px(self) -> tuple[int, int]: ...

    @property
    def screen_mm(self) -> tuple[float, float]: ...

    @property
    def viewing_distance_mm(self) -> float: ...


@dataclass(frozen=True)
class ScreenGeometry:
    """Physical set-up of a screen-based eye-tracking recording.

    Parameters
    ----------
    screen_width_px : int
        Horizontal screen resolution in pixels.
    screen_height_px : int
        Vertical screen resolution in pixels.
    screen_width_mm : float
        Width of the visible screen area in millimetres.
    screen_height_mm : float
        Height of the visible screen area in millimetres.
    viewing_distance_mm : float
        Eye-to-screen distance in millimetres.
    """

    screen_width_px: int
    screen_height_px: int
    screen_width_mm: float
    screen_height_mm: float
    viewing_distance_mm: float

    def __post_init__(self) -> None:
        for name in (
            "screen_width_px",
            "screen_height_px",
            "screen_width_mm",
            "screen_height_mm",
            "viewing_distance_mm",
        ):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")

    @classmethod
    def from_session(cls, session: ScreenSetup) -> ScreenGeometry:
        """The set-up of a session as ``ingest.read_session`` returns it (``SessionInfo``)."""
        return cls(
            screen_width_px=int(session.screen_px[0]),
            screen_height_px=int(session.screen_px[1]),
            screen_width_mm=float(session.screen_mm[0]),
            screen_height_mm=float(session.screen_mm[1]),
            viewing_distance_mm=float(session.viewing_distance_mm),
        )

    @classmethod
    def lund2013(cls) -> ScreenGeometry:
        """Return the set-up of the Lund hand-coded data set (Andersson et al. 2017)."""
        return cls(1024, 768, 380.0, 300.0, 670.0)

    @property
    def mm_per_px_x(self) -> float:
        """Horizontal pixel pitch in millimetres."""
        return self.screen_width_mm / self.screen_width_px

    @property
    def mm_per_px_y(self) -> float:
        """Vertical pixel pitch in millimetres."""
        return self.screen_height_mm / self.screen_height_px

    @property
    def deg_per_px(self) -> float:
        """Size in degrees of one horizontal pixel at the screen centre."""
        return float(np.degrees(2.0 * np.arctan(0.5 * self.mm_per_px_x / self.viewing_distance_mm)))

    @property
    def deg_per_px_y(self) -> float:
        """Size in degrees of one vertical pixel at the screen centre."""
        return float(np.degrees(2.0 * np.arctan(0.5 * self.mm_per_px_y / self.viewing_distance_mm)))

    @property
    def screen_width_deg(self) -> float:
        """Horizontal extent of the screen in degrees."""
        return float(pixels_to_degrees(self.screen_width_px, self))

    @property
    def screen_height_deg(self) -> float:
        """Vertical extent of the screen in degrees."""
        return float(pixels_to_degrees(self.screen_height_px, self, axis="y"))

    def px_to_deg(self, x_px: ArrayLike, y_px: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Convert screen positions to degrees of visual angle from the screen centre.

        Parameters
        ----------
        x_px, y_px : array_like
            Positions in pixels, origin at the top-left corner, y pointing down. NaN stays NaN.

        Returns
        -------
        tuple of numpy.ndarray
            ``(x_deg, y_deg)``; positive x is right of centre, positive y below centre.
        """
        x = np.asarray(x_px, dtype=np.float64)
        y = np.asarray(y_px, dtype=np.float64)
        # Scale pixels straight to tangent units (offset_mm / distance) so one multiply suffices.
        kx = self.mm_per_px_x / self.viewing_distance_mm
        ky = self.mm_per_px_y / self.viewing_distance_mm
        x_deg = arctan_deg((x - 0.5 * self.screen_width_px) * kx)
        y_deg = arctan_deg((y - 0.5 * self.screen_height_px) * ky)
        return x_deg, y_deg

    def deg_to_px(self, x_deg: ArrayLike, y_deg: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Inverse of :meth:`px_to_deg`."""
        x = np.asarray(x_deg, dtype=np.float64)
        y = np.asarray(y_deg, dtype=np.float64)
        d = self.viewing_distance_mm
        x_px = np.tan(np.radians(x)) * d / self.mm_per_px_x + 0.5 * self.screen_width_px
        y_px = np.tan(np.radians(y)) * d / self.mm_per_px_y + 0.5 * self.screen_height_px
        return x_px, y_px


def pixels_to_degrees(size_px: ArrayLike, geometry: ScreenGeometry, axis: str = "x") -> FloatArray:
    """Convert a size or distance in pixels, centred on the line of sight, to degrees.

    Parameters
    ----------
    size_px : array_like
        Sizes in pixels.
    geometry : ScreenGeometry
        The screen set-up.
    axis : {"x", "y"}
        Which pixel pitch to use (screens with non-square pixels differ).

    Returns
    -------
    numpy.ndarray
        ``2 * atan(size_px * mm_per_px / 2 / viewing_distance_mm)`` in degrees.
    """
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    mm_per_px = geometry.mm_per_px_x if axis == "x" else geometry.mm_per_px_y
    size = np.asarray(size_px, dtype=np.float64)
    return np.degrees(2.0 * np.arctan(size * mm_per_px / 2.0 / geometry.viewing_distance_mm))


def px_to_deg(x_px: ArrayLike, y_px: ArrayLike, geometry: ScreenGeometry) -> tuple[FloatArray, FloatArray]:
    """Function form of :meth:`ScreenGeometry.px_to_deg`."""
    return geometry.px_to_deg(x_px, y_px)


def deg_per_px(geometry: ScreenGeometry) -> float:
    """Function form of :attr:`ScreenGeometry.deg_per_px`."""
    return geometry.deg_per_px
