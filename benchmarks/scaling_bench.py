"""Executors and incremental cost on the paper-size lake (`make demo-paper` builds it).

Measures, through the real `dagster job execute` command against the lake's own instance:

1. the participant job over all participants of the lake, with the in-process executor;
2. the same with the multiprocess executor, 2 workers (forkserver preloading the code location);
3. the time to add one participant to the lake: the demo generator writes participant N+1 (the
   others stay byte-identical), the participant is added as a partition, and the participant job
   runs for that partition alone. Training is not included: the nightly schedule does it.

    .venv/bin/python benchmarks/scaling_bench.py [--lake build/paper_lake] [--skip-executors]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

IN_PROCESS = (
    "execution:\n  config:\n    in_process: {}\nloggers:\n  console:\n    config:\n      log_level: WARNING\n"
)


def _run_job(lake: Path, home: Path, run_config: Path, first: str, last: str) -> float:
    env = {
        **os.environ,
        "POV_LAKE_DIR": str(lake),
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
    }
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "job",
        "execute",
        "-m",
        "pov_pipeline.definitions",
        "-j",
        "participant_job",
        "-c",
        str(run_config),
        "--tags",
        json.dumps({RANGE_START: first, RANGE_END: last}),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"participant_job {first}..{last} failed (exit {result.returncode})")
    return seconds


def _remove_participant(lake: Path, home: Path, participant: str) -> None:
    """Put the lake back as `make demo-paper` left it (the bench's participant removed)."""
    import shutil

    from dagster import DagsterInstance

    from pov_pipeline.lake import LakePaths, refresh_catalog
    from pov_pipeline.partitions import participants_partitions

    paths = LakePaths(lake)
    shutil.rmtree(paths.landing / participant, ignore_errors=True)
    for table_dir in paths.tables.iterdir():
        shutil.rmtree(table_dir / f"participant={participant}", ignore_errors=True)
    refresh_catalog(paths)
    os.environ["DAGSTER_HOME"] = str(home)
    with DagsterInstance.get() as instance:
        instance.delete_dynamic_partition(participants_partitions.name, participant)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lake", default=str(ROOT / "build" / "paper_lake"))
    parser.add_argument("--skip-executors", action="store_true", help="only time adding one participant")
    args = parser.parse_args(argv)

    from dagster import DagsterInstance

    from pov_pipeline.automation import scan_landing
    from pov_pipeline.demo import SIZES, DemoSize, generate_study
    from pov_pipeline.partitions import participants_partitions

    lake = Path(args.lake).resolve()
    home = lake / ".dagster_home"
    participants = scan_landing(lake / "landing").ready
    if not participants or not (lake / "tables" / "transitions").is_dir():
        print(f"{lake} is not a materialized demo lake: run `make demo-paper` first", file=sys.stderr)
        return 2
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        in_process = Path(tmp) / "in_process.yaml"
        in_process.write_text(IN_PROCESS)
        multiprocess = ROOT / "deploy" / "postgres" / "run_config_multiprocess.yaml"
        if not args.skip_executors:
            n = len(participants)
            seconds = _run_job(lake, home, in_process, participants[0], participants[-1])
            rows.append((f"participant_job, {n} participants, in-process executor", f"{seconds:.1f} s"))
            print(rows[-1], flush=True)
            seconds = _run_job(lake, home, multiprocess, participants[0], participants[-1])
            label = f"participant_job, {n} participants, multiprocess executor (2 workers)"
            rows.append((label, f"{seconds:.1f} s"))
            print(rows[-1], flush=True)

        paper = SIZES["paper"]
        bigger = DemoSize(len(participants) + 1, paper.n_stimuli, paper.trial_duration_s)
        started = time.perf_counter()
        summary = generate_study(lake, bigger, seed=7)
        generation = time.perf_counter() - started
        new = summary.participant_ids[-1]
        os.environ["DAGSTER_HOME"] = str(home)
        with DagsterInstance.get() as instance:
            if new not in instance.get_dynamic_partitions(participants_partitions.name):
                instance.add_dynamic_partitions(participants_partitions.name, [new])
        seconds = _run_job(lake, home, in_process, new, new)
        label = f"add one participant ({new}) to a lake of {len(participants)}: participant_job"
        rows.append((label, f"{seconds:.1f} s"))
        rows.append(
            (
                "  (regenerating the demo landing folders for that, not part of the cost)",
                f"{generation:.1f} s",
            )
        )
        _remove_participant(lake, home, new)
    print()
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
