"""Cross-part check: the demo's vendor exports read back to exactly the truth's sample keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from pov_pipeline.ingest import read_gaze, read_responses, read_session

demo = pytest.importorskip("pov_pipeline.demo")
pq = pytest.importorskip("pyarrow.parquet")


def test_demo_exports_match_truth(tmp_path: Path) -> None:
    summary = demo.generate_study(tmp_path, demo.DemoSize(4, 3, 1.0), seed=11)
    formats = set()
    for pid in summary.participant_ids:
        folder = tmp_path / "landing" / pid
        session = read_session(folder / "session.json")
        formats.add(session.format)
        result = read_gaze(folder / session.gaze_file, session, pid)
        frame = result.samples.to_pandas()
        truth = pq.read_table(folder / "truth" / "samples.parquet").to_pandas()
        got = set(zip(frame["trial"], frame["eye"], frame["t_us"], strict=True))
        want = set(zip(truth["trial"], truth["eye"], truth["t_us"], strict=True))
        assert got == want, pid
        merged = frame.merge(truth, on=["trial", "eye", "t_us"])
        # Only blinks and track loss may be invalid.
        assert set(merged.loc[~merged["valid"], "label"]) <= {"blink", "lost"}
        assert result.report["measured_rate_hz"] == pytest.approx(session.sampling_rate_hz, rel=0.01)
        responses = read_responses(folder / "responses.csv", pid)
        assert set(responses.column("trial").to_pylist()) == set(frame["trial"])
    assert formats >= {"eyelink_asc", "tobii_prolab_tsv"}
