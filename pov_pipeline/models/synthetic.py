"""A small synthetic study in the lake's table formats, for tests and model self-checks.

It plants the demo study's signal in a few hundred lines: answers depend on the caption condition, the
participant's strictness and three perception flags of the trial — the central object was fixated,
the mentioning word was read, and the word and its object were fixated *consecutively*
("verification"). Unverified trials that fixate both never do so back to back, so only the order of
fixations tells verified from unverified trials. Feature vectors share a latent concept per label
between the word and the object that names it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pov_pipeline.models.dataset import transitions_from_sequences
from pov_pipeline.schemas import ANSWER_LABELS

_LABELS = (
    "dog",
    "cat",
    "car",
    "tree",
    "lamp",
    "chair",
    "boat",
    "bird",
    "cup",
    "book",
    "ball",
    "horse",
    "clock",
    "bike",
    "house",
    "apple",
)
_FILLER = ("a", "photo", "with", "the", "near", "some", "scene", "shows")


def _aoi_rows(sid: str, objects: list[str], central: str, words: list[str]) -> list[dict]:
    rows = []
    for k, lab in enumerate(objects):
        x0, y0 = 100.0 + 200.0 * k, 200.0 + 60.0 * (k % 2)
        rows.append(
            dict(
                stimulus_id=sid,
                aoi_id=f"obj:{lab}",
                aoi_kind="object",
                label=lab,
                shape="rect",
                x0_px=x0,
                y0_px=y0,
                x1_px=x0 + 150.0,
                y1_px=y0 + 150.0,
                points_px=[],
                word_index=-1,
                is_central=lab == central,
            )
        )
    for i, w in enumerate(words):
        x0 = 100.0 + 110.0 * i
        rows.append(
            dict(
                stimulus_id=sid,
                aoi_id=f"word:{i}",
                aoi_kind="word",
                label=w,
                shape="rect",
                x0_px=x0,
                y0_px=700.0,
                x1_px=x0 + 100.0,
                y1_px=740.0,
                points_px=[],
                word_index=i,
                is_central=False,
            )
        )
    return rows


def make_synthetic_study(
    *,
    n_participants: int = 12,
    n_stimuli: int = 24,
    seed: int = 0,
    d_text: int = 32,
    d_img: int = 48,
    verify_rate: float = 0.5,
    perception_scale: float = 1.0,
) -> dict[str, pd.DataFrame]:
    """Generate every table the models consume, plus the generator's answer probabilities.

    Parameters
    ----------
    n_participants, n_stimuli:
        Study size; every participant sees every stimulus once.
    seed:
        Seed of all randomness.
    d_text, d_img:
        Feature vector sizes.
    verify_rate:
        Probability that a trial which fixates the mentioning word and its object does so back to back.
    perception_scale:
        Multiplies the answer logits' dependence on the perception flags (1 = the default study).

    Returns
    -------
    dict[str, pd.DataFrame]
        ``stimuli, aois, responses, aoi_hits, aoi_sequences, transitions, text_features,
        image_features, truth_trials``.
    """
    rng = np.random.default_rng(seed)
    d_c = 16
    concept = {lab: rng.normal(size=d_c) for lab in (*_LABELS, *_FILLER, "thing")}
    w_text, w_img = rng.normal(size=(d_c, d_text)) / 4, rng.normal(size=(d_c, d_img)) / 4

    stim_rows, aoi_rows, text_rows, image_rows = [], [], [], []
    conds = np.array(["central", "peripheral", "ambiguous"])[np.arange(n_stimuli) % 3]
    rng.shuffle(conds)
    for s in range(n_stimuli):
        sid = f"s{s:03d}"
        objects = list(rng.choice(_LABELS, size=4, replace=False))
        central = objects[0]
        mention = {"central": central, "peripheral": objects[1 + s % 3], "ambiguous": "thing"}[conds[s]]
        words = [*rng.choice(_FILLER, size=2), mention, *rng.choice(_FILLER, size=3)]
        stim_rows.append(
            dict(
                stimulus_id=sid,
                image_file=f"images/{sid}.png",
                image_sha256="",
                caption=" ".join(words),
                condition=conds[s],
                central_object=central,
                mentioned_object="" if conds[s] == "ambiguous" else mention,
                image_left_px=80,
                image_top_px=150,
                image_width_px=880,
                image_height_px=500,
                screen_width_px=1920,
                screen_height_px=1080,
            )
        )
        aoi_rows += _aoi_rows(sid, objects, central, words)
        for i, w in enumerate(words):
            vec = concept[w] @ w_text + rng.normal(scale=0.1, size=d_text)
            text_rows.append(dict(stimulus_id=sid, aoi_id=f"word:{i}", vector=vec.astype(np.float32)))
        text_rows.append(
            dict(stimulus_id=sid, aoi_id="sentence", vector=rng.normal(size=d_text).astype(np.float32))
        )
        for lab in objects:
            vec = concept[lab] @ w_img + rng.normal(scale=0.1, size=d_img)
            image_rows.append(dict(stimulus_id=sid, aoi_id=f"obj:{lab}", vector=vec.astype(np.float32)))
        image_rows.append(
            dict(stimulus_id=sid, aoi_id="global", vector=rng.normal(size=d_img).astype(np.float32))
        )
    stimuli = pd.DataFrame(stim_rows)
    aois = pd.DataFrame(aoi_rows)
    boxes = aois.set_index(["stimulus_id", "aoi_id"])[["x0_px", "y0_px", "x1_px", "y1_px"]]

    strict = rng.normal(size=n_participants)
    seq_rows, resp_rows, truth_rows = [], [], []
    for p in range(n_participants):
        pid = f"p{p:03d}"
        order = rng.permutation(n_stimuli)
        for trial, s in enumerate(order, start=1):
            st = stim_rows[s]
            sid, cond = st["stimulus_id"], st["condition"]
            objs = [r["aoi_id"] for r in aoi_rows if r["stimulus_id"] == sid and r["aoi_kind"] == "object"]
            central_id = f"obj:{st['central_object']}"
            mention_obj = f"obj:{st['mentioned_object']}" if st["mentioned_object"] else None
            looked = rng.random() < 0.7
            read = rng.random() < 0.75
            both = read and mention_obj is not None and (looked or mention_obj != central_id)
            verified = both and rng.random() < verify_rate
            # Filler fixations: function words and non-central, non-mentioned objects.
            fill = [f"word:{i}" for i in (0, 1, 3, 4, 5)] + [
                o for o in objs if o not in (central_id, mention_obj)
            ]
            seq = list(rng.choice(fill, size=int(rng.integers(3, 7))))
            seq += ["background"] * int(rng.integers(0, 2))
            if looked and central_id != mention_obj:
                seq.insert(int(rng.integers(0, len(seq) + 1)), central_id)
            rng.shuffle(seq)
            if verified:
                pair = ["word:2", mention_obj] if rng.random() < 0.5 else [mention_obj, "word:2"]
                at = int(rng.integers(0, len(seq) + 1))
                seq[at:at] = pair
            else:
                if read:
                    seq.insert(0, "word:2")
                if mention_obj is not None and (mention_obj != central_id or looked):
                    seq.append(mention_obj)
                    # Keep the word and the object apart so only order can tell them from verified.
                    if seq[-2] == "word:2" or len(seq) < 3:
                        seq.insert(len(seq) - 1, str(rng.choice(fill)))
            dwell = list(rng.gamma(4.0, 55.0, size=len(seq)) + 60.0)
            central = cond == "central"
            peri = cond == "peripheral"
            amb = cond == "ambiguous"
            fixated_central = central_id in seq
            k = perception_scale
            logit = np.array(
                [
                    (0.4 + 2.2 * k * verified) * central - 1.0 * peri,
                    (0.4 + 2.2 * k * verified) * peri - 1.0 * central + 0.3 * amb,
                    0.2 + k * (0.9 * strict[p] * (not verified) + 1.0 * (not fixated_central)) + 1.2 * amb,
                ]
            )
            prob = np.exp(logit - logit.max())
            prob /= prob.sum()
            answer = ANSWER_LABELS[int(rng.choice(3, p=prob))]
            seq_rows.append(dict(participant=pid, trial=trial, stimulus_id=sid, sequence=seq, dwell_ms=dwell))
            resp_rows.append(
                dict(
                    participant=pid,
                    trial=trial,
                    stimulus_id=sid,
                    response=answer,
                    rt_ms=float(rng.gamma(5.0, 300.0)),
                )
            )
            truth_rows.append(
                dict(
                    participant=pid,
                    trial=trial,
                    stimulus_id=sid,
                    p_yes=prob[0],
                    p_no=prob[1],
                    p_unsure=prob[2],
                    looked_central=fixated_central,
                    read_mention=read,
                    verified=verified,
                )
            )
    seqs = pd.DataFrame(seq_rows)
    seqs["trial"] = seqs["trial"].astype("int32")
    seqs["n_fixations"] = seqs["sequence"].map(len).astype("int32")
    lens = seqs["n_fixations"].to_numpy()
    flat = pd.DataFrame(
        {
            "participant": np.repeat(seqs["participant"].to_numpy(), lens),
            "trial": np.repeat(seqs["trial"].to_numpy(), lens),
            "stimulus_id": np.repeat(seqs["stimulus_id"].to_numpy(), lens),
            "event_index": np.concatenate([np.arange(n) for n in lens]),
            "duration_ms": np.concatenate(seqs["dwell_ms"].map(np.asarray).to_list()),
            "aoi_id": np.concatenate(seqs["sequence"].map(np.asarray).to_list()),
        }
    )
    flat["onset_in_trial_ms"] = (
        flat.groupby(["participant", "trial"])["duration_ms"].cumsum() - flat["duration_ms"]
    )
    flat["aoi_kind"] = np.where(
        flat["aoi_id"].str.startswith("obj:"),
        "object",
        np.where(flat["aoi_id"].str.startswith("word:"), "word", flat["aoi_id"]),
    )
    b = boxes.reindex(pd.MultiIndex.from_arrays([flat["stimulus_id"], flat["aoi_id"]])).to_numpy()
    u = rng.random((len(flat), 2))
    bg = np.isnan(b[:, 0])
    flat["x_px"] = np.where(bg, 80 + 880 * u[:, 0], b[:, 0] + (b[:, 2] - b[:, 0]) * u[:, 0])
    flat["y_px"] = np.where(bg, 150 + 500 * u[:, 1], b[:, 1] + (b[:, 3] - b[:, 1]) * u[:, 1])
    ent = _entropies(seqs)
    seqs = seqs.join(ent)
    trans = transitions_from_sequences(seqs["sequence"], include_self=True)
    trans = trans.join(seqs[["participant", "trial", "stimulus_id"]], on="row").drop(columns="row")
    responses = pd.DataFrame(resp_rows)
    responses["trial"] = responses["trial"].astype("int32")
    return {
        "stimuli": stimuli,
        "aois": aois,
        "responses": responses,
        "aoi_hits": flat[
            [
                "participant",
                "trial",
                "stimulus_id",
                "event_index",
                "onset_in_trial_ms",
                "duration_ms",
                "x_px",
                "y_px",
                "aoi_id",
                "aoi_kind",
            ]
        ],
        "aoi_sequences": seqs,
        "transitions": trans[["participant", "trial", "stimulus_id", "from_aoi", "to_aoi", "count", "prob"]],
        "text_features": pd.DataFrame(text_rows),
        "image_features": pd.DataFrame(image_rows),
        "truth_trials": pd.DataFrame(truth_rows),
    }


def _entropies(seqs: pd.DataFrame) -> pd.DataFrame:
    def stationary(s: list[str]) -> float:
        _, c = np.unique(np.asarray(s), return_counts=True)
        p = c / c.sum()
        return float(-(p * np.log2(p)).sum())

    return pd.DataFrame(
        {
            "stationary_entropy_bits": seqs["sequence"].map(stationary),
            "transition_entropy_bits": np.nan,
        },
        index=seqs.index,
    )
