"""The ``pov`` command line: ``pov demo``, ``pov sql``, ``pov materialize``, ``pov events``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pov_pipeline.allocator import tune_allocator

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _setup_environment() -> None:
    """Keep Dagster's instance inside the project and everything offline, unless told otherwise."""
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home"))
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    tune_allocator()
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    dagster_yaml = Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"
    if not dagster_yaml.exists():
        dagster_yaml.write_text("telemetry:\n  enabled: false\n")


def _lake_paths(args: argparse.Namespace):
    from pov_pipeline.lake import LakePaths, default_lake_dir
    from pov_pipeline.store import lake_root

    return LakePaths(lake_root(args.lake) if args.lake else default_lake_dir())


def format_table(columns: list[str], rows: list[tuple], max_width: int = 40) -> str:
    """A plain-text table, cells cut to ``max_width`` characters."""

    def cell(value: object) -> str:
        text = "NULL" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    body = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    line = "-+-".join("-" * w for w in widths)
    out = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), line]
    out += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(out)


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from pov_pipeline.lake import connect_catalog

    paths = _lake_paths(args)
    if not paths.tables.is_dir():
        print(f"no tables in {paths.root}: run `pov demo` or materialize the pipeline first", file=sys.stderr)
        return 2
    try:
        with connect_catalog(paths, read_only=True, for_query=args.query) as con:
            result = con.execute(args.query)
            columns = [d[0] for d in result.description or []]
            rows = result.fetchmany(args.max_rows + 1)
    except (duckdb.Error, OSError) as exc:  # OSError: an object store that cannot be reached
        print(f"query failed: {exc}", file=sys.stderr)
        return 1
    if args.format == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows[: args.max_rows])
    else:
        print(format_table(columns, rows[: args.max_rows]))
        if len(rows) > args.max_rows:
            print(f"(showing the first {args.max_rows} rows; use --max-rows to see more)")
    return 0


def _materialize(paths, *, force: bool) -> object:
    from dagster import DagsterInstance

    from pov_pipeline.definitions import build_definitions
    from pov_pipeline.orchestrate import materialize_pipeline

    defs = build_definitions(str(paths.root))
    with DagsterInstance.get() as instance:
        return materialize_pipeline(
            defs, instance, paths, force=force, progress=lambda m: print(m, flush=True)
        )


def _report_failures(run) -> int:
    if not run.failed_participants:
        return 0
    print(f"\n{len(run.failed_participants)} participant(s) failed and were left out:", file=sys.stderr)
    for participant, message in sorted(run.failed_participants.items()):
        print(f"  {participant}: {message}", file=sys.stderr)
    return 1


def _print_summary(paths) -> None:
    from pov_pipeline.lake import table_row_counts

    counts = table_row_counts(paths)
    print("\nTables in", paths.tables)
    print(format_table(["table", "rows"], [(name, f"{count:,}") for name, count in counts.items()]))
    reports = sorted(paths.reports.glob("*/report.html"), key=lambda p: p.stat().st_mtime)
    if reports:
        print(f"\nReport: {reports[-1]}")
    print(f"\nCatalog: {paths.catalog}  (DuckDB; one view per table)")
    print('Try:  pov sql "SELECT participant, count(*) AS samples FROM raw_gaze GROUP BY 1 ORDER BY 1"')


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from pov_pipeline.demo import generate_study
    from pov_pipeline.store import is_remote, upload_tree

    paths = _lake_paths(args)
    marker = paths.study / ".demo.json"
    wanted = f'{{"size": "{args.size}", "seed": {args.seed}}}'
    started = time.perf_counter()
    if args.force or not marker.exists() or marker.read_text() != wanted:
        if marker.exists() and marker.read_text() != wanted and not args.force:
            print(
                f"the lake at {paths.root} holds another demo ({marker.read_text()}); "
                "use --force to replace it"
            )
            return 2
        print(f"Generating the {args.size} demo study (seed {args.seed}) in {paths.root} ...", flush=True)

        def progress(stage: str, done: int, total: int) -> None:
            if total and (done == total or done % max(1, total // 10) == 0):
                print(f"  {stage}: {done}/{total}", flush=True)

        if is_remote(paths.root):
            # The generator writes files; an object-store lake gets them uploaded afterwards.
            with tempfile.TemporaryDirectory(prefix="pov_demo_") as tmp:
                summary = generate_study(Path(tmp), size=args.size, seed=args.seed, progress=progress)
                for folder in ("study", "landing"):
                    n = upload_tree(Path(tmp) / folder, paths.root / folder)
                    print(f"  uploaded {n} files to {paths.root / folder}", flush=True)
        else:
            summary = generate_study(paths.root, size=args.size, seed=args.seed, progress=progress)
        print(summary.describe(), flush=True)
        marker.write_text(wanted)
    else:
        print(f"Demo study ({args.size}, seed {args.seed}) already generated in {paths.root}")
    print(f"Materializing through Dagster (DAGSTER_HOME={os.environ['DAGSTER_HOME']}) ...", flush=True)
    run = _materialize(paths, force=args.force)
    _print_summary(paths)
    print(f"\nDone in {time.perf_counter() - started:.1f} s")
    return _report_failures(run)


def cmd_materialize(args: argparse.Namespace) -> int:
    paths = _lake_paths(args)
    run = _materialize(paths, force=args.force)
    _print_summary(paths)
    return _report_failures(run)


def cmd_events(args: argparse.Namespace) -> int:
    from pov_pipeline.gaze.cli_events import run_events

    return run_events(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pov", description="pov_pipeline: eye-tracking studies → analysable data"
    )
    parser.add_argument(
        "--lake", help="lake folder or s3://bucket/prefix URL (default: $POV_LAKE_DIR or ./data_lake)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate the demo study and materialize the whole pipeline")
    demo.add_argument("--size", choices=["small", "paper"], default="small")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--force", action="store_true", help="regenerate and re-materialize everything")
    demo.set_defaults(func=cmd_demo)

    sql = sub.add_parser("sql", help="run a DuckDB query over the lake's tables (read-only)")
    sql.add_argument("query")
    sql.add_argument("--max-rows", type=int, default=50)
    sql.add_argument("--format", choices=["table", "csv"], default="table")
    sql.set_defaults(func=cmd_sql)

    mat = sub.add_parser("materialize", help="bring every asset up to date for the lake's landing folders")
    mat.add_argument("--force", action="store_true")
    mat.set_defaults(func=cmd_materialize)

    events = sub.add_parser("events", help="detect fixations/saccades in one gaze file")
    events.add_argument("input")
    events.add_argument("--out", required=True, help="per-sample labels CSV (t_ms,label)")
    events.add_argument("--events-out", help="event table CSV")
    events.add_argument("--format", choices=["auto", "csv", "asc", "tobii"], default="auto")
    events.add_argument("--screen-px", nargs=2, type=float, metavar=("W", "H"), default=(1920.0, 1080.0))
    events.add_argument("--screen-mm", nargs=2, type=float, metavar=("W", "H"), default=(531.0, 299.0))
    events.add_argument("--distance-mm", type=float, default=650.0)
    events.add_argument(
        "--method", default=None, help="detection method (default: the best on the benchmark)"
    )
    events.set_defaults(func=cmd_events)
    return parser


def main(argv: list[str] | None = None) -> int:
    _setup_environment()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
