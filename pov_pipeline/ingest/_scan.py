"""Compiled (numba) scanning of plain decimal numbers in text lines.

A sample line of an EyeLink ASC file is a handful of short decimals (``3965634\t937.5\t550.4
\t835.0\t...``). Parsing them is most of the time it takes to read the file. Arrow's CSV reader
was the fast path so far (about 120 MB/s here). A scan that accepts only the plain form
``-?digits(.digits)?`` of at most 15 digits is several times faster. In that form the value is
``digits / 10**decimals``: both operands are exact in float64 (below 2**53 and 10**22), so the
one IEEE division is correctly rounded. That is what Arrow's parser returns as well (every
correctly rounded parser agrees). Anything else (an exponent, a ``+``, a stray character, a
missing field) makes the scan give up, and the caller falls back to its general path, which
reports the offending line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from numba import njit

from pov_pipeline.gaze import _kernels  # (also sets numba's cache folder before the kernel below)
from pov_pipeline.gaze._fast import string_pool

#: Most digits a plain decimal may have for ``digits / 10**decimals`` to be exact in float64.
MAX_DIGITS = 15
_POW10 = np.array([10.0**k for k in range(MAX_DIGITS + 1)])


@njit(cache=True)
def _is_space(c: np.uint8) -> bool:
    """ASCII whitespace as Arrow's ``ascii_split_whitespace`` splits on it."""
    return c == 32 or (c >= 9 and c <= 13)


@njit(cache=True)
def scan_decimals(
    data: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    pow10: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
    empty_is_nan: bool = False,
) -> bool:
    """Parse the first ``out.shape[0]`` whitespace-separated tokens of every line into ``out``.

    Line ``i`` is ``data[starts[i]:ends[i]]``; token ``f`` of it goes to ``out[f, i]``. A token
    must be ``-?digits(.digits)?`` with at most :data:`MAX_DIGITS` digits, or a lone ``.`` (lost
    data, NaN) in any field but the first. Tokens after the first ``out.shape[0]`` are not read.
    With ``empty_is_nan`` (one field per line: a delimited file's field) an empty line reads as
    NaN.

    Returns False as soon as a line has fewer tokens or a token has another form (``out`` is then
    partly written); the caller's general parser decides about such lines.
    """
    n_fields = out.shape[0]
    for i in range(starts.size):
        p = starts[i]
        e = ends[i]
        for f in range(n_fields):
            while p < e and _is_space(data[p]):
                p += 1
            if p >= e:
                # Only a field with nothing in it is empty; blanks are for the general path.
                if empty_is_nan and n_fields == 1 and starts[i] == e:
                    out[f, i] = np.nan
                    continue
                return False
            neg = data[p] == 45  # '-'
            p += neg
            mantissa = 0
            n_int = 0
            while p < e and data[p] >= 48 and data[p] <= 57:
                mantissa = mantissa * 10 + (data[p] - 48)
                n_int += 1
                p += 1
            n_frac = 0
            if p < e and data[p] == 46:  # '.'
                p += 1
                while p < e and data[p] >= 48 and data[p] <= 57:
                    mantissa = mantissa * 10 + (data[p] - 48)
                    n_frac += 1
                    p += 1
            if p < e and not _is_space(data[p]):
                return False
            if n_int == 0:
                # Only a lone '.' (lost data) may lack digits before the point.
                if neg or n_frac or f == 0 or data[p - 1] != 46:
                    return False
                out[f, i] = np.nan
                continue
            if n_frac == 0 and data[p - 1] == 46:
                return False  # "5." is not the plain form
            if n_int + n_frac > MAX_DIGITS:
                return False
            value = np.float64(mantissa) / pow10[n_frac]
            out[f, i] = -value if neg else value
    return True


