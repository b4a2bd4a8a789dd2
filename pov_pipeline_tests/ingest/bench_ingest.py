"""Throughput of the readers on synthetic files: a 500 Hz EyeLink ASC of about 1M lines, or a
Pro Lab-style TSV of the same number of samples.

Run: ``cd /work/main && .venv/bin/python pov_pipeline_tests/ingest/bench_ingest.py [--binocular] [--prolab]``.
Not collected by pytest (no ``test_`` prefix); the figures go into the ingest report.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ingest_synth import write_synthetic_asc

from pov_pipeline.ingest import read_eyelink_asc, read_tobii_prolab_tsv


def write_prolab(path: Path, n_samples: int, samples_per_trial: int, seed: int = 1) -> None:
    """Binocular 500 Hz Pro Lab-style TSV with TrialStart/ImageStimulusStart/TrialEnd event rows."""
    rng = np.random.default_rng(seed)
    t = 1_000_000 + np.arange(n_samples, dtype=np.int64) * 2000
    lost = rng.random(n_samples) < 0.05
    frame = pd.DataFrame(
        {
            "Recording timestamp": t,
            "Sensor": "Eye Tracker",
            "Event": "",
            "Event value": "",
            "Gaze point left X": np.where(lost, np.nan, rng.uniform(0, 1920, n_samples).round(1)),
            "Gaze point left Y": np.where(lost, np.nan, rng.uniform(0, 1080, n_samples).round(1)),
            "Gaze point right X": rng.uniform(0, 1920, n_samples).round(1),
            "Gaze point right Y": rng.uniform(0, 1080, n_samples).round(1),
            "Pupil diameter left": rng.uniform(2, 5, n_samples).round(3),
            "Pupil diameter right": rng.uniform(2, 5, n_samples).round(3),
            "Validity left": np.where(lost, "Invalid", "Valid"),
            "Validity right": "Valid",
            "Presented Stimulus name": "",
        }
    )
    trial = np.arange(n_samples) // samples_per_trial
    frame["Presented Stimulus name"] = "stim_" + pd.Series(trial).astype(str)
    starts = np.flatnonzero(np.r_[True, np.diff(trial) != 0])
    events = pd.DataFrame(
        {
            "Recording timestamp": np.r_[t[starts] - 1, t[starts] - 1, t[starts] + samples_per_trial * 2000],
            "Sensor": "",
            "Event": ["TrialStart"] * len(starts)
            + ["ImageStimulusStart"] * len(starts)
            + ["TrialEnd"] * len(starts),
            "Event value": [str(k) for k in trial[starts]] * 2 + [str(k) for k in trial[starts]],
        }
    )
    events.loc[len(starts) : 2 * len(starts) - 1, "Event value"] = [f"stim_{k}" for k in trial[starts]]
    both = pd.concat([events, frame], ignore_index=True).sort_values("Recording timestamp", kind="stable")
    both.to_csv(path, sep="\t", index=False, na_rep="")


def main() -> None:
    """Write the file, read it ``--repeats`` times, print MB/s and samples/s of the best run."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--samples-per-trial", type=int, default=5000)
    parser.add_argument("--binocular", action="store_true")
    parser.add_argument("--prolab", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if args.prolab:
            path = Path(tmp) / "bench.tsv"
            write_prolab(path, args.trials * args.samples_per_trial, args.samples_per_trial)
            reader = read_tobii_prolab_tsv
        else:
            path = Path(tmp) / "bench.asc"
            write_synthetic_asc(
                path,
                n_trials=args.trials,
                samples_per_trial=args.samples_per_trial,
                binocular=args.binocular,
                seed=1,
            )
            reader = read_eyelink_asc
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {path.name}: {size_mb:.1f} MB in {time.perf_counter() - t0:.1f} s")
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = reader(path, participant="bench")
            best = min(best, time.perf_counter() - t0)
        n_times = result.report["n_sample_times"]
        print(
            f"read {result.samples.num_rows:,} rows ({n_times:,} sample times, "
            f"{result.report['n_lines']:,} lines) "
            f"in {best:.3f} s: {size_mb / best:.1f} MB/s, {n_times / best / 1e6:.2f} M samples/s"
        )


if __name__ == "__main__":
    main()
