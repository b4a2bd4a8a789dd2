"""Throughput of every gaze stage on the demo study, single core, against pymovements 0.28.

Usage::

    python benchmarks/gaze_stage_bench.py [--size small|paper] [--lake DIR] [--participants N]
                                          [--peer-participants N] [--no-peers] [--no-idt]
                                          [--repeats 3]

Generates the demo study (seed 7) into ``build/bench_lake_<size>`` unless ``study/.bench.json``
says it is already there, then times, participant by participant (all of them, or the first
``--participants N``) in one process with every thread pool capped at one thread:

- ingest: ``read_session`` + ``read_gaze`` (samples/s and MB/s of the gaze exports);
- detection: ``detect_trials`` with the default method and with ``ivt``; for these and the gaze
  stage from raw_gaze the first run on each freshly loaded frame is reported next to the fastest
  of ``--repeats`` (the detection target is judged on the first pass, as the pipeline runs it);
- data quality: ``trial_quality`` + ``quality_flags``;
- AOI mapping: the fixations of the default method → ``gaze_offsets`` (calibration offset per
  session) → ``map_fixations_to_aois`` against the AOI
  table parsed once per study (``prepare_stimulus_aois``), as the ``aoi_hits`` asset does for
  all sessions of a run (the parse is timed once and printed separately);
- dwell: ``dwell_metrics``;
- sequences + transitions: ``aoi_sequences`` + ``transition_table``;
- the gaze stage from raw_gaze: in-memory samples → detection → fixations → AOI mapping → dwell
  → sequences → transitions (the same input pymovements gets, so this is the like-for-like
  comparison with its gaze stage);
- the whole gaze stage end to end: files → transitions, what ``sessions``, ``raw_gaze`` and the
  ``gaze`` assets compute (Arrow → pandas hand-over and quality included), as a separate pass.

Detection runs the compiled fast path (``engine="auto"``); its kernels are loaded (or, on a
machine without numba's cache, compiled) in the untimed warm-up.

"samples" are ``raw_gaze`` rows (one per eye per sample). Every stage's rate is the study's
samples over that stage's CPU seconds: in a single-threaded process that is the per-core figure,
and it does not depend on what else the machine is running (wall seconds are printed as well).

The peer is pymovements 0.28 on identical input: the same ``raw_gaze`` samples of the first N
participants (lost samples as NaN, both eyes as a binocular pixel array where recorded), one
``Gaze`` per participant with ``trial`` as trial column, screen from the session, then
``pix2deg`` → ``pos2vel`` → ``detect("ivt")`` (and ``detect("idt")``) at pymovements' defaults,
and ``compute_event_properties("location")`` for fixation centroids as its end of the gaze stage.
Its rate is compared with ours on exactly those participants. pymovements has no AOI mapping of
fixations and no transition matrices, so its "gaze stage" does less work than ours (our figure
includes reading the files, AOIs, dwell, quality, sequences and transitions): the ratio is
conservative.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    code_version,
    ensure_root_on_path,
    ensure_study,
    format_table,
    human_rate,
    limit_threads,
    machine_summary,
    match_pipeline_process,
)

# Per-core figures: the thread pools are sized when numpy / polars load, so this comes first.
limit_threads(1)
ensure_root_on_path()
MALLOC_TUNED = match_pipeline_process()

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pov_pipeline.gaze.aoi import StimulusAois, dwell_metrics, map_fixations_to_aois, prepare_stimulus_aois  # noqa: E402
from pov_pipeline.gaze.detection import DEFAULT_METHOD, detect_trials  # noqa: E402
from pov_pipeline.gaze.drift import aoi_box_table, apply_gaze_offsets, gaze_offsets  # noqa: E402
from pov_pipeline.gaze.geometry import ScreenGeometry  # noqa: E402
from pov_pipeline.gaze.quality import quality_flags, trial_quality  # noqa: E402
from pov_pipeline.gaze.transitions import aoi_sequences, transition_table  # noqa: E402
from pov_pipeline.ingest import SessionInfo, read_gaze, read_session  # noqa: E402
from pov_pipeline.ingest.study import read_aois  # noqa: E402

#: Issue targets.
TARGET_DETECTION_SAMPLES_PER_S = 20e6
TARGET_STAGE_RATIO = 50.0

STAGES = (
    "ingest",
    f"detection ({DEFAULT_METHOD})",
    "detection (ivt)",
    "quality",
    "AOI mapping",
    "dwell",
    "sequences + transitions",
    "gaze stage from raw_gaze",
    "gaze stage end to end",
)
PEER_STAGES = ("pymovements ivt", "pymovements idt", "pymovements gaze stage")
#: Stages whose first run on each participant's freshly loaded frame is also reported: the
#: pipeline detects every frame once, so the first pass is its figure; the fastest of the
#: repeats is the code's speed with the machine's noise taken out.
FIRST_PASS_STAGES = (f"detection ({DEFAULT_METHOD})", "detection (ivt)", "gaze stage from raw_gaze")
FIRST_PASS = ", first pass"


@dataclass
class Timings:
    """Seconds per stage and participant, plus the sizes they were measured on."""

    seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    bytes_read: dict[str, int] = field(default_factory=dict)
    fixations: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def timing(self, stage: str, participant: str) -> Iterator[None]:
        """Record the wall and CPU seconds of the block under (stage, participant), adding up."""
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        walls = self.seconds.setdefault(stage, {})
        cpus = self.cpu_seconds.setdefault(stage, {})
        walls[participant] = walls.get(participant, 0.0) + wall
        cpus[participant] = cpus.get(participant, 0.0) + cpu

    def total(self, stage: str, participants: list[str], *, cpu: bool = False) -> float:
        table = self.cpu_seconds if cpu else self.seconds
        return sum(table[stage][p] for p in participants)

    def keep_best(self, repeats: list[Timings]) -> None:
        """Record each (stage, participant)'s fastest of ``repeats`` (wall and CPU separately)."""
        for mine, attr in ((self.seconds, "seconds"), (self.cpu_seconds, "cpu_seconds")):
            for stage in getattr(repeats[0], attr):
                for pid in getattr(repeats[0], attr)[stage]:
                    best = min(getattr(r, attr)[stage][pid] for r in repeats)
                    mine.setdefault(stage, {})[pid] = best


