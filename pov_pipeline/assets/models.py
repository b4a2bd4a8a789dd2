"""Model assets: training examples → splits → models → predictions and metrics → report.

The pure work lives in ``pov_pipeline.models`` and ``pov_pipeline.reports``; these assets load
the tables, call it, and record what was trained on which participants.
"""

import dataclasses
import re
from collections.abc import Iterator

import pandas as pd
import pydantic
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    Config,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)

from pov_pipeline.accel import accelerator_tags
from pov_pipeline.models import PROTOCOLS, TrainConfig, build_training_examples, make_splits, run_experiment
from pov_pipeline.models.dataset import GENERIC_NOUNS
from pov_pipeline.reports import headline_markdown, render_report
from pov_pipeline.resources import LakeResource
from pov_pipeline.store import stage

GROUP = "models"


@multi_asset(
    outs={
        "training_examples": AssetOut(
            io_manager_key="lake_io_manager",
            description="One row per (participant, trial): answer, AOI sequence with dwell, "
            "transitions, feature references.",
        ),
        "excluded_trials": AssetOut(
            io_manager_key="lake_io_manager",
            description="Trials left out of training, each with the reason (no silent drop).",
        ),
    },
    group_name=GROUP,
    code_version="1",
)
def build_examples(
    context: AssetExecutionContext,
    responses: pd.DataFrame,
    aoi_sequences: pd.DataFrame,
    transitions: pd.DataFrame,
    aois: pd.DataFrame,
    stimuli: pd.DataFrame,
    text_features: pd.DataFrame,
    image_features: pd.DataFrame,
) -> Iterator[Output]:
    examples, excluded = build_training_examples(
        responses, aoi_sequences, transitions, aois, text_features, image_features, stimuli=stimuli
    )
    participants = sorted(set(responses["participant"]))
    reasons = excluded["reason"].value_counts().to_dict() if len(excluded) else {}
    context.log.info(f"{len(examples):,} examples from {len(participants)} participants; excluded {reasons}")
    yield Output(
        examples,
        output_name="training_examples",
        metadata={
            "n_examples": len(examples),
            "participants": MetadataValue.json(participants),
            "answers": MetadataValue.json(
                examples["response"].value_counts().to_dict() if len(examples) else {}
            ),
        },
    )
    yield Output(
        excluded,
        output_name="excluded_trials",
        metadata={"n_excluded": len(excluded), "reasons": MetadataValue.json(reasons)},
    )


class SplitConfig(Config):
    """Cross-validation folds; both protocols are always built."""

    n_folds: int = 5
    seed: int = 0


@asset(group_name=GROUP, io_manager_key="lake_io_manager", code_version="1")
def splits(config: SplitConfig, training_examples: pd.DataFrame) -> Output[pd.DataFrame]:
    """Test-fold assignment per protocol: ``unseen_participants`` (grouped by participant) and
    ``unseen_stimuli`` (grouped by stimulus, every participant seen in training)."""
    n_participants = training_examples["participant"].nunique()
    n_stimuli = training_examples["stimulus_id"].nunique()
    parts = []
    for protocol in PROTOCOLS:
        groups = n_participants if protocol == "unseen_participants" else n_stimuli
        parts.append(
            make_splits(
                training_examples, protocol=protocol, n_folds=min(config.n_folds, groups), seed=config.seed
            )
        )
    table = pd.concat(parts, ignore_index=True)
    return Output(
        table, metadata={"protocols": MetadataValue.json(list(PROTOCOLS)), "n_folds": config.n_folds}
    )


class TrainingConfig(Config):
    """Training hyper-parameters (AdamW, cross-entropy, early stopping on an inner validation split)."""

    seed: int = 0
    epochs: int = 20
    patience: int = 3
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-2
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    feature_pca_dim: int = pydantic.Field(
        default=16,
        ge=0,
        description="principal components kept of the text/image token features, fitted per fold on "
        "the training stimuli (0: whole vectors)",
    )
    models: list[str] = pydantic.Field(
        default_factory=lambda: ["naive", "lstm", "transformer", "pgmt", "ensemble"]
    )
    generic_nouns: list[str] = pydantic.Field(
        default_factory=lambda: sorted(GENERIC_NOUNS),
        description="nouns that stand for an unnamed object ('Something is on the table'); in a caption "
        "naming none of its objects they mention the central object ([] switches this off)",
    )
    ablations: bool = pydantic.Field(
        default=True, description="PGMT with shuffled fixation order / swapped transitions"
    )
    n_boot: int = pydantic.Field(default=1000, description="bootstrap resamples (participants) for the CIs")
    n_threads: int = 1
    device: str = pydantic.Field(default="auto", description="auto (CUDA when present) | cpu | cuda")
    mixed_precision: str = pydantic.Field(
        default="auto", description="auto (bf16 autocast on CUDA, float32 on CPU) | off | bf16"
    )

    def to_train_config(self, n_folds: int) -> TrainConfig:
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        values = {k: v for k, v in self.model_dump().items() if k in fields}
        values["models"] = tuple(values["models"])
        values["generic_nouns"] = tuple(values["generic_nouns"])
        values["feature_pca_dim"] = values["feature_pca_dim"] or None
        return TrainConfig(n_folds=n_folds, **values)


