"""Agreement with the Lund human coders (needs ../shared/refdata; skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pov_pipeline.gaze.detection import DEFAULT_METHOD, detect_events
from pov_pipeline.gaze.evaluation import (
    agreement_row,
    cohen_kappa,
    grid_kappas,
    inter_coder_kappa,
    leave_one_out_choice,
    load_lund_recordings,
    parameter_grid,
)

pytestmark = pytest.mark.needs_shared

# Measured mean kappa (fixation vs rest, mean over RA and MN, 7 recordings): adaptive 0.870,
# ivt 0.738, idt 0.581. Floors sit 0.03 below so that a regression fails.
FLOORS = {"adaptive": 0.84, "ivt": 0.708, "idt": 0.55}


@pytest.fixture(scope="module")
def recordings(refdata: Path):
    folder = refdata / "andersson2017_lund" / "mat" / "img"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return load_lund_recordings(folder)


def test_recordings_load_with_measured_rate(recordings) -> None:
    assert len(recordings) == 7
    ul47 = next(r for r in recordings if r.name.startswith("UL47"))
    assert ul47.declared_rate_hz == 500
    assert ul47.sampling_rate_hz == pytest.approx(200.0, rel=1e-3)
    inter = np.mean([inter_coder_kappa(r) for r in recordings])
    assert inter == pytest.approx(0.866, abs=0.005)


@pytest.mark.parametrize("method", ["adaptive", "ivt", "idt"])
def test_kappa_floor(recordings, method: str) -> None:
    rows = []
    for r in recordings:
        res = detect_events(r.t_us, r.x_px, r.y_px, geometry=r.geometry, method=method)
        rows.append(agreement_row(r, res.labels == 0, method))
    mean = float(np.mean([row["kappa_mean"] for row in rows]))
    assert mean >= FLOORS[method], rows


def test_parameters_chosen_without_a_recording_hold_on_it(recordings) -> None:
    """Leave one recording out over the three main thresholds (the benchmark's full grid has 8).

    Measured: held out 0.866 on the full grid; here the floor is the accuracy floor, so a change
    that makes the defaults good only in sample fails.
    """
    configs = parameter_grid(
        {
            "peak_threshold_sd": (6.0, 5.0, 7.0),
            "onset_threshold_sd": (3.0, 2.0, 4.0),
            "min_fixation_duration_ms": (40.0, 30.0, 60.0),
        }
    )
    scores = grid_kappas(recordings, configs)
    loo = leave_one_out_choice(scores, [r.name for r in recordings])
    assert loo["held_out"].mean() >= FLOORS["adaptive"], loo
    # The defaults are within a hundredth of the best combination in sample: not on a narrow peak.
    assert scores[0].mean() >= scores.mean(axis=1).max() - 0.01


def test_default_is_adaptive() -> None:
    assert DEFAULT_METHOD == "adaptive"


def test_cohen_kappa_known_values() -> None:
    a = np.array([1, 1, 0, 0, 1, 0, 1, 1])
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, 1 - a) < 0
    # 2x2 table [[20, 5], [10, 15]]: po = 0.7, pe = 0.5 -> kappa 0.4.
    x = np.array([1] * 25 + [0] * 25)
    y = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15)
    assert cohen_kappa(x, y) == pytest.approx(0.4)
