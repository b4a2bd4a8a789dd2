"""Offline model resolution and weight fingerprints.

Encoders never download anything: a model comes from a configured local directory (or file), from
a pip package that bundles the weights, or from the local Hugging Face cache read with
``local_files_only=True``. When none of these holds the model, :class:`ModelNotFoundError` names
every place that was searched and how to provide the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

#: Files that define a Hugging Face model's numbers or its tokenisation; all of them go into the
#: weights fingerprint so that a changed vocabulary invalidates the cache as a changed weight does.
_HF_FINGERPRINT_NAMES: tuple[str, ...] = (
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "modules.json",
)

_MEMO_LOCK = threading.Lock()
_MEMO: dict[tuple[str, int, int], str] = {}
_MEMO_FILE_NAME = "weights_sha256_memo.json"


class ModelNotFoundError(FileNotFoundError):
    """No local copy of a model was found; the message lists where it looked and how to fix it.

    Attributes
    ----------
    searched:
        Each place that was looked at, with why it did not qualify.
    """

    def __init__(self, what: str, searched: list[str], how_to_fix: list[str]) -> None:
        self.what = what
        self.searched = list(searched)
        self.how_to_fix = list(how_to_fix)
        lines = [f"{what}: no local copy found (downloads are disabled by design). Looked in:"]
        lines += [f"  - {s}" for s in self.searched]
        lines.append("Provide it by one of:")
        lines += [f"  - {h}" for h in self.how_to_fix]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are and what identifies them.

    Attributes
    ----------
    path:
        A directory (Hugging Face layout) or a single weight file.
    source:
        How it was found: ``config``, ``package:<name>`` or ``hf_cache:<repo_id>``.
    fingerprint_files:
        The files whose bytes make up :attr:`weights_sha256`.
    weights_sha256:
        sha256 over the fingerprint files (name and content hash of each, in name order).
    """

    path: Path
    source: str
    fingerprint_files: tuple[Path, ...]
    weights_sha256: str


