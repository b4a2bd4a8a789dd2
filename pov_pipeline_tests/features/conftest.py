"""Tiny randomly initialised models saved with ``save_pretrained`` and small synthetic studies."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

TINY_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "a", "the", "dog", "cat", "sat", "on", "mat", "##s", "red", "ball", "is", "near",
    ",", ".", "!", "'", "-", "2", "##0", "like", "x", "##y", "##l", "##o", "##p", "##h", "##n",
]  # fmt: skip


def save_tiny_bert(path: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-d BERT with a 32-word WordPiece vocabulary, saved as a HF model directory."""
    import inspect

    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(TINY_VOCAB) + "\n")
    # transformers 5 takes ``vocab``; 4.x's fast tokenizer took ``vocab_file``.
    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:
        tok = BertTokenizerFast(vocab=str(vocab_file), do_lower_case=True)
    else:
        tok = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    tok.save_pretrained(str(path))
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).eval().save_pretrained(str(path))
    return path


def save_tiny_resnet(path: Path, seed: int = 0) -> Path:
    """A 2-stage ResNet (8 → 16 channels, stride 8 overall), saved as a HF model directory."""
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(seed)
    cfg = ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"
    )
    ResNetModel(cfg).eval().save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_resnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_resnet(tmp_path_factory.mktemp("tiny_resnet"))


def write_study(study: Path, n: int, seed: int = 0, size_px: tuple[int, int] = (96, 64)) -> pd.DataFrame:
    """``n`` random images under ``study/images`` and a stimuli frame placing them at (100, 50), ×2."""
    rng = np.random.default_rng(seed)
    (study / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        sid = f"s{i:03d}"
        arr = rng.integers(0, 256, size=(size_px[1], size_px[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(study / "images" / f"{sid}.png")
        rows.append(
            {
                "stimulus_id": sid,
                "image_file": f"images/{sid}.png",
                "image_sha256": "",
                "caption": f"the dog sat on {i} mats",
                "image_left_px": 100,
                "image_top_px": 50,
                "image_width_px": 2 * size_px[0],
                "image_height_px": 2 * size_px[1],
            }
        )
    return pd.DataFrame(rows)


def object_aois(stimuli: pd.DataFrame) -> pd.DataFrame:
    """Two object AOIs per stimulus (a rect and a polygon), in screen px."""
    rows = []
    for sid in stimuli["stimulus_id"]:
        rows.append((sid, "obj:ball", "rect", 100.0, 50.0, 196.0, 114.0, None))
        rows.append((sid, "obj:dog", "polygon", 150.0, 60.0, 280.0, 170.0, [150, 60, 280, 60, 150, 170]))
    columns = ["stimulus_id", "aoi_id", "shape", "x0_px", "y0_px", "x1_px", "y1_px", "points_px"]
    df = pd.DataFrame(rows, columns=columns)
    df["aoi_kind"] = "object"
    df["label"] = df["aoi_id"].str.removeprefix("obj:")
    df["word_index"] = -1
    df["is_central"] = df["aoi_id"] == "obj:dog"
    return df
