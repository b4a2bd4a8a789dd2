"""The lake: atomic Parquet writes in Hive layout and the DuckDB catalog over them."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pov_pipeline.lake import (
    LakePaths,
    connect_catalog,
    read_table,
    refresh_catalog,
    table_row_counts,
    write_parquet_atomic,
    write_table,
)
from pov_pipeline.schemas import RESPONSES


def _responses(participant: str, n: int) -> pa.Table:
    return pa.table(
        {
            "participant": [participant] * n,
            "trial": list(range(1, n + 1)),
            "stimulus_id": [f"s{i}" for i in range(n)],
            "response": ["yes"] * n,
            "rt_ms": [1000.0] * n,
        }
    )


def test_partitioned_write_uses_hive_layout_and_catalog_queries_it(tmp_path):
    paths = LakePaths(tmp_path)
    both = pa.concat_tables([_responses("p1", 3), _responses("p2", 2)])
    written = write_table(paths, "responses", both, ["p1", "p2"])
    assert written["p1"] == tmp_path / "tables/responses/participant=p1/part-0.parquet"
    assert pq.read_table(written["p2"]).num_rows == 2
    assert pq.read_schema(written["p1"]).field("trial").type == pa.int32()  # cast to RESPONSES
    refresh_catalog(paths)
    with connect_catalog(paths) as con:
        rows = con.execute("SELECT participant, count(*) FROM responses GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("p1", 3), ("p2", 2)]
    # The catalog is an ordinary DuckDB file, readable without our code.
    con = duckdb.connect(str(paths.catalog), read_only=True)
    assert con.execute("SELECT count(*) FROM responses").fetchall() == [(5,)]
    con.close()
    assert table_row_counts(paths) == {"responses": 5}


def test_rewriting_a_partition_leaves_the_others_untouched(tmp_path):
    paths = LakePaths(tmp_path)
    write_table(
        paths, "responses", pa.concat_tables([_responses("p1", 3), _responses("p2", 2)]), ["p1", "p2"]
    )
    before = paths.table_file("responses", "p2").read_bytes()
    write_table(paths, "responses", _responses("p1", 1), ["p1"])
    assert paths.table_file("responses", "p2").read_bytes() == before
    assert read_table(paths, "responses").num_rows == 3


def test_rows_outside_the_run_partitions_are_refused(tmp_path):
    with pytest.raises(ValueError, match="outside this run"):
        write_table(LakePaths(tmp_path), "responses", _responses("p9", 1), ["p1"])


@pytest.mark.parametrize("bad", ["../evil", "a b", "", "x" * 65, "p1/..", "é"])
def test_partition_keys_are_validated_before_they_touch_a_path(tmp_path, bad):
    with pytest.raises(ValueError, match="invalid participant id"):
        LakePaths(tmp_path).table_file("responses", bad)
    assert not (tmp_path / "evil").exists()


def test_same_rows_give_byte_identical_files(tmp_path):
    paths = LakePaths(tmp_path)
    write_table(paths, "responses", _responses("p1", 4), ["p1"])
    first = paths.table_file("responses", "p1").read_bytes()
    write_table(paths, "responses", _responses("p1", 4).to_pandas(), ["p1"])
    assert paths.table_file("responses", "p1").read_bytes() == first


def test_failed_write_leaves_previous_file_and_no_temp_files(tmp_path):
    target = tmp_path / "t" / "part-0.parquet"
    write_parquet_atomic(RESPONSES.empty_table(), target)
    good = target.read_bytes()

    with pytest.raises(AttributeError):
        write_parquet_atomic("not a table", target)  # type: ignore[arg-type]
    assert target.read_bytes() == good
    assert [p.name for p in target.parent.iterdir()] == ["part-0.parquet"]


def test_unpartitioned_table_and_missing_table(tmp_path):
    paths = LakePaths(tmp_path)
    write_table(paths, "stimuli_like", pa.table({"a": [1, 2]}))
    assert read_table(paths, "stimuli_like").num_rows == 2
    with pytest.raises(FileNotFoundError):
        read_table(paths, "never_written")


def test_vector_columns_are_duckdb_arrays_in_the_catalog(tmp_path):
    paths = LakePaths(tmp_path)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array([1, 0, 0, 1, 1, 1], pa.float32()), 2)
    write_table(paths, "text_features", pa.table({"stimulus_id": ["a", "b", "c"], "vector": vectors}))
    refresh_catalog(paths)
    with connect_catalog(paths) as con:
        rows = con.execute(
            "SELECT b.stimulus_id, round(array_cosine_similarity(a.vector, b.vector), 4) "
            "FROM text_features a JOIN text_features b ON a.stimulus_id = 'a' AND b.stimulus_id != 'a' "
            "ORDER BY 1"
        ).fetchall()
    assert rows == [("b", 0.0), ("c", pytest.approx(0.7071, abs=1e-4))]


def test_interleaved_rows_are_split_in_their_order(tmp_path):
    paths = LakePaths(tmp_path)
    mixed = pa.concat_tables([_responses("p2", 2), _responses("p1", 3), _responses("p2", 1)])
    written = write_table(paths, "responses", mixed, ["p1", "p2", "p3"])
    p2 = pq.read_table(written["p2"])
    assert p2.column("trial").to_pylist() == [1, 2, 1]
    assert pq.read_table(written["p1"]).column("trial").to_pylist() == [1, 2, 3]
    # A listed participant without rows gets an empty file.
    assert pq.read_table(written["p3"]).num_rows == 0


def test_only_participants_that_occur_are_reported_outside_the_run(tmp_path):
    # A dictionary may hold values no row uses (a filtered column): they are not rows outside.
    rows = _responses("p1", 2)
    column = pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()), pa.array(["p1", "p7"]))
    rows = rows.set_column(0, "participant", column)
    written = write_table(LakePaths(tmp_path), "responses", rows, ["p1"])
    assert pq.read_table(written["p1"]).num_rows == 2
    with_null = _responses("p1", 2).set_column(0, "participant", pa.array(["p1", None]))
    with pytest.raises(ValueError, match=r"outside this run: \[None\]"):
        write_table(LakePaths(tmp_path), "responses", with_null, ["p1"])


def test_sample_labels_are_dictionary_encoded_and_old_string_files_still_read(tmp_path):
    paths = LakePaths(tmp_path)
    frame = pd.DataFrame(
        {
            "participant": pd.Categorical(["p1", "p1", "p2"]),
            "trial": np.array([1, 1, 1], dtype=np.int32),
            "stimulus_id": pd.Categorical(["s1", "s1", "s2"]),
            "t_us": np.array([0, 2000, 0], dtype=np.int64),
            "eye": pd.Categorical(["left", "left", "right"]),
            "label": pd.Categorical(["fixation", "saccade", "fixation"]),
        }
    )
    written = write_table(paths, "sample_labels", frame, ["p1", "p2"])
    stored = pq.read_table(written["p1"])
    assert pa.types.is_dictionary(stored.schema.field("label").type)
    # Each file's dictionaries hold only the values its rows use, not the whole run's.
    assert stored.column("participant").chunk(0).dictionary.to_pylist() == ["p1"]
    assert stored.column("label").chunk(0).dictionary.to_pylist() == ["fixation", "saccade"]
    assert stored.column("label").to_pylist() == ["fixation", "saccade"]
    # A file from before the change, with plain strings, is read as the current schema.
    old = pa.table(
        {
            "participant": ["p3"],
            "trial": pa.array([1], pa.int32()),
            "stimulus_id": ["s1"],
            "t_us": pa.array([0], pa.int64()),
            "eye": ["left"],
            "label": ["blink"],
        }
    )
    write_parquet_atomic(old, paths.table_file("sample_labels", "p3"))
    table = read_table(paths, "sample_labels")
    assert table.num_rows == 4
    assert table.column("label").to_pylist() == ["fixation", "saccade", "fixation", "blink"]
    refresh_catalog(paths)
    with connect_catalog(paths) as con:
        rows = con.sql("SELECT typeof(label), count(*) FROM sample_labels GROUP BY ALL").fetchall()
    assert rows == [("VARCHAR", 4)]
