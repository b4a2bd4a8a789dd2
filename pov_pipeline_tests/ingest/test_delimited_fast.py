"""The compiled reading of tab-separated files gives exactly what Arrow's CSV parser path gives.

Each case is a Pro Lab export with one kind of irregularity planted in it, read twice: with the
compiled field scan and with it switched off (every row then goes through Arrow's parser, as
before the scan existed). Tables must agree bit for bit and reports and error messages exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import pov_pipeline.ingest._delimited as delimited
from pov_pipeline.ingest import GazeFormatError, read_tobii_prolab_tsv

HEADER = [
    "Recording timestamp [μs]", "Computer timestamp", "Sensor", "Participant name",
    "Recording resolution width", "Recording resolution height", "Eyetracker timestamp", "Event",
    "Event value", "Gaze point X", "Gaze point Y", "Gaze point left X", "Gaze point left Y",
    "Gaze point right X", "Gaze point right Y", "Pupil diameter left", "Pupil diameter right",
    "Validity left", "Validity right", "Presented Stimulus name",
]  # fmt: skip
_X = HEADER.index("Gaze point left X")


def _rows(seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    rows: list[list[str]] = []
    t = 1_000_000
    for trial in range(3):
        stim = f"bild_{trial}_é"
        rows.append([str(t), "0", "", "p1", "1920", "1080", "", "TrialStart", str(trial + 1), *[""] * 10, ""])
        rows.append([str(t), "0", "", "p1", "1920", "1080", "", "ImageStimulusStart", stim, *[""] * 10, stim])
        for _ in range(120):
            t += 8333
            lx, ly, rx, ry = rng.normal(900, 50, 4).round(1)
            valid = "Valid" if rng.random() > 0.05 else "Invalid"
            rows.append(
                [str(t), str(t + 7), "Eye Tracker", "p1", "1920", "1080", str(t + 3), "", "",
                 f"{(lx + rx) / 2:.1f}", f"{(ly + ry) / 2:.1f}", f"{lx}", f"{ly}", f"{rx}", f"{ry}",
                 f"{rng.uniform(2, 5):.3f}", f"{rng.uniform(2, 5):.3f}", valid, valid, stim]
            )  # fmt: skip
        rows.append([str(t), "0", "", "p1", "1920", "1080", "", "TrialEnd", str(trial + 1), *[""] * 10, ""])
    return rows


def _set(row_index: int, column: int, value: str) -> Callable[[list[list[str]]], None]:
    def edit(rows: list[list[str]]) -> None:
        sample_rows = [i for i, r in enumerate(rows) if r[2] == "Eye Tracker"]
        rows[sample_rows[row_index]][column] = value

    return edit


CASES: dict[str, Callable[[list[list[str]]], None] | None] = {
    "clean": None,
    "empty_coordinate": _set(10, _X, ""),
    "blank_coordinate": _set(11, _X, "  "),
    "padded_coordinate": _set(12, _X, " 901.5 "),
    "decimal_comma": _set(13, _X, "901,5"),
    "quoted_number": _set(14, _X, '"901.5"'),
    "exponent": _set(15, _X, "9.015e2"),
    "plus_sign": _set(16, _X, "+901.5"),
    "bad_token": _set(17, _X, "n/a"),
    "negative_zero": _set(18, _X, "-0.0"),
    "empty_time": _set(19, 0, ""),
    "bad_validity": _set(20, HEADER.index("Validity left"), "Maybe"),
    "extra_field": lambda rows: rows[40].append("x"),
    "missing_field": lambda rows: rows[41].pop(),
}


def _write(path: Path, rows: list[list[str]], tail: str = "\n") -> None:
    path.write_text("\t".join(HEADER) + "\n" + "\n".join("\t".join(r) for r in rows) + tail, encoding="utf-8")


def _read_both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object, bool]:
    outcomes = []
    used = {"fast": False}
    original = delimited.tab_fields

    def spy(*args: object) -> int:
        found = original(*args)
        used["fast"] |= found < 0
        return found

    for scan in (spy, lambda *args: 0):
        monkeypatch.setattr(delimited, "tab_fields", scan)
        try:
            outcomes.append(read_tobii_prolab_tsv(path, participant="p1"))
        except GazeFormatError as exc:
            outcomes.append(str(exc))
    return outcomes[0], outcomes[1], used["fast"]


def _assert_same(fast: object, general: object) -> None:
    assert type(fast) is type(general)
    if isinstance(fast, str):
        assert fast == general
        return
    a, b = fast.samples, general.samples  # type: ignore[attr-defined]
    assert a.schema == b.schema
    for name in a.column_names:
        x = a.column(name).to_numpy(zero_copy_only=False)
        y = b.column(name).to_numpy(zero_copy_only=False)
        if x.dtype.kind == "f":
            assert np.array_equal(x.view(f"u{x.itemsize}"), y.view(f"u{y.itemsize}")), name
        else:
            assert np.array_equal(x, y), name
    assert fast.report == general.report  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(CASES))
def test_tab_scan_matches_arrow_parser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    rows = _rows(seed=len(name))
    edit = CASES[name]
    if edit is not None:
        edit(rows)
    path = tmp_path / "export.tsv"
    _write(path, rows)
    fast, general, used = _read_both(path, monkeypatch)
    _assert_same(fast, general)
    # Rows of another field count leave the whole file to Arrow's parser, which names them.
    assert used == (name not in ("extra_field", "missing_field"))


def test_truncated_last_line_goes_to_arrow_and_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(seed=3)
    path = tmp_path / "export.tsv"
    _write(path, [*rows[:-1], rows[-2][:5]], tail="")
    fast, general, used = _read_both(path, monkeypatch)
    _assert_same(fast, general)
    assert not used
    assert any("truncated last line" in note for note in fast.report["notes"])  # type: ignore[attr-defined]
