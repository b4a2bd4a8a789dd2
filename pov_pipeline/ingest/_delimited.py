"""Delimited text (TSV/CSV) as columns of strings, with the line number of every row.

Rows are split by Arrow's CSV parser with every column typed as string (numbers are parsed later by
:func:`~pov_pipeline.ingest._lines.parse_numbers`, which can name the offending line). Splitting
with string kernels was five times slower on a 1M-row export.

Tab-separated files (never quoted) whose rows all have the header's field count take a faster
way: one compiled pass notes where each field begins (:func:`~pov_pipeline.ingest._scan.tab_fields`),
columns become strings only when asked for, and numeric columns of plain decimals are scanned
straight from the file's bytes. Any other file, or a row with another field count, goes through
Arrow's parser as before, which reports (or skips) that row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from pov_pipeline.ingest._lines import LineFile, cast_numbers, has_byte, parse_numbers, unquote
from pov_pipeline.ingest._scan import parse_line_numbers, string_array_of_ranges, tab_fields
from pov_pipeline.ingest.errors import GazeFormatError

_UNIT_SUFFIX = re.compile(r"\s*\[([^\]]*)\]\s*$")
_DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon"}


@dataclass
class TabFields:
    """Where the fields of a tab-separated file's rows lie in its bytes (see :func:`tab_fields`)."""

    data: np.ndarray  # the file's bytes (uint8)
    row_starts: np.ndarray  # byte offset of each row (int64)
    row_ends: np.ndarray  # byte offset past each row (int64)
    field_starts: np.ndarray  # (n_fields, n_rows) int32, relative to the row's start

    def ranges(self, j: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Byte ranges ``[starts, ends)`` of field ``j`` in every row (or in ``rows``)."""
        row_starts = self.row_starts if rows is None else self.row_starts[rows]
        rel = self.field_starts[j] if rows is None else self.field_starts[j][rows]
        starts = row_starts + rel
        if j + 1 < self.field_starts.shape[0]:
            after = self.field_starts[j + 1] if rows is None else self.field_starts[j + 1][rows]
            ends = row_starts + after - 1  # the tab before the next field
        else:
            ends = self.row_ends if rows is None else self.row_ends[rows]
        return starts, ends


@dataclass
class DelimitedTable:
    """Rows of a delimited file, as string columns.

    Attributes
    ----------
    path:
        The file.
    header:
        Column names as written (quotes and surrounding whitespace removed).
    names:
        Column names with a trailing unit in brackets removed (``"Recording timestamp [μs]"`` →
        ``"Recording timestamp"``), for lookups that should not depend on the export version.
    units:
        The bracketed unit of each column, or ``""``.
    columns:
        One string array per column (``""`` where a field is empty), in header order; ``None``
        for a column of ``fields`` not made yet.
    line_numbers:
        1-based line number of each data row.
    delimiter:
        The field separator.
    fields:
        Field positions of a tab-separated file read by the compiled pass, else ``None``.
    """

    path: Path
    header: list[str]
    names: list[str]
    units: list[str]
    columns: list[pa.Array | None]
    line_numbers: np.ndarray
    delimiter: str = "\t"
    fields: TabFields | None = None

    @property
    def n_rows(self) -> int:
        """Number of data rows."""
        return len(self.line_numbers)

    def has(self, name: str) -> bool:
        """Whether a column is present (by name without unit)."""
        return name in self.names

    def find(self, *candidates: str) -> str | None:
        """First candidate present, comparing case-insensitively; returns the canonical name."""
        lowered = {n.lower(): n for n in self.names}
        for candidate in candidates:
            if candidate.lower() in lowered:
                return lowered[candidate.lower()]
        return None

    def strings(self, name: str, rows: np.ndarray | None = None) -> pa.Array:
        """The column (or its ``rows``) as trimmed strings (empty string where the field is empty)."""
        return unquote(self._raw(name, rows)).cast(pa.string())

    def _raw(self, name: str, rows: np.ndarray | None) -> pa.Array:
        j = self.names.index(name)
        tokens = self.columns[j]
        if tokens is None:
            assert self.fields is not None
            if rows is not None:
                return string_array_of_ranges(self.fields.data, *self.fields.ranges(j, rows))
            tokens = self.columns[j] = string_array_of_ranges(self.fields.data, *self.fields.ranges(j))
        if rows is not None:
            tokens = tokens.take(pa.array(rows, pa.int64()))
        return tokens

    def numbers(
        self,
        name: str,
        expected: str,
        *,
        null_tokens: tuple[str, ...] = ("",),
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """The column (or its ``rows``) as float64; ``,`` is a decimal separator unless it delimits."""
        if self.fields is not None and null_tokens in (("",), ()):
            # Plain decimals straight from the file's bytes; anything else (a decimal comma, a
            # quote, an exponent, a bad token) is decided and reported by the string path below.
            scanned = parse_line_numbers(
                self.fields.data,
                *self.fields.ranges(self.names.index(name), rows),
                1,
                empty_is_nan=bool(null_tokens),
            )
            if scanned is not None:
                return scanned[0]
        if rows is not None:
            # Casting the whole column and picking rows from the floats is cheaper than picking
            # strings; a column the plain cast rejects (a comma, a bad token, maybe in a row not
            # asked for) goes the general way below, which decides and reports as before.
            full = self._raw(name, None)
            if not has_byte(full, ","):
                try:
                    return cast_numbers(full, null_tokens, False)[rows]
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass
        # Untrimmed tokens first: trimming every column costs more than the parse itself, and
        # parse_numbers trims only when the plain cast fails.
        tokens = self._raw(name, rows)
        decimal_comma = self.delimiter != "," and has_byte(tokens, ",")
        return parse_numbers(
            tokens,
            path=self.path,
            line_numbers=self.line_numbers if rows is None else self.line_numbers[rows],
            expected=expected,
            column=name,
            null_tokens=null_tokens,
            decimal_comma=bool(decimal_comma),
        )


def sniff_delimiter(header_line: str) -> str:
    """The most frequent of tab, semicolon and comma in a header line (tab wins ties)."""
    counts = {d: header_line.count(d) for d in ("\t", ";", ",")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_delimited(lf: LineFile, delimiter: str | None, notes: list[str]) -> DelimitedTable:
    """Split a :class:`LineFile` into header and string columns; ``delimiter=None`` sniffs it.

    Blank lines are skipped. A last line without terminator that has too few fields was cut off
    mid-write: it is dropped and a note added. Any other row whose field count differs from the
    header's is an error naming its line. In comma/semicolon files, double-quoted fields may contain
    the delimiter (not newlines); tab-separated files are read without quoting rules.
    """
    path = lf.path
    nonempty = np.flatnonzero(lf.first_byte != 0)
    if not len(nonempty):
        raise GazeFormatError(path, "a header row", "an empty file")
    header_index = int(nonempty[0])
    header_line = lf.line_text(header_index)
    if delimiter is None:
        delimiter = sniff_delimiter(header_line)
    elif delimiter not in header_line:
        # A file saved with another separator (Excel writes ';' in many locales) would otherwise
        # read as one column and fail later with a puzzling "missing column" message.
        other = sniff_delimiter(header_line)
        if other != delimiter and other in header_line:
            raise GazeFormatError(
                path,
                f"{_DELIMITER_NAMES.get(delimiter, repr(delimiter))}-separated columns",
                f"{_DELIMITER_NAMES.get(other, repr(other))}-separated",
                line=header_index + 1,
                note=f"header {header_line[:60]!r}; re-export with the vendor's default separator",
            )
    header = [h.strip().strip('"').strip() for h in header_line.split(delimiter)]
    names, units = [], []
    for h in header:
        match = _UNIT_SUFFIX.search(h)
        names.append(h[: match.start()] if match else h)
        units.append(match.group(1) if match else "")
    row_lines = nonempty[nonempty > header_index]
    kind = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
    if not len(row_lines):
        empty = [pa.array([], pa.string()) for _ in header]
        return DelimitedTable(path, header, names, units, empty, np.zeros(0, np.int64), delimiter)

    last_text = lf.line_text(lf.n_lines - 1) if not lf.ends_with_newline else None
    problems: list[tuple[int, str]] = []
    skipped: list[str] = []

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        if last_text is not None and row.text == last_text and row.actual_columns < row.expected_columns:
            skipped.append(row.text)
            return "skip"
        problems.append((row.actual_columns, row.text))
        return "error"

    if delimiter == "\t" and len(lf.data) < 2**31:
        data = np.frombuffer(lf.data, dtype=np.uint8)
        row_starts = lf.line_starts[row_lines].astype(np.int64)
        row_ends = lf.line_ends[row_lines].astype(np.int64)
        field_starts = np.empty((len(header), len(row_lines)), dtype=np.int32)
        if tab_fields(data, row_starts, row_ends, field_starts) < 0:
            fields = TabFields(data, row_starts, row_ends, field_starts)
            columns: list[pa.Array | None] = [None] * len(header)
            return DelimitedTable(path, header, names, units, columns, row_lines + 1, delimiter, fields)

    start = int(lf.line_starts[header_index + 1]) if header_index + 1 < lf.n_lines else len(lf.data)
    column_ids = [f"c{i}" for i in range(len(header))]
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(lf.data)[start:]),
            read_options=pa_csv.ReadOptions(column_names=column_ids),
            # Tab-separated exports (Tobii) never quote, and a stray " in a stimulus name must not
            # swallow the rest of the file; CSVs follow the usual quoting rules.
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                quote_char=False if delimiter == "\t" else '"',
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid_row,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(column_ids, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        if problems:
            n_found, text = problems[0]
            hits = np.flatnonzero(pc.equal(lf.lines, text).to_numpy(zero_copy_only=False))
            hits = hits[hits > header_index]
            raise GazeFormatError(
                path,
                f"{len(header)} {kind}-separated fields as in the header",
                f"{n_found} fields",
                line=int(hits[0]) + 1 if len(hits) else None,
            ) from None
        raise GazeFormatError(path, f"{kind}-separated rows", str(exc).splitlines()[0]) from None
    if skipped:
        notes.append(f"truncated last line {lf.n_lines} dropped ({skipped[0][:60]!r})")
        row_lines = row_lines[:-1]
    if table.num_rows != len(row_lines):
        raise GazeFormatError(
            path, f"one row per non-empty line ({len(row_lines)})", f"{table.num_rows} rows",
            note="quoted fields must not contain line breaks",
        )  # fmt: skip
    arrow_columns: list[pa.Array | None] = [table.column(i).combine_chunks() for i in range(len(header))]
    return DelimitedTable(path, header, names, units, arrow_columns, row_lines + 1, delimiter)


def time_scale_to_us(unit: str | None, column: str, path: Path) -> float:
    """Multiplier from a time unit name (``us``, ``µs``, ``μs``, ``ms``, ``s``) to µs."""
    scale = {"us": 1.0, "µs": 1.0, "μs": 1.0, "microseconds": 1.0, "ms": 1e3, "milliseconds": 1e3, "s": 1e6}
    key = (unit or "").strip().lower()
    if key not in scale:
        raise GazeFormatError(path, "a time unit of us, ms or s", unit, column=column)
    return scale[key]
