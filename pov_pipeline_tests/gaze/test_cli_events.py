"""``pov events`` end to end: CSV and EyeLink ASC in, one label row per sample out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.cli import main
from pov_pipeline.gaze.detection import EVENT_COLUMNS
from pov_pipeline.schemas import SAMPLE_LABELS

GEOM_ARGS = ["--screen-px", "1024", "768", "--screen-mm", "380", "300", "--distance-mm", "670"]
RATE_HZ = 500.0


def two_fixations(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Fixation, a 30 ms 300 px saccade, fixation; returns t_ms, x, y and the first/last saccade row."""
    rng = np.random.default_rng(seed)
    n = 530
    t_ms = 1000.0 + np.arange(n) * 1000.0 / RATE_HZ
    i0, m = 250, 15
    frac = np.clip((np.arange(n) - i0 + 1) / m, 0.0, 1.0)
    prog = frac - np.sin(2 * np.pi * frac) / (2 * np.pi)
    x = 362.0 + 300.0 * prog + rng.normal(0, 0.3, n)
    y = 384.0 + rng.normal(0, 0.3, n)
    return t_ms, x, y, i0, i0 + m - 1


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_csv_with_lost_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t_ms, x, y, sac_first, sac_last = two_fixations()
    xs = np.char.mod("%.2f", x).astype(object)
    ys = np.char.mod("%.2f", y).astype(object)
    # Lost samples written both ways: empty fields and literal NaN; one x-only loss.
    xs[100:104] = ""
    ys[100:104] = ""
    xs[400:405] = "NaN"
    ys[400:405] = "NaN"
    ys[450] = ""
    frame = pd.DataFrame({"t_ms": t_ms, "x_px": xs, "y_px": ys, "pupil": 3.5, "note": "extra"})
    src = tmp_path / "gaze.csv"
    frame.to_csv(src, index=False)
    out = tmp_path / "labels.csv"
    ev_out = tmp_path / "events.csv"

    code, err = run(["events", str(src), "--out", str(out), "--events-out", str(ev_out), *GEOM_ARGS], capsys)
    assert code == 0, err

    labels = pd.read_csv(out)
    assert list(labels.columns) == ["t_ms", "label"]
    assert len(labels) == len(frame)
    np.testing.assert_allclose(labels["t_ms"].to_numpy(), t_ms)
    assert set(labels["label"]) <= set(SAMPLE_LABELS)
    lab = labels["label"].to_numpy()
    # The saccade is found within a sample of where it was drawn, and the fixations around it.
    sac = np.flatnonzero(lab == "saccade")
    assert sac.size > 0
    assert abs(int(sac[0]) - sac_first) <= 1
    assert abs(int(sac[-1]) - sac_last) <= 3
    assert (lab[150:240] == "fixation").all()
    assert (lab[300:390] == "fixation").all()
    # Short losses are interpolated over, longer ones stay lost.
    assert (lab[400:405] == "lost").all() or (lab[400:405] == "fixation").all()

    events = pd.read_csv(ev_out)
    assert list(events.columns) == ["trial", *EVENT_COLUMNS]
    saccades = events[events["event"] == "saccade"]
    assert len(saccades) == 1
    # 300 px at 0.37 mm/px seen from 670 mm: about 9.4 deg.
    assert 8.5 < saccades["amplitude_deg"].iloc[0] < 10.5
    # Event rows point at rows of the labels file.
    for _, row in events.iterrows():
        assert (lab[row["start_index"] : row["end_index"] + 1] == row["event"]).all()


def test_csv_per_trial_and_order_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t1, x1, y1, s1, _ = two_fixations(1)
    t2, x2, y2, s2, _ = two_fixations(2)
    frame = pd.DataFrame(
        {
            "trial": np.repeat([7, 3], [t1.size, t2.size]),
            "t_ms": np.concatenate([t1, t2 + 5000.0]),
            "x_px": np.concatenate([x1, x2]),
            "y_px": np.concatenate([y1, y2]),
        }
    )
    src = tmp_path / "trials.csv"
    frame.to_csv(src, index=False)
    out = tmp_path / "labels.csv"
    code, err = run(["events", str(src), "--out", str(out), "--format", "csv", *GEOM_ARGS], capsys)
    assert code == 0, err
    labels = pd.read_csv(out)
    np.testing.assert_allclose(labels["t_ms"].to_numpy(), frame["t_ms"].to_numpy())
    lab = labels["label"].to_numpy()
    assert lab[s1] == "saccade"
    assert lab[t1.size + s2] == "saccade"


