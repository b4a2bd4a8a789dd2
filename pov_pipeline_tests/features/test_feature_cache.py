"""Content-addressed cache: what re-runs encode, counted by a spy on the encoders' forward pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import object_aois, save_tiny_bert, write_study
from PIL import Image

from pov_pipeline.features import (
    ImageEncoderConfig,
    TextEncoderConfig,
    encode_image_features,
    encode_text_features,
)
from pov_pipeline.features.image import ImageEncoder
from pov_pipeline.features.resolve import file_sha256
from pov_pipeline.features.text import TextEncoder


class Spy:
    """Counts forward passes and the items that went through them."""

    def __init__(self) -> None:
        self.calls = 0
        self.items = 0

    def reset(self) -> None:
        self.calls = self.items = 0


@pytest.fixture
def text_spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy()
    original = TextEncoder._forward

    def counting(self, inputs):
        spy.calls += 1
        spy.items += int(inputs["input_ids"].shape[0])
        return original(self, inputs)

    monkeypatch.setattr(TextEncoder, "_forward", counting)
    return spy


@pytest.fixture
def image_spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy()
    original = ImageEncoder._forward

    def counting(self, pixels):
        spy.calls += 1
        spy.items += int(pixels.shape[0])
        return original(self, pixels)

    monkeypatch.setattr(ImageEncoder, "_forward", counting)
    return spy


def _captions(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stimulus_id": [f"s{i}" for i in range(n)],
            "caption": [f"the dog sat on {i} mats" for i in range(n)],
        }
    )


def _vectors(table) -> np.ndarray:
    return np.stack(table.column("vector").to_pylist())


def test_text_cache_reuse_addition_and_invalidation(
    tiny_bert_dir: Path, tmp_path: Path, text_spy: Spy
) -> None:
    cache = tmp_path / "cache"
    cfg = TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu", batch_size=8)
    first, s = encode_text_features(_captions(3), None, cfg, cache)
    assert (text_spy.items, s["encoded"], s["reused"]) == (3, 3, 0)

    text_spy.reset()
    again, s = encode_text_features(_captions(3), None, cfg, cache)
    assert text_spy.calls == 0 and (s["encoded"], s["reused"], s["forward_passes"]) == (0, 3, 0)
    assert again.equals(first)

    text_spy.reset()
    _, s = encode_text_features(_captions(4), None, cfg, cache)
    assert text_spy.items == 1 and (s["encoded"], s["reused"]) == (1, 3)

    text_spy.reset()
    edited = _captions(4)
    edited.loc[2, "caption"] = "a red ball"
    _, s = encode_text_features(edited, None, cfg, cache)
    assert text_spy.items == 1 and s["encoded"] == 1

    text_spy.reset()
    _, s = encode_text_features(
        _captions(4), None, TextEncoderConfig(**{**cfg.__dict__, "max_length": 32}), cache
    )
    assert text_spy.items == 4 and s["encoded"] == 4

    # Batch size and device do not change the vectors, so they are not part of the key.
    text_spy.reset()
    _, s = encode_text_features(
        _captions(4), None, TextEncoderConfig(**{**cfg.__dict__, "batch_size": 1}), cache
    )
    assert text_spy.calls == 0 and s["reused"] == 4


def test_text_cache_other_weights_reencode_everything(
    tiny_bert_dir: Path, tmp_path: Path, text_spy: Spy
) -> None:
    cache = tmp_path / "cache"
    other = save_tiny_bert(tmp_path / "bert_seed1", seed=1)
    # Same folder name, different weights: only the weights hash tells them apart.
    same_name = save_tiny_bert(tmp_path / "x" / tiny_bert_dir.name, seed=2)
    base, s0 = encode_text_features(
        _captions(2), None, TextEncoderConfig(model_dir=str(tiny_bert_dir)), cache
    )
    for model_dir in (other, same_name):
        text_spy.reset()
        t, s = encode_text_features(_captions(2), None, TextEncoderConfig(model_dir=str(model_dir)), cache)
        assert text_spy.items == 2 and s["encoded"] == 2
        assert s["weights_sha256"] != s0["weights_sha256"]
        assert not np.allclose(
            np.stack(t.column("vector").to_pylist()), np.stack(base.column("vector").to_pylist())
        )


def test_cache_writes_are_atomic_and_corrupt_entries_are_recomputed(
    tiny_bert_dir: Path, tmp_path: Path, text_spy: Spy
) -> None:
    cache = tmp_path / "cache"
    cfg = TextEncoderConfig(model_dir=str(tiny_bert_dir))
    table, _ = encode_text_features(_captions(2), None, cfg, cache)
    entries = sorted((cache / "text").rglob("*.parquet"))
    assert len(entries) == 2
    assert not list(cache.rglob("*.tmp"))
    key = table.column("cache_key")[0].as_py()
    entry = next(p for p in entries if p.stem == key)
    entry.write_bytes(b"not parquet")
    text_spy.reset()
    again, s = encode_text_features(_captions(2), None, cfg, cache)
    assert text_spy.items == 1 and (s["encoded"], s["reused"]) == (1, 1)
    # Re-encoded alone instead of in a padded batch of two: equal up to float rounding.
    assert again.drop_columns(["vector"]).equals(table.drop_columns(["vector"]))
    np.testing.assert_allclose(_vectors(again), _vectors(table), rtol=1e-4, atol=1e-5)


def test_weights_hash_is_memoised_by_size_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    memo = tmp_path / "memo"
    h1 = file_sha256(f, memo)
    assert h1 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert (memo / "weights_sha256_memo.json").is_file()
    f.write_bytes(b"abcd")
    assert file_sha256(f, memo) != h1


def test_image_cache_reuse_addition_and_invalidation(
    tiny_resnet_dir: Path, tmp_path: Path, image_spy: Spy
) -> None:
    study, cache = tmp_path / "study", tmp_path / "cache"
    stimuli = write_study(study, 4)
    aois = object_aois(stimuli)
    cfg = ImageEncoderConfig(kind="resnet", model_dir=str(tiny_resnet_dir), image_size_px=64, device="cpu")
    first, s = encode_image_features(stimuli.iloc[:3], aois, study, cfg, cache)
    assert image_spy.items == 3 and (s["encoded"], s["pooled_computed"]) == (3, 3)

    image_spy.reset()
    again, s = encode_image_features(stimuli.iloc[:3], aois, study, cfg, cache)
    assert image_spy.calls == 0 and (s["encoded"], s["reused"], s["pooled_reused"]) == (0, 3, 3)
    assert again.equals(first)

    image_spy.reset()
    _, s = encode_image_features(stimuli, aois, study, cfg, cache)
    assert image_spy.items == 1 and (s["encoded"], s["reused"]) == (1, 3)

    # New AOI geometry: pooling again from the cached grid, no forward pass.
    image_spy.reset()
    moved = aois.copy()
    moved.loc[moved["stimulus_id"] == "s001", "x1_px"] = 150.0
    _, s = encode_image_features(stimuli, moved, study, cfg, cache)
    assert image_spy.calls == 0 and (s["pooled_computed"], s["pooled_reused"]) == (1, 3)

    # New pixels for one image.
    image_spy.reset()
    arr = np.asarray(Image.open(study / "images" / "s000.png")).copy()
    arr[0, 0] = 255 - arr[0, 0]
    Image.fromarray(arr).save(study / "images" / "s000.png")
    _, s = encode_image_features(stimuli, moved, study, cfg, cache)
    assert image_spy.items == 1 and s["encoded"] == 1

    # Preprocessing change: everything again.
    image_spy.reset()
    _, s = encode_image_features(
        stimuli, moved, study, ImageEncoderConfig(**{**cfg.__dict__, "image_size_px": 96}), cache
    )
    assert image_spy.items == 4 and s["encoded"] == 4
    image_spy.reset()
    _, s = encode_image_features(
        stimuli, moved, study, ImageEncoderConfig(**{**cfg.__dict__, "mean_rgb": (0.5, 0.5, 0.5)}), cache
    )
    assert image_spy.items == 4 and s["encoded"] == 4
