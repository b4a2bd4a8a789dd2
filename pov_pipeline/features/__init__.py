"""Text and image feature caches for the stimuli (pure layer: no Dagster).

* :func:`encode_text_features`: caption word vectors aligned to word AOIs + a sentence vector
  (default: pip-packaged all-MiniLM-L6-v2, 384-d).
* :func:`encode_image_features`: CNN feature grid per image, pooled per object AOI + a global
  vector (default: pip-packaged EfficientNet-Lite0, 1280-d; or a local transformers ResNet).

Both run offline only (:class:`ModelNotFoundError` explains what is missing) and keep their
outputs in a content-addressed Parquet cache, so re-running with unchanged stimuli runs no forward
pass.
"""

from __future__ import annotations

from pov_pipeline.features.image import (
    ImageEncoderConfig,
    encode_image_features,
    image_feature_grids,
    load_image_encoder,
)
from pov_pipeline.features.resolve import ModelNotFoundError
from pov_pipeline.features.roi import ImagePlacement, aoi_mask, mask_to_grid, roi_pool
from pov_pipeline.features.schemas import (
    GLOBAL_AOI,
    IMAGE_FEATURE_GRIDS,
    SENTENCE_AOI,
    image_features_schema,
    text_features_schema,
)
from pov_pipeline.features.text import (
    TextEncoderConfig,
    caption_words,
    encode_text_features,
    load_text_encoder,
)
from pov_pipeline.store import StorePath, as_store_path


def feature_cache_dir(lake_dir: StorePath | str, encoder_kind: str) -> StorePath:
    """The lake's cache folder of one encoder kind: ``<lake>/cache/features/<encoder_kind>``.

    ``lake_dir`` may be an object-store URL or ``UPath``; the result is then one too.
    """
    return as_store_path(lake_dir) / "cache" / "features" / encoder_kind


__all__ = [
    "GLOBAL_AOI",
    "IMAGE_FEATURE_GRIDS",
    "SENTENCE_AOI",
    "ImageEncoderConfig",
    "ImagePlacement",
    "ModelNotFoundError",
    "TextEncoderConfig",
    "aoi_mask",
    "caption_words",
    "encode_image_features",
    "encode_text_features",
    "feature_cache_dir",
    "image_feature_grids",
    "image_features_schema",
    "load_image_encoder",
    "load_text_encoder",
    "mask_to_grid",
    "roi_pool",
    "text_features_schema",
]
