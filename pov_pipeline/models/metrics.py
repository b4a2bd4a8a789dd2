"""Evaluation: accuracy, macro-F1, per-class precision/recall, participant bootstrap CIs, paired deltas.

Confidence intervals resample *participants* with replacement (trials of one participant are not
independent). Each bootstrap replicate is a weight vector over participants (multinomial counts), so
every metric is computed from weighted per-participant confusion matrices in one vectorised step, and
all models of a protocol share the same replicates (paired comparisons).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pov_pipeline.schemas import ANSWER_LABELS

PROB_COLUMNS = tuple(f"p_{lab}" for lab in ANSWER_LABELS)
METRIC_COLUMNS = ["protocol", "model", "metric", "value", "ci_low", "ci_high"]
REFERENCE_MODEL = "transformer"


def _codes(s: pd.Series) -> np.ndarray:
    return s.map({lab: i for i, lab in enumerate(ANSWER_LABELS)}).to_numpy(np.int64)


def _scores_from_confusion(M: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics from confusion matrices ``(..., 3, 3)`` (rows = true, columns = predicted)."""
    tp = np.diagonal(M, axis1=-2, axis2=-1)
    total = M.sum(axis=(-2, -1))
    col, row = M.sum(axis=-2), M.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = tp.sum(-1) / total
        prec = np.where(col > 0, tp / np.where(col > 0, col, 1), 0.0)
        rec = np.where(row > 0, tp / np.where(row > 0, row, 1), 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / np.where(prec + rec > 0, prec + rec, 1), 0.0)
    out = {"accuracy": acc, "macro_f1": f1.mean(-1)}
    for j, lab in enumerate(ANSWER_LABELS):
        out[f"precision_{lab}"] = prec[..., j]
        out[f"recall_{lab}"] = rec[..., j]
    return out


def _participant_confusion(df: pd.DataFrame, participants: np.ndarray) -> np.ndarray:
    k = len(ANSWER_LABELS)
    p = pd.Index(participants).get_indexer(df["participant"])
    M = np.zeros((len(participants), k, k))
    np.add.at(M, (p, _codes(df["y_true"]), _codes(df["y_pred"])), 1.0)
    return M


def bootstrap_weights(n_participants: int, *, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_participants)`` multinomial counts: how often each participant is drawn."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_participants, np.full(n_participants, 1.0 / n_participants), size=n_boot).astype(
        float
    )


def bayes_optimal_predictions(predictions: pd.DataFrame, truth_trials: pd.DataFrame) -> pd.DataFrame:
    """Predictions of the generator's own probabilities on the trials each protocol evaluated.

    Model ``bayes_optimal``: ``p_*`` are the truth probabilities and ``y_pred`` their argmax, i.e. the
    best any model can do in expectation.
    """
    trials = predictions.drop_duplicates(["protocol", "participant", "trial"])[
        ["protocol", "fold", "participant", "trial", "stimulus_id", "y_true"]
    ]
    truth = truth_trials[["participant", "trial", *PROB_COLUMNS]].copy()
    truth["trial"] = truth["trial"].astype("int32")
    out = trials.merge(truth, on=["participant", "trial"], how="inner")
    out["model"] = "bayes_optimal"
    out["y_pred"] = np.asarray(ANSWER_LABELS, dtype=object)[out[list(PROB_COLUMNS)].to_numpy().argmax(1)]
    return out[["protocol", "model", *[c for c in predictions.columns if c not in ("protocol", "model")]]]


def _ci(boot: np.ndarray) -> tuple[float, float]:
    b = boot[np.isfinite(boot)]
    if not len(b):
        return float("nan"), float("nan")
    lo, hi = np.percentile(b, [2.5, 97.5])
    return float(lo), float(hi)


