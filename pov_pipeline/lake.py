"""The data lake: atomic Parquet tables in Hive layout, a DuckDB catalog over them, and the
Dagster IO manager that writes and reads them.

Layout (see DESIGN.md)::

    <lake>/tables/<asset>/participant=<id>/part-0.parquet   partitioned assets
    <lake>/tables/<asset>/part-0.parquet                    unpartitioned assets
    <lake>/pov.duckdb                                       one view per table

Every file is written to a temporary name in its own folder and renamed into place, so a reader
or a crash never sees half a table. The catalog is rebuilt into a temporary database and renamed
the same way, under an exclusive file lock, so concurrent runs cannot interleave.

The root may also be an object-store URL (``s3://bucket/prefix``, see :mod:`pov_pipeline.store`):
each file is then one whole-object upload, and there is no ``pov.duckdb``; :func:`connect_catalog`
builds the same views in an in-memory DuckDB that reads the store through fsspec.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from pov_pipeline.atomic import write_parquet_atomic
from pov_pipeline.schemas import TABLE_SCHEMAS, validate_participant_id
from pov_pipeline.store import (
    StorePath,
    is_remote,
    lake_root,
    list_dir,
    list_files,
    read_parquet,
    read_parquet_schema,
)

PARTITION_COLUMN = "participant"
PART_FILE = "part-0.parquet"
CATALOG_FILE = "pov.duckdb"


@dataclass(frozen=True)
class LakePaths:
    """Where everything lives below one lake root (a folder ``Path`` or an object-store ``UPath``)."""

    root: StorePath

    @property
    def tables(self) -> StorePath:
        return self.root / "tables"

    @property
    def landing(self) -> StorePath:
        return self.root / "landing"

    @property
    def study(self) -> StorePath:
        return self.root / "study"

    @property
    def cache(self) -> StorePath:
        return self.root / "cache"

    @property
    def models(self) -> StorePath:
        return self.root / "models"

    @property
    def reports(self) -> StorePath:
        return self.root / "reports"

    @property
    def catalog(self) -> StorePath:
        return self.root / CATALOG_FILE

    def table_dir(self, table: str) -> StorePath:
        _check_table_name(table)
        return self.tables / table

    def table_file(self, table: str, participant: str | None = None) -> StorePath:
        if participant is None:
            return self.table_dir(table) / PART_FILE
        validate_participant_id(participant)
        return self.table_dir(table) / f"{PARTITION_COLUMN}={participant}" / PART_FILE


def default_lake_dir() -> StorePath:
    """``$POV_LAKE_DIR`` (a folder or an ``s3://bucket/prefix`` URL) if set, else ``data_lake/``
    beside the package's project folder."""
    env = os.environ.get("POV_LAKE_DIR")
    if env:
        return lake_root(env)
    return (Path(__file__).resolve().parents[1] / "data_lake").resolve()


def _check_table_name(table: str) -> None:
    if not table.replace("_", "").isalnum():
        raise ValueError(f"invalid table name {table!r}: expected letters, digits and underscores")


# --------------------------------------------------------------------------------------------
# Atomic writes


def to_arrow(data: pa.Table | pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """Convert to an Arrow table with ``schema`` (if given), without pandas' index metadata.

    Dropping the pandas metadata keeps the bytes independent of the DataFrame's index, so the
    same rows always give the same file.
    """
    if isinstance(data, pd.DataFrame):
        if schema is not None and data.empty and len(data.columns) == 0:
            return schema.empty_table()
        if schema is not None:
            missing = [name for name in schema.names if name not in data.columns]
            if missing:
                raise ValueError(f"table is missing columns {missing} of its schema")
            table = pa.Table.from_pandas(data[schema.names], schema=schema, preserve_index=False)
        else:
            table = pa.Table.from_pandas(data, preserve_index=False)
    else:
        table = data.select(schema.names).cast(schema) if schema is not None else data
    return table.replace_schema_metadata(None)


def write_table(
    paths: LakePaths,
    table_name: str,
    data: pa.Table | pd.DataFrame,
    participants: list[str] | None = None,
) -> dict[str, StorePath]:
    """Write one table (or its participant partitions) atomically; return the files written.

    For partitioned tables, ``participants`` lists the partitions this write covers: rows are
    split on the ``participant`` column, and a listed participant without rows gets an empty
    file (so a re-run that now yields nothing replaces stale data instead of leaving it).
    """
    table = to_arrow(data, TABLE_SCHEMAS.get(table_name))
    if participants is None:
        return {"": write_parquet_atomic(table, paths.table_file(table_name))}
    for participant in participants:
        validate_participant_id(participant)
    written: dict[str, StorePath] = {}
    if PARTITION_COLUMN not in table.column_names:
        raise ValueError(f"partitioned table {table_name!r} has no {PARTITION_COLUMN!r} column")
    codes, unexpected = _participant_codes(table.column(PARTITION_COLUMN), participants)
    if unexpected:
        raise ValueError(f"table {table_name!r} has rows for participants outside this run: {unexpected[:5]}")
    counts = np.bincount(codes, minlength=len(participants))
    starts = np.cumsum(counts) - counts
    # Rows usually come grouped by participant already: then each partition is a zero-copy slice.
    grouped = codes.size < 2 or bool((codes[1:] >= codes[:-1]).all())
    order = None if grouped else np.argsort(codes, kind="stable")
    for k, participant in enumerate(participants):
        lo, n = int(starts[k]), int(counts[k])
        part = table.slice(lo, n) if order is None else table.take(order[lo : lo + n])
        part = _compact_dictionaries(part)
        written[participant] = write_parquet_atomic(part, paths.table_file(table_name, participant))
    return written


def _compact_dictionaries(table: pa.Table) -> pa.Table:
    """``table`` with each dictionary column's dictionary cut to the values its rows use.

    A partition cut from a run's table shares the run's dictionaries (every participant's id):
    Parquet would store all of them in each file.
    """
    for i, field in enumerate(table.schema):
        if not pa.types.is_dictionary(field.type):
            continue
        chunks = []
        for chunk in table.column(i).chunks:
            indices = chunk.indices.fill_null(0).to_numpy(zero_copy_only=False)
            used = np.bincount(indices, minlength=len(chunk.dictionary)) > 0
            if used.all():
                chunks.append(chunk)
                continue
            recode = (np.cumsum(used) - 1).astype(indices.dtype)
            mask = chunk.is_null().to_numpy(zero_copy_only=False) if chunk.null_count else None
            new_indices = pa.array(recode[indices], type=field.type.index_type, mask=mask)
            chunks.append(
                pa.DictionaryArray.from_arrays(new_indices, chunk.dictionary.filter(pa.array(used)))
            )
        table = table.set_column(i, field, pa.chunked_array(chunks, type=field.type))
    return table


def _participant_codes(
    column: pa.ChunkedArray, participants: list[str]
) -> tuple[npt.NDArray[np.intp], list[Any]]:
    """Each row's position in ``participants``, and the (sorted) values that are not there.

    Works on the dictionary codes: no Python string is made per row (a study's per-sample
    table has tens of millions).
    """
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    position = {p: k for k, p in enumerate(participants)}
    codes = np.empty(len(column), dtype=np.intp)
    unexpected: set[Any] = set()
    pos = 0
    for chunk in column.chunks:
        values = chunk.dictionary.to_pylist()
        # Null rows get the extra last entry: they belong to no participant either.
        lookup = np.array([position.get(v, -1) for v in values] + [-1], dtype=np.intp)
        indices = chunk.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
        # Dictionary values no row uses are not reported.
        used = np.bincount(indices, minlength=len(values) + 1) > 0
        found = zip([*values, None], used, lookup, strict=True)
        unexpected.update(v for v, u, code in found if u and code < 0)
        codes[pos : pos + len(chunk)] = lookup[indices]
        pos += len(chunk)
    return codes, sorted(unexpected, key=lambda v: (v is None, str(v)))


def write_partitions(
    paths: LakePaths, table_name: str, tables: Mapping[str, pa.Table | pd.DataFrame]
) -> dict[str, StorePath]:
    """Write some participant partitions of a table (one table per participant) and refresh the catalog.

    For runs where part of the participants failed: the good ones are stored, the failed ones keep
    whatever version they had before, untouched.
    """
    if not tables:
        return {}
    schema = TABLE_SCHEMAS.get(table_name)
    parts = [to_arrow(table, schema) for table in tables.values()]
    written = write_table(paths, table_name, pa.concat_tables(parts, promote_options="default"), list(tables))
    refresh_catalog(paths)
    return written


#: Temporary files older than this are left-overs of a killed writer and are removed.
STALE_TEMP_SECONDS = 3600.0


def sweep_temp_files(paths: LakePaths, *, older_than_s: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove temporary files (``.<name>.*.tmp``) that a killed writer left behind; return them.

    A crash between creating the temporary file and renaming it leaves it in the table folder. It
    is never visible as a table (the views glob ``part-0.parquet``), only wasted space. Young
    files are kept: they may belong to a writer that is still running. An object store has no
    temporary objects to sweep (a write is one upload).
    """
    import time

    if is_remote(paths.root):
        return []

    removed: list[Path] = []
    now = time.time()
    roots = [paths.tables] if paths.tables.is_dir() else []
    candidates = [p for root in roots for p in root.rglob(".*.tmp")]
    candidates += list(paths.root.glob(f".{CATALOG_FILE}.*.tmp")) if paths.root.is_dir() else []
    for path in candidates:
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime > older_than_s:
                path.unlink()
                removed.append(path)
    return removed


def read_table(paths: LakePaths, table_name: str, participants: list[str] | None = None) -> pa.Table:
    """Read a table, or the listed participant partitions of it, in a deterministic order."""
    schema = TABLE_SCHEMAS.get(table_name)
    if participants is None:
        single = paths.table_file(table_name)
        if single.exists():
            return _as_schema(read_parquet(single), schema)
        table_dir = paths.table_dir(table_name)
        participants = sorted(
            entry.name.split("=", 1)[1]
            for entry in (table_dir.iterdir() if table_dir.is_dir() else [])
            if entry.name.startswith(f"{PARTITION_COLUMN}=") and (entry / PART_FILE).exists()
        )
        if not participants and not table_dir.is_dir():
            raise FileNotFoundError(f"table {table_name!r} has not been materialized in {paths.tables}")
    parts = []
    for participant in participants:
        path = paths.table_file(table_name, participant)
        if not path.exists():
            raise FileNotFoundError(
                f"partition participant={participant} of {table_name!r} is missing: {path}"
            )
        parts.append(_as_schema(read_parquet(path), schema))
    if not parts:
        if schema is None:
            raise FileNotFoundError(f"table {table_name!r} has no partitions in {paths.tables}")
        return schema.empty_table()
    return pa.concat_tables(parts, promote_options="default")


def _as_schema(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """``table`` cast to the table's current schema where only the column types differ.

    Files written before a column became dictionary-encoded (``sample_labels``) then read, and
    concatenate, like new ones.
    """
    if schema is None or table.schema.equals(schema) or table.schema.names != schema.names:
        return table
    return table.cast(schema)


# --------------------------------------------------------------------------------------------
# DuckDB catalog


@contextlib.contextmanager
def _catalog_lock(paths: LakePaths) -> Iterator[None]:
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.root / f".{CATALOG_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _array_casts(parquet_file: StorePath) -> str:
    """``* REPLACE (...)`` casts restoring fixed-size vector columns as DuckDB ``FLOAT[n]`` arrays.

    Parquet has no fixed-size list type: Arrow keeps the size in its own schema metadata, which
    DuckDB does not read, so without the cast ``array_cosine_similarity`` would refuse the column.
    """
    casts = []
    for field in read_parquet_schema(parquet_file):
        if pa.types.is_fixed_size_list(field.type):
            value_type = field.type.value_type
            sql_type = "DOUBLE" if pa.types.is_float64(value_type) else "FLOAT"
            casts.append(f'CAST("{field.name}" AS {sql_type}[{field.type.list_size}]) AS "{field.name}"')
    return f" REPLACE ({', '.join(casts)})" if casts else ""


def _local_table_parts(paths: LakePaths) -> dict[str, tuple[StorePath | None, list[StorePath]]]:
    found: dict[str, tuple[StorePath | None, list[StorePath]]] = {}
    if not paths.tables.is_dir():
        return found
    for table_dir in sorted(p for p in paths.tables.iterdir() if p.is_dir()):
        if (table_dir / PART_FILE).exists():
            found[table_dir.name] = (table_dir / PART_FILE, [])
        else:
            found[table_dir.name] = (None, sorted(table_dir.glob(f"{PARTITION_COLUMN}=*/{PART_FILE}")))
    return found


def _remote_table_parts(paths: LakePaths) -> dict[str, tuple[StorePath | None, list[StorePath]]]:
    """Like :func:`_local_table_parts` from ONE recursive listing (a request per object adds up)."""
    singles: dict[str, StorePath] = {}
    partitions: dict[str, list[StorePath]] = {}
    for rel in list_files(paths.tables):
        parts = rel.split("/")
        if len(parts) == 2 and parts[1] == PART_FILE:
            singles[parts[0]] = paths.tables / parts[0] / PART_FILE
        elif len(parts) == 3 and parts[1].startswith(f"{PARTITION_COLUMN}=") and parts[2] == PART_FILE:
            partitions.setdefault(parts[0], []).append(paths.tables / parts[0] / parts[1] / PART_FILE)
    return {
        name: (singles.get(name), [] if name in singles else sorted(partitions.get(name, []), key=str))
        for name in sorted(set(singles) | set(partitions))
    }


def table_views(paths: LakePaths, only: Collection[str] | None = None) -> dict[str, str]:
    """The ``CREATE VIEW`` body of every table in the lake (or of those in ``only``), by name."""
    views: dict[str, str] = {}
    found = _remote_table_parts(paths) if is_remote(paths.root) else _local_table_parts(paths)
    for name, (single, parts) in found.items():
        if not name.replace("_", "").isalnum() or (only is not None and name not in only):
            continue
        if single is not None:
            casts = _array_casts(single)
            views[name] = f"SELECT *{casts} FROM read_parquet({_sql_literal(str(single))})"
        elif parts:
            pattern = str(paths.tables / name / f"{PARTITION_COLUMN}=*" / PART_FILE)
            views[name] = (
                f"SELECT *{_array_casts(parts[0])} FROM read_parquet({_sql_literal(pattern)}, "
                "hive_partitioning=true, union_by_name=true)"
            )
    return views


def refresh_catalog(paths: LakePaths) -> list[str]:
    """Rebuild ``pov.duckdb`` with one view per table; return the view names.

    The new catalog is built in a temporary file and renamed over the old one, under a lock, so
    a reader holding the old file keeps a consistent catalog and concurrent refreshes serialise.
    An object-store lake keeps no catalog file (:func:`connect_catalog` builds the views when it
    connects); this then only lists the tables.
    """
    if is_remote(paths.root):
        return _remote_table_names(paths)
    with _catalog_lock(paths):
        sweep_temp_files(paths)
        views = table_views(paths)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{CATALOG_FILE}.", suffix=".tmp", dir=paths.root)
        os.close(fd)
        os.unlink(tmp_name)  # duckdb wants to create the file itself
        try:
            con = duckdb.connect(tmp_name)
            try:
                for name, body in views.items():
                    con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {body}')
                con.execute("CHECKPOINT")
            finally:
                con.close()
            os.replace(tmp_name, paths.catalog)
        finally:
            for leftover in (tmp_name, tmp_name + ".wal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
    return sorted(views)


def _remote_table_names(paths: LakePaths) -> list[str]:
    try:
        entries = list_dir(paths.tables)
    except FileNotFoundError:
        return []
    return sorted(name for name, kind in entries if kind == "dir" and name.replace("_", "").isalnum())


def referenced_tables(sql: str, tables: Iterable[str]) -> set[str]:
    """The names in ``tables`` that occur as words in ``sql`` (over-inclusive, never misses one)."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))
    return {name for name in tables if name in words}


def connect_catalog(
    paths: LakePaths, *, read_only: bool = True, for_query: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the catalog (read-only by default); build it first if it does not exist yet.

    For an object-store lake: an in-memory DuckDB with the lake's fsspec filesystem registered
    (DuckDB's own ``httpfs`` is not needed) and the same views as ``pov.duckdb`` would hold,
    ``FLOAT[n]`` casts included. Creating a view reads the footers of its files, so with
    ``for_query`` only the views that query names are created (all, when it names none).
    ``read_only`` does not apply there: the views read the store, and nothing written to the
    in-memory database reaches it.
    """
    if is_remote(paths.root):
        only = None
        if for_query is not None:
            only = referenced_tables(for_query, _remote_table_names(paths)) or None
        con = duckdb.connect(":memory:")
        try:
            con.register_filesystem(paths.root.fs)
            for name, body in table_views(paths, only).items():
                con.execute(f'CREATE VIEW "{name}" AS {body}')
        except BaseException:
            con.close()
            raise
        return con
    if not paths.catalog.exists():
        refresh_catalog(paths)
    return duckdb.connect(str(paths.catalog), read_only=read_only)


# --------------------------------------------------------------------------------------------
# Dagster IO manager


def _table_name(context: OutputContext | InputContext) -> str:
    return context.asset_key.path[-1]


def _preview_markdown(table: pa.Table, n_rows: int = 5) -> str:
    frame = table.slice(0, n_rows).to_pandas()
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(lambda v: str(v)[:60])
    return frame.to_markdown(index=False) if hasattr(frame, "to_markdown") else frame.to_string()


class ParquetLakeIOManager(ConfigurableIOManager):
    """Stores each asset as Parquet in the lake (Hive layout by participant) and keeps the
    DuckDB catalog in step.

    Outputs may be a ``pyarrow.Table`` or a ``pandas.DataFrame``; known tables are cast to their
    schema in ``pov_pipeline.schemas``. A run over several participant partitions (single-run
    backfill) returns one table, which is split on its ``participant`` column. Inputs are
    loaded as pandas DataFrames, concatenated over the partitions the downstream step needs.
    """

    lake_dir: str

    @property
    def paths(self) -> LakePaths:
        return LakePaths(lake_root(self.lake_dir))

    def handle_output(self, context: OutputContext, obj: pa.Table | pd.DataFrame | None) -> None:
        if obj is None:
            return
        name = _table_name(context)
        participants = list(context.asset_partition_keys) if context.has_asset_partitions else None
        written = write_table(self.paths, name, obj, participants)
        refresh_catalog(self.paths)
        table = to_arrow(obj, TABLE_SCHEMAS.get(name))
        metadata: dict[str, MetadataValue] = {
            "row_count": MetadataValue.int(table.num_rows),
            "path": MetadataValue.path(str(next(iter(written.values())).parent)),
            "columns": MetadataValue.text(", ".join(table.column_names)),
        }
        if table.num_rows:
            with contextlib.suppress(Exception):
                metadata["preview"] = MetadataValue.md(_preview_markdown(table))
        context.add_output_metadata(metadata)

    def load_input(self, context: InputContext) -> pd.DataFrame:
        name = _table_name(context)
        participants = list(context.asset_partition_keys) if context.has_asset_partitions else None
        if participants is not None and not _downstream_is_partitioned(context):
            # A study-wide step (training, report) covers the participants that have been
            # processed; one whose run failed is left out and named, not a reason to fail.
            present = [p for p in participants if self.paths.table_file(name, p).exists()]
            missing = sorted(set(participants) - set(present))
            if missing:
                context.log.warning(
                    f"{name}: {len(missing)} participant partition(s) not materialized, "
                    f"left out: {missing[:20]}"
                )
            participants = present
        return read_table(self.paths, name, participants).to_pandas()


def _downstream_is_partitioned(context: InputContext) -> bool:
    """Whether the step loading this input runs for participant partitions itself."""
    if context.has_partition_key:
        return True
    try:
        tags = context.step_context.dagster_run.tags
    except Exception:  # not inside a run (direct IO-manager calls in tests)
        return False
    return "dagster/asset_partition_range_start" in tags


def table_row_counts(paths: LakePaths) -> Mapping[str, int]:
    """Row count of every view in the catalog (for the CLI summary)."""
    with connect_catalog(paths) as con:
        names = [
            row[0]
            for row in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        ]
        return {
            name: con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0] for name in sorted(names)
        }
