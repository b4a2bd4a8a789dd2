"""How well ``gaze_offsets`` recovers the demo participants' calibration offsets, and what it buys.

Usage::

    python benchmarks/drift_bench.py --lake build/paper_lake [--participants 30]

Needs a demo lake whose gaze stage has been materialized (``make demo-paper`` or ``pov demo``), with
the demo's default seed (7). The generator knows every participant's calibration offset (plus half the
right eye's vergence offset for binocular averages) and re-simulates every trial's scanpath from its
seed, so the script reports, per session:

- the estimate's error against the true offset (deg);
- the share of fixations inside an AOI with and without the correction;
- how often the perception state read off the AOI sequence (verified / read + central / central only /
  no central, with the generator's own rule: fixations ≥ 80 ms, repeats merged) equals the state the
  answer was drawn from (the generator's counts only the fixation time not hidden by a blink, which
  is also all a recording shows), mapping the fixations as recorded vs. corrected;
- the expected accuracy of an oracle that knows every participant's true traits and takes the state
  read off the AOI sequence, next to the Bayes-optimal accuracy (true state): how much of the gap
  between a model and the ceiling is lost in the recording itself (blinks, track loss, noise).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_root_on_path, format_table, limit_threads, match_pipeline_process

limit_threads(1)
match_pipeline_process()
ensure_root_on_path()

import argparse  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pov_pipeline.demo.generator import simulate_perception  # noqa: E402
from pov_pipeline.demo.participants import make_participant, px_per_deg  # noqa: E402
from pov_pipeline.demo.scanpath import (  # noqa: E402
    BASE_LOGITS,
    CONDITION_CODES,
    MIN_COUNTED_FIXATION_MS,
    STRICTNESS_LOGITS,
    perception_state,
    stimulus_arrays,
)
from pov_pipeline.demo.stimuli import make_stimuli  # noqa: E402
from pov_pipeline.gaze.aoi import map_fixations_to_aois  # noqa: E402
from pov_pipeline.gaze.drift import apply_gaze_offsets, gaze_offsets  # noqa: E402
from pov_pipeline.gaze.transitions import aoi_sequences  # noqa: E402
from pov_pipeline.lake import LakePaths, read_table  # noqa: E402

SEED = 7
TRIAL_S = 3.0


def true_offset_px(participant_number: int) -> tuple[float, float]:
    """Calibration offset of the recorded signal (binocular: the average of both eyes)."""
    p = make_participant(SEED, participant_number)
    dx, dy = p.calib_offset_px
    share = {"left": 0.0, "right": 1.0, "binocular": 0.5}[p.tracker.eye]
    return dx + share * p.right_eye_offset_px[0], dy + share * p.right_eye_offset_px[1]


def states_from_hits(hits: pd.DataFrame, stimuli: dict) -> pd.Series:
    """The generator's perception state per (participant, trial), read off mapped fixations."""
    seq = aoi_sequences(hits, collapse_repeats=False)
    out = {}
    for r in seq.itertuples():
        s = stimuli[r.stimulus_id]
        word = f"word:{s.mention_word_index}"
        obj = "obj:" + s.objects[s.mention_object_index].label
        central = "obj:" + s.objects[0].label
        kept = [a for a, d in zip(r.sequence, r.dwell_ms, strict=True) if d >= MIN_COUNTED_FIXATION_MS]
        merged = [a for i, a in enumerate(kept) if i == 0 or a != kept[i - 1]]
        verified = any({a, b} == {word, obj} for a, b in itertools.pairwise(merged))
        out[(r.participant, r.trial)] = (
            0 if verified else 1 if word in kept and central in kept else 2 if central in kept else 3
        )
    return pd.Series(out)


def true_states(participants: list[str], stimuli_list: list) -> pd.Series:
    arrays = stimulus_arrays(stimuli_list)
    out = {}
    for pid in participants:
        _, _, _, flags = simulate_perception(arrays, make_participant(SEED, int(pid[1:])), SEED, TRIAL_S)
        for t, s in enumerate(perception_state(flags)):
            out[(pid, t + 1)] = int(s)
    return pd.Series(out)


