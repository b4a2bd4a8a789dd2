"""Re-runs are byte-identical, and concurrent runs on different participants equal a sequential one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pov_pipeline.definitions import build_definitions
from pov_pipeline.demo import DemoSize, generate_study
from pov_pipeline.lake import LakePaths, connect_catalog
from pov_pipeline.orchestrate import QUIET_RUN_CONFIG
from pov_pipeline.partitions import participants_partitions

pytestmark = pytest.mark.slow

SIZE = DemoSize(2, 3, 1.0)
SEED = 21
ROOT = Path(__file__).resolve().parents[2]
STUDY_TABLES = ("stimuli", "aois", "text_features", "image_features")


def _materialize(lake: Path) -> LakePaths:
    """The study and participant stages, as ``pov materialize`` runs them (training is not a table
    under ``tables/`` and is left to the models' own tests)."""
    summary = generate_study(lake, SIZE, seed=SEED)
    first, last = summary.participant_ids[0], summary.participant_ids[-1]
    defs = build_definitions(str(lake))
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(participants_partitions.name, list(summary.participant_ids))
        for job, tags in (
            ("study_job", {}),
            (
                "participant_job",
                {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
            ),
        ):
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, tags=tags, run_config=QUIET_RUN_CONFIG
            )
            assert result.success
    return LakePaths(lake)


def _table_bytes(paths: LakePaths, only: tuple[str, ...] | None = None) -> dict[str, bytes]:
    return {
        str(p.relative_to(paths.tables)): p.read_bytes()
        for p in sorted(paths.tables.rglob("*.parquet"))
        if only is None or p.relative_to(paths.tables).parts[0] in only
    }


@pytest.fixture(scope="module")
def first_lake(tmp_path_factory) -> LakePaths:
    return _materialize(tmp_path_factory.mktemp("det_a"))


def test_two_fresh_runs_give_byte_identical_tables(first_lake, tmp_path):
    second = _materialize(tmp_path / "lake")
    a, b = _table_bytes(first_lake), _table_bytes(second)
    assert sorted(a) == sorted(b)
    assert len(a) >= 20  # study tables plus a dozen participant tables per participant
    differing = [name for name in a if a[name] != b[name]]
    assert differing == []


# The child builds the participant stage only: the same assets, job and resources as
# definitions.py, without importing the feature encoders (torch), which would triple its start-up.
_PARTICIPANT_RUN = """
import sys
from dagster import DagsterInstance, Definitions, load_asset_checks_from_modules, load_assets_from_modules
from pov_pipeline.assets import gaze, ingest, study
from pov_pipeline.jobs import participant_job
from pov_pipeline.lake import ParquetLakeIOManager
from pov_pipeline.orchestrate import QUIET_RUN_CONFIG
from pov_pipeline.resources import LakeResource
lake, participant = sys.argv[1], sys.argv[2]
modules = [study, ingest, gaze]
defs = Definitions(
    assets=load_assets_from_modules(modules),
    asset_checks=load_asset_checks_from_modules(modules),
    jobs=[participant_job],
    resources={"lake": LakeResource(lake_dir=lake), "lake_io_manager": ParquetLakeIOManager(lake_dir=lake)},
)
instance = DagsterInstance.get()
result = defs.resolve_job_def("participant_job").execute_in_process(
    instance=instance, partition_key=participant, run_config=QUIET_RUN_CONFIG, raise_on_error=False
)
sys.exit(0 if result.success else 1)
"""


def test_concurrent_runs_on_different_participants_equal_a_sequential_run(first_lake, tmp_path):
    # Same study and landing as the sequential lake; study tables copied (they are not under test).
    lake = tmp_path / "lake"
    shutil.copytree(first_lake.landing, lake / "landing")
    shutil.copytree(first_lake.study, lake / "study")
    for table in STUDY_TABLES:
        shutil.copytree(first_lake.tables / table, lake / "tables" / table)
    home = tmp_path / "dagster_home"
    home.mkdir()
    participants = sorted(p.name for p in first_lake.landing.iterdir())
    instance = DagsterInstance.local_temp(tempdir=str(home))
    instance.add_dynamic_partitions(participants_partitions.name, participants)
    instance.dispose()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PARTICIPANT_RUN, str(lake), participant],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for participant in participants
    ]
    outputs = [proc.communicate(timeout=300)[0].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * len(procs), [o[-2000:] for o in outputs]

    concurrent = LakePaths(lake)
    got = _table_bytes(concurrent)
    made = {name.split("/")[0] for name in got}
    assert {"raw_gaze", "sessions", "responses", "gaze_events", "fixations", "transitions"} <= made
    expected = _table_bytes(first_lake, tuple(made))
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if expected[name] != got[name]] == []
    with connect_catalog(concurrent) as con:
        assert con.execute("SELECT count(DISTINCT participant) FROM transitions").fetchall() == [(2,)]
