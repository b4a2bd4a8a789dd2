"""Metrics against scikit-learn and alignment measures against closed-form values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from pov_pipeline.models.alignment import (
    alignment_table,
    cosine_similarity,
    js_distance_squared,
    kl_divergence_bits,
    top_k_overlap,
)
from pov_pipeline.models.metrics import (
    bayes_optimal_predictions,
    compute_metrics,
    confusion_matrices,
    per_participant_accuracy,
)
from pov_pipeline.schemas import ANSWER_LABELS


def _fixed_predictions(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 240
    y = rng.choice(ANSWER_LABELS, size=n, p=[0.3, 0.3, 0.4])
    good = rng.random(n) < 0.6
    rows = []
    for model, acc_boost in (("transformer", 0.0), ("pgmt", 0.25)):
        hit = good | (rng.random(n) < acc_boost)
        pred = np.where(hit, y, rng.choice(ANSWER_LABELS, size=n))
        p = rng.dirichlet(np.ones(3), size=n)
        rows.append(
            pd.DataFrame(
                {
                    "protocol": "unseen_stimuli",
                    "model": model,
                    "fold": np.arange(n) % 3,
                    "participant": [f"p{i % 12:02d}" for i in range(n)],
                    "trial": (np.arange(n) // 12 + 1).astype("int32"),
                    "stimulus_id": [f"s{i % 20}" for i in range(n)],
                    "y_true": y,
                    "y_pred": pred,
                    "p_yes": p[:, 0],
                    "p_no": p[:, 1],
                    "p_unsure": p[:, 2],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_metrics_match_sklearn() -> None:
    preds = _fixed_predictions()
    m = compute_metrics(preds, n_boot=200, seed=0).set_index(["model", "metric"])
    for model in ("transformer", "pgmt"):
        p = preds[preds["model"] == model]
        yt, yp = p["y_true"], p["y_pred"]
        labels = list(ANSWER_LABELS)
        assert m.loc[(model, "accuracy"), "value"] == pytest.approx(accuracy_score(yt, yp))
        assert m.loc[(model, "macro_f1"), "value"] == pytest.approx(
            f1_score(yt, yp, labels=labels, average="macro", zero_division=0)
        )
        prec = precision_score(yt, yp, labels=labels, average=None, zero_division=0)
        rec = recall_score(yt, yp, labels=labels, average=None, zero_division=0)
        for j, lab in enumerate(labels):
            assert m.loc[(model, f"precision_{lab}"), "value"] == pytest.approx(prec[j])
            assert m.loc[(model, f"recall_{lab}"), "value"] == pytest.approx(rec[j])
        row = m.loc[(model, "accuracy")]
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
        assert row["ci_high"] - row["ci_low"] > 0
    d = m.loc[("pgmt", "delta_accuracy_vs_transformer")]
    acc = preds.assign(c=preds["y_true"] == preds["y_pred"]).groupby("model")["c"].mean()
    assert d["value"] == pytest.approx(acc["pgmt"] - acc["transformer"])
    assert d["ci_low"] > 0  # planted gain of ~+0.1 with 240 paired trials


def test_bootstrap_is_seeded() -> None:
    preds = _fixed_predictions()
    a = compute_metrics(preds, n_boot=100, seed=3)
    b = compute_metrics(preds, n_boot=100, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_bayes_optimal_and_tables() -> None:
    preds = _fixed_predictions()
    truth = preds[preds["model"] == "pgmt"][["participant", "trial", "p_yes", "p_no", "p_unsure"]]
    bo = bayes_optimal_predictions(preds, truth)
    assert len(bo) == len(truth) and set(bo["model"]) == {"bayes_optimal"}
    m = compute_metrics(preds, truth, n_boot=50).set_index(["model", "metric"])
    exp = truth[["p_yes", "p_no", "p_unsure"]].max(axis=1).mean()
    assert m.loc[("bayes_optimal", "expected_accuracy"), "value"] == pytest.approx(exp)
    cm = confusion_matrices(preds)
    assert cm.groupby("model")["count"].sum().eq(240).all() and len(cm) == 18
    pp = per_participant_accuracy(preds)
    assert pp["n_trials"].sum() == 480 and pp["accuracy"].between(0, 1).all()


def test_alignment_closed_form() -> None:
    g = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    a = np.array([[0.25, 0.25, 0.5], [1.0, 0.0, 0.0]])
    # KL(g‖a) = 0.5 log2(0.5/0.25) · 2 = 1 bit; identical rows → 0.
    np.testing.assert_allclose(kl_divergence_bits(g, a), [1.0, 0.0], atol=1e-6)
    # JS: m = [0.375, 0.375, 0.25]; 0.5·(log2(0.5/0.375)) + 0.5·(0.5·log2(0.25/0.375)·2 + 0.5·log2(2))
    m = np.array([0.375, 0.375, 0.25])
    kg = (g[0, :2] * np.log2(g[0, :2] / m[:2])).sum()
    ka = (a[0] * np.log2(a[0] / m)).sum()
    np.testing.assert_allclose(js_distance_squared(g, a), [0.5 * (kg + ka), 0.0], atol=1e-12)
    assert js_distance_squared(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))[0] == pytest.approx(1.0)
    np.testing.assert_allclose(cosine_similarity(g, a), [0.25 / (np.sqrt(0.5) * np.sqrt(0.375)), 1.0])
    np.testing.assert_allclose(top_k_overlap(np.array([[3, 2, 1, 0]]), np.array([[0, 2, 1, 3]]), k=1), [0.0])
    np.testing.assert_allclose(
        top_k_overlap(np.array([[3, 2, 1, 0]]), np.array([[0, 2, 1, 3]]), k=3), [2 / 3]
    )
    assert np.isnan(kl_divergence_bits(np.zeros((1, 3)), a[:1]))[0]


def test_alignment_table_mask_ignores_columns() -> None:
    g = np.array([[0.0, 5.0, 5.0]])
    a = np.array([[0.9, 0.05, 0.05]])
    out = alignment_table(g, a, mask=np.array([[False, True, True]]))
    assert out["kl_bits"][0] == pytest.approx(0.0, abs=1e-6)
    assert out["tgo_at_1"][0] == 1.0 and out["tgo_at_3"][0] == 1.0
