"""Crash safety, concurrent catalog refreshes, path validation and the read-only SQL command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from dagster import AssetKey, build_input_context, build_output_context
from rel_fixtures import write_participant

from pov_pipeline.automation import scan_landing
from pov_pipeline.cli import main as pov_main
from pov_pipeline.lake import (
    LakePaths,
    ParquetLakeIOManager,
    read_table,
    refresh_catalog,
    sweep_temp_files,
    write_table,
)

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[2]


def _big(n_rows: int, version: int) -> pa.Table:
    rng = np.random.default_rng(version)
    return pa.table(
        {
            "participant": pa.array(["p1"] * n_rows),
            "version": pa.array(np.full(n_rows, version, np.int64)),
            "value": pa.array(rng.random(n_rows)),
        }
    )


_WRITER = """
import sys, numpy as np, pyarrow as pa
from pathlib import Path
from pov_pipeline.lake import LakePaths, write_table, refresh_catalog
paths = LakePaths(Path(sys.argv[1]))
n = int(sys.argv[2])
rng = np.random.default_rng(1)
table = pa.table({"participant": ["p1"] * n, "version": np.full(n, 2, np.int64), "value": rng.random(n)})
print("ready", flush=True)
while True:
    write_table(paths, "big", table, ["p1"])
    refresh_catalog(paths)
