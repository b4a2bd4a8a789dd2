"""Synthetic EyeLink ASC files for reader tests and the throughput benchmark.

The writer follows docs/contracts.md (header, START/SAMPLES lines, TRIALID / TRIAL_VAR /
TRIAL_END messages, EyeLink event lines, ``.`` for lost coordinates) and returns the values it
wrote, so tests compare what the reader returns with ground truth instead of with itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class SyntheticAsc:
    """What :func:`write_synthetic_asc` wrote (one entry per sample line written inside trials)."""

    path: Path
    t_ms: np.ndarray
    trial: np.ndarray
    stimulus_id: list[str]
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    pupil: dict[str, np.ndarray]
    n_outside: int
    n_lines: int


def write_synthetic_asc(
    path: Path,
    *,
    n_trials: int = 3,
    samples_per_trial: int = 50,
    rate_hz: float = 500.0,
    binocular: bool = False,
    loss_fraction: float = 0.05,
    gap_samples: int = 5,
    seed: int = 0,
    newline: str = "\n",
) -> SyntheticAsc:
    """Write an ASC file with ``n_trials`` trials separated by ``gap_samples`` samples outside trials.

    Parameters
    ----------
    path:
        Output file.
    n_trials, samples_per_trial:
        Trial count and samples per trial.
    rate_hz:
        Sampling rate (500 → integer ms time stamps, 2000 → ``.5`` time stamps).
    binocular:
        Write ``LEFT RIGHT`` samples.
    loss_fraction:
        Share of samples written with ``.`` coordinates and pupil 0.0.
    gap_samples:
        Samples between trials (outside any trial: the reader must drop them).
    seed:
        Random seed.
    newline:
        Line terminator.
    """
    rng = np.random.default_rng(seed)
    eyes = ["left", "right"] if binocular else ["left"]
    eye_tokens = "LEFT\tRIGHT" if binocular else "LEFT"
    dt_ms = 1000.0 / rate_hz
    decimals = 1 if dt_ms != int(dt_ms) else 0
    lines = [
        "** CONVERTED FROM synthetic.edf using a test writer",
        "** DATE: Thu Jan  1 00:00:00 2026",
        "** TYPE: EDF_FILE BINARY EVENT SAMPLE TAGGED",
        "**",
        "",
        "MSG\t1000 DISPLAY_COORDS 0 0 1919 1079",
        f"START\t1990 \t{eye_tokens}\tSAMPLES\tEVENTS",
        "PRESCALER\t1",
        "VPRESCALER\t1",
        "PUPIL\tAREA",
        f"EVENTS\tGAZE\t{eye_tokens}\tRATE\t{rate_hz:.2f}\tTRACKING\tCR\tFILTER\t2",
        f"SAMPLES\tGAZE\t{eye_tokens}\tRATE\t{rate_hz:.2f}\tTRACKING\tCR\tFILTER\t2",
    ]
    t0 = 2000.0
    truth_t, truth_trial, truth_stim = [], [], []
    truth = {k: {e: [] for e in eyes} for k in ("x", "y", "pupil")}
    n_outside = 0
    step = 0
    for trial in range(n_trials):
        # Samples outside trials (between TRIAL_END and the next TRIALID).
        for _ in range(gap_samples):
            t = t0 + step * dt_ms
            step += 1
            fields = [f"{t:.{decimals}f}"] + ["  100.0\t  100.0\t  500.0"] * len(eyes)
            lines.append("\t".join(fields) + "\t...")
            n_outside += 1
        stimulus = f"stim_{trial:03d}"
        t_start = t0 + step * dt_ms
        lines.append(f"MSG\t{t_start:.0f} TRIALID {trial}")
        lines.append(f"MSG\t{t_start:.0f} !V TRIAL_VAR stimulus_id {stimulus}")
        lines.append(f"MSG\t{t_start:.0f} STIMULUS_ONSET")
        lines.append(f"SFIX L   {t_start:.0f}")
        t = t0 + (step + np.arange(samples_per_trial)) * dt_ms
        step += samples_per_trial
        cols = [np.char.mod(f"%.{decimals}f", t)]
        for e in eyes:
            x = np.round(rng.uniform(0, 1920, samples_per_trial), 1)
            y = np.round(rng.uniform(0, 1080, samples_per_trial), 1)
            pupil = np.round(rng.uniform(600, 1200, samples_per_trial), 0)
            lost = rng.random(samples_per_trial) < loss_fraction
            x[lost], y[lost], pupil[lost] = np.nan, np.nan, np.nan
            xs = np.where(lost, "   .", np.char.mod("%7.1f", np.nan_to_num(x)))
            ys = np.where(lost, "   .", np.char.mod("%7.1f", np.nan_to_num(y)))
            ps = np.where(lost, "    0.0", np.char.mod("%7.1f", np.nan_to_num(pupil)))
            cols += [xs, ys, ps]
            truth["x"][e].append(x)
            truth["y"][e].append(y)
            truth["pupil"][e].append(pupil)
        flags = np.full(samples_per_trial, "...")
        body = cols[0]
        for col in [*cols[1:], flags]:
            body = np.char.add(np.char.add(body, "\t"), col)
        lines.extend(body.tolist())
        lines.append(f"EFIX L   {t_start:.0f}\t{t[-1]:.0f}\t{len(t) * dt_ms:.0f}\t  960.0\t  540.0\t    900")
        lines.append(f"MSG\t{t[-1]:.0f} TRIAL_END")
        truth_t.append(t)
        truth_trial.append(np.full(samples_per_trial, trial))
        truth_stim += [stimulus] * samples_per_trial
    lines.append(f"END\t{t0 + step * dt_ms:.0f} \tSAMPLES\tEVENTS\tRES\t  38.0\t  38.0")
    path.write_text(newline.join(lines) + newline, encoding="utf-8", newline="")
    return SyntheticAsc(
        path=path,
        t_ms=np.concatenate(truth_t),
        trial=np.concatenate(truth_trial),
        stimulus_id=truth_stim,
        x={e: np.concatenate(v) for e, v in truth["x"].items()},
        y={e: np.concatenate(v) for e, v in truth["y"].items()},
        pupil={e: np.concatenate(v) for e, v in truth["pupil"].items()},
        n_outside=n_outside,
        n_lines=len(lines),
    )
