"""Training loop, per-model fit/predict, and :func:`run_experiment` (what the Dagster assets call).

Models (names as they appear in the predictions table):

- ``naive`` — majority class of the training fold; ``naive_participant`` — each participant's majority
  answer in the training fold (training-fold majority for participants not seen in training).
- ``lstm`` — :class:`~pov_pipeline.models.nets.SequenceLSTM` over the fixation sequence (perception).
- ``transformer`` — :class:`~pov_pipeline.models.nets.TokenTransformer` (content + participant).
- ``pgmt`` — the same Transformer with attention logits ``QKᵀ/√d + λ·T``.
- ``ensemble_mean`` — average of ``lstm`` and ``transformer`` probabilities; ``ensemble_stacked`` —
  multinomial logistic regression on their log-probabilities, fitted on the inner validation set
  (which was only used for early stopping, never for gradient steps).
- ``pgmt_shuffled`` / ``pgmt_swapped`` — ablations: the fold's PGMT evaluated (or, with
  ``TrainConfig.retrain_ablations``, retrained) with every trial's fixation order shuffled, or with
  the transition matrix of another participant's trial on the same stimulus.

Every neural model is trained with AdamW on cross-entropy, seeded, with early stopping on the inner
validation split (grouped like the outer split) and the best validation-loss weights restored.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from pov_pipeline.accel import autocast, autocast_dtype, select_device
from pov_pipeline.atomic import atomic_write, write_bytes_atomic
from pov_pipeline.models.alignment import alignment_table
from pov_pipeline.models.dataset import (
    GENERIC_NOUNS,
    StudyTensors,
    build_study_tensors,
    shuffle_fixation_order,
    swap_partner_index,
    transition_tensor,
)
from pov_pipeline.models.nets import SequenceLSTM, TokenTransformer
from pov_pipeline.models.splits import inner_validation_mask
from pov_pipeline.schemas import ANSWER_LABELS
from pov_pipeline.store import as_store_path

PROB_COLUMNS = tuple(f"p_{lab}" for lab in ANSWER_LABELS)
NEURAL_MODELS = ("lstm", "transformer", "pgmt")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one experiment; the defaults fit the paper-size study on 2 CPU cores.

    Attributes
    ----------
    seed:
        Seed of splits inside folds, initialisation, batching and ablations.
    n_folds:
        Outer folds (used by :func:`~pov_pipeline.models.splits.make_splits` callers).
    epochs, patience:
        Maximum epochs and early-stopping patience (epochs without a better validation loss).
    batch_size, lr, weight_decay:
        AdamW settings.
    lambda_lr_scale:
        Learning-rate multiplier of the PGMT's ``λ`` (a handful of scalars that need to move far).
    lambda_init:
        Initial ``λ`` of every PGMT layer and head. Learned values settled at 4–5 on a 15 000-trial
        synthetic study; starting at 3 instead of 1 reached the same accuracy in fewer epochs.
    d_model, n_heads, n_layers:
        Network size.
    dropout:
        Dropout inside the networks; 0 by default (early stopping and weight decay regularise, and
        sampling the masks cost a fifth of a CPU training step).
    val_fraction:
        Share of training groups held out for early stopping.
    participant_dropout:
        Probability of replacing a training trial's participant by the default embedding, so that the
        default (used for unseen participants) is trained.
    models:
        Which models to run (``naive`` also adds ``naive_participant``; ``ensemble`` needs ``lstm`` and
        ``transformer``).
    ablations:
        Run ``pgmt_shuffled`` and ``pgmt_swapped``; ``retrain_ablations`` retrains instead of only
        evaluating the fold's PGMT on the perturbed inputs.
    n_threads:
        ``torch.set_num_threads`` during training. One thread is the default: on a shared 2-core
        machine two threads were up to 10× slower (OpenMP workers waiting on each other) and never
        more than ~1.3× faster when the machine was idle.
    device:
        ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:1`` ... The study tensors
        move to the device once; batches are indexed there.
    mixed_precision:
        ``auto`` (bfloat16 autocast on CUDA devices that support it, float32 elsewhere), ``off`` or
        ``bf16``. Parameters, optimiser state and the loss stay float32.
    feature_pca_dim:
        Reduce text and image feature vectors to this many principal components before the learned
        projection (fitted per fold on the inner-training stimuli's tokens, unsupervised); ``None``
        keeps them whole. With 1280-d image and 384-d text vectors of ~120 training stimuli the full
        projections memorise the stimuli: on the paper demo (unseen_stimuli, 80 ms fixation floor)
        16 components took the PGMT from 0.836 to 0.845 (8: 0.845, 32 fitted on all stimuli: 0.844).
    generic_nouns:
        Words that stand for an unnamed object ("Something is on the table"); in a caption that names
        none of its image's objects they mention the central object (see
        :func:`~pov_pipeline.models.dataset.aoi_roles`). Empty switches this off.
    """

    seed: int = 0
    n_folds: int = 5
    epochs: int = 20
    patience: int = 3
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-2
    lambda_lr_scale: float = 10.0
    lambda_init: float = 3.0
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.0
    val_fraction: float = 0.15
    participant_dropout: float = 0.1
    models: tuple[str, ...] = ("naive", "lstm", "transformer", "pgmt", "ensemble")
    ablations: bool = True
    retrain_ablations: bool = False
    n_threads: int = 1
    device: str = "auto"
    mixed_precision: str = "auto"
    feature_pca_dim: int | None = 16
    generic_nouns: tuple[str, ...] = tuple(sorted(GENERIC_NOUNS))

    @classmethod
    def quick(cls, **overrides: object) -> TrainConfig:
        """Small, few-epoch preset for tests (seconds on a handful of trials)."""
        base = cls(n_folds=3, epochs=8, patience=3, batch_size=64, d_model=32, n_heads=2, n_layers=2)
        return replace(base, **overrides)


