"""Vendor-format exports of the demo study (EyeLink ASC, Tobii Pro Lab TSV), written vectorized.

Lines are built column-wise with pyarrow string kernels and put in file order with one stable
sort on ``(time, priority)``, so no Python loop runs over samples.

Trial layout (both formats): fixation-cross samples before each trial lie outside the trial; the
trial starts with its messages/events at the time of its first sample and ends with an end
message/event strictly after its last sample and before any later sample, so readers using
inclusive or half-open trial windows agree on which samples belong to the trial.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pov_pipeline.demo.participants import Participant
from pov_pipeline.demo.signal import BLINK, FIXATION, PSO, SACCADE, ParticipantSignal
from pov_pipeline.demo.stimuli import SCREEN_PX

#: Fixation-cross period recorded before each trial (outside the trial window).
PRE_TRIAL_MS = 300
#: Unrecorded gap between EyeLink trial blocks; Tobii records continuously through it.
INTER_TRIAL_MS = 700

# Sort priorities of lines sharing a timestamp.
_P_BLOCK, _P_MSG, _P_SEVENT, _P_SAMPLE, _P_EEVENT, _P_END = range(6)


def fixed(values: np.ndarray, decimals: int, missing: str | None) -> pa.Array:
    """Format floats with exactly ``decimals`` decimals (vectorized); NaN → ``missing`` (None: null)."""
    nan = ~np.isfinite(values)
    scale = 10**decimals
    v = np.round(np.where(nan, 0.0, values) * scale).astype(np.int64)
    neg = v < 0
    a = np.abs(v)
    whole = pc.cast(pa.array(a // scale), pa.string())
    if decimals:
        frac = pc.cast(pa.array(a % scale), pa.string())
        if decimals > 1:
            frac = pc.utf8_lpad(frac, width=decimals, padding="0")
        body = pc.binary_join_element_wise(whole, frac, ".")
    else:
        body = whole
    # The sign and missing-value passes are skipped when there is nothing to do (the common case).
    if neg.any():
        body = pc.if_else(pa.array(neg), pc.binary_join_element_wise("-", body, ""), body)
    if nan.any():
        fill = pa.scalar(None, pa.string()) if missing is None else pa.scalar(missing, pa.string())
        body = pc.if_else(pa.array(nan), fill, body)
    return body


def _ints(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def _join(columns: list[pa.Array | str], sep: str) -> pa.Array:
    return pc.binary_join_element_wise(*columns, sep)


def _write_lines(path: str, lines: pa.Array) -> None:
    lines = lines.cast(pa.large_string())
    listed = pa.LargeListArray.from_arrays(pa.array([0, len(lines)], pa.int64()), lines)
    joined = pc.binary_join(listed, pa.scalar("\n", pa.large_string()))[0]
    with open(path, "wb") as fh:
        fh.write(memoryview(joined.as_buffer()))
        fh.write(b"\n")


def trial_onsets_us(participant: Participant, n_trials: int, n_per: int) -> np.ndarray:
    """Absolute stimulus-onset times (tracker clock, µs) of the trials in presentation order."""
    rate = participant.tracker.sampling_rate_hz
    if participant.tracker.format == "eyelink_asc":
        dur_ms = round(n_per * 1000 / rate)
        block_ms = PRE_TRIAL_MS + dur_ms + INTER_TRIAL_MS
        return participant.clock_start_us + (PRE_TRIAL_MS + np.arange(n_trials) * block_ms) * 1000
    # Tobii: continuous sample grid; each trial is preceded by a fixation-cross/inter-trial stretch.
    pre = round((PRE_TRIAL_MS + INTER_TRIAL_MS) * rate / 1000)
    first = pre + np.arange(n_trials) * (pre + n_per)
    return participant.clock_start_us + np.round(first * (1e6 / rate)).astype(np.int64)


def _runs(label: np.ndarray, trial_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal event type within trials: (start index, end index inclusive, type)."""
    kind = np.where(label == PSO, FIXATION, label)  # EyeLink's parser has no PSO class
    change = np.ones(len(kind), dtype=bool)
    change[1:] = (kind[1:] != kind[:-1]) | (trial_pos[1:] != trial_pos[:-1])
    starts = np.flatnonzero(change)
    ends = np.r_[starts[1:] - 1, len(kind) - 1]
    return starts, ends, kind[starts]


