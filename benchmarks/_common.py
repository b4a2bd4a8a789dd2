"""Shared helpers of the ``make bench`` scripts: thread limits, the cached demo study, tables.

Importing this module does not import numpy, so a script can call :func:`limit_threads` first and
only then import the numerical stack (BLAS pools are sized when numpy loads).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
MARKER = Path("study") / ".bench.json"
STUDY_SEED = 7

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "POLARS_MAX_THREADS",
    "RAYON_NUM_THREADS",
    "ARROW_NUM_THREADS",
)


def limit_threads(n: int = 1) -> None:
    """Cap every thread pool we know of at ``n`` threads (call before importing numpy)."""
    for name in THREAD_VARS:
        os.environ[name] = str(n)


def match_pipeline_process() -> bool:
    """Set up the allocator as the pipeline's entry points do; whether it is tuned.

    ``POV_MALLOC_TUNING=0`` in the environment measures glibc's defaults instead.
    """
    ensure_root_on_path()
    from pov_pipeline.allocator import tune_allocator

    return tune_allocator()


def machine_summary() -> str:
    """CPU model, clock and the widest SIMD extension numpy found: per-core figures depend on them."""
    model, mhz = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("cpu MHz") and not mhz:
                mhz = f" {float(line.split(':', 1)[1]):.0f} MHz"
    except OSError:
        pass
    import numpy as np

    found = np._core._multiarray_umath.__cpu_features__  # type: ignore[attr-defined]
    simd = next(
        (name for name in ("AVX512_SPR", "AVX512_ICL", "AVX512F", "AVX2", "SSE42") if found.get(name)), "?"
    )
    return f"{model}{mhz}, {os.cpu_count()} cores, widest SIMD {simd}"


def ensure_root_on_path() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def generator_fingerprint() -> str:
    """SHA-256 of the demo generator's source: a changed generator means a different study."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "pov_pipeline" / "demo").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _marker_doc(size: str) -> dict[str, object]:
    return {"size": size, "seed": STUDY_SEED, "generator": generator_fingerprint()}


def ensure_study(size: str, lake: Path | None = None, *, log=print) -> Path:  # type: ignore[no-untyped-def]
    """The demo study of ``size`` (seed 7) in ``lake`` (default ``build/bench_lake_<size>``).

    It is generated only when ``study/.bench.json`` is missing or names another size, seed or
    generator source; the marker is written last, so an interrupted generation is redone.
    """
    ensure_root_on_path()
    from pov_pipeline.demo import generate_study

    lake = Path(lake) if lake is not None else BUILD / f"bench_lake_{size}"
    marker = lake / MARKER
    wanted = _marker_doc(size)
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == wanted:
                log(f"reusing the {size} demo study in {lake}")
                return lake
        except json.JSONDecodeError:
            pass
    log(f"generating the {size} demo study (seed {STUDY_SEED}) into {lake} ...")
    marker.unlink(missing_ok=True)
    # Participants of an older, larger study would otherwise stay behind and be benchmarked too.
    if (lake / "landing").exists():
        shutil.rmtree(lake / "landing")
    started = time.perf_counter()
    summary = generate_study(lake, size=size, seed=STUDY_SEED)
    log(
        f"  {summary.n_participants} participants, {summary.n_trials:,} trials, "
        f"{summary.n_samples:,} raw_gaze rows in {time.perf_counter() - started:.0f} s"
    )
    marker.write_text(json.dumps(wanted, indent=2) + "\n")
    return lake


def code_version() -> str:
    """The checkout the figures were measured on: commit and uncommitted package files, if git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pov_pipeline"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"commit {commit}" + (f" + {len(dirty)} uncommitted file(s) under pov_pipeline/" if dirty else "")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """A plain-text table; ``align`` is one of ``l``/``r`` per column (default: first left)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or ("l" + "r" * (len(headers) - 1))
    lines = []
    for k, row in enumerate(cells):
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align, strict=True)]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def human_rate(value: float) -> str:
    """``12.3 M`` style rate."""
    if value != value:  # NaN
        return "n/a"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.1f}"
