"""Atomic file writes: a reader or a crash never sees half a file.

* Local folder: a temporary file in the target's folder, fsync, then rename over the target.
* Object store (``s3://...``, a ``UPath``): the whole content is serialized first (in memory, or
  in a local temporary file when large), then sent as ONE upload. S3 and the other object stores
  make an object visible only when its PUT, or the completion of its multipart upload, succeeds;
  until then readers see the previous version or nothing. A serialization that raises uploads
  nothing.

Pure (no Dagster): the lake, the feature cache, the models and the report all write through here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from pov_pipeline.store import PIPE_MAX_BYTES, StorePath, is_remote


def atomic_write(path: StorePath, write: Callable[[BinaryIO], None]) -> StorePath:
    """Call ``write`` on a temporary file and move the result into place in one step."""
    if is_remote(path):
        return _put_whole(path, write)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return path


def _put_whole(path: StorePath, write: Callable[[BinaryIO], None]) -> StorePath:
    """Serialize into a local temporary file, then upload it as one object."""
    fs, key = path.fs, path.path
    with tempfile.NamedTemporaryFile(prefix="pov-put-", suffix=".tmp") as fh:
        write(fh)  # nothing reaches the store before this returns
        fh.flush()
        if fh.tell() <= PIPE_MAX_BYTES:
            fh.seek(0)
            fs.pipe_file(key, fh.read())
        else:
            # s3fs sends a large file as a multipart upload, which S3 publishes only when the
            # completion request succeeds.
            fs.put_file(fh.name, key)
    return path


def write_bytes_atomic(data: bytes, path: StorePath) -> StorePath:
    """Write ``data`` to ``path`` atomically."""
    if is_remote(path) and len(data) <= PIPE_MAX_BYTES:
        path.fs.pipe_file(path.path, bytes(data))
        return path
    return atomic_write(path, lambda fh: fh.write(data))


def write_parquet_atomic(table: pa.Table, path: StorePath) -> StorePath:
    """Write ``table`` to ``path`` as zstd Parquet with statistics, atomically.

    Fixed writer options, so the bytes depend on the table only.
    """
    return atomic_write(path, lambda fh: pq.write_table(table, fh, compression="zstd", write_statistics=True))
