"""Write a complete synthetic study into a lake folder (see docs/demo_study.md).

``generate_study`` writes ``study/`` (stimuli.csv, aois.json, images) and one landing folder per
participant (session.json, the gaze export, responses.csv and the ground truth). Every random
draw comes from ``np.random.default_rng([seed, ...])`` streams derived per stimulus and per
participant, so participants are independent of one another and the same seed gives the same
bytes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pov_pipeline.atomic import write_bytes_atomic, write_parquet_atomic
from pov_pipeline.demo import scanpath as sp
from pov_pipeline.demo.export import write_eyelink_asc, write_tobii_tsv
from pov_pipeline.demo.participants import Participant, make_participant
from pov_pipeline.demo.signal import simulate_signal
from pov_pipeline.demo.stimuli import (
    IMAGE_ORIGIN_PX,
    IMAGE_SIZE_PX,
    SCREEN_MM,
    SCREEN_PX,
    VIEWING_DISTANCE_MM,
    Stimulus,
    make_stimuli,
    render_png,
    sha256_hex,
)
from pov_pipeline.schemas import ANSWER_LABELS, AOIS, SAMPLE_LABELS, STIMULI

#: Scanpath replicas per (participant, stimulus) for the content-only expectation.
CONTENT_MC_REPLICAS = 12

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoSize:
    """Size of a demo study."""

    n_participants: int
    n_stimuli: int
    trial_duration_s: float


SIZES: dict[str, DemoSize] = {
    "small": DemoSize(6, 12, 3.0),
    "paper": DemoSize(109, 153, 3.0),
}


@dataclass
class StudySummary:
    """What ``generate_study`` wrote, with the calibration figures of the generated answers.

    ``majority_answer_share`` is the share of the most common answer among the sampled answers;
    ``bayes_optimal_accuracy`` the mean over trials of the largest answer probability (the best any
    model can do); ``content_only_accuracy`` the expected accuracy of predicting, per trial, the
    argmax of E[p | stimulus, participant] (perception flags marginalised by Monte Carlo over the
    scanpath model), i.e. the best a model without gaze can do.
    """

    n_participants: int
    n_stimuli: int
    n_trials: int
    n_samples: int
    majority_answer_share: float
    bayes_optimal_accuracy: float
    content_only_accuracy: float
    answer_shares: dict[str, float]
    lake_dir: Path
    study_dir: Path
    landing_dir: Path
    participant_ids: tuple[str, ...]
    formats: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """A readable block with the size and the three calibration figures."""
        shares = ", ".join(f"{k} {v:.1%}" for k, v in self.answer_shares.items())
        fmts = ", ".join(f"{k} {v}" for k, v in sorted(self.formats.items()))
        return "\n".join(
            [
                f"demo study in {self.lake_dir}",
                f"  participants {self.n_participants} ({fmts}), stimuli {self.n_stimuli}, "
                f"trials {self.n_trials}, raw_gaze rows {self.n_samples:,}",
                f"  answers: {shares}",
                f"  majority answer share      {self.majority_answer_share:6.1%}",
                f"  Bayes-optimal accuracy     {self.bayes_optimal_accuracy:6.1%}  "
                "(mean max answer probability)",
                f"  content-only accuracy      {self.content_only_accuracy:6.1%}  "
                "(stimulus + participant, no gaze)",
            ]
        )


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def write_study_design(study_dir: Path, stimuli: list[Stimulus], progress: Progress | None = None) -> None:
    """Write ``stimuli.csv``, ``aois.json`` and the images of ``stimuli`` into ``study_dir``."""
    images = study_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    aois = []
    for i, stim in enumerate(stimuli):
        png = render_png(stim)
        write_bytes_atomic(png, images / f"{stim.stimulus_id}.png")
        rows.append(
            {
                "stimulus_id": stim.stimulus_id,
                "image_file": f"images/{stim.stimulus_id}.png",
                "image_sha256": sha256_hex(png),
                "caption": stim.caption,
                "condition": stim.condition,
                "central_object": stim.central_object,
                "mentioned_object": stim.mentioned_object,
                "image_left_px": IMAGE_ORIGIN_PX[0],
                "image_top_px": IMAGE_ORIGIN_PX[1],
                "image_width_px": IMAGE_SIZE_PX[0],
                "image_height_px": IMAGE_SIZE_PX[1],
                "screen_width_px": SCREEN_PX[0],
                "screen_height_px": SCREEN_PX[1],
            }
        )
        for obj in stim.objects:
            aois.append(
                {
                    "stimulus_id": stim.stimulus_id,
                    "aoi_id": f"obj:{obj.label}",
                    "aoi_kind": "object",
                    "label": obj.label,
                    "shape": obj.shape,
                    "x0_px": obj.bbox_px[0],
                    "y0_px": obj.bbox_px[1],
                    "x1_px": obj.bbox_px[2],
                    "y1_px": obj.bbox_px[3],
                    "points_px": list(obj.points_px),
                    "word_index": -1,
                    "is_central": obj.is_central,
                }
            )
        for w, (word, box) in enumerate(zip(stim.words, stim.word_boxes_px, strict=True)):
            aois.append(
                {
                    "stimulus_id": stim.stimulus_id,
                    "aoi_id": f"word:{w}",
                    "aoi_kind": "word",
                    "label": word,
                    "shape": "rect",
                    "x0_px": box[0],
                    "y0_px": box[1],
                    "x1_px": box[2],
                    "y1_px": box[3],
                    "points_px": list(box),
                    "word_index": w,
                    "is_central": False,
                }
            )
        if progress is not None:
            progress("stimuli", i + 1, len(stimuli))
    frame = pd.DataFrame(rows, columns=STIMULI.names)
    write_bytes_atomic(frame.to_csv(index=False, lineterminator="\n").encode(), study_dir / "stimuli.csv")
    assert list(aois[0]) == AOIS.names
    write_bytes_atomic(_json_bytes({"screen_px": list(SCREEN_PX), "aois": aois}), study_dir / "aois.json")


@dataclass(frozen=True)
class _ParticipantResult:
    probs: np.ndarray
    content_pred: np.ndarray
    responses: np.ndarray
    n_samples: int


def simulate_perception(
    arrays: sp.StimulusArrays,
    participant: Participant,
    seed: int,
    trial_duration_s: float,
    rng_trials: np.random.Generator | None = None,
) -> tuple[np.ndarray, sp.Scanpaths, sp.Blinks, sp.PerceptionFlags]:
    """What one participant looked at and saw, trial by trial, in presentation order.

    Returns the presentation order (stimulus positions), the scanpaths, the blinks and the
    perception flags the answers are drawn from. ``rng_trials`` continues (the generator draws the
    answers from it next); by default it is the participant's trial stream from ``seed``.
    """
    if rng_trials is None:
        rng_trials = np.random.default_rng([seed, participant.index, 1])
    order = rng_trials.permutation(len(arrays.n_objects))
    paths = sp.simulate_scanpaths(arrays, order, participant, trial_duration_s, rng_trials)
    rng_blinks = np.random.default_rng([seed, participant.index, 5])
    blinks = sp.draw_blinks(len(order), participant.blink_rate_hz, trial_duration_s, rng_blinks)
    return order, paths, blinks, sp.perception_flags(arrays, paths, blinks)


def _simulate_participant(
    folder: Path,
    participant: Participant,
    stimuli: list[Stimulus],
    arrays: sp.StimulusArrays,
    seed: int,
    trial_duration_s: float,
) -> _ParticipantResult:
    k = participant.index
    rng_trials = np.random.default_rng([seed, k, 1])
    order, paths, blinks, flags = simulate_perception(arrays, participant, seed, trial_duration_s, rng_trials)
    cond = arrays.condition[order]
    probs = sp.answer_probabilities(cond, flags, participant)
    u = rng_trials.random(len(order))
    answer = np.minimum((np.cumsum(probs, axis=1) < u[:, None]).sum(axis=1), 2)
    # Response after the picture: faster when confident, slower for "unsure".
    rt_ms = np.round(
        trial_duration_s * 1000.0
        + np.exp(rng_trials.normal(np.log(650.0), 0.35, len(order)))
        * (1.6 - probs.max(axis=1))
        * np.where(answer == 2, 1.3, 1.0),
        1,
    )

    # Content-only expectation: marginalise the perception flags over fresh scanpaths.
    rng_mc = np.random.default_rng([seed, k, 3])
    rep = np.repeat(order, CONTENT_MC_REPLICAS)
    mc_paths = sp.simulate_scanpaths(arrays, rep, participant, trial_duration_s, rng_mc)
    mc_blinks = sp.draw_blinks(len(rep), participant.blink_rate_hz, trial_duration_s, rng_mc)
    mc_probs = sp.answer_probabilities(
        arrays.condition[rep], sp.perception_flags(arrays, mc_paths, mc_blinks), participant
    )
    expected = mc_probs.reshape(len(order), CONTENT_MC_REPLICAS, 3).mean(axis=1)
    content_pred = expected.argmax(axis=1)

    rng_signal = np.random.default_rng([seed, k, 2])
    signal = simulate_signal(paths, blinks, participant, trial_duration_s, rng_signal)
    stim_ids = [stimuli[i].stimulus_id for i in order]
    tracker = participant.tracker
    rng_export = np.random.default_rng([seed, k, 4])
    gaze_path = str(folder / tracker.gaze_file)
    if tracker.format == "eyelink_asc":
        t_abs = write_eyelink_asc(gaze_path, participant, stim_ids, signal, rng_export)
    else:
        t_abs = write_tobii_tsv(gaze_path, participant, stim_ids, signal, rng_export)

    trial_no = np.arange(1, len(order) + 1, dtype=np.int32)
    pd.DataFrame(
        {
            "trial": trial_no,
            "stimulus_id": stim_ids,
            "response": np.asarray(ANSWER_LABELS)[answer],
            "rt_ms": rt_ms,
        }
    ).to_csv(folder / "responses.csv", index=False, lineterminator="\n", float_format="%.1f")

    truth = folder / "truth"
    truth.mkdir()
    n_eye = len(signal.eyes)
    n = len(t_abs)
    labels = pa.DictionaryArray.from_arrays(
        pa.array(np.concatenate([e.label for e in signal.eyes]).astype(np.int32)), pa.array(SAMPLE_LABELS)
    ).cast(pa.string())
    eye_codes = np.repeat(np.arange(n_eye), n)
    trial_col = np.tile(signal.trial_pos + 1, n_eye)
    t_col = np.tile(t_abs, n_eye)
    sort = np.lexsort((t_col, eye_codes, trial_col))  # raw_gaze order: trial, eye, t_us
    samples = pa.table(
        {
            "trial": pa.array(trial_col[sort], pa.int32()),
            "t_us": pa.array(t_col[sort], pa.int64()),
            "eye": pa.DictionaryArray.from_arrays(
                pa.array(eye_codes[sort].astype(np.int32)), pa.array([e.eye for e in signal.eyes])
            ).cast(pa.string()),
            "label": labels.take(pa.array(sort)),
        }
    )
    write_parquet_atomic(samples, truth / "samples.parquet")
    trials = pa.table(
        {
            "trial": pa.array(trial_no, pa.int32()),
            "stimulus_id": pa.array(stim_ids, pa.string()),
            "condition": pa.array([stimuli[i].condition for i in order], pa.string()),
            "p_yes": pa.array(probs[:, 0], pa.float64()),
            "p_no": pa.array(probs[:, 1], pa.float64()),
            "p_unsure": pa.array(probs[:, 2], pa.float64()),
            "response": pa.array(np.asarray(ANSWER_LABELS)[answer].tolist(), pa.string()),
            "looked_central": pa.array(flags.looked_central),
            "read_mention": pa.array(flags.read_mention),
            "verified": pa.array(flags.verified),
            "fixated_mentioned_object": pa.array(flags.fixated_mentioned_object),
            "perception_state": pa.array(sp.perception_state(flags).astype(np.int8)),
            "n_fixations": pa.array(flags.n_counted_fixations.astype(np.int32)),
            "p_text": pa.array(paths.p_text, pa.float64()),
            "verify_propensity": pa.array(paths.v, pa.float64()),
            "content_p_yes": pa.array(expected[:, 0], pa.float64()),
            "content_p_no": pa.array(expected[:, 1], pa.float64()),
            "content_p_unsure": pa.array(expected[:, 2], pa.float64()),
            "mention_word_index": pa.array(arrays.mention_word[order].astype(np.int32)),
            "onset_us": pa.array(t_abs[:: signal.samples_per_trial], pa.int64()),
        }
    )
    write_parquet_atomic(trials, truth / "trials.parquet")

    session = {
        "participant_id": participant.participant_id,
        "tracker": tracker.name,
        "format": tracker.format,
        "gaze_file": tracker.gaze_file,
        "sampling_rate_hz": tracker.sampling_rate_hz,
        "screen_px": list(SCREEN_PX),
        "screen_mm": list(SCREEN_MM),
        "viewing_distance_mm": VIEWING_DISTANCE_MM,
        "eye": tracker.eye,
        "csv_columns": None,
    }
    (folder / "session.json").write_bytes(_json_bytes(session))
    return _ParticipantResult(probs, content_pred, answer, n * n_eye)


def generate_study(
    lake_dir: Path, size: str | DemoSize = "small", seed: int = 7, progress: Progress | None = None
) -> StudySummary:
    """Generate a synthetic study into ``lake_dir`` (``study/`` and ``landing/<pid>/``).

    Parameters
    ----------
    lake_dir:
        Lake root; created if needed. Existing participant folders of the same ids are replaced.
    size:
        A key of ``SIZES`` or a :class:`DemoSize`.
    seed:
        Study seed; the same seed gives byte-identical files.
    progress:
        Called as ``progress(stage, done, total)`` with stage ``"stimuli"`` or ``"participants"``.

    Returns
    -------
    StudySummary
        Counts, paths and calibration figures (see :meth:`StudySummary.describe`).
    """
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"unknown demo size {size!r}: expected one of {sorted(SIZES)}")
        size = SIZES[size]
    lake_dir = Path(lake_dir)
    study_dir = lake_dir / "study"
    landing = lake_dir / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    stimuli = make_stimuli(size.n_stimuli, seed)
    write_study_design(study_dir, stimuli, progress)
    arrays = sp.stimulus_arrays(stimuli)

    probs, content, answers = [], [], []
    n_samples = 0
    ids: list[str] = []
    formats: dict[str, int] = {}
    for k in range(1, size.n_participants + 1):
        participant = make_participant(seed, k)
        pid = participant.participant_id
        # Build the folder under a hidden name and rename it into place, so a sensor watching
        # landing/ never sees a half-written participant.
        tmp = landing / f".{pid}.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        res = _simulate_participant(tmp, participant, stimuli, arrays, seed, size.trial_duration_s)
        final = landing / pid
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        probs.append(res.probs)
        content.append(res.content_pred)
        answers.append(res.responses)
        n_samples += res.n_samples
        ids.append(pid)
        fmt = participant.tracker.format
        formats[fmt] = formats.get(fmt, 0) + 1
        if progress is not None:
            progress("participants", k, size.n_participants)

    P = np.concatenate(probs)
    pred = np.concatenate(content)
    ans = np.concatenate(answers)
    counts = np.bincount(ans, minlength=3) / len(ans)
    return StudySummary(
        n_participants=size.n_participants,
        n_stimuli=size.n_stimuli,
        n_trials=len(ans),
        n_samples=n_samples,
        majority_answer_share=float(counts.max()),
        bayes_optimal_accuracy=float(P.max(axis=1).mean()),
        content_only_accuracy=float(P[np.arange(len(P)), pred].mean()),
        answer_shares={a: float(c) for a, c in zip(ANSWER_LABELS, counts, strict=True)},
        lake_dir=lake_dir,
        study_dir=study_dir,
        landing_dir=landing,
        participant_ids=tuple(ids),
        formats=formats,
    )
