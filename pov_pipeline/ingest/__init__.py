"""Vendor gaze exports and session files → canonical tables (pure layer: no Dagster).

Every reader returns a :class:`ReadResult` whose ``samples`` follow ``schemas.RAW_GAZE`` (one row
per eye per sample, sorted by trial, eye, t_us) and whose ``report`` says what was dropped or
repaired. Input that does not match its format raises :class:`GazeFormatError` naming the file,
line, expected and found value.
"""

from __future__ import annotations

from pov_pipeline.ingest._lines import DEFAULT_MAX_BYTES
from pov_pipeline.ingest._samples import ReadResult
from pov_pipeline.ingest.dispatch import detect_format, read_gaze
from pov_pipeline.ingest.errors import GazeFormatError
from pov_pipeline.ingest.eyelink import read_eyelink_asc
from pov_pipeline.ingest.generic_csv import read_gaze_csv
from pov_pipeline.ingest.session import GAZE_FORMATS, SessionInfo, read_responses, read_session
from pov_pipeline.ingest.tobii import read_tobii_prolab_tsv, read_tobii_sdk_tsv

__all__ = [
    "DEFAULT_MAX_BYTES",
    "GAZE_FORMATS",
    "GazeFormatError",
    "ReadResult",
    "SessionInfo",
    "detect_format",
    "read_eyelink_asc",
    "read_gaze",
    "read_gaze_csv",
    "read_responses",
    "read_session",
    "read_tobii_prolab_tsv",
    "read_tobii_sdk_tsv",
]
