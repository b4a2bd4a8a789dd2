"""Content-addressed Parquet cache of encoder outputs.

An entry's key is the sha256 of everything its value depends on (encoder id, weights fingerprint,
preprocessing config, input content), so an entry never needs invalidating: a changed input simply
has another key. Entries are Parquet files ``<cache_dir>/<kind>/<key[:2]>/<key>.parquet`` written
atomically (temporary file in the same folder, then ``os.replace``; in an object store one
whole-object upload), so a crash or a concurrent reader never sees half an entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from pov_pipeline.atomic import write_parquet_atomic
from pov_pipeline.store import StorePath, as_store_path, read_parquet


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal configs hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(*parts: str | bytes) -> str:
    """sha256 over length-prefixed parts, so ``("ab", "c")`` and ``("a", "bc")`` differ."""
    h = hashlib.sha256()
    for part in parts:
        b = part.encode("utf-8") if isinstance(part, str) else part
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def cache_key(encoder: dict[str, Any], content_sha256: str, extra: Any = None) -> str:
    """Key of one cache entry.

    Parameters
    ----------
    encoder:
        Encoder id, weights fingerprint and preprocessing config.
    content_sha256:
        Hash of the input (caption text or image bytes).
    extra:
        Anything else the value depends on (e.g. AOI geometry for pooled vectors).
    """
    return sha256_hex(canonical_json(encoder), content_sha256, canonical_json(extra))


class FeatureCache:
    """Parquet entries under one folder, addressed by key.

    Parameters
    ----------
    root:
        The cache folder (e.g. ``<lake>/cache/features/text``), local or ``s3://...``.
    """

    def __init__(self, root: Path | StorePath | str) -> None:
        self.root = as_store_path(root)

    def path(self, kind: str, key: str) -> StorePath:
        """Where the entry ``key`` of ``kind`` lives."""
        return self.root / kind / key[:2] / f"{key}.parquet"

    def has(self, kind: str, key: str) -> bool:
        """Whether the entry exists (it may still be unreadable; :meth:`get` tells)."""
        return self.path(kind, key).is_file()

    def get(self, kind: str, key: str) -> pa.Table | None:
        """The entry, or None when it is missing or unreadable (then it is simply recomputed)."""
        p = self.path(kind, key)
        if not p.is_file():
            return None
        try:
            return read_parquet(p)
        except (OSError, pa.ArrowInvalid):
            return None

    def put(self, kind: str, key: str, table: pa.Table) -> StorePath:
        """Write the entry atomically and return its path."""
        return write_parquet_atomic(table, self.path(kind, key))
