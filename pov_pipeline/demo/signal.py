"""Sample-by-sample gaze of the demo study, vectorized over all samples of a participant.

Fixations carry slow linear drift, a little tremor and white tracker noise; saccades follow the
main sequence (duration 2.2 ms/deg × amplitude + 21 ms) with a minimum-jerk position profile, so
their velocity is bell-shaped with peak 1.875 × amplitude / duration; some saccades end in a
damped post-saccadic oscillation; blinks (100–300 ms, flanked by spurious samples where the lid
drags the estimate down and the pupil shrinks) and sporadic track loss remove samples; the
participant's calibration offset is added to every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pov_pipeline.demo.participants import Participant, px_per_deg
from pov_pipeline.demo.scanpath import Blinks, Scanpaths
from pov_pipeline.schemas import SAMPLE_LABELS

FIXATION, SACCADE, PSO, BLINK, LOST = (
    SAMPLE_LABELS.index(n) for n in ("fixation", "saccade", "pso", "blink", "lost")
)
PSO_PROBABILITY = 0.6


@dataclass(frozen=True)
class EyeSignal:
    """One eye's in-trial samples of a participant, trials concatenated in presentation order."""

    eye: str
    x_px: np.ndarray  # float64, NaN when lost
    y_px: np.ndarray
    pupil: np.ndarray  # tracker units; 0 (EyeLink) or NaN (Tobii) when lost
    label: np.ndarray  # int8 index into SAMPLE_LABELS


@dataclass(frozen=True)
class ParticipantSignal:
    """In-trial samples of all trials: ``trial_pos`` (0-based presentation position), ``t_rel_us``."""

    trial_pos: np.ndarray  # int32
    t_rel_us: np.ndarray  # int64, time since stimulus onset
    samples_per_trial: int
    eyes: tuple[EyeSignal, ...]


def samples_per_trial(trial_duration_s: float, rate_hz: int) -> int:
    """Number of samples recorded while a stimulus is shown."""
    return round(trial_duration_s * rate_hz)


def relative_times_us(n: int, rate_hz: int) -> np.ndarray:
    """Sample times since onset in µs; EyeLink-style rates give whole milliseconds."""
    return np.round(np.arange(n) * (1e6 / rate_hz)).astype(np.int64)


