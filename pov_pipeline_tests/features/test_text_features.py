"""Caption encoding: word-piece ↔ word alignment, pooling, truncation, output table."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch

from pov_pipeline.features import (
    SENTENCE_AOI,
    TextEncoderConfig,
    caption_words,
    encode_text_features,
    text_features_schema,
)

CAPTION = "The dog, sat on 20 mats! xylo cat-like zzz"
EXPECTED_PIECES = [
    ["the"],
    ["dog", ","],
    ["sat"],
    ["on"],
    ["2", "##0"],
    ["mat", "##s", "!"],
    ["x", "##y", "##l", "##o"],
    ["cat", "-", "like"],
    ["[UNK]"],
]


def _stimuli(captions: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"stimulus_id": [f"s{i}" for i in range(len(captions))], "caption": captions})


def _frame(table) -> pd.DataFrame:
    return table.to_pandas()


def test_caption_words_keep_punctuation_attached() -> None:
    assert caption_words("  A dog,  sat.\tnear 2 mats!\n") == ["A", "dog,", "sat.", "near", "2", "mats!"]


def test_wordpieces_align_to_printed_words(tiny_bert_dir: Path, tmp_path: Path) -> None:
    cfg = TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu")
    table, stats = encode_text_features(_stimuli([CAPTION]), None, cfg, tmp_path / "cache")
    df = _frame(table)
    words = df[df["aoi_id"] != SENTENCE_AOI]
    assert words["aoi_id"].tolist() == [f"word:{i}" for i in range(9)]
    assert words["word"].tolist() == CAPTION.split()
    assert [list(p) for p in words["wordpieces"]] == EXPECTED_PIECES
    sentence = df[df["aoi_id"] == SENTENCE_AOI].iloc[0]
    assert sentence["word"] == CAPTION and sentence["word_index"] == -1
    flat = [p for ps in EXPECTED_PIECES for p in ps]
    assert list(sentence["wordpieces"]) == ["[CLS]", *flat, "[SEP]"]
    assert stats["dim"] == 32 and stats["encoded"] == 1 and stats["truncated_words"] == 0


def test_word_and_sentence_vectors_match_a_manual_forward_pass(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from transformers import BertModel

    cfg = TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu")
    table, _ = encode_text_features(_stimuli([CAPTION]), None, cfg, tmp_path / "cache")
    df = _frame(table)
    sentence = df[df["aoi_id"] == SENTENCE_AOI].iloc[0]
    ids = torch.tensor([list(sentence["wordpiece_ids"])])
    model = BertModel.from_pretrained(str(tiny_bert_dir), local_files_only=True).eval()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0].numpy()
    # No modules.json → plain attention-masked mean over all tokens, not normalised.
    np.testing.assert_allclose(np.asarray(sentence["vector"]), hidden.mean(axis=0), rtol=1e-5, atol=1e-6)
    pos = 1  # after [CLS]
    for row, pieces in zip(df[df["aoi_id"] != SENTENCE_AOI].itertuples(), EXPECTED_PIECES, strict=True):
        expected = hidden[pos : pos + len(pieces)].mean(axis=0)
        np.testing.assert_allclose(np.asarray(row.vector), expected, rtol=1e-5, atol=1e-6)
        pos += len(pieces)


def test_batching_and_padding_do_not_change_vectors(tiny_bert_dir: Path, tmp_path: Path) -> None:
    captions = [CAPTION, "a red ball", "the cat is near the mat."]
    one = TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu", batch_size=1)
    three = TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu", batch_size=3)
    t1, s1 = encode_text_features(_stimuli(captions), None, one, tmp_path / "c1")
    t3, s3 = encode_text_features(_stimuli(captions), None, three, tmp_path / "c3")
    assert s1["forward_passes"] == 3 and s3["forward_passes"] == 1
    v1 = np.stack(_frame(t1)["vector"].to_list())
    v3 = np.stack(_frame(t3)["vector"].to_list())
    np.testing.assert_allclose(v1, v3, rtol=1e-4, atol=1e-5)


def test_truncated_words_get_nan_vectors_and_a_warning(tiny_bert_dir: Path, tmp_path: Path) -> None:
    cfg = TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu", max_length=6)
    with pytest.warns(UserWarning, match="max_length=6"):
        table, stats = encode_text_features(_stimuli([CAPTION]), None, cfg, tmp_path / "cache")
    df = _frame(table).set_index("aoi_id")
    # [CLS] the dog , sat [SEP]: words 0-2 survive, word 3 onwards lost all pieces.
    assert np.isfinite(np.asarray(df.loc["word:2", "vector"])).all()
    assert np.isnan(np.asarray(df.loc["word:3", "vector"])).all()
    assert list(df.loc["word:3", "wordpieces"]) == []
    assert stats["truncated_words"] == 6


def test_table_schema_order_and_duckdb_cosine(tiny_bert_dir: Path, tmp_path: Path) -> None:
    stimuli = _stimuli(["a red ball", "the dog sat", ""]).iloc[::-1]
    aois = pd.DataFrame(
        {
            "stimulus_id": ["s0", "s0", "s1"],
            "aoi_kind": ["word", "word", "word"],
            "word_index": [0, 2, 1],
            "label": ["a", "ball", "cat"],  # s1 word 1 is "dog": one mismatch
        }
    )
    cfg = TextEncoderConfig(model_dir=str(tiny_bert_dir), device="cpu")
    table, stats = encode_text_features(stimuli, aois, cfg, tmp_path / "cache")
    assert table.schema == text_features_schema(32)
    assert stats["aoi_word_mismatches"] == 1
    df = _frame(table)
    assert df["stimulus_id"].tolist() == ["s0"] * 4 + ["s1"] * 4 + ["s2"]
    assert df["aoi_id"].tolist()[:4] == ["sentence", "word:0", "word:1", "word:2"]
    con = duckdb.connect()
    con.register("text_features", table)
    assert con.execute("SELECT typeof(vector) FROM text_features LIMIT 1").fetchall()[0][0] == "FLOAT[32]"
    sims = con.execute(
        """SELECT a.stimulus_id, array_cosine_similarity(a.vector, b.vector)
           FROM text_features a JOIN text_features b USING (stimulus_id, aoi_id)
           WHERE a.aoi_id = 'sentence' ORDER BY 1"""
    ).fetchall()
    assert [s for _, s in sims] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