@dataclass(frozen=True)
class StudyAois:
    """The AOI table parsed once per study: for the mapping and for the offset estimate."""

    prepared: StimulusAois
    boxes: tuple[pd.Index, np.ndarray]


def fixations_of(events: pd.DataFrame) -> pd.DataFrame:
    """What the ``fixations`` asset makes of ``gaze_events``."""
    from pov_pipeline.gaze.fixations import fixation_table

    return fixation_table(events)


def quality_of(samples: pd.DataFrame, session: SessionInfo) -> pd.DataFrame:
    quality = trial_quality(
        samples,
        screen_px=(int(session.screen_px[0]), int(session.screen_px[1])),
        screen_mm=(float(session.screen_mm[0]), float(session.screen_mm[1])),
        viewing_distance_mm=float(session.viewing_distance_mm),
    )
    return quality_flags(quality, expected_sampling_rate_hz=float(session.sampling_rate_hz))


def aoi_hits_of(fixations: pd.DataFrame, aois: StudyAois, session: SessionInfo) -> pd.DataFrame:
    """The ``gaze_offsets`` correction, then the ``aoi_hits`` mapping of a session's fixations."""
    geometry = ScreenGeometry.from_session(session)
    offsets = gaze_offsets(fixations, aois.boxes, px_per_deg=1.0 / geometry.deg_per_px)
    return map_fixations_to_aois(
        apply_gaze_offsets(fixations, offsets),
        aois.prepared,
        screen_px=(int(session.screen_px[0]), int(session.screen_px[1])),
        deg_per_px=geometry.deg_per_px,
    )


def gaze_stage_from_samples(samples: pd.DataFrame, session: SessionInfo, aois: StudyAois) -> pd.DataFrame:
    """In-memory raw_gaze samples → transitions: detection, fixations, AOIs, dwell, sequences."""
    _, events = detect_trials(samples, ScreenGeometry.from_session(session), method=DEFAULT_METHOD)
    hits = aoi_hits_of(fixations_of(events), aois, session)
    dwell_metrics(hits)
    aoi_sequences(hits)
    return transition_table(hits)


def gaze_stage(folder: Path, participant: str, aois: StudyAois) -> pd.DataFrame:
    """Files → transitions for one participant, as the ingest and gaze assets chain it."""
    session = read_session(folder / "session.json")
    samples = read_gaze(folder, session, participant).samples.to_pandas()
    _, events = detect_trials(samples, ScreenGeometry.from_session(session), method=DEFAULT_METHOD)
    quality_of(samples, session)
    hits = aoi_hits_of(fixations_of(events), aois, session)
    dwell_metrics(hits)
    aoi_sequences(hits)
    return transition_table(hits)


