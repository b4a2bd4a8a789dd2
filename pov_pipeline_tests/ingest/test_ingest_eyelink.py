"""EyeLink ASC reader: real exports, synthetic files with known truth, and malformed input."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_synth import write_synthetic_asc

from pov_pipeline.ingest import GazeFormatError, read_eyelink_asc
from pov_pipeline.schemas import RAW_GAZE

DATA = Path(__file__).parent / "data"
MONO = DATA / "pymovements_eyelink_monocular_example.asc"
BINO = DATA / "pymovements_eyelink_binocular_example.asc"


def _hand_parse(path: Path) -> list[tuple[int, list[str], int]]:
    """Sample lines as (line number, whitespace-split fields), parsed without the reader's code."""
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line[:1].isdigit():
            out.append((number, line.split(), number))
    return out


def _num(token: str) -> float:
    return np.nan if token == "." else float(token)


def _frame(result):
    return result.samples.to_pandas()


# --- real files (pymovements excerpts, copied under MIT into data/) --------------------------------


def test_monocular_example_rows_match_hand_parse() -> None:
    result = read_eyelink_asc(MONO, participant="p01")
    assert result.samples.schema == RAW_GAZE
    frame = _frame(result)
    lines = MONO.read_text().splitlines()
    # Trial k opens at "TRIALID k"; "TRIAL_RESULT" closes the last one.
    trial, expected = None, []
    for line in lines:
        words = line.split()
        if len(words) >= 4 and words[0] == "MSG" and words[2] == "TRIALID":
            trial = int(words[3])
        elif len(words) >= 3 and words[0] == "MSG" and words[2] == "TRIAL_RESULT":
            trial = None
        elif line[:1].isdigit() and trial is not None:
            expected.append((trial, int(words[0]) * 1000, float(words[1]), float(words[2]), float(words[3])))
    assert len(expected) == 15  # 16 sample lines, the last one after TRIAL_RESULT
    assert len(frame) == len(expected)
    assert frame["trial"].tolist() == [e[0] for e in expected]
    assert frame["t_us"].tolist() == [e[1] for e in expected]
    np.testing.assert_allclose(frame["x_px"], [e[2] for e in expected], rtol=1e-6)
    np.testing.assert_allclose(frame["y_px"], [e[3] for e in expected], rtol=1e-6)
    np.testing.assert_allclose(frame["pupil"], [e[4] for e in expected], rtol=1e-6)
    assert set(frame["eye"]) == {"left"}
    assert frame["valid"].all()
    assert result.report["declared_rate_hz"] == 1000.0
    assert result.report["n_dropped_outside_trials"] == 1
    assert result.report["n_trials"] == 5
    # First sample line of the file, read by hand: "2154556  138.1  132.8  778.0  0.0  ..."
    first = frame.iloc[0]
    assert (first["t_us"], round(float(first["x_px"]), 1), round(float(first["y_px"]), 1)) == (
        2154556000,
        138.1,
        132.8,
    )


def test_binocular_example_two_eyes_and_loss() -> None:
    result = read_eyelink_asc(BINO, participant="p02")
    frame = _frame(result)
    text = BINO.read_text().splitlines()
    start = next(i for i, line in enumerate(text) if "TRIALID" in line)
    stop = next(i for i, line in enumerate(text) if line.endswith("stop_trial"))
    inside = [line.split() for line in text[start:stop] if line[:1].isdigit()]
    assert result.report["eyes"] == ["left", "right"]
    left, right = frame[frame["eye"] == "left"], frame[frame["eye"] == "right"]
    assert len(left) == len(right) == len(inside) == 162
    np.testing.assert_array_equal(left["t_us"], [int(f[0]) * 1000 for f in inside])
    np.testing.assert_array_equal(right["t_us"], left["t_us"])
    np.testing.assert_allclose(left["x_px"], [_num(f[1]) for f in inside], rtol=1e-6)
    np.testing.assert_allclose(right["y_px"], [_num(f[5]) for f in inside], rtol=1e-6)
    lost_left = np.array([f[1] == "." for f in inside])
    assert lost_left.any()
    assert (~left["valid"].to_numpy() == lost_left).all()
    assert left["pupil"].isna().to_numpy()[lost_left].all()  # pupil 0.0 → NaN
    # Non-integer TRIALID (I902C_low) → trial 0, label kept in the report.
    assert set(frame["trial"]) == {0}
    assert result.report["trial_labels"] == {"0": "I902C_low"}
    assert result.report["n_dropped_outside_trials"] == 368 - 162
    assert result.report["measured_rate_hz"] == pytest.approx(1000.0)


