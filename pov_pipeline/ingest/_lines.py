"""Reading a delivered text file into an Arrow array of lines, and parsing columns of tokens.

Gaze exports run to millions of lines, so nothing here loops over lines in Python: the newline
positions come from numpy, the lines become one Arrow string array built over the file's own bytes,
and numbers are parsed by Arrow casts. Line numbers are kept beside every row, so an error can still
name the line a lab has to fix.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pov_pipeline.ingest.errors import GazeFormatError

#: Default size guard: bigger files are refused before they are read into memory.
DEFAULT_MAX_BYTES = 2 * 1024**3

# RE2 syntax (pyarrow.compute); accepts what Arrow's float cast accepts, so it only runs to locate
# the first token a failed cast choked on.
_NUMBER_RE = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$|^(?i:[+-]?(?:nan|inf|infinity))$"


@dataclass
class LineFile:
    """A text file split into lines (newlines removed, CR/CRLF normalised, UTF-8).

    Attributes
    ----------
    path:
        The file.
    first_byte:
        First byte of each line (0 for an empty line), for cheap line classification.
    n_bytes:
        Size of the file on disk.
    ends_with_newline:
        False when the last line has no terminator, i.e. it may have been cut off mid-write.
    encoding:
        ``"utf-8"`` or ``"latin-1"`` (the fallback for files that are not valid UTF-8).
    notes:
        Human-readable remarks about repairs made while reading (for the reader's report).
    data:
        The normalised file content (UTF-8, ``\n`` line ends), for parsers that want bytes.
    line_starts:
        Byte offset of each line in ``data``.
    line_ends:
        Byte offset just past each line's last character (its terminator excluded) in ``data``.
    """

    path: Path
    first_byte: np.ndarray
    n_bytes: int
    ends_with_newline: bool
    encoding: str
    notes: list[str] = field(default_factory=list)
    data: bytes = b""
    line_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    line_ends: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _lines: pa.LargeStringArray | None = field(default=None, repr=False)

    @property
    def n_lines(self) -> int:
        """Number of lines, counting a last line without terminator."""
        return len(self.line_starts)

    @property
    def lines(self) -> pa.LargeStringArray:
        """One string per line, without the line terminator; ``lines[i]`` is line ``i + 1``.

        Built on first use: the fast paths of the readers work on ``data`` and never need it.
        """
        if self._lines is None:
            n_lines = self.n_lines
            # Dropping the newline bytes shifts line i left by i bytes; that gives contiguous
            # offsets, so the Arrow array can be built over one buffer without copying line by line.
            stripped = self.data.replace(b"\n", b"")
            offsets = np.empty(n_lines + 1, dtype=np.int64)
            offsets[:n_lines] = self.line_starts - np.arange(n_lines, dtype=np.int64)
            offsets[n_lines] = len(stripped)
            self._lines = pa.LargeStringArray.from_buffers(
                n_lines, pa.py_buffer(offsets), pa.py_buffer(stripped)
            )
        return self._lines

    def line_text(self, index: int) -> str:
        """Line ``index + 1`` as a string, without building :attr:`lines`."""
        return self.data[int(self.line_starts[index]) : int(self.line_ends[index])].decode("utf-8")

    def line_texts(self, indices: np.ndarray) -> list[str]:
        """The lines at ``indices`` as strings (for the few lines that are read in Python)."""
        data = self.data
        return [
            data[a:b].decode("utf-8")
            for a, b in zip(self.line_starts[indices].tolist(), self.line_ends[indices].tolist(), strict=True)
        ]


def check_size(path: Path, max_bytes: int) -> int:
    """Return the size of ``path`` in bytes, refusing missing files and files over ``max_bytes``."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise GazeFormatError(path, "an existing file", "no such file") from None
    if size > max_bytes:
        raise GazeFormatError(
            path,
            f"a file of at most {max_bytes:,} bytes",
            f"{size:,} bytes",
            note="raise max_bytes if the machine has the memory for it; files are read whole",
        )
    return size


def _is_utf8(data: bytes, chunk_bytes: int = 1 << 24) -> bool:
    """Validate UTF-8 in chunks, so a 2 GB file is not decoded into a 2 GB ``str`` just to check it."""
    if data.isascii():
        # Most exports are pure ASCII, which bytes.isascii tells ten times faster than decoding.
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), chunk_bytes):
            decoder.decode(view[start : start + chunk_bytes], final=start + chunk_bytes >= len(data))
    except UnicodeDecodeError:
        return False
    return True


