"""Tests of the demo study generator: determinism, layout, formats, truth and calibration."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pov_pipeline.demo import SIZES, DemoSize, StudySummary, generate_study
from pov_pipeline.demo.export import TOBII_COLUMNS
from pov_pipeline.demo.scanpath import MAX_OBJECTS, Blinks, Scanpaths
from pov_pipeline.schemas import ANSWER_LABELS, AOIS, SAMPLE_LABELS, STIMULI

TINY = DemoSize(n_participants=4, n_stimuli=8, trial_duration_s=2.0)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> StudySummary:
    return generate_study(tmp_path_factory.mktemp("small"), "small", seed=7)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    a, b, c = (tmp_path_factory.mktemp(n) for n in ("a", "b", "c"))
    generate_study(a, TINY, seed=11)
    generate_study(b, TINY, seed=11)
    generate_study(c, TINY, seed=12)
    return a, b, c


def test_same_seed_same_bytes_and_different_seed_differs(tiny_pair: tuple[Path, Path, Path]) -> None:
    a, b, c = tiny_pair
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert ha == hb
    assert not any(name.startswith(".") or "/." in name for name in ha)  # no temp files left
    assert set(ha) == set(hc)
    differing = [k for k in ha if ha[k] != hc[k]]
    assert any(k.endswith("gaze.asc") or k.endswith("gaze.tsv") for k in differing)
    assert "study/stimuli.csv" in differing


def test_layout_and_study_files(small: StudySummary) -> None:
    lake = small.lake_dir
    assert small.n_participants == 6 and small.n_stimuli == 12 and small.n_trials == 72
    stimuli = pd.read_csv(lake / "study" / "stimuli.csv", keep_default_na=False)
    assert list(stimuli.columns) == STIMULI.names
    assert set(stimuli["condition"]) == {"central", "peripheral", "ambiguous"}
    for row in stimuli.itertuples():
        png = (lake / "study" / row.image_file).read_bytes()
        assert hashlib.sha256(png).hexdigest() == row.image_sha256
    central = stimuli[stimuli["condition"] == "central"]
    assert (central["mentioned_object"] == central["central_object"]).all()
    amb = stimuli[stimuli["condition"] == "ambiguous"]
    assert (amb["mentioned_object"] == "").all()

    aois = json.loads((lake / "study" / "aois.json").read_text())
    assert aois["screen_px"] == [1920, 1080]
    frame = pd.DataFrame(aois["aois"])
    assert list(frame.columns) == AOIS.names
    assert set(frame["shape"]) == {"rect", "polygon", "ellipse"}
    for sid, group in frame.groupby("stimulus_id"):
        objects = group[group["aoi_kind"] == "object"]
        assert 4 <= len(objects) <= 6 and objects["is_central"].sum() == 1
        words = group[group["aoi_kind"] == "word"].sort_values("word_index")
        caption = stimuli.set_index("stimulus_id").loc[sid, "caption"]
        assert " ".join(words["label"]) == caption
        assert (np.diff(words["x0_px"]) > 0).all()  # one line, reading order
        assert (objects["aoi_id"] == "obj:" + objects["label"]).all()

    for pid in small.participant_ids:
        folder = lake / "landing" / pid
        session = json.loads((folder / "session.json").read_text())
        assert session["participant_id"] == pid
        assert session["format"] in ("eyelink_asc", "tobii_prolab_tsv")
        assert (folder / session["gaze_file"]).is_file()
        assert session["screen_px"] == [1920, 1080] and session["screen_mm"] == [531.0, 299.0]
        assert session["viewing_distance_mm"] == 650.0
        if session["format"] == "tobii_prolab_tsv":
            assert session["eye"] == "binocular" and session["sampling_rate_hz"] in (120, 300)
        else:
            assert session["sampling_rate_hz"] in (500, 1000)
        responses = pd.read_csv(folder / "responses.csv")
        assert list(responses.columns) == ["trial", "stimulus_id", "response", "rt_ms"]
        assert responses["trial"].tolist() == list(range(1, 13))
        assert sorted(responses["stimulus_id"]) == sorted(stimuli["stimulus_id"])
        assert set(responses["response"]) <= set(ANSWER_LABELS)
        assert (responses["rt_ms"] > 3000).all() and (responses["rt_ms"] < 10000).all()
    assert small.formats == {"eyelink_asc": 3, "tobii_prolab_tsv": 3}


def test_eyelink_asc_format(small: StudySummary) -> None:
    for pid in small.participant_ids:
        folder = small.lake_dir / "landing" / pid
        session = json.loads((folder / "session.json").read_text())
        if session["format"] != "eyelink_asc":
            continue
        text = (folder / "gaze.asc").read_text()
        lines = text.splitlines()
        assert lines[0].startswith("**")
        assert text.count("TRIALID ") == 12 and text.count("TRIAL_END") == 12
        assert text.count("!V TRIAL_VAR stimulus_id s") == 12
        eyes = "LEFT\tRIGHT" if session["eye"] == "binocular" else session["eye"].upper()
        assert f"SAMPLES\tGAZE\t{eyes}\tRATE\t{session['sampling_rate_hz']:.2f}" in text
        for event in ("SFIX", "EFIX", "SSACC", "ESACC"):
            assert f"\n{event} " in text
        samples = [ln.split("\t") for ln in lines if ln[:1].isdigit()]
        width = 8 if session["eye"] == "binocular" else 5
        assert {len(s) for s in samples} == {width}
        assert any(s[1] == "." for s in samples)  # losses are written as "."
        # In-trial samples between STIMULUS_ONSET and TRIAL_END match the truth count.
        in_trial = 0
        inside = False
        for ln in lines:
            if ln.endswith("STIMULUS_ONSET"):
                inside = True
            elif ln.endswith("TRIAL_END"):
                inside = False
            elif inside and ln[:1].isdigit():
                in_trial += 1
        truth = pq.read_table(folder / "truth" / "samples.parquet")
        n_eyes = 2 if session["eye"] == "binocular" else 1
        assert truth.num_rows == in_trial * n_eyes


def test_tobii_tsv_format(small: StudySummary) -> None:
    for pid in small.participant_ids:
        folder = small.lake_dir / "landing" / pid
        session = json.loads((folder / "session.json").read_text())
        if session["format"] != "tobii_prolab_tsv":
            continue
        frame = pd.read_csv(folder / "gaze.tsv", sep="\t", keep_default_na=False, dtype=str)
        assert tuple(frame.columns) == TOBII_COLUMNS
        events = frame[frame["Event"] != ""]
        assert (events["Event"].value_counts() == 12).all()
        assert set(events["Event"]) == {"TrialStart", "ImageStimulusStart", "TrialEnd"}
        samples = frame[frame["Sensor"] == "Eye Tracker"]
        t = samples["Recording timestamp"].astype(np.int64).to_numpy()
        assert (np.diff(t) > 0).all()
        assert np.median(np.diff(t)) == pytest.approx(1e6 / session["sampling_rate_hz"], abs=1)
        in_trial = samples[samples["Presented Stimulus name"] != ""]
        truth = pq.read_table(folder / "truth" / "samples.parquet").to_pandas()
        left = truth[truth["eye"] == "left"]
        assert len(left) == len(in_trial)
        np.testing.assert_array_equal(
            np.sort(left["t_us"].to_numpy()), in_trial["Recording timestamp"].astype(np.int64).to_numpy()
        )
        invalid = in_trial["Validity left"] == "Invalid"
        assert (in_trial.loc[invalid, "Gaze point left X"] == "").all()
        lost_truth = left.sort_values("t_us")["label"].isin(["blink", "lost"]).to_numpy()
        # Invalid samples are exactly the blink cores and losses: a subset of those truth labels.
        assert lost_truth[invalid.to_numpy()].all()


def test_truth_samples(small: StudySummary) -> None:
    total = 0
    for pid in small.participant_ids:
        folder = small.lake_dir / "landing" / pid
        session = json.loads((folder / "session.json").read_text())
        truth = pq.read_table(folder / "truth" / "samples.parquet")
        assert truth.schema.names == ["trial", "t_us", "eye", "label"]
        frame = truth.to_pandas()
        assert set(frame["label"]) <= set(SAMPLE_LABELS)
        assert {"fixation", "saccade"} <= set(frame["label"])
        counts = frame.groupby(["trial", "eye"]).size()
        assert (counts == round(3.0 * session["sampling_rate_hz"])).all()
        # Rows come in raw_gaze order: trial, eye, t_us.
        key = frame[["trial", "eye", "t_us"]]
        assert key.equals(key.sort_values(["trial", "eye", "t_us"]).reset_index(drop=True))
        share = frame["label"].value_counts(normalize=True)
        assert share["fixation"] > 0.6 and 0.03 < share["saccade"] < 0.25
        total += len(frame)
    assert total == small.n_samples


def test_responses_depend_on_perception(tmp_path: Path) -> None:
    summary = generate_study(tmp_path, DemoSize(6, 40, 2.5), seed=3)
    trials = pd.concat(
        [
            pq.read_table(tmp_path / "landing" / p / "truth" / "trials.parquet").to_pandas()
            for p in summary.participant_ids
        ]
    )
    probs = trials[["p_yes", "p_no", "p_unsure"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    central = trials[trials["condition"] == "central"]
    assert (
        central["p_yes"][central["verified"]].mean()
        > central["p_yes"][~central["looked_central"]].mean() + 0.3
    )
    peripheral = trials[trials["condition"] == "peripheral"]
    assert (
        peripheral["p_no"][peripheral["verified"]].mean() > peripheral["p_no"][~peripheral["verified"]].mean()
    )
    # The flags vary between trials, and visiting both AOIs is not the same as a direct transition.
    for flag in ("looked_central", "read_mention", "verified"):
        assert 0.05 < trials[flag].mean() < 0.98
    both = trials["read_mention"] & trials["fixated_mentioned_object"]
    assert (both & ~trials["verified"]).mean() > 0.03
    assert (trials["verified"] <= both).all()


def test_calibration_figures_in_range(small: StudySummary) -> None:
    assert 0.5 < small.majority_answer_share < 0.85
    assert 0.75 < small.bayes_optimal_accuracy < 0.95
    assert small.content_only_accuracy < small.bayes_optimal_accuracy - 0.05
    assert small.content_only_accuracy > 0.5
    text = small.describe()
    for needle in ("majority answer share", "Bayes-optimal accuracy", "content-only accuracy"):
        assert needle in text


def test_sizes_and_bad_size(tmp_path: Path) -> None:
    assert SIZES["paper"] == DemoSize(109, 153, 3.0)
    with pytest.raises(ValueError, match="unknown demo size"):
        generate_study(tmp_path, "huge")


def test_progress_callback(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    generate_study(tmp_path, DemoSize(2, 3, 1.0), seed=1, progress=lambda s, i, n: calls.append((s, i, n)))
    assert calls[:3] == [("stimuli", 1, 3), ("stimuli", 2, 3), ("stimuli", 3, 3)]
    assert calls[-1] == ("participants", 2, 2)


def test_only_verification_moves_the_answer() -> None:
    # The shuffled-fixation ablation relies on this: without a direct word → object comparison the
    # answer distribution does not depend on which AOIs were looked at.
    from pov_pipeline.demo.scanpath import BASE_LOGITS, STRICTNESS_LOGITS

    for table in (BASE_LOGITS, STRICTNESS_LOGITS):
        assert (table[:, 1] == table[:, 2]).all() and (table[:, 1] == table[:, 3]).all()
        assert not (table[:, 0] == table[:, 1]).all()


def _two_fixation_paths(fix_ms: tuple[float, float]) -> Scanpaths:
    # One trial: the mention word (slot MAX_OBJECTS + 0), a 40 ms saccade, then object 0.
    state = np.array([[MAX_OBJECTS, 0, 0]])
    start = np.array([[0.0, fix_ms[0] + 40.0, 0.0]])
    dur = np.array([[fix_ms[0], fix_ms[1], 0.0]])
    zeros = np.zeros((1, 3))
    return Scanpaths(
        np.array([0]), state, zeros, zeros, start, dur, zeros, np.array([2]), np.zeros(1), np.zeros(1)
    )


def _blinks(onset_ms: list[float], core_ms: float, flank_ms: float) -> Blinks:
    n = len(onset_ms)
    return Blinks(np.zeros(n, dtype=int), np.array(onset_ms), np.full(n, core_ms), np.full(n, flank_ms))


def test_seen_fixation_time_excludes_blinks() -> None:
    from pov_pipeline.demo.scanpath import seen_fixation_ms

    paths = _two_fixation_paths((200.0, 300.0))  # fixations [0, 200) and [240, 540)
    # Lid moves 10 ms either side of a 50 ms closure at 100 ms: [90, 160) is lost from the first.
    np.testing.assert_allclose(seen_fixation_ms(paths, _blinks([100.0], 50.0, 10.0))[0, :2], [130.0, 300.0])
    # A blink across the saccade takes the end of one fixation and the start of the next.
    np.testing.assert_allclose(seen_fixation_ms(paths, _blinks([180.0], 100.0, 10.0))[0, :2], [170.0, 250.0])
    # Two blinks in one fixation add up; a fixation never goes below zero.
    np.testing.assert_allclose(
        seen_fixation_ms(paths, _blinks([260.0, 400.0], 20.0, 10.0))[0, :2], [200.0, 220.0]
    )
    np.testing.assert_allclose(seen_fixation_ms(paths, _blinks([-50.0], 600.0, 10.0))[0, :2], [0.0, 0.0])
    np.testing.assert_array_equal(seen_fixation_ms(paths, _blinks([], 0.0, 0.0)), paths.fix_ms)


def test_a_blinked_out_fixation_does_not_verify() -> None:
    from pov_pipeline.demo.scanpath import perception_flags, stimulus_arrays
    from pov_pipeline.demo.stimuli import make_stimuli

    stimuli = make_stimuli(12, 7)
    s = next(i for i, st in enumerate(stimuli) if st.mention_object_index == 0)
    arrays = stimulus_arrays([stimuli[s]])
    paths = replace(
        _two_fixation_paths((200.0, 150.0)),
        state=np.array([[MAX_OBJECTS + stimuli[s].mention_word_index, 0, 0]]),
    )
    assert perception_flags(arrays, paths).verified[0]
    # 100 ms of the 150 ms object fixation under the lid leaves 50 ms seen: below the 80 ms floor.
    hidden = perception_flags(
        arrays,
        paths,
        _blinks(
            [
                250.0,
            ],
            80.0,
            10.0,
        ),
    )
    assert not hidden.verified[0] and hidden.read_mention[0] and not hidden.looked_central[0]
    assert perception_flags(arrays, paths, _blinks([250.0], 30.0, 10.0)).verified[0]


def test_blinks_are_sorted_and_in_range() -> None:
    from pov_pipeline.demo.scanpath import draw_blinks

    b = draw_blinks(400, 0.35, 3.0, np.random.default_rng(0))
    assert len(b.trial) > 200
    key = b.trial * 10_000.0 + b.onset_ms
    assert (np.diff(key) >= 0).all()
    assert (b.onset_ms >= 0).all() and (b.onset_ms < 3000).all()
    assert (b.core_ms >= 100).all() and (b.core_ms <= 300).all()
    assert (b.flank_ms >= 8).all() and (b.flank_ms <= 25).all()