def file_sha256(path: Path, memo_dir: Path | None = None) -> str:
    """sha256 of a file's bytes, memoised by (path, size, mtime) in memory and in ``memo_dir``.

    Hashing a 90 MB weight file costs a fraction of a second, but it happens on every run, so the
    result is kept until the file's size or modification time changes.
    """
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _MEMO_LOCK:
        if memo_key in _MEMO:
            return _MEMO[memo_key]
    disk_memo: dict[str, str] = {}
    memo_file = memo_dir / _MEMO_FILE_NAME if memo_dir is not None else None
    disk_key = "|".join(str(k) for k in memo_key)
    if memo_file is not None and memo_file.is_file():
        try:
            disk_memo = json.loads(memo_file.read_text())
        except (OSError, ValueError):
            disk_memo = {}
        if disk_key in disk_memo:
            with _MEMO_LOCK:
                _MEMO[memo_key] = disk_memo[disk_key]
            return disk_memo[disk_key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _MEMO_LOCK:
        _MEMO[memo_key] = digest
    if memo_file is not None:
        disk_memo[disk_key] = digest
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_name(f".{memo_file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(disk_memo, sort_keys=True))
        os.replace(tmp, memo_file)
    return digest


def fingerprint(files: list[Path], memo_dir: Path | None = None) -> str:
    """One sha256 over several files: their names and content hashes in name order."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.name):
        h.update(f.name.encode())
        h.update(b"\0")
        h.update(file_sha256(f, memo_dir).encode())
        h.update(b"\n")
    return h.hexdigest()


def _hf_dir_problem(path: Path, need_tokenizer: bool) -> str | None:
    """Why ``path`` is not a usable Hugging Face model directory, or None if it is."""
    if not path.exists():
        return "does not exist"
    if not path.is_dir():
        return "is not a directory"
    if not (path / "config.json").is_file():
        return "has no config.json"
    if not ((path / "model.safetensors").is_file() or (path / "pytorch_model.bin").is_file()):
        return "has no model.safetensors or pytorch_model.bin"
    if need_tokenizer and not ((path / "tokenizer.json").is_file() or (path / "vocab.txt").is_file()):
        return "has no tokenizer.json or vocab.txt"
    return None


def _hf_cache_snapshot(repo_id: str) -> tuple[Path | None, str]:
    """The local snapshot of ``repo_id`` in the Hugging Face cache, never touching the network."""
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError:  # pragma: no cover - transformers depends on it
        return None, "huggingface_hub is not installed"
    cache = Path(constants.HF_HUB_CACHE)
    try:
        return Path(snapshot_download(repo_id=repo_id, local_files_only=True)), str(cache)
    except Exception as exc:  # LocalEntryNotFoundError, HFValidationError, ...
        return None, f"{cache} ({type(exc).__name__})"


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


def resolve_hf_model(
    model_dir: str | None,
    *,
    what: str,
    default_packages: list[tuple[str, str]],
    default_repo_id: str | None,
    need_tokenizer: bool,
    how_to_fix: list[str],
    memo_dir: Path | None = None,
) -> ResolvedModel:
    """Find a Hugging Face model directory offline.

    Parameters
    ----------
    model_dir:
        A local directory, or a hub repo id looked up in the local cache only. None tries
        ``default_packages`` then ``default_repo_id``.
    what:
        Names the model in the error message.
    default_packages:
        ``(import name, attribute)`` pairs: a pip package exposing the bundled model directory as a
        module attribute (a Path, or a function returning one).
    default_repo_id:
        Hub id tried in the local Hugging Face cache when no package has the model.
    need_tokenizer:
        Also require tokenizer files.
    how_to_fix:
        Lines appended to the error message.
    memo_dir:
        Where the weights-hash memo is kept.

    Raises
    ------
    ModelNotFoundError
        When no candidate holds the model.
    """
    searched: list[str] = []
    candidates: list[tuple[Path, str]] = []
    if model_dir is not None:
        p = Path(model_dir).expanduser()
        if p.exists() or not _looks_like_repo_id(model_dir):
            problem = _hf_dir_problem(p, need_tokenizer)
            if problem is None:
                candidates.append((p, "config"))
            else:
                searched.append(f"{p} (configured model_dir: {problem})")
        else:
            snap, where = _hf_cache_snapshot(model_dir)
            if snap is not None and _hf_dir_problem(snap, need_tokenizer) is None:
                candidates.append((snap, f"hf_cache:{model_dir}"))
            else:
                searched.append(f"Hugging Face cache for {model_dir!r}: {where}")
    else:
        for module_name, attr in default_packages:
            try:
                module = __import__(module_name)
                value = getattr(module, attr)
                p = Path(value() if callable(value) else value)
            except (ImportError, AttributeError) as exc:
                searched.append(f"pip package {module_name!r} ({type(exc).__name__}: not installed)")
                continue
            problem = _hf_dir_problem(p, need_tokenizer)
            if problem is None:
                candidates.append((p, f"package:{module_name}"))
                break
            searched.append(f"{p} (from package {module_name!r}: {problem})")
        if not candidates and default_repo_id is not None:
            snap, where = _hf_cache_snapshot(default_repo_id)
            if snap is not None and _hf_dir_problem(snap, need_tokenizer) is None:
                candidates.append((snap, f"hf_cache:{default_repo_id}"))
            else:
                searched.append(f"Hugging Face cache for {default_repo_id!r}: {where}")
    if not candidates:
        raise ModelNotFoundError(what, searched, how_to_fix)
    path, source = candidates[0]
    files = tuple(path / n for n in _HF_FINGERPRINT_NAMES if (path / n).is_file())
    return ResolvedModel(path, source, files, fingerprint(list(files), memo_dir))


def resolve_weight_file(
    model_path: str | None,
    *,
    what: str,
    default_package: tuple[str, str],
    patterns: tuple[str, ...],
    how_to_fix: list[str],
    memo_dir: Path | None = None,
) -> ResolvedModel:
    """Find a single weight file (e.g. a ``.pth`` state dict) offline.

    Parameters
    ----------
    model_path:
        A weight file, or a directory holding exactly one file matching ``patterns``. None uses
        ``default_package``: ``(import name, class or function attribute)`` whose
        ``get_model_file_path()`` (or call) returns the bundled file.
    """
    searched: list[str] = []
    found: Path | None = None
    source = "config"
    if model_path is not None:
        p = Path(model_path).expanduser()
        if p.is_file():
            found = p
        elif p.is_dir():
            matches = sorted({m for pat in patterns for m in p.glob(pat)})
            if len(matches) == 1:
                found = matches[0]
            else:
                searched.append(f"{p} (configured model_dir: {len(matches)} files match {list(patterns)})")
        else:
            searched.append(f"{p} (configured model_dir: does not exist)")
    else:
        module_name, attr = default_package
        try:
            module = __import__(module_name)
            obj = getattr(module, attr)
            getter = getattr(obj, "get_model_file_path", obj)
            p = Path(getter())
            if p.is_file():
                found, source = p, f"package:{module_name}"
            else:
                searched.append(f"{p} (from package {module_name!r}: file missing)")
        except (ImportError, AttributeError) as exc:
            searched.append(f"pip package {module_name!r} ({type(exc).__name__}: not installed)")
    if found is None:
        raise ModelNotFoundError(what, searched, how_to_fix)
    return ResolvedModel(found, source, (found,), fingerprint([found], memo_dir))
