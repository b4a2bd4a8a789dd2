"""Scanpath and judgement model of the demo study, vectorized over trials.

A trial's scanpath is a Markov chain over the stimulus's AOIs (objects, caption words, background)
whose transition matrix depends on the stimulus (salience of the objects, caption length, which
word names which object) and on the participant, plus per-trial randomness:

* ``p_text`` — probability of leaving the picture for the caption (participant's reading
  preference, perturbed per trial on the logit scale);
* ``v`` — probability of a *verification saccade* from the word naming an object straight to that
  object (and, at a lower rate, from that object back to the word).

From the fixation sequence three perception flags are read off (see :func:`perception_flags`):
``looked_central`` (the central object was fixated), ``read_mention`` (the word naming an object
was fixated) and ``verified`` (a direct transition, either direction, between that word and the
object it names). Blinks (:func:`draw_blinks`) are drawn before the flags because vision is
suppressed while the lid moves and is closed: a fixation counts by the time it was *seen*.
The answer probabilities depend on the condition, the participant's strictness/biases and these
flags (:func:`answer_probabilities`). Because ``verified`` needs the two AOIs to be *consecutive*,
the order of fixations carries information that dwell totals do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pov_pipeline.demo.participants import Participant, px_per_deg
from pov_pipeline.demo.stimuli import IMAGE_ORIGIN_PX, IMAGE_SIZE_PX, Stimulus

MAX_OBJECTS = 6
MAX_WORDS = 8
N_STATES = MAX_OBJECTS + MAX_WORDS + 1
BACKGROUND = N_STATES - 1
SHAPE_CODES = {"rect": 0, "ellipse": 1, "polygon": 2}
MAX_VERTICES = 12
#: Fixations shorter than this inside the trial window are ignored by the flags: an event
#: detector would not report them either.
MIN_COUNTED_FIXATION_MS = 80.0

CENTRAL_SALIENCE = 3.0
PERIPHERAL_SALIENCE = 1.0
BACKGROUND_SALIENCE = 0.6
#: Centre bias of the first fixation on the central object.
FIRST_FIXATION_CENTRAL_BOOST = 3.0

#: Mean fixation durations (ms) by AOI kind before the participant's scale.
FIXATION_MEAN_MS = {"object": 290.0, "word": 215.0, "background": 240.0}
FIXATION_GAMMA_SHAPE = 4.5

CONDITION_CODES = {"central": 0, "peripheral": 1, "ambiguous": 2}
#: Added to every trial's verification logit: asked to judge the caption, people compare the named
#: object with the picture more readily than their free-viewing habit (``verify_pref``) suggests.
VERIFY_TASK_LOGIT = 1.0


@dataclass(frozen=True)
class StimulusArrays:
    """Stimulus design as padded arrays, indexed by stimulus position in the study list."""

    n_objects: np.ndarray  # (S,)
    n_words: np.ndarray  # (S,)
    mention_word: np.ndarray  # (S,) word index
    mention_object: np.ndarray  # (S,) object slot (central slot 0 for ambiguous captions)
    condition: np.ndarray  # (S,) CONDITION_CODES
    shape: np.ndarray  # (S, N_STATES) shape code, -1 where absent; words are rects
    bbox: np.ndarray  # (S, N_STATES, 4) x0, y0, x1, y1 screen px
    ellipse: np.ndarray  # (S, N_STATES, 4) cx, cy, rx, ry
    polygon: np.ndarray  # (S, N_STATES, MAX_VERTICES, 2), padded by repeating the last vertex
    interior: np.ndarray  # (S, N_STATES, 2)


def stimulus_arrays(stimuli: list[Stimulus]) -> StimulusArrays:
    """Pack the stimuli into :class:`StimulusArrays`."""
    n = len(stimuli)
    shape = np.full((n, N_STATES), -1, dtype=np.int8)
    bbox = np.zeros((n, N_STATES, 4))
    ellipse = np.zeros((n, N_STATES, 4))
    polygon = np.zeros((n, N_STATES, MAX_VERTICES, 2))
    interior = np.zeros((n, N_STATES, 2))
    for s, stim in enumerate(stimuli):
        for j, obj in enumerate(stim.objects):
            shape[s, j] = SHAPE_CODES[obj.shape]
            bbox[s, j] = obj.bbox_px
            interior[s, j] = obj.interior_px
            if obj.shape == "ellipse":
                ellipse[s, j] = obj.points_px
            if obj.shape == "polygon":
                pts = np.asarray(obj.points_px).reshape(-1, 2)
                polygon[s, j, : len(pts)] = pts
                polygon[s, j, len(pts) :] = pts[-1]
        for w, box in enumerate(stim.word_boxes_px):
            shape[s, MAX_OBJECTS + w] = SHAPE_CODES["rect"]
            bbox[s, MAX_OBJECTS + w] = box
            interior[s, MAX_OBJECTS + w] = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    return StimulusArrays(
        n_objects=np.array([len(s.objects) for s in stimuli]),
        n_words=np.array([len(s.words) for s in stimuli]),
        mention_word=np.array([s.mention_word_index for s in stimuli]),
        mention_object=np.array([s.mention_object_index for s in stimuli]),
        condition=np.array([CONDITION_CODES[s.condition] for s in stimuli]),
        shape=shape,
        bbox=bbox,
        ellipse=ellipse,
        polygon=polygon,
        interior=interior,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return float(np.log(p / (1 - p)))


def contains(
    arrays: StimulusArrays, stim: np.ndarray, state: np.ndarray, x_px: np.ndarray, y_px: np.ndarray
) -> np.ndarray:
    """Whether points lie inside AOI ``state`` of stimulus ``stim`` (all arrays broadcast, 1-D)."""
    code = arrays.shape[stim, state]
    box = arrays.bbox[stim, state]
    inside = (x_px >= box[:, 0]) & (x_px <= box[:, 2]) & (y_px >= box[:, 1]) & (y_px <= box[:, 3])
    inside &= code >= 0
    # Only points inside the bounding box need the exact test of their shape.
    el_idx = np.flatnonzero(inside & (code == 1))
    if el_idx.size:
        el = arrays.ellipse[stim[el_idx], state[el_idx]]
        inside[el_idx] = ((x_px[el_idx] - el[:, 0]) / el[:, 2]) ** 2 + (
            (y_px[el_idx] - el[:, 1]) / el[:, 3]
        ) ** 2 <= 1.0
    po_idx = np.flatnonzero(inside & (code == 2))
    if po_idx.size:
        poly = arrays.polygon[stim[po_idx], state[po_idx]]  # (n, V, 2)
        xa, ya = poly[:, :, 0], poly[:, :, 1]
        xb, yb = np.roll(xa, -1, axis=1), np.roll(ya, -1, axis=1)
        px, py = x_px[po_idx, None], y_px[po_idx, None]
        # Even-odd ray casting; padded zero-length edges never cross the ray.
        crosses = ((ya > py) != (yb > py)) & (
            px < (xb - xa) * (py - ya) / np.where(yb != ya, yb - ya, 1.0) + xa
        )
        inside[po_idx] = (crosses.sum(axis=1) % 2) == 1
    return inside


def _transition_matrices(
    arrays: StimulusArrays, stim: np.ndarray, p_text: np.ndarray, v: np.ndarray, sal: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-trial transition matrices ``(N, S, S)`` and initial distributions ``(N, S)``."""
    n = len(stim)
    rows = np.arange(n)
    n_words = arrays.n_words[stim]
    mw = MAX_OBJECTS + arrays.mention_word[stim]
    mo = arrays.mention_object[stim]

    img = np.concatenate([sal, np.full((n, 1), BACKGROUND_SALIENCE)], axis=1)  # objects + background
    img_states = np.r_[np.arange(MAX_OBJECTS), BACKGROUND]
    img_dist = img / img.sum(axis=1, keepdims=True)

    text_entry = np.zeros((n, N_STATES))
    text_entry[:, MAX_OBJECTS] = 0.8
    text_entry[:, MAX_OBJECTS + 1] = 0.2

    P = np.zeros((n, N_STATES, N_STATES))
    # From picture states: refixating the same AOI is less likely than moving on.
    for a, state in enumerate(img_states):
        w = img.copy()
        w[:, a] *= 0.35
        w /= w.sum(axis=1, keepdims=True)
        P[:, state, img_states] = (1.0 - p_text)[:, None] * w
        P[:, state, :] += p_text[:, None] * text_entry
    # Back-check from the named object to its word (the reverse verification direction).
    vb = 0.35 * v
    P[rows, mo, :] *= (1.0 - vb)[:, None]
    P[rows, mo, mw] += vb

    # From words: mostly forward reading with skips and regressions, sometimes back to the picture.
    j = np.arange(MAX_WORDS)[None, :]
    valid = j < n_words[:, None]
    last = j == (n_words[:, None] - 1)
    fwd = np.where(last, 0.0, 0.78)
    skip = np.where(j + 2 < n_words[:, None], 0.06, 0.0)
    regress = np.where(j > 0, np.where(last, 0.15, 0.08), 0.0)
    refix = np.where(last, 0.10, 0.03)
    exit_ = 1.0 - fwd - skip - regress - refix
    for jj in range(MAX_WORDS):
        s = MAX_OBJECTS + jj
        ok = valid[:, jj]
        P[:, s, :] = 0.0
        if jj + 1 < MAX_WORDS:
            P[:, s, s + 1] = fwd[:, jj]
        if jj + 2 < MAX_WORDS:
            P[:, s, s + 2] = skip[:, jj]
        if jj > 0:
            P[:, s, s - 1] = regress[:, jj]
        P[:, s, s] = refix[:, jj]
        P[:, s, img_states] += exit_[:, jj, None] * img_dist
        P[~ok, s, :] = 0.0
        P[~ok, s, BACKGROUND] = 1.0
    # The mention word: with probability v a direct saccade to the object it names; otherwise the
    # ordinary word row with that object removed, so verification happens only through v.
    row = P[rows, mw, :].copy()
    row[rows, mo] = 0.0
    row /= row.sum(axis=1, keepdims=True)
    P[rows, mw, :] = (1.0 - v)[:, None] * row
    P[rows, mw, mo] += v

    init = np.zeros((n, N_STATES))
    first = img.copy()
    first[:, 0] *= FIRST_FIXATION_CENTRAL_BOOST
    first /= first.sum(axis=1, keepdims=True)
    init[:, img_states] = (1.0 - 0.5 * p_text)[:, None] * first
    init[:, MAX_OBJECTS] += 0.5 * p_text
    return P, init


