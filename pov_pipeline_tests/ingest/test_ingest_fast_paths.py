"""The readers' fast paths give exactly what the general paths give, and hand over when they must.

Each fast path (Arrow's CSV reader for EyeLink sample lines, numpy views of string buffers for
trimming, empty fields and validity words) is compared with the general path on the same input:
same table bit for bit, same report, same error message for bad input.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from ingest_synth import write_synthetic_asc

import pov_pipeline.ingest.eyelink as eyelink
from pov_pipeline.ingest import GazeFormatError, read_eyelink_asc
from pov_pipeline.ingest._lines import cast_numbers, has_byte, read_lines, unquote
from pov_pipeline.ingest._samples import _median_int

_SAMPLE_LINE = re.compile(r"^[0-9]")


def _same_table(a: pa.Table, b: pa.Table) -> None:
    assert a.schema == b.schema
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        x = a.column(name).to_numpy(zero_copy_only=False)
        y = b.column(name).to_numpy(zero_copy_only=False)
        if x.dtype.kind == "f":
            # Bit for bit, NaN payloads included.
            assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), name
        else:
            assert np.array_equal(x, y), name


def _read_both(path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> tuple[object, object, int]:
    """Read with the fast path allowed and with it disabled; return both outcomes and fast-path hits."""
    calls = {"hit": 0}
    original = eyelink._parse_sample_lines_fast

    def spy(*args: object) -> object:
        result = original(*args)
        calls["hit"] += result is not None
        return result

    outcomes = []
    for fast in (spy, lambda *args: None):
        monkeypatch.setattr(eyelink, "_parse_sample_lines_fast", fast)
        try:
            outcomes.append(read_eyelink_asc(path, participant="p01", **kwargs))
        except GazeFormatError as exc:
            outcomes.append(str(exc))
    monkeypatch.setattr(eyelink, "_parse_sample_lines_fast", original)
    return outcomes[0], outcomes[1], calls["hit"]


def _rewrite_samples(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    lines = path.read_text().split("\n")
    out = [edit(k, line) if _SAMPLE_LINE.match(line) else line for k, line in enumerate(lines)]
    path.write_text("\n".join(out))


def _assert_same(fast: object, general: object) -> None:
    assert type(fast) is type(general)
    if isinstance(fast, str):
        assert fast == general
    else:
        _same_table(fast.samples, general.samples)  # type: ignore[attr-defined]
        assert fast.report == general.report  # type: ignore[attr-defined]


@pytest.mark.parametrize("binocular", [False, True])
@pytest.mark.parametrize("rate_hz", [500.0, 2000.0])
def test_fast_path_taken_and_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, binocular: bool, rate_hz: float
) -> None:
    path = tmp_path / "a.asc"
    write_synthetic_asc(path, n_trials=4, samples_per_trial=80, binocular=binocular, rate_hz=rate_hz, seed=3)
    fast, general, hits = _read_both(path, monkeypatch)
    assert hits == 1
    _assert_same(fast, general)


def _with_field(line: str, index: int, token: str) -> str:
    fields = line.split("\t")
    fields[index] = token
    return "\t".join(fields)


# Each edit either keeps a fast path's assumptions (a hit) or breaks them; in both cases the outcome,
# including the error message and its line, must equal the general path's. The two numbers are the
# hits with the compiled scan first, and with only Arrow's CSV reader (the scan switched off): the
# scan splits on any whitespace as the general path does, so it also takes spaced and padded lines.
EDITS = {
    "spaces_only": (lambda k, line: line.replace("\t", " "), 1, 0),
    "empty_fields": (lambda k, line: line.replace("\t", "\t\t"), 1, 0),
    "vertical_tab": (lambda k, line: line.replace("\t", "\x0b", 1) if k % 7 == 0 else line, 1, 0),
    "no_flags_some_lines": (lambda k, line: line.rsplit("\t", 1)[0] if k % 5 == 0 else line, 1, 0),
    "extra_columns": (lambda k, line: line + "\t  12.5\t 3.0", 1, 1),
    "trailing_space": (lambda k, line: line + "  ", 1, 1),
    "bad_token": (lambda k, line: line.replace(".", "x", 1) if k == 40 else line, 0, 0),
    "bad_time": (lambda k, line: "1..5" + line[line.index("\t") :] if k == 40 else line, 0, 0),
    "time_with_space": (lambda k, line: "1 5" + line[line.index("\t") :] if k == 40 else line, 1, 0),
    "short_line": (lambda k, line: "\t".join(line.split("\t")[:2]) if k == 40 else line, 0, 0),
    "empty_pupil": (lambda k, line: "\t".join([*line.split("\t")[:3], "", "..."]) if k == 40 else line, 0, 0),
    "nan_inf": (lambda k, line: line.replace("\t", "\tnan ", 1) if k == 41 else line, 0, 0),
    "exponent": (lambda k, line: _with_field(line, 1, "1e2") if k == 41 else line, 1, 1),
    "plus_sign": (lambda k, line: _with_field(line, 1, "+937.5") if k == 41 else line, 1, 1),
    "trailing_point": (lambda k, line: line.replace("\t", ".\t", 1) if k == 41 else line, 1, 1),
    "negative_zero": (lambda k, line: _with_field(line, 1, "-0.0") if k == 41 else line, 1, 1),
    "sixteen_digits": (lambda k, line: _with_field(line, 1, "1234567.890123456") if k == 41 else line, 1, 1),
}


@pytest.mark.parametrize("scan", [True, False])
@pytest.mark.parametrize("name", sorted(EDITS))
def test_fast_path_hands_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, scan: bool) -> None:
    edit, scan_hits, csv_hits = EDITS[name]
    if not scan:
        monkeypatch.setattr(eyelink, "parse_line_numbers", lambda *args: None)
    path = tmp_path / "a.asc"
    write_synthetic_asc(path, n_trials=3, samples_per_trial=60, seed=5)
    _rewrite_samples(path, edit)
    fast, general, hits = _read_both(path, monkeypatch)
    _assert_same(fast, general)
    assert hits == (scan_hits if scan else csv_hits)


def test_error_names_line_from_fast_input(tmp_path: Path) -> None:
    path = tmp_path / "a.asc"
    write_synthetic_asc(path, n_trials=2, samples_per_trial=40, seed=1)
    lines = path.read_text().split("\n")
    k = next(i for i, line in enumerate(lines) if _SAMPLE_LINE.match(line) and i > 30)
    lines[k] = lines[k].replace("\t", "\t9z9", 1)
    path.write_text("\n".join(lines))
    with pytest.raises(GazeFormatError, match=rf"line {k + 1}\b"):
        read_eyelink_asc(path, participant="p01")


def test_mixed_layouts_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mono, bino = tmp_path / "m.asc", tmp_path / "b.asc"
    write_synthetic_asc(mono, n_trials=2, samples_per_trial=30, seed=1)
    write_synthetic_asc(bino, n_trials=2, samples_per_trial=30, binocular=True, seed=2)

    # A binocular block recorded after a monocular one, later in time.
    def later(line: str) -> str:
        if not _SAMPLE_LINE.match(line):
            return line
        return str(int(line.split("\t")[0]) + 10**6) + line[line.index("\t") :]

    tail = [later(line) for line in bino.read_text().split("\n") if not line.startswith("**")]
    tail = [re.sub(r"^MSG\t(\d+)", lambda m: f"MSG\t{int(m.group(1)) + 10**6}", line) for line in tail]
    tail = [line.replace("TRIALID ", "TRIALID 1") for line in tail]
    path = tmp_path / "mixed.asc"
    path.write_text(mono.read_text() + "\n".join(tail))
    fast, general, hits = _read_both(path, monkeypatch)
    assert hits == 2
    _assert_same(fast, general)
    assert fast.report["n_recording_blocks"] == 2  # type: ignore[attr-defined]


def test_median_int_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 60))
        high = int(rng.choice([2, 5, 1000, 10**7, 10**15]))
        values = rng.integers(1, high, n)
        assert _median_int(values) == float(np.median(values))
    assert _median_int(np.full(100_001, 2000, np.int64)) == 2000.0


TOKENS = ["1.5", " 2", "3 ", '"4"', "\u00a05", "", "x", "6\u3000", "7,5", '"', "  "]


def _reference_unquote(tokens: pa.Array) -> pa.Array:
    tokens = pc.utf8_trim_whitespace(tokens)
    if not pc.any(pc.starts_with(tokens, '"')).as_py():
        return tokens
    return pc.replace_substring_regex(tokens, pattern=r'^"(.*)"$', replacement=r"\1")


@pytest.mark.parametrize("typ", [pa.string(), pa.large_string()])
def test_unquote_and_has_byte_match_string_kernels(typ: pa.DataType) -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        picked = [TOKENS[i] for i in rng.integers(0, len(TOKENS), int(rng.integers(0, 6)))]
        arr = pa.array(["lead", *picked, "tail"], typ)
        sliced = arr.slice(1, len(picked))
        for tokens in (arr, sliced):
            assert unquote(tokens).to_pylist() == _reference_unquote(tokens).to_pylist()
            assert has_byte(tokens, ",") == bool(pc.any(pc.match_substring(tokens, ",")).as_py())


def testcast_numbers_empty_fields_as_nan() -> None:
    tokens = pa.array(["1.5", "", "-2", "", "nan"])
    out = cast_numbers(tokens, ("",), False)
    assert np.array_equal(out, [1.5, np.nan, -2.0, np.nan, np.nan], equal_nan=True)
    sliced = pa.array(["9", "", "3"]).slice(1)
    assert np.array_equal(cast_numbers(sliced, ("",), False), [np.nan, 3.0], equal_nan=True)
    with pytest.raises(pa.ArrowInvalid):
        cast_numbers(pa.array(["1", "."]), ("",), False)


def test_lines_built_lazily_match_line_texts(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes("a\tb\r\n\r\nüñí\rlast".encode())
    lf = read_lines(path)
    assert lf.lines.to_pylist() == lf.line_texts(np.arange(lf.n_lines)) == ["a\tb", "", "üñí", "last"]
    assert lf.line_text(2) == "üñí"
    assert not lf.ends_with_newline


def test_numbers_of_rows_ignore_other_rows(tmp_path: Path) -> None:
    from pov_pipeline.ingest._delimited import read_delimited

    path = tmp_path / "t.tsv"
    path.write_text("a\tb\tc\n1.5\tx\t1,5\n\t2\t2,5\n3\tbad\t \n")
    table = read_delimited(read_lines(path), "\t", [])
    rows = np.array([1, 2])
    assert np.array_equal(table.numbers("a", "n", rows=rows), [np.nan, 3.0], equal_nan=True)
    with pytest.raises(GazeFormatError, match="line 4"):
        table.numbers("b", "n", rows=rows)
    assert np.array_equal(table.numbers("b", "n", rows=np.array([1])), [2.0])
    # A decimal comma in the rows asked for is read as one; the full column is never consulted.
    assert np.array_equal(table.numbers("c", "n", rows=np.array([0, 1])), [1.5, 2.5])
    assert np.array_equal(table.numbers("c", "n", rows=np.array([2])), [np.nan], equal_nan=True)
