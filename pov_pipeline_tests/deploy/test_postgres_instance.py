"""The demo materializes through a PostgreSQL-backed Dagster instance (profile ``deploy/postgres``).

A real server on 127.0.0.1 (``conftest.pg_server``). The study stage runs in process; the
participant stage runs as two ``dagster job execute`` processes at the same time, one partition
each, on the multiprocess executor with ``deploy/postgres/run_config_multiprocess.yaml``. Their
tables must equal, byte for byte, those of a sequential in-process run into another lake, and the
runs and materializations must be recorded in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pov_pipeline.definitions import build_definitions
from pov_pipeline.demo import DemoSize, generate_study
from pov_pipeline.gaze.detection import detect_trials
from pov_pipeline.gaze.geometry import ScreenGeometry
from pov_pipeline.ingest import read_gaze, read_session
from pov_pipeline.lake import LakePaths
from pov_pipeline.orchestrate import QUIET_RUN_CONFIG
from pov_pipeline.partitions import participants_partitions

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "deploy" / "postgres"
SIZE = DemoSize(2, 3, 1.0)
SEED = 3
STUDY_TABLES = ("stimuli", "aois", "text_features", "image_features")
RUN_TIMEOUT_S = 240
DAGSTER_CLI = Path(sys.executable).with_name("dagster")


def _table_bytes(paths: LakePaths, only: tuple[str, ...] | None = None) -> dict[str, bytes]:
    return {
        str(p.relative_to(paths.tables)): p.read_bytes()
        for p in sorted(paths.tables.rglob("*.parquet"))
        if only is None or p.relative_to(paths.tables).parts[0] in only
    }


@pytest.fixture
def pg_home(pg_server, tmp_path, monkeypatch) -> Path:
    """A DAGSTER_HOME holding the postgres profile, its variables set for this process."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROFILE / "dagster.yaml", home / "dagster.yaml")
    for key, value in pg_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_profile_gives_a_postgres_instance_with_a_run_queue(pg_home):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    with DagsterInstance.from_config(str(pg_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = instance.run_coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs == 4
        limits = {
            (limit["key"], limit.get("value")): limit["limit"] for limit in queue.tag_concurrency_limits
        }
        assert limits[("pov/stage", "encoders")] == 1
        assert not instance.telemetry_enabled


def _participant_run(env: dict[str, str], participant: str, cwd: Path) -> subprocess.Popen:
    tags = {ASSET_PARTITION_RANGE_START_TAG: participant, ASSET_PARTITION_RANGE_END_TAG: participant}
    return subprocess.Popen(
        [
            str(DAGSTER_CLI),
            "job",
            "execute",
            "-m",
            "pov_pipeline.definitions",
            "-j",
            "participant_job",
            "-c",
            str(PROFILE / "run_config_multiprocess.yaml"),
            "--tags",
            json.dumps(tags),
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _warm_compiled_kernels(folder: Path, participant: str) -> None:
    """Compile (or load) the readers' and detectors' numba kernels once, in this process.

    A fresh checkout has no numba cache: the step processes of the two concurrent runs below
    would each compile the same kernels at once (as a deployment does only on its first run),
    which on a loaded 2-core machine can take most of the runs' time limit.
    """
    session = read_session(folder / "session.json")
    samples = read_gaze(folder, session, participant).samples.to_pandas()
    geometry = ScreenGeometry.from_session(session)
    detect_trials(samples, geometry)


def test_demo_through_postgres_with_concurrent_multiprocess_runs_equals_a_sequential_run(
    pg_server, pg_home, tmp_path
):
    lake = tmp_path / "lake"
    summary = generate_study(lake, SIZE, seed=SEED)
    participants = list(summary.participant_ids)
    assert len(participants) == 2

    with DagsterInstance.from_config(str(pg_home)) as instance:
        instance.add_dynamic_partitions(participants_partitions.name, participants)
        study = build_definitions(str(lake)).resolve_job_def("study_job")
        assert study.execute_in_process(instance=instance, run_config=QUIET_RUN_CONFIG).success

    _warm_compiled_kernels(lake / "landing" / participants[0], participants[0])
    env = {
        **os.environ,
        **pg_server.env(),
        "DAGSTER_HOME": str(pg_home),
        "POV_LAKE_DIR": str(lake),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    started = time.perf_counter()
    procs = [_participant_run(env, participant, ROOT) for participant in participants]
    outputs: list[str] = []
    try:
        for proc in procs:
            remaining = max(1.0, RUN_TIMEOUT_S - (time.perf_counter() - started))
            outputs.append(proc.communicate(timeout=remaining)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert [proc.returncode for proc in procs] == [0, 0], [out[-3000:] for out in outputs]

    # Everything the runs did is in PostgreSQL.
    with contextlib.closing(pg_server.connect()) as con, con.cursor() as cur:
        cur.execute("SELECT run_id, pipeline_name, status, start_time, end_time FROM runs")
        runs = cur.fetchall()
        cur.execute(
            "SELECT r.run_id, t.value FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
            "WHERE r.pipeline_name = 'participant_job' AND t.key = %s",
            (ASSET_PARTITION_RANGE_START_TAG,),
        )
        partition_of_run = dict(cur.fetchall())
        cur.execute(
            "SELECT DISTINCT partition FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = %s",
            (json.dumps(["transitions"]),),
        )
        materialized = sorted(row[0] for row in cur.fetchall())
    by_job: dict[str, list[tuple]] = {}
    for run in runs:
        by_job.setdefault(run[1], []).append(run)
    assert sorted(by_job) == ["participant_job", "study_job"]
    assert {run[2] for run in runs} == {"SUCCESS"}
    participant_runs = by_job["participant_job"]
    assert sorted(partition_of_run.values()) == participants
    assert materialized == participants
    # The two runs really ran at the same time: each started before the other ended.
    (_, _, _, start_a, end_a), (_, _, _, start_b, end_b) = participant_runs
    assert start_a < end_b and start_b < end_a, participant_runs

    # The same participants, sequentially and in process, into another lake.
    reference = tmp_path / "reference"
    generate_study(reference, SIZE, seed=SEED)
    for table in STUDY_TABLES:
        shutil.copytree(lake / "tables" / table, reference / "tables" / table)
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(participants_partitions.name, participants)
        result = (
            build_definitions(str(reference))
            .resolve_job_def("participant_job")
            .execute_in_process(
                instance=instance,
                run_config=QUIET_RUN_CONFIG,
                tags={
                    ASSET_PARTITION_RANGE_START_TAG: participants[0],
                    ASSET_PARTITION_RANGE_END_TAG: participants[-1],
                },
            )
        )
        assert result.success

    got = _table_bytes(LakePaths(lake))
    made = {name.split("/")[0] for name in got} - set(STUDY_TABLES)
    assert {
        "raw_gaze",
        "sessions",
        "responses",
        "gaze_events",
        "fixations",
        "aoi_hits",
        "transitions",
    } <= made
    expected = _table_bytes(LakePaths(reference))
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if expected[name] != got[name]] == []
