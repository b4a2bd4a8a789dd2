"""Single-thread throughput of the event detectors (samples per second).

Usage::

    python benchmarks/detection_speed.py [--samples 5000000] [--repeats 3] [--skip-trials]

``detect_events`` runs each method on one long synthetic 500 Hz recording (fixations, saccades,
PSOs and blinks from :func:`pov_pipeline.gaze.evaluation.synthetic_gaze`); ``detect_trials`` runs
on a ``raw_gaze``-like frame of 10 participants x 150 trials x 1500 samples, where the per-trial
overhead counts. Each figure is the best of ``--repeats`` runs in CPU seconds (process time),
which does not depend on other load on a shared machine. BLAS/OpenMP pools are pinned to one
thread before numpy is imported, so the figures are per core.

``--engines auto,numpy`` times both the compiled fast path (``auto``, the default everywhere) and
the per-trial numpy reference. The first fast-path call of the process is timed separately: it
loads the numba kernels from the on-disk cache, or compiles them on a machine without one.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pov_pipeline.gaze.detection import detect_events, detect_trials  # noqa: E402
from pov_pipeline.gaze.evaluation import synthetic_gaze  # noqa: E402

METHODS = ("adaptive", "ivt", "idt")


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Shortest CPU time of ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def trials_frame(
    n_participants: int = 10, n_trials: int = 150, samples_per_trial: int = 1500, seed: int = 0
) -> pd.DataFrame:
    """A ``raw_gaze``-like frame: one synthetic 500 Hz recording cut into trials."""
    per_participant = n_trials * samples_per_trial
    parts = []
    for p in range(n_participants):
        g = synthetic_gaze(per_participant / 500.0 + 1.0, 500.0, blink_every_s=4.0, seed=seed + p)
        n = per_participant
        valid = np.isfinite(g.x_px[:n]) & np.isfinite(g.y_px[:n])
        parts.append(
            pd.DataFrame(
                {
                    "participant": f"P{p:02d}",
                    "trial": np.repeat(np.arange(n_trials, dtype=np.int32), samples_per_trial),
                    "stimulus_id": np.repeat(
                        np.array([f"img{i:03d}" for i in range(n_trials)]), samples_per_trial
                    ),
                    "t_us": g.t_us[:n],
                    "x_px": np.where(valid, g.x_px[:n], 0.0),
                    "y_px": np.where(valid, g.y_px[:n], 0.0),
                    "pupil": 3.0,
                    "valid": valid,
                    "eye": "left",
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=5_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--engines", default="auto", help="comma-separated: auto (fast path), numpy (reference)")
    ap.add_argument("--skip-trials", action="store_true", help="skip the detect_trials measurement")
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    engines = [e for e in args.engines.split(",") if e]

    g = synthetic_gaze(args.samples / 500.0, 500.0, blink_every_s=5.0, seed=0)
    n = g.t_us.size
    small = synthetic_gaze(1.0, 500.0, seed=1)
    t0 = time.perf_counter()
    for m in ("adaptive", "ivt"):
        detect_events(small.t_us, small.x_px, small.y_px, geometry=small.geometry, method=m)
    print(f"first fast-path calls (numba kernels loaded or compiled): {time.perf_counter() - t0:.2f} s wall")
    rows = []
    for engine in engines:
        for m in methods:

            def call(m: str = m, engine: str = engine) -> object:
                return detect_events(g.t_us, g.x_px, g.y_px, geometry=g.geometry, method=m, engine=engine)

            sec = best_of(call, args.repeats)
            rows.append(
                {
                    "path": "detect_events",
                    "engine": engine,
                    "method": m,
                    "samples": n,
                    "cpu_seconds": sec,
                    "Msamples_per_s": n / sec / 1e6,
                }
            )
    if not args.skip_trials:
        frame = trials_frame()
        for engine in engines:
            for m in methods:

                def call_trials(m: str = m, engine: str = engine) -> object:
                    return detect_trials(frame, g.geometry, method=m, engine=engine)

                sec = best_of(call_trials, args.repeats)
                rows.append(
                    {
                        "path": "detect_trials (1500 trials)",
                        "engine": engine,
                        "method": m,
                        "samples": len(frame),
                        "cpu_seconds": sec,
                        "Msamples_per_s": len(frame) / sec / 1e6,
                    }
                )
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
