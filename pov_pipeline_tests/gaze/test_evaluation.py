"""Parameter grids and the leave-one-recording-out choice (no reference data needed)."""

from __future__ import annotations

import numpy as np
import pytest

from pov_pipeline.gaze.evaluation import leave_one_out_choice, parameter_grid


def test_parameter_grid_defaults_first_and_every_combination() -> None:
    grid = parameter_grid({"a": (1, 2), "b": ("x", "y", "z")})
    assert grid[0] == {"a": 1, "b": "x"}
    assert len(grid) == 6
    assert {(g["a"], g["b"]) for g in grid} == {(a, b) for a in (1, 2) for b in "xyz"}


def test_leave_one_out_choice_hand_computed() -> None:
    # Rows are configurations, columns recordings r0, r1, r2.
    scores = np.array(
        [
            [0.80, 0.80, 0.80],  # 0: steady
            [0.95, 0.90, 0.50],  # 1: great on r0 and r1, poor on r2
            [0.60, 0.85, 0.90],  # 2: good on r1 and r2
        ]
    )
    loo = leave_one_out_choice(scores, ["r0", "r1", "r2"])
    # Without r0: means 0.80, 0.70, 0.875 -> config 2, which scores 0.60 on r0.
    # Without r1: means 0.80, 0.725, 0.75 -> config 0 (0.80 on r1).
    # Without r2: means 0.80, 0.925, 0.725 -> config 1 (0.50 on r2).
    assert loo["chosen"].tolist() == [2, 0, 1]
    np.testing.assert_allclose(loo["train"], [0.875, 0.80, 0.925])
    np.testing.assert_allclose(loo["held_out"], [0.60, 0.80, 0.50])
    # On all three, config 0 (2.40) beats config 2 (2.35) and config 1 (2.35).
    np.testing.assert_allclose(loo["in_sample"], [0.80, 0.80, 0.80])
    np.testing.assert_allclose(loo["config0"], scores[0])
    assert loo["recording"].tolist() == ["r0", "r1", "r2"]


def test_leave_one_out_choice_prefers_configuration_zero_on_ties() -> None:
    scores = np.array([[0.7, 0.7], [0.7, 0.7], [0.6, 0.9]])
    loo = leave_one_out_choice(scores, ["a", "b"])
    # Without a: config 2 (0.9) wins; without b: configs 0 and 1 tie at 0.7 -> 0.
    assert loo["chosen"].tolist() == [2, 0]


@pytest.mark.parametrize(
    ("scores", "names", "message"),
    [
        (np.ones((3, 2)), ["a"], "must be"),
        (np.ones((3, 1)), ["a"], "two recordings"),
        (np.array([[0.5, np.nan]]), ["a", "b"], "finite"),
    ],
)
def test_leave_one_out_choice_rejects_bad_input(scores: np.ndarray, names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        leave_one_out_choice(scores, names)