def write_eyelink_asc(
    path: str,
    participant: Participant,
    stimulus_ids: list[str],
    signal: ParticipantSignal,
    rng: np.random.Generator,
) -> np.ndarray:
    """Write an EyeLink 1000-style ASC file; returns the absolute in-trial sample times (µs).

    Parameters
    ----------
    path:
        Output file.
    participant:
        Tracker settings and identity.
    stimulus_ids:
        Stimulus per trial, in presentation order (trial number = position + 1).
    signal:
        In-trial samples.
    rng:
        Stream for the fixation-cross samples outside trials.
    """
    tr = participant.tracker
    rate = tr.sampling_rate_hz
    n_trials = len(stimulus_ids)
    n_per = signal.samples_per_trial
    onsets = trial_onsets_us(participant, n_trials, n_per)
    t_abs = onsets[signal.trial_pos] + signal.t_rel_us
    dt_us = round(1e6 / rate)
    eye_word = "LEFT\tRIGHT" if tr.eye == "binocular" else tr.eye.upper()
    eye_code = "LR" if tr.eye == "binocular" else tr.eye[0].upper()
    keys: list[np.ndarray] = []
    chunks: list[pa.Array] = []

    def add(t_us: np.ndarray, prio: int, lines: pa.Array | list[str]) -> None:
        arr = lines if isinstance(lines, pa.Array) else pa.array(lines, pa.string())
        keys.append(np.asarray(t_us, dtype=np.int64) * 8 + prio)
        chunks.append(arr)

    header = [
        f"** CONVERTED FROM {participant.participant_id}.edf using edfapi 4.2.1197.0 (pov_pipeline demo)",
        "** DATE: Mon Jan  8 09:00:00 2024",
        "** TYPE: EDF_FILE BINARY EVENT SAMPLE TAGGED",
        "** VERSION: EYELINK II 1",
        "** SOURCE: EYELINK CL",
        "** EYELINK II CL v6.14 Mar  6 2020 (EyeLink 1000 Plus)",
        "** CAMERA: EyeLink USBCAM Version 1.01",
        "** SERIAL NUMBER: CLU-DEMO1",
        "** CAMERA_CONFIG: DEMO1200.SCD",
        "**",
        "",
    ]
    t0 = participant.clock_start_us
    add(np.full(len(header), -1), 0, header)
    add(
        np.full(2, t0 - 1000),
        _P_MSG,
        [
            f"MSG\t{t0 // 1000 - 1} DISPLAY_COORDS 0 0 {SCREEN_PX[0] - 1} {SCREEN_PX[1] - 1}",
            f"MSG\t{t0 // 1000 - 1} RECCFG CR {rate} 2 1 {eye_code}",
        ],
    )

    # Block structure per trial.
    block_start = onsets - PRE_TRIAL_MS * 1000
    end_us = onsets + n_per * dt_us
    on_ms, end_ms, bs_ms = onsets // 1000, end_us // 1000, block_start // 1000
    rate_s = f"{rate:.2f}"
    for line in [
        _join(
            [
                pa.array(["START"] * n_trials),
                _ints(bs_ms),
                pa.array([eye_word + "\tSAMPLES\tEVENTS"] * n_trials),
            ],
            "\t",
        ),
        "PRESCALER\t1",
        "VPRESCALER\t1",
        "PUPIL\tAREA",
        f"EVENTS\tGAZE\t{eye_word}\tRATE\t{rate_s}\tTRACKING\tCR\tFILTER\t2",
        f"SAMPLES\tGAZE\t{eye_word}\tRATE\t{rate_s}\tTRACKING\tCR\tFILTER\t2",
    ]:
        # equal keys keep insertion order under the stable sort, so the block header stays in order
        add(block_start, _P_BLOCK, line if isinstance(line, pa.Array) else [line] * n_trials)
    trial_no = np.arange(1, n_trials + 1)
    on_s = _ints(on_ms)
    add(onsets, _P_MSG, _join(["MSG", _join([on_s, "TRIALID", _ints(trial_no)], " ")], "\t"))
    add(
        onsets,
        _P_MSG,
        _join(
            ["MSG", _join([on_s, "!V TRIAL_VAR stimulus_id", pa.array(stimulus_ids, pa.string())], " ")], "\t"
        ),
    )
    add(onsets, _P_MSG, _join(["MSG", _join([on_s, "STIMULUS_ONSET"], " ")], "\t"))
    add(end_us, _P_MSG, _join(["MSG", _join([_ints(end_ms), "TRIAL_END"], " ")], "\t"))
    add(end_us, _P_END, _join(["END", _ints(end_ms), "\tSAMPLES\tEVENTS\tRES\t38.00\t38.00"], "\t"))

    # Fixation-cross samples before each trial (outside the trial window).
    n_pre = PRE_TRIAL_MS * 1000 // dt_us
    pre_t = (block_start[:, None] + np.arange(n_pre)[None, :] * dt_us).ravel()
    eyes = signal.eyes
    pre_cols: list[pa.Array] = [_ints(pre_t // 1000)]
    sd = participant.noise_deg * 41.0
    for e in eyes:
        off = participant.right_eye_offset_px if e.eye == "right" else (0.0, 0.0)
        px = SCREEN_PX[0] / 2 + participant.calib_offset_px[0] + off[0] + rng.normal(0, sd, len(pre_t))
        py = SCREEN_PX[1] / 2 + participant.calib_offset_px[1] + off[1] + rng.normal(0, sd, len(pre_t))
        pre_cols += [
            fixed(px, 1, "."),
            fixed(py, 1, "."),
            fixed(np.round(participant.pupil_base + rng.normal(0, 3.0, len(pre_t))), 1, "."),
        ]
    flags = "....." if tr.eye == "binocular" else "..."
    add(pre_t, _P_SAMPLE, _join([*pre_cols, flags], "\t"))

    cols: list[pa.Array | str] = [_ints(t_abs // 1000)]
    for e in eyes:
        cols += [fixed(e.x_px, 1, "."), fixed(e.y_px, 1, "."), fixed(e.pupil, 1, ".")]
    cols.append(flags)
    add(t_abs, _P_SAMPLE, _join(cols, "\t"))

    # EyeLink-style parser events from the truth labels.
    dur_pad = dt_us // 1000
    for e in eyes:
        side = "L" if e.eye == "left" else "R"
        starts, ends, kind = _runs(e.label, signal.trial_pos)
        ts, te = t_abs[starts], t_abs[ends]
        ts_s, te_s = _ints(ts // 1000), _ints(te // 1000)
        dur_s = _ints((te - ts) // 1000 + dur_pad)
        finite = np.isfinite(e.x_px)
        sx = np.add.reduceat(np.where(finite, e.x_px, 0.0), starts)
        sy = np.add.reduceat(np.where(finite, e.y_px, 0.0), starts)
        sp = np.add.reduceat(np.where(finite, e.pupil, 0.0), starts)
        cnt = np.add.reduceat(finite.astype(np.int64), starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            mx, my, mp = sx / cnt, sy / cnt, sp / cnt
        fix = kind == FIXATION
        sac = kind == SACCADE
        blk = kind == BLINK
        for mask, name in ((fix, "FIX"), (sac, "SACC"), (blk, "BLINK")):
            m = pa.array(mask)
            add(ts[mask], _P_SEVENT, pc.filter(_join([f"S{name} {side}  ", ts_s], " "), m))
        add(
            te[fix],
            _P_EEVENT,
            pc.filter(
                _join(
                    [
                        f"EFIX {side}  ",
                        _join(
                            [ts_s, te_s, dur_s, fixed(mx, 1, "."), fixed(my, 1, "."), fixed(mp, 0, ".")], "\t"
                        ),
                    ],
                    " ",
                ),
                pa.array(fix),
            ),
        )
        ppd = 41.0
        xs_, ys_ = e.x_px[starts], e.y_px[starts]
        xe_, ye_ = e.x_px[ends], e.y_px[ends]
        amp = np.hypot(xe_ - xs_, ye_ - ys_) / ppd
        vel = np.zeros(len(e.x_px))
        vel[1:] = np.hypot(np.diff(e.x_px), np.diff(e.y_px)) / ppd / (dt_us / 1e6)
        vel[~np.isfinite(vel)] = 0.0
        pv = np.maximum.reduceat(vel, starts)
        add(
            te[sac],
            _P_EEVENT,
            pc.filter(
                _join(
                    [
                        f"ESACC {side} ",
                        _join(
                            [
                                ts_s,
                                te_s,
                                dur_s,
                                fixed(xs_, 1, "."),
                                fixed(ys_, 1, "."),
                                fixed(xe_, 1, "."),
                                fixed(ye_, 1, "."),
                                fixed(amp, 2, "."),
                                fixed(pv, 0, "."),
                            ],
                            "\t",
                        ),
                    ],
                    " ",
                ),
                pa.array(sac),
            ),
        )
        add(
            te[blk],
            _P_EEVENT,
            pc.filter(_join([f"EBLINK {side}", _join([ts_s, te_s, dur_s], "\t")], " "), pa.array(blk)),
        )

    key = np.concatenate(keys)
    order = np.argsort(key, kind="stable")
    lines = pa.concat_arrays([c.cast(pa.string()) for c in chunks]).take(pa.array(order))
    _write_lines(path, lines)
    return t_abs


TOBII_COLUMNS: tuple[str, ...] = (
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
)


def write_tobii_tsv(
    path: str,
    participant: Participant,
    stimulus_ids: list[str],
    signal: ParticipantSignal,
    rng: np.random.Generator,
) -> np.ndarray:
    """Write a Tobii Pro Lab-style TSV export; returns the absolute in-trial sample times (µs).

    Samples are recorded continuously (including fixation-cross stretches between trials, with an
    empty ``Presented Stimulus name``); ``TrialStart``/``ImageStimulusStart`` event rows precede
    a trial's first sample and ``TrialEnd`` follows its last sample by half a sample interval.
    """
    rate = participant.tracker.sampling_rate_hz
    n_trials = len(stimulus_ids)
    n_per = signal.samples_per_trial
    onsets = trial_onsets_us(participant, n_trials, n_per)
    pre = round((PRE_TRIAL_MS + INTER_TRIAL_MS) * rate / 1000)
    period = 1e6 / rate
    # Global sample grid: [pre stretch, trial] × n_trials, plus a closing stretch.
    n_total = (pre + n_per) * n_trials + pre
    grid_t = participant.clock_start_us + np.round(np.arange(n_total) * period).astype(np.int64)
    first = pre + np.arange(n_trials) * (pre + n_per)
    idx_trial = (first[:, None] + np.arange(n_per)[None, :]).ravel()
    t_abs = grid_t[idx_trial]

    sd = participant.noise_deg * 41.0
    left, right = signal.eyes
    cols_xy: dict[str, np.ndarray] = {}
    for e in (left, right):
        off = participant.right_eye_offset_px if e.eye == "right" else (0.0, 0.0)
        gx = SCREEN_PX[0] / 2 + participant.calib_offset_px[0] + off[0] + rng.normal(0, sd, n_total)
        gy = SCREEN_PX[1] / 2 + participant.calib_offset_px[1] + off[1] + rng.normal(0, sd, n_total)
        pu = np.round(participant.pupil_base + rng.normal(0, 0.01, n_total), 3)
        gx[idx_trial], gy[idx_trial], pu[idx_trial] = e.x_px, e.y_px, e.pupil
        cols_xy[e.eye] = np.stack([gx, gy, pu])
    lx, ly, lp = cols_xy["left"]
    rx, ry, rp = cols_xy["right"]
    lv, rv = np.isfinite(lx), np.isfinite(rx)
    # Pro Lab's combined gaze point: the mean of the valid eyes.
    ax = np.where(lv & rv, (lx + rx) / 2, np.where(lv, lx, rx))
    ay = np.where(lv & rv, (ly + ry) / 2, np.where(lv, ly, ry))
    stim_name = np.full(n_total, "", dtype=object)
    stim_name[idx_trial] = np.repeat(np.asarray(stimulus_ids, dtype=object), n_per)

    n_ev = 3 * n_trials
    ev_t = np.concatenate([onsets, onsets, grid_t[first + n_per - 1] + int(period // 2)])
    ev_prio = np.concatenate([np.zeros(n_trials), np.ones(n_trials), np.full(n_trials, 3)]).astype(np.int64)
    ev_name = ["TrialStart"] * n_trials + ["ImageStimulusStart"] * n_trials + ["TrialEnd"] * n_trials
    trial_s = [str(i) for i in range(1, n_trials + 1)]
    ev_value = trial_s + list(stimulus_ids) + trial_s

    keys = np.concatenate([ev_t * 4 + ev_prio, grid_t * 4 + 2])
    order = pa.array(np.argsort(keys, kind="stable"))
    comp_off = 1_700_000_000_000_000 // 1000 + participant.index * 7_919  # computer clock (ms), fixed
    tracker_off = 3_000_000_000 + participant.index * 104_729  # device clock (µs), fixed
    all_t = np.concatenate([ev_t, grid_t])

    def s(a: pa.Array | list) -> pa.Array:
        arr = a if isinstance(a, pa.Array) else pa.array(a, pa.string())
        return arr.take(order)

    null_ev = pa.nulls(n_ev, pa.string())
    null_s = pa.nulls(n_total, pa.string())
    valid_l = pc.if_else(pa.array(lv), "Valid", "Invalid")
    valid_r = pc.if_else(pa.array(rv), "Valid", "Invalid")
    data = {
        "Recording timestamp": s(_ints(all_t)),
        "Computer timestamp": s(_ints(comp_off * 1000 + (all_t - participant.clock_start_us))),
        "Sensor": s(pa.concat_arrays([null_ev, pa.array(["Eye Tracker"] * n_total, pa.string())])),
        "Participant name": s([participant.participant_id] * (n_ev + n_total)),
        "Recording resolution width": s([str(SCREEN_PX[0])] * (n_ev + n_total)),
        "Recording resolution height": s([str(SCREEN_PX[1])] * (n_ev + n_total)),
        "Eyetracker timestamp": s(
            pa.concat_arrays([null_ev, _ints(tracker_off + grid_t - participant.clock_start_us)])
        ),
        "Event": s(pa.concat_arrays([pa.array(ev_name, pa.string()), null_s])),
        "Event value": s(pa.concat_arrays([pa.array(ev_value, pa.string()), null_s])),
        "Gaze point X": s(pa.concat_arrays([null_ev, fixed(ax, 0, None)])),
        "Gaze point Y": s(pa.concat_arrays([null_ev, fixed(ay, 0, None)])),
        "Gaze point left X": s(pa.concat_arrays([null_ev, fixed(lx, 0, None)])),
        "Gaze point left Y": s(pa.concat_arrays([null_ev, fixed(ly, 0, None)])),
        "Gaze point right X": s(pa.concat_arrays([null_ev, fixed(rx, 0, None)])),
        "Gaze point right Y": s(pa.concat_arrays([null_ev, fixed(ry, 0, None)])),
        "Pupil diameter left": s(pa.concat_arrays([null_ev, fixed(lp, 3, None)])),
        "Pupil diameter right": s(pa.concat_arrays([null_ev, fixed(rp, 3, None)])),
        "Validity left": s(pa.concat_arrays([null_ev, valid_l])),
        "Validity right": s(pa.concat_arrays([null_ev, valid_r])),
        "Presented Stimulus name": s(
            pa.concat_arrays(
                [
                    pa.array([None] * n_trials + list(stimulus_ids) + [None] * n_trials, pa.string()),
                    pc.if_else(
                        pa.array(stim_name != ""),
                        pa.array(stim_name.tolist(), pa.string()),
                        pa.scalar(None, pa.string()),
                    ),
                ]
            )
        ),
    }
    # Build TSV lines: header + rows, nulls written as empty fields.
    filled = [pc.fill_null(data[c], "") for c in TOBII_COLUMNS]
    rows = _join(filled, "\t")
    lines = pa.concat_arrays([pa.array(["\t".join(TOBII_COLUMNS)], pa.string()), rows])
    _write_lines(path, lines)
    return t_abs