def warm_up_participants(landing: Path, participants: list[str]) -> list[str]:
    """The first participant of each kind of recording (export format, eye(s), sampling rate)."""
    first: dict[tuple[str, str, float], str] = {}
    for pid in participants:
        session = read_session(landing / pid / "session.json")
        first.setdefault((session.format, session.eye, session.sampling_rate_hz), pid)
    return list(first.values())


def measure_ours(landing: Path, participants: list[str], aois: StudyAois, log, repeats: int = 1) -> Timings:  # type: ignore[no-untyped-def]
    """Each stage on each participant, in pipeline order, then the chained stage on its own.

    The in-memory stages run ``repeats`` times per participant and keep the fastest run: single
    runs on a shared VM varied by up to 25 % between identical passes.
    """
    tm = Timings()
    for k, pid in enumerate(participants, start=1):
        folder = landing / pid
        with tm.timing("ingest", pid):
            session = read_session(folder / "session.json")
            table = read_gaze(folder, session, pid).samples
        tm.bytes_read[pid] = (folder / session.gaze_file).stat().st_size
        samples = table.to_pandas()
        tm.samples[pid] = len(samples)
        geometry = ScreenGeometry.from_session(session)
        runs = []
        for _ in range(max(1, repeats)):
            rep = Timings()
            with rep.timing(f"detection ({DEFAULT_METHOD})", pid):
                _, events = detect_trials(samples, geometry, method=DEFAULT_METHOD)
            with rep.timing("detection (ivt)", pid):
                detect_trials(samples, geometry, method="ivt")
            with rep.timing("quality", pid):
                quality_of(samples, session)
            with rep.timing("AOI mapping", pid):
                hits = aoi_hits_of(fixations_of(events), aois, session)
            with rep.timing("dwell", pid):
                dwell_metrics(hits)
            with rep.timing("sequences + transitions", pid):
                aoi_sequences(hits)
                transition_table(hits)
            with rep.timing("gaze stage from raw_gaze", pid):
                gaze_stage_from_samples(samples, session, aois)
            runs.append(rep)
        tm.keep_best(runs)
        for stage in FIRST_PASS_STAGES:
            tm.seconds.setdefault(stage + FIRST_PASS, {})[pid] = runs[0].seconds[stage][pid]
            tm.cpu_seconds.setdefault(stage + FIRST_PASS, {})[pid] = runs[0].cpu_seconds[stage][pid]
        tm.fixations[pid] = len(hits)
        del samples, table, events, hits, runs
        if k % 20 == 0 or k == len(participants):
            log(f"  stages: {k}/{len(participants)} participants")
    for k, pid in enumerate(participants, start=1):
        with tm.timing("gaze stage end to end", pid):
            gaze_stage(landing / pid, pid, aois)
        if k % 20 == 0 or k == len(participants):
            log(f"  end to end: {k}/{len(participants)} participants")
    return tm