@dataclass
class FitLog:
    """What one training run did (for the run log and the report)."""

    model: str
    epochs_run: int
    best_epoch: int
    train_loss: list[float]
    val_loss: list[float]
    seconds: float


@dataclass
class ExperimentResult:
    """Everything :func:`run_experiment` produces.

    Attributes
    ----------
    predictions:
        ``protocol, model, fold, participant, trial, stimulus_id, y_true, y_pred, p_yes, p_no, p_unsure``.
    metrics:
        Long table from :func:`~pov_pipeline.models.metrics.compute_metrics`.
    attention:
        Per test trial of the Transformer and the PGMT: the participant token's last-layer attention
        (mean over heads) and the dwell over the stimulus's word/object AOIs, with alignment values.
    training_log:
        One row per (protocol, fold, model) fit.
    lambdas:
        Learned PGMT ``λ`` per (protocol, fold, layer, head).
    config:
        The :class:`TrainConfig` as a dict.
    """

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    attention: pd.DataFrame
    training_log: pd.DataFrame
    lambdas: pd.DataFrame
    config: dict = field(default_factory=dict)
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------- fitting


def _batches(n: int, batch_size: int, gen: torch.Generator | None) -> list[torch.Tensor]:
    if n == 0:
        return []
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    return list(order.split(batch_size))


