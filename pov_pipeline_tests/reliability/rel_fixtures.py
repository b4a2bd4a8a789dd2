"""Small valid deliveries in the contract's formats, for the reliability tests to break.

Each writer returns text; :func:`write_participant` lays out a landing folder. The bad-input tests
start from these and change one thing, so a failure points at that one thing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

RATE_HZ = 500.0
STIMULI = ("s001", "s002", "s003")


def _xy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return 960.0 + rng.normal(0, 3, n).round(1), 540.0 + rng.normal(0, 3, n).round(1)


def asc_text(
    *,
    n_trials: int = 2,
    samples_per_trial: int = 40,
    binocular: bool = False,
    units: str = "GAZE",
    rate_hz: float = RATE_HZ,
    seed: int = 0,
    t0_ms: int = 100000,
) -> str:
    """A small EyeLink ASC export: header, one recording block, ``n_trials`` trials."""
    eyes = "LEFT\tRIGHT" if binocular else "LEFT"
    lines = [
        "** CONVERTED FROM test.edf using edfapi 4.2",
        "** DATE: Mon Jan  8 09:00:00 2024",
        "**",
        "",
        f"MSG\t{t0_ms - 2} DISPLAY_COORDS 0 0 1919 1079",
        f"START\t{t0_ms - 1}\t{eyes}\tSAMPLES\tEVENTS",
        "PRESCALER\t1",
        f"EVENTS\t{units}\t{eyes}\tRATE\t{rate_hz:.2f}\tTRACKING\tCR\tFILTER\t2",
        f"SAMPLES\t{units}\t{eyes}\tRATE\t{rate_hz:.2f}\tTRACKING\tCR\tFILTER\t2",
    ]
    step_ms = 1000.0 / rate_hz
    t = float(t0_ms)
    for trial in range(1, n_trials + 1):
        lines.append(f"MSG\t{int(t)} TRIALID {trial}")
        lines.append(f"MSG\t{int(t)} !V TRIAL_VAR stimulus_id {STIMULI[(trial - 1) % len(STIMULI)]}")
        x, y = _xy(samples_per_trial, seed + trial)
        for i in range(samples_per_trial):
            stamp = f"{t:.1f}" if step_ms % 1 else f"{int(t)}"
            if binocular:
                lines.append(
                    f"{stamp}\t{x[i]:.1f}\t{y[i]:.1f}\t1200.0\t{x[i] + 5:.1f}\t{y[i]:.1f}\t1210.0\t....."
                )
            else:
                lines.append(f"{stamp}\t{x[i]:.1f}\t{y[i]:.1f}\t1200.0\t...")
            t += step_ms
        lines.append(f"MSG\t{int(t)} TRIAL_END")
        t += 10 * step_ms
    lines.append(f"END\t{int(t)}\tSAMPLES\tEVENTS\tRES\t38.0\t38.0")
    return "\n".join(lines) + "\n"


TSV_HEADER = [
    "Recording timestamp",
    "Sensor",
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


def tsv_text(*, n_trials: int = 2, samples_per_trial: int = 40, rate_hz: float = 300.0, seed: int = 0) -> str:
    """A small Tobii Pro Lab data export (tab-separated, binocular, µs time stamps)."""
    rows = ["\t".join(TSV_HEADER)]
    t = 1_000_000
    step = round(1e6 / rate_hz)

    def event(name: str, value: str) -> str:
        return "\t".join([str(t), "", name, value] + [""] * 11)

    for trial in range(1, n_trials + 1):
        stim = STIMULI[(trial - 1) % len(STIMULI)]
        rows.append(event("TrialStart", str(trial)))
        rows.append(event("ImageStimulusStart", stim))
        x, y = _xy(samples_per_trial, seed + trial)
        for i in range(samples_per_trial):
            xs, ys = f"{x[i]:.0f}", f"{y[i]:.0f}"
            rows.append(
                "\t".join(
                    [
                        str(t),
                        "Eye Tracker",
                        "",
                        "",
                        xs,
                        ys,
                        xs,
                        ys,
                        xs,
                        ys,
                        "3.1",
                        "3.2",
                        "Valid",
                        "Valid",
                        stim,
                    ]
                )
            )
            t += step
        rows.append(event("TrialEnd", str(trial)))
        t += 10 * step
    return "\n".join(rows) + "\n"


def csv_text(
    *, n_trials: int = 2, samples_per_trial: int = 40, rate_hz: float = RATE_HZ, seed: int = 0
) -> str:
    """A small generic gaze CSV (``t_ms,x_px,y_px,pupil,trial,stimulus_id``)."""
    rows = ["t_ms,x_px,y_px,pupil,trial,stimulus_id"]
    t = 0.0
    for trial in range(1, n_trials + 1):
        x, y = _xy(samples_per_trial, seed + trial)
        for i in range(samples_per_trial):
            rows.append(f"{t:.1f},{x[i]:.1f},{y[i]:.1f},3.0,{trial},{STIMULI[(trial - 1) % len(STIMULI)]}")
            t += 1000.0 / rate_hz
        t += 20.0
    return "\n".join(rows) + "\n"


def responses_text(n_trials: int = 2) -> str:
    """``responses.csv`` for trials 1..n_trials."""
    answers = ("yes", "no", "unsure")
    rows = ["trial,stimulus_id,response,rt_ms"]
    rows += [
        f"{k},{STIMULI[(k - 1) % len(STIMULI)]},{answers[k % 3]},{1500 + k}.5" for k in range(1, n_trials + 1)
    ]
    return "\n".join(rows) + "\n"


FORMATS = {
    "eyelink_asc": ("gaze.asc", asc_text),
    "tobii_prolab_tsv": ("gaze.tsv", tsv_text),
    "csv": ("gaze.csv", csv_text),
}


def session_doc(participant: str, fmt: str = "eyelink_asc", **overrides: object) -> dict:
    """A valid ``session.json`` document."""
    rate = {"eyelink_asc": RATE_HZ, "tobii_prolab_tsv": 300.0, "csv": RATE_HZ}[fmt]
    doc = {
        "participant_id": participant,
        "tracker": "test tracker",
        "format": fmt,
        "gaze_file": FORMATS[fmt][0],
        "sampling_rate_hz": rate,
        "screen_px": [1920, 1080],
        "screen_mm": [531.0, 299.0],
        "viewing_distance_mm": 650.0,
        "eye": "binocular" if fmt == "tobii_prolab_tsv" else "left",
        "csv_columns": None,
    }
    doc.update(overrides)
    return doc


def write_participant(
    folder: Path,
    participant: str,
    fmt: str = "eyelink_asc",
    *,
    gaze: str | bytes | None = None,
    responses: str | None = None,
    session: dict | None = None,
    n_trials: int = 2,
) -> Path:
    """Write a complete landing folder; any part can be replaced. Returns the gaze file."""
    folder.mkdir(parents=True, exist_ok=True)
    name, writer = FORMATS[fmt]
    content = writer(n_trials=n_trials) if gaze is None else gaze
    gaze_path = folder / name
    if isinstance(content, bytes):
        gaze_path.write_bytes(content)
    else:
        gaze_path.write_text(content)
    (folder / "responses.csv").write_text(responses if responses is not None else responses_text(n_trials))
    doc = session if session is not None else session_doc(participant, fmt)
    (folder / "session.json").write_text(json.dumps(doc, indent=2))
    return gaze_path
