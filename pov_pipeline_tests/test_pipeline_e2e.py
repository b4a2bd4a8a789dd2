"""End to end: a small demo study materialized in-process into a tmp_path lake, queried with DuckDB."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from pov_pipeline.definitions import build_definitions
from pov_pipeline.demo import DemoSize, generate_study
from pov_pipeline.lake import LakePaths, connect_catalog
from pov_pipeline.orchestrate import materialize_pipeline
from pov_pipeline.schemas import SAMPLE_LABELS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    summary = generate_study(lake, DemoSize(3, 4, 2.0), seed=11)
    paths = LakePaths(lake)
    defs = build_definitions(str(lake))
    instance = DagsterInstance.ephemeral()
    first = materialize_pipeline(defs, instance, paths, progress=lambda _m: None)
    yield summary, paths, defs, instance, first
    instance.dispose()


def _query(paths: LakePaths, sql: str) -> list[tuple]:
    with connect_catalog(paths) as con:
        return con.execute(sql).fetchall()


def test_every_participant_is_processed_and_raw_gaze_matches_the_generator(pipeline):
    summary, paths, _defs, _instance, first = pipeline
    assert first.participants_run == list(summary.participant_ids)
    assert _query(paths, "SELECT count(*) FROM raw_gaze") == [(summary.n_samples,)]
    per_participant = _query(
        paths, "SELECT participant, count(DISTINCT trial) FROM raw_gaze GROUP BY 1 ORDER BY 1"
    )
    assert per_participant == [(p, summary.n_stimuli) for p in summary.participant_ids]
    assert (paths.tables / "raw_gaze" / "participant=p001" / "part-0.parquet").exists()


def test_gaze_tables_are_consistent(pipeline):
    _summary, paths, *_ = pipeline
    # Every trial has fixations, each mapped to exactly one AOI.
    assert (
        _query(paths, "SELECT count(*) FROM (SELECT participant, trial FROM fixations GROUP BY 1, 2)")[0][0]
        == 12
    )
    assert _query(paths, "SELECT count(*) FROM fixations") == _query(paths, "SELECT count(*) FROM aoi_hits")
    # Row-normalised transition probabilities sum to one per source AOI.
    sums = _query(
        paths,
        "SELECT max(abs(s - 1)) FROM "
        "(SELECT sum(prob) AS s FROM transitions GROUP BY participant, trial, from_aoi)",
    )
    assert sums[0][0] < 1e-9
    # Labels cover every sample of the selected signal.
    labels = set(x[0] for x in _query(paths, "SELECT DISTINCT label FROM sample_labels"))
    assert labels <= set(SAMPLE_LABELS) and "fixation" in labels and "saccade" in labels


def test_detection_agrees_with_the_generators_truth(pipeline):
    summary, paths, *_ = pipeline
    from sklearn.metrics import cohen_kappa_score

    kappas = []
    for participant in summary.participant_ids:
        truth = pq.read_table(paths.landing / participant / "truth" / "samples.parquet").to_pandas()
        found = pq.read_table(paths.table_file("sample_labels", participant)).to_pandas()
        # Binocular recordings are averaged into one signal: compare with one eye's truth.
        truth = truth[truth["eye"] == truth["eye"].iloc[0]]
        merged = truth.merge(found, on=["trial", "t_us"], suffixes=("_truth", "_found"))
        assert len(merged) == len(truth)
        kappas.append(
            cohen_kappa_score(merged["label_truth"] == "fixation", merged["label_found"] == "fixation")
        )
    assert np.mean(kappas) > 0.75, kappas


def test_second_run_skips_everything(pipeline):
    _summary, paths, defs, instance, _first = pipeline
    again = materialize_pipeline(defs, instance, paths, progress=lambda _m: None)
    assert not again.study_rebuilt
    assert again.participants_run == []
    assert not again.training_run


def test_a_new_participant_runs_alone(pipeline, tmp_path):
    _summary, paths, defs, instance, _first = pipeline
    # Participants draw from their own random streams, so a larger study adds p004 and leaves
    # p001-p003 byte-identical.
    bigger = generate_study(paths.root, DemoSize(4, 4, 2.0), seed=11)
    assert bigger.participant_ids[-1] == "p004"
    before = paths.table_file("raw_gaze", "p001").read_bytes()
    run = materialize_pipeline(defs, instance, paths, progress=lambda _m: None)
    assert run.participants_run == ["p004"]
    assert paths.table_file("raw_gaze", "p001").read_bytes() == before
    assert _query(paths, "SELECT count(DISTINCT participant) FROM transitions") == [(4,)]
