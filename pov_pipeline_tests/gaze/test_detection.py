"""Event detection on synthetic signals with known events, and output invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.gaze.detection import (
    CATEGORICAL_LABEL_COLUMNS,
    DEFAULT_METHOD,
    AdaptiveParams,
    IDTParams,
    IVTParams,
    concat_labels,
    detect_events,
    detect_trials,
)
from pov_pipeline.gaze.evaluation import cohen_kappa, synthetic_gaze
from pov_pipeline.gaze.geometry import ScreenGeometry
from pov_pipeline.schemas import SAMPLE_LABELS

GEOM = ScreenGeometry.lund2013()
FIX, SAC, PSO, BLINK, LOST, UNCL = range(6)


def step_signal(
    rate_hz: float,
    *,
    onset_s: float = 0.5,
    saccade_ms: float = 40.0,
    amp_px: float = 300.0,
    pso_ms: float = 0.0,
    noise_px: float = 0.3,
    duration_s: float = 1.2,
    seed: int = 0,
    profile: str = "linear",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """Fixation, one saccade (constant or raised-cosine speed), optional PSO, fixation.

    Returns t_us, x, y and the true first saccade sample, first PSO sample, first fixation sample.
    """
    rng = np.random.default_rng(seed)
    n = round(duration_s * rate_hz)
    t = np.round(np.arange(n) * 1e6 / rate_hz).astype(np.int64) + 5_000_000
    i0 = round(onset_s * rate_hz)
    m = max(2, round(saccade_ms / 1000 * rate_hz))
    frac = np.clip((np.arange(n) - i0 + 1) / m, 0.0, 1.0)
    prog = frac if profile == "linear" else frac - np.sin(2 * np.pi * frac) / (2 * np.pi)
    x = 362.0 + amp_px * prog
    i1 = i0 + m
    i2 = i1
    if pso_ms > 0:
        k = round(pso_ms / 1000 * rate_hz)
        ts = (np.arange(n) - i1) / rate_hz
        inside = (np.arange(n) >= i1) & (np.arange(n) < i1 + k)
        # One overshoot-and-return of 8 % of the amplitude.
        x = x + np.where(inside, 0.08 * amp_px * np.sin(np.pi * ts / (k / rate_hz)), 0.0)
        i2 = i1 + k
    y = np.full(n, 384.0)
    x = x + rng.normal(0, noise_px, n)
    y = y + rng.normal(0, noise_px, n)
    return t, x, y, i0, i1, i2


def check_invariants(res, n: int, min_fix_ms: float) -> None:
    lab = res.labels
    assert lab.dtype == np.int8 and lab.shape == (n,)
    assert lab.min() >= 0 and lab.max() < len(SAMPLE_LABELS)
    ev = res.events
    assert (ev["start_index"] >= 0).all() and (ev["end_index"] < n).all()
    assert (ev["end_index"] >= ev["start_index"]).all()
    assert (ev["start_index"].to_numpy()[1:] > ev["end_index"].to_numpy()[:-1]).all()
    assert (ev["onset_ms"].to_numpy()[1:] >= ev["offset_ms"].to_numpy()[:-1]).all()
    assert (ev["duration_ms"] > 0).all()
    fix = ev[ev["event"] == "fixation"]
    assert (fix["duration_ms"] >= min_fix_ms - 1e-6).all()
    # The events cover exactly the labelled samples (unclassified samples have no event).
    covered = np.full(n, UNCL, dtype=np.int8)
    for code, name in enumerate(SAMPLE_LABELS):
        rows = ev[ev["event"] == name]
        for s, e in zip(rows["start_index"], rows["end_index"], strict=True):
            covered[s : e + 1] = code
    np.testing.assert_array_equal(covered, lab)


@pytest.mark.parametrize("rate_hz", [60.0, 200.0, 500.0, 1000.0])
def test_step_saccade_onset_and_offset_within_one_sample(rate_hz: float) -> None:
    t, x, y, i0, i1, _ = step_signal(rate_hz)
    res = detect_events(t, x, y, geometry=GEOM)
    sac = res.events[res.events["event"] == "saccade"]
    assert len(sac) == 1, res.events
    assert abs(int(sac["start_index"].iloc[0]) - i0) <= 1
    # The eye has arrived at i1 - 1; the next fixation starts within one sample of i1.
    fix = res.events[res.events["event"] == "fixation"]
    assert len(fix) == 2
    assert abs(int(fix["start_index"].iloc[1]) - i1) <= 1
    assert sac["amplitude_deg"].iloc[0] == pytest.approx(300 * GEOM.deg_per_px, rel=0.05)
    assert fix["x_px"].iloc[0] == pytest.approx(362.0, abs=0.5)
    assert fix["x_px"].iloc[1] == pytest.approx(662.0, abs=0.5)
    check_invariants(res, t.size, AdaptiveParams().min_fixation_duration_ms)


@pytest.mark.parametrize("method", ["ivt", "idt"])
def test_classic_methods_find_the_step(method: str) -> None:
    t, x, y, i0, i1, _ = step_signal(500.0)
    res = detect_events(t, x, y, geometry=GEOM, method=method)
    fix = res.events[res.events["event"] == "fixation"]
    assert len(fix) == 2
    # Windowed velocity (I-VT) and dispersion windows (I-DT) blur boundaries by a few samples.
    assert abs(int(fix["end_index"].iloc[0]) + 1 - i0) <= 6
    assert abs(int(fix["start_index"].iloc[1]) - i1) <= 6


@pytest.mark.parametrize("profile", ["linear", "cosine"])
def test_pso_is_labelled_between_saccade_and_fixation(profile: str) -> None:
    t, x, y, i0, _i1, i2 = step_signal(500.0, pso_ms=20.0, profile=profile)
    res = detect_events(t, x, y, geometry=GEOM)
    ev = res.events
    pso = ev[ev["event"] == "pso"]
    assert len(pso) == 1, ev[["event", "start_index", "end_index"]]
    sac = ev[ev["event"] == "saccade"]
    assert int(pso["start_index"].iloc[0]) == int(sac["end_index"].iloc[0]) + 1
    fix = ev[ev["event"] == "fixation"]
    assert abs(int(fix["start_index"].iloc[1]) - i2) <= 1
    assert abs(int(sac["start_index"].iloc[0]) - i0) <= 1


@pytest.mark.parametrize("method", ["adaptive", "ivt", "idt"])
def test_blink_gap(method: str) -> None:
    t, x, y, *_ = step_signal(500.0)
    x[400:475] = np.nan  # 150 ms of lost data inside the second fixation
    y[400:475] = np.nan
    res = detect_events(t, x, y, geometry=GEOM, method=method)
    lab = res.labels
    expected = BLINK if method == "adaptive" else LOST
    assert (lab[400:475] == expected).all()
    margin = round(AdaptiveParams().blink_margin_ms / 2) if method == "adaptive" else 0
    assert (lab[: 400 - margin] != expected).all()
    assert (lab[475 + margin :] != expected).all()
    ev = res.events[res.events["event"] == SAMPLE_LABELS[expected]]
    assert len(ev) == 1
    assert int(ev["start_index"].iloc[0]) == 400 - margin
    assert int(ev["end_index"].iloc[0]) == 474 + margin


@pytest.mark.parametrize("method", ["adaptive", "ivt", "idt"])
def test_invariants_on_long_noisy_recording(method: str) -> None:
    g = synthetic_gaze(30.0, 500.0, noise_px=1.0, blink_every_s=4.0, seed=3)
    res = detect_events(g.t_us, g.x_px, g.y_px, geometry=g.geometry, method=method)
    min_fix = {"adaptive": AdaptiveParams, "ivt": IVTParams, "idt": IDTParams}[method]()
    check_invariants(res, g.t_us.size, min_fix.min_fixation_duration_ms)
    assert res.params_used["method"] == method
    assert res.params_used["sampling_rate_hz"] == pytest.approx(500.0)


def test_adaptive_agrees_with_synthetic_truth_and_beats_ivt() -> None:
    g = synthetic_gaze(60.0, 500.0, noise_px=0.8, blink_every_s=5.0, seed=11)
    truth = g.labels == FIX
    ka = cohen_kappa(detect_events(g.t_us, g.x_px, g.y_px, geometry=g.geometry).labels == FIX, truth)
    ki = cohen_kappa(
        detect_events(g.t_us, g.x_px, g.y_px, geometry=g.geometry, method="ivt").labels == FIX, truth
    )
    assert ka > 0.85
    assert ka > ki


def test_params_override_and_validation() -> None:
    t, x, y, *_ = step_signal(500.0)
    res = detect_events(t, x, y, geometry=GEOM, method="ivt", params={"velocity_threshold_deg_s": 50.0})
    assert res.params_used["velocity_threshold_deg_s"] == 50.0
    assert DEFAULT_METHOD == "adaptive"
    with pytest.raises(ValueError):
        detect_events(t, x, y, geometry=GEOM, method="nope")
    with pytest.raises(TypeError):
        detect_events(t, x, y, geometry=GEOM, method="ivt", params=IDTParams())
    with pytest.raises(ValueError):
        detect_events(t[::-1], x, y, geometry=GEOM)
    empty = detect_events(t[:0], x[:0], y[:0], geometry=GEOM)
    assert empty.labels.size == 0 and len(empty.events) == 0


def test_detect_trials_binocular_average() -> None:
    parts = []
    for trial in range(3):
        t, x, y, *_ = step_signal(500.0, seed=trial)
        t = t + trial * 10_000_000
        for eye, dx in (("left", -2.0), ("right", 2.0)):
            parts.append(
                pd.DataFrame(
                    {
                        "participant": "p001",
                        "trial": np.int32(trial),
                        "stimulus_id": f"s{trial}",
                        "t_us": t,
                        "x_px": (x + dx).astype(np.float32),
                        "y_px": y.astype(np.float32),
                        "pupil": np.float32(3.0),
                        "valid": True,
                        "eye": eye,
                    }
                )
            )
    samples = pd.concat(parts, ignore_index=True)
    samples.loc[samples.index[10:20], "valid"] = False
    labels, events = detect_trials(samples, GEOM)
    assert len(labels) == len(samples) // 2
    assert set(labels["eye"]) == {"binocular"}
    assert set(labels["label"]) <= set(SAMPLE_LABELS)
    assert labels.groupby("trial").size().tolist() == [600, 600, 600]
    assert (events["onset_in_trial_ms"] >= 0).all()
    per_trial = events[events["event"] == "saccade"].groupby("trial").size()
    assert per_trial.tolist() == [1, 1, 1]
    first = events[events["trial"] == 1].iloc[0]
    assert first["event_index"] == 0 and first["stimulus_id"] == "s1"
    # Averaging the eyes cancels their opposite offsets.
    fix = events[(events["event"] == "fixation") & (events["trial"] == 0)]
    assert fix["x_px"].iloc[-1] == pytest.approx(662.0, abs=0.5)
    lab_left, _ = detect_trials(samples, GEOM, eye_mode="left")
    assert set(lab_left["eye"]) == {"left"}


def _two_trial_samples(participant: str, stimuli: tuple[str, str]) -> pd.DataFrame:
    parts = []
    for trial, stimulus in enumerate(stimuli):
        t, x, y, *_ = step_signal(500.0, seed=trial)
        parts.append(
            pd.DataFrame(
                {
                    "participant": participant,
                    "trial": np.int32(trial),
                    "stimulus_id": stimulus,
                    "t_us": t + trial * 10_000_000,
                    "x_px": x,
                    "y_px": y,
                    "valid": True,
                    "eye": "right",
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("engine", ["auto", "numpy"])
def test_sample_label_columns_are_categoricals_of_the_values_present(engine: str) -> None:
    labels, _ = detect_trials(_two_trial_samples("p002", ("s9", "s1")), GEOM, engine=engine)
    for name in CATEGORICAL_LABEL_COLUMNS:
        assert isinstance(labels[name].dtype, pd.CategoricalDtype), name
    # Sorted values present; the label column always has all labels, in SAMPLE_LABELS' order.
    assert labels["stimulus_id"].cat.categories.tolist() == ["s1", "s9"]
    assert labels["stimulus_id"].iloc[0] == "s9" and labels["stimulus_id"].iloc[-1] == "s1"
    assert labels["participant"].cat.categories.tolist() == ["p002"]
    assert labels["eye"].cat.categories.tolist() == ["right"]
    assert labels["label"].cat.categories.tolist() == list(SAMPLE_LABELS)
    assert labels["label"].cat.codes.dtype == np.int8


def test_concat_labels_unions_categories_without_strings_per_row() -> None:
    a, _ = detect_trials(_two_trial_samples("p002", ("s2", "s1")), GEOM)
    b, _ = detect_trials(_two_trial_samples("p001", ("s3", "s1")), GEOM)
    both = concat_labels([a, b])
    assert len(both) == len(a) + len(b)
    assert both["participant"].cat.categories.tolist() == ["p001", "p002"]
    assert both["stimulus_id"].cat.categories.tolist() == ["s1", "s2", "s3"]
    assert both["label"].cat.categories.tolist() == list(SAMPLE_LABELS)
    for name in a.columns:
        expected = pd.concat([a[name].astype(object), b[name].astype(object)], ignore_index=True)
        assert both[name].astype(object).tolist() == expected.tolist(), name
    assert len(concat_labels([])) == 0
