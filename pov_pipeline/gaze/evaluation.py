"""Agreement between event detectors and human coders, and the Lund hand-coded recordings.

The Lund data set (Andersson et al. 2017, ``richardandersson/EyeMovementDetectorEvaluation``)
holds free-viewing recordings labelled sample by sample by two experts (RA and MN). Agreement is
the sample-level Cohen's kappa of "fixation" vs "everything else", the figure the paper and the
pov_pipeline benchmark report.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from pov_pipeline.gaze.detection import detect_events
from pov_pipeline.gaze.geometry import ScreenGeometry
from pov_pipeline.gaze.preprocess import estimate_sampling_rate_hz, nan_runs

#: Lund label codes (column 6 of ``ETdata.pos``).
LUND_LABELS: dict[int, str] = {
    1: "fixation",
    2: "saccade",
    3: "pso",
    4: "smooth_pursuit",
    5: "blink",
    6: "undefined",
}
LUND_FIXATION = 1

_NAME = re.compile(r"^(?P<rec>.+)_labelled_(?P<coder>[A-Z]+)$")


@dataclass(frozen=True)
class LundRecording:
    """One Lund recording with both coders' labels aligned on the time stamp.

    Parameters
    ----------
    name : str
        Recording name, e.g. ``UH21_img_Rome``.
    t_us : numpy.ndarray
        Time stamps in microseconds (int64).
    x_px, y_px : numpy.ndarray
        Gaze position in screen pixels; NaN where the tracker lost the eye (stored as 0, 0).
    pupil_h, pupil_v : numpy.ndarray
        Pupil diameter (camera units).
    labels : dict of str to numpy.ndarray
        Lund label codes per coder (``RA``, ``MN``).
    geometry : ScreenGeometry
        Screen set-up read from the file.
    declared_rate_hz : float
        ``sampFreq`` as stored (not trusted).
    """

    name: str
    t_us: npt.NDArray[np.int64]
    x_px: npt.NDArray[np.float64]
    y_px: npt.NDArray[np.float64]
    pupil_h: npt.NDArray[np.float64]
    pupil_v: npt.NDArray[np.float64]
    labels: dict[str, npt.NDArray[np.int8]]
    geometry: ScreenGeometry
    declared_rate_hz: float

    @property
    def sampling_rate_hz(self) -> float:
        """Rate measured from the time stamps."""
        return estimate_sampling_rate_hz(self.t_us)


def _read_lund_mat(path: Path) -> tuple[pd.DataFrame, ScreenGeometry, float]:
    from scipy.io import loadmat

    mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    et = mat["ETdata"]
    pos = np.asarray(et.pos, dtype=np.float64)
    frame = pd.DataFrame(pos[:, :6], columns=["t_us", "pupil_h", "pupil_v", "x_px", "y_px", "label"])
    # Padding rows at the end carry a zero time stamp.
    frame = frame[frame["t_us"] > 0]
    res = np.atleast_1d(et.screenRes).astype(float)
    dim = np.atleast_1d(et.screenDim).astype(float)
    geometry = ScreenGeometry(
        screen_width_px=int(res[0]),
        screen_height_px=int(res[1]),
        screen_width_mm=float(dim[0]) * 1000.0,
        screen_height_mm=float(dim[1]) * 1000.0,
        viewing_distance_mm=float(et.viewDist) * 1000.0,
    )
    return frame, geometry, float(et.sampFreq)


def load_lund_recordings(folder: str | Path, coders: Iterable[str] = ("RA", "MN")) -> list[LundRecording]:
    """Load every recording of a Lund ``mat/<stimtype>`` folder, coders joined on the time stamp.

    Parameters
    ----------
    folder : str or pathlib.Path
        Folder holding ``<recording>_labelled_<CODER>.mat`` files.
    coders : iterable of str
        Coders that must all be present for a recording to be loaded.

    Returns
    -------
    list of LundRecording
        Sorted by name.
    """
    coders = tuple(coders)
    groups: dict[str, dict[str, Path]] = {}
    for path in sorted(Path(folder).glob("*.mat")):
        match = _NAME.match(path.stem)
        if match:
            groups.setdefault(match["rec"], {})[match["coder"]] = path
    recordings = []
    for name, files in sorted(groups.items()):
        if not all(c in files for c in coders):
            continue
        merged: pd.DataFrame | None = None
        geometry, rate = None, float("nan")
        for coder in coders:
            frame, geometry, rate = _read_lund_mat(files[coder])
            frame = frame.drop_duplicates("t_us").rename(columns={"label": f"label_{coder}"})
            if merged is None:
                merged = frame
            else:
                merged = merged.merge(frame[["t_us", f"label_{coder}"]], on="t_us", how="inner")
        assert merged is not None and geometry is not None
        merged = merged.sort_values("t_us")
        x = merged["x_px"].to_numpy(np.float64).copy()
        y = merged["y_px"].to_numpy(np.float64).copy()
        lost = ((x == 0) & (y == 0)) | ~np.isfinite(x) | ~np.isfinite(y)
        x[lost] = np.nan
        y[lost] = np.nan
        recordings.append(
            LundRecording(
                name=name,
                t_us=merged["t_us"].to_numpy(np.int64),
                x_px=x,
                y_px=y,
                pupil_h=merged["pupil_h"].to_numpy(np.float64),
                pupil_v=merged["pupil_v"].to_numpy(np.float64),
                labels={c: merged[f"label_{c}"].to_numpy(np.int8) for c in coders},
                geometry=geometry,
                declared_rate_hz=rate,
            )
        )
    return recordings


def cohen_kappa(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Cohen's kappa between two boolean (or categorical) label sequences of equal length.

    Returns NaN when the expected agreement is 1 (both raters constant and equal).
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"label sequences differ in length: {a.shape} vs {b.shape}")
    if a.size == 0:
        return float("nan")
    cats, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inv[: a.size], inv[a.size :]
    k = cats.size
    table = np.bincount(ia * k + ib, minlength=k * k).reshape(k, k) / a.size
    po = np.trace(table)
    pe = float(table.sum(axis=1) @ table.sum(axis=0))
    if pe >= 1.0:
        return float("nan")
    return float((po - pe) / (1.0 - pe))


def fixation_runs(is_fixation: npt.ArrayLike, t_us: npt.ArrayLike) -> pd.DataFrame:
    """Fixations as runs of ``True``: start/end index (end inclusive) and duration in ms."""
    mask = np.asarray(is_fixation, dtype=bool)
    t = np.asarray(t_us, dtype=np.float64)
    starts, ends = nan_runs(mask)
    dt = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    t_after = np.append(t, t[-1] + dt) if t.size else t
    return pd.DataFrame(
        {
            "start_index": starts,
            "end_index": ends - 1,
            "duration_ms": (t_after[ends] - t[starts]) / 1000.0,
        }
    )


#: A detector under test: ``(recording) -> boolean fixation mask``.
FixationDetector = Callable[[LundRecording], npt.NDArray[np.bool_]]


def agreement_row(recording: LundRecording, is_fixation: npt.ArrayLike, method: str) -> dict[str, object]:
    """Kappa of a fixation mask against each coder, plus fixation count and mean duration."""
    fix = np.asarray(is_fixation, dtype=bool)
    row: dict[str, object] = {"recording": recording.name, "method": method}
    kappas = []
    for coder, lab in recording.labels.items():
        k = cohen_kappa(fix, lab == LUND_FIXATION)
        row[f"kappa_{coder}"] = k
        kappas.append(k)
    row["kappa_mean"] = float(np.mean(kappas))
    runs = fixation_runs(fix, recording.t_us)
    row["n_fixations"] = len(runs)
    row["mean_fixation_ms"] = float(runs["duration_ms"].mean()) if len(runs) else float("nan")
    return row


def coder_rows(recording: LundRecording) -> list[dict[str, object]]:
    """Coders' own figures: inter-coder kappa, and each coder's fixation count and mean duration."""
    coders = list(recording.labels)
    rows = []
    for coder in coders:
        fix = recording.labels[coder] == LUND_FIXATION
        others = [c for c in coders if c != coder]
        row = agreement_row(recording, fix, f"coder_{coder}")
        row["kappa_mean"] = float(np.mean([row[f"kappa_{o}"] for o in others])) if others else np.nan
        rows.append(row)
    return rows


def inter_coder_kappa(recording: LundRecording, a: str = "RA", b: str = "MN") -> float:
    """Sample-level fixation/non-fixation kappa between two coders."""
    return cohen_kappa(recording.labels[a] == LUND_FIXATION, recording.labels[b] == LUND_FIXATION)


def evaluate_detector(
    recordings: Iterable[LundRecording], detector: FixationDetector, method: str
) -> pd.DataFrame:
    """Run ``detector`` on every recording and tabulate its agreement with the coders."""
    return pd.DataFrame([agreement_row(r, detector(r), method) for r in recordings])


@dataclass(frozen=True)
class SyntheticGaze:
    """A simulated recording with its true labels (for tests and speed measurements)."""

    t_us: npt.NDArray[np.int64]
    x_px: npt.NDArray[np.float64]
    y_px: npt.NDArray[np.float64]
    labels: npt.NDArray[np.int8]
    geometry: ScreenGeometry


def synthetic_gaze(
    duration_s: float,
    sampling_rate_hz: float = 500.0,
    *,
    noise_px: float = 0.5,
    blink_every_s: float = 0.0,
    pso: bool = True,
    seed: int = 0,
    geometry: ScreenGeometry | None = None,
) -> SyntheticGaze:
    """Simulate gaze: fixations with white noise, main-sequence saccades, PSOs and blinks.

    Fully vectorized so that multi-million-sample recordings are cheap to build. Saccades follow
    a raised-cosine velocity profile with duration ``2.2 * amplitude_deg + 21`` ms (Carpenter's
    main sequence), PSOs are a damped oscillation of 20 ms after some saccades, and blinks are
    150 ms runs of NaN.

    Parameters
    ----------
    duration_s : float
        Length of the recording in seconds.
    sampling_rate_hz : float
        Sampling rate.
    noise_px : float
        SD of the white position noise during fixations, in pixels.
    blink_every_s : float
        Mean time between blinks (0 disables them).
    pso : bool
        Whether saccades end with a PSO.
    seed : int
        Random seed.
    geometry : ScreenGeometry, optional
        Screen (default: the Lund set-up).

    Returns
    -------
    SyntheticGaze
        Samples and true labels (codes of ``SAMPLE_LABELS``).
    """
    geom = geometry or ScreenGeometry.lund2013()
    rng = np.random.default_rng(seed)
    dt_s = 1.0 / sampling_rate_hz
    n = round(duration_s * sampling_rate_hz)
    t_us = np.round(np.arange(n) * dt_s * 1e6).astype(np.int64) + 1_000_000
    # Event plan: alternate fixation (150-400 ms) and saccade (+ optional PSO of 20 ms).
    n_ev = int(duration_s / 0.25) + 4
    fix_ms = rng.uniform(150.0, 400.0, n_ev)
    amp_px = rng.uniform(60.0, 300.0, n_ev)
    ang = rng.uniform(0, 2 * np.pi, n_ev)
    sac_ms = 2.2 * (amp_px * geom.deg_per_px) + 21.0
    pso_ms = np.full(n_ev, 20.0 if pso else 0.0)
    # Sample counts per segment (at least 2 samples for a saccade, even at 60 Hz).
    nf = np.maximum(np.round(fix_ms / 1000 / dt_s).astype(int), 1)
    ns = np.maximum(np.round(sac_ms / 1000 / dt_s).astype(int), 2)
    npso = np.round(pso_ms / 1000 / dt_s).astype(int)
    seg_len = np.stack([nf, ns, npso], axis=1).ravel()
    seg_lab = np.tile(np.array([0, 1, 2], dtype=np.int8), n_ev)
    seg_id = np.repeat(np.arange(seg_len.size), seg_len)[:n]
    labels = seg_lab[seg_id]
    # Fixation targets: a random walk kept on screen by reflecting into the central 80 %.
    w, h = geom.screen_width_px, geom.screen_height_px
    steps_x = np.cos(ang) * amp_px
    steps_y = np.sin(ang) * amp_px
    tx = np.cumsum(steps_x) + w / 2
    ty = np.cumsum(steps_y) + h / 2
    lo_x, hi_x, lo_y, hi_y = 0.1 * w, 0.9 * w, 0.1 * h, 0.9 * h
    tx = lo_x + np.abs(np.mod(tx - lo_x, 2 * (hi_x - lo_x)) - (hi_x - lo_x))
    ty = lo_y + np.abs(np.mod(ty - lo_y, 2 * (hi_y - lo_y)) - (hi_y - lo_y))
    fx = np.concatenate(([w / 2], tx))
    fy = np.concatenate(([h / 2], ty))
    ev = seg_id // 3
    kind = seg_id % 3
    seg_start = np.concatenate(([0], np.cumsum(seg_len)))[seg_id]
    pos_in = np.arange(n) - seg_start
    frac = (pos_in + 1) / seg_len[seg_id]
    # Raised-cosine velocity integrates to this smooth position profile.
    prog = np.where(kind == 1, frac - np.sin(2 * np.pi * frac) / (2 * np.pi), 1.0)
    prog = np.where(kind == 0, 0.0, prog)
    from_x = np.where(kind == 0, fx[ev], fx[ev])
    to_x = fx[ev + 1]
    from_y = fy[ev]
    to_y = fy[ev + 1]
    x = from_x + (to_x - from_x) * prog
    y = from_y + (to_y - from_y) * prog
    # PSO: damped oscillation along the saccade direction (overshoot then settle).
    ts = pos_in * dt_s
    osc = np.where(kind == 2, np.exp(-ts / 0.006) * np.sin(2 * np.pi * 45.0 * ts + np.pi / 2), 0.0)
    amp_here = np.hypot(to_x - from_x, to_y - from_y)
    ux = np.where(amp_here > 0, (to_x - from_x) / np.maximum(amp_here, 1e-9), 0.0)
    uy = np.where(amp_here > 0, (to_y - from_y) / np.maximum(amp_here, 1e-9), 0.0)
    osc_px = osc * 0.08 * amp_here
    x = x + ux * osc_px
    y = y + uy * osc_px
    x = x + rng.normal(0.0, noise_px, n)
    y = y + rng.normal(0.0, noise_px, n)
    if blink_every_s > 0:
        n_bl = int(duration_s / blink_every_s)
        blen = round(0.15 / dt_s)
        fix_idx = np.flatnonzero(labels == 0)
        if n_bl and fix_idx.size > blen * 4:
            centres = np.sort(rng.choice(fix_idx[blen:-blen], size=n_bl, replace=False))
            mark = np.zeros(n + 1, dtype=np.int64)
            np.add.at(mark, np.clip(centres - blen // 2, 0, n), 1)
            np.add.at(mark, np.clip(centres - blen // 2 + blen, 0, n), -1)
            blink = np.cumsum(mark[:-1]) > 0
            x[blink] = np.nan
            y[blink] = np.nan
            labels = np.where(blink, np.int8(3), labels)
    return SyntheticGaze(t_us, x, y, labels.astype(np.int8), geom)


# --------------------------------------------------------------------------------------------
# Generalization: would parameters chosen without a recording do as well on it?


def parameter_grid(values: dict[str, Sequence[object]]) -> list[dict[str, object]]:
    """Every combination of ``values`` (parameter name → candidate values), first values first.

    Put each parameter's default first: configuration 0 is then the defaults, which
    :func:`leave_one_out_choice` prefers on ties.
    """
    names = list(values)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values.values())]


def grid_kappas(
    recordings: Sequence[LundRecording], configs: Sequence[dict[str, object]], method: str = "adaptive"
) -> npt.NDArray[np.float64]:
    """Mean kappa over coders (fixation vs rest) of ``method`` with each of ``configs``.

    Returns an ``(n_configs, n_recordings)`` array, the input of :func:`leave_one_out_choice`.
    """
    coder_fix = [[lab == LUND_FIXATION for lab in rec.labels.values()] for rec in recordings]
    scores = np.empty((len(configs), len(recordings)))
    for i, cfg in enumerate(configs):
        for j, rec in enumerate(recordings):
            res = detect_events(
                rec.t_us, rec.x_px, rec.y_px, geometry=rec.geometry, method=method, params=cfg
            )
            fix = res.labels == 0
            scores[i, j] = np.mean([cohen_kappa(fix, c) for c in coder_fix[j]])
    return scores


def leave_one_out_choice(scores: npt.ArrayLike, recordings: Sequence[str]) -> pd.DataFrame:
    """Leave-one-recording-out choice of a configuration, scored on the recording left out.

    For each recording, the configuration with the highest mean score over the *other*
    recordings is chosen (the lowest index among equals, so configuration 0 wins ties), and its
    score on the left-out recording is reported. The mean of ``held_out`` estimates what choosing
    parameters on these recordings gives on an unseen one; ``in_sample`` (the same choice made
    with all recordings) shows how optimistic the full-data choice is.

    Parameters
    ----------
    scores : array-like
        ``(n_configs, n_recordings)`` scores (e.g. the mean kappa over coders), NaN-free.
    recordings : sequence of str
        Recording names, one per column.

    Returns
    -------
    pandas.DataFrame
        One row per recording: ``recording``, ``chosen`` (configuration index), ``train`` (its
        mean score on the others), ``held_out`` (its score here), ``in_sample`` (the score here
        of the configuration best on all recordings) and ``config0`` (configuration 0's score).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(recordings):
        raise ValueError(f"scores must be (n_configs, {len(recordings)}), got {s.shape}")
    if s.shape[1] < 2 or s.shape[0] < 1:
        raise ValueError("need at least one configuration and two recordings")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    n = s.shape[1]
    total = s.sum(axis=1)
    best_all = int(np.argmax(total))
    rows = []
    for j, name in enumerate(recordings):
        others = (total - s[:, j]) / (n - 1)
        k = int(np.argmax(others))
        rows.append(
            {
                "recording": name,
                "chosen": k,
                "train": float(others[k]),
                "held_out": float(s[k, j]),
                "in_sample": float(s[best_all, j]),
                "config0": float(s[0, j]),
            }
        )
    return pd.DataFrame(rows)
