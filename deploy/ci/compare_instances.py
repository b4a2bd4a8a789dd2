"""Time the small demo through a SQLite instance (profile local) and a PostgreSQL one (profile postgres).

Both runs do the same: a fresh lake (``DemoSize(2, 3, 1.0)``, seed 3), ``study_job`` and one
``participant_job`` run over both participants, each through ``dagster job execute`` with
``deploy/postgres/run_config_multiprocess.yaml``. PostgreSQL is a throw-away server on loopback
(``local_postgres.py``). Prints one line per profile and stage, in seconds of wall time::

    .venv/bin/python deploy/ci/compare_instances.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1]
ROOT = DEPLOY.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_postgres import find_postgres_bindir, postgres_server  # noqa: E402

RUN_CONFIG = DEPLOY / "postgres" / "run_config_multiprocess.yaml"
TIMEOUT_S = 600


def _dagster(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "job",
            "execute",
            "-m",
            "pov_pipeline.definitions",
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dagster {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def run_profile(profile: str, extra_env: dict[str, str], workdir: Path) -> dict[str, float]:
    """The demo through the instance of ``deploy/<profile>/dagster.yaml``; seconds per stage."""
    from pov_pipeline.demo import DemoSize, generate_study

    home, lake = workdir / f"{profile}_home", workdir / f"{profile}_lake"
    home.mkdir()
    shutil.copy(DEPLOY / profile / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        **extra_env,
        "DAGSTER_HOME": str(home),
        "POV_LAKE_DIR": str(lake),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    participants = list(generate_study(lake, DemoSize(2, 3, 1.0), seed=3).participant_ids)
    register = (
        "import sys\nfrom dagster import DagsterInstance\n"
        "with DagsterInstance.get() as i: i.add_dynamic_partitions('participants', sys.argv[1:])"
    )
    subprocess.run([sys.executable, "-c", register, *participants], env=env, check=True, timeout=120)
    tags = {
        "dagster/asset_partition_range_start": participants[0],
        "dagster/asset_partition_range_end": participants[-1],
    }
    seconds = {"study_job": _dagster(env, "-j", "study_job", "-c", str(RUN_CONFIG))}
    seconds["participant_job"] = _dagster(
        env, "-j", "participant_job", "-c", str(RUN_CONFIG), "--tags", json.dumps(tags)
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    bindir = find_postgres_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found; run deploy/ci/install_services.sh")
    with postgres_server(bindir) as server:
        for attempt in range(args.repeat):
            for profile, env in (("local", {}), ("postgres", server.env())):
                with tempfile.TemporaryDirectory(prefix="pov-compare-") as tmp:
                    if profile == "postgres":  # a fresh database per attempt, like a fresh SQLite home
                        con = server.connect("postgres")
                        with con.cursor() as cur:
                            cur.execute(f'DROP DATABASE IF EXISTS "{server.db_name}" WITH (FORCE)')
                            cur.execute(f'CREATE DATABASE "{server.db_name}"')
                        con.close()
                    for stage, value in run_profile(profile, env, Path(tmp)).items():
                        print(f"attempt {attempt + 1}  {profile:8s}  {stage:16s}  {value:6.1f} s", flush=True)


if __name__ == "__main__":
    main()
