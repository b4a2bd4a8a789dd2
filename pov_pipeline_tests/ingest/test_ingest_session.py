"""session.json and responses.csv validation, format sniffing, and read_gaze dispatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ingest_synth import write_synthetic_asc

from pov_pipeline.ingest import GazeFormatError, detect_format, read_gaze, read_responses, read_session
from pov_pipeline.schemas import RESPONSES

DATA = Path(__file__).parent / "data"

SESSION = {
    "participant_id": "p001",
    "tracker": "SR Research EyeLink 1000 Plus",
    "format": "eyelink_asc",
    "gaze_file": "gaze.asc",
    "sampling_rate_hz": 500,
    "screen_px": [1920, 1080],
    "screen_mm": [531.0, 299.0],
    "viewing_distance_mm": 650.0,
    "eye": "left",
    "csv_columns": None,
}


def _write_session(folder: Path, **changes: object) -> Path:
    doc = {**SESSION, **changes}
    doc = {k: v for k, v in doc.items() if v is not ...}
    path = folder / "session.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_valid_session(tmp_path: Path) -> None:
    session = read_session(_write_session(tmp_path))
    assert session.participant_id == "p001"
    assert session.screen_px == (1920, 1080)
    assert session.screen_mm == (531.0, 299.0)
    assert session.sampling_rate_hz == 500.0
    assert session.eye == "left" and session.csv_columns is None
    with pytest.raises(AttributeError):
        session.eye = "right"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sampling_rate_hz": ...}, "sampling_rate_hz"),
        ({"sampling_rate_hz": "500"}, "sampling_rate_hz"),
        ({"sampling_rate_hz": -1}, "sampling_rate_hz"),
        ({"screen_px": [1920]}, "screen_px"),
        ({"screen_px": [1920.5, 1080]}, "screen_px"),
        ({"screen_mm": [0, 299]}, "screen_mm"),
        ({"viewing_distance_mm": True}, "viewing_distance_mm"),
        ({"eye": "both"}, "eye"),
        ({"format": "edf"}, "format"),
        ({"gaze_file": "../other/gaze.asc"}, "gaze_file"),
        ({"participant_id": "p 1"}, "participant_id"),
        ({"csv_columns": {"time": "t"}}, "csv_columns"),
        ({"format": "csv", "csv_columns": {"t": "t_ms"}}, "csv_columns"),
    ],
)
def test_invalid_session_names_the_field(tmp_path: Path, changes: dict, field: str) -> None:
    with pytest.raises(GazeFormatError) as info:
        read_session(_write_session(tmp_path, **changes))
    assert info.value.column == field
    assert field in str(info.value)


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    path.write_text('{\n  "participant_id": "p001",\n  "eye": left\n}\n')
    with pytest.raises(GazeFormatError) as info:
        read_session(path)
    assert info.value.line == 3
    with pytest.raises(GazeFormatError, match="no such file"):
        read_session(tmp_path / "missing.json")
    path.write_text("[1, 2]")
    with pytest.raises(GazeFormatError, match="a JSON object"):
        read_session(path)


def test_responses(tmp_path: Path) -> None:
    path = tmp_path / "responses.csv"
    path.write_text("trial,stimulus_id,response,rt_ms\n2,s2,No,812.5\n1,s1,yes,1500\n3,s3, unsure ,\n")
    table = read_responses(path, "p001")
    assert table.schema == RESPONSES
    assert table.column("trial").to_pylist() == [1, 2, 3]
    assert table.column("response").to_pylist() == ["yes", "no", "unsure"]
    assert table.column("stimulus_id").to_pylist() == ["s1", "s2", "s3"]
    rt = table.column("rt_ms").to_numpy(zero_copy_only=False)
    assert rt[0] == 1500.0 and np.isnan(rt[2])
    assert set(table.column("participant").to_pylist()) == {"p001"}


@pytest.mark.parametrize(
    ("body", "line", "found"),
    [
        ("1,s1,yes,100\n2,s2,maybe,200\n", 3, "maybe"),
        ("1,s1,yes,100\n1,s2,no,200\n", 3, "trial 1 again"),
        ("x,s1,yes,100\n", 2, "x"),
        ("1,s1,yes,fast\n", 2, "fast"),
        ("1,s1,yes,-5\n", 2, "-5"),
        ("1,s1,yes\n", 2, "3 fields"),
    ],
)
def test_invalid_responses_name_line_and_value(tmp_path: Path, body: str, line: int, found: str) -> None:
    path = tmp_path / "responses.csv"
    path.write_text("trial,stimulus_id,response,rt_ms\n" + body)
    with pytest.raises(GazeFormatError) as info:
        read_responses(path, "p001")
    assert info.value.line == line
    assert info.value.found == found
    assert f"responses.csv line {line}" in str(info.value)


def test_responses_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "responses.csv"
    path.write_text("trial,stimulus_id,answer\n1,s1,yes\n")
    with pytest.raises(GazeFormatError, match="missing"):
        read_responses(path, "p001")


def test_read_gaze_dispatches_and_sniffs(tmp_path: Path) -> None:
    synth = write_synthetic_asc(tmp_path / "gaze.asc", n_trials=2, samples_per_trial=20)
    session = read_session(_write_session(tmp_path))
    by_file = read_gaze(tmp_path / "gaze.asc", session, "p001")
    by_folder = read_gaze(tmp_path, session, "p001", max_bytes=10**6)
    assert by_file.samples.num_rows == by_folder.samples.num_rows == 40
    assert by_file.report["session_rate_hz"] == 500.0
    auto = read_session(_write_session(tmp_path, format="auto"))
    result = read_gaze(synth.path, auto, "p001")
    assert result.report["detected_format"] == "eyelink_asc"
    csv = tmp_path / "gaze.csv"
    csv.write_text("t_ms,x_px,y_px\n0,1,2\n2,3,4\n")
    csv_session = read_session(_write_session(tmp_path, format="csv", gaze_file="gaze.csv"))
    assert read_gaze(tmp_path, csv_session, "p001").samples.num_rows == 2
    with pytest.raises(GazeFormatError, match="at most"):
        read_gaze(tmp_path / "gaze.asc", session, "p001", max_bytes=100)


def test_detect_format(tmp_path: Path) -> None:
    assert detect_format(DATA / "pymovements_eyelink_binocular_example.asc") == "eyelink_asc"
    prolab = tmp_path / "a.tsv"
    prolab.write_text("Recording timestamp [μs]\tSensor\tGaze point X\n1\tEye Tracker\t3\n")
    assert detect_format(prolab) == "tobii_prolab_tsv"
    sdk = tmp_path / "b.tsv"
    sdk.write_text("Time\tLGazePos2dx\tLGazePos2dy\n1\t0.5\t0.5\n")
    assert detect_format(sdk) == "tobii_sdk_tsv"
    csv = tmp_path / "c.csv"
    csv.write_text("t_ms,x_px,y_px\n0,1,1\n")
    assert detect_format(csv) == "csv"
    empty = tmp_path / "e.csv"
    empty.write_text("\n\n")
    with pytest.raises(GazeFormatError, match="empty"):
        detect_format(empty)


def test_detect_format_on_refdata(refdata: Path) -> None:
    folder = refdata / "vendor_exports"
    assert detect_format(folder / "tobii_tx300_sdk" / "i2mc_participant1_trial1.tsv") == "tobii_sdk_tsv"
    assert detect_format(folder / "eyelink_asc" / "mne_test_eyelink_HREF.asc") == "eyelink_asc"
    with pytest.raises(GazeFormatError):
        detect_format(folder / "smi_begaze" / "emdat_SMI_Sample_67_Events.txt")
