"""Generic CSV reader: the Lund 2017 derived CSVs and hand-written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pov_pipeline.ingest import GazeFormatError, read_gaze_csv
from pov_pipeline.schemas import RAW_GAZE


def test_lund_csv_matches_hand_parse(refdata: Path) -> None:
    path = refdata / "andersson2017_lund" / "csv" / "UH21_img_Rome.csv"
    result = read_gaze_csv(path, participant="UH21")
    assert result.samples.schema == RAW_GAZE
    frame = result.samples.to_pandas()
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    assert len(frame) == len(rows) == 4988
    np.testing.assert_array_equal(frame["t_us"], [round(float(r[0]) * 1000) for r in rows])
    x = np.array([float(r[1]) if r[1] else np.nan for r in rows])
    np.testing.assert_allclose(frame["x_px"], x, rtol=1e-6)
    np.testing.assert_allclose(frame["pupil"], [float(r[3]) for r in rows], rtol=1e-6)
    assert result.report["time_unit"] == "ms"
    assert result.report["measured_rate_hz"] == pytest.approx(500.0)
    assert set(frame["trial"]) == {0} and set(frame["eye"]) == {"left"}


def test_mapping_units_loss_and_trials(tmp_path: Path) -> None:
    path = tmp_path / "gaze.csv"
    path.write_text(
        "time_sec;gx;gy;ok;tr;stim\n"
        "0.000;10.5;20;1;;\n"  # outside trials (empty trial)
        "0.002;11,5;21;1;3;s3\n"  # decimal comma (semicolon-separated)
        "0.004;;22;1;3;s3\n"  # lost x
        "0.006;nan;23;1;3;s3\n"
        "0.008;14;inf;1;3;s3\n"
        "0.010;15;25;0;4;s4\n"  # flagged invalid
        "0.012;16;26;1;4;s4\n"
    )
    columns = {"t": "time_sec", "x": "gx", "y": "gy", "validity": "ok", "trial": "tr", "stimulus_id": "stim"}
    result = read_gaze_csv(path, participant="p", columns=columns, time_unit="s")
    frame = result.samples.to_pandas()
    assert frame["t_us"].tolist() == [2000, 4000, 6000, 8000, 10000, 12000]
    assert frame["trial"].tolist() == [3, 3, 3, 3, 4, 4]
    assert frame["stimulus_id"].tolist() == ["s3", "s3", "s3", "s3", "s4", "s4"]
    assert frame["valid"].tolist() == [True, False, False, False, False, True]
    assert frame["x_px"].tolist()[0] == 11.5
    assert frame["x_px"].isna().tolist() == [False, True, True, True, True, False]
    assert result.report["n_dropped_outside_trials"] == 1


def test_eye_column_and_time_unit_from_name(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("t_us,x,y,eye\n0,1,1,L\n0,2,2,R\n1000,3,3,L\n1000,4,4,R\n1000,4,4,R\n")
    result = read_gaze_csv(path, participant="p")
    frame = result.samples.to_pandas()
    assert frame["eye"].tolist() == ["left", "left", "right", "right"]
    assert frame["t_us"].tolist() == [0, 1000, 0, 1000]
    assert frame["x_px"].tolist() == [1.0, 3.0, 2.0, 4.0]
    assert result.report["n_duplicate_timestamps_dropped"] == 1


def test_lost_xy_marker(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("t,x,y\n0,0,0\n2,5,5\n")
    frame = read_gaze_csv(path, participant="p", lost_xy=(0.0, 0.0)).samples.to_pandas()
    assert frame["valid"].tolist() == [False, True]


def test_errors_name_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("t,x,y\n0,1,1\n2,oops,1\n")
    with pytest.raises(GazeFormatError) as info:
        read_gaze_csv(path, participant="p")
    assert (info.value.line, info.value.found, info.value.column) == (3, "oops", "x")
    missing = tmp_path / "m.csv"
    missing.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(GazeFormatError, match="'t' column"):
        read_gaze_csv(missing, participant="p")
    with pytest.raises(GazeFormatError, match="mapped to 'x'"):
        read_gaze_csv(path, participant="p", columns={"x": "gaze_x"})
    header_only = tmp_path / "h.csv"
    header_only.write_text("t,x,y\n")
    with pytest.raises(GazeFormatError, match="sample rows"):
        read_gaze_csv(header_only, participant="p")
    backwards = tmp_path / "b.csv"
    backwards.write_text("t,x,y\n0,1,1\n5,1,1\n3,1,1\n")
    with pytest.raises(GazeFormatError) as info:
        read_gaze_csv(backwards, participant="p")
    assert info.value.line == 4


def test_quotes(tmp_path: Path) -> None:
    csv = tmp_path / "q.csv"
    csv.write_text('t,x,y,stimulus_id\n0,1,1,"a,b"\n2,"2",2,"a,b"\n')
    frame = read_gaze_csv(csv, participant="p").samples.to_pandas()
    assert frame["stimulus_id"].tolist() == ["a,b", "a,b"]
    assert frame["x_px"].tolist() == [1.0, 2.0]
    tsv = tmp_path / "q.tsv"
    tsv.write_text('t\tx\ty\tstimulus_id\n0\t1\t1\t12" screen\n2\t2\t2\t12" screen\n')
    frame = read_gaze_csv(tsv, participant="p").samples.to_pandas()
    assert frame["stimulus_id"].tolist() == ['12" screen', '12" screen']