def _pymovements_input(samples: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """trial, integer-ms time and a (2 or 4, n) pixel array (NaN = lost) from raw_gaze rows."""
    eyes = [e for e in ("left", "right") if (samples["eye"] == e).any()] or sorted(set(samples["eye"]))
    first = samples[samples["eye"] == eyes[0]]
    pixel = []
    for eye in eyes:
        rows = samples[samples["eye"] == eye]
        if not np.array_equal(rows["t_us"].to_numpy(), first["t_us"].to_numpy()):
            raise ValueError("binocular rows are not time-aligned")
        ok = rows["valid"].to_numpy(bool)
        pixel.append(np.where(ok, rows["x_px"].to_numpy(np.float64), np.nan))
        pixel.append(np.where(ok, rows["y_px"].to_numpy(np.float64), np.nan))
    # pymovements wants one integer time dtype across trials; ms is its native unit.
    t_ms = np.rint(first["t_us"].to_numpy(np.int64) / 1000.0).astype(np.int64)
    return first["trial"].to_numpy(np.int64), t_ms, np.vstack(pixel)


def measure_pymovements(  # type: ignore[no-untyped-def]
    landing: Path, participants: list[str], tm: Timings, *, idt: bool, log, repeats: int = 1
) -> None:
    """Time pymovements on ``participants`` into ``tm`` (:data:`PEER_STAGES`), fastest of ``repeats``."""
    import pymovements as pm

    for k, pid in enumerate(participants, start=1):
        folder = landing / pid
        session = read_session(folder / "session.json")
        samples = read_gaze(folder, session, pid).samples.to_pandas()
        trial, t_ms, pixel = _pymovements_input(samples)
        experiment = pm.gaze.Experiment(
            screen_width_px=int(session.screen_px[0]),
            screen_height_px=int(session.screen_px[1]),
            screen_width_cm=float(session.screen_mm[0]) / 10.0,
            screen_height_cm=float(session.screen_mm[1]) / 10.0,
            distance_cm=float(session.viewing_distance_mm) / 10.0,
            origin="upper left",
            sampling_rate=float(session.sampling_rate_hz),
        )
        runs = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(max(1, repeats)):
                rep = Timings()
                with rep.timing("pymovements gaze stage", pid):
                    with rep.timing("pymovements ivt", pid):
                        gaze = pm.gaze.from_numpy(
                            trial=trial, time=t_ms, pixel=pixel, experiment=experiment, time_unit="ms"
                        )
                        gaze.pix2deg()
                        gaze.pos2vel()
                        gaze.detect("ivt")
                    gaze.compute_event_properties("location")
                runs.append(rep)
            tm.keep_best(runs)
            tm.fixations[f"pm:{pid}"] = gaze.events.frame.height
            if idt:
                # I-DT insists on one constant integer step (120 Hz gives 8 and 9 ms), so it gets
                # an ideal clock at the declared rate, as in benchmarks/peers.py, and a minimum
                # duration that is a whole number of steps (100 ms by default).
                step_ms = max(1, round(1000.0 / float(session.sampling_rate_hz)))
                t_ideal = np.arange(t_ms.size, dtype=np.int64) * step_ms
                with tm.timing("pymovements idt", pid):
                    gaze = pm.gaze.from_numpy(
                        trial=trial, time=t_ideal, pixel=pixel, experiment=experiment, time_unit="ms"
                    )
                    gaze.pix2deg()
                    gaze.detect("idt", minimum_duration=step_ms * max(1, round(100 / step_ms)))
        log(f"  pymovements: {k}/{len(participants)} participants")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "paper"), default="paper")
    parser.add_argument("--lake", type=Path, default=None, help="default build/bench_lake_<size>")
    parser.add_argument(
        "--participants", type=int, default=None, help="time only the first N participants (default: all)"
    )
    parser.add_argument(
        "--peer-participants",
        type=int,
        default=None,
        help="pymovements on the first N participants (default: all for small, 10 for paper)",
    )
    parser.add_argument("--no-peers", action="store_true", help="skip pymovements")
    parser.add_argument("--no-idt", action="store_true", help="skip pymovements I-DT (the slowest)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs per participant of each in-memory stage and of pymovements; the fastest counts",
    )
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, flush=True)

    lake = ensure_study(args.size, args.lake, log=log)
    landing = lake / "landing"
    participants = sorted(p.name for p in landing.iterdir() if p.is_dir() and not p.name.startswith("."))
    if args.participants:
        participants = participants[: max(1, args.participants)]
    aoi_table = read_aois(lake / "study").to_pandas()
    prepare_stimulus_aois(aoi_table)  # warm-up
    cpu = time.process_time()
    aois = StudyAois(prepare_stimulus_aois(aoi_table), aoi_box_table(aoi_table))
    prepare_s = time.process_time() - cpu
    log(f"{len(participants)} participants in {landing}; 1 thread per pool; default method {DEFAULT_METHOD}")
    log(f"code: {code_version()}; in-memory stages and peers: fastest of {args.repeats} runs per participant")
    allocator = "glibc thresholds raised as in the pipeline" if MALLOC_TUNED else "the C library's defaults"
    log(f"machine: {machine_summary()}; allocator: {allocator}")
    log(f"AOI table parsed once per study: {len(aoi_table)} AOIs in {prepare_s * 1000:.1f} ms CPU")

    # Warm-up so that imports, first calls and any JIT compilation are not timed: on the first
    # participant of each kind of recording (binocular frames take kernels monocular ones do
    # not), else a kernel changed since numba's cache was written compiles inside the first pass.
    for pid in warm_up_participants(landing, participants):
        gaze_stage(landing / pid, pid, aois)
        session = read_session(landing / pid / "session.json")
        samples = read_gaze(landing / pid, session, pid).samples.to_pandas()
        detect_trials(samples, ScreenGeometry.from_session(session), method="ivt")
        del samples
    tm = measure_ours(landing, participants, aois, log, repeats=args.repeats)
    n_all = sum(tm.samples.values())
    mb_all = sum(tm.bytes_read.values()) / 1e6

    subset: list[str] = []
    if not args.no_peers:
        import polars

        n_peer = args.peer_participants or (len(participants) if args.size == "small" else 10)
        subset = participants[: max(1, min(n_peer, len(participants)))]
        log(
            f"pymovements {__import__('pymovements').__version__} (polars threads "
            f"{polars.thread_pool_size()}) on the first {len(subset)} participants ..."
        )
        measure_pymovements(landing, subset, tm, idt=not args.no_idt, log=log, repeats=args.repeats)
    n_sub = sum(tm.samples[p] for p in subset)

    def rate(stage: str, group: list[str], n: int) -> float:
        # CPU seconds of a single-threaded process: the per-core figure, robust to other load.
        return n / tm.total(stage, group, cpu=True)

    def ratio(stage: str, peer_stage: str) -> float:
        if not subset or peer_stage not in tm.seconds:
            return float("nan")
        return rate(stage, subset, n_sub) / rate(peer_stage, subset, n_sub)

    def row(stage: str, group: list[str], n: int, extra: str = "", vs: str = "") -> list[str]:
        return [
            stage,
            f"{n:,}",
            f"{tm.total(stage, group):.2f}",
            f"{tm.total(stage, group, cpu=True):.2f}",
            human_rate(rate(stage, group, n)),
            extra,
            vs,
        ]

    headers = ["stage", "samples", "wall s", "CPU s", "samples/s", "", "ours/pymovements"]
    rows = []
    for stage in STAGES:
        extra = f"{mb_all / tm.total(stage, participants, cpu=True):.0f} MB/s" if stage == "ingest" else ""
        vs = ""
        peer = "pymovements gaze stage" if stage.startswith("gaze stage") else "pymovements ivt"
        if (stage.startswith("detection") or stage.startswith("gaze stage")) and subset:
            vs = f"{ratio(stage, peer):.1f}x vs {peer.removeprefix('pymovements ')} (subset)"
        rows.append(row(stage, participants, n_all, extra, vs))
    if args.repeats > 1:
        rows += [row(stage + FIRST_PASS, participants, n_all) for stage in FIRST_PASS_STAGES]
    print()
    print(
        f"Whole study ({len(participants)} participants, {n_all:,} raw_gaze rows, {mb_all:.0f} MB of "
        "exports); samples/s = samples / CPU s (single thread):"
    )
    print(format_table(headers, rows, "lrrrrrl"))

    if subset:
        rows = []
        for stage in (
            f"detection ({DEFAULT_METHOD})",
            "detection (ivt)",
            "gaze stage from raw_gaze",
            "gaze stage end to end",
        ):
            rows.append(row(stage, subset, n_sub)[:5])
            rows[-1][0] = f"ours: {stage}"
        for stage in PEER_STAGES:
            if stage in tm.seconds:
                rows.append(row(stage, subset, n_sub)[:5])
            else:
                rows.append([stage, f"{n_sub:,}", "", "", "skipped"])
        print()
        print(f"Peer subset (identical input: the first {len(subset)} participants, {n_sub:,} rows):")
        print(format_table(headers[:5], rows))
        n_fix_ours = sum(tm.fixations[p] for p in subset)
        n_fix_pm = sum(tm.fixations[f"pm:{p}"] for p in subset)
        print(
            f"  fixations on the subset: ours ({DEFAULT_METHOD}) {n_fix_ours:,}, pymovements ivt {n_fix_pm:,}"
        )

    print()
    det_stage = f"detection ({DEFAULT_METHOD})"
    det_rate = rate(det_stage, participants, n_all)
    # The target is judged on the first pass, what the pipeline does with each frame.
    first_rate = rate(det_stage + FIRST_PASS, participants, n_all)
    met = "met" if first_rate >= TARGET_DETECTION_SAMPLES_PER_S else "NOT met"
    print(
        f"target detection >= {human_rate(TARGET_DETECTION_SAMPLES_PER_S)} samples/s per core: "
        f"{human_rate(first_rate)} samples/s ({DEFAULT_METHOD}, first pass over each frame; "
        f"fastest of {args.repeats}: {human_rate(det_rate)}) -> {met}"
    )
    ivt_rate = rate("detection (ivt)", participants, n_all)
    print(f"detection (ivt) per core: {human_rate(ivt_rate)} samples/s")
    if subset:
        for stage, what in (
            ("gaze stage from raw_gaze", "in-memory samples -> transitions, same input as pymovements"),
            ("gaze stage end to end", "files -> transitions, incl. reading and quality"),
        ):
            stage_ratio = ratio(stage, "pymovements gaze stage")
            met = "met" if stage_ratio >= TARGET_STAGE_RATIO else "NOT met"
            print(
                f"target gaze stage >= {TARGET_STAGE_RATIO:.0f}x pymovements, {stage} ({what}): "
                f"{stage_ratio:.1f}x -> {met}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
