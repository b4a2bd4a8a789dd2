"""Accuracy of the event detectors against two human coders on the Lund recordings.

Usage::

    python benchmarks/lund_benchmark.py [--shared DIR] [--peers] [--methods adaptive,ivt,idt]

Reads ``<shared>/refdata/andersson2017_lund/mat/img/*.mat`` (Andersson et al. 2017), runs each of
our methods (and with ``--peers`` pymovements I-VT/I-DT, REMoDNaV and I2MC at their defaults) on
every recording, and prints per recording the sample-level Cohen's kappa of fixation vs
everything else against coder RA, coder MN and their mean, the RA-vs-MN kappa, and the number and
mean duration of fixations next to the coders'. Throughput (samples per second, wall clock) is
measured on the same files.
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

from pov_pipeline.gaze.detection import DEFAULT_METHOD, detect_events  # noqa: E402
from pov_pipeline.gaze.evaluation import (  # noqa: E402
    LundRecording,
    agreement_row,
    coder_rows,
    inter_coder_kappa,
    load_lund_recordings,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the ../shared folder")
    parser.add_argument("--peers", action="store_true", help="also run pymovements, REMoDNaV, I2MC")
    parser.add_argument("--methods", default="adaptive,ivt,idt", help="our methods, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats for our methods")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