def fit_model(
    model: nn.Module,
    forward: Callable[[nn.Module, torch.Tensor, bool], torch.Tensor],
    labels: torch.Tensor,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    config: TrainConfig,
    *,
    name: str,
    seed: int,
) -> FitLog:
    """Train ``model`` in place with AdamW + cross-entropy and early stopping on ``val_idx``.

    ``forward(model, idx, training)`` returns logits for the rows ``idx`` of the study tensors.
    The weights with the lowest validation loss are restored at the end.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    device = _model_device(model)
    amp = autocast_dtype(device, config.mixed_precision, training=True)
    lam = [p for n, p in model.named_parameters() if n == "lam"]
    rest = [p for n, p in model.named_parameters() if n != "lam"]
    groups = [{"params": rest}]
    if lam:
        groups.append({"params": lam, "lr": config.lr * config.lambda_lr_scale, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    tr, va = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    best, best_state, best_epoch, bad = float("inf"), None, 0, 0
    train_hist, val_hist = [], []
    t0 = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        total, count = 0.0, 0
        for b in _batches(len(tr), config.batch_size, gen):
            idx = tr[b]
            with autocast(device, amp):
                logits = forward(model, idx, True)
            loss = loss_fn(logits.float(), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        train_hist.append(total / max(count, 1))
        model.eval()
        with torch.no_grad(), autocast(device, amp):
            vl = sum(
                float(loss_fn(forward(model, va[b], False).float(), labels[va[b]])) * len(b)
                for b in _batches(len(va), 2048, None)
            ) / max(len(va), 1)
        val_hist.append(vl)
        if vl < best - 1e-4:
            best, best_epoch, bad = vl, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitLog(name, len(train_hist), best_epoch, train_hist, val_hist, time.perf_counter() - t0)


@torch.no_grad()
def predict_proba(
    model: nn.Module, forward: Callable[[nn.Module, torch.Tensor, bool], torch.Tensor], idx: np.ndarray
) -> np.ndarray:
    """Class probabilities ``(len(idx), 3)`` in evaluation mode."""
    model.eval()
    rows = torch.as_tensor(idx)
    out = [torch.softmax(forward(model, rows[b], False).float(), -1) for b in _batches(len(rows), 2048, None)]
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, len(ANSWER_LABELS)))


def _model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


class _Inputs:
    """Torch views of the study tensors plus the fold's participant indices."""

    def __init__(
        self,
        st: StudyTensors,
        participant_index: np.ndarray,
        config: TrainConfig,
        seed: int,
        device: torch.device | None = None,
        T: torch.Tensor | None = None,
    ) -> None:
        device = device or torch.device("cpu")
        self.st = st
        self.stim = torch.as_tensor(np.array(st.stim_index), device=device)
        self.T = torch.as_tensor(st.transition, device=device) if T is None else T
        self.seq_types = torch.as_tensor(st.seq_types, device=device)
        self.seq_dwell = torch.as_tensor(st.seq_log_dwell, device=device)
        self.seq_len = torch.as_tensor(st.seq_len, device=device)
        self.part = torch.as_tensor(np.array(participant_index, dtype=np.int64), device=device)
        self.p_drop = config.participant_dropout
        self.seed = seed + 7
        self.gen = torch.Generator().manual_seed(self.seed)

    def participants(self, idx: torch.Tensor, training: bool) -> torch.Tensor:
        p = self.part[idx]
        if training and self.p_drop > 0:
            # Drawn on the CPU generator so the stream is the same on every device.
            drop = (torch.rand(len(idx), generator=self.gen) < self.p_drop).to(p.device)
            p = torch.where(drop, torch.zeros_like(p), p)
        return p

    def transformer(
        self, T: torch.Tensor | None = None
    ) -> Callable[[nn.Module, torch.Tensor, bool], torch.Tensor]:
        T = self.T if T is None else T
        # Each model restarts the participant-dropout stream, so its result does not depend on
        # which models were trained before it in the fold.
        self.gen.manual_seed(self.seed)

        def fwd(model: nn.Module, idx: torch.Tensor, training: bool) -> torch.Tensor:
            return model(self.stim[idx], self.participants(idx, training), T[idx])

        return fwd

    def lstm(self) -> Callable[[nn.Module, torch.Tensor, bool], torch.Tensor]:
        self.gen.manual_seed(self.seed)

        def fwd(model: nn.Module, idx: torch.Tensor, training: bool) -> torch.Tensor:
            return model(
                self.seq_types[idx], self.seq_dwell[idx], self.seq_len[idx], self.participants(idx, training)
            )

        return fwd


