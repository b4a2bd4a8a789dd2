"""Accuracy of the event detectors against two human coders on the Lund recordings.

Usage::

    python benchmarks/lund_benchmark.py [--shared DIR] [--peers] [--methods adaptive,ivt,idt]
    python benchmarks/lund_benchmark.py --generalization

Reads ``<shared>/refdata/andersson2017_lund/mat/img/*.mat`` (Andersson et al. 2017), runs each of
our methods (and with ``--peers`` pymovements I-VT/I-DT, REMoDNaV and I2MC at their defaults) on
every recording, and prints per recording the sample-level Cohen's kappa of fixation vs
everything else against coder RA, coder MN and their mean, the RA-vs-MN kappa, and the number and
mean duration of fixations next to the coders'. Throughput (samples per second, wall clock) is
measured on the same files.

``--generalization`` asks whether the default detector's parameters, chosen on these recordings,
carry over to recordings they were not chosen on. It scores every combination of
:data:`GENERALIZATION_GRID` (each parameter at its default and two values around it) on every
recording, then chooses the best combination on all recordings but one and scores it on the one
left out (:func:`~pov_pipeline.gaze.evaluation.leave_one_out_choice`), and prints each
parameter's effect with the others at their defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pov_pipeline.gaze.detection import DEFAULT_METHOD, AdaptiveParams, detect_events  # noqa: E402
from pov_pipeline.gaze.evaluation import (  # noqa: E402
    LundRecording,
    agreement_row,
    coder_rows,
    grid_kappas,
    inter_coder_kappa,
    leave_one_out_choice,
    load_lund_recordings,
    parameter_grid,
)

LUND_SUBDIR = Path("refdata/andersson2017_lund/mat/img")


def our_detector(method: str) -> Callable[[LundRecording], np.ndarray]:
    """A fixation-mask detector running one of our methods at its defaults."""

    def run(rec: LundRecording) -> np.ndarray:
        res = detect_events(rec.t_us, rec.x_px, rec.y_px, geometry=rec.geometry, method=method)
        return res.labels == 0

    return run


def run_benchmark(
    recordings: list[LundRecording],
    detectors: dict[str, Callable[[LundRecording], np.ndarray]],
    repeats: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every detector on every recording.

    Returns
    -------
    tuple of pandas.DataFrame
        ``(per_recording, summary)``: one row per (recording, method) with kappas, fixation count
        and mean duration (coders included as ``coder_RA``/``coder_MN``), and one row per method
        with mean kappas and throughput in samples per second.
    """
    rows: list[dict[str, object]] = []
    timing: dict[str, float] = {}
    n_samples = sum(r.t_us.size for r in recordings)
    for rec in recordings:
        for crow in coder_rows(rec):
            crow["kappa_RA_MN"] = inter_coder_kappa(rec)
            rows.append(crow)
    for name, det in detectors.items():
        elapsed = 0.0
        if recordings:
            # Untimed: the first call loads (or compiles) a detector's compiled kernels, seconds
            # that would otherwise count as detection time of the first recording.
            det(recordings[0])
        for rec in recordings:
            t0 = time.perf_counter()
            for _ in range(repeats):
                mask = det(rec)
            elapsed += (time.perf_counter() - t0) / repeats
            row = agreement_row(rec, mask, name)
            row["kappa_RA_MN"] = inter_coder_kappa(rec)
            rows.append(row)
        timing[name] = n_samples / elapsed if elapsed > 0 else float("nan")
    table = pd.DataFrame(rows)
    summary = (
        table.groupby("method", sort=False)[["kappa_RA", "kappa_MN", "kappa_mean", "n_fixations"]]
        .mean()
        .reset_index()
    )
    summary["samples_per_s"] = summary["method"].map(timing)
    return table, summary


#: The adaptive detector's parameters that were set while developing on these recordings, each
#: at its default (first) and a value on either side. Literature anchors: Nystrom & Holmqvist
#: (2010) use 6 SD for the peak and 3 SD for onsets; 40-60 ms is the usual minimum fixation.
GENERALIZATION_GRID: dict[str, tuple[float, ...]] = {
    "peak_threshold_sd": (6.0, 5.0, 7.0),
    "onset_threshold_sd": (3.0, 2.0, 4.0),
    "pso_threshold_sd": (3.0, 2.0, 4.0),
    "min_fixation_duration_ms": (40.0, 30.0, 60.0),
    "smoothing_window_ms": (3.0, 6.0, 10.0),
    "min_saccade_amplitude_deg": (0.3, 0.15, 0.5),
    "strong_pso_window_ms": (7.0, 4.0, 12.0),
    "blink_margin_ms": (20.0, 10.0, 40.0),
}