def test_binocular_example_left_only_when_session_says_left() -> None:
    result = read_eyelink_asc(BINO, participant="p02", eye="left")
    assert set(_frame(result)["eye"]) == {"left"}


def test_shared_refdata_files(refdata: Path) -> None:
    folder = refdata / "vendor_exports" / "eyelink_asc"
    for name in ("pymovements_eyelink_monocular_example.asc", "pymovements_eyelink_binocular_example.asc"):
        ours = read_eyelink_asc(DATA / name, participant="p")
        theirs = read_eyelink_asc(folder / name, participant="p")
        pd.testing.assert_frame_equal(_frame(ours), _frame(theirs))


def test_href_file_is_refused_with_its_line(refdata: Path) -> None:
    path = refdata / "vendor_exports" / "eyelink_asc" / "mne_test_eyelink_HREF.asc"
    with pytest.raises(GazeFormatError) as info:
        read_eyelink_asc(path, participant="p")
    err = info.value
    assert err.found == "HREF"
    assert err.line == 95
    assert path.read_text().splitlines()[94].startswith("SAMPLES\tHREF")
    assert str(err).startswith("mne_test_eyelink_HREF.asc line 95: expected GAZE sample units")


# --- synthetic files with known truth ------------------------------------------------------------


@pytest.mark.parametrize("binocular", [False, True])
@pytest.mark.parametrize("rate_hz", [500.0, 2000.0])
def test_synthetic_matches_truth(tmp_path: Path, binocular: bool, rate_hz: float) -> None:
    synth = write_synthetic_asc(
        tmp_path / "gaze.asc", n_trials=4, samples_per_trial=80, rate_hz=rate_hz, binocular=binocular, seed=3
    )
    result = read_eyelink_asc(synth.path, participant="p7")
    frame = _frame(result)
    eyes = ["left", "right"] if binocular else ["left"]
    assert result.report["eyes"] == eyes
    assert result.report["n_dropped_outside_trials"] == synth.n_outside
    assert result.report["declared_rate_hz"] == rate_hz
    assert result.report["measured_rate_hz"] == pytest.approx(rate_hz)
    assert len(frame) == len(synth.t_ms) * len(eyes)
    for eye in eyes:
        part = frame[frame["eye"] == eye]
        np.testing.assert_array_equal(part["t_us"], np.rint(synth.t_ms * 1000).astype(np.int64))
        np.testing.assert_array_equal(part["trial"], synth.trial)
        assert part["stimulus_id"].tolist() == synth.stimulus_id
        np.testing.assert_allclose(part["x_px"], synth.x[eye], rtol=1e-6)
        np.testing.assert_allclose(part["y_px"], synth.y[eye], rtol=1e-6)
        np.testing.assert_allclose(part["pupil"], synth.pupil[eye], rtol=1e-6)
        np.testing.assert_array_equal(part["valid"], np.isfinite(synth.x[eye]))
    # Sorted by (trial, eye, t_us).
    keys = list(zip(frame["trial"], frame["eye"], frame["t_us"], strict=True))
    assert keys == sorted(keys)


