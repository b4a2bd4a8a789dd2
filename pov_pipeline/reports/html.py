"""Self-contained HTML evaluation report (plots are PNGs embedded as base64 data URIs)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pov_pipeline.atomic import write_bytes_atomic
from pov_pipeline.schemas import ANSWER_LABELS
from pov_pipeline.store import as_store_path

_MODEL_ORDER = (
    "naive",
    "naive_participant",
    "lstm",
    "transformer",
    "pgmt",
    "pgmt_shuffled",
    "pgmt_swapped",
    "ensemble_mean",
    "ensemble_stacked",
    "bayes_optimal",
)


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}"/>'


def _order(models: list[str]) -> list[str]:
    rank = {m: i for i, m in enumerate(_MODEL_ORDER)}
    return sorted(models, key=lambda m: (rank.get(m, len(rank)), m))


def plot_model_comparison(metrics: pd.DataFrame, metric: str = "accuracy") -> str:
    """Bar chart with 95 % CIs of ``metric`` per model, one panel per protocol (an ``<img>`` tag)."""
    m = metrics[metrics["metric"] == metric]
    protocols = sorted(m["protocol"].unique())
    fig, axes = plt.subplots(
        1, max(len(protocols), 1), figsize=(5.5 * max(len(protocols), 1), 3.6), squeeze=False
    )
    for ax, protocol in zip(axes[0], protocols, strict=False):
        d = m[m["protocol"] == protocol].set_index("model")
        models = _order(list(d.index))
        v = d.loc[models, "value"].to_numpy()
        err = np.vstack([v - d.loc[models, "ci_low"].to_numpy(), d.loc[models, "ci_high"].to_numpy() - v])
        colors = [
            "#999999" if mm == "bayes_optimal" else "#4c72b0" if mm.startswith("pgmt") else "#55a868"
            for mm in models
        ]
        ax.bar(range(len(models)), v, yerr=np.nan_to_num(err), color=colors, capsize=3)
        ax.set_xticks(range(len(models)), models, rotation=45, ha="right")
        ax.set_title(protocol)
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1)
    return _png(fig)


def plot_confusions(predictions: pd.DataFrame, protocol: str, models: list[str]) -> str:
    """Row-normalised confusion matrices of ``models`` under ``protocol``."""
    k = len(ANSWER_LABELS)
    code = {lab: i for i, lab in enumerate(ANSWER_LABELS)}
    fig, axes = plt.subplots(1, len(models), figsize=(2.6 * len(models) + 0.6, 3.0), squeeze=False)
    for index, (ax, model) in enumerate(zip(axes[0], models, strict=True)):
        pm = predictions[(predictions["protocol"] == protocol) & (predictions["model"] == model)]
        M = np.zeros((k, k))
        np.add.at(M, (pm["y_true"].map(code).to_numpy(), pm["y_pred"].map(code).to_numpy()), 1)
        R = M / np.clip(M.sum(1, keepdims=True), 1, None)
        ax.imshow(R, vmin=0, vmax=1, cmap="Blues")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(M[i, j])}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(k), ANSWER_LABELS)
        ax.set_yticks(range(k), ANSWER_LABELS if index == 0 else [])
        ax.set_xlabel("predicted")
        if index == 0:  # one shared y label; repeated ones overlap the neighbouring panel
            ax.set_ylabel("answered")
        ax.set_title(model, fontsize=9)
    return _png(fig)


def plot_per_participant(predictions: pd.DataFrame, protocol: str, models: list[str]) -> str:
    """Per-participant accuracy (one dot per participant) for ``models``."""
    pm = predictions[(predictions["protocol"] == protocol) & predictions["model"].isin(models)]
    acc = (pm["y_true"] == pm["y_pred"]).groupby([pm["model"], pm["participant"]]).mean()
    fig, ax = plt.subplots(figsize=(1.2 * len(models) + 2, 3.2))
    rng = np.random.default_rng(0)
    for i, model in enumerate(models):
        if model not in acc.index.get_level_values(0):
            continue
        v = acc.loc[model].to_numpy()
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=8, alpha=0.6)
        ax.hlines(v.mean(), i - 0.3, i + 0.3, color="k")
    ax.set_xticks(range(len(models)), models, rotation=45, ha="right")
    ax.set_ylabel("accuracy per participant")
    ax.set_ylim(0, 1)
    ax.set_title(protocol)
    return _png(fig)


def plot_transition_heatmap(trans_from: list[str], trans_to: list[str], prob: list[float], title: str) -> str:
    """Heatmap of one trial's row-normalised AOI transition probabilities."""
    aois = sorted(set(trans_from) | set(trans_to))
    idx = {a: i for i, a in enumerate(aois)}
    M = np.zeros((len(aois), len(aois)))
    if aois:
        M[[idx[a] for a in trans_from], [idx[b] for b in trans_to]] = prob
    fig, ax = plt.subplots(figsize=(0.35 * len(aois) + 2.5, 0.35 * len(aois) + 2.0))
    im = ax.imshow(M, vmin=0, vmax=1, cmap="magma")
    ax.set_xticks(range(len(aois)), aois, rotation=90, fontsize=7)
    ax.set_yticks(range(len(aois)), aois, fontsize=7)
    ax.set_xlabel("to AOI")
    ax.set_ylabel("from AOI")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def plot_scanpath(
    hits: pd.DataFrame,
    aois: pd.DataFrame | None,
    title: str,
    image_path: Path | None = None,
    image_box_px: tuple[float, float, float, float] | None = None,
) -> str:
    """Fixations (circles ∝ duration, numbered) over the stimulus image and its AOI boxes.

    ``image_box_px`` = (left, top, width, height) of the picture on the screen (screen px, like the
    fixations); without it the picture is drawn at the screen origin.
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    if image_path is not None and Path(image_path).is_file():
        from PIL import Image

        img = Image.open(image_path)
        left, top, w, h = image_box_px or (0.0, 0.0, float(img.width), float(img.height))
        ax.imshow(img, extent=(left, left + w, top + h, top))
    if aois is not None and len(aois):
        for r in aois.itertuples():
            color = "tab:red" if getattr(r, "is_central", False) else "tab:gray"
            ax.add_patch(
                plt.Rectangle(
                    (r.x0_px, r.y0_px), r.x1_px - r.x0_px, r.y1_px - r.y0_px, fill=False, ec=color, lw=0.8
                )
            )
            ax.text(r.x0_px, r.y0_px, str(r.label), fontsize=6, color=color, va="bottom")
    h = hits.sort_values("event_index")
    ax.plot(h["x_px"], h["y_px"], "-", color="tab:blue", lw=0.8, alpha=0.7)
    ax.scatter(h["x_px"], h["y_px"], s=np.clip(h["duration_ms"], 20, 1000) / 3, alpha=0.5, color="tab:blue")
    for k, r in enumerate(h.itertuples()):
        ax.text(r.x_px, r.y_px, str(k + 1), fontsize=7, ha="center", va="center")
    # Screen coordinates: y grows downwards (imshow with a top-down extent may already have flipped it).
    y_low, y_high = sorted(ax.get_ylim())
    ax.set_ylim(y_high, y_low)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    return _png(fig)


def plot_attention_vs_dwell(row: pd.Series, title: str) -> str:
    """Model attention and dwell share over one trial's word/object AOIs."""
    aois = list(row["aoi_ids"])
    att = np.asarray(row["attention"], dtype=float)
    dwell = np.asarray(row["dwell_ms"], dtype=float)
    dwell = dwell / dwell.sum() if dwell.sum() > 0 else dwell
    x = np.arange(len(aois))
    fig, ax = plt.subplots(figsize=(0.35 * len(aois) + 2.5, 2.8))
    ax.bar(x - 0.2, dwell, 0.4, label="dwell share")
    ax.bar(x + 0.2, att, 0.4, label="attention (participant token, last layer)")
    ax.set_xticks(x, aois, rotation=90, fontsize=7)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0, classes="t")


