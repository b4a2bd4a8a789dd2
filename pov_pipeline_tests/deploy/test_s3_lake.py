"""The whole pipeline on an S3 lake: moto's S3 server on loopback, the small demo materialized through
Dagster into ``s3://…``, queried with ``pov sql``, and compared with the same demo in a local lake.

If the server cannot start the test fails with the reason (it is never skipped).
"""

from __future__ import annotations

import csv
import io
import time

import pytest
from dagster import DagsterInstance
from s3_loopback import start_moto_server, stop_server

from pov_pipeline.cli import main as pov
from pov_pipeline.definitions import build_definitions
from pov_pipeline.demo import generate_study
from pov_pipeline.lake import LakePaths, connect_catalog, read_table
from pov_pipeline.orchestrate import materialize_pipeline
from pov_pipeline.store import lake_root, upload_tree

pytestmark = pytest.mark.slow

BUCKET = "pov-e2e"
LAKE_URL = f"s3://{BUCKET}/studies/demo"
COMPARED_TABLES = ("raw_gaze", "fixations", "aoi_hits", "responses", "transitions", "text_features")


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    """The small demo materialized twice: in a local folder lake and in an S3 lake."""
    import s3fs

    work = tmp_path_factory.mktemp("s3_lake")
    proc, endpoint = start_moto_server(work / "moto.log")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.setenv("POV_STAGE_DIR", str(work / "stage"))
        mp.setenv("DAGSTER_HOME", str(work / "dagster_home"))
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            fs = s3fs.S3FileSystem()
            fs.mkdir(BUCKET)
            local = LakePaths(work / "local_lake")
            summary = generate_study(local.root, size="small", seed=7)
            started = time.perf_counter()
            with DagsterInstance.ephemeral() as instance:
                materialize_pipeline(build_definitions(str(local.root)), instance, local, progress=print)
            local_s = time.perf_counter() - started

            # The lab delivers into the bucket: landing/ and study/ are uploaded object by object.
            remote = LakePaths(lake_root(LAKE_URL))
            for sub in ("landing", "study"):
                upload_tree(local.root / sub, remote.root / sub)
            started = time.perf_counter()
            with DagsterInstance.ephemeral() as instance:
                defs = build_definitions(LAKE_URL)
                first = materialize_pipeline(defs, instance, remote, progress=print)
                s3_s = time.perf_counter() - started
                again = materialize_pipeline(defs, instance, remote, progress=print)
            print(f"local lake {local_s:.1f} s, S3 lake {s3_s:.1f} s")
            yield {
                "summary": summary,
                "local": local,
                "remote": remote,
                "first": first,
                "again": again,
                "fs": fs,
            }
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            stop_server(proc)


def _pov_sql(query: str, capsys) -> list[list[str]]:
    capsys.readouterr()
    assert pov(["--lake", LAKE_URL, "sql", query, "--format", "csv", "--max-rows", "100000"]) == 0
    return list(csv.reader(io.StringIO(capsys.readouterr().out)))


def test_every_stage_ran_on_s3_and_a_second_run_skips_everything(lakes):
    first, again, summary = lakes["first"], lakes["again"], lakes["summary"]
    assert first.participants_run == list(summary.participant_ids) and not first.failed_participants
    assert first.study_rebuilt and first.training_run
    # Fingerprints computed from the bucket match those recorded: nothing is stale.
    assert not again.study_rebuilt and again.participants_run == [] and not again.training_run


def test_pov_sql_counts_on_s3_equal_the_local_lake(lakes, capsys):
    with connect_catalog(lakes["local"]) as con:
        expected = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in COMPARED_TABLES}
    union = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in COMPARED_TABLES)
    rows = _pov_sql(union, capsys)
    assert {name: int(count) for name, count in rows[1:]} == expected
    assert expected["raw_gaze"] == lakes["summary"].n_samples
    vector = _pov_sql("SELECT typeof(vector) FROM text_features LIMIT 1", capsys)
    assert vector[1] == ["FLOAT[384]"]


def test_a_table_has_the_same_content_on_s3_and_locally(lakes):
    local = read_table(lakes["local"], "fixations").to_pandas()
    remote = read_table(lakes["remote"], "fixations").to_pandas()
    assert len(local) > 0
    assert local.equals(remote)


def test_outputs_live_under_the_prefix_and_no_partial_objects(lakes):
    fs = lakes["fs"]
    keys = fs.find(f"{BUCKET}/studies/demo")
    prefix = f"{BUCKET}/studies/demo/"
    top = {key[len(prefix) :].split("/", 1)[0] for key in keys}
    assert top == {"landing", "study", "tables", "cache", "models", "reports"}  # no pov.duckdb
    assert any(key.endswith("/report.html") for key in keys)
    assert any(key.endswith(".pt") for key in keys)
    assert any("/cache/features/text/" in key and key.endswith(".parquet") for key in keys)
    assert any("/tables/excluded_trials/" in key for key in keys)
    assert not [key for key in keys if key.endswith(".tmp") or "/." in key]


def test_pov_demo_generates_and_materializes_into_a_bucket(lakes, tmp_path, capsys):
    # `pov demo --lake s3://…` generates the study locally, uploads landing/ and study/, then runs the
    # same Dagster materialization; its sample count must equal the local lake's.
    url = f"s3://{BUCKET}/studies/cli-demo"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
        assert pov(["--lake", url, "demo", "--size", "small"]) == 0
        assert lakes["fs"].exists(f"{BUCKET}/studies/cli-demo/study/.demo.json")
        capsys.readouterr()
        assert pov(["--lake", url, "sql", "SELECT count(*) FROM raw_gaze", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert int(rows[1][0]) == lakes["summary"].n_samples