def _new_transformer(
    st: StudyTensors, n_participants: int, config: TrainConfig, *, pgmt: bool
) -> TokenTransformer:
    return TokenTransformer(
        text_feat=torch.as_tensor(st.text_feat),
        image_feat=torch.as_tensor(st.image_feat),
        text_mask=torch.as_tensor(st.text_mask),
        image_mask=torch.as_tensor(st.image_mask),
        text_types=torch.as_tensor(st.text_types),
        image_types=torch.as_tensor(st.image_types),
        text_pos=torch.as_tensor(st.text_pos),
        n_participants=n_participants,
        d_model=config.d_model,
        n_heads=config.n_heads,
        n_layers=config.n_layers,
        dropout=config.dropout,
        use_gaze_bias=pgmt,
        lambda_init=config.lambda_init,
    )


@torch.no_grad()
def participant_attention(
    model: TokenTransformer, inputs: _Inputs, idx: np.ndarray, T: torch.Tensor | None = None
) -> np.ndarray:
    """Last-layer attention of the participant token, mean over heads: ``(len(idx), L)``."""
    model.eval()
    T = inputs.T if T is None else T
    rows = torch.as_tensor(idx)
    out = []
    for b in _batches(len(rows), 2048, None):
        r = rows[b]
        _, attn = model(inputs.stim[r], inputs.participants(r, False), T[r], return_attention=True)
        out.append(attn[:, :, 0, :].mean(1))
    return torch.cat(out).float().cpu().numpy() if out else np.zeros((0, inputs.st.n_tokens))


# ------------------------------------------------------------------------------------------ experiment


def reduce_features(
    feat: np.ndarray, mask: np.ndarray, n_components: int, fit_stimuli: np.ndarray | None = None
) -> np.ndarray:
    """Project token vectors ``(S, L, d)`` onto their first ``n_components`` principal components.

    Fitted on the existing tokens (``mask``) of the stimuli ``fit_stimuli`` (indices into ``S``; all
    by default), so that a fold's test stimuli do not shape the basis; every stimulus is projected.
    Padding stays zero. Returns the input unchanged when ``d <= n_components``.
    """
    d = feat.shape[-1]
    if d <= n_components:
        return feat
    fit_mask = mask
    if fit_stimuli is not None:
        fit_mask = np.zeros_like(mask)
        fit_mask[fit_stimuli] = mask[fit_stimuli]
    x = feat[fit_mask].astype(np.float64)
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    basis = vt[:n_components].T
    out = np.zeros((*feat.shape[:2], basis.shape[1]), dtype=np.float32)
    out[mask] = ((feat[mask].astype(np.float64) - mean) @ basis).astype(np.float32)
    return out


def _fold_features(st: StudyTensors, train_rows: np.ndarray, config: TrainConfig) -> StudyTensors:
    """The study tensors with token features reduced by a PCA fitted on the fold's training stimuli."""
    if not config.feature_pca_dim:
        return st
    fit = np.unique(np.asarray(st.stim_index)[train_rows])
    return replace(
        st,
        text_feat=reduce_features(st.text_feat, st.text_mask, config.feature_pca_dim, fit),
        image_feat=reduce_features(st.image_feat, st.image_mask, config.feature_pca_dim, fit),
    )


def _naive(train_y: np.ndarray, train_p: np.ndarray, test_p: np.ndarray) -> dict[str, np.ndarray]:
    k = len(ANSWER_LABELS)
    freq = np.bincount(train_y, minlength=k).astype(float)
    glob = freq / freq.sum()
    # A one-hot at the majority keeps "naive" a pure majority vote; the frequencies only break ties.
    maj = np.zeros(k)
    maj[np.argmax(freq)] = 1.0
    naive = np.tile(0.9 * maj + 0.1 * glob, (len(test_p), 1))
    df = pd.DataFrame({"p": train_p, "y": train_y})
    counts = pd.crosstab(df["p"], df["y"]).reindex(columns=range(k), fill_value=0)
    # Laplace-smoothed towards the fold's distribution, so ties and sparse participants are sane.
    per = (counts.to_numpy() + glob) / (counts.to_numpy().sum(1, keepdims=True) + 1.0)
    per_df = pd.DataFrame(per, index=counts.index)
    pp = per_df.reindex(test_p).to_numpy()
    pp = np.where(np.isnan(pp), glob, pp)
    return {"naive": naive, "naive_participant": pp}