def compute_metrics(
    predictions: pd.DataFrame,
    truth_trials: pd.DataFrame | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    reference_model: str = REFERENCE_MODEL,
) -> pd.DataFrame:
    """Metrics per (protocol, model) with 95 % participant-bootstrap confidence intervals.

    Parameters
    ----------
    predictions:
        ``protocol, model, fold, participant, trial, stimulus_id, y_true, y_pred, p_yes, p_no, p_unsure``.
    truth_trials:
        Optional ``participant, trial, p_yes, p_no, p_unsure`` (demo ground truth): adds model
        ``bayes_optimal`` (all metrics) and its ``expected_accuracy`` (mean of the largest truth
        probability).
    n_boot:
        Bootstrap replicates (resampling participants).
    seed:
        Seed of the replicates.
    reference_model:
        Models other than this get ``delta_accuracy_vs_<reference>`` (paired on shared trials).

    Returns
    -------
    pd.DataFrame
        ``protocol, model, metric, value, ci_low, ci_high`` with metrics ``accuracy, macro_f1,
        precision_<c>, recall_<c>, n_trials, n_participants`` and the paired deltas.
    """
    if predictions is None or not len(predictions):
        return pd.DataFrame(columns=METRIC_COLUMNS)
    preds = predictions
    if truth_trials is not None and len(truth_trials):
        preds = pd.concat(
            [predictions, bayes_optimal_predictions(predictions, truth_trials)], ignore_index=True
        )
    rows: list[dict] = []
    for protocol, pp in preds.groupby("protocol", sort=True):
        participants = np.unique(pp["participant"].astype(str))
        W = bootstrap_weights(len(participants), n_boot=n_boot, seed=seed)
        for model, pm in pp.groupby("model", sort=True):
            M = _participant_confusion(pm, participants)
            point = _scores_from_confusion(M.sum(0))
            boot = _scores_from_confusion(np.einsum("bp,pij->bij", W, M))
            for name, v in point.items():
                lo, hi = _ci(boot[name])
                rows.append(
                    dict(protocol=protocol, model=model, metric=name, value=float(v), ci_low=lo, ci_high=hi)
                )
            rows.append(
                dict(
                    protocol=protocol,
                    model=model,
                    metric="n_trials",
                    value=float(len(pm)),
                    ci_low=np.nan,
                    ci_high=np.nan,
                )
            )
            rows.append(
                dict(
                    protocol=protocol,
                    model=model,
                    metric="n_participants",
                    value=float(pm["participant"].nunique()),
                    ci_low=np.nan,
                    ci_high=np.nan,
                )
            )
            if model == "bayes_optimal":
                pmax = pm[list(PROB_COLUMNS)].to_numpy().max(1)
                idx = pd.Index(participants).get_indexer(pm["participant"])
                s = np.bincount(idx, weights=pmax, minlength=len(participants))
                n = np.bincount(idx, minlength=len(participants)).astype(float)
                lo, hi = _ci((W @ s) / (W @ n))
                rows.append(
                    dict(
                        protocol=protocol,
                        model=model,
                        metric="expected_accuracy",
                        value=float(pmax.mean()),
                        ci_low=lo,
                        ci_high=hi,
                    )
                )
        ref = pp[pp["model"] == reference_model]
        if not len(ref):
            continue
        ref_ok = ref.assign(ref_correct=(ref["y_true"] == ref["y_pred"]).astype(float))[
            ["participant", "trial", "ref_correct"]
        ]
        for model, pm in pp.groupby("model", sort=True):
            if model == reference_model:
                continue
            j = pm.merge(ref_ok, on=["participant", "trial"], how="inner")
            if not len(j):
                continue
            idx = pd.Index(participants).get_indexer(j["participant"])
            d = (j["y_true"] == j["y_pred"]).astype(float).to_numpy() - j["ref_correct"].to_numpy()
            s = np.bincount(idx, weights=d, minlength=len(participants))
            n = np.bincount(idx, minlength=len(participants)).astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                lo, hi = _ci((W @ s) / (W @ n))
            rows.append(
                dict(
                    protocol=protocol,
                    model=model,
                    metric=f"delta_accuracy_vs_{reference_model}",
                    value=float(d.mean()),
                    ci_low=lo,
                    ci_high=hi,
                )
            )
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def confusion_matrices(predictions: pd.DataFrame) -> pd.DataFrame:
    """Long table ``protocol, model, y_true, y_pred, count`` (every cell, zeros included)."""
    k = len(ANSWER_LABELS)
    rows = []
    for (protocol, model), pm in predictions.groupby(["protocol", "model"], sort=True):
        M = np.zeros((k, k), dtype=np.int64)
        np.add.at(M, (_codes(pm["y_true"]), _codes(pm["y_pred"])), 1)
        for i, t in enumerate(ANSWER_LABELS):
            for j, p in enumerate(ANSWER_LABELS):
                rows.append(dict(protocol=protocol, model=model, y_true=t, y_pred=p, count=int(M[i, j])))
    return pd.DataFrame(rows)


def per_participant_accuracy(predictions: pd.DataFrame) -> pd.DataFrame:
    """``protocol, model, participant, n_trials, accuracy``."""
    df = predictions.assign(correct=(predictions["y_true"] == predictions["y_pred"]).astype(float))
    out = df.groupby(["protocol", "model", "participant"], sort=True)["correct"].agg(["size", "mean"])
    return out.rename(columns={"size": "n_trials", "mean": "accuracy"}).reset_index()


ALIGNMENT_COLUMNS = ("kl_bits", "js_distance_sq", "cosine", "tgo_at_1", "tgo_at_3")


def alignment_metrics(attention: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean attention–dwell alignment per (protocol, model) with participant-bootstrap CIs.

    Metric names are ``align_<measure>`` for the measures of
    :func:`~pov_pipeline.models.alignment.alignment_table`; NaN trials (no dwell on any word/object)
    are skipped.
    """
    rows = []
    for protocol, pp in attention.groupby("protocol", sort=True):
        participants = np.unique(pp["participant"].astype(str))
        W = bootstrap_weights(len(participants), n_boot=n_boot, seed=seed)
        for model, pm in pp.groupby("model", sort=True):
            idx = pd.Index(participants).get_indexer(pm["participant"])
            for col in ALIGNMENT_COLUMNS:
                v = pm[col].to_numpy(np.float64)
                ok = np.isfinite(v)
                if not ok.any():
                    continue
                s = np.bincount(idx[ok], weights=v[ok], minlength=len(participants))
                n = np.bincount(idx[ok], minlength=len(participants)).astype(float)
                with np.errstate(invalid="ignore", divide="ignore"):
                    lo, hi = _ci((W @ s) / (W @ n))
                rows.append(
                    dict(
                        protocol=protocol,
                        model=model,
                        metric=f"align_{col}",
                        value=float(v[ok].mean()),
                        ci_low=lo,
                        ci_high=hi,
                    )
                )
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)