@dataclass(frozen=True)
class Scanpaths:
    """Fixation sequences of ``N`` trials, padded to ``L`` fixations (``n_fix`` are real)."""

    stim: np.ndarray  # (N,) stimulus position
    state: np.ndarray  # (N, L) AOI state index
    x_px: np.ndarray  # (N, L) true landing position (screen px, before calibration error)
    y_px: np.ndarray
    fix_start_ms: np.ndarray  # (N, L) onset relative to stimulus onset
    fix_ms: np.ndarray  # (N, L) duration (already truncated at the trial end)
    sacc_ms: np.ndarray  # (N, L) duration of the saccade *after* fixation l
    n_fix: np.ndarray  # (N,)
    p_text: np.ndarray  # (N,) per-trial latents
    v: np.ndarray


def _sample_landing(
    arrays: StimulusArrays, stim: np.ndarray, state: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Landing positions inside the target AOIs (background: inside the picture, off the objects)."""
    n = len(stim)
    x = np.empty(n)
    y = np.empty(n)
    todo = np.ones(n, dtype=bool)
    is_bg = state == BACKGROUND
    is_word = (state >= MAX_OBJECTS) & ~is_bg
    safe_state = np.where(is_bg, 0, state)
    box = arrays.bbox[stim, safe_state]
    w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    # Words: the preferred viewing position is a little left of the word centre.
    cx = np.where(is_word, box[:, 0] + 0.42 * w, (box[:, 0] + box[:, 2]) / 2)
    cy = (box[:, 1] + box[:, 3]) / 2
    sx = np.where(is_word, 0.2 * w, 0.22 * w)
    sy = np.where(is_word, 0.12 * h, 0.22 * h)
    ix0, iy0 = IMAGE_ORIGIN_PX
    for _ in range(12):
        idx = np.flatnonzero(todo)
        if idx.size == 0:
            break
        gx = cx[idx] + sx[idx] * rng.standard_normal(idx.size)
        gy = cy[idx] + sy[idx] * rng.standard_normal(idx.size)
        bg = is_bg[idx]
        gx[bg] = ix0 + 20 + rng.random(bg.sum()) * (IMAGE_SIZE_PX[0] - 40)
        gy[bg] = iy0 + 20 + rng.random(bg.sum()) * (IMAGE_SIZE_PX[1] - 40)
        ok = contains(arrays, stim[idx], safe_state[idx], gx, gy)
        # Background points must avoid every object of the scene.
        bidx = np.flatnonzero(bg)
        hit_any = np.zeros(bidx.size, dtype=bool)
        for slot in range(MAX_OBJECTS):
            hit_any |= contains(arrays, stim[idx[bidx]], np.full(bidx.size, slot), gx[bidx], gy[bidx])
        ok[bidx] = ~hit_any
        x[idx[ok]] = gx[ok]
        y[idx[ok]] = gy[ok]
        todo[idx[ok]] = False
    # Rare leftovers: the AOI's interior point (background: the picture's top-left margin).
    rest = np.flatnonzero(todo)
    x[rest] = arrays.interior[stim[rest], safe_state[rest], 0]
    y[rest] = arrays.interior[stim[rest], safe_state[rest], 1]
    bg_rest = rest[is_bg[rest]]
    x[bg_rest], y[bg_rest] = ix0 + 8.0, iy0 + 8.0
    return x, y


def saccade_duration_ms(amplitude_deg: np.ndarray) -> np.ndarray:
    """Main-sequence saccade duration: 2.2 ms/deg × amplitude + 21 ms."""
    return 2.2 * amplitude_deg + 21.0


def simulate_scanpaths(
    arrays: StimulusArrays,
    stim: np.ndarray,
    participant: Participant,
    trial_duration_s: float,
    rng: np.random.Generator,
) -> Scanpaths:
    """Simulate one scanpath per entry of ``stim`` for ``participant``.

    Parameters
    ----------
    arrays:
        The study's stimuli as arrays.
    stim:
        Stimulus position per trial (repeat entries for Monte-Carlo replicas).
    participant:
        Whose traits drive reading, verification and fixation durations.
    trial_duration_s:
        Viewing time per trial; the last fixation is cut at the trial end.
    rng:
        Random stream.
    """
    n = len(stim)
    T_ms = trial_duration_s * 1000.0
    L = int(np.ceil(T_ms / 110.0)) + 4
    p_text = _sigmoid(_logit(participant.reading_pref) + 0.9 * rng.standard_normal(n))
    v = _sigmoid(_logit(participant.verify_pref) + VERIFY_TASK_LOGIT + 1.3 * rng.standard_normal(n))
    present = np.arange(MAX_OBJECTS)[None, :] < arrays.n_objects[stim][:, None]
    sal = np.where(np.arange(MAX_OBJECTS)[None, :] == 0, CENTRAL_SALIENCE, PERIPHERAL_SALIENCE)
    sal = present * sal * np.exp(0.35 * rng.standard_normal((n, MAX_OBJECTS)))
    P, init = _transition_matrices(arrays, stim, p_text, v, sal)

    rows = np.arange(n)
    state = np.empty((n, L), dtype=np.int64)
    cum0 = np.cumsum(init, axis=1)
    u = rng.random(n) * cum0[:, -1]
    state[:, 0] = np.minimum((cum0 < u[:, None]).sum(axis=1), N_STATES - 1)
    cumP = np.cumsum(P, axis=2)
    for step in range(1, L):
        c = cumP[rows, state[:, step - 1]]
        u = rng.random(n) * c[:, -1]
        state[:, step] = np.minimum((c < u[:, None]).sum(axis=1), N_STATES - 1)

    flat_stim = np.repeat(stim, L)
    xs, ys = _sample_landing(arrays, flat_stim, state.ravel(), rng)
    x = xs.reshape(n, L)
    y = ys.reshape(n, L)

    kind_mean = np.where(
        state == BACKGROUND,
        FIXATION_MEAN_MS["background"],
        np.where(state >= MAX_OBJECTS, FIXATION_MEAN_MS["word"], FIXATION_MEAN_MS["object"]),
    )
    mean = kind_mean * participant.fixation_scale
    fix = rng.gamma(FIXATION_GAMMA_SHAPE, mean / FIXATION_GAMMA_SHAPE)
    fix = np.maximum(fix, 60.0)
    # The first fixation was already under way at stimulus onset.
    fix[:, 0] *= rng.uniform(0.3, 1.0, n)
    amp = np.hypot(np.diff(x, axis=1), np.diff(y, axis=1)) / px_per_deg()
    sacc = np.zeros((n, L))
    sacc[:, :-1] = saccade_duration_ms(amp)
    start = np.concatenate([np.zeros((n, 1)), np.cumsum(fix + sacc, axis=1)[:, :-1]], axis=1)
    in_trial = start < T_ms
    fix_cut = np.clip(np.minimum(fix, T_ms - start), 0.0, None)
    n_fix = in_trial.sum(axis=1)
    if np.any(n_fix == L):  # pragma: no cover - L leaves a wide margin
        raise RuntimeError("scanpath buffer too short")
    return Scanpaths(stim, state, x, y, start, np.where(in_trial, fix_cut, 0.0), sacc, n_fix, p_text, v)


@dataclass(frozen=True)
class Blinks:
    """Blinks of a set of trials; times relative to stimulus onset (ms).

    The lid closes during ``[onset_ms - flank_ms, onset_ms)``, is closed for ``core_ms`` and opens
    during the same flank afterwards.
    """

    trial: np.ndarray  # (B,) row of the trial in the scanpaths
    onset_ms: np.ndarray  # (B,) start of the closed phase
    core_ms: np.ndarray  # (B,)
    flank_ms: np.ndarray  # (B,)

    @property
    def start_ms(self) -> np.ndarray:
        return self.onset_ms - self.flank_ms

    @property
    def end_ms(self) -> np.ndarray:
        return self.onset_ms + self.core_ms + self.flank_ms


def draw_blinks(
    n_trials: int, blink_rate_hz: float, trial_duration_s: float, rng: np.random.Generator
) -> Blinks:
    """Poisson blinks: closed phase 100–300 ms, lid movement 8–25 ms on either side.

    Sorted by trial, then onset.
    """
    n_blinks = rng.poisson(blink_rate_hz * trial_duration_s, n_trials)
    trial = np.repeat(np.arange(n_trials), n_blinks)
    onset = rng.uniform(0.0, trial_duration_s * 1000.0, len(trial))
    order = np.lexsort((onset, trial))
    return Blinks(
        trial=trial,
        onset_ms=onset[order],
        core_ms=rng.uniform(100.0, 300.0, len(trial)),
        flank_ms=rng.uniform(8.0, 25.0, len(trial)),
    )


def seen_fixation_ms(paths: Scanpaths, blinks: Blinks) -> np.ndarray:
    """Fixation durations ``(N, L)`` minus the time a blink (lid movement included) covered them.

    Vision is suppressed from the moment the lid starts to close until it has opened again
    (Volkmann et al. 1980), so that part of a fixation brings no information.
    """
    seen = paths.fix_ms.copy()
    if len(blinks.trial) == 0:
        return seen
    fix_start = paths.fix_start_ms[blinks.trial]  # (B, L)
    fix_end = fix_start + paths.fix_ms[blinks.trial]
    covered = np.minimum(fix_end, blinks.end_ms[:, None]) - np.maximum(fix_start, blinks.start_ms[:, None])
    np.subtract.at(seen, blinks.trial, np.clip(covered, 0.0, None))
    return np.clip(seen, 0.0, None)


@dataclass(frozen=True)
class PerceptionFlags:
    """Perception flags per trial."""

    looked_central: np.ndarray
    read_mention: np.ndarray
    verified: np.ndarray
    fixated_mentioned_object: np.ndarray
    n_counted_fixations: np.ndarray


def perception_flags(
    arrays: StimulusArrays, paths: Scanpaths, blinks: Blinks | None = None
) -> PerceptionFlags:
    """Read the perception flags off the fixation sequences.

    Only fixations seen for at least ``MIN_COUNTED_FIXATION_MS`` inside the trial count (time
    under a blink in ``blinks`` is not seen, see :func:`seen_fixation_ms`). Consecutive counted
    fixations on the same AOI are merged (as an AOI sequence is), so ``verified`` means the
    mention word and its object follow each other directly in the AOI sequence.
    """
    fix_ms = paths.fix_ms if blinks is None else seen_fixation_ms(paths, blinks)
    counted = fix_ms >= MIN_COUNTED_FIXATION_MS
    n, L = paths.state.shape
    mw = (MAX_OBJECTS + arrays.mention_word[paths.stim])[:, None]
    mo = arrays.mention_object[paths.stim][:, None]
    state = np.where(counted, paths.state, -1)
    # Compact the counted fixations to the left, keeping order, then merge repeats.
    order = np.argsort(~counted, axis=1, kind="stable")
    seq = np.take_along_axis(state, order, axis=1)
    keep = np.ones((n, L), dtype=bool)
    keep[:, 1:] = seq[:, 1:] != seq[:, :-1]
    merged_next = np.full((n, L), -1)
    # Next distinct AOI after each kept position.
    idx = np.where(keep, np.arange(L)[None, :], L)
    nxt = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1]
    nxt_after = np.concatenate([nxt[:, 1:], np.full((n, 1), L)], axis=1)
    seq_pad = np.concatenate([seq, np.full((n, 1), -1)], axis=1)
    merged_next = np.take_along_axis(seq_pad, nxt_after, axis=1)
    valid = keep & (seq >= 0)
    pair = valid & (((seq == mw) & (merged_next == mo)) | ((seq == mo) & (merged_next == mw)))
    return PerceptionFlags(
        looked_central=(state == 0).any(axis=1),
        read_mention=(state == mw).any(axis=1),
        verified=pair.any(axis=1),
        fixated_mentioned_object=(state == mo).any(axis=1),
        n_counted_fixations=counted.sum(axis=1),
    )


#: Logits (yes, no, unsure) per condition and perception state, before the participant terms.
#: States: 0 verified; 1 read the mention and saw the central object; 2 saw the central object
#: without reading the mention; 3 did not look at the central object.
#:
#: Only a direct comparison settles the question: without one (states 1–3, which share their
#: logits) people lean to "unsure", whatever else they looked at. So the perception that matters is
#: the *order* of fixations (a word → object transition), not which AOIs received dwell; shuffling
#: a trial's fixations destroys it, which is what the shuffled-fixation ablation tests.
_UNVERIFIED = {"central": [0.2, -0.6, 1.8], "peripheral": [-0.6, 1.0, 1.6], "ambiguous": [0.0, 0.2, 2.2]}
BASE_LOGITS = np.array(
    [
        # central captions: the right answer is "yes"
        [[3.6, -1.0, 0.2], *[_UNVERIFIED["central"]] * 3],
        # peripheral captions: the right answer is "no"
        [[-1.2, 3.6, 0.2], *[_UNVERIFIED["peripheral"]] * 3],
        # ambiguous captions: mostly "unsure"; a direct comparison tempts lenient people to "yes"
        [[2.0, 0.3, 0.8], *[_UNVERIFIED["ambiguous"]] * 3],
    ]
)
#: How much strictness moves each answer, per condition and state (added as strictness × this).
STRICTNESS_LOGITS = np.array(
    [
        [[0.0, 0.0, 0.3], *[[-0.3, 0.1, 0.5]] * 3],
        [[0.0, 0.0, 0.3], *[[-0.3, 0.1, 0.5]] * 3],
        [[-0.8, 0.6, 0.2], *[[-0.2, 0.1, 0.2]] * 3],
    ]
)


def perception_state(flags: PerceptionFlags) -> np.ndarray:
    """Collapse the flags into the four states that index ``BASE_LOGITS``."""
    return np.select(
        [flags.verified, flags.read_mention & flags.looked_central, flags.looked_central],
        [0, 1, 2],
        3,
    )


def answer_probabilities(
    condition: np.ndarray, flags: PerceptionFlags, participant: Participant
) -> np.ndarray:
    """Probabilities of (yes, no, unsure) per trial, shape ``(N, 3)``."""
    st = perception_state(flags)
    logits = BASE_LOGITS[condition, st] + participant.strictness * STRICTNESS_LOGITS[condition, st]
    logits = logits + np.array([participant.yes_bias, 0.0, participant.unsure_bias])
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)
