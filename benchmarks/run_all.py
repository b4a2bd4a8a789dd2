"""Run every benchmark of ``make bench`` in sequence and summarise their wall times.

Usage::

    python benchmarks/run_all.py [--quick] [--only NAME[,NAME...]] [--list]

Each benchmark runs as its own process with this interpreter (the project's venv under
``make bench``), its output streamed under a heading. ``--quick`` runs the gaze-stage benchmark
on the small demo study instead of the paper-size one. The exit status is non-zero when any
benchmark fails; missing optional benchmarks are reported as skipped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Bench:
    """One benchmark: a script in ``benchmarks/`` and its arguments (normal, quick)."""

    name: str
    script: str
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] | None = None
    optional: bool = False

    def argv(self, quick: bool) -> list[str]:
        args = self.quick_args if quick and self.quick_args is not None else self.args
        return [sys.executable, "-u", str(HERE / self.script), *args]


BENCHES: tuple[Bench, ...] = (
    Bench("lund", "lund_benchmark.py", ("--peers", "--generalization")),
    Bench("detection_speed", "detection_speed.py", optional=True),
    Bench("gaze_stage", "gaze_stage_bench.py", ("--size", "paper"), ("--size", "small")),
    Bench("drift", "drift_bench.py", ("--lake", "build/paper_lake"), ("--lake", "data_lake")),
    Bench("features", "features_bench.py"),
    Bench("sensor", "sensor_bench.py"),
    Bench("training", "training_bench.py", optional=True),
    Bench("scaling", "scaling_bench.py", optional=True),
)


def run_one(bench: Bench, quick: bool) -> tuple[str, float]:
    """Run one benchmark, streaming its output; returns (status, seconds)."""
    path = HERE / bench.script
    rule = "=" * 100
    command = " ".join([bench.script, *bench.argv(quick)[3:]])
    print(f"\n{rule}\n== {bench.name}: {command}\n{rule}", flush=True)
    if not path.is_file():
        if bench.optional:
            print(f"(skipped: {bench.script} does not exist)", flush=True)
            return "skipped", 0.0
        print(f"FAILED: {bench.script} does not exist", flush=True)
        return "missing", 0.0
    env = dict(os.environ)
    env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    # Output is inherited, not piped, so progress appears as the benchmark prints it.
    returncode = subprocess.call(bench.argv(quick), cwd=ROOT, env=env)
    seconds = time.perf_counter() - started
    status = "ok" if returncode == 0 else f"FAILED (exit {returncode})"
    print(f"-- {bench.name}: {status} in {seconds:.1f} s", flush=True)
    return status, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="gaze-stage benchmark on the small study")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for bench in BENCHES:
            state = "" if (HERE / bench.script).is_file() else "  (not present)"
            print(f"{bench.name:16s} {bench.script}{state}")
        return 0
    selected = list(BENCHES)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        by_name = {b.name: b for b in BENCHES} | {b.script.removesuffix(".py"): b for b in BENCHES}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}: expected some of {[b.name for b in BENCHES]}")
        selected = [by_name[n] for n in names]
    results = [(bench, *run_one(bench, args.quick)) for bench in selected]

    print(f"\n{'=' * 100}\nSummary{' (quick)' if args.quick else ''}:")
    for bench, status, seconds in results:
        print(f"  {bench.name:16s} {status:20s} {seconds:8.1f} s")
    total = sum(seconds for _, _, seconds in results)
    print(f"  {'total':16s} {'':20s} {total:8.1f} s")
    failed = [b.name for b, status, _ in results if status not in ("ok", "skipped")]
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