def answer_probabilities(states: pd.Series, stimuli: dict, stimulus_of: pd.Series) -> np.ndarray:
    """The generator's (yes, no, unsure) probabilities for the given states and true traits."""
    out = np.empty((len(states), 3))
    for i, ((pid, trial), state) in enumerate(states.items()):
        p = make_participant(SEED, int(pid[1:]))
        c = CONDITION_CODES[stimuli[stimulus_of[(pid, trial)]].condition]
        logits = BASE_LOGITS[c, state] + p.strictness * STRICTNESS_LOGITS[c, state]
        logits = logits + np.array([p.yes_bias, 0.0, p.unsure_bias])
        e = np.exp(logits - logits.max())
        out[i] = e / e.sum()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", type=Path, default=Path("build/paper_lake"))
    ap.add_argument("--participants", type=int, default=30)
    args = ap.parse_args()
    paths = LakePaths(args.lake.resolve())
    if not (paths.tables / "fixations").is_dir():
        print(f"skipped: no fixations table in {paths.root}; run `make demo-paper` (or `pov demo`) first")
        return
    sessions = read_table(paths, "sessions").to_pandas().sort_values("participant")
    participants = list(sessions["participant"])[: args.participants]
    fixations = read_table(paths, "fixations", participants).to_pandas()
    aois = read_table(paths, "aois").to_pandas()
    n_stimuli = read_table(paths, "stimuli").num_rows
    stimuli_list = make_stimuli(n_stimuli, SEED)
    stimuli = {s.stimulus_id: s for s in stimuli_list}
    ppd = px_per_deg()

    started = time.process_time()
    offsets = gaze_offsets(fixations, aois, px_per_deg=ppd)
    estimate_s = time.process_time() - started
    truth = np.array([true_offset_px(int(p[1:])) for p in offsets["participant"]])
    error_deg = np.hypot(offsets["offset_x_px"] - truth[:, 0], offsets["offset_y_px"] - truth[:, 1]) / ppd
    true_deg = np.hypot(truth[:, 0], truth[:, 1]) / ppd

    expected = true_states(participants, stimuli_list)
    rows = []
    oracle: dict[str, float] = {}
    stimulus_of = fixations.drop_duplicates(["participant", "trial"]).set_index(["participant", "trial"])[
        "stimulus_id"
    ]
    for label, fx in (("as recorded", fixations), ("corrected", apply_gaze_offsets(fixations, offsets))):
        hits = map_fixations_to_aois(fx, aois, screen_px=(1920, 1080), tolerance_deg=0.5, deg_per_px=1 / ppd)
        found = states_from_hits(hits, stimuli)
        common = expected.index.intersection(found.index)
        p_true = answer_probabilities(expected[common], stimuli, stimulus_of)
        p_found = answer_probabilities(found[common], stimuli, stimulus_of)
        oracle["Bayes-optimal (true state)"] = float(p_true.max(axis=1).mean())
        oracle[f"oracle, state read off fixations {label}"] = float(
            p_true[np.arange(len(common)), p_found.argmax(axis=1)].mean()
        )
        rows.append(
            [
                label,
                f"{(hits['distance_deg'] == 0).mean():.1%}",
                f"{(found[common] == expected[common]).mean():.1%}",
                str(len(common)),
            ]
        )
    print(f"{len(participants)} sessions of {paths.root}, true offsets {np.median(true_deg):.2f}° (median)")
    print(
        f"offset error: median {np.median(error_deg):.3f}°, "
        f"90th percentile {np.percentile(error_deg, 90):.3f}°, "
        f"max {error_deg.max():.3f}°; applied to {int(offsets['applied'].sum())}/{len(offsets)}; "
        f"{1000 * estimate_s / max(len(offsets), 1):.0f} ms CPU per session"
    )
    print(format_table(["fixations", "inside an AOI", "perception state = generator's", "trials"], rows))
    print("\nexpected accuracy, knowing every participant's true traits:")
    print(format_table(["predictor", "accuracy"], [[k, f"{v:.3f}"] for k, v in oracle.items()]))


if __name__ == "__main__":
    main()