def write_asc(path: Path, t_ms: np.ndarray, x: np.ndarray, y: np.ndarray, split: int) -> None:
    """A monocular EyeLink ASC with two trials (rows [0, split) and [split, n))."""
    lines = [
        "** CONVERTED FROM test.edf",
        "**",
        "MSG\t990 DISPLAY_COORDS 0 0 1023 767",
        "START\t995 \tLEFT\tSAMPLES\tEVENTS",
        "SAMPLES\tGAZE\tLEFT\tRATE\t500.00\tTRACKING\tCR\tFILTER\t2",
    ]
    for trial, (a, b) in enumerate(((0, split), (split, t_ms.size))):
        lines.append(f"MSG\t{t_ms[a]:.0f} TRIALID {trial}")
        lines.append(f"MSG\t{t_ms[a]:.0f} !V TRIAL_VAR stimulus_id img{trial}")
        for i in range(a, b):
            if np.isnan(x[i]):
                lines.append(f"{t_ms[i]:.0f}\t   .\t   .\t    0.0\t...")
            else:
                lines.append(f"{t_ms[i]:.0f}\t{x[i]:7.1f}\t{y[i]:7.1f}\t  900.0\t...")
        lines.append(f"MSG\t{t_ms[b - 1]:.0f} TRIAL_END")
    lines.append(f"END\t{t_ms[-1]:.0f} \tSAMPLES\tEVENTS\tRES\t38.0\t38.0")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_eyelink_asc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t1, x1, y1, s1, _ = two_fixations(3)
    t2, x2, y2, s2, _ = two_fixations(4)
    t_ms = np.concatenate([t1, t2 + 2000.0])
    x = np.concatenate([x1, x2])
    y = np.concatenate([y1, y2])
    x[60:80] = np.nan  # a 40 ms loss
    y[60:80] = np.nan
    src = tmp_path / "rec.asc"
    write_asc(src, t_ms, x, y, t1.size)
    out = tmp_path / "labels.csv"
    ev_out = tmp_path / "events.csv"
    code, err = run(["events", str(src), "--out", str(out), "--events-out", str(ev_out), *GEOM_ARGS], capsys)
    assert code == 0, err
    labels = pd.read_csv(out)
    assert len(labels) == t_ms.size
    np.testing.assert_allclose(labels["t_ms"].to_numpy(), t_ms)
    lab = labels["label"].to_numpy()
    assert set(lab) <= set(SAMPLE_LABELS)
    assert lab[s1] == "saccade" and lab[t1.size + s2] == "saccade"
    assert set(lab[60:80]) <= {"lost", "blink"}
    events = pd.read_csv(ev_out)
    assert sorted(events["trial"].unique()) == [0, 1]
    for _, row in events.iterrows():
        assert (lab[row["start_index"] : row["end_index"] + 1] == row["event"]).all()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "not a readable CSV"),
        ("time,x,y\n1,2,3\n", "missing t_ms"),
        ("t_ms,x_px,y_px\n1,2,3\n2,abc,3\n", "expected a number in x_px"),
        ("t_ms,x_px,y_px\n1,2,3\n,2,3\n", "t_ms is empty"),
        ("t_ms,x_px,y_px\n1,2,3\n3,2,3\n2,2,3\n", "t_ms must increase"),
    ],
)
def test_bad_csv_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(content)
    code, err = run(
        ["events", str(src), "--out", str(tmp_path / "o.csv"), "--format", "csv", *GEOM_ARGS], capsys
    )
    assert code == 2
    assert message in err
    assert not (tmp_path / "o.csv").exists()


def test_missing_and_malformed_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(
        ["events", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv"), *GEOM_ARGS], capsys
    )
    assert code == 2 and "no such file" in err
    asc = tmp_path / "broken.asc"
    asc.write_text("** header\nSAMPLES\tGAZE\tLEFT\tRATE\t500.00\n1000\tabc\t1.0\t900.0\t...\n")
    code, err = run(
        ["events", str(asc), "--out", str(tmp_path / "o.csv"), "--format", "asc", *GEOM_ARGS], capsys
    )
    assert code == 2 and "broken.asc" in err
