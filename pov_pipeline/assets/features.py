"""Feature-cache assets: caption word vectors and image-object vectors for every stimulus.

Encoders are the most expensive step, so the pure layer keeps a content-addressed cache under
``<lake>/cache/features/``: unchanged stimuli cost no forward pass on re-materialization.
"""

import pandas as pd
import pyarrow as pa
import pydantic
from dagster import AssetExecutionContext, Config, MetadataValue, Output, asset

from pov_pipeline.accel import accelerator_tags
from pov_pipeline.features import (
    ImageEncoderConfig,
    TextEncoderConfig,
    encode_image_features,
    encode_text_features,
    feature_cache_dir,
)
from pov_pipeline.resources import LakeResource
from pov_pipeline.store import mirrored, stage

#: Encoders gain from a GPU: their steps carry the routing tags (see ``pov_pipeline.accel``).
GPU_OP_TAGS = accelerator_tags(gpu_capable=True)


class TextFeaturesConfig(Config):
    """The caption encoder. ``model_dir`` empty → the packaged all-MiniLM-L6-v2 (BERT, 384-d)."""

    model_dir: str | None = pydantic.Field(default=None, description="local transformers model folder")
    max_length: int = 64
    batch_size: int = 32
    device: str = pydantic.Field(default="auto", description="auto | cpu | cuda")
    mixed_precision: str = pydantic.Field(
        default="auto", description="auto (bf16 autocast on CUDA, float32 on CPU) | off | bf16 | fp16"
    )
    num_threads: int | None = None


class ImageFeaturesConfig(Config):
    """The image encoder: packaged EfficientNet-Lite0 (ImageNet) or a local transformers ResNet."""

    kind: str = pydantic.Field(default="efficientnet_lite0", description="efficientnet_lite0 | resnet")
    model_dir: str | None = pydantic.Field(default=None, description="ResNet folder (save_pretrained layout)")
    image_size_px: int = 224
    batch_size: int = 16
    device: str = pydantic.Field(default="auto", description="auto | cpu | cuda")
    mixed_precision: str = pydantic.Field(
        default="auto", description="auto (bf16 autocast on CUDA, float32 on CPU) | off | bf16 | fp16"
    )
    num_threads: int | None = None


def _progress(context: AssetExecutionContext, what: str):
    def report(done: int, total: int) -> None:
        if total and (done == total or done % max(1, total // 10) == 0):
            context.log.info(f"{what}: {done}/{total}")

    return report


def _stats_metadata(stats: dict) -> dict:
    keep = (
        "encoded",
        "reused",
        "encoder_id",
        "weights_sha256",
        "pretrained",
        "device",
        "compute_dtype",
        "seconds",
        "dim",
        "model_source",
        "model_path",
    )
    metadata = {key: stats[key] for key in keep if key in stats}
    metadata["seconds"] = round(float(metadata.get("seconds", 0.0)), 3)
    return {key: (MetadataValue.text(str(v)) if isinstance(v, str) else v) for key, v in metadata.items()}


@asset(group_name="features", io_manager_key="lake_io_manager", code_version="1", op_tags=GPU_OP_TAGS)
def text_features(
    context: AssetExecutionContext,
    config: TextFeaturesConfig,
    lake: LakeResource,
    stimuli: pd.DataFrame,
    aois: pd.DataFrame,
) -> Output[pa.Table]:
    """One vector per caption word AOI (word pieces mean-pooled) plus a sentence vector per caption."""
    encoder = TextEncoderConfig(**config.model_dump())
    with mirrored(feature_cache_dir(lake.paths.root, "text")) as cache_dir:
        table, stats = encode_text_features(
            stimuli, aois, encoder, cache_dir, progress=_progress(context, "captions")
        )
    return Output(table, metadata={"n_rows": table.num_rows, **_stats_metadata(stats)})


@asset(group_name="features", io_manager_key="lake_io_manager", code_version="1", op_tags=GPU_OP_TAGS)
def image_features(
    context: AssetExecutionContext,
    config: ImageFeaturesConfig,
    lake: LakeResource,
    stimuli: pd.DataFrame,
    aois: pd.DataFrame,
) -> Output[pa.Table]:
    """One vector per image-object AOI (RoI-pooled from the CNN grid) plus a global vector per image."""
    encoder = ImageEncoderConfig(**config.model_dump())
    with mirrored(feature_cache_dir(lake.paths.root, "image")) as cache_dir:
        table, stats = encode_image_features(
            stimuli, aois, stage(lake.paths.study), encoder, cache_dir, progress=_progress(context, "images")
        )
    return Output(table, metadata={"n_rows": table.num_rows, **_stats_metadata(stats)})
