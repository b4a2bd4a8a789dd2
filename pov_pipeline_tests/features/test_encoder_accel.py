"""Text encoder under memory pressure and reduced precision (CPU-tested)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def test_text_encoder_survives_out_of_memory_with_identical_vectors(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pov_pipeline.features.text import TextEncoder, TextEncoderConfig

    captions = ["the dog sat on a mat", "a red ball", "the cat is near the dog", "a cat", "red"]
    ref = TextEncoder(TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu", batch_size=8))
    expected = ref.encode(captions)
    enc = TextEncoder(TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu", batch_size=8))
    real_forward = enc._forward

    def forward(inputs):
        if inputs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_forward(inputs)

    monkeypatch.setattr(enc, "_forward", forward)
    got = enc.encode(captions)
    assert enc.batch_size == 2
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a.word_vectors, b.word_vectors, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.sentence_vector, b.sentence_vector, rtol=1e-5, atol=1e-6)


def test_reduced_precision_gets_its_own_cache_key(tiny_bert_dir: Path) -> None:
    from pov_pipeline.features.text import TextEncoder, TextEncoderConfig

    full = TextEncoder(TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu"))
    bf16 = TextEncoder(TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu", mixed_precision="bf16"))
    assert full.key_material()["preprocessing"]["dtype"] == "float32"
    assert bf16.key_material()["preprocessing"]["dtype"] == "bfloat16"
    # bf16 autocast runs on CPU too, so the reduced-precision path is exercised here.
    a = full.encode(["the red ball"])[0].word_vectors
    b = bf16.encode(["the red ball"])[0].word_vectors
    assert b.dtype == np.float32
    assert np.abs(a - b).max() < 0.1 * np.abs(a).max()