def headline_markdown(metrics: pd.DataFrame) -> str:
    """Markdown table of accuracy (95 % CI) and macro-F1 per protocol and model, plus PGMT's paired gain."""
    lines = [
        "| protocol | model | accuracy (95 % CI) | macro-F1 | Δ acc vs transformer (95 % CI) |",
        "|---|---|---|---|---|",
    ]
    if metrics is None or not len(metrics):
        return "\n".join(lines)
    for protocol, pm in metrics.groupby("protocol", sort=True):
        idx = pm.set_index(["model", "metric"])
        for model in _order(list(pm["model"].unique())):
            if (model, "accuracy") not in idx.index:
                continue
            a = idx.loc[(model, "accuracy")]
            f = idx.loc[(model, "macro_f1")]["value"] if (model, "macro_f1") in idx.index else np.nan
            key = (model, "delta_accuracy_vs_transformer")
            d = idx.loc[key] if key in idx.index else None
            dtxt = f"{d['value']:+.3f} ({d['ci_low']:+.3f}, {d['ci_high']:+.3f})" if d is not None else "—"
            acc = f"{a['value']:.3f} ({a['ci_low']:.3f}–{a['ci_high']:.3f})"
            lines.append(f"| {protocol} | {model} | {acc} | {f:.3f} | {dtxt} |")
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}
table.t{border-collapse:collapse;font-size:13px}
table.t td,table.t th{padding:2px 8px;border-bottom:1px solid #ddd}
h2{border-bottom:2px solid #4c72b0;padding-bottom:4px}img{max-width:100%}.meta td{padding:1px 10px}
"""


def render_report(
    metrics: pd.DataFrame,
    predictions: pd.DataFrame,
    out_path: Path | str,
    *,
    attention: pd.DataFrame | None = None,
    examples: pd.DataFrame | None = None,
    aoi_hits: pd.DataFrame | None = None,
    aois: pd.DataFrame | None = None,
    stimuli: pd.DataFrame | None = None,
    images_dir: Path | str | None = None,
    metadata: Mapping[str, object] | None = None,
    lambdas: pd.DataFrame | None = None,
    n_example_trials: int = 2,
    title: str = "pov_pipeline evaluation report",
) -> Path:
    """Write a self-contained HTML report and return its path.

    Parameters
    ----------
    metrics, predictions:
        From :func:`~pov_pipeline.models.metrics.compute_metrics` and the experiment.
    out_path:
        Target file; written atomically (temporary name, then rename).
    attention:
        ``ExperimentResult.attention`` (attention vs dwell panels).
    examples:
        Training examples (transition heatmaps of the example trials).
    aoi_hits, aois, stimuli, images_dir:
        Fixations with positions, the AOI table, the stimuli table (image placement) and the folder
        with ``<stimulus_id>.png`` (scanpaths).
    metadata:
        Facts to print verbatim: dataset, sizes, encoders and whether their weights were pretrained,
        seeds, run id, ... (keys and values are shown as given).
    lambdas:
        Learned PGMT ``λ`` per (protocol, fold, layer, head).
    n_example_trials:
        Example trials shown with scanpath, transitions and attention.
    """
    out_path = as_store_path(out_path)  # a folder path or an object-store URL
    parts = [f"<h1>{html.escape(title)}</h1>"]
    meta = dict(metadata or {})
    if len(predictions):
        meta.setdefault("participants evaluated", int(predictions["participant"].nunique()))
        meta.setdefault(
            "trials evaluated per model", int(predictions.groupby(["protocol", "model"]).size().max())
        )
        meta.setdefault("protocols", ", ".join(sorted(predictions["protocol"].unique())))
        meta.setdefault("folds", int(predictions["fold"].nunique()))
    parts.append("<h2>Run</h2><table class='meta'>")
    parts += [
        f"<tr><td><b>{html.escape(str(k))}</b></td><td>{html.escape(str(v))}</td></tr>"
        for k, v in meta.items()
    ]
    parts.append("</table>")

    parts.append(
        "<h2>Model comparison</h2><p>Bars: point estimate; whiskers: 95 % bootstrap CI over participants.</p>"
    )
    if len(metrics):
        parts.append(plot_model_comparison(metrics, "accuracy"))
        parts.append(plot_model_comparison(metrics, "macro_f1"))
        main = metrics[
            metrics["metric"].isin(
                ["accuracy", "macro_f1", "delta_accuracy_vs_transformer", "expected_accuracy"]
            )
        ]
        parts.append(_table(main.sort_values(["protocol", "metric", "model"])))
        align = metrics[metrics["metric"].str.startswith("align_")]
        if len(align):
            parts.append(
                "<h3>Attention–dwell alignment</h3><p>Participant-token attention of the last layer (mean "
                "over heads) vs. the participant's dwell share over caption-word and object AOIs.</p>"
            )
            parts.append(_table(align.sort_values(["protocol", "metric", "model"])))
    if lambdas is not None and len(lambdas):
        lam = lambdas.groupby(["protocol", "layer", "head"])["lambda"].agg(["mean", "std"]).reset_index()
        parts.append("<h3>Learned PGMT λ (mean over folds)</h3>" + _table(lam))

    for protocol in sorted(predictions["protocol"].unique()) if len(predictions) else []:
        models = _order(list(predictions.loc[predictions["protocol"] == protocol, "model"].unique()))
        shown = [
            m
            for m in models
            if m in ("naive", "lstm", "transformer", "pgmt", "ensemble_mean", "bayes_optimal")
        ] or models
        parts.append(f"<h2>{html.escape(protocol)}</h2><h3>Confusion matrices</h3>")
        parts.append(plot_confusions(predictions, protocol, shown))
        parts.append("<h3>Per-participant accuracy</h3>")
        parts.append(plot_per_participant(predictions, protocol, models))

    if attention is not None and len(attention):
        parts.append("<h2>Example trials</h2>")
        sel = attention[attention["model"] == "pgmt"] if (attention["model"] == "pgmt").any() else attention
        sel = sel.sort_values(["protocol", "participant", "trial"]).head(n_example_trials)
        for r in sel.itertuples(index=False):
            row = pd.Series(r._asdict())
            label = f"{r.participant} trial {r.trial} ({r.stimulus_id}, {r.protocol})"
            parts.append(f"<h3>{html.escape(label)}</h3>")
            if aoi_hits is not None:
                h = aoi_hits[(aoi_hits["participant"] == r.participant) & (aoi_hits["trial"] == r.trial)]
                a = aois[aois["stimulus_id"] == r.stimulus_id] if aois is not None else None
                img = Path(images_dir) / f"{r.stimulus_id}.png" if images_dir is not None else None
                box = None
                if stimuli is not None and (stimuli["stimulus_id"] == r.stimulus_id).any():
                    st = stimuli[stimuli["stimulus_id"] == r.stimulus_id].iloc[0]
                    box = tuple(
                        float(st[c])
                        for c in ("image_left_px", "image_top_px", "image_width_px", "image_height_px")
                    )
                if len(h):
                    parts.append(plot_scanpath(h, a, f"scanpath {label}", img, box))
            if examples is not None:
                e = examples[(examples["participant"] == r.participant) & (examples["trial"] == r.trial)]
                if len(e):
                    e0 = e.iloc[0]
                    parts.append(
                        plot_transition_heatmap(
                            list(e0["trans_from"]),
                            list(e0["trans_to"]),
                            list(e0["trans_prob"]),
                            f"transitions {label}",
                        )
                    )
            parts.append(plot_attention_vs_dwell(row, f"{r.model}: attention vs dwell, {label}"))

    doc = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + f"</title><style>{_CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    return write_bytes_atomic(doc.encode("utf-8"), out_path)
