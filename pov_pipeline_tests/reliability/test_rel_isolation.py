"""Failure isolation in Dagster: a bad participant fails only its own partitions.

A run over three participants (one single-run backfill) where p003's gaze file is broken: p001
and p002 are written and recorded as materialized, the step fails naming p003, the file and the
line, and a run over the good participants carries them through every downstream table.
"""

from __future__ import annotations

import pytest
from dagster import AssetKey, DagsterInstance
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pov_pipeline.definitions import build_definitions
from pov_pipeline.demo import DemoSize, generate_study
from pov_pipeline.ingest.study import read_aois, read_stimuli
from pov_pipeline.lake import LakePaths, connect_catalog, write_table
from pov_pipeline.orchestrate import QUIET_RUN_CONFIG
from pov_pipeline.partitions import participants_partitions

pytestmark = pytest.mark.slow


def _study_tables(paths: LakePaths) -> None:
    """stimuli and aois straight from the pure readers (the feature encoders are not needed here)."""
    stimuli = read_stimuli(paths.study)
    write_table(paths, "stimuli", stimuli)
    write_table(paths, "aois", read_aois(paths.study, set(stimuli.column("stimulus_id").to_pylist())))


def _run(defs, instance, first: str, last: str):
    job = defs.resolve_job_def("participant_job")
    return job.execute_in_process(
        instance=instance,
        run_config=QUIET_RUN_CONFIG,
        raise_on_error=False,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
    )


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory):
    lake = tmp_path_factory.mktemp("iso_lake")
    generate_study(lake, DemoSize(3, 3, 1.0), seed=3)
    paths = LakePaths(lake)
    _study_tables(paths)
    gaze = sorted((paths.landing / "p003").glob("gaze.*"))[0]
    lines = gaze.read_text().split("\n")
    # A sample row in the middle of the file gets a corrupt x coordinate.
    sample_rows = [i for i, line in enumerate(lines) if line[:1].isdigit()]
    bad_index = sample_rows[len(sample_rows) // 2]
    sep = "\t"
    fields = lines[bad_index].split(sep)
    x_col = _x_column(gaze)
    fields[x_col] = "9x9"
    lines[bad_index] = sep.join(fields)
    gaze.write_text("\n".join(lines))
    # p002 answers one trial fewer than it has gaze for: repaired, reported, not an error.
    responses = (paths.landing / "p002" / "responses.csv").read_text().strip().split("\n")
    (paths.landing / "p002" / "responses.csv").write_text("\n".join(responses[:-1]) + "\n")

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(participants_partitions.name, ["p001", "p002", "p003"])
    defs = build_definitions(str(lake))
    result = _run(defs, instance, "p001", "p003")
    yield paths, defs, instance, result, gaze, bad_index + 1
    instance.dispose()


def _x_column(gaze) -> int:
    """Index of the field the reader takes x from (ASC: 1; Pro Lab: 'Gaze point left X')."""
    if gaze.suffix == ".asc":
        return 1
    return gaze.read_text().split("\n")[0].split("\t").index("Gaze point left X")


def _failures(result) -> dict[str, str]:
    return {
        event.step_key: event.event_specific_data.error.message
        for event in result.all_events
        if event.is_step_failure
    }


def test_bad_participant_fails_the_run_naming_participant_file_and_line(broken_run):
    _paths, _defs, _instance, result, gaze, line = broken_run
    assert not result.success
    failures = _failures(result)
    assert set(failures) == {"raw_gaze"}
    message = failures["raw_gaze"]
    assert "1 of 3 participant(s) failed; 2 written" in message
    assert f"p003: GazeFormatError: {gaze.name} line {line}: expected a numeric x coordinate" in message
    assert "found '9x9'" in message


def test_good_participants_are_written_and_recorded_as_materialized(broken_run):
    paths, _defs, instance, _result, _gaze, _line = broken_run
    assert paths.table_file("raw_gaze", "p001").exists()
    assert paths.table_file("raw_gaze", "p002").exists()
    assert not paths.table_file("raw_gaze", "p003").exists()
    # sessions and responses do not depend on the broken file: all three partitions.
    for table in ("sessions", "responses"):
        assert all(paths.table_file(table, p).exists() for p in ("p001", "p002", "p003"))
    materialized = instance.get_materialized_partitions(AssetKey("raw_gaze"))
    assert materialized == {"p001", "p002"}
    with connect_catalog(paths) as con:
        rows = con.execute("SELECT DISTINCT participant FROM raw_gaze ORDER BY 1").fetchall()
    assert rows == [("p001",), ("p002",)]
    # Dagster 1.13 skips downstream steps of a failed step (no per-partition failure).
    assert not (paths.tables / "gaze_events").exists()


def test_a_run_over_the_good_participants_completes_downstream(broken_run):
    paths, defs, instance, _result, _gaze, _line = broken_run
    result = _run(defs, instance, "p001", "p002")
    assert result.success, _failures(result)
    check = next(
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == "trials_match_responses"
    )
    alignment = check.metadata["alignment"].value
    assert not check.passed
    assert alignment["p001"]["gaze_without_response"]["n"] == 0
    assert alignment["p002"]["gaze_without_response"]["n"] == 1
    with connect_catalog(paths) as con:
        rows = con.execute("SELECT DISTINCT participant FROM transitions ORDER BY 1").fetchall()
    assert rows == [("p001",), ("p002",)]


def test_fixing_the_file_lets_the_bad_participant_through(broken_run):
    _paths, defs, instance, _result, gaze, line = broken_run
    lines = gaze.read_text().split("\n")
    fields = lines[line - 1].split("\t")
    fields[_x_column(gaze)] = "960"
    lines[line - 1] = "\t".join(fields)
    gaze.write_text("\n".join(lines))
    result = _run(defs, instance, "p003", "p003")
    assert result.success, _failures(result)
    assert instance.get_materialized_partitions(AssetKey("raw_gaze")) == {"p001", "p002", "p003"}