def test_crlf_and_mixed_line_endings_give_the_same_table(tmp_path: Path) -> None:
    lf = write_synthetic_asc(tmp_path / "lf.asc", seed=5)
    crlf = write_synthetic_asc(tmp_path / "crlf.asc", seed=5, newline="\r\n")
    mixed = tmp_path / "mixed.asc"
    lines = lf.path.read_bytes().split(b"\n")
    mixed.write_bytes(b"".join(line + (b"\r\n" if i % 3 else b"\n") for i, line in enumerate(lines[:-1])))
    expected = _frame(read_eyelink_asc(lf.path, participant="p"))
    for path in (crlf.path, mixed):
        result = read_eyelink_asc(path, participant="p")
        pd.testing.assert_frame_equal(_frame(result), expected)
        assert any("CRLF" in note for note in result.report["notes"])


def test_no_trial_markers_make_one_trial(tmp_path: Path) -> None:
    path = tmp_path / "free.asc"
    path.write_text(
        "** free viewing\nSTART\t10 \tRIGHT\tSAMPLES\tEVENTS\n"
        "SAMPLES\tGAZE\tRIGHT\tRATE\t1000.00\tTRACKING\tCR\tFILTER\t2\n"
        "10\t  1.0\t  2.0\t  300.0\t...\n11\t  3.0\t  4.0\t  301.0\t...\n"
        "MSG\t11 hello\n12\t  5.0\t  6.0\t  302.0\t...\n"
    )
    frame = _frame(read_eyelink_asc(path, participant="p"))
    assert frame["trial"].tolist() == [0, 0, 0]
    assert frame["stimulus_id"].tolist() == ["", "", ""]
    assert frame["eye"].tolist() == ["right"] * 3
    assert frame["x_px"].tolist() == [1.0, 3.0, 5.0]


def test_alternative_trial_markers(tmp_path: Path) -> None:
    path = tmp_path / "alt.asc"
    path.write_text(
        "SAMPLES\tGAZE\tLEFT\tRATE\t500.00\n"
        "0\t1\t1\t1\t...\nMSG\t1 start_trial 7\nMSG\t1 !V TRIAL_VAR image cat.png\n2\t2\t2\t2\t...\n"
        "MSG\t3 stop_trial\n4\t4\t4\t4\t...\n"
    )
    result = read_eyelink_asc(path, participant="p")
    frame = _frame(result)
    assert frame["trial"].tolist() == [7]
    assert frame["stimulus_id"].tolist() == ["cat.png"]
    assert result.report["n_dropped_outside_trials"] == 2


# --- malformed input ------------------------------------------------------------------------------

HEADER = "** test\nSTART\t0 \tLEFT\tSAMPLES\tEVENTS\nSAMPLES\tGAZE\tLEFT\tRATE\t500.00\nMSG\t0 TRIALID 1\n"


def test_empty_and_header_only(tmp_path: Path) -> None:
    empty = tmp_path / "empty.asc"
    empty.write_bytes(b"")
    with pytest.raises(GazeFormatError, match="empty file"):
        read_eyelink_asc(empty, participant="p")
    header_only = tmp_path / "header.asc"
    header_only.write_text(HEADER)
    with pytest.raises(GazeFormatError, match="sample lines"):
        read_eyelink_asc(header_only, participant="p")


def test_non_numeric_coordinate_names_line_and_value(tmp_path: Path) -> None:
    path = tmp_path / "gaze.asc"
    path.write_text(HEADER + "0\t1.0\t2.0\t3.0\t...\n2\tabc\t2.0\t3.0\t...\n")
    with pytest.raises(GazeFormatError) as info:
        read_eyelink_asc(path, participant="p")
    assert info.value.line == 6
    assert info.value.found == "abc"
    assert info.value.column == "x_left"
    assert str(info.value) == "gaze.asc line 6: expected a numeric x coordinate or '.', found 'abc'"


def test_too_few_fields_is_an_error_but_a_cut_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "short.asc"
    path.write_text(HEADER + "0\t1.0\t2.0\t3.0\t...\n2\t1.0\n4\t1.0\t2.0\t3.0\t...\n")
    with pytest.raises(GazeFormatError) as info:
        read_eyelink_asc(path, participant="p")
    assert info.value.line == 6
    cut = tmp_path / "cut.asc"
    cut.write_text(HEADER + "0\t1.0\t2.0\t3.0\t...\n2\t1.0\t2.0\t3.0\t...\n4\t 12")
    result = read_eyelink_asc(cut, participant="p")
    assert result.samples.num_rows == 2
    assert result.report["truncated_last_line_dropped"] is True