def _trial_key(protocol: str, model: str, fold: int, sub: pd.DataFrame) -> dict[str, object]:
    """The leading columns of the predictions and attention tables for the test rows ``sub``."""
    return {
        "protocol": protocol,
        "model": model,
        "fold": np.int32(fold),
        "participant": sub["participant"].to_numpy(),
        "trial": sub["trial"].to_numpy().astype("int32"),
        "stimulus_id": sub["stimulus_id"].to_numpy(),
    }


def _pred_frame(
    protocol: str, model: str, fold: int, ex: pd.DataFrame, idx: np.ndarray, prob: np.ndarray
) -> pd.DataFrame:
    sub = ex.iloc[idx]
    df = pd.DataFrame(
        {
            **_trial_key(protocol, model, fold, sub),
            "y_true": sub["response"].to_numpy(),
            "y_pred": np.asarray(ANSWER_LABELS, dtype=object)[prob.argmax(1)],
        }
    )
    for j, c in enumerate(PROB_COLUMNS):
        df[c] = prob[:, j].astype(np.float64)
    return df


def _save(models_dir: Path | None, protocol: str, name: str, fold: int, model: nn.Module, meta: dict) -> None:
    if models_dir is None:
        return
    d = as_store_path(models_dir) / protocol / name
    state = {"state_dict": model.state_dict(), **meta}
    atomic_write(d / f"fold{fold}.pt", lambda fh: torch.save(state, fh))
    cfg = d / "config.json"
    if not cfg.exists():
        cfg_json = json.dumps({"model": name, "protocol": protocol, **meta["config"]}, indent=2, default=str)
        write_bytes_atomic(cfg_json.encode(), cfg)


def _attention_rows(
    protocol: str,
    model: str,
    fold: int,
    ex: pd.DataFrame,
    st: StudyTensors,
    idx: np.ndarray,
    attn: np.ndarray,
) -> pd.DataFrame:
    aoi = st.token_aoi[st.stim_index[idx]]
    # Alignment compares words and objects only: the AOIs a participant can dwell on by content.
    mask = np.char.startswith(aoi.astype(str), "word:") | np.char.startswith(aoi.astype(str), "obj:")
    dwell = st.dwell_tokens_ms[idx]
    al = alignment_table(dwell, attn, mask=mask)
    sub = ex.iloc[idx]
    a_renorm = np.where(mask, attn, 0.0)
    a_renorm = a_renorm / np.clip(a_renorm.sum(1, keepdims=True), 1e-12, None)
    df = pd.DataFrame(
        {
            **_trial_key(protocol, model, fold, sub),
            "aoi_ids": [list(a[m]) for a, m in zip(aoi, mask, strict=True)],
            "attention": [list(a[m].astype(float)) for a, m in zip(a_renorm, mask, strict=True)],
            "dwell_ms": [list(d[m].astype(float)) for d, m in zip(dwell, mask, strict=True)],
        }
    )
    for k, v in al.items():
        df[k] = v
    return df


