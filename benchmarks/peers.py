"""Peer event detectors at their published defaults, as fixation masks over Lund recordings.

pymovements 0.28 (I-VT, I-DT), REMoDNaV 1.1.2 and I2MC 2.2.8, installed with
``pip install pymovements==0.28.0 remodnav==1.1.2 I2MC==2.2.8`` (the ``bench`` extra). Each
function takes a :class:`~pov_pipeline.gaze.evaluation.LundRecording` and returns a boolean
fixation mask, so the benchmark scores every detector the same way.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import numpy.typing as npt
import pandas as pd

from pov_pipeline.gaze.evaluation import LundRecording

BoolArray = npt.NDArray[np.bool_]


def _mask_from_times(t_ms: np.ndarray, onsets: np.ndarray, offsets: np.ndarray) -> BoolArray:
    """Samples whose time lies in any ``[onset, offset]`` interval (inclusive)."""
    mask = np.zeros(t_ms.size, dtype=bool)
    if len(onsets) == 0:
        return mask
    a = np.searchsorted(t_ms, np.asarray(onsets, dtype=np.float64), side="left")
    b = np.searchsorted(t_ms, np.asarray(offsets, dtype=np.float64), side="right")
    marks = np.zeros(t_ms.size + 1, dtype=np.int64)
    np.add.at(marks, a, 1)
    np.add.at(marks, b, -1)
    return np.cumsum(marks[:-1]) > 0


def _pymovements_gaze(rec: LundRecording):  # type: ignore[no-untyped-def]
    import pymovements as pm

    g = rec.geometry
    experiment = pm.gaze.Experiment(
        screen_width_px=g.screen_width_px,
        screen_height_px=g.screen_height_px,
        screen_width_cm=g.screen_width_mm / 10.0,
        screen_height_cm=g.screen_height_mm / 10.0,
        distance_cm=g.viewing_distance_mm / 10.0,
        origin="upper left",
        sampling_rate=round(rec.sampling_rate_hz),
    )
    # I-DT insists on constant integer time steps; the Lund clock jitters by a few microseconds,
    # so the samples get an ideal clock at the measured rate.
    step_ms = round(1000.0 / rec.sampling_rate_hz)
    t_ms = np.arange(rec.t_us.size, dtype=np.int64) * step_ms
    gaze = pm.gaze.from_numpy(
        time=t_ms,
        pixel=np.vstack([rec.x_px, rec.y_px]),
        experiment=experiment,
        time_unit="ms",
    )
    gaze.pix2deg()
    gaze.pos2vel()
    return gaze, t_ms


def pymovements_ivt(rec: LundRecording) -> BoolArray:
    """pymovements I-VT at its defaults (20 deg/s, 100 ms minimum duration)."""
    gaze, t_ms = _pymovements_gaze(rec)
    gaze.detect("ivt")
    ev = gaze.events.frame.to_pandas()
    ev = ev[ev["name"] == "fixation"]
    return _mask_from_times(t_ms, ev["onset"].to_numpy(), ev["offset"].to_numpy())


def pymovements_idt(rec: LundRecording) -> BoolArray:
    """pymovements I-DT at its defaults (1 deg dispersion, 100 ms minimum duration)."""
    gaze, t_ms = _pymovements_gaze(rec)
    gaze.detect("idt")
    ev = gaze.events.frame.to_pandas()
    ev = ev[ev["name"] == "fixation"]
    return _mask_from_times(t_ms, ev["onset"].to_numpy(), ev["offset"].to_numpy())


def remodnav_fixations(rec: LundRecording) -> BoolArray:
    """REMoDNaV at its defaults (FIXA events)."""
    from remodnav import EyegazeClassifier

    logging.getLogger("remodnav").setLevel(logging.WARNING)
    # scipy's Savitzky-Golay edge fit rejects NaN at the very ends (UL47 starts lost), so the
    # leading and trailing lost samples are cut off and put back as non-fixation.
    ok = np.flatnonzero(np.isfinite(rec.x_px) & np.isfinite(rec.y_px))
    mask = np.zeros(rec.t_us.size, dtype=bool)
    if ok.size < 10:
        return mask
    a, b = int(ok[0]), int(ok[-1]) + 1
    data = np.rec.fromarrays([rec.x_px[a:b], rec.y_px[a:b]], names="x,y")
    clf = EyegazeClassifier(px2deg=rec.geometry.deg_per_px, sampling_rate=rec.sampling_rate_hz)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        pp = clf.preproc(data)
        events = list(clf(pp))
    t_s = np.arange(b - a) / rec.sampling_rate_hz
    fixa = [e for e in events if e["label"] == "FIXA"]
    on = np.array([e["start_time"] for e in fixa])
    off = np.array([e["end_time"] for e in fixa])
    # REMoDNaV reports end_time as the time after the last sample; make it inclusive.
    mask[a:b] = _mask_from_times(t_s, on, off - 0.5 / rec.sampling_rate_hz)
    return mask


def i2mc_fixations(rec: LundRecording) -> BoolArray:
    """I2MC at its defaults (monocular data fed as the left eye)."""
    import I2MC

    g = rec.geometry
    missing = -1.0e6
    data = pd.DataFrame(
        {
            "time": rec.t_us / 1000.0 - rec.t_us[0] / 1000.0,
            "L_X": np.where(np.isfinite(rec.x_px), rec.x_px, missing),
            "L_Y": np.where(np.isfinite(rec.y_px), rec.y_px, missing),
        }
    )
    opt = {
        "xres": g.screen_width_px,
        "yres": g.screen_height_px,
        "freq": round(rec.sampling_rate_hz),
        "missingx": missing,
        "missingy": missing,
        "scrSz": [g.screen_width_mm / 10.0, g.screen_height_mm / 10.0],
        "disttoscreen": g.viewing_distance_mm / 10.0,
    }
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        fix, _, _ = I2MC.I2MC(data, opt, logging=False)
    mask = np.zeros(rec.t_us.size, dtype=bool)
    if not fix:
        return mask
    starts = np.asarray(fix["start"], dtype=np.intp)
    ends = np.asarray(fix["end"], dtype=np.intp)
    marks = np.zeros(rec.t_us.size + 1, dtype=np.int64)
    np.add.at(marks, starts, 1)
    np.add.at(marks, np.minimum(ends + 1, rec.t_us.size), -1)
    return np.cumsum(marks[:-1]) > 0


#: Name → detector, in the order the benchmark prints them.
PEERS = {
    "pymovements_ivt": pymovements_ivt,
    "pymovements_idt": pymovements_idt,
    "remodnav": remodnav_fixations,
    "i2mc": i2mc_fixations,
}
