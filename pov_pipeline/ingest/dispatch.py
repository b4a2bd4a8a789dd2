"""Choosing the reader for a gaze export: by the session's ``format``, or by sniffing the file."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from pov_pipeline.ingest._lines import DEFAULT_MAX_BYTES, check_size
from pov_pipeline.ingest._samples import ReadResult
from pov_pipeline.ingest.errors import GazeFormatError
from pov_pipeline.ingest.eyelink import read_eyelink_asc
from pov_pipeline.ingest.generic_csv import read_gaze_csv
from pov_pipeline.ingest.session import SessionInfo
from pov_pipeline.ingest.tobii import read_tobii_prolab_tsv, read_tobii_sdk_tsv

_SNIFF_BYTES = 64 * 1024


def detect_format(path: str | PathLike[str]) -> str:
    """Guess the format of a gaze export from its first 64 KiB.

    Returns
    -------
    str
        ``eyelink_asc`` (``**`` header or ``MSG``/``START``/``SAMPLES`` lines), ``tobii_prolab_tsv``
        (a ``Recording timestamp`` column), ``tobii_sdk_tsv`` (``Time`` and ``LGazePos2dx`` columns) or
        ``csv`` (any other delimited header).

    Raises
    ------
    GazeFormatError
        For an empty or unrecognised file.
    """
    path = Path(path)
    check_size(path, 1 << 62)
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    text = head.decode("latin-1").replace("\r\n", "\n").replace("\r", "\n")
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        raise GazeFormatError(path, "a gaze export", "an empty file")
    first = lines[0]
    if first.startswith("**") or any(
        line.split(maxsplit=1)[0] in ("MSG", "START", "SAMPLES", "EVENTS", "PRESCALER")
        for line in lines[:200]
    ):
        return "eyelink_asc"
    header = [h.strip().strip('"') for h in first.replace(";", "\t").replace(",", "\t").split("\t")]
    stems = {h.split("[")[0].strip() for h in header}
    if "Recording timestamp" in stems:
        return "tobii_prolab_tsv"
    if "Time" in stems and ("LGazePos2dx" in stems or "RGazePos2dx" in stems):
        return "tobii_sdk_tsv"
    if len(header) >= 3:
        return "csv"
    raise GazeFormatError(path, "an EyeLink ASC, Tobii TSV or CSV gaze export", first[:80], line=1)


def read_gaze(
    path: str | PathLike[str],
    session: SessionInfo,
    participant: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ReadResult:
    """Read a participant's gaze export with the reader its session names.

    Parameters
    ----------
    path:
        The gaze file, or the participant's folder (then ``session.gaze_file`` inside it is read).
    session:
        From :func:`~pov_pipeline.ingest.session.read_session`; ``format="auto"`` sniffs the file.
    participant:
        Participant id written into every row.
    max_bytes:
        Size guard: bigger files are refused before reading.

    Returns
    -------
    ReadResult
        The samples and the reader's report (with ``session_rate_hz`` added).
    """
    path = Path(path)
    if path.is_dir():
        path = path / session.gaze_file
    fmt = session.format if session.format != "auto" else detect_format(path)
    if fmt == "eyelink_asc":
        result = read_eyelink_asc(path, participant=participant, session=session, max_bytes=max_bytes)
    elif fmt == "tobii_prolab_tsv":
        result = read_tobii_prolab_tsv(path, participant=participant, session=session, max_bytes=max_bytes)
    elif fmt == "tobii_sdk_tsv":
        result = read_tobii_sdk_tsv(path, participant=participant, session=session, max_bytes=max_bytes)
    elif fmt == "csv":
        result = read_gaze_csv(path, participant=participant, session=session, max_bytes=max_bytes)
    else:
        raise GazeFormatError(path, "a known gaze format", fmt, column="format")
    result.report["session_rate_hz"] = session.sampling_rate_hz
    if session.format == "auto":
        result.report["detected_format"] = fmt
    return result