def run_experiment(
    examples: pd.DataFrame,
    splits: pd.DataFrame,
    aois: pd.DataFrame,
    text_features: pd.DataFrame,
    image_features: pd.DataFrame,
    *,
    config: TrainConfig | None = None,
    models_dir: Path | str | None = None,
    stimuli: pd.DataFrame | None = None,
    truth_trials: pd.DataFrame | None = None,
    n_boot: int = 1000,
    progress: Callable[[str], None] | None = None,
) -> ExperimentResult:
    """Train and evaluate every configured model on every protocol and fold of ``splits``.

    Parameters
    ----------
    examples:
        From :func:`~pov_pipeline.models.dataset.build_training_examples`.
    splits:
        From :func:`~pov_pipeline.models.splits.make_splits` (one or both protocols concatenated).
    aois, text_features, image_features, stimuli:
        The study's AOIs and feature tables (and optionally stimuli, for mention tagging).
    config:
        :class:`TrainConfig` (defaults if omitted).
    models_dir:
        ``<lake>/models/<run_id>``; checkpoints go to ``<protocol>/<model>/fold<k>.pt`` with a
        ``config.json`` beside them. Nothing is written when ``None``.
    truth_trials:
        Generator probabilities (demo only) for the Bayes-optimal ceiling.
    n_boot:
        Bootstrap resamples of the metrics.
    progress:
        Called with a short message after each fit (logging hook).

    Returns
    -------
    ExperimentResult
    """
    from pov_pipeline.models.metrics import compute_metrics

    config = config or TrainConfig()
    t_start = time.perf_counter()
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(config.n_threads)
    ex = examples.reset_index(drop=True)
    st = build_study_tensors(
        ex, aois, text_features, image_features, stimuli=stimuli, generic_nouns=config.generic_nouns
    )
    device = select_device(config.device)
    labels = torch.as_tensor(st.labels, device=device)
    T_observed = torch.as_tensor(st.transition, device=device)
    include_self = any(
        f == t
        for fs, ts in zip(ex["trans_from"], ex["trans_to"], strict=True)
        for f, t in zip(fs, ts, strict=True)
    )
    T_shuffled = torch.as_tensor(
        transition_tensor(shuffle_fixation_order(ex, seed=config.seed + 101, include_self=include_self), st),
        device=device,
    )
    T_swapped = torch.as_tensor(st.transition[swap_partner_index(ex, seed=config.seed + 202)], device=device)
    if models_dir is not None:
        config_json = json.dumps(asdict(config), indent=2, default=str).encode()
        write_bytes_atomic(config_json, as_store_path(models_dir) / "config.json")
    key = ex[["participant", "trial"]].assign(row=np.arange(len(ex)))
    preds, attn_rows, logs, lams = [], [], [], []
    want = set(config.models)
    try:
        for protocol, sp in splits.groupby("protocol", sort=True):
            m = key.merge(sp[["participant", "trial", "fold"]], on=["participant", "trial"], how="inner")
            fold_of = np.full(len(ex), -1)
            fold_of[m["row"].to_numpy()] = m["fold"].to_numpy()
            for fold in sorted(set(m["fold"])):
                seed = config.seed + 1000 * int(fold)
                test = np.nonzero(fold_of == fold)[0]
                trval = np.nonzero((fold_of != fold) & (fold_of >= 0))[0]
                vmask = inner_validation_mask(
                    ex.iloc[trval], protocol=protocol, val_fraction=config.val_fraction, seed=seed
                )
                tr, va = trval[~vmask], trval[vmask]
                # Participant 0 is the default embedding: everyone not in the inner training set.
                vocab = {p: i + 1 for i, p in enumerate(sorted(set(ex["participant"].iloc[tr])))}
                pidx = ex["participant"].map(vocab).fillna(0).to_numpy(np.int64)
                inp = _Inputs(st, pidx, config, seed, device, T_observed)
                fold_st = _fold_features(st, tr, config)
                meta = {
                    "config": asdict(config),
                    "participants": list(vocab),
                    "stimulus_ids": st.stimulus_ids,
                    "fold": int(fold),
                }
                y = st.labels
                if "naive" in want:
                    for name, prob in _naive(
                        y[trval],
                        ex["participant"].iloc[trval].to_numpy(),
                        ex["participant"].iloc[test].to_numpy(),
                    ).items():
                        preds.append(_pred_frame(protocol, name, fold, ex, test, prob))
                val_probs: dict[str, np.ndarray] = {}
                test_probs: dict[str, np.ndarray] = {}
                for name in NEURAL_MODELS:
                    if name not in want:
                        continue
                    if name == "lstm":
                        net: nn.Module = SequenceLSTM(
                            n_participants=len(vocab) + 1, d_model=config.d_model, dropout=config.dropout
                        ).to(device)
                        fwd = inp.lstm()
                    else:
                        torch.manual_seed(seed)
                        pgmt = name == "pgmt"
                        net = _new_transformer(fold_st, len(vocab) + 1, config, pgmt=pgmt).to(device)
                        fwd = inp.transformer()
                    torch.manual_seed(seed)
                    log = fit_model(net, fwd, labels, tr, va, config, name=name, seed=seed)
                    logs.append({"protocol": protocol, "fold": int(fold), **asdict(log)})
                    val_probs[name] = predict_proba(net, fwd, va)
                    test_probs[name] = predict_proba(net, fwd, test)
                    preds.append(_pred_frame(protocol, name, fold, ex, test, test_probs[name]))
                    _save(models_dir, protocol, name, int(fold), net, meta)
                    if progress:
                        progress(
                            f"{protocol} fold {fold} {name}: {log.epochs_run} epochs, {log.seconds:.1f} s"
                        )
                    if name in ("transformer", "pgmt"):
                        a = participant_attention(net, inp, test)
                        attn_rows.append(_attention_rows(protocol, name, fold, ex, st, test, a))
                    if name == "pgmt":
                        lam = net.lam.detach().cpu().numpy()
                        for (layer, head), v in np.ndenumerate(lam):
                            lams.append(
                                {
                                    "protocol": protocol,
                                    "fold": int(fold),
                                    "layer": layer,
                                    "head": head,
                                    "lambda": float(v),
                                }
                            )
                        if config.ablations:
                            for abl, T_alt in (("pgmt_shuffled", T_shuffled), ("pgmt_swapped", T_swapped)):
                                fwd_alt = inp.transformer(T_alt)
                                model_alt = net
                                if config.retrain_ablations:
                                    torch.manual_seed(seed)
                                    model_alt = _new_transformer(
                                        fold_st, len(vocab) + 1, config, pgmt=True
                                    ).to(device)
                                    alog = fit_model(
                                        model_alt, fwd_alt, labels, tr, va, config, name=abl, seed=seed
                                    )
                                    logs.append({"protocol": protocol, "fold": int(fold), **asdict(alog)})
                                    _save(models_dir, protocol, abl, int(fold), model_alt, meta)
                                preds.append(
                                    _pred_frame(
                                        protocol, abl, fold, ex, test, predict_proba(model_alt, fwd_alt, test)
                                    )
                                )
                if "ensemble" in want and {"lstm", "transformer"} <= set(test_probs):
                    mean = 0.5 * (test_probs["lstm"] + test_probs["transformer"])
                    preds.append(_pred_frame(protocol, "ensemble_mean", fold, ex, test, mean))
                    feats_va = np.log(np.hstack([val_probs["lstm"], val_probs["transformer"]]) + 1e-6)
                    feats_te = np.log(np.hstack([test_probs["lstm"], test_probs["transformer"]]) + 1e-6)
                    if len(np.unique(y[va])) > 1:
                        lr = LogisticRegression(C=1.0, max_iter=1000).fit(feats_va, y[va])
                        stacked = np.zeros((len(test), len(ANSWER_LABELS)))
                        stacked[:, lr.classes_] = lr.predict_proba(feats_te)
                    else:
                        stacked = mean
                    preds.append(_pred_frame(protocol, "ensemble_stacked", fold, ex, test, stacked))
    finally:
        torch.set_num_threads(prev_threads)
    predictions = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()
    metrics = compute_metrics(predictions, truth_trials, n_boot=n_boot, seed=config.seed)
    attention = pd.concat(attn_rows, ignore_index=True) if attn_rows else pd.DataFrame()
    if len(attention):
        from pov_pipeline.models.metrics import alignment_metrics

        metrics = pd.concat(
            [metrics, alignment_metrics(attention, n_boot=n_boot, seed=config.seed)], ignore_index=True
        )
    return ExperimentResult(
        predictions=predictions,
        metrics=metrics,
        attention=attention,
        training_log=pd.DataFrame(logs),
        lambdas=pd.DataFrame(lams),
        config=asdict(config),
        seconds=time.perf_counter() - t_start,
    )
