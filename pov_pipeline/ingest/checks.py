"""Checks across a participant's delivered files, and per-participant error isolation.

The readers judge one file at a time. What needs two files (the gaze export against
``session.json``, ``responses.csv`` or the study's stimuli) is decided here, as pure functions the
ingest assets call, so the decisions are testable without Dagster. See ``docs/bad_input.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pov_pipeline.ingest.errors import GazeFormatError
from pov_pipeline.schemas import validate_participant_id

T = TypeVar("T")

#: Errors that mean "this participant's delivery is bad" (as opposed to a bug or a broken machine).
#: ``ValueError`` covers ``GazeFormatError`` and ``StudyFormatError``; ``OSError`` covers unreadable
#: or vanished files.
PARTICIPANT_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def sampling_rate_mismatch_pct(report: Mapping[str, Any]) -> float | None:
    """How far the measured rate is from the one ``session.json`` declares, in % of the declared."""
    declared = report.get("session_rate_hz") or report.get("declared_rate_hz")
    measured = report.get("measured_rate_hz")
    if not declared or not measured:
        return None
    return round(100.0 * abs(float(measured) - float(declared)) / float(declared), 3)


def check_sampling_rate(
    report: Mapping[str, Any], session_path: Path, *, max_contradiction_pct: float
) -> float | None:
    """Refuse a gaze file whose measured sampling rate contradicts ``session.json``.

    Detection works from the time stamps, so a small mismatch is harmless and only reported (the
    ``sampling_rate_regular`` check warns). A gross one (500 Hz declared, 1000 Hz recorded) means the
    session file describes another recording, and its screen geometry cannot be trusted either.

    Parameters
    ----------
    report:
        The reader's report (``session_rate_hz`` or ``declared_rate_hz``, and ``measured_rate_hz``).
    session_path:
        ``session.json``, named in the error.
    max_contradiction_pct:
        Largest accepted mismatch in % of the declared rate.

    Returns
    -------
    float | None
        The mismatch in %, or ``None`` when either rate is unknown.

    Raises
    ------
    GazeFormatError
        When the mismatch exceeds ``max_contradiction_pct``.
    """
    mismatch = sampling_rate_mismatch_pct(report)
    if mismatch is not None and mismatch > max_contradiction_pct:
        declared = report.get("session_rate_hz") or report.get("declared_rate_hz")
        raise GazeFormatError(
            session_path,
            f"a sampling_rate_hz within {max_contradiction_pct:g}% of the gaze file's measured "
            f"{report.get('measured_rate_hz')} Hz",
            f"{declared} Hz",
            column="sampling_rate_hz",
            note=f"{report.get('file', 'the gaze file')} was recorded at another rate than the session says",
        )
    return mismatch


@dataclass
class TrialAlignment:
    """How a participant's gaze trials and responses line up.

    Attributes
    ----------
    gaze_without_response:
        Trials with samples but no row in ``responses.csv``.
    response_without_gaze:
        Trials answered but without samples.
    stimulus_filled:
        Trials whose gaze file named no stimulus; filled from ``responses.csv``.
    """

    gaze_without_response: list[int] = field(default_factory=list)
    response_without_gaze: list[int] = field(default_factory=list)
    stimulus_filled: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every trial has both gaze and a response."""
        return not self.gaze_without_response and not self.response_without_gaze

    def as_metadata(self) -> dict[str, Any]:
        """JSON-serialisable counts and the first trials of each kind."""
        return {
            "gaze_without_response": {
                "n": len(self.gaze_without_response),
                "trials": self.gaze_without_response[:20],
            },
            "response_without_gaze": {
                "n": len(self.response_without_gaze),
                "trials": self.response_without_gaze[:20],
            },
            "stimulus_filled_from_responses": len(self.stimulus_filled),
        }


