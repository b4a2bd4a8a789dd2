"""Readers for the study design: ``study/stimuli.csv`` and ``study/aois.json``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pov_pipeline.schemas import AOIS, STIMULI


class StudyFormatError(ValueError):
    """The study folder is missing a file or holds one that does not match the contract."""


def study_fingerprint(study_dir: Path) -> str:
    """SHA-256 over every file of the study folder (relative names and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in study_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(study_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_stimuli(study_dir: Path) -> pa.Table:
    """Read ``stimuli.csv`` into the ``STIMULI`` schema, hashing each image file.

    The hash is taken from the image bytes (not trusted from the CSV), so a changed image
    changes the table and, through it, the feature cache keys.
    """
    path = study_dir / "stimuli.csv"
    if not path.exists():
        raise StudyFormatError(f"{path}: the study has no stimuli.csv")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in STIMULI.names if c not in frame.columns and c != "image_sha256"]
    if missing:
        raise StudyFormatError(f"{path} line 1: expected columns {missing}, found {list(frame.columns)}")
    duplicated = frame["stimulus_id"][frame["stimulus_id"].duplicated()].tolist()
    if duplicated:
        raise StudyFormatError(f"{path}: duplicated stimulus_id values {duplicated[:5]}")
    hashes = []
    for line_no, image_file in enumerate(frame["image_file"], start=2):
        image_path = (study_dir / image_file).resolve()
        if study_dir.resolve() not in image_path.parents:
            raise StudyFormatError(
                f"{path} line {line_no}: image_file {image_file!r} leaves the study folder"
            )
        if not image_path.exists():
            raise StudyFormatError(f"{path} line {line_no}: image file {image_file!r} not found")
        hashes.append(hashlib.sha256(image_path.read_bytes()).hexdigest())
    frame["image_sha256"] = hashes
    int_columns = [f.name for f in STIMULI if pa.types.is_integer(f.type)]
    for column in int_columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            line_no = int(bad.to_numpy().nonzero()[0][0]) + 2
            raise StudyFormatError(
                f"{path} line {line_no}: expected an integer in column {column!r}, "
                f"found {frame[column].iloc[line_no - 2]!r}"
            )
        frame[column] = values.astype("int32")
    frame = frame.sort_values("stimulus_id", kind="stable")
    return pa.Table.from_pandas(frame[STIMULI.names], schema=STIMULI, preserve_index=False)


def read_aois(study_dir: Path, stimulus_ids: set[str] | None = None) -> pa.Table:
    """Read ``aois.json`` (``{"aois": [row, ...]}``) into the ``AOIS`` schema.

    AOIs that name a stimulus outside ``stimulus_ids`` are an error, not a silent drop.
    """
    path = study_dir / "aois.json"
    if not path.exists():
        raise StudyFormatError(f"{path}: the study has no aois.json")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StudyFormatError(f"{path}: not valid UTF-8 JSON ({exc})") from exc
    rows = document.get("aois") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise StudyFormatError(
            f'{path}: expected an object with an "aois" list, found {type(document).__name__}'
        )
    frame = pd.DataFrame(rows)
    missing = [c for c in AOIS.names if c not in frame.columns]
    if missing:
        raise StudyFormatError(f"{path}: AOI rows lack fields {missing}")
    if stimulus_ids is not None:
        unknown = sorted(set(frame["stimulus_id"]) - stimulus_ids)
        if unknown:
            raise StudyFormatError(f"{path}: AOIs for unknown stimulus ids {unknown[:5]}")
    bad_shape = sorted(set(frame["shape"]) - {"rect", "polygon", "ellipse"})
    if bad_shape:
        raise StudyFormatError(f"{path}: expected shape rect|polygon|ellipse, found {bad_shape}")
    frame["points_px"] = frame["points_px"].map(lambda v: [] if v is None else [float(p) for p in v])
    frame = frame.sort_values(["stimulus_id", "aoi_kind", "word_index", "aoi_id"], kind="stable")
    return pa.Table.from_pandas(frame[AOIS.names], schema=AOIS, preserve_index=False)
