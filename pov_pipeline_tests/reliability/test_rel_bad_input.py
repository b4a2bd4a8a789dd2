"""The bad-input catalogue (docs/bad_input.md): one test per kind of bad delivery.

Every case either raises ``GazeFormatError`` naming the file and the line or column, what was
expected and what was found, or is repaired and the repair is counted in the reader's report.
Fixtures are generated in ``tmp_path`` from small valid files (``rel_fixtures``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from rel_fixtures import (
    FORMATS,
    asc_text,
    csv_text,
    responses_text,
    session_doc,
    tsv_text,
    write_participant,
)

from pov_pipeline.automation import scan_landing
from pov_pipeline.ingest import GazeFormatError, ReadResult, read_gaze, read_responses, read_session
from pov_pipeline.ingest.checks import (
    align_trials,
    check_gaze_stimuli,
    check_sampling_rate,
    run_per_participant,
)
from pov_pipeline.lake import LakePaths

TEXT = {"eyelink_asc": asc_text, "tobii_prolab_tsv": tsv_text, "csv": csv_text}


def _read(folder: Path, participant: str = "p1", **kwargs) -> ReadResult:
    session = read_session(folder / "session.json")
    return read_gaze(folder / session.gaze_file, session, participant, **kwargs)


def _sample_line_numbers(text: str, fmt: str) -> list[int]:
    """1-based line numbers of the sample rows of a fixture."""
    lines = text.split("\n")
    if fmt == "eyelink_asc":
        return [i + 1 for i, line in enumerate(lines) if line[:1].isdigit()]
    if fmt == "tobii_prolab_tsv":
        return [i + 1 for i, line in enumerate(lines) if "\tEye Tracker\t" in line]
    return [i + 1 for i, line in enumerate(lines) if line and i > 0]


def _replace_line(text: str, line_number: int, new: str) -> str:
    lines = text.split("\n")
    lines[line_number - 1] = new
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Malformed files


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_empty_file_is_refused(tmp_path, fmt):
    write_participant(tmp_path, "p1", fmt, gaze="")
    with pytest.raises(GazeFormatError, match="empty file") as info:
        _read(tmp_path)
    assert info.value.path.name == FORMATS[fmt][0]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_header_only_file_is_refused(tmp_path, fmt):
    text = TEXT[fmt]()
    header = text.split("\n")[0] + "\n" if fmt != "eyelink_asc" else "\n".join(text.split("\n")[:9]) + "\n"
    write_participant(tmp_path, "p1", fmt, gaze=header)
    with pytest.raises(GazeFormatError, match=r"expected (sample|eye-tracker sample) (lines|rows)") as info:
        _read(tmp_path)
    assert "none" in str(info.value)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_truncated_last_line_is_dropped_and_reported(tmp_path, fmt):
    text = TEXT[fmt]()
    full = _read(tmp_path / "full") if write_participant(tmp_path / "full", "p1", fmt, gaze=text) else None
    # Cut the file in the middle of its last sample line (an export interrupted mid-write).
    last = _sample_line_numbers(text, fmt)[-1]
    lines = text.split("\n")[:last]
    lines[-1] = lines[-1][: len(lines[-1]) // 3]
    write_participant(tmp_path / "cut", "p1", fmt, gaze="\n".join(lines))
    cut = _read(tmp_path / "cut")
    per_time = len(full.report["eyes"])
    assert cut.samples.num_rows == full.samples.num_rows - per_time
    assert any("truncated last line" in note for note in cut.report["notes"])


def test_truncated_line_in_the_middle_is_an_error_naming_it(tmp_path):
    text = asc_text()
    line = _sample_line_numbers(text, "eyelink_asc")[5]
    write_participant(tmp_path, "p1", gaze=_replace_line(text, line, "100010\t960.1"))
    with pytest.raises(GazeFormatError) as info:
        _read(tmp_path)
    assert info.value.line == line and "4 fields" in str(info.value)


def test_tobii_export_with_commas_instead_of_tabs_is_refused_naming_the_delimiter(tmp_path):
    write_participant(tmp_path, "p1", "tobii_prolab_tsv", gaze=tsv_text().replace("\t", ","))
    with pytest.raises(
        GazeFormatError, match="expected tab-separated columns, found 'comma-separated'"
    ) as info:
        _read(tmp_path)
    assert info.value.line == 1


def test_generic_csv_with_semicolons_is_sniffed(tmp_path):
    clean = _read(tmp_path / "a") if write_participant(tmp_path / "a", "p1", "csv") else None
    write_participant(tmp_path / "b", "p1", "csv", gaze=csv_text().replace(",", ";"))
    assert _read(tmp_path / "b").samples.equals(clean.samples)


def test_responses_with_semicolons_are_refused_naming_the_delimiter(tmp_path):
    path = tmp_path / "responses.csv"
    path.write_text(responses_text().replace(",", ";"))
    with pytest.raises(
        GazeFormatError, match="expected comma-separated columns, found 'semicolon-separated'"
    ) as info:
        read_responses(path, "p1")
    assert info.value.line == 1


@pytest.mark.parametrize("fmt", ["eyelink_asc", "tobii_prolab_tsv"])
def test_non_utf8_bytes_are_read_as_latin1_and_reported(tmp_path, fmt):
    text = TEXT[fmt]()
    clean = _read(tmp_path / "a") if write_participant(tmp_path / "a", "p1", fmt, gaze=text) else None
    if fmt == "eyelink_asc":
        # Windows experiment scripts write messages in the local code page.
        bad = text.replace("DISPLAY_COORDS", "NOTE caf\xe9 DISPLAY_COORDS").encode("latin-1")
    else:
        # A free-text event row (ignored by the reader) typed on a Windows machine.
        lines = text.split("\n")
        lines.insert(1, "\t".join(["999000", "", "Comment", "\xc4nderung"] + [""] * 11))
        bad = "\n".join(lines).encode("latin-1")
    write_participant(tmp_path / "b", "p1", fmt, gaze=bad)
    result = _read(tmp_path / "b")
    assert result.report["encoding"] == "latin-1"
    assert any(
        ("not valid UTF-8" in note and "0xe9" in note) or "0xc4" in note for note in result.report["notes"]
    )
    assert result.samples.equals(clean.samples)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_mixed_windows_line_endings_are_normalised(tmp_path, fmt):
    text = TEXT[fmt]()
    clean = _read(tmp_path / "a") if write_participant(tmp_path / "a", "p1", fmt, gaze=text) else None
    lines = text.split("\n")
    mixed = "".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(lines[:-1]))
    write_participant(tmp_path / "b", "p1", fmt, gaze=mixed.encode())
    result = _read(tmp_path / "b")
    assert result.samples.equals(clean.samples)
    assert any("line endings normalised" in note for note in result.report["notes"])


# ---------------------------------------------------------------------------------------------
# Missing or invalid content


def test_tobii_without_time_column_is_refused(tmp_path):
    write_participant(
        tmp_path, "p1", "tobii_prolab_tsv", gaze=tsv_text().replace("Recording timestamp", "Stamp")
    )
    with pytest.raises(GazeFormatError, match="'Recording timestamp' column") as info:
        _read(tmp_path)
    assert info.value.line == 1


def test_csv_without_x_column_is_refused(tmp_path):
    write_participant(tmp_path, "p1", "csv", gaze=csv_text().replace("x_px", "horizontal", 1))
    with pytest.raises(GazeFormatError, match="expected a 'x' column") as info:
        _read(tmp_path)
    assert info.value.column == "x"


def test_responses_without_response_column_are_refused(tmp_path):
    path = tmp_path / "responses.csv"
    path.write_text(responses_text().replace("response", "answer", 1))
    with pytest.raises(GazeFormatError, match=r"missing \['response'\]") as info:
        read_responses(path, "p1")
    assert info.value.line == 1


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_non_numeric_coordinate_is_an_error_naming_line_and_column(tmp_path, fmt):
    text = TEXT[fmt]()
    line = _sample_line_numbers(text, fmt)[7]
    original = text.split("\n")[line - 1]
    sep = "\t" if fmt != "csv" else ","
    fields = original.split(sep)
    x_index = {"eyelink_asc": 1, "tobii_prolab_tsv": 6, "csv": 1}[fmt]
    fields[x_index] = "12a.5"
    write_participant(tmp_path, "p1", fmt, gaze=_replace_line(text, line, sep.join(fields)))
    with pytest.raises(GazeFormatError, match="expected a numeric x coordinate") as info:
        _read(tmp_path)
    assert info.value.line == line
    assert info.value.found == "12a.5"
    assert f"line {line}" in str(info.value)


@pytest.mark.parametrize("token", ["nan", "inf", "-inf"])
def test_nan_or_inf_coordinates_become_lost_samples_and_are_counted(tmp_path, token):
    text = asc_text()
    line = _sample_line_numbers(text, "eyelink_asc")[3]
    fields = text.split("\n")[line - 1].split("\t")
    fields[1] = token
    write_participant(tmp_path, "p1", gaze=_replace_line(text, line, "\t".join(fields)))
    result = _read(tmp_path)
    frame = result.samples.to_pandas()
    assert not frame["valid"].iloc[3] and np.isnan(frame["x_px"].iloc[3])
    assert frame["valid"].sum() == len(frame) - 1
    assert result.report["n_infinite_coordinates_as_lost"] == (0 if token == "nan" else 1)


def test_negative_timestamp_is_an_error(tmp_path):
    text = tsv_text()
    line = _sample_line_numbers(text, "tobii_prolab_tsv")[0]
    fields = text.split("\n")[line - 1].split("\t")
    fields[0] = "-3333"
    write_participant(tmp_path, "p1", "tobii_prolab_tsv", gaze=_replace_line(text, line, "\t".join(fields)))
    with pytest.raises(GazeFormatError, match="non-negative time stamp") as info:
        _read(tmp_path)
    assert info.value.line == line


def test_negative_times_in_a_generic_csv_are_kept_and_counted(tmp_path):
    text = "t_ms,x_px,y_px\n" + "".join(f"{t},{960 + t % 3},{540}\n" for t in range(-40, 40, 2))
    write_participant(tmp_path, "p1", "csv", gaze=text)
    result = _read(tmp_path)
    assert result.report["n_negative_timestamps"] == 20
    assert result.samples.column("t_us")[0].as_py() == -40_000


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_duplicate_timestamps_are_dropped_and_counted(tmp_path, fmt):
    text = TEXT[fmt]()
    line = _sample_line_numbers(text, fmt)[10]
    lines = text.split("\n")
    lines.insert(line, lines[line - 1])  # the same sample written twice
    write_participant(tmp_path, "p1", fmt, gaze="\n".join(lines))
    clean = _read(tmp_path / "c") if write_participant(tmp_path / "c", "p1", fmt, gaze=text) else None
    result = _read(tmp_path)
    assert result.report["n_duplicate_timestamps_dropped"] == 1
    assert result.samples.equals(clean.samples)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_timestamps_going_backwards_are_an_error_naming_the_line(tmp_path, fmt):
    text = TEXT[fmt]()
    numbers = _sample_line_numbers(text, fmt)
    lines = text.split("\n")
    a, b = numbers[12], numbers[13]
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    write_participant(tmp_path, "p1", fmt, gaze="\n".join(lines))
    with pytest.raises(GazeFormatError, match="time stamps that do not go backwards") as info:
        _read(tmp_path)
    assert info.value.line == b


def test_sampling_rate_contradicting_session_is_refused(tmp_path):
    # The file says nothing about its rate (CSV), session.json says 1000 Hz, the samples are 500 Hz.
    write_participant(tmp_path, "p1", "csv", session=session_doc("p1", "csv", sampling_rate_hz=1000))
    result = _read(tmp_path)
    assert result.report["measured_rate_hz"] == 500.0
    with pytest.raises(
        GazeFormatError, match=r"sampling_rate_hz within 20% of the gaze file's measured 500\.0 Hz"
    ) as info:
        check_sampling_rate(result.report, tmp_path / "session.json", max_contradiction_pct=20.0)
    assert info.value.column == "sampling_rate_hz" and info.value.path.name == "session.json"


def test_small_sampling_rate_mismatch_is_only_reported(tmp_path):
    write_participant(tmp_path, "p1", "csv", session=session_doc("p1", "csv", sampling_rate_hz=510))
    result = _read(tmp_path)
    mismatch = check_sampling_rate(result.report, tmp_path / "session.json", max_contradiction_pct=20.0)
    assert mismatch == pytest.approx(100 * 10 / 510, abs=0.01)


# ---------------------------------------------------------------------------------------------
# Wrong recording settings


def test_href_asc_is_refused(tmp_path):
    text = asc_text(units="HREF")
    write_participant(tmp_path, "p1", gaze=text)
    with pytest.raises(GazeFormatError, match="GAZE sample units") as info:
        _read(tmp_path)
    assert info.value.found == "HREF"
    assert text.split("\n")[info.value.line - 1].startswith("SAMPLES")


def _binocular_with_dead_right_eye() -> str:
    out = []
    for line in asc_text(binocular=True).split("\n"):
        if line[:1].isdigit():
            fields = line.split("\t")
            fields[4:7] = [".", ".", "0.0"]
            line = "\t".join(fields)
        out.append(line)
    return "\n".join(out)


def test_binocular_file_with_one_eye_never_valid_drops_that_eye(tmp_path):
    session = session_doc("p1", eye="binocular")
    write_participant(tmp_path, "p1", gaze=_binocular_with_dead_right_eye(), session=session)
    result = _read(tmp_path)
    assert result.report["eyes"] == ["left"]
    assert result.report["eyes_dropped_never_valid"] == ["right"]
    assert result.samples.column("valid").to_numpy().all()


def test_session_naming_the_dead_eye_is_an_error(tmp_path):
    session = session_doc("p1", eye="right")
    write_participant(tmp_path, "p1", gaze=_binocular_with_dead_right_eye(), session=session)
    with pytest.raises(GazeFormatError, match=r"check 'eye' in session\.json") as info:
        _read(tmp_path)
    assert info.value.column == "eye"


# ---------------------------------------------------------------------------------------------
# Study data that does not match


def test_responses_naming_unknown_stimuli_are_refused_naming_the_line(tmp_path):
    path = tmp_path / "responses.csv"
    path.write_text(responses_text(3).replace("s002", "s999"))
    with pytest.raises(
        GazeFormatError, match=r"stimulus_id listed in study/stimuli\.csv, found 's999'"
    ) as info:
        read_responses(path, "p1", known_stimuli={"s001", "s002", "s003"})
    assert info.value.line == 3 and info.value.column == "stimulus_id"


def test_gaze_naming_unknown_stimuli_is_refused(tmp_path):
    gaze = write_participant(tmp_path, "p1", gaze=asc_text().replace("stimulus_id s002", "stimulus_id zzz"))
    result = _read(tmp_path)
    with pytest.raises(GazeFormatError, match=r"found 'zzz' \(trial 2; 1 unknown") as info:
        check_gaze_stimuli(result.samples, {"s001", "s002", "s003"}, gaze)
    assert info.value.column == "stimulus_id"


def test_trials_without_responses_and_responses_without_gaze_are_reported(tmp_path):
    # Gaze has trials 1-2; responses answer trials 2-3.
    responses = "trial,stimulus_id,response,rt_ms\n2,s002,yes,1000\n3,s003,no,900\n"
    gaze = write_participant(tmp_path, "p1", responses=responses)
    result = _read(tmp_path)
    samples, alignment = align_trials(result.samples, read_responses(tmp_path / "responses.csv", "p1"), gaze)
    assert alignment.gaze_without_response == [1]
    assert alignment.response_without_gaze == [3]
    assert not alignment.ok
    assert alignment.as_metadata()["gaze_without_response"] == {"n": 1, "trials": [1]}
    assert samples.equals(result.samples)


def test_gaze_and_responses_naming_different_stimuli_for_a_trial_is_an_error(tmp_path):
    responses = "trial,stimulus_id,response,rt_ms\n1,s001,yes,1000\n2,s003,no,900\n"
    gaze = write_participant(tmp_path, "p1", responses=responses)
    with pytest.raises(GazeFormatError, match="trial 2 to show stimulus 's003'"):
        align_trials(_read(tmp_path).samples, read_responses(tmp_path / "responses.csv", "p1"), gaze)


def test_missing_stimulus_ids_are_filled_from_responses(tmp_path):
    text = "\n".join(line for line in asc_text().split("\n") if "TRIAL_VAR" not in line)
    gaze = write_participant(tmp_path, "p1", gaze=text)
    result = _read(tmp_path)
    assert set(result.samples.column("stimulus_id").to_pylist()) == {""}
    samples, alignment = align_trials(result.samples, read_responses(tmp_path / "responses.csv", "p1"), gaze)
    assert alignment.stimulus_filled == [1, 2]
    frame = samples.to_pandas()
    assert frame.groupby("trial")["stimulus_id"].unique().map(list).to_dict() == {1: ["s001"], 2: ["s002"]}


@pytest.mark.parametrize("answer", ["maybe", "", "y"])
def test_invalid_answer_label_is_refused(tmp_path, answer):
    path = tmp_path / "responses.csv"
    path.write_text(responses_text(2).replace(",no,", f",{answer},"))
    with pytest.raises(GazeFormatError, match="response from yes, no, unsure") as info:
        read_responses(path, "p1")
    assert info.value.line == 2 and info.value.column == "response"


def test_header_only_responses_are_refused(tmp_path):
    path = tmp_path / "responses.csv"
    path.write_text("trial,stimulus_id,response,rt_ms\n")
    with pytest.raises(GazeFormatError, match="one row per trial"):
        read_responses(path, "p1")


def test_missing_session_json_is_refused(tmp_path):
    with pytest.raises(
        GazeFormatError, match=r"session\.json: expected a session\.json file, found 'no such file'"
    ):
        read_session(tmp_path / "session.json")


@pytest.mark.parametrize(
    ("content", "message", "line", "column"),
    [
        ('{"participant_id": "p1",\n "format": }', "expected valid JSON", 2, None),
        ("[1, 2]", "expected a JSON object, found 'list'", None, None),
        (None, "expected the field 'sampling_rate_hz'", None, "sampling_rate_hz"),
        ("rate", "a number for 'sampling_rate_hz'", None, "sampling_rate_hz"),
        ("gaze", "a plain file name for 'gaze_file'", None, "gaze_file"),
        ("eye", "'eye' to be one of left, right, binocular", None, "eye"),
    ],
)
def test_malformed_session_json_is_refused(tmp_path, content, message, line, column):
    path = tmp_path / "session.json"
    doc = session_doc("p1")
    if content is None:
        del doc["sampling_rate_hz"]
        content = json.dumps(doc)
    elif content == "rate":
        content = json.dumps({**doc, "sampling_rate_hz": "500 Hz"})
    elif content == "gaze":
        content = json.dumps({**doc, "gaze_file": "../p2/gaze.asc"})
    elif content == "eye":
        content = json.dumps({**doc, "eye": "both"})
    path.write_text(content)
    with pytest.raises(GazeFormatError, match=message) as info:
        read_session(path)
    assert info.value.line == line and info.value.column == column


# ---------------------------------------------------------------------------------------------
# Participant folders


def test_participant_folders_differing_only_in_case_are_skipped(tmp_path):
    landing = tmp_path / "landing"
    write_participant(landing / "P001", "P001")
    write_participant(landing / "p001", "p001")
    scan = scan_landing(landing)
    assert scan.ready == ["P001"]
    assert "differ only in case" in scan.invalid["p001"]


@pytest.mark.parametrize("name", ["p 1", "p1 ", "..p1", "p1;rm", "é1"])
def test_participant_folders_with_invalid_ids_are_skipped(tmp_path, name):
    landing = tmp_path / "landing"
    write_participant(landing / name, "p1")
    write_participant(landing / "p2", "p2")
    scan = scan_landing(landing)
    assert scan.ready == ["p2"]
    if not name.startswith("."):
        assert name in scan.invalid


@pytest.mark.parametrize("participant", ["../p1", "p1/../../etc", "p 1", ""])
def test_invalid_participant_ids_never_reach_a_path(tmp_path, participant):
    touched: list[str] = []
    results, errors = run_per_participant(["p2", participant], lambda p: touched.append(p) or p)
    assert touched == ["p2"] and list(results) == ["p2"]
    assert "invalid participant id" in str(errors[participant])
    with pytest.raises(ValueError, match="invalid participant id"):
        LakePaths(tmp_path).table_file("raw_gaze", participant)


# ---------------------------------------------------------------------------------------------
# Size


def test_2gb_file_is_refused_with_a_size_message_without_reading_it(tmp_path):
    gaze = write_participant(tmp_path, "p1")
    with open(gaze, "r+b") as fh:
        fh.truncate(2 * 1024**3 + 1)  # sparse: costs no disk
    with pytest.raises(GazeFormatError, match=r"at most 2,147,483,648 bytes, found '2,147,483,649 bytes'"):
        _read(tmp_path)
    assert os.stat(gaze).st_blocks * 512 < 1024**2


def test_small_max_bytes_refuses_before_reading(tmp_path):
    gaze = write_participant(tmp_path, "p1", "tobii_prolab_tsv")
    with pytest.raises(GazeFormatError, match="at most 1,000 bytes") as info:
        _read(tmp_path, max_bytes=1000)
    assert info.value.path == gaze


def test_huge_session_json_is_refused(tmp_path):
    path = tmp_path / "session.json"
    with open(path, "wb") as fh:
        fh.truncate(2 * 1024**3 + 1)
    with pytest.raises(GazeFormatError, match=r"session\.json of at most"):
        read_session(path)


def test_huge_responses_are_refused(tmp_path):
    path = tmp_path / "responses.csv"
    with open(path, "wb") as fh:
        fh.truncate(2 * 1024**3 + 1)
    with pytest.raises(GazeFormatError, match="at most"):
        read_responses(path, "p1")