def test_nan_and_inf_coordinates_are_lost(tmp_path: Path) -> None:
    path = tmp_path / "nan.asc"
    path.write_text(HEADER + "0\tnan\t2.0\t3.0\t...\n2\t1.0\tinf\t3.0\t...\n4\t1.0\t2.0\t3.0\t...\n")
    frame = _frame(read_eyelink_asc(path, participant="p"))
    assert frame["valid"].tolist() == [False, False, True]
    assert frame["x_px"].isna().tolist() == [True, True, False]
    assert frame["y_px"].isna().tolist() == [True, True, False]


def test_timestamps_backwards_error_and_duplicates_dropped(tmp_path: Path) -> None:
    path = tmp_path / "dup.asc"
    path.write_text(HEADER + "0\t1\t1\t1\t...\n2\t2\t2\t2\t...\n2\t2\t2\t2\t...\n4\t4\t4\t4\t...\n")
    result = read_eyelink_asc(path, participant="p")
    assert result.report["n_duplicate_timestamps_dropped"] == 1
    assert result.report["n_duplicate_timestamps_with_other_values"] == 0
    assert _frame(result)["t_us"].tolist() == [0, 2000, 4000]
    clash = tmp_path / "clash.asc"
    clash.write_text(HEADER + "0\t1\t1\t1\t...\n0\t5\t1\t1\t...\n")
    report = read_eyelink_asc(clash, participant="p").report
    assert (report["n_duplicate_timestamps_dropped"], report["n_duplicate_timestamps_with_other_values"]) == (
        1,
        1,
    )
    back = tmp_path / "back.asc"
    back.write_text(HEADER + "0\t1\t1\t1\t...\n4\t2\t2\t2\t...\n2\t2\t2\t2\t...\n")
    with pytest.raises(GazeFormatError) as info:
        read_eyelink_asc(back, participant="p")
    assert info.value.line == 7
    assert "go backwards" in str(info.value)


def test_non_utf8_bytes_fall_back_to_latin1(tmp_path: Path) -> None:
    path = tmp_path / "latin.asc"
    path.write_bytes(
        HEADER.encode() + b"MSG\t0 !V TRIAL_VAR stimulus_id caf\xe9\n0\t1\t1\t1\t...\n2\t2\t2\t2\t...\n"
    )
    result = read_eyelink_asc(path, participant="p")
    assert result.report["encoding"] == "latin-1"
    assert any("line 5" in note for note in result.report["notes"])
    assert _frame(result)["stimulus_id"].tolist() == ["café", "café"]


def test_size_guard(tmp_path: Path) -> None:
    synth = write_synthetic_asc(tmp_path / "big.asc")
    with pytest.raises(GazeFormatError, match="at most 1,000 bytes"):
        read_eyelink_asc(synth.path, participant="p", max_bytes=1000)


def test_all_samples_outside_trials_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "outside.asc"
    path.write_text(HEADER.replace("MSG\t0 TRIALID 1\n", "") + "0\t1\t1\t1\t...\nMSG\t5 TRIALID 1\n")
    with pytest.raises(GazeFormatError, match="samples inside trials"):
        read_eyelink_asc(path, participant="p")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GazeFormatError, match="no such file"):
        read_eyelink_asc(tmp_path / "nope.asc", participant="p")