def _changed(cfg: dict[str, object]) -> str:
    """The parameters of ``cfg`` that differ from the defaults, as ``name=value`` pairs."""
    defaults = AdaptiveParams()
    diff = [f"{k}={v:g}" for k, v in cfg.items() if getattr(defaults, k) != v]
    return ", ".join(diff) or "defaults"


def run_generalization(recordings: list[LundRecording]) -> None:
    """Print the leave-one-recording-out study of :data:`GENERALIZATION_GRID`."""
    defaults = AdaptiveParams()
    for name, values in GENERALIZATION_GRID.items():
        if getattr(defaults, name) != values[0]:
            default = getattr(defaults, name)
            raise RuntimeError(f"GENERALIZATION_GRID[{name!r}] must start with the default {default}")
    configs = parameter_grid(GENERALIZATION_GRID)
    t0 = time.perf_counter()
    scores = grid_kappas(recordings, configs)
    elapsed = time.perf_counter() - t0
    names = [r.name for r in recordings]
    print(
        f"\nGeneralization: {len(configs)} parameter combinations x {len(names)} recordings "
        f"({elapsed:.0f} s); score = mean kappa over coders"
    )
    loo = leave_one_out_choice(scores, names)
    loo["chosen_params"] = [_changed(configs[k]) for k in loo["chosen"]]
    best_all = int(np.argmax(scores.sum(axis=1)))
    print(f"defaults, mean over recordings:          {scores[0].mean():.3f}")
    best = f"{scores[best_all].mean():.3f}  ({_changed(configs[best_all])})"
    print(f"best combination on all {len(names)} (in sample):   {best}")
    print(f"chosen without the recording (held out): {loo['held_out'].mean():.3f}")
    print("\nLeave one recording out (train: the choice's mean over the other recordings):")
    print(loo[["recording", "train", "held_out", "config0", "chosen_params"]].round(3).to_string(index=False))
    print("\nOne parameter at a time (others at defaults), mean kappa over recordings:")
    index = {tuple(cfg.values()): i for i, cfg in enumerate(configs)}
    base = tuple(configs[0].values())
    for pos, (name, values) in enumerate(GENERALIZATION_GRID.items()):
        cells = []
        for v in values:
            key = (*base[:pos], v, *base[pos + 1 :])
            cells.append(f"{v:g}: {scores[index[key]].mean():.3f}")
        print(f"  {name:28s} " + "   ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the ../shared folder")
    parser.add_argument("--peers", action="store_true", help="also run pymovements, REMoDNaV, I2MC")
    parser.add_argument("--methods", default="adaptive,ivt,idt", help="our methods, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats for our methods")
    parser.add_argument(
        "--generalization",
        action="store_true",
        help="leave-one-recording-out study of the adaptive detector's parameters (about a minute)",
    )
    args = parser.parse_args(argv)
    folder = args.shared / LUND_SUBDIR
    if not folder.is_dir():
        print(f"Lund recordings not found in {folder}", file=sys.stderr)
        return 2
    recordings = load_lund_recordings(folder)
    print(f"{len(recordings)} recordings from {folder}")
    for r in recordings:
        print(
            f"  {r.name}: {r.t_us.size} samples, declared {r.declared_rate_hz:g} Hz, "
            f"measured {r.sampling_rate_hz:g} Hz"
        )
    ours = {m: our_detector(m) for m in args.methods.split(",") if m}
    table, summary = run_benchmark(recordings, ours, repeats=args.repeats)
    if args.peers:
        try:
            from benchmarks.peers import PEERS
        except ImportError:  # run as a script: benchmarks/ is on sys.path, not its parent package
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from peers import PEERS  # type: ignore[no-redef]
        ptable, psummary = run_benchmark(recordings, PEERS, repeats=1)
        table = pd.concat([table, ptable[~ptable["method"].str.startswith("coder_")]], ignore_index=True)
        summary = pd.concat(
            [summary, psummary[~psummary["method"].str.startswith("coder_")]], ignore_index=True
        )
    pd.set_option("display.width", 200)
    cols = [
        "recording",
        "method",
        "kappa_RA",
        "kappa_MN",
        "kappa_mean",
        "kappa_RA_MN",
        "n_fixations",
        "mean_fixation_ms",
    ]
    print("\nPer recording (kappa: fixation vs everything else, sample level):")
    print(table[cols].sort_values(["recording"], kind="stable").round(3).to_string(index=False))
    print("\nMean over recordings (coder_X rows: that coder vs the other):")
    print(summary.round(3).to_string(index=False))
    print(f"\nDefault method: {DEFAULT_METHOD}")
    if args.generalization:
        run_generalization(recordings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
