"""Participants of the demo study: individual traits and the eye tracker each was recorded with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pov_pipeline.demo.stimuli import SCREEN_MM, SCREEN_PX, VIEWING_DISTANCE_MM


def px_per_deg() -> float:
    """Pixels per degree of visual angle at the screen centre (atan geometry)."""
    mm_per_px = SCREEN_MM[0] / SCREEN_PX[0]
    mm_per_deg = 2.0 * VIEWING_DISTANCE_MM * np.tan(np.deg2rad(0.5))
    return float(mm_per_deg / mm_per_px)


@dataclass(frozen=True)
class Tracker:
    """Recording set-up of one session."""

    name: str
    format: str  # eyelink_asc | tobii_prolab_tsv
    sampling_rate_hz: int
    eye: str  # left | right | binocular

    @property
    def eyes(self) -> tuple[str, ...]:
        """Eyes with a row each in the canonical samples."""
        return ("left", "right") if self.eye == "binocular" else (self.eye,)

    @property
    def gaze_file(self) -> str:
        """File name of the export."""
        return "gaze.asc" if self.format == "eyelink_asc" else "gaze.tsv"


@dataclass(frozen=True)
class Participant:
    """Traits of one participant (all drawn from ``default_rng([seed, k, 0])``).

    ``reading_pref`` and ``verify_pref`` are probabilities on the logit scale's natural scale
    (0..1); per trial they are perturbed on the logit scale, so perception varies between trials.
    """

    participant_id: str
    index: int
    tracker: Tracker
    reading_pref: float  # how readily the eyes leave the picture for the caption
    verify_pref: float  # how often the mention word and its object are compared directly
    fixation_scale: float  # multiplies fixation durations
    calib_offset_px: tuple[float, float]  # systematic error added to every gaze sample
    right_eye_offset_px: tuple[float, float]  # vergence / calibration difference of the right eye
    noise_deg: float  # RMS sample-to-sample precision (white noise, per axis)
    blink_rate_hz: float
    loss_rate_hz: float  # sporadic track loss episodes per second
    strictness: float  # z-score; strict participants answer "unsure"/"no" when unverified
    yes_bias: float  # individual answer bias (logit of "yes")
    unsure_bias: float  # individual answer bias (logit of "unsure")
    pupil_base: float  # EyeLink area units or Tobii mm
    clock_start_us: int  # tracker clock at the first recorded sample


def make_participant(seed: int, k: int) -> Participant:
    """Draw participant number ``k`` (1-based) of the study with ``seed``.

    Participants alternate between an EyeLink ASC and a Tobii Pro Lab TSV export, so every study
    with two or more participants has both formats; the rate and eye are then drawn.
    """
    rng = np.random.default_rng([seed, k, 0])
    ppd = px_per_deg()
    if k % 2 == 1:
        rate = int(rng.choice([500, 1000]))
        eye = str(rng.choice(["left", "right", "binocular"], p=[0.35, 0.3, 0.35]))
        tracker = Tracker("SR Research EyeLink 1000 Plus", "eyelink_asc", rate, eye)
        noise_deg = float(rng.uniform(0.01, 0.04))
        pupil_base = float(rng.uniform(700.0, 1500.0))
        clock = int(rng.integers(500_000, 5_000_000)) * 1000
    else:
        rate = int(rng.choice([120, 300]))
        tracker = Tracker(
            "Tobii Pro Spectrum" if rate == 300 else "Tobii Pro Fusion", "tobii_prolab_tsv", rate, "binocular"
        )
        noise_deg = float(rng.uniform(0.04, 0.12))
        pupil_base = float(rng.uniform(2.6, 4.2))
        clock = int(rng.integers(1_000_000, 90_000_000))
    angle = rng.uniform(0, 2 * np.pi)
    offset_deg = rng.uniform(0.2, 1.0)
    right = rng.normal(0.0, 0.25, size=2) * ppd
    return Participant(
        participant_id=f"p{k:03d}",
        index=k,
        tracker=tracker,
        reading_pref=float(rng.beta(6.0, 3.0)),
        verify_pref=float(rng.beta(3.0, 2.0)),
        fixation_scale=float(np.exp(rng.normal(0.0, 0.15))),
        calib_offset_px=(float(offset_deg * ppd * np.cos(angle)), float(offset_deg * ppd * np.sin(angle))),
        right_eye_offset_px=(float(right[0]), float(right[1])),
        noise_deg=noise_deg,
        blink_rate_hz=float(rng.uniform(0.1, 0.35)),
        loss_rate_hz=float(rng.uniform(0.02, 0.2)),
        strictness=float(rng.normal(0.0, 1.0)),
        yes_bias=float(rng.normal(0.0, 0.25)),
        unsure_bias=float(rng.normal(0.0, 0.25)),
        pupil_base=pupil_base,
        clock_start_us=clock,
    )