def _run_slug(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "", run_id)[:36] or "run"


@multi_asset(
    outs={
        "predictions": AssetOut(
            io_manager_key="lake_io_manager",
            description="Per model, protocol, fold and test trial: predicted class and probabilities.",
        ),
        "metrics": AssetOut(
            io_manager_key="lake_io_manager",
            description="Long table: protocol, model, metric, value, ci_low, ci_high.",
        ),
        "model_attention": AssetOut(
            io_manager_key="lake_io_manager",
            description="Attention mass over AOI tokens vs the participant's dwell, per test trial.",
        ),
        "training_log": AssetOut(
            io_manager_key="lake_io_manager", description="One row per fit: epochs, losses, seconds."
        ),
    },
    group_name=GROUP,
    code_version="3",
    op_tags=accelerator_tags(gpu_capable=True),
)
def train_models(
    context: AssetExecutionContext,
    config: TrainingConfig,
    lake: LakeResource,
    training_examples: pd.DataFrame,
    splits: pd.DataFrame,
    aois: pd.DataFrame,
    stimuli: pd.DataFrame,
    text_features: pd.DataFrame,
    image_features: pd.DataFrame,
    truth_trials: pd.DataFrame,
) -> Iterator[Output]:
    n_folds = int(splits["fold"].max()) + 1 if len(splits) else 1
    models_dir = lake.paths.models / _run_slug(context.run_id)
    result = run_experiment(
        training_examples,
        splits,
        aois,
        text_features,
        image_features,
        config=config.to_train_config(n_folds),
        models_dir=models_dir,
        stimuli=stimuli,
        truth_trials=truth_trials if len(truth_trials) else None,
        n_boot=config.n_boot,
        progress=context.log.info,
    )
    headline = headline_markdown(result.metrics)
    yield Output(
        result.predictions,
        output_name="predictions",
        metadata={"n_rows": len(result.predictions), "models_dir": MetadataValue.path(str(models_dir))},
    )
    yield Output(
        result.metrics,
        output_name="metrics",
        metadata={"headline": MetadataValue.md(headline), "seconds": round(result.seconds, 1)},
    )
    yield Output(result.attention, output_name="model_attention", metadata={"n_rows": len(result.attention)})
    yield Output(
        result.training_log, output_name="training_log", metadata={"n_fits": len(result.training_log)}
    )


def _encoder_facts(context: AssetExecutionContext, asset_name: str) -> str:
    """One line naming the encoder that produced a feature table, from its materialization."""
    event = context.instance.get_latest_materialization_event(AssetKey(asset_name))
    if event is None or event.asset_materialization is None:
        return "unknown (no materialization recorded)"
    metadata = {key: value.value for key, value in event.asset_materialization.metadata.items()}
    pretrained = "pretrained weights" if metadata.get("pretrained") else "weights not marked pretrained"
    return (
        f"{metadata.get('encoder_id', '?')} ({pretrained}, from {metadata.get('model_source', '?')}, "
        f"weights sha256 {str(metadata.get('weights_sha256', '?'))[:16]}…)"
    )


@asset(group_name=GROUP, code_version="1")
def eval_report(
    context: AssetExecutionContext,
    lake: LakeResource,
    metrics: pd.DataFrame,
    predictions: pd.DataFrame,
    model_attention: pd.DataFrame,
    training_examples: pd.DataFrame,
    aoi_hits: pd.DataFrame,
    aois: pd.DataFrame,
    stimuli: pd.DataFrame,
) -> MaterializeResult:
    """Self-contained HTML report: model comparison with CIs, confusions, per-participant accuracy,
    transition heatmaps, scanpaths, attention vs dwell."""
    participants = sorted(set(training_examples["participant"]))
    facts = {
        "dataset": f"{lake.paths.root}",
        "participants": f"{len(participants)} ({', '.join(participants[:12])}"
        f"{' …' if len(participants) > 12 else ''})",
        "stimuli": stimuli["stimulus_id"].nunique(),
        "trials used": len(training_examples),
        "protocols": ", ".join(sorted(set(metrics["protocol"]))) if len(metrics) else "",
        "text encoder": _encoder_facts(context, "text_features"),
        "image encoder": _encoder_facts(context, "image_features"),
        "dagster run": context.run_id,
    }
    out_path = lake.paths.reports / _run_slug(context.run_id) / "report.html"
    render_report(
        metrics,
        predictions,
        out_path,
        attention=model_attention,
        examples=training_examples,
        aoi_hits=aoi_hits,
        aois=aois,
        stimuli=stimuli,
        images_dir=stage(lake.paths.study) / "images",
        metadata=facts,
    )
    html = out_path.read_text(encoding="utf-8")
    first_plot = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    plot_md = ""
    if first_plot:
        plot_md = f"\n\n![model comparison](data:image/png;base64,{first_plot.group(1)})"
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(out_path)),
            "participants": MetadataValue.json(participants),
            "headline": MetadataValue.md(headline_markdown(metrics) + plot_md),
        }
    )