def align_trials(samples: pa.Table, responses: pa.Table, gaze_path: Path) -> tuple[pa.Table, TrialAlignment]:
    """Match gaze trials with answered trials; fill missing stimulus ids from the responses.

    Trials present on one side only are kept and reported: gaze without an answer is still gaze
    data, and training drops answers without gaze with the reason ``no_gaze``. A trial whose gaze
    file names no stimulus (``""``) takes the stimulus of its response. A trial where both name a
    stimulus and they differ is an error, since pairing the wrong caption with the gaze would
    silently corrupt training examples.

    Parameters
    ----------
    samples:
        One participant's ``RAW_GAZE`` rows.
    responses:
        The same participant's ``RESPONSES`` rows.
    gaze_path:
        The gaze file, named in the error.

    Returns
    -------
    tuple[pa.Table, TrialAlignment]
        The samples (stimulus ids filled where they were empty) and the alignment.

    Raises
    ------
    GazeFormatError
        When gaze and response name different stimuli for the same trial.
    """
    trial = samples.column("trial").to_numpy()
    stim = samples.column("stimulus_id").to_numpy(zero_copy_only=False).astype(object)
    gaze_trials, first = np.unique(trial, return_index=True)
    resp_trials = responses.column("trial").to_numpy()
    resp_stim = dict(zip(resp_trials.tolist(), responses.column("stimulus_id").to_pylist(), strict=True))
    alignment = TrialAlignment(
        gaze_without_response=sorted(set(gaze_trials.tolist()) - set(resp_trials.tolist())),
        response_without_gaze=sorted(set(resp_trials.tolist()) - set(gaze_trials.tolist())),
    )
    fill: dict[int, str] = {}
    for t, i in zip(gaze_trials.tolist(), first.tolist(), strict=True):
        answered = resp_stim.get(t)
        if answered is None:
            continue
        seen = set(stim[trial == t].tolist())
        if seen == {""}:
            fill[t] = answered
        elif answered not in seen:
            raise GazeFormatError(
                gaze_path,
                f"trial {t} to show stimulus {answered!r} as responses.csv says",
                ", ".join(sorted(s for s in seen if s)) or str(stim[i]),
                column="stimulus_id",
            )
    if fill:
        trials = np.array(sorted(fill), dtype=trial.dtype)
        idx = np.searchsorted(trials, trial)
        hit = (idx < len(trials)) & (trials[np.minimum(idx, len(trials) - 1)] == trial)
        values = np.array([fill[t] for t in trials.tolist()], dtype=object)
        stim = np.where(hit, values[np.minimum(idx, len(trials) - 1)], stim)
        samples = samples.set_column(
            samples.schema.get_field_index("stimulus_id"), "stimulus_id", pa.array(stim, pa.string())
        )
        alignment.stimulus_filled = sorted(fill)
    return samples, alignment


def check_gaze_stimuli(samples: pa.Table, known_stimuli: set[str], gaze_path: Path) -> None:
    """Refuse gaze trials that name a stimulus the study does not have.

    Raises
    ------
    GazeFormatError
        Naming the first unknown id and its trial.
    """
    stim = samples.column("stimulus_id")
    unknown = pc.invert(pc.is_in(stim, value_set=pa.array(sorted(known_stimuli), pa.string())))
    if pc.any(unknown).as_py():
        bad = samples.filter(unknown)
        names = sorted(set(bad.column("stimulus_id").to_pylist()))
        raise GazeFormatError(
            gaze_path,
            "stimulus ids listed in study/stimuli.csv",
            names[0],
            column="stimulus_id",
            note=f"trial {bad.column('trial')[0].as_py()}; {len(names)} unknown id(s): "
            + ", ".join(map(repr, names[:5])),
        )


def describe_error(error: BaseException) -> str:
    """One line for a participant's failure: the error type and its message."""
    return f"{type(error).__name__}: {error}"


def run_per_participant(
    participants: Iterable[str], read: Callable[[str], T]
) -> tuple[dict[str, T], dict[str, BaseException]]:
    """Call ``read`` for every participant, collecting results and delivery errors separately.

    One bad delivery must not stop the others in a run over many participants. Only
    :data:`PARTICIPANT_ERRORS` are collected; anything else (a bug, ``MemoryError``,
    ``KeyboardInterrupt``) propagates at once. An invalid participant id is collected as the
    participant's error without calling ``read``, so it never reaches a path.

    Returns
    -------
    tuple[dict[str, T], dict[str, BaseException]]
        Results of the participants that worked and errors of those that did not, both in input order.
    """
    results: dict[str, T] = {}
    errors: dict[str, BaseException] = {}
    for participant in participants:
        try:
            validate_participant_id(participant)
            results[participant] = read(participant)
        except PARTICIPANT_ERRORS as exc:
            errors[participant] = exc
    return results, errors
