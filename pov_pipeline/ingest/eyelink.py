"""SR Research EyeLink ASC (``edf2asc`` output) → canonical samples.

An ASC file interleaves header lines (``**``), messages (``MSG <t> [offset] text``), recording
blocks (``START`` … ``END`` with ``SAMPLES GAZE LEFT RIGHT RATE 500.00 ...`` declaring eyes and
rate), parser events (``SFIX``/``EFIX``/``SSACC``/``ESACC``/``SBLINK``/``EBLINK``), ``INPUT`` and
``BUTTON`` lines, and the samples themselves: lines that start with the time stamp in ms, then
x, y, pupil per recorded eye, with ``.`` for a lost coordinate.

Sample lines are never visited one by one in Python: lines are classified by their first byte, and
the runs of sample lines go to Arrow's CSV reader (tab-separated numbers, the edf2asc layout) in one
pass. Files it cannot take as they are (space-separated fields, empty fields, bad tokens) are split
by Arrow's string kernels and parsed by Arrow casts, which name the offending line and field. Only
messages and block headers (a small share of a real file) are read as Python strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from pov_pipeline.ingest._lines import DEFAULT_MAX_BYTES, LineFile, parse_numbers, read_lines
from pov_pipeline.ingest._samples import ReadResult, TrialMarkers, assemble, assign_trials
from pov_pipeline.ingest._scan import parse_line_numbers
from pov_pipeline.ingest.errors import GazeFormatError

if TYPE_CHECKING:
    from pov_pipeline.ingest.session import SessionInfo

#: Trial start markers, tried in order; the first that occurs in the file is used. Group 1, when
#: present, is the trial label (``TRIALID 7`` → trial 7). Later patterns cover common home-grown
#: conventions (``start_trial 3``, ``TRIAL_START``).
DEFAULT_TRIAL_START_PATTERNS: tuple[str, ...] = (
    r"^TRIALID\s+(\S+)",
    r"^(?:TRIAL_START|TRIALSTART|TrialStart|start_trial|START_TRIAL)(?:\s+(\S+))?\s*$",
    r"^TRIAL\s+(\S+)\s+START\b",
)
#: Trial end markers; samples after one and before the next start are outside trials.
DEFAULT_TRIAL_END_PATTERNS: tuple[str, ...] = (
    r"^(?:TRIAL_END|TRIALEND|TrialEnd|TRIAL_RESULT|TRIAL_STOP|stop_trial|end_trial|END_TRIAL)\b",
    r"^TRIAL\s+\S+\s+(?:END|STOP)\b",
)
#: Message naming the stimulus of the current trial (Data Viewer's trial variable convention).
DEFAULT_STIMULUS_PATTERN = r"^!V\s+TRIAL_VAR\s+(?i:stimulus_id|stimulus|stim_id|image_id|image)\s+(.*?)\s*$"

# RE2's \s as the string kernels used it: no vertical tab, unlike Python's.
_CONTROL_RE = re.compile(r"(?:MSG|SAMPLES|START)[\t\n\f\r ]")
# The CSV reader matches null values before trimming, and edf2asc pads fields to a fixed width.
_PADDED_DOTS = [" " * lead + "." + " " * trail for lead in range(17) for trail in range(3)]
_MSG_RE = re.compile(r"^MSG\s+(\S+)\s+(?:(-?\d+)\s+(?=\S))?(.*?)\s*$")
_DIGIT0, _DIGIT9 = ord("0"), ord("9")


def _sample_layouts(
    lf_lines: list[tuple[int, str]], path: Path
) -> tuple[np.ndarray, list[tuple[str, ...]], list[float | None]]:
    """Parse ``SAMPLES``/``START`` lines: positions, eyes and declared rate of each recording block."""
    positions: list[int] = []
    eyes: list[tuple[str, ...]] = []
    rates: list[float | None] = []
    starts: list[tuple[int, tuple[str, ...]]] = []
    for index, text in lf_lines:
        tokens = text.split()
        keyword = tokens[0]
        line_eyes = tuple(e for e, tok in (("left", "LEFT"), ("right", "RIGHT")) if tok in tokens)
        if keyword == "START":
            starts.append((index, line_eyes))
            continue
        if "GAZE" not in tokens:
            found = "HREF" if "HREF" in tokens else (tokens[1] if len(tokens) > 1 else "")
            raise GazeFormatError(
                path,
                "GAZE sample units (screen pixels) in the SAMPLES line",
                found,
                line=index + 1,
                note="re-export the EDF with edf2asc's default gaze setting (-sg), "
                "not HREF (-sh) or raw pupil (-sp)",
            )
        if not line_eyes:
            raise GazeFormatError(path, "LEFT and/or RIGHT in the SAMPLES line", text, line=index + 1)
        rate = None
        if "RATE" in tokens and tokens.index("RATE") + 1 < len(tokens):
            try:
                rate = float(tokens[tokens.index("RATE") + 1])
            except ValueError:
                rate = None
        positions.append(index)
        eyes.append(line_eyes)
        rates.append(rate)
    starts = [(i, e) for i, e in starts if e]
    if not positions and starts:
        # Some converters drop the SAMPLES line; START names the eyes too, just not the rate.
        positions = [i for i, _ in starts]
        eyes = [e for _, e in starts]
        rates = [None] * len(starts)
    return np.asarray(positions, dtype=np.int64), eyes, rates


def _parse_messages(
    messages: list[tuple[int, str]],
    start_patterns: Sequence[str],
    end_patterns: Sequence[str],
    stimulus_pattern: str,
) -> tuple[TrialMarkers, str | None]:
    texts: list[tuple[int, str]] = []
    for index, line in messages:
        match = _MSG_RE.match(line)
        if match:
            texts.append((index, match.group(3)))
    used = None
    start_pos: list[int] = []
    labels: list[str] = []
    for pattern in start_patterns:
        regex = re.compile(pattern)
        for index, text in texts:
            match = regex.match(text)
            if match:
                start_pos.append(index)
                label = match.group(1) if regex.groups and match.group(1) is not None else str(len(labels))
                labels.append(label)
        if start_pos:
            used = pattern
            break
    end_regexes = [re.compile(p) for p in end_patterns]
    end_pos = [index for index, text in texts if any(r.match(text) for r in end_regexes)]
    stimulus_ids = [""] * len(start_pos)
    stim_regex = re.compile(stimulus_pattern)
    starts_arr = np.asarray(start_pos, dtype=np.int64)
    for index, text in texts:
        match = stim_regex.match(text)
        if match:
            # Experiment Builder writes trial variables after the trial ends, so a stimulus
            # message belongs to the latest trial started above it, ended or not.
            k = int(np.searchsorted(starts_arr, index, side="right")) - 1
            if k >= 0:
                stimulus_ids[k] = match.group(1).strip().strip("\"'")
    markers = TrialMarkers(starts_arr, labels, np.asarray(end_pos, dtype=np.int64), stimulus_ids)
    return markers, used


def read_eyelink_asc(
    path: str | PathLike[str],
    *,
    participant: str,
    session: SessionInfo | None = None,
    eye: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    trial_start_patterns: Sequence[str] = DEFAULT_TRIAL_START_PATTERNS,
    trial_end_patterns: Sequence[str] = DEFAULT_TRIAL_END_PATTERNS,
    stimulus_pattern: str = DEFAULT_STIMULUS_PATTERN,
) -> ReadResult:
    """Read an EyeLink ASC export into ``schemas.RAW_GAZE`` rows.

    Trials come from messages (``MSG <t> TRIALID <n>`` … ``MSG <t> TRIAL_END``, stimulus from
    ``MSG <t> !V TRIAL_VAR stimulus_id <sid>``). A sample belongs to the trial whose start marker is
    the latest one above it in the file, unless an end marker came in between; other samples are
    dropped and counted. Without any start marker the whole recording is trial 0 with stimulus
    id ``""``. Integer trial labels are kept; otherwise trials are numbered 0, 1, ... in order.

    Pupil values of 0 (EyeLink's "no pupil") become NaN. Time stamps are ms in the file (``.5`` at
    2000 Hz) and µs in the table.

    Parameters
    ----------
    path:
        The ``.asc`` file.
    participant:
        Participant id written into every row.
    session:
        Session metadata; supplies ``eye`` when ``eye`` is not given, and the declared rate when the
        file declares none.
    eye:
        ``left``/``right`` keeps only that eye when the file recorded it; ``binocular`` or ``None``
        keeps every recorded eye. Sample lines before any ``SAMPLES`` header are read as this eye
        (binocular when they have 7 or more fields and no eye is given).
    max_bytes:
        Size guard: bigger files are refused before reading.
    trial_start_patterns, trial_end_patterns, stimulus_pattern:
        Regular expressions matched against message text (after the time stamp and optional offset).

    Raises
    ------
    GazeFormatError
        Empty file, HREF or raw sample units, no samples, a malformed sample line (naming its line and
        field), time going backwards, or no samples inside trials.
    """
    eye = eye if eye is not None else (session.eye if session is not None else None)
    lf = read_lines(path, max_bytes=max_bytes)
    path = lf.path
    report: dict[str, Any] = {
        "format": "eyelink_asc",
        "file": path.name,
        "n_bytes": lf.n_bytes,
        "n_lines": lf.n_lines,
        "encoding": lf.encoding,
        "notes": list(lf.notes),
    }
    if not np.any(lf.first_byte):
        raise GazeFormatError(path, "EyeLink ASC content", "an empty file")

    first = lf.first_byte
    is_sample = (first >= _DIGIT0) & (first <= _DIGIT9)
    # Messages and block headers start with MS, SA or ST (parser events with SF, SS, SB, E...); only
    # those few lines are read as Python strings.
    candidates = np.flatnonzero(np.isin(first, np.frombuffer(b"MS", dtype=np.uint8)))
    raw = np.frombuffer(lf.data, dtype=np.uint8)
    second_at = lf.line_starts[candidates] + 1
    second = np.zeros(len(candidates), dtype=np.uint8)
    has_second = second_at < lf.line_ends[candidates]
    second[has_second] = raw[second_at[has_second]]
    prefix = first[candidates].astype(np.uint16) << 8 | second
    keep = np.isin(prefix, [ord("M") << 8 | ord("S"), ord("S") << 8 | ord("A"), ord("S") << 8 | ord("T")])
    candidates = candidates[keep]
    cand_text = lf.line_texts(candidates)
    control = [(i, t) for i, t in zip(candidates.tolist(), cand_text, strict=True) if _CONTROL_RE.match(t)]
    headers = [(i, t) for i, t in control if not t.startswith("MSG")]
    messages = [(i, t) for i, t in control if t.startswith("MSG")]

    block_pos, block_eyes, block_rates = _sample_layouts(headers, path)
    sample_idx = np.flatnonzero(is_sample)

    # A last line cut off mid-write is dropped rather than failing the whole file.
    if not lf.ends_with_newline and len(sample_idx) and sample_idx[-1] == lf.n_lines - 1:
        last = lf.line_text(lf.n_lines - 1)
        if not _complete_sample_line(last, block_eyes[-1] if len(block_eyes) else None):
            sample_idx = sample_idx[:-1]
            report["notes"].append(f"truncated last line {lf.n_lines} dropped: {last[:60]!r}")
            report["truncated_last_line_dropped"] = True
    if not len(sample_idx):
        raise GazeFormatError(path, "sample lines (a time stamp followed by x, y, pupil)", "none")

    rates = [r for r in block_rates if r is not None]
    declared = rates[0] if rates else (session.sampling_rate_hz if session is not None else None)
    report["declared_rate_hz"] = declared
    report["declared_rate_source"] = "file" if rates else ("session" if declared else None)
    if len(set(rates)) > 1:
        report["declared_rates_hz"] = sorted(set(rates))
    report["n_recording_blocks"] = len(block_pos)

    # Layout of each sample line: which eyes its block recorded.
    layouts: list[tuple[str, ...]] = list(dict.fromkeys(block_eyes))
    block_of = np.searchsorted(block_pos, sample_idx, side="right") - 1
    layout_of_block = np.array([layouts.index(e) for e in block_eyes], dtype=np.int64)
    layout = np.where(block_of >= 0, layout_of_block[np.maximum(block_of, 0)] if len(block_pos) else -1, -1)
    if np.any(layout < 0):
        fallback = _fallback_layout(lf.line_text(int(sample_idx[layout < 0][0])), eye)
        if fallback not in layouts:
            layouts.append(fallback)
        layout[layout < 0] = layouts.index(fallback)
        report["notes"].append(f"samples before any SAMPLES line read as {'+'.join(fallback)}")

    n = len(sample_idx)
    t_ms = np.empty(n, dtype=np.float64)
    xyz = {e: [np.full(n, np.nan) for _ in range(3)] for e in ("left", "right")}
    present = {e: np.zeros(n, dtype=bool) for e in ("left", "right")}
    for code, eyes in enumerate(layouts):
        if not eyes:
            continue
        rows = np.flatnonzero(layout == code)
        if not len(rows):
            continue
        line_idx = sample_idx[rows]
        line_numbers = line_idx + 1
        n_fields = 1 + 3 * len(eyes)
        fast = _parse_sample_lines_fast(lf, line_idx, n_fields)
        if fast is not None:
            t_ms[rows] = fast[0]
            for k, e in enumerate(eyes):
                for j in range(3):
                    xyz[e][j][rows] = fast[1 + 3 * k + j]
                present[e][rows] = True
            continue
        lines = lf.lines.take(pa.array(line_idx))
        fields = pc.ascii_split_whitespace(lines, max_splits=n_fields)
        lengths = pc.list_value_length(fields).to_numpy(zero_copy_only=False)
        short = np.flatnonzero(lengths < n_fields)
        if len(short):
            i = int(short[0])
            raise GazeFormatError(
                path,
                f"{n_fields} fields (time, then x, y, pupil for {' and '.join(eyes)})",
                lines[i].as_py(),
                line=int(line_numbers[i]),
            )
        t_ms[rows] = parse_numbers(
            pc.list_element(fields, 0),
            path=path,
            line_numbers=line_numbers,
            expected="a numeric time stamp",
            column="t",
            null_tokens=(),
        )
        for k, e in enumerate(eyes):
            for j, name in enumerate(("x coordinate", "y coordinate", "pupil size")):
                xyz[e][j][rows] = parse_numbers(
                    pc.list_element(fields, 1 + 3 * k + j),
                    path=path,
                    line_numbers=line_numbers,
                    expected=f"a numeric {name} or '.'",
                    column=f"{name.split()[0]}_{e}",
                    null_tokens=(".",),
                )
            present[e][rows] = True

    bad_t = np.flatnonzero(~np.isfinite(t_ms))
    if len(bad_t):
        i = int(bad_t[0])
        raise GazeFormatError(
            path, "a finite time stamp", str(t_ms[i]), line=int(sample_idx[i]) + 1, column="t"
        )
    t_us = np.rint(t_ms * 1000.0).astype(np.int64)
    report["n_sample_lines"] = n

    markers, used = _parse_messages(messages, trial_start_patterns, trial_end_patterns, stimulus_pattern)
    report["trial_marker"] = used
    report["n_trials_marked"] = len(markers.start_labels)
    if len(markers.start_labels):
        trial_index = assign_trials(sample_idx, markers)
        labels, stimuli = markers.start_labels, markers.stimulus_ids
    else:
        trial_index = np.zeros(n, dtype=np.int64)
        labels, stimuli = ["0"], [""]
    per_eye = {
        e: (xyz[e][0], xyz[e][1], np.where(xyz[e][2] > 0, xyz[e][2], np.nan), present[e], present[e])
        for e in ("left", "right")
        if present[e].any()
    }
    return assemble(
        path=path,
        participant=participant,
        report=report,
        t_us=t_us,
        line_numbers=sample_idx + 1,
        trial_index=trial_index,
        trial_labels=labels,
        trial_stimulus=stimuli,
        per_eye=per_eye,
        eye=eye,
    )


def _parse_sample_lines_fast(lf: LineFile, line_idx: np.ndarray, n_fields: int) -> list[np.ndarray] | None:
    """Parse the first ``n_fields`` numbers of sample lines fast, or ``None``.

    Splitting millions of lines with string kernels and casting each column is the bulk of the
    reader's time. Two fast paths give exactly the numbers the general path would:

    - a compiled scan (:func:`~pov_pipeline.ingest._scan.parse_line_numbers`) when the first
      ``n_fields`` whitespace tokens of every line are plain decimals (``.`` after the time stamp);
    - else Arrow's CSV reader, which splits and casts in one pass over the lines' own bytes, when
      every line has the same number of tab-separated fields and each of the first ``n_fields``
      holds exactly one number (or ``.`` after the time stamp).

    Anything else (space-separated files with exponents, empty fields, a bad token, a ``.`` time
    stamp) returns ``None`` so the general path reads the lines and names the offending line and
    field.
    """
    if not len(line_idx):
        return None
    starts = lf.line_starts[line_idx]
    ends = lf.line_ends[line_idx]
    # Plain decimals (what edf2asc writes) are scanned in compiled code, several times faster
    # than the CSV reader; any other token leaves the lines to it.
    scanned = parse_line_numbers(lf.data, starts, ends, n_fields)
    if scanned is not None:
        return scanned
    # Runs of consecutive sample lines are contiguous in the file; only the few lines between them
    # (events, messages) have to be cut out.
    breaks = np.flatnonzero(np.diff(line_idx) != 1)
    run_first = np.concatenate([[0], breaks + 1])
    run_last = np.concatenate([breaks, [len(line_idx) - 1]])
    data = memoryview(lf.data)
    pieces = [data[a:b] for a, b in zip(starts[run_first].tolist(), ends[run_last].tolist(), strict=True)]
    block = b"\n".join(pieces) + b"\n"
    names = [f"f{j}" for j in range(n_fields)]
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(block),
            read_options=pa_csv.ReadOptions(autogenerate_column_names=True, use_threads=False),
            parse_options=pa_csv.ParseOptions(delimiter="\t", quote_char=False, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.float64()),
                include_columns=names,
                null_values=_PADDED_DOTS,
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != len(line_idx) or table.num_columns != n_fields:
        return None
    if table.column(0).null_count:
        # A '.' time stamp is an error the general path reports with its line.
        return None
    return [table.column(j).to_numpy().astype(np.float64, copy=False) for j in range(n_fields)]


def _complete_sample_line(line: str, eyes: tuple[str, ...] | None) -> bool:
    """Whether a (possibly cut-off) last sample line has all its numeric fields."""
    n_fields = 1 + 3 * max(len(eyes) if eyes else 1, 1)
    tokens = line.split()
    if len(tokens) < n_fields:
        return False
    try:
        [float(tok) for tok in tokens[:n_fields] if tok != "."]
    except ValueError:
        return False
    # A following field that is cut short (flags like "..." or "...C") cannot be told apart from a
    # complete one, so a line with all numeric fields counts as complete.
    return True


def _fallback_layout(first_line: str, eye: str | None) -> tuple[str, ...]:
    if eye in ("left", "right"):
        return (eye,)
    if eye == "binocular":
        return ("left", "right")
    return ("left", "right") if len(first_line.split()) >= 7 else ("left",)
