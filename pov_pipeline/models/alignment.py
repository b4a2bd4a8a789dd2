"""FixATE-style alignment between model attention and human dwell over the same AOIs.

Every function takes two batches of non-negative weights ``(n, k)`` (rows = trials, columns = AOI
tokens), normalises each row to a distribution and returns one value per row. Rows whose dwell or
attention sums to zero give NaN. ``g`` is the gaze (dwell) distribution, ``a`` the attention.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-8


def _normalise(w: np.ndarray) -> np.ndarray:
    w = np.atleast_2d(np.asarray(w, dtype=np.float64)).clip(min=0.0)
    s = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, w / s, np.nan)


def kl_divergence_bits(g: np.ndarray, a: np.ndarray, *, eps: float = _EPS) -> np.ndarray:
    """KL(g ‖ a) in bits; ``a`` is floored at ``eps`` (then renormalised) so unattended AOIs stay finite."""
    g, a = _normalise(g), _normalise(np.asarray(a, dtype=np.float64) + 0.0)
    a = _normalise(np.where(np.isnan(a), np.nan, np.maximum(a, eps)))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(g > 0, g * np.log2(g / a), 0.0)
    out = terms.sum(axis=1)
    return np.where(np.isnan(g).any(axis=1) | np.isnan(a).any(axis=1), np.nan, out)


def js_distance_squared(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Squared Jensen–Shannon distance = JS divergence in bits (0 = identical, 1 = disjoint)."""
    g, a = _normalise(g), _normalise(a)
    m = 0.5 * (g + a)
    with np.errstate(divide="ignore", invalid="ignore"):
        kg = np.where(g > 0, g * np.log2(g / m), 0.0).sum(axis=1)
        ka = np.where(a > 0, a * np.log2(a / m), 0.0).sum(axis=1)
    out = 0.5 * (kg + ka)
    return np.where(np.isnan(g).any(axis=1) | np.isnan(a).any(axis=1), np.nan, out)


def cosine_similarity(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Cosine similarity of the two weight vectors (scale-free)."""
    g = np.atleast_2d(np.asarray(g, dtype=np.float64))
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    den = np.linalg.norm(g, axis=1) * np.linalg.norm(a, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (g * a).sum(axis=1) / den, np.nan)


def top_k_overlap(g: np.ndarray, a: np.ndarray, *, k: int) -> np.ndarray:
    """TGO@k: share of the ``k`` most-dwelt AOIs that are also among the ``k`` most-attended ones.

    Ties are broken by column order (stable sort); ``k`` is capped at the number of columns.
    """
    g = np.atleast_2d(np.asarray(g, dtype=np.float64))
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    k = min(k, g.shape[1])
    top_g = np.argsort(-g, axis=1, kind="stable")[:, :k]
    top_a = np.argsort(-a, axis=1, kind="stable")[:, :k]
    hit = (top_g[:, :, None] == top_a[:, None, :]).any(axis=2).sum(axis=1) / k
    finite_sum = lambda w: np.where(np.isfinite(w), w, 0.0).sum(axis=1)  # noqa: E731
    valid = (finite_sum(g) > 0) & (finite_sum(a) > 0)
    return np.where(valid, hit, np.nan)


def alignment_table(g: np.ndarray, a: np.ndarray, *, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All alignment measures per row; columns where ``mask`` is false are zeroed in both inputs.

    Returns
    -------
    dict[str, np.ndarray]
        ``kl_bits, js_distance_sq, cosine, tgo_at_1, tgo_at_3``.
    """
    g = np.atleast_2d(np.asarray(g, dtype=np.float64))
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    if mask is not None:
        g, a = np.where(mask, g, 0.0), np.where(mask, a, 0.0)
    # An AOI outside the mask must not win a top-k slot on a tie at zero.
    a_rank = np.where(mask, a, -np.inf) if mask is not None else a
    g_rank = np.where(mask, g, -np.inf) if mask is not None else g
    tg1 = top_k_overlap(g_rank, a_rank, k=1)
    tg3 = top_k_overlap(g_rank, a_rank, k=3)
    valid = (g.sum(axis=1) > 0) & (a.sum(axis=1) > 0)
    return {
        "kl_bits": kl_divergence_bits(g, a),
        "js_distance_sq": js_distance_squared(g, a),
        "cosine": cosine_similarity(g, a),
        "tgo_at_1": np.where(valid, tg1, np.nan),
        "tgo_at_3": np.where(valid, tg3, np.nan),
    }