def read_lines(path: str | PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> LineFile:
    """Read ``path`` into a :class:`LineFile`.

    Invalid UTF-8 is not fatal: gaze exports are mostly ASCII and non-UTF-8 bytes usually sit in
    free-text messages written by a Windows experiment script, so the file is decoded as latin-1
    instead and the first offending line is named in ``notes``.

    Parameters
    ----------
    path:
        File to read.
    max_bytes:
        Files larger than this are refused with a :class:`GazeFormatError`.
    """
    path = Path(path)
    n_bytes = check_size(path, max_bytes)
    data = path.read_bytes()
    notes: list[str] = []
    encoding = "utf-8"
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not _is_utf8(data):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_at = exc.start
        line = data.count(b"\n", 0, bad_at) + 1
        notes.append(
            f"not valid UTF-8 (first bad byte 0x{data[bad_at]:02x} on line {line}); decoded as latin-1"
        )
        data = data.decode("latin-1").encode("utf-8")
        encoding = "latin-1"
    if b"\r" in data:
        n_crlf = data.count(b"\r\n")
        data = data.replace(b"\r\n", b"\n")
        n_cr = data.count(b"\r")
        if n_cr:
            data = data.replace(b"\r", b"\n")
        notes.append(f"line endings normalised ({n_crlf} CRLF, {n_cr} bare CR)")
    ends_with_newline = data.endswith(b"\n") or not data
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    if not ends_with_newline:
        ends = np.append(ends, len(data))
    n_lines = len(ends)
    starts = np.empty(n_lines, dtype=np.int64)
    if n_lines:
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    nonempty = ends > starts
    first_byte = np.zeros(n_lines, dtype=np.uint8)
    first_byte[nonempty] = raw[starts[nonempty]]
    return LineFile(
        path, first_byte, n_bytes, ends_with_newline, encoding, notes, data, starts, ends.astype(np.int64)
    )


def parse_numbers(
    tokens: pa.Array,
    *,
    path: Path,
    line_numbers: np.ndarray,
    expected: str,
    column: str,
    null_tokens: tuple[str, ...] = ("",),
    decimal_comma: bool = False,
) -> np.ndarray:
    """Parse a string array into float64, with nulls and ``null_tokens`` as NaN.

    Parameters
    ----------
    tokens:
        Strings to parse (already split out of their lines, without surrounding whitespace).
    path:
        File the tokens come from, for the error message.
    line_numbers:
        1-based line number of each token.
    expected:
        Description used in the error, e.g. ``"a numeric x coordinate"``.
    column:
        Column name for the error.
    null_tokens:
        Tokens that mean "no value" (EyeLink writes ``.``; CSVs leave the field empty).
    decimal_comma:
        Accept ``,`` as decimal separator (Tobii Pro Lab in some locales).

    Returns
    -------
    np.ndarray
        float64 values; NaN, ``inf`` and ``-inf`` are passed through for the caller to judge.
    """
    if isinstance(tokens, pa.ChunkedArray):
        tokens = tokens.combine_chunks()
    try:
        return cast_numbers(tokens, null_tokens, decimal_comma)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Slow path: surrounding whitespace or quotes, or a genuinely bad token to report.
    tokens = unquote(tokens)
    try:
        return cast_numbers(tokens, null_tokens, decimal_comma)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if null_tokens:
            is_null = pc.is_in(tokens, value_set=pa.array(list(null_tokens), tokens.type))
            tokens = pc.if_else(is_null, pa.scalar(None, tokens.type), tokens)
        if decimal_comma:
            tokens = pc.replace_substring(tokens, ",", ".")
        good = pc.fill_null(pc.match_substring_regex(tokens, _NUMBER_RE), True)
        bad = np.flatnonzero(~good.to_numpy(zero_copy_only=False))
        index = int(bad[0]) if len(bad) else 0
        raise GazeFormatError(
            path, expected, tokens[index].as_py(), line=int(line_numbers[index]), column=column
        ) from None


def string_buffers(tokens: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Offsets and bytes of a string array without nulls, as numpy views; ``None`` otherwise.

    ``offsets[i]:offsets[i + 1]`` indexes token ``i`` in the bytes (which may hold more, before and
    after, when the array is a slice).
    """
    if not isinstance(tokens, pa.Array) or tokens.null_count:
        return None
    if not (pa.types.is_string(tokens.type) or pa.types.is_large_string(tokens.type)):
        return None
    _, offset_buf, data_buf = tokens.buffers()
    width = np.int64 if pa.types.is_large_string(tokens.type) else np.int32
    offsets = np.frombuffer(
        offset_buf, dtype=width, count=len(tokens) + 1, offset=tokens.offset * np.dtype(width).itemsize
    )
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets, data


def has_byte(tokens: pa.Array, byte: str) -> bool:
    """Whether any token contains the ASCII character ``byte`` (``pc.match_substring`` by memchr)."""
    buffers = string_buffers(tokens)
    if buffers is None:
        return bool(pc.any(pc.match_substring(tokens, byte)).as_py())
    offsets, data = buffers
    if not len(tokens):
        return False
    return bytes(data[int(offsets[0]) : int(offsets[-1])]).find(byte.encode("ascii")) >= 0


def cast_numbers(tokens: pa.Array, null_tokens: tuple[str, ...], decimal_comma: bool) -> np.ndarray:
    """Plain cast of ``tokens`` to float64 (``null_tokens`` as NaN); raises what Arrow raises."""
    buffers = string_buffers(tokens) if null_tokens == ("",) else None
    if buffers is not None and tokens.offset == 0:
        # Empty fields are the only null token of delimited files: find them by length and mark them
        # null in a validity bitmap, instead of comparing and rebuilding the strings.
        offsets, _ = buffers
        empty = offsets[1:] == offsets[:-1]
        if empty.any():
            bitmap = pa.py_buffer(np.packbits(~empty, bitorder="little"))
            tokens = pa.Array.from_buffers(tokens.type, len(tokens), [bitmap, *tokens.buffers()[1:]])
        null_tokens = ()
    if null_tokens:
        is_null = pc.is_in(tokens, value_set=pa.array(list(null_tokens), tokens.type))
        if pc.any(is_null).as_py():
            tokens = pc.if_else(is_null, pa.scalar(None, tokens.type), tokens)
    if decimal_comma:
        tokens = pc.replace_substring(tokens, ",", ".")
    values = pc.cast(tokens, pa.float64())
    return values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def unquote(tokens: pa.Array) -> pa.Array:
    """Trim whitespace and one pair of surrounding double quotes from each token."""
    buffers = string_buffers(tokens)
    if buffers is not None and len(tokens):
        offsets, data = buffers
        nonempty = offsets[1:] > offsets[:-1]
        first = data[offsets[:-1][nonempty]]
        last = data[offsets[1:][nonempty] - 1]
        # Tokens that begin and end with a printable ASCII character other than a space or a quote
        # are left as they are by trimming and unquoting, so the string kernels can be skipped.
        if np.all((first > 32) & (first < 127) & (first != 34) & (last > 32) & (last < 127)):
            return tokens
    tokens = pc.utf8_trim_whitespace(tokens)
    # The regex pass is the slow one; most exports quote nothing.
    if not pc.any(pc.starts_with(tokens, '"')).as_py():
        return tokens
    return pc.replace_substring_regex(tokens, pattern=r'^"(.*)"$', replacement=r"\1")
