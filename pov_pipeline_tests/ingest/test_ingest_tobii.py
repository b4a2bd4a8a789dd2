"""Tobii readers: a Pro Lab-style TSV written here, and the real TX300 SDK export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pov_pipeline.ingest import GazeFormatError, read_tobii_prolab_tsv, read_tobii_sdk_tsv
from pov_pipeline.schemas import RAW_GAZE

PROLAB_COLUMNS = [
    "Recording timestamp",
    "Computer timestamp",
    "Sensor",
    "Participant name",
    "Recording resolution width",
    "Recording resolution height",
    "Eyetracker timestamp",
    "Event",
    "Event value",
    "Gaze point X",
    "Gaze point Y",
    "Gaze point left X",
    "Gaze point left Y",
    "Gaze point right X",
    "Gaze point right Y",
    "Pupil diameter left",
    "Pupil diameter right",
    "Validity left",
    "Validity right",
    "Presented Stimulus name",
]


def _prolab_rows(decimal: str = ".") -> tuple[list[list[str]], dict]:
    """Rows of a two-trial Pro Lab export plus the values the reader must return."""
    rows: list[list[str]] = []
    truth: dict[str, list] = {
        "t": [],
        "trial": [],
        "stim": [],
        "lx": [],
        "ry": [],
        "lvalid": [],
        "lpupil": [],
    }

    def event(t: int, name: str, value: str) -> None:
        row = [""] * len(PROLAB_COLUMNS)
        row[0], row[1], row[7], row[8] = str(t), str(t + 7), name, value
        rows.append(row)

    def sample(t: int, trial: int | None, stim: str, lx: float, ly: float, lvalid: bool) -> None:
        rx, ry = lx + 3.0, ly - 2.0
        fmt = lambda v: f"{v:.2f}".replace(".", decimal)  # noqa: E731
        row = [
            str(t), str(t + 7), "Eye Tracker", "P01", "1920", "1080", str(t + 11), "", "",
            fmt((lx + rx) / 2), fmt((ly + ry) / 2),
            fmt(lx) if lvalid else "", fmt(ly) if lvalid else "", fmt(rx), fmt(ry),
            fmt(3.1) if lvalid else "", fmt(3.3),
            "Valid" if lvalid else "Invalid", "Valid", stim,
        ]  # fmt: skip
        rows.append(row)
        if trial is not None:
            truth["t"].append(t)
            truth["trial"].append(trial)
            truth["stim"].append(stim)
            truth["lx"].append(lx if lvalid else np.nan)
            truth["ry"].append(ry)
            truth["lvalid"].append(lvalid)
            truth["lpupil"].append(3.1 if lvalid else np.nan)

    t = 1_000_000
    sample(t, None, "", 10.0, 10.0, True)  # before the first trial: dropped
    for trial, stim in ((1, "img_a"), (2, "img_b")):
        t += 8333
        event(t, "TrialStart", str(trial))
        event(t, "ImageStimulusStart", stim)
        for k in range(6):
            t += 8333
            sample(t, trial, stim, 100.0 * trial + k, 50.0 + k, lvalid=k != 2)
        t += 8333
        event(t, "TrialEnd", str(trial))
        t += 8333
        sample(t, None, "", 5.0, 5.0, True)  # between trials: dropped
    return rows, truth


def _write_tsv(path: Path, columns: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join("\t".join(r) for r in [columns, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("decimal", [".", ","])
def test_prolab_binocular_trials_and_values(tmp_path: Path, decimal: str) -> None:
    rows, truth = _prolab_rows(decimal)
    path = _write_tsv(tmp_path / "gaze.tsv", PROLAB_COLUMNS, rows)
    result = read_tobii_prolab_tsv(path, participant="P01")
    assert result.samples.schema == RAW_GAZE
    frame = result.samples.to_pandas()
    assert result.report["eyes"] == ["left", "right"]
    assert result.report["n_dropped_outside_trials"] == 3
    assert result.report["n_event_rows"] == 6
    left, right = frame[frame["eye"] == "left"], frame[frame["eye"] == "right"]
    assert len(left) == len(right) == 12
    np.testing.assert_array_equal(left["t_us"], truth["t"])
    np.testing.assert_array_equal(right["t_us"], truth["t"])
    np.testing.assert_array_equal(left["trial"], truth["trial"])
    assert left["stimulus_id"].tolist() == truth["stim"]
    np.testing.assert_allclose(left["x_px"], truth["lx"], rtol=1e-6)
    np.testing.assert_allclose(right["y_px"], truth["ry"], rtol=1e-6)
    np.testing.assert_array_equal(left["valid"], truth["lvalid"])
    np.testing.assert_allclose(left["pupil"], truth["lpupil"], rtol=1e-6)
    assert right["valid"].all()


def test_prolab_combined_gaze_as_session_eye(tmp_path: Path) -> None:
    rows, truth = _prolab_rows()
    keep = [
        i for i, c in enumerate(PROLAB_COLUMNS) if not c.startswith("Gaze point left") and "right" not in c
    ]
    columns = [PROLAB_COLUMNS[i] for i in keep]
    path = _write_tsv(tmp_path / "gaze.tsv", columns, [[r[i] for i in keep] for r in rows])
    result = read_tobii_prolab_tsv(path, participant="P01", eye="right")
    frame = result.samples.to_pandas()
    assert set(frame["eye"]) == {"right"}
    assert len(frame) == 12
    # "Gaze point X" is what the file says; the only validity column left is the left eye's.
    combined = np.array([float(r[9]) for r in rows if r[2] == "Eye Tracker" and r[-1]])
    valid = np.array(truth["lvalid"])
    np.testing.assert_array_equal(frame["valid"], valid)
    np.testing.assert_allclose(frame["x_px"].to_numpy()[valid], combined[valid], rtol=1e-6)
    assert frame["x_px"].isna().to_numpy()[~valid].all()
    assert any("read as the right eye" in note for note in result.report["notes"])


def test_prolab_trials_from_stimulus_names_and_units_in_header(tmp_path: Path) -> None:
    columns = ["Recording timestamp [ms]", "Sensor", "Gaze point X [DACS px]", "Gaze point Y [DACS px]",
               "Presented Stimulus name"]  # fmt: skip
    rows = [
        ["0", "Eye Tracker", "1", "1", ""],
        ["10", "Eye Tracker", "2", "2", "a"],
        ["20", "Eye Tracker", "3", "3", "a"],
        ["30", "Eye Tracker", "4", "4", ""],
        ["40", "Eye Tracker", "5", "5", "b"],
        ["50", "Mouse", "", "", "b"],
    ]
    result = read_tobii_prolab_tsv(_write_tsv(tmp_path / "g.tsv", columns, rows), participant="p")
    frame = result.samples.to_pandas()
    assert frame["t_us"].tolist() == [10_000, 20_000, 40_000]
    assert frame["trial"].tolist() == [0, 0, 1]
    assert frame["stimulus_id"].tolist() == ["a", "a", "b"]
    assert result.report["n_other_rows"] == 1


def test_prolab_bad_value_and_truncated_row(tmp_path: Path) -> None:
    rows, _ = _prolab_rows()
    rows[3][11] = "12x"
    path = _write_tsv(tmp_path / "bad.tsv", PROLAB_COLUMNS, rows)
    with pytest.raises(GazeFormatError) as info:
        read_tobii_prolab_tsv(path, participant="p")
    assert info.value.line == 5
    assert info.value.found == "12x"
    assert info.value.column == "Gaze point left X"
    rows, _ = _prolab_rows()
    text = "\n".join("\t".join(r) for r in [PROLAB_COLUMNS, *rows]) + "\n1099999\t3"
    cut = tmp_path / "cut.tsv"
    cut.write_text(text)
    result = read_tobii_prolab_tsv(cut, participant="p")
    assert any("truncated last line" in note for note in result.report["notes"])
    bad_count = tmp_path / "count.tsv"
    bad_count.write_text(text + "\n")
    with pytest.raises(GazeFormatError, match="20 tab-separated fields"):
        read_tobii_prolab_tsv(bad_count, participant="p")


def test_prolab_header_only(tmp_path: Path) -> None:
    path = _write_tsv(tmp_path / "h.tsv", PROLAB_COLUMNS, [])
    with pytest.raises(GazeFormatError, match="sample rows"):
        read_tobii_prolab_tsv(path, participant="p")


def test_tx300_sdk_export(refdata: Path) -> None:
    path = refdata / "vendor_exports" / "tobii_tx300_sdk" / "i2mc_participant1_trial1.tsv"
    result = read_tobii_sdk_tsv(path, participant="i2mc1", screen_px=(1920, 1080))
    frame = result.samples.to_pandas()
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    body = [line.split("\t") for line in lines[1:]]
    col = {name: i for i, name in enumerate(header)}
    assert len(body) == 651
    assert result.report["n_sample_times"] == 651
    assert result.report["eyes"] == ["left", "right"]
    assert 290.0 < result.report["measured_rate_hz"] < 310.0
    left, right = frame[frame["eye"] == "left"], frame[frame["eye"] == "right"]
    np.testing.assert_array_equal(left["t_us"], [int(r[col["Time"]]) for r in body])
    lvalid = np.array([int(r[col["LValidity"]]) <= 1 for r in body])
    np.testing.assert_array_equal(left["valid"], lvalid)
    lx = np.array([float(r[col["LGazePos2dx"]]) * 1920 for r in body])
    ry = np.array([float(r[col["RGazePos2dy"]]) * 1080 for r in body])
    np.testing.assert_allclose(left["x_px"].to_numpy()[lvalid], lx[lvalid], rtol=1e-5)
    rvalid = right["valid"].to_numpy()
    np.testing.assert_allclose(right["y_px"].to_numpy()[rvalid], ry[rvalid], rtol=1e-5)
    # Rows 1-2 of the file are missing (validity 4, coordinates -1) for both eyes.
    assert not left["valid"].iloc[:2].any() and left["x_px"].iloc[:2].isna().all()
    # First valid sample, read by hand: LGazePos2dx 0.4982 → 956.5 px.
    assert left["x_px"].iloc[2] == pytest.approx(0.4982 * 1920, rel=1e-6)
    assert 95.0 < result.report["valid_pct"] < 100.0


def test_sdk_needs_screen_size(tmp_path: Path) -> None:
    path = _write_tsv(
        tmp_path / "s.tsv", ["Time", "LGazePos2dx", "LGazePos2dy", "LValidity"], [["1", "0.5", "0.5", "0"]]
    )
    with pytest.raises(GazeFormatError, match="screen size"):
        read_tobii_sdk_tsv(path, participant="p")
    result = read_tobii_sdk_tsv(path, participant="p", screen_px=(100, 50))
    frame = result.samples.to_pandas()
    assert (frame["x_px"].iloc[0], frame["y_px"].iloc[0]) == (50.0, 25.0)
