"""Tick time of ``participants_sensor`` over a landing folder of 5,000 participants.

Usage::

    python benchmarks/sensor_bench.py [--participants 5000] [--steady-ticks 5]
                                      [--instance sqlite|ephemeral|both]

Writes N complete participant folders (``session.json``, ``responses.csv``, ``gaze.asc``, each a
few bytes) into a temporary lake, then on a fresh Dagster instance (a temporary SQLite instance,
as ``$DAGSTER_HOME`` uses, and/or the in-memory ephemeral one) times:

- the first tick, which finds all N folders new: the sensor's evaluation (scan + the instance's
  known partitions + N run requests), and separately applying its ``dynamic_partitions_requests``
  to the instance as the daemon does;
- the steady-state tick once all N are known (a ``SkipReason``), repeated; target < 1 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_root_on_path

ensure_root_on_path()

from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context  # noqa: E402

from pov_pipeline.automation import participants_sensor, scan_landing  # noqa: E402
from pov_pipeline.partitions import participants_partitions  # noqa: E402
from pov_pipeline.resources import LakeResource  # noqa: E402

TARGET_STEADY_S = 1.0


def make_landing(lake: Path, n: int) -> list[str]:
    """N complete, tiny participant deliveries under ``lake/landing``."""
    landing = lake / "landing"
    landing.mkdir(parents=True)
    ids = [f"p{k:05d}" for k in range(1, n + 1)]
    for pid in ids:
        folder = landing / pid
        folder.mkdir()
        (folder / "session.json").write_text(json.dumps({"participant_id": pid}))
        (folder / "responses.csv").write_text("trial,stimulus_id,response,rt_ms\n")
        (folder / "gaze.asc").write_text("** bench\n")
    return ids


def tick(instance: DagsterInstance, lake: Path) -> tuple[SensorResult | SkipReason, float]:
    """One sensor evaluation and its wall time (context construction included)."""
    started = time.perf_counter()
    context = build_sensor_context(instance=instance, resources={"lake": LakeResource(lake_dir=str(lake))})
    result = participants_sensor(context)
    return result, time.perf_counter() - started


def bench_instance(kind: str, lake: Path, n: int, steady_ticks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pov-sensor-home-") as home:
        instance = DagsterInstance.ephemeral() if kind == "ephemeral" else DagsterInstance.local_temp(home)
        with instance:
            first, first_s = tick(instance, lake)
            if not isinstance(first, SensorResult) or len(first.run_requests or []) != n:
                raise RuntimeError(f"first tick: expected {n} run requests, got {first!r:.200}")
            started = time.perf_counter()
            for request in first.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            apply_s = time.perf_counter() - started
            known = instance.get_dynamic_partitions(participants_partitions.name)
            if len(known) != n:
                raise RuntimeError(f"expected {n} partitions after the first tick, found {len(known)}")
            steady = []
            for _ in range(steady_ticks):
                result, seconds = tick(instance, lake)
                if not isinstance(result, SkipReason):
                    raise RuntimeError(f"steady tick: expected a SkipReason, got {result!r:.200}")
                steady.append(seconds)
    return {
        "first_tick_s": first_s,
        "apply_partitions_s": apply_s,
        "steady_median_s": statistics.median(steady),
        "steady_max_s": max(steady),
        "skip_reason": result.skip_message or "",  # type: ignore[dict-item]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=5000)
    parser.add_argument("--steady-ticks", type=int, default=5)
    parser.add_argument("--instance", choices=("sqlite", "ephemeral", "both"), default="both")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "ephemeral"] if args.instance == "both" else [args.instance]
    # The sensor logs the first 20 new ids at INFO; that line is noise in a benchmark.
    logging.disable(logging.INFO)
    ok = True
    with tempfile.TemporaryDirectory(prefix="pov-sensor-lake-") as tmp:
        lake = Path(tmp)
        started = time.perf_counter()
        make_landing(lake, args.participants)
        print(f"{args.participants:,} participant folders written in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        scan = scan_landing(lake / "landing")
        print(f"scan_landing alone: {time.perf_counter() - started:.3f} s ({len(scan.ready):,} ready)")
        for kind in kinds:
            r = bench_instance(kind, lake, args.participants, args.steady_ticks)
            print(f"\n{kind} instance:")
            n = f"{args.participants:,}"
            print(f"  first tick ({n} new partitions and run requests): {r['first_tick_s']:.3f} s")
            print(f"  applying its dynamic_partitions_requests:          {r['apply_partitions_s']:.3f} s")
            print(
                f"  steady-state tick (all {n} known), {args.steady_ticks} ticks: "
                f"median {r['steady_median_s']:.3f} s, max {r['steady_max_s']:.3f} s"
            )
            print(f"  skip reason: {r['skip_reason']}")
            met = r["steady_max_s"] < TARGET_STEADY_S
            ok &= met
            print(f"  target steady tick < {TARGET_STEADY_S:.0f} s: {'met' if met else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
