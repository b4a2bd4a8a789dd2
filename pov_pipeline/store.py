"""Where lake files live: a local folder (``pathlib.Path``) or an object store (``UPath``).

The lake root is either a folder or a URL such as ``s3://bucket/prefix``. Everything below it is
addressed with the same ``/`` joins, ``exists()``, ``iterdir()``, ``read_text()`` on both kinds of
path, so the code that uses the lake has no ``if s3:`` branches; the few operations that differ
live here and in :mod:`pov_pipeline.atomic`:

* :func:`lake_root` parses the root (folder or URL) and refuses stores where a write could be seen
  half done.
* :func:`read_bytes`, :func:`read_parquet`, :func:`read_parquet_schema` read one whole object
  version (one GET on an object store).
* :func:`list_dir` lists a folder or prefix with one listing call.
* :func:`stage` gives a local copy of a remote folder for readers that need real files (vendor
  gaze readers, Pillow, the study reader); for a local path it returns the path itself, so the
  embedded default copies nothing.
* :func:`mirrored` lends a local copy of a remote folder and uploads the new files back (the
  content-addressed feature cache).

Credentials and endpoints are never part of the URL: s3fs reads the standard variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, ``AWS_PROFILE``) and fsspec its configuration (``FSSPEC_S3_ENDPOINT_URL``
or ``~/.config/fsspec/*.json``). ``universal-pathlib`` and ``s3fs`` are imported only for a URL
root (``pip install 'pov_pipeline[s3]'``).

Pure layer: no Dagster import.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from upath import UPath

#: A lake location: a local folder or file, or an object in an object store.
StorePath: TypeAlias = "Path | UPath"

#: URL schemes accepted for a lake root. Only object stores qualify: a single PUT there makes an
#: object appear whole or not at all, which is what atomic writes rely on (an SFTP or FTP write
#: would be visible while it grows).
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})

#: Lake-root URLs start with a scheme; Windows drive letters (``C:\\``) have no ``//``.
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")

#: Objects up to this size are uploaded from memory in one PUT; larger ones from a temporary
#: file (s3fs switches to a multipart upload, which also becomes visible only on completion).
PIPE_MAX_BYTES = 64 * 1024**2

STAGE_DIR_ENV = "POV_STAGE_DIR"


def url_scheme(location: str) -> str | None:
    """The scheme of a URL (``"s3"``), or None for a plain path."""
    match = _URL.match(location)
    return match.group("scheme").lower() if match else None


def lake_root(location: str | os.PathLike[str]) -> StorePath:
    """Parse a lake root: a folder (returned resolved) or an object-store URL.

    Parameters
    ----------
    location:
        A folder path, ``file:///folder``, or a URL ``s3://bucket/prefix`` (also ``gs://``,
        ``az://``, ``abfs://``, ``memory://``).

    Returns
    -------
    pathlib.Path | upath.UPath
        ``Path`` for a folder, so the embedded default never touches fsspec.

    Raises
    ------
    ValueError
        A scheme that is not an object store, a URL without bucket, or credentials, a query or a
        fragment in the URL.
    """
    if isinstance(location, PurePath):
        return Path(location).resolve()
    if not isinstance(location, str) and hasattr(location, "fs") and hasattr(location, "protocol"):
        return location  # already a UPath
    text = os.fspath(location)
    scheme = url_scheme(text)
    if scheme is None:
        return Path(text).resolve()
    parts = urlsplit(text)
    if scheme == "file":
        return Path(parts.path).resolve()
    if scheme not in OBJECT_STORE_SCHEMES:
        raise ValueError(
            f"lake root {text!r}: expected a folder or an object-store URL "
            f"({', '.join(sorted(OBJECT_STORE_SCHEMES))}://...), found scheme {scheme!r}"
        )
    if "@" in parts.netloc:
        raise ValueError(
            f"lake root {text!r}: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY (or the fsspec configuration) instead"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"lake root {text!r}: expected no query or fragment")
    if scheme != "memory" and not parts.netloc:
        raise ValueError(f"lake root {text!r}: expected a bucket, as in {scheme}://bucket/prefix")
    from upath import UPath

    # Directory listings are not cached: a sensor that lists landing/ every 30 s must see new
    # folders, and another process's writes must be visible to this one.
    return UPath(text.rstrip("/"), use_listings_cache=False)


def as_store_path(path: str | os.PathLike[str] | StorePath) -> StorePath:
    """A path argument as ``Path`` or ``UPath``: URLs are parsed, folders are left as given."""
    if isinstance(path, PurePath):
        return Path(path)
    if isinstance(path, str) and url_scheme(path) == "file":
        return Path(urlsplit(path).path)
    if isinstance(path, str) and url_scheme(path) is not None:
        return lake_root(path)
    if isinstance(path, str | os.PathLike):
        return Path(path)
    return path  # a UPath


def is_remote(path: object) -> bool:
    """Whether ``path`` lives in an object store (a ``UPath``) rather than on a local disk."""
    return not isinstance(path, PurePath | str) and hasattr(path, "fs")


def _fs_key(path: UPath) -> tuple[Any, str]:
    return path.fs, path.path


# --------------------------------------------------------------------------------------------
# Reads


def read_bytes(path: StorePath) -> bytes:
    """The bytes of one file; on an object store one GET, so one consistent object version."""
    if not is_remote(path):
        return Path(path).read_bytes()
    fs, key = _fs_key(path)
    return fs.cat_file(key)


def read_parquet(path: StorePath) -> pa.Table:
    """Read a Parquet file whole (a remote object is fetched in one GET, never mixed versions)."""
    if not is_remote(path):
        return pq.read_table(path)
    return pq.read_table(io.BytesIO(read_bytes(path)))


def read_parquet_schema(path: StorePath) -> pa.Schema:
    """The Arrow schema of a Parquet file (remote: ranged reads pinned to the object's ETag)."""
    if not is_remote(path):
        return pq.read_schema(path)
    with path.open("rb") as fh:
        return pq.read_schema(fh)


EntryKind = Literal["dir", "file", "other"]


def _local_kind(entry: os.DirEntry[str]) -> EntryKind:
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    try:
        return "file" if entry.is_file() else "other"
    except OSError:  # a symlink loop
        return "other"


def list_dir(path: StorePath) -> list[tuple[str, EntryKind]]:
    """``(name, kind)`` of each entry of a folder or prefix, sorted by name; one listing call.

    Local symlinks to folders count as ``other`` (a delivery is a real folder); symlinks to files
    count as files.

    Raises
    ------
    OSError
        The folder cannot be read (``FileNotFoundError`` when it does not exist).
    """
    entries: list[tuple[str, EntryKind]] = []
    if not is_remote(path):
        with os.scandir(path) as scan:
            for entry in scan:
                entries.append((entry.name, _local_kind(entry)))
        return sorted(entries)
    fs, key = _fs_key(path)
    prefix = key.rstrip("/") + "/"
    for info in fs.ls(key, detail=True):
        name = str(info["name"]).rstrip("/")
        if not name.startswith(prefix.lstrip("/")) and not name.startswith(prefix):
            continue  # the prefix itself, listed by some stores
        kind = {"directory": "dir", "file": "file"}.get(info.get("type", ""), "other")
        entries.append((name.rsplit("/", 1)[-1], kind))  # type: ignore[arg-type]
    return sorted(entries)


def list_files(path: StorePath) -> list[str]:
    """Relative names (``a/b.parquet``) of all files below a folder or prefix; one listing call
    (paginated) on an object store. Empty when the folder does not exist."""
    if is_remote(path):
        return sorted(_remote_files(path, recursive=True))
    root = Path(path)
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# Local copies of remote folders


def stage_root() -> Path:
    """Where local copies of remote folders are kept: ``$POV_STAGE_DIR`` or ``<tmp>/pov_stage``."""
    return Path(os.environ.get(STAGE_DIR_ENV) or Path(tempfile.gettempdir()) / "pov_stage")


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _signature(info: dict[str, Any]) -> str:
    """What identifies one object version: its ETag where the store has one, else size + time."""
    stamp = info.get("ETag") or info.get("etag") or info.get("md5Hash") or ""
    when = info.get("LastModified") or info.get("mtime") or info.get("created") or info.get("updated")
    return f"{stamp}|{info.get('size')}|{when}"


def _remote_files(path: UPath, recursive: bool) -> dict[str, str]:
    """``{relative name: signature}`` of the files below a remote prefix."""
    fs, key = _fs_key(path)
    key = key.rstrip("/")
    if recursive:
        infos = fs.find(key, detail=True)
        items = infos.values() if isinstance(infos, dict) else infos
    else:
        items = [i for i in fs.ls(key, detail=True) if i.get("type") == "file"]
    files: dict[str, str] = {}
    bare = key.lstrip("/")
    for info in items:
        name = str(info["name"]).lstrip("/")
        if info.get("type", "file") != "file" or not name.startswith(bare + "/"):
            continue
        files[name[len(bare) + 1 :]] = _signature(info)
    return files


def stage(path: StorePath, *, recursive: bool = True) -> Path:
    """A local folder with the same files as ``path``; ``path`` itself when it is local.

    For a remote prefix the copy is kept under :func:`stage_root` (``<protocol>/<bucket>/<key>``,
    so error messages still name ``landing/p001/gaze.asc``) and brought up to date on each call:
    files whose ETag (or size and time) changed are downloaded again, each to a temporary name and
    renamed, and files removed from the store are removed from the copy. A lock file serialises
    processes staging the same prefix.

    Parameters
    ----------
    path:
        A folder or prefix.
    recursive:
        Copy sub-folders too (``study/images``); False copies only the top-level files (a landing
        folder without its ``truth/``).
    """
    if not is_remote(path):
        return Path(path)
    mirror = stage_root() / str(path.protocol or "remote") / path.path.strip("/")
    manifest_file = mirror.with_name(f"{mirror.name}.pov-stage.json")
    with _locked(mirror.with_name(f"{mirror.name}.pov-stage.lock")):
        mirror.mkdir(parents=True, exist_ok=True)
        remote = _remote_files(path, recursive)
        try:
            manifest: dict[str, str] = json.loads(manifest_file.read_text())
        except (FileNotFoundError, ValueError):
            manifest = {}
        fs, key = _fs_key(path)
        for rel, signature in sorted(remote.items()):
            local = mirror / rel
            if manifest.get(rel) == signature and local.is_file():
                continue
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.{os.getpid()}.stage.tmp")
            try:
                fs.get_file(f"{key.rstrip('/')}/{rel}", str(tmp))
                os.replace(tmp, local)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            manifest[rel] = signature
        present = (
            [p for p in mirror.rglob("*") if p.is_file()]
            if recursive
            else [p for p in mirror.iterdir() if p.is_file()]
        )
        for local in present:
            rel = local.relative_to(mirror).as_posix()
            if rel not in remote:
                local.unlink()
                manifest.pop(rel, None)
        manifest = {rel: sig for rel, sig in manifest.items() if rel in remote}
        tmp_manifest = manifest_file.with_name(f".{manifest_file.name}.{os.getpid()}.tmp")
        tmp_manifest.write_text(json.dumps(manifest, sort_keys=True))
        os.replace(tmp_manifest, manifest_file)
    return mirror


def upload_new(local_dir: Path, remote: StorePath, pattern: str = "**/*") -> list[str]:
    """Upload the files of ``local_dir`` matching ``pattern`` that ``remote`` lacks; return them.

    Meant for content-addressed folders (an entry's name is the hash of its value), where an entry
    that exists is never changed, so presence is enough. Each file is one whole-object PUT.
    """
    if not is_remote(remote):
        return []
    from pov_pipeline.atomic import write_bytes_atomic

    present = set(_remote_files(remote, recursive=True))
    uploaded = []
    for local in sorted(p for p in Path(local_dir).glob(pattern) if p.is_file()):
        rel = local.relative_to(local_dir).as_posix()
        if rel in present or any(part.startswith(".") for part in rel.split("/")):
            continue  # already there, or a temporary file of a writer
        write_bytes_atomic(local.read_bytes(), remote.joinpath(*rel.split("/")))
        uploaded.append(rel)
    return uploaded


def upload_tree(local_dir: Path, remote: StorePath) -> int:
    """Upload every file below ``local_dir`` to ``remote`` (whole-object PUTs); return the count.

    For moving a delivery or a generated demo study into an object-store lake.
    """
    from pov_pipeline.atomic import write_bytes_atomic

    count = 0
    for local in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
        rel = local.relative_to(local_dir).as_posix()
        write_bytes_atomic(local.read_bytes(), as_store_path(remote).joinpath(*rel.split("/")))
        count += 1
    return count


@contextlib.contextmanager
def mirrored(path: StorePath, *, publish: str = "**/*.parquet") -> Iterator[Path]:
    """Lend a local copy of the folder ``path``; on success upload the new files back.

    For a local ``path`` this yields ``path`` and does nothing else. For a remote one it yields
    :func:`stage`'s copy, and after the block uploads files matching ``publish`` that the store
    does not have yet (:func:`upload_new`), so only whole new entries ever appear there.
    """
    local = stage(path)
    yield local
    upload_new(local, path, publish)


def duckdb_filesystem(path: StorePath) -> Any:
    """The fsspec filesystem DuckDB should read ``path`` through (None for a local path)."""
    return path.fs if is_remote(path) else None
