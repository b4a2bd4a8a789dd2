"""The lake on an object store: root URL parsing, whole-object writes, reads, listings, staging and
DuckDB views, against a real S3 API (moto's server on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from s3_loopback import start_moto_server, stop_server

from pov_pipeline.atomic import atomic_write, write_bytes_atomic, write_parquet_atomic
from pov_pipeline.store import lake_root, list_dir, mirrored, read_bytes, read_parquet, stage

BUCKET = "pov-unit"


# --------------------------------------------------------------------------------------------
# URL parsing (no server needed)


def test_a_folder_root_is_a_resolved_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lake_root("lake") == tmp_path / "lake"
    assert type(lake_root("lake")) is type(Path("x"))
    assert lake_root(f"file://{tmp_path}/lake") == tmp_path / "lake"
    assert lake_root(tmp_path / "lake") == tmp_path / "lake"


def test_an_s3_url_root_is_a_upath_without_trailing_slash():
    root = lake_root("s3://bucket/some/prefix/")
    assert not isinstance(root, Path)
    assert root.protocol == "s3"
    assert str(root) == "s3://bucket/some/prefix"
    assert str(root / "tables" / "raw_gaze") == "s3://bucket/some/prefix/tables/raw_gaze"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "expected a bucket"),
        ("s3://AKIA:secret@bucket/lake", "credentials do not belong in the URL"),
        ("ftp://host/lake", "found scheme 'ftp'"),
        ("sftp://host/lake", "found scheme 'sftp'"),
        ("s3://bucket/lake?versionId=1", "expected no query"),
    ],
)
def test_bad_lake_urls_are_refused_with_the_reason(url, message):
    with pytest.raises(ValueError, match=message):
        lake_root(url)


def test_lake_paths_and_default_lake_dir_follow_a_url(monkeypatch):
    from pov_pipeline.lake import LakePaths, default_lake_dir

    monkeypatch.setenv("POV_LAKE_DIR", "s3://bucket/lake")
    paths = LakePaths(default_lake_dir())
    assert str(paths.table_file("raw_gaze", "p001")) == (
        "s3://bucket/lake/tables/raw_gaze/participant=p001/part-0.parquet"
    )
    assert str(paths.landing / "p001") == "s3://bucket/lake/landing/p001"
    from pov_pipeline.features import feature_cache_dir

    assert str(feature_cache_dir("s3://bucket/lake", "text")) == "s3://bucket/lake/cache/features/text"


def test_the_local_path_never_imports_fsspec_backends(tmp_path):
    code = (
        "import sys; import pyarrow as pa\n"
        "from pov_pipeline.store import lake_root\n"
        "from pov_pipeline.atomic import write_parquet_atomic\n"
        "from pov_pipeline.store import read_parquet, stage\n"
        f"root = lake_root({str(tmp_path)!r})\n"
        "write_parquet_atomic(pa.table({'a': [1]}), root / 't' / 'part-0.parquet')\n"
        "assert read_parquet(root / 't' / 'part-0.parquet').num_rows == 1\n"
        "assert stage(root) == root\n"
        "print(sorted(m for m in ('upath', 's3fs', 'aiobotocore') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# A real S3 API on loopback


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[object]:
    """An S3 endpoint with an empty bucket; the env points s3fs at it. Yields an S3FileSystem."""
    import s3fs  # the s3 extra; missing it fails the tests, as a server that does not start does

    work = tmp_path_factory.mktemp("s3")
    proc, endpoint = start_moto_server(work / "moto.log")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(key, raising=False)
        mp.setenv("POV_STAGE_DIR", str(work / "stage"))
        s3fs.S3FileSystem.clear_instance_cache()  # a cached client would keep an old endpoint
        try:
            fs = s3fs.S3FileSystem()
            fs.mkdir(BUCKET)
            yield fs
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            stop_server(proc)


def _url(name: str) -> str:
    return f"s3://{BUCKET}/{name}"


def test_parquet_round_trip_through_one_object(s3):
    table = pa.table({"a": np.arange(1000, dtype=np.int64), "b": np.linspace(0, 1, 1000)})
    path = lake_root(_url("rt")) / "t" / "part-0.parquet"
    assert write_parquet_atomic(table, path) == path
    assert read_parquet(path).equals(table)
    assert s3.info(path.path)["size"] > 0


def test_a_failed_serialization_leaves_no_object(s3):
    path = lake_root(_url("fail")) / "x.bin"

    def write(fh):
        fh.write(b"half of it")
        raise RuntimeError("serializer died")

    with pytest.raises(RuntimeError, match="serializer died"):
        atomic_write(path, write)
    assert not path.exists()
    assert s3.find(f"{BUCKET}/fail") == []


def test_a_failed_rewrite_keeps_the_previous_object(s3):
    path = lake_root(_url("keep")) / "x.bin"
    write_bytes_atomic(b"version 1", path)

    def write(fh):
        fh.write(b"version 2, first half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, write)
    assert read_bytes(path) == b"version 1"


@pytest.mark.parametrize("pipe_max_bytes", [64 * 1024**2, 1024])
def test_no_half_object_is_visible_while_writing(s3, monkeypatch, pipe_max_bytes):
    # 1024: the large-object branch (upload from a temporary file).
    monkeypatch.setattr("pov_pipeline.atomic.PIPE_MAX_BYTES", pipe_max_bytes)
    path = lake_root(_url(f"visible{pipe_max_bytes}")) / "x.bin"
    write_bytes_atomic(b"old", path)
    seen_during_write = []

    def write(fh):
        fh.write(b"n" * 4000)
        seen_during_write.append(read_bytes(path))  # a reader in the middle of the write
        fh.write(b"e" * 4000)

    atomic_write(path, write)
    assert seen_during_write == [b"old"]
    assert read_bytes(path) == b"n" * 4000 + b"e" * 4000


def test_list_dir_and_stage_mirror_a_prefix(s3, tmp_path):
    root = lake_root(_url("stage")) / "study"
    write_bytes_atomic(b"a,b\n", root / "stimuli.csv")
    write_bytes_atomic(b"png1", root / "images" / "s1.png")
    write_bytes_atomic(b"png2", root / "images" / "s2.png")
    assert list_dir(root) == [("images", "dir"), ("stimuli.csv", "file")]
    local = stage(root)
    assert isinstance(local, Path) and local.is_relative_to(Path(os.environ["POV_STAGE_DIR"]))
    assert local.parts[-3:] == (BUCKET, "stage", "study")
    files = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}
    assert files == {"stimuli.csv": b"a,b\n", "images/s1.png": b"png1", "images/s2.png": b"png2"}
    # A changed and a removed object are reflected on the next call.
    write_bytes_atomic(b"png1 v2", root / "images" / "s1.png")
    s3.rm_file((root / "images" / "s2.png").path)
    local = stage(root)
    files = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}
    assert files == {"stimuli.csv": b"a,b\n", "images/s1.png": b"png1 v2"}
    # Top level only (a landing folder without its truth/).
    assert [p.name for p in stage(root, recursive=False).iterdir() if p.is_file()] == ["stimuli.csv"]
    # A local folder is its own stage.
    assert stage(tmp_path) == tmp_path


def test_mirrored_uploads_only_new_entries(s3):
    from pov_pipeline.features.cache import FeatureCache

    remote = lake_root(_url("cache")) / "features" / "text"
    FeatureCache(remote).put("words", "ab" * 32, pa.table({"v": [1.0]}))
    with mirrored(remote) as local:
        cache = FeatureCache(local)
        assert cache.get("words", "ab" * 32).column("v").to_pylist() == [1.0]
        cache.put("words", "cd" * 32, pa.table({"v": [2.0]}))
        (local / "weights_sha256_memo.json").write_text("{}")  # machine-specific, stays local
    remote_cache = FeatureCache(str(remote))
    assert remote_cache.has("words", "cd" * 32)
    assert remote_cache.get("words", "cd" * 32).column("v").to_pylist() == [2.0]
    assert not (remote / "weights_sha256_memo.json").exists()


def _vector_table(n: int, participant: str) -> pa.Table:
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(n * 3, dtype=np.float32)), 3)
    return pa.table({"participant": [participant] * n, "i": np.arange(n, dtype=np.int64), "vector": vectors})


def test_duckdb_views_over_s3_equal_those_over_a_local_lake(s3, tmp_path):
    from pov_pipeline.lake import LakePaths, connect_catalog, read_table, refresh_catalog, write_table

    local, remote = LakePaths(tmp_path), LakePaths(lake_root(_url("views")))
    for paths in (local, remote):
        frame = pa.concat_tables([_vector_table(3, "p1"), _vector_table(2, "p2")])
        write_table(paths, "vectors_by_participant", frame, ["p1", "p2"])
        write_table(paths, "vectors", _vector_table(4, "p0"))
        assert refresh_catalog(paths) == ["vectors", "vectors_by_participant"]
        assert read_table(paths, "vectors_by_participant").num_rows == 5
    assert not remote.catalog.exists()  # an object-store lake has no catalog file
    queries = [
        "SELECT participant, count(*), sum(i) FROM vectors_by_participant GROUP BY 1 ORDER BY 1",
        "SELECT typeof(vector), array_cosine_similarity(vector, vector) FROM vectors ORDER BY i LIMIT 2",
        "SELECT count(*) FROM vectors v JOIN vectors_by_participant w USING (i)",
    ]
    for query in queries:
        with connect_catalog(local) as con:
            expected = con.execute(query).fetchall()
        with connect_catalog(remote, for_query=query) as con:
            assert con.execute(query).fetchall() == expected, query
    assert expected[0][0] > 0
    with connect_catalog(remote) as con:
        names = [
            r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        ]
        assert sorted(names) == ["vectors", "vectors_by_participant"]
        assert con.execute("SELECT typeof(vector) FROM vectors LIMIT 1").fetchall() == [("FLOAT[3]",)]


def test_scan_landing_reads_an_s3_prefix_like_a_folder(s3, tmp_path):
    from pov_pipeline.automation import scan_landing

    remote = lake_root(_url("scan")) / "landing"
    for landing in (tmp_path / "landing", remote):
        for participant, files in {
            "p1": ["session.json", "responses.csv", "gaze.asc"],
            "p2": ["session.json", "gaze.tsv"],
            "p3": ["session.json", "responses.csv", "gaze.asc", "gaze.csv"],
            "bad id": ["session.json"],
        }.items():
            for name in files:
                write_bytes_atomic(b"x", landing / participant / name)
    local_scan, remote_scan = scan_landing(tmp_path / "landing"), scan_landing(remote)
    assert remote_scan.ready == local_scan.ready == ["p1"]
    assert remote_scan.incomplete == local_scan.incomplete and list(remote_scan.incomplete) == ["p2"]
    assert remote_scan.invalid == local_scan.invalid and sorted(remote_scan.invalid) == ["bad id", "p3"]
    assert scan_landing(lake_root(_url("scan")) / "nothing_here").ready == []