def test_experiment_builder_style_trial_vars_after_trial_end(tmp_path: Path) -> None:
    """Data Viewer writes TRIAL_VARs after TRIAL_RESULT; they still name the trial just ended."""
    path = tmp_path / "eb.asc"
    path.write_text(
        "SAMPLES\tGAZE\tLEFT\tRATE\t500.00\n"
        "MSG\t0 TRIALID 11\n0\t1\t1\t1\t...\n2\t2\t2\t2\t...\nMSG\t3 TRIAL_RESULT 0\n"
        "MSG\t4 !V TRIAL_VAR stimulus_id dog\n"
        "MSG\t5 TRIALID 12\n6\t1\t1\t1\t...\nMSG\t7 TRIAL_RESULT 0\nMSG\t8 !V TRIAL_VAR stimulus_id cat\n"
    )
    frame = _frame(read_eyelink_asc(path, participant="p"))
    assert frame["trial"].tolist() == [11, 11, 12]
    assert frame["stimulus_id"].tolist() == ["dog", "dog", "cat"]


def test_blocks_with_different_eyes(tmp_path: Path) -> None:
    path = tmp_path / "blocks.asc"
    path.write_text(
        "START\t0 \tLEFT\tSAMPLES\tEVENTS\nSAMPLES\tGAZE\tLEFT\tRATE\t500.00\n"
        "0\t1\t1\t1\t...\n2\t2\t2\t2\t...\nEND\t3 \tSAMPLES\tEVENTS\n"
        "START\t10 \tLEFT\tRIGHT\tSAMPLES\tEVENTS\nSAMPLES\tGAZE\tLEFT\tRIGHT\tRATE\t1000.00\n"
        "10\t3\t3\t3\t9\t9\t9\t.....\n11\t4\t4\t4\t8\t8\t8\t.....\nEND\t12 \tSAMPLES\tEVENTS\n"
    )
    result = read_eyelink_asc(path, participant="p")
    frame = _frame(result)
    left, right = frame[frame["eye"] == "left"], frame[frame["eye"] == "right"]
    assert left["x_px"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert right["x_px"].tolist() == [9.0, 8.0]
    assert right["t_us"].tolist() == [10_000, 11_000]
    assert result.report["declared_rates_hz"] == [500.0, 1000.0]


def test_error_str_and_pickle() -> None:
    import pickle

    err = GazeFormatError(Path("/x/gaze.asc"), "a numeric x coordinate", "abc", line=1234, column="x")
    assert str(err) == "gaze.asc line 1234: expected a numeric x coordinate, found 'abc'"
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.line, again.column, again.found) == (str(err), 1234, "x", "abc")
    assert str(GazeFormatError("s.json", "a number", 3)) == "s.json: expected a number, found 3"


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    values=st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-5000, 5000, allow_nan=False).map(lambda v: round(v, 1))),
            st.floats(-5000, 5000, allow_nan=False).map(lambda v: round(v, 1)),
            st.integers(0, 5000),
        ),
        min_size=1,
        max_size=40,
    ),
    steps=st.lists(st.integers(1, 4), min_size=40, max_size=40),
)
def test_roundtrip_property(values: list[tuple[float | None, float, int]], steps: list[int]) -> None:
    """Whatever numbers are written in EyeLink's layout come back unchanged (``.`` → lost)."""
    t = np.cumsum(steps[: len(values)]) * 2
    body = "".join(
        f"{ti}\t{'   .' if x is None else f'{x:7.1f}'}\t{y:7.1f}\t{p:7.1f}\t...\n"
        for ti, (x, y, p) in zip(t, values, strict=True)
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.asc"
        path.write_text(HEADER + body)
        frame = _frame(read_eyelink_asc(path, participant="p"))
    assert frame["t_us"].tolist() == [int(v) * 1000 for v in t]
    expected_x = np.array([np.nan if x is None else x for x, _, _ in values], dtype=np.float32)
    np.testing.assert_array_equal(frame["x_px"].to_numpy(), expected_x)
    lost = np.isnan(expected_x)
    np.testing.assert_array_equal(frame["valid"].to_numpy(), ~lost)
    expected_y = np.array([y for _, y, _ in values], dtype=np.float32)
    np.testing.assert_array_equal(frame["y_px"].to_numpy()[~lost], expected_y[~lost])
    expected_p = np.array([p if p > 0 else np.nan for _, _, p in values], dtype=np.float32)
    np.testing.assert_array_equal(frame["pupil"].to_numpy(), expected_p)