def parse_line_numbers(
    data: bytes | bytearray | memoryview,
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    n_fields: int,
    *,
    empty_is_nan: bool = False,
) -> list[npt.NDArray[np.float64]] | None:
    """The first ``n_fields`` numbers of each line ``data[starts[i]:ends[i]]`` as float64 columns.

    ``None`` when any line holds fewer tokens or a token other than a plain decimal (or a lone
    ``.`` after the first field; see :func:`scan_decimals`, also for ``empty_is_nan``).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    out = np.empty((n_fields, len(starts)))
    ok = scan_decimals(
        buf,
        np.ascontiguousarray(starts, dtype=np.int64),
        np.ascontiguousarray(ends, dtype=np.int64),
        _POW10,
        out,
        empty_is_nan,
    )
    return list(out) if ok else None


def string_column(codes: npt.NDArray[np.integer], values: Sequence[str]) -> pa.Array:
    """``values[codes]`` as an Arrow ``string`` array, written run by run into its buffers.

    Equal to casting the dictionary array of ``codes`` and ``values`` to ``string``. Key columns
    (participant, stimulus, eye) come in long runs of one value: each run is written once and
    doubled by block copies, about ten times faster than Arrow's per-row dictionary decode.
    """
    pool = tuple(values)
    pool_bytes, lengths, width = string_pool(pool)
    run_codes, run_counts = _kernels.code_runs(np.ascontiguousarray(codes, dtype=np.intp))
    total = int((run_counts * lengths[run_codes]).sum()) if run_codes.size else 0
    if total >= 2**31:
        # Past string's 32-bit offsets: Arrow decides (and says why it cannot).
        indices = pa.array(np.asarray(codes, dtype=np.int32))
        return pa.DictionaryArray.from_arrays(indices, pa.array(pool)).cast(pa.string())
    _, data = _kernels.run_string_buffers(run_codes, run_counts, pool_bytes, lengths, width, False)
    offsets = _run_offsets32(run_codes, run_counts, lengths)
    return pa.StringArray.from_buffers(offsets.size - 1, pa.py_buffer(offsets), pa.py_buffer(data))


@njit(cache=True)
def _run_offsets32(
    run_codes: npt.NDArray[np.intp], run_counts: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]
) -> npt.NDArray[np.int32]:
    """Arrow ``string`` (32-bit) offsets of ``lengths[run_codes[r]]``-byte values, ``run_counts[r]`` each."""
    n = 0
    for r in range(run_counts.size):
        n += run_counts[r]
    offsets = np.empty(n + 1, dtype=np.int32)
    offsets[0] = 0
    i = 0
    o = 0
    for r in range(run_codes.size):
        size_one = lengths[run_codes[r]]
        seg = offsets[i + 1 : i + 1 + run_counts[r]]
        for q in range(seg.size):
            seg[q] = o + size_one * (q + 1)
        i += run_counts[r]
        o += size_one * run_counts[r]
    return offsets


@njit(cache=True)
def tab_fields(
    data: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    out: npt.NDArray[np.int32],
) -> int:
    """Where each tab-separated field of each line begins, relative to its line, into ``out``.

    ``out`` is ``(n_fields, n_lines)`` (a field's positions lie together: columns are read one at
    a time); field ``j`` of line ``i`` spans from ``starts[i] + out[j, i]`` to the next tab (or
    the line's end). Returns ``-1``, or the first line whose field count is not ``n_fields``
    (``out`` is then incomplete).
    """
    n_fields = out.shape[0]
    for i in range(starts.size):
        s = starts[i]
        out[0, i] = 0
        k = 0
        for p in range(s, ends[i]):
            if data[p] == 9:
                k += 1
                if k >= n_fields:
                    return i
                out[k, i] = p + 1 - s
        if k != n_fields - 1:
            return i
    return -1


@njit(cache=True)
def gather_strings(
    data: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]:
    """Arrow ``string`` (32-bit) offsets and bytes of the byte ranges ``data[starts[i]:ends[i]]``
    (under 2 GiB in all)."""
    n = starts.size
    offsets = np.empty(n + 1, dtype=np.int32)
    offsets[0] = 0
    for i in range(n):
        offsets[i + 1] = offsets[i] + (ends[i] - starts[i])
    out = np.empty(offsets[n], dtype=np.uint8)
    for i in range(n):
        src = data[starts[i] : ends[i]]
        dst = out[offsets[i] : offsets[i + 1]]
        for q in range(src.size):
            dst[q] = src[q]
    return offsets, out


def string_array_of_ranges(
    data: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
) -> pa.Array:
    """The byte ranges ``data[starts[i]:ends[i]]`` (valid UTF-8, under 2 GiB in all) as Arrow ``string``."""
    offsets, chars = gather_strings(data, starts, ends)
    return pa.StringArray.from_buffers(starts.size, pa.py_buffer(offsets), pa.py_buffer(chars))