def _interval_mask(t_global: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Samples (sorted global times) inside any of the ``[start, end)`` intervals."""
    a = np.searchsorted(t_global, start, side="left")
    b = np.searchsorted(t_global, end, side="left")
    diff = np.zeros(len(t_global) + 1, dtype=np.int64)
    np.add.at(diff, a, 1)
    np.add.at(diff, b, -1)
    return np.cumsum(diff[:-1]) > 0


def simulate_signal(
    paths: Scanpaths,
    blinks: Blinks,
    participant: Participant,
    trial_duration_s: float,
    rng: np.random.Generator,
) -> ParticipantSignal:
    """Simulate the gaze samples of every trial in ``paths`` for ``participant``.

    Parameters
    ----------
    paths:
        Scanpaths in presentation order (one row per trial).
    blinks:
        The blinks of these trials (drawn before the answer, which depends on what was seen).
    participant:
        Supplies the tracker rate/eyes, noise, calibration offset and loss rate.
    trial_duration_s:
        Viewing time per trial.
    rng:
        Random stream of this participant's signal.
    """
    ppd = px_per_deg()
    rate = participant.tracker.sampling_rate_hz
    n_trials, L = paths.state.shape
    n_per = samples_per_trial(trial_duration_s, rate)
    t_rel_us = relative_times_us(n_per, rate)
    t_ms = t_rel_us / 1000.0
    span_ms = trial_duration_s * 1000.0 + 1000.0
    trial_pos = np.repeat(np.arange(n_trials, dtype=np.int32), n_per)
    tg = trial_pos * span_ms + np.tile(t_ms, n_trials)  # global ms, increasing

    # --- segments: fixation l, then the saccade towards fixation l+1 -----------------------------
    real = np.arange(L)[None, :] < paths.n_fix[:, None]
    ti, li = np.nonzero(real)
    fx, fy = paths.x_px[ti, li], paths.y_px[ti, li]
    nx, ny = paths.x_px[ti, li + 1], paths.y_px[ti, li + 1]
    f_start = paths.fix_start_ms[ti, li]
    f_dur = paths.fix_ms[ti, li]
    s_dur = paths.sacc_ms[ti, li]
    drift = rng.normal(0.0, 0.25, (len(ti), 2)) * ppd / 1000.0  # px per ms
    end_x, end_y = fx + drift[:, 0] * f_dur, fy + drift[:, 1] * f_dur
    # PSO after the saccade that *leads into* fixation l (so not on the first fixation of a trial).
    px_, py_ = paths.x_px[ti, np.maximum(li - 1, 0)], paths.y_px[ti, np.maximum(li - 1, 0)]
    dvec = np.stack([fx - px_, fy - py_], axis=1)
    dnorm = np.hypot(dvec[:, 0], dvec[:, 1])
    unit = dvec / np.where(dnorm > 0, dnorm, 1.0)[:, None]
    has_pso = (li > 0) & (rng.random(len(ti)) < PSO_PROBABILITY) & (dnorm > 1.5 * ppd)
    pso_ms = rng.uniform(10.0, 30.0, len(ti))
    pso_amp = rng.uniform(0.15, 0.5, len(ti)) * ppd
    pso_hz = rng.uniform(25.0, 45.0, len(ti))

    seg_start = np.empty(2 * len(ti))
    seg_start[0::2] = ti * span_ms + f_start
    seg_start[1::2] = ti * span_ms + f_start + f_dur
    seg = np.searchsorted(seg_start, tg, side="right") - 1
    k = seg // 2
    is_sacc = (seg % 2) == 1
    dt = tg - seg_start[seg]

    # fixation samples
    osc_t = dt / 1000.0
    decay = np.exp(-dt / np.maximum(pso_ms[k] / 3.0, 1e-3))
    in_pso = ~is_sacc & has_pso[k] & (dt < pso_ms[k])
    osc = np.where(has_pso[k] & ~is_sacc, pso_amp[k] * decay * np.sin(2 * np.pi * pso_hz[k] * osc_t), 0.0)
    tremor_phase = rng.uniform(0, 2 * np.pi, 2)
    tremor = 0.004 * ppd * np.sin(2 * np.pi * 85.0 * tg / 1000.0 + tremor_phase[:, None])
    x_fix = fx[k] + drift[k, 0] * dt + osc * unit[k, 0] + tremor[0]
    y_fix = fy[k] + drift[k, 1] * dt + osc * unit[k, 1] + tremor[1]
    # saccade samples: minimum-jerk profile between the drifted end of fixation l and landing l+1
    tau = np.clip(dt / np.maximum(s_dur[k], 1e-6), 0.0, 1.0)
    prof = tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)
    x_sac = end_x[k] + (nx[k] - end_x[k]) * prof
    y_sac = end_y[k] + (ny[k] - end_y[k]) * prof
    x = np.where(is_sacc, x_sac, x_fix)
    y = np.where(is_sacc, y_sac, y_fix)
    label = np.where(is_sacc, SACCADE, np.where(in_pso, PSO, FIXATION)).astype(np.int8)

    # --- blinks and track loss ----------------------------------------------------------------------
    T_ms = trial_duration_s * 1000.0
    # Global times need blinks in time order (searchsorted below): draw_blinks sorts them.
    b_on = blinks.trial * span_ms + blinks.onset_ms
    b_core, b_flank = blinks.core_ms, blinks.flank_ms
    blink_all = _interval_mask(tg, b_on - b_flank, b_on + b_core + b_flank)
    blink_core = _interval_mask(tg, b_on, b_on + b_core)
    # The lid drags the pupil-based estimate down during the flanks: a ramp to ~3 deg.
    bi = np.searchsorted(b_on - b_flank, tg, side="right") - 1
    bi_c = np.clip(bi, 0, max(len(b_on) - 1, 0))
    if len(b_on):
        d_before = (tg - (b_on[bi_c] - b_flank[bi_c])) / b_flank[bi_c]
        d_after = ((b_on[bi_c] + b_core[bi_c] + b_flank[bi_c]) - tg) / b_flank[bi_c]
        ramp = np.clip(np.minimum(d_before, d_after), 0.0, 1.0)
    else:
        ramp = np.zeros_like(tg)
    flank = blink_all & ~blink_core
    y = y + np.where(flank, 3.0 * ppd * ramp, 0.0)
    label[blink_all] = BLINK

    n_loss = rng.poisson(participant.loss_rate_hz * trial_duration_s, n_trials)
    l_trial = np.repeat(np.arange(n_trials), n_loss)
    l_on = l_trial * span_ms + rng.uniform(0.0, T_ms, len(l_trial))
    l_off = l_on + rng.uniform(20.0, 150.0, len(l_trial))
    # Loss hits both eyes or just one (binocular trackers lose eyes separately).
    which = rng.choice(3, size=len(l_trial), p=[0.5, 0.25, 0.25])

    eyes: list[EyeSignal] = []
    sd = participant.noise_deg * ppd
    cx, cy = participant.calib_offset_px
    tobii = participant.tracker.format != "eyelink_asc"
    slow = np.sin(2 * np.pi * tg / 7000.0 + rng.uniform(0, 2 * np.pi))
    for eye in participant.tracker.eyes:
        ox, oy = participant.right_eye_offset_px if eye == "right" else (0.0, 0.0)
        ex = x + cx + ox + rng.normal(0.0, sd, len(x))
        ey = y + cy + oy + rng.normal(0.0, sd, len(y))
        hit = (which == 0) | (which == (1 if eye == "left" else 2))
        lost = _interval_mask(tg, l_on[hit], l_off[hit]) & ~blink_all
        lab = label.copy()
        lab[lost] = LOST
        gone = blink_core | lost
        ex[gone] = np.nan
        ey[gone] = np.nan
        base = participant.pupil_base * (1.0 + 0.04 * slow)
        shrink = np.where(flank, 1.0 - 0.5 * ramp, 1.0)
        if tobii:
            pupil = np.round(base * shrink + rng.normal(0.0, 0.01, len(x)), 3)
            pupil[gone] = np.nan
        else:
            pupil = np.round(base * shrink + rng.normal(0.0, 3.0, len(x)))
            pupil[gone] = 0.0
        eyes.append(EyeSignal(eye, ex, ey, pupil, lab))
    return ParticipantSignal(trial_pos, np.tile(t_rel_us, n_trials), n_per, tuple(eyes))
