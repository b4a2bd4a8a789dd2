"""Per-core throughput of the post-detection gaze functions (quality, AOIs, dwell, sequences).

Usage::

    python benchmarks/aoi_stage_bench.py [--size small|paper] [--lake DIR] [--participants N]
                                         [--repeat R]

Uses the cached demo study of ``benchmarks/_common.ensure_study`` (``build/bench_lake_<size>``),
runs detection once per participant (not timed) and then times, single-threaded and as the gaze
assets call them, ``trial_quality`` + ``quality_flags``, ``map_fixations_to_aois`` (AOI table
given as a DataFrame, and prepared once with ``prepare_stimulus_aois``), ``dwell_metrics``,
``aoi_sequences`` and ``transition_table``. Rates are raw_gaze samples and fixations per CPU
second (best of ``--repeat`` passes).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    ensure_root_on_path,
    ensure_study,
    format_table,
    human_rate,
    limit_threads,
    match_pipeline_process,
)

limit_threads(1)
match_pipeline_process()
ensure_root_on_path()

import argparse  # noqa: E402
import time  # noqa: E402

from pov_pipeline.gaze.aoi import dwell_metrics, map_fixations_to_aois, prepare_stimulus_aois  # noqa: E402
from pov_pipeline.gaze.detection import DEFAULT_METHOD, detect_trials  # noqa: E402
from pov_pipeline.gaze.geometry import ScreenGeometry  # noqa: E402
from pov_pipeline.gaze.quality import quality_flags, trial_quality  # noqa: E402
from pov_pipeline.gaze.transitions import aoi_sequences, transition_table  # noqa: E402
from pov_pipeline.ingest import read_gaze, read_session  # noqa: E402
from pov_pipeline.ingest.study import read_aois  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "paper"), default="small")
    parser.add_argument("--lake", type=Path, default=None)
    parser.add_argument("--participants", type=int, default=6, help="first N participants (default 6)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    lake = ensure_study(args.size, args.lake)
    landing = lake / "landing"
    pids = sorted(p.name for p in landing.iterdir() if p.is_dir() and not p.name.startswith("."))
    pids = pids[: args.participants]
    aois = read_aois(lake / "study").to_pandas()
    data = []
    for pid in pids:
        session = read_session(landing / pid / "session.json")
        samples = read_gaze(landing / pid, session, pid).samples.to_pandas()
        geometry = ScreenGeometry.from_session(session)
        _, events = detect_trials(samples, geometry, method=DEFAULT_METHOD)
        fix = events[events["event"] == "fixation"]
        fix = fix.sort_values(["participant", "trial", "onset_ms"], kind="stable").reset_index(drop=True)
        fix["fixation_index"] = fix.groupby(["participant", "trial"]).cumcount().astype("int32")
        data.append((session, geometry, samples, fix))
    n_samples = sum(len(d[2]) for d in data)
    n_fix = sum(len(d[3]) for d in data)
    print(f"{len(pids)} participants, {n_samples:,} raw_gaze rows, {n_fix:,} fixations, {len(aois)} AOIs")

    prepared = prepare_stimulus_aois(aois)
    stages = {
        "quality (trial_quality + flags)": lambda s, g, smp, fx, hits: quality_flags(
            trial_quality(
                smp,
                screen_px=s.screen_px,
                screen_mm=s.screen_mm,
                viewing_distance_mm=s.viewing_distance_mm,
            ),
            expected_sampling_rate_hz=float(s.sampling_rate_hz),
        ),
        "map_fixations_to_aois (table)": lambda s, g, smp, fx, hits: map_fixations_to_aois(
            fx, aois, screen_px=s.screen_px, deg_per_px=g.deg_per_px
        ),
        "map_fixations_to_aois (prepared)": lambda s, g, smp, fx, hits: map_fixations_to_aois(
            fx, prepared, screen_px=s.screen_px, deg_per_px=g.deg_per_px
        ),
        "dwell_metrics": lambda s, g, smp, fx, hits: dwell_metrics(hits),
        "aoi_sequences": lambda s, g, smp, fx, hits: aoi_sequences(hits),
        "transition_table": lambda s, g, smp, fx, hits: transition_table(hits),
    }
    hits_of = [
        map_fixations_to_aois(fx, aois, screen_px=s.screen_px, deg_per_px=g.deg_per_px)
        for s, g, _, fx in data
    ]
    rows = []
    total = 0.0
    for name, fn in stages.items():
        best = float("inf")
        for _ in range(args.repeat):
            cpu = time.process_time()
            for (s, g, smp, fx), hits in zip(data, hits_of, strict=True):
                fn(s, g, smp, fx, hits)
            best = min(best, time.process_time() - cpu)
        if name != "map_fixations_to_aois (prepared)":
            total += best
        rows.append([name, f"{best:.3f}", human_rate(n_samples / best), human_rate(n_fix / best)])
    rows.append(
        [
            "all of the above (table AOIs)",
            f"{total:.3f}",
            human_rate(n_samples / total),
            human_rate(n_fix / total),
        ]
    )
    print(format_table(["function", "CPU s", "samples/s", "fixations/s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
