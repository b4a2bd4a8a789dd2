"""The compiled decimal scan: exact values for plain decimals, and a refusal for anything else."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pov_pipeline.ingest._scan import MAX_DIGITS, parse_line_numbers, string_column


def _scan(lines: list[str], n_fields: int) -> list[np.ndarray] | None:
    text = "\n".join(lines).encode()
    starts, ends, pos = [], [], 0
    for line in lines:
        starts.append(pos)
        ends.append(pos + len(line.encode()))
        pos += len(line.encode()) + 1
    return parse_line_numbers(text, np.array(starts), np.array(ends), n_fields)


def test_plain_decimals_equal_correctly_rounded_parsing() -> None:
    rng = np.random.default_rng(21)
    tokens = []
    for _ in range(20000):
        n_int = int(rng.integers(1, 9))
        n_frac = int(rng.integers(0, MAX_DIGITS - n_int + 1))
        digits = "".join(rng.choice(list("0123456789"), n_int + n_frac))
        token = digits[:n_int] + ("." + digits[n_int:] if n_frac else "")
        tokens.append(("-" if rng.random() < 0.3 else "") + token)
    lines = [f"{a}\t{b}  {c}\t..." for a, b, c in zip(tokens[0::3], tokens[1::3], tokens[2::3], strict=False)]
    got = _scan(lines, 3)
    assert got is not None
    want = np.array([[float(tok) for tok in line.split()[:3]] for line in lines]).T
    # float() is correctly rounded: the same bits, signs of zero included.
    np.testing.assert_array_equal(np.stack(got).view(np.int64), want.view(np.int64))


def test_lone_point_is_lost_data_after_the_time_stamp() -> None:
    got = _scan(["100\t.\t  .\t5.5", "101\t1.0\t2.0\t3.0"], 4)
    assert got is not None
    np.testing.assert_array_equal(got[1], [np.nan, 1.0])
    np.testing.assert_array_equal(got[2], [np.nan, 2.0])
    assert _scan(["."], 1) is None  # a missing time stamp is the general path's error


@pytest.mark.parametrize(
    "token",
    [
        "+1.5",
        "1e3",
        "1.5e-2",
        "nan",
        "inf",
        "5.",
        ".5",
        "-",
        "-.",
        "1..5",
        "1.2.3",
        "0x10",
        "1,5",
        "12a",
        "1" * 16,
        "1234567.890123456",
    ],
)
def test_other_forms_are_refused(token: str) -> None:
    assert _scan([f"100\t{token}\t2.0"], 3) is None


def test_short_lines_are_refused_and_extra_tokens_ignored() -> None:
    assert _scan(["100\t1.0"], 3) is None
    got = _scan(["100\t1.0\t2.0\tjunk here", "  101 \x0b 1.5\r2.5 "], 3)
    assert got is not None
    np.testing.assert_array_equal(np.stack(got), [[100.0, 101.0], [1.0, 1.5], [2.0, 2.5]])


@pytest.mark.parametrize("n", [0, 1, 7, 5000])
def test_string_column_equals_dictionary_decode(n: int) -> None:
    rng = np.random.default_rng(n)
    values = ["p01", "", "stimulus_é", "right", "a" * 40]
    codes = np.repeat(rng.integers(0, len(values), max(n // 50, 1)), 50)[:n].astype(np.int32)
    got = string_column(codes, values)
    want = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(values)).cast(pa.string())
    assert got.type == pa.string()
    assert got.equals(want)


def test_empty_field_is_nan_only_when_asked_and_only_when_empty() -> None:
    text = b"12.5||  |7"
    starts, ends = np.array([0, 5, 6, 9]), np.array([4, 5, 8, 10])
    got = parse_line_numbers(text, starts, ends, 1, empty_is_nan=True)
    assert got is None  # the blank field "  " is the general path's to judge
    got = parse_line_numbers(text, starts[[0, 1, 3]], ends[[0, 1, 3]], 1, empty_is_nan=True)
    assert got is not None
    np.testing.assert_array_equal(got[0], [12.5, np.nan, 7.0])
    assert parse_line_numbers(text, starts[[1]], ends[[1]], 1) is None
