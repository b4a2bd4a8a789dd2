"""Property tests: readers raise nothing but GazeFormatError, detection keeps its invariants."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_fixtures import asc_text, csv_text, responses_text, session_doc, tsv_text

from pov_pipeline.gaze.detection import AdaptiveParams, IDTParams, IVTParams, detect_events
from pov_pipeline.gaze.geometry import ScreenGeometry
from pov_pipeline.ingest import (
    GazeFormatError,
    SessionInfo,
    read_eyelink_asc,
    read_gaze_csv,
    read_responses,
    read_session,
    read_tobii_prolab_tsv,
    read_tobii_sdk_tsv,
)
from pov_pipeline.schemas import RAW_GAZE, SAMPLE_LABELS

FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

SESSION = SessionInfo(
    participant_id="p1",
    tracker="t",
    format="auto",
    gaze_file="g",
    sampling_rate_hz=500.0,
    screen_px=(1920, 1080),
    screen_mm=(531.0, 299.0),
    viewing_distance_mm=650.0,
    eye="binocular",
)

READERS: dict[str, Callable[[Path], object]] = {
    "asc": lambda p: read_eyelink_asc(p, participant="p1", session=SESSION),
    "prolab": lambda p: read_tobii_prolab_tsv(p, participant="p1", session=SESSION),
    "sdk": lambda p: read_tobii_sdk_tsv(p, participant="p1", session=SESSION),
    "csv": lambda p: read_gaze_csv(p, participant="p1", session=SESSION),
    "responses": lambda p: read_responses(p, "p1"),
    "session": read_session,
}
VALID = {
    "asc": asc_text(n_trials=2, samples_per_trial=8, binocular=True),
    "prolab": tsv_text(n_trials=2, samples_per_trial=8),
    "sdk": "Time\tLGazePos2dx\tLGazePos2dy\tLValidity\tRGazePos2dx\tRGazePos2dy\tRValidity\n"
    + "".join(f"{1000 + 3333 * i}\t0.5\t0.5\t0\t0.51\t0.5\t0\n" for i in range(16)),
    "csv": csv_text(n_trials=2, samples_per_trial=8),
    "responses": responses_text(3),
    "session": __import__("json").dumps(session_doc("p1")),
}


def _run(kind: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input"
        path.write_bytes(data)
        try:
            result = READERS[kind](path)
        except GazeFormatError:
            return
    if kind in ("asc", "prolab", "sdk", "csv"):
        samples: pa.Table = result.samples  # type: ignore[attr-defined]
        assert samples.schema.equals(RAW_GAZE)
        frame = samples.to_pandas()
        # Lost samples are NaN and never valid; valid ones are finite.
        assert not (frame["valid"] & ~np.isfinite(frame["x_px"])).any()
        assert not (~frame["valid"] & np.isfinite(frame["x_px"])).any()
        for _, group in frame.groupby(["trial", "eye"]):
            assert np.all(np.diff(group["t_us"].to_numpy()) > 0)


@pytest.mark.parametrize("kind", list(READERS))
@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_raise_only_gaze_format_errors(kind, data):
    _run(kind, data)


_mutation = st.tuples(
    st.sampled_from(["replace", "delete", "insert", "truncate"]),
    st.floats(0, 1, exclude_max=True),
    st.integers(1, 8),
    st.sampled_from(
        [b"\t", b",", b";", b"\n", b"\r", b".", b"-", b"nan", b"inf", b"\xff", b"\x00", b"9", b"e", b'"']
    ),
)


@pytest.mark.parametrize("kind", list(READERS))
@FUZZ
@given(mutations=st.lists(_mutation, min_size=1, max_size=6))
def test_mutated_valid_files_raise_only_gaze_format_errors(kind, mutations):
    data = bytearray(VALID[kind].encode())
    for op, where, length, token in mutations:
        at = int(where * len(data)) if data else 0
        if op == "replace":
            data[at : at + len(token)] = token
        elif op == "delete":
            del data[at : at + length]
        elif op == "insert":
            data[at:at] = token * length
        else:
            del data[at:]
    _run(kind, bytes(data))


GEOMETRY = ScreenGeometry(
    screen_width_px=1920,
    screen_height_px=1080,
    screen_width_mm=531.0,
    screen_height_mm=299.0,
    viewing_distance_mm=650.0,
)
PARAMS = {"ivt": IVTParams(), "idt": IDTParams(), "adaptive": AdaptiveParams()}


@st.composite
def _signals(draw):
    """A scanpath: fixations (with jitter) joined by saccades, sampled at 250-1000 Hz, with NaN runs."""
    rate_hz = draw(st.sampled_from([250.0, 500.0, 1000.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_fix = draw(st.integers(1, 6))
    xs, ys = [], []
    x, y = 960.0, 540.0
    for _ in range(n_fix):
        n = int(rng.integers(int(0.05 * rate_hz), int(0.5 * rate_hz)))
        xs.append(x + rng.normal(0, 1.5, n))
        ys.append(y + rng.normal(0, 1.5, n))
        tx, ty = rng.uniform(100, 1820), rng.uniform(100, 980)
        m = max(2, int(0.03 * rate_hz))
        xs.append(np.linspace(x, tx, m))
        ys.append(np.linspace(y, ty, m))
        x, y = tx, ty
    xa, ya = np.concatenate(xs), np.concatenate(ys)
    for _ in range(draw(st.integers(0, 3))):
        start = int(rng.integers(0, len(xa)))
        length = int(rng.integers(1, max(2, len(xa) // 4)))
        xa[start : start + length] = np.nan
        ya[start : start + length] = np.nan
    t0 = int(rng.integers(0, 10**9))
    t_us = t0 + np.rint(np.arange(len(xa)) * 1e6 / rate_hz).astype(np.int64)
    return t_us, xa, ya


@pytest.mark.parametrize("method", ["adaptive", "ivt", "idt"])
@settings(max_examples=40, deadline=None, derandomize=True)
@given(signal=_signals())
def test_detection_invariants(method, signal):
    t_us, x, y = signal
    result = detect_events(t_us, x, y, geometry=GEOMETRY, method=method, params=PARAMS[method])
    labels = result.labels
    # Every sample gets exactly one known label.
    assert labels.shape == (len(t_us),)
    assert labels.min() >= 0 and labels.max() < len(SAMPLE_LABELS)
    events = result.events
    if events.empty:
        return
    events = events.sort_values("onset_ms")
    start, last = events["start_index"].to_numpy(), events["end_index"].to_numpy()  # last is inclusive
    n = len(t_us)
    # Events lie within the recording and do not overlap.
    assert start.min() >= 0 and last.max() < n
    assert np.all(start <= last)
    assert np.all(start[1:] > last[:-1])
    dt_us = float(np.median(np.diff(t_us)))
    assert events["onset_ms"].min() >= t_us[0] / 1000.0
    assert events["offset_ms"].max() <= (t_us[-1] + dt_us) / 1000.0 + 1e-6
    assert np.all(events["duration_ms"].to_numpy() > 0)
    # Fixations last at least the configured minimum.
    fix = events[events["event"] == "fixation"]
    assert np.all(fix["duration_ms"].to_numpy() >= PARAMS[method].min_fixation_duration_ms - 1e-6)
    # Every sample of an event carries that event's label; every other sample is unclassified.
    covered = np.zeros(n, dtype=bool)
    for name, s, e in zip(events["event"], start, last, strict=True):
        assert np.all(labels[s : e + 1] == SAMPLE_LABELS.index(name)), name
        covered[s : e + 1] = True
    assert np.all(labels[~covered] == SAMPLE_LABELS.index("unclassified"))
