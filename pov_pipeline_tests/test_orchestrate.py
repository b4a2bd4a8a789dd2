"""`pov materialize` with one broken delivery: the others go all the way, the broken one is named."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance

from pov_pipeline.definitions import build_definitions
from pov_pipeline.demo import DemoSize, generate_study
from pov_pipeline.lake import LakePaths, connect_catalog
from pov_pipeline.orchestrate import materialize_pipeline

pytestmark = pytest.mark.slow


def test_a_broken_participant_fails_alone_and_training_covers_the_rest(tmp_path):
    summary = generate_study(tmp_path, DemoSize(3, 3, 1.5), seed=5)
    broken = summary.participant_ids[0]  # odd participants deliver EyeLink ASC
    gaze = tmp_path / "landing" / broken / "gaze.asc"
    lines = gaze.read_bytes().splitlines(keepends=True)
    # Corrupt a sample line in the middle: a non-numeric coordinate.
    middle = len(lines) // 2
    while not lines[middle][:1].isdigit():
        middle += 1
    fields = lines[middle].split(b"\t")
    fields[1] = b"abc"
    lines[middle] = b"\t".join(fields)
    gaze.write_bytes(b"".join(lines))

    paths = LakePaths(tmp_path)
    with DagsterInstance.ephemeral() as instance:
        run = materialize_pipeline(
            build_definitions(str(tmp_path)), instance, paths, progress=lambda _m: None
        )
    assert list(run.failed_participants) == [broken]
    assert gaze.name in run.failed_participants[broken] and "line" in run.failed_participants[broken]
    with connect_catalog(paths) as con:
        done = [
            r[0] for r in con.execute("SELECT DISTINCT participant FROM transitions ORDER BY 1").fetchall()
        ]
        trained = [
            r[0]
            for r in con.execute("SELECT DISTINCT participant FROM training_examples ORDER BY 1").fetchall()
        ]
    good = [p for p in summary.participant_ids if p != broken]
    assert done == good
    assert trained == good
