"""The HTML report is self-contained and carries the facts it is given."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pov_pipeline.models.dataset import build_training_examples
from pov_pipeline.models.splits import make_splits
from pov_pipeline.models.synthetic import make_synthetic_study
from pov_pipeline.models.training import TrainConfig, run_experiment
from pov_pipeline.reports import headline_markdown, render_report


def test_render_report_self_contained(tmp_path: Path) -> None:
    d = make_synthetic_study(n_participants=6, n_stimuli=6, seed=7)
    ex, _ = build_training_examples(
        d["responses"],
        d["aoi_sequences"],
        d["transitions"],
        d["aois"],
        d["text_features"],
        d["image_features"],
        stimuli=d["stimuli"],
    )
    sp = make_splits(ex, protocol="unseen_participants", n_folds=3, seed=0)
    cfg = TrainConfig.quick(epochs=2, models=("naive", "transformer", "pgmt"), ablations=False)
    res = run_experiment(
        ex,
        sp,
        d["aois"],
        d["text_features"],
        d["image_features"],
        config=cfg,
        stimuli=d["stimuli"],
        truth_trials=d["truth_trials"],
        n_boot=20,
    )
    out = render_report(
        res.metrics,
        res.predictions,
        tmp_path / "r" / "report.html",
        attention=res.attention,
        examples=ex,
        aoi_hits=d["aoi_hits"],
        aois=d["aois"],
        stimuli=d["stimuli"],
        lambdas=res.lambdas,
        metadata={
            "dataset": "synthetic test study",
            "text encoder": "none (random vectors, not pretrained)",
            "seed": 0,
        },
    )
    text = out.read_text()
    assert out.name == "report.html" and text.startswith("<!DOCTYPE html>")
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(imgs) >= 6
    assert "synthetic test study" in text and "not pretrained" in text
    # No external resources.
    assert not re.search(r'(src|href)="(http|/|\./)', text)
    md = headline_markdown(res.metrics)
    assert md.startswith("| protocol |") and "| unseen_participants | pgmt |" in md
    assert "bayes_optimal" in md
    lines = md.splitlines()
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_headline_empty() -> None:
    assert (
        headline_markdown(
            pd.DataFrame(columns=["protocol", "model", "metric", "value", "ci_low", "ci_high"])
        ).count("\n")
        == 1
    )