"""


def _kill_when(proc: subprocess.Popen, appeared, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if appeared():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            raise AssertionError(f"writer exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    raise AssertionError("the writer never started writing")


def _assert_lake_holds_version_1(paths: LakePaths, n_rows: int) -> None:
    table = read_table(paths, "big")
    assert table.num_rows == n_rows and set(table.column("version").to_pylist()) == {1}
    refresh_catalog(paths)
    with duckdb.connect(str(paths.catalog), read_only=True) as con:
        assert con.execute("SELECT count(*), min(version), max(version) FROM big").fetchall() == [
            (n_rows, 1, 1)
        ]


@pytest.mark.parametrize("target", ["parquet", "catalog"])
def test_sigkill_mid_write_leaves_the_previous_version_readable(tmp_path, target):
    paths = LakePaths(tmp_path)
    n_rows = 200_000
    write_table(paths, "big", _big(n_rows, 1), ["p1"])
    refresh_catalog(paths)
    part_dir = paths.table_file("big", "p1").parent
    proc = subprocess.Popen(
        [PYTHON, "-c", _WRITER, str(tmp_path), str(3_000_000)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if target == "parquet":
        _kill_when(proc, lambda: any(part_dir.glob(".part-0.parquet.*.tmp")))
        # Killed between temp file and rename: the old file is intact, the temp file is no table.
        assert any(part_dir.glob(".part-0.parquet.*.tmp"))
        _assert_lake_holds_version_1(paths, n_rows)
    else:
        # Wait for the catalog's temporary file: the parquet write has completed by then, so the
        # table is already version 2, but the catalog being rebuilt must not be damaged.
        _kill_when(proc, lambda: any(tmp_path.glob(".pov.duckdb.*.tmp")))
        refresh_catalog(paths)
        with duckdb.connect(str(paths.catalog), read_only=True) as con:
            versions = con.execute("SELECT DISTINCT version FROM big").fetchall()
        assert versions in ([(1,)], [(2,)])
    # Views glob part-0.parquet only; nothing else is visible as a table.
    with duckdb.connect(str(paths.catalog), read_only=True) as con:
        views = [
            r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        ]
    assert views == ["big"]
    # The next run completes, and a later sweep removes the left-overs.
    write_table(paths, "big", _big(10, 3), ["p1"])
    refresh_catalog(paths)
    assert read_table(paths, "big").num_rows == 10
    sweep_temp_files(paths, older_than_s=0.0)
    assert not list(tmp_path.rglob("*.tmp"))


_REFRESHER = """
import sys
from pathlib import Path
from pov_pipeline.lake import LakePaths, refresh_catalog
paths = LakePaths(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    refresh_catalog(paths)
"""


def test_concurrent_catalog_refreshes_do_not_corrupt_the_catalog(tmp_path):
    paths = LakePaths(tmp_path)
    for name in ("alpha", "beta", "gamma"):
        write_table(paths, name, _big(100, 1), ["p1"])
    refresh_catalog(paths)
    procs = [
        subprocess.Popen([PYTHON, "-c", _REFRESHER, str(tmp_path), "8"], cwd=ROOT, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    reads = 0
    while any(p.poll() is None for p in procs):
        # Readers see a complete catalog at every moment (the old one or the new one).
        with duckdb.connect(str(paths.catalog), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM alpha").fetchall() == [(100,)]
        reads += 1
    assert all(p.returncode == 0 for p in procs), [p.stderr.read().decode()[-1000:] for p in procs]
    assert reads > 0
    with duckdb.connect(str(paths.catalog), read_only=True) as con:
        views = sorted(
            r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        )
    assert views == ["alpha", "beta", "gamma"]
    assert not list(tmp_path.glob(".pov.duckdb.*.tmp"))


# ---------------------------------------------------------------------------------------------
# Paths


@pytest.mark.parametrize("key", ["../evil", "p1/../../evil", "..", "a b"])
def test_io_manager_refuses_traversing_partition_keys(tmp_path, key):
    lake = tmp_path / "lake"
    manager = ParquetLakeIOManager(lake_dir=str(lake))
    table = pa.table(
        {"participant": [key], "trial": [1], "stimulus_id": ["s1"], "response": ["yes"], "rt_ms": [1.0]}
    )
    with pytest.raises(ValueError, match="invalid participant id"):
        manager.handle_output(build_output_context(asset_key=AssetKey("responses"), partition_key=key), table)
    with pytest.raises(ValueError, match="invalid participant id"):
        manager.load_input(build_input_context(asset_key=AssetKey("responses"), partition_key=key))
    assert not (tmp_path / "evil").exists() and not (lake / "evil").exists()
    assert not list(tmp_path.rglob("*.parquet"))


@pytest.mark.parametrize("table", ["../tables", "a/b", "x;drop"])
def test_read_paths_refuse_traversing_table_names(tmp_path, table):
    with pytest.raises(ValueError, match="invalid table name"):
        read_table(LakePaths(tmp_path), table)


def test_scan_skips_landing_that_is_a_file(tmp_path):
    (tmp_path / "landing").write_text("not a folder")
    scan = scan_landing(tmp_path / "landing")
    assert scan.ready == [] and scan.invalid == {} and scan.incomplete == {}


def test_scan_skips_symlink_loops_and_symlinked_folders(tmp_path):
    landing = tmp_path / "landing"
    write_participant(landing / "p1", "p1")
    (landing / "loop").symlink_to(landing / "loop")
    write_participant(tmp_path / "elsewhere", "p2")
    (landing / "p2").symlink_to(tmp_path / "elsewhere")
    scan = scan_landing(landing)
    assert scan.ready == ["p1"]


def test_scan_skips_a_folder_it_cannot_read(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    write_participant(landing / "p1", "p1")
    write_participant(landing / "p2", "p2")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "p2":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    # Simulated: the tests may run as root, for whom chmod 000 denies nothing.
    monkeypatch.setattr("pov_pipeline.automation.os.scandir", scandir)
    scan = scan_landing(landing)
    assert scan.ready == ["p1"]
    assert "p2" in scan.invalid or "p2" in scan.incomplete


def test_pov_sql_is_read_only(tmp_path, capsys):
    paths = LakePaths(tmp_path)
    write_table(paths, "big", _big(5, 1), ["p1"])
    refresh_catalog(paths)
    before = paths.catalog.read_bytes()
    assert pov_main(["--lake", str(tmp_path), "sql", "CREATE TABLE x AS SELECT 1"]) != 0
    assert "read-only" in capsys.readouterr().err.lower()
    assert pov_main(["--lake", str(tmp_path), "sql", "DROP VIEW big"]) != 0
    assert paths.catalog.read_bytes() == before
    assert pov_main(["--lake", str(tmp_path), "sql", "SELECT count(*) FROM big"]) == 0
