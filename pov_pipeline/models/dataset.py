"""Training examples and the dense tensors the models read.

One training example is one (participant, trial): the answer, the AOI sequence with dwell times, the
trial's AOI transitions and references (stimulus id, AOI ids) into the feature tables. Vectors are not
copied into the examples; :func:`build_study_tensors` gathers them once per stimulus.

Token layout of a stimulus (shared by the Transformer, the PGMT and the alignment metrics)::

    [participant] [sentence] [word:0] ... [word:n-1] [global] [obj:a] ... [obj:z]   (+ padding)

The ``global`` image token stands for the picture as a whole, so fixations on the image ``background``
are mapped onto it; ``sentence`` and the participant token have no AOI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pov_pipeline.schemas import ANSWER_LABELS, AOI_BACKGROUND, AOI_OFF_SCREEN

#: Token types of the content models (index 0 is padding).
TOKEN_TYPES: tuple[str, ...] = (
    "pad",
    "participant",
    "sentence",
    "word",
    "mentioning_word",
    "global",
    "object",
    "object_central",
    "object_mentioned",
    "object_central_mentioned",
)

#: AOI types of the fixation-sequence model (index 0 is padding).
AOI_TYPES: tuple[str, ...] = (
    "pad",
    "word",
    "mentioning_word",
    "object",
    "object_central",
    "object_mentioned",
    "object_central_mentioned",
    "background",
    "off_screen",
    "unknown",
)

#: Longest fixation sequence the sequence model reads; longer trials keep their first fixations.
MAX_SEQUENCE_LENGTH = 64

EXCLUSION_REASONS: tuple[str, ...] = (
    "invalid_response",
    "unknown_stimulus",
    "no_features",
    "no_gaze",
    "no_fixations",
)

_PUNCT = re.compile(r"[^\w]+", re.UNICODE)

#: Generic nouns that refer to "the thing in the picture" without naming it ("Something is on the
#: table", "An item is in the picture"). In a caption that names no object in its image, such a word
#: is read as a mention of the central object: the reader resolves the vague reference to the most
#: salient object, so comparing that word with the central object is the verification.
GENERIC_NOUNS: frozenset[str] = frozenset(
    {"something", "thing", "things", "object", "objects", "item", "items", "stuff"}
)


def _norm_word(word: str) -> str:
    return _PUNCT.sub("", str(word).lower())


def _object_label(aoi_id: str, label: object) -> str:
    text = label if isinstance(label, str) and label else aoi_id.split(":", 1)[-1]
    return _norm_word(text)


def aoi_roles(
    aois: pd.DataFrame,
    stimuli: pd.DataFrame | None = None,
    *,
    generic_nouns: Iterable[str] = GENERIC_NOUNS,
) -> pd.DataFrame:
    """Tag every AOI with the roles the models use.

    A caption word *mentions* an object when its normalised spelling equals the object's label (or the
    label plus a plural ``s``); when ``stimuli`` is given its ``mentioned_object`` column also counts.
    In a caption that mentions none of its image's objects, a generic noun (``generic_nouns``, by
    default :data:`GENERIC_NOUNS`: "Something is on the table") mentions the central object.

    Parameters
    ----------
    aois:
        Table with ``stimulus_id, aoi_id, aoi_kind, label, word_index, is_central``.
    stimuli:
        Optional stimuli table with ``stimulus_id, mentioned_object``.
    generic_nouns:
        Words (compared lower-case, without punctuation) that stand for an unnamed object; empty to
        switch the resolution off.

    Returns
    -------
    pd.DataFrame
        ``stimulus_id, aoi_id, aoi_kind, word_index, is_central, is_mention`` plus ``aoi_type``
        (a name of :data:`AOI_TYPES`) and ``token_type`` (a name of :data:`TOKEN_TYPES`).
    """
    a = aois[["stimulus_id", "aoi_id", "aoi_kind", "label", "word_index", "is_central"]].copy()
    a["is_central"] = a["is_central"].fillna(False).astype(bool)
    a["word_index"] = pd.to_numeric(a["word_index"], errors="coerce").fillna(-1).astype(int)
    is_obj = a["aoi_kind"].eq("object").to_numpy()
    a["norm"] = [
        _object_label(i, lab) if o else _norm_word(lab)
        for i, lab, o in zip(a["aoi_id"], a["label"], is_obj, strict=True)
    ]
    objs = a.loc[is_obj, ["stimulus_id", "norm", "aoi_id"]]
    words = a.loc[~is_obj, ["stimulus_id", "norm", "aoi_id"]]
    # A word matches an object's label or its plural; both directions are marked.
    cand = pd.concat([objs.assign(key=objs["norm"]), objs.assign(key=objs["norm"] + "s")])
    pairs = words.merge(cand, left_on=["stimulus_id", "norm"], right_on=["stimulus_id", "key"])
    mention_ids = set(zip(pairs["stimulus_id"], pairs["aoi_id_x"], strict=True)) | set(
        zip(pairs["stimulus_id"], pairs["aoi_id_y"], strict=True)
    )
    if stimuli is not None and "mentioned_object" in stimuli:
        m = stimuli[["stimulus_id", "mentioned_object"]].dropna()
        m = m.assign(norm=m["mentioned_object"].map(_norm_word))
        m = m[m["norm"] != ""]
        hit = a.merge(m[["stimulus_id", "norm"]], on=["stimulus_id", "norm"])
        mention_ids |= set(zip(hit["stimulus_id"], hit["aoi_id"], strict=True))
    # Captions that name none of their objects: a generic noun stands for the central object.
    naming = {s for s, _ in mention_ids}
    vague = {_norm_word(w) for w in generic_nouns}
    generic = words[words["norm"].isin(vague) & ~words["stimulus_id"].isin(naming)]
    central = a.loc[is_obj & a["is_central"].to_numpy(), ["stimulus_id", "aoi_id"]]
    central = central[central["stimulus_id"].isin(set(generic["stimulus_id"]))]
    mention_ids |= set(zip(generic["stimulus_id"], generic["aoi_id"], strict=True))
    mention_ids |= set(zip(central["stimulus_id"], central["aoi_id"], strict=True))
    a["is_mention"] = [(s, i) in mention_ids for s, i in zip(a["stimulus_id"], a["aoi_id"], strict=True)]
    obj_type = np.select(
        [a["is_central"] & a["is_mention"], a["is_central"], a["is_mention"]],
        ["object_central_mentioned", "object_central", "object_mentioned"],
        "object",
    )
    word_type = np.where(a["is_mention"], "mentioning_word", "word")
    a["aoi_type"] = np.where(is_obj, obj_type, word_type)
    a["token_type"] = a["aoi_type"]
    return a.drop(columns=["norm", "label"])


def transitions_from_sequences(sequences: pd.Series, *, include_self: bool = True) -> pd.DataFrame:
    """Count consecutive-fixation transitions in each sequence and row-normalise them.

    Parameters
    ----------
    sequences:
        One list of AOI ids per row (fixation order); the result refers to rows by position ``row``.
    include_self:
        Count refixations inside one AOI (``a → a``) as transitions.

    Returns
    -------
    pd.DataFrame
        ``row, from_aoi, to_aoi, count, prob`` with ``prob`` normalised per (row, from_aoi).
    """
    lens = sequences.map(len).to_numpy()
    flat = np.asarray([a for s in sequences for a in s], dtype=object)
    row = np.repeat(np.arange(len(sequences)), lens)
    if flat.size < 2:
        return pd.DataFrame({"row": [], "from_aoi": [], "to_aoi": [], "count": [], "prob": []})
    same = row[1:] == row[:-1]
    df = pd.DataFrame({"row": row[1:][same], "from_aoi": flat[:-1][same], "to_aoi": flat[1:][same]})
    if not include_self:
        df = df[df["from_aoi"] != df["to_aoi"]]
    out = df.groupby(["row", "from_aoi", "to_aoi"], sort=True).size().rename("count").reset_index()
    out["prob"] = out["count"] / out.groupby(["row", "from_aoi"])["count"].transform("sum")
    return out


def _lists_from_long(long: pd.DataFrame, keys: list[str], n_key_frame: pd.DataFrame) -> pd.DataFrame:
    grouped = long.groupby(keys, sort=False).agg(
        trans_from=("from_aoi", list),
        trans_to=("to_aoi", list),
        trans_count=("count", list),
        trans_prob=("prob", list),
    )
    return n_key_frame.join(grouped, on=keys)


def build_training_examples(
    responses: pd.DataFrame,
    aoi_sequences: pd.DataFrame,
    transitions: pd.DataFrame,
    aois: pd.DataFrame,
    text_features: pd.DataFrame,
    image_features: pd.DataFrame,
    *,
    stimuli: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join answers, gaze and feature references into one row per (participant, trial).

    Parameters
    ----------
    responses:
        ``participant, trial, stimulus_id, response, rt_ms``.
    aoi_sequences:
        ``participant, trial, stimulus_id, sequence, dwell_ms, n_fixations`` (+ entropies).
    transitions:
        Long table ``participant, trial, stimulus_id, from_aoi, to_aoi, count, prob``.
    aois:
        The study's AOIs (``schemas.AOIS``).
    text_features, image_features:
        Feature tables with ``stimulus_id, aoi_id, vector``.
    stimuli:
        Optional stimuli table; its ``mentioned_object`` helps tag mentioning words.

    Returns
    -------
    tuple[pd.DataFrame, pd.DataFrame]
        ``examples`` (``participant, trial, stimulus_id, response, label, sequence, dwell_ms,
        n_fixations, trans_from, trans_to, trans_count, trans_prob, transitions_source,
        token_aoi_ids, rt_ms``) sorted by (participant, trial), and ``excluded``
        (``participant, trial, stimulus_id, response, reason``) with one reason of
        :data:`EXCLUSION_REASONS` per dropped trial.
    """
    keys = ["participant", "trial"]
    resp = responses[["participant", "trial", "stimulus_id", "response", "rt_ms"]].copy()
    resp["trial"] = resp["trial"].astype("int32")
    resp["response"] = resp["response"].astype(str).str.strip().str.lower()
    reason = pd.Series(pd.NA, index=resp.index, dtype="object")

    reason[~resp["response"].isin(ANSWER_LABELS)] = "invalid_response"
    known = set(aois["stimulus_id"])
    reason[reason.isna() & ~resp["stimulus_id"].isin(known)] = "unknown_stimulus"
    with_feats = set(text_features["stimulus_id"]) & set(image_features["stimulus_id"])
    reason[reason.isna() & ~resp["stimulus_id"].isin(with_feats)] = "no_features"

    seq = aoi_sequences[["participant", "trial", "sequence", "dwell_ms", "n_fixations"]].copy()
    seq["trial"] = seq["trial"].astype("int32")
    seq = seq.drop_duplicates(keys)
    merged = resp.merge(seq, on=keys, how="left", indicator=True)
    merged.index = resp.index
    reason[reason.isna() & merged["_merge"].eq("left_only")] = "no_gaze"
    n_fix = merged["sequence"].map(lambda s: 0 if s is None or not hasattr(s, "__len__") else len(s))
    reason[reason.isna() & (n_fix == 0)] = "no_fixations"

    excluded = resp.loc[reason.notna(), ["participant", "trial", "stimulus_id", "response"]].copy()
    excluded["reason"] = reason[reason.notna()].astype(str)
    ok = merged.loc[reason.isna()].drop(columns="_merge").reset_index(drop=True)
    ok["sequence"] = ok["sequence"].map(lambda s: [str(a) for a in s])
    ok["dwell_ms"] = ok["dwell_ms"].map(lambda s: [float(a) for a in s])
    ok["n_fixations"] = ok["sequence"].map(len).astype("int32")
    ok["label"] = ok["response"].map({lab: i for i, lab in enumerate(ANSWER_LABELS)}).astype("int8")

    tr = transitions[["participant", "trial", "from_aoi", "to_aoi", "count", "prob"]].copy()
    tr["trial"] = tr["trial"].astype("int32")
    ok = _lists_from_long(tr, keys, ok)
    has_table = ok["trans_from"].notna()
    ok["transitions_source"] = np.where(has_table, "table", "none")
    # Trials with >= 2 fixations but no rows in the transition table: derive them from the
    # sequence, with the table's convention on refixations, rather than silently losing the bias.
    need = ~has_table & (ok["n_fixations"] >= 2)
    if need.any():
        include_self = bool((tr["from_aoi"] == tr["to_aoi"]).any()) if len(tr) else True
        sub = ok.loc[need]
        long = transitions_from_sequences(sub["sequence"].reset_index(drop=True), include_self=include_self)
        long["row"] = sub.index.to_numpy()[long["row"].astype(int)]
        g = long.groupby("row").agg(
            trans_from=("from_aoi", list),
            trans_to=("to_aoi", list),
            trans_count=("count", list),
            trans_prob=("prob", list),
        )
        for col in g.columns:
            ok.loc[g.index, col] = g[col]
        ok.loc[g.index, "transitions_source"] = "sequence"
    for col in ("trans_from", "trans_to", "trans_count", "trans_prob"):
        ok[col] = ok[col].map(lambda v: list(v) if isinstance(v, list | np.ndarray) else [])

    tokens = stimulus_token_table(aois, text_features, image_features, stimuli=stimuli)
    tok_ids = tokens.groupby("stimulus_id", sort=False)["aoi_id"].agg(list)
    ok["token_aoi_ids"] = ok["stimulus_id"].map(tok_ids)
    ok = ok.sort_values(keys, kind="stable").reset_index(drop=True)
    cols = [
        "participant",
        "trial",
        "stimulus_id",
        "response",
        "label",
        "sequence",
        "dwell_ms",
        "n_fixations",
        "trans_from",
        "trans_to",
        "trans_count",
        "trans_prob",
        "transitions_source",
        "token_aoi_ids",
        "rt_ms",
    ]
    return ok[cols], excluded.sort_values(keys, kind="stable").reset_index(drop=True)


def stimulus_token_table(
    aois: pd.DataFrame,
    text_features: pd.DataFrame,
    image_features: pd.DataFrame,
    *,
    stimuli: pd.DataFrame | None = None,
    generic_nouns: Iterable[str] = GENERIC_NOUNS,
) -> pd.DataFrame:
    """The content tokens of every stimulus, in model order (without the participant token).

    Token types come from :func:`aoi_roles` (with ``stimuli`` and ``generic_nouns``).

    Returns
    -------
    pd.DataFrame
        ``stimulus_id, aoi_id, modality (text|image), feature_row, token_type, word_index`` where
        ``feature_row`` indexes the row of ``text_features`` / ``image_features``.
    """
    roles = aoi_roles(aois, stimuli, generic_nouns=generic_nouns)[
        ["stimulus_id", "aoi_id", "token_type", "word_index"]
    ]
    parts = []
    for modality, feats, special, special_type in (
        ("text", text_features, "sentence", "sentence"),
        ("image", image_features, "global", "global"),
    ):
        f = feats[["stimulus_id", "aoi_id"]].reset_index(drop=True)
        f["feature_row"] = np.arange(len(f))
        f = f.drop_duplicates(["stimulus_id", "aoi_id"])
        f = f.merge(roles, on=["stimulus_id", "aoi_id"], how="left")
        is_special = f["aoi_id"].eq(special)
        f.loc[is_special, "token_type"] = special_type
        # Feature rows that match no AOI of the study (and are not the special token) are dropped.
        f = f[f["token_type"].notna()].copy()
        f["word_index"] = f["word_index"].fillna(-1).astype(int)
        f["modality"] = modality
        # Special token first, then words by position / objects by id, for a stable layout.
        f["order"] = np.where(f["aoi_id"].eq(special), -1, f["word_index"] if modality == "text" else 0)
        f = f.sort_values(["stimulus_id", "order", "aoi_id"], kind="stable")
        parts.append(f.drop(columns="order"))
    return pd.concat(parts, ignore_index=True)[
        ["stimulus_id", "aoi_id", "modality", "feature_row", "token_type", "word_index"]
    ]


@dataclass
class StudyTensors:
    """Dense arrays for all examples (row ``i`` = ``examples.iloc[i]``).

    Attributes
    ----------
    stimulus_ids:
        Stimulus id of each stimulus index.
    stim_index:
        ``(N,)`` stimulus index per example.
    text_feat, image_feat:
        ``(S, Lt, d_text)`` / ``(S, Li, d_img)`` feature vectors per stimulus token (zero padded).
    text_mask, image_mask:
        ``(S, Lt)`` / ``(S, Li)`` true where a token exists.
    text_types, image_types, text_pos:
        Token type codes (:data:`TOKEN_TYPES`) and word positions (0 for non-words).
    token_aoi:
        ``(S, L)`` AOI id of each token position (``""`` where none), ``L = 1 + Lt + Li``.
    transition:
        ``(N, L, L)`` trial transition probabilities projected onto the tokens.
    dwell_tokens_ms:
        ``(N, L)`` total dwell per token AOI.
    seq_types, seq_log_dwell, seq_len:
        ``(N, MAX_SEQUENCE_LENGTH)`` AOI type codes (:data:`AOI_TYPES`) and ``log1p(dwell_ms)``, and
        the used length of each sequence.
    labels:
        ``(N,)`` answer index in :data:`~pov_pipeline.schemas.ANSWER_LABELS`.
    """

    stimulus_ids: list[str]
    stim_index: np.ndarray
    text_feat: np.ndarray
    text_mask: np.ndarray
    text_types: np.ndarray
    text_pos: np.ndarray
    image_feat: np.ndarray
    image_mask: np.ndarray
    image_types: np.ndarray
    token_aoi: np.ndarray
    transition: np.ndarray
    dwell_tokens_ms: np.ndarray
    seq_types: np.ndarray
    seq_log_dwell: np.ndarray
    seq_len: np.ndarray
    labels: np.ndarray

    @property
    def n_tokens(self) -> int:
        return self.token_aoi.shape[1]


def _stack_vectors(col: pd.Series) -> np.ndarray:
    return np.stack([np.asarray(v, dtype=np.float32) for v in col]) if len(col) else np.zeros((0, 1))


def _token_positions(tokens: pd.DataFrame, stim_ids: list[str], lt: int) -> pd.DataFrame:
    t = tokens.copy()
    t["stim"] = t["stimulus_id"].map({s: i for i, s in enumerate(stim_ids)})
    t["slot"] = t.groupby(["stimulus_id", "modality"], sort=False).cumcount()
    t["pos"] = np.where(t["modality"] == "text", 1 + t["slot"], 1 + lt + t["slot"])
    return t


def aoi_position_map(tensors: StudyTensors) -> pd.DataFrame:
    """``stim, aoi_id, pos`` for every token with an AOI (``background`` → the ``global`` token)."""
    s, p = np.nonzero(tensors.token_aoi != "")
    ids = tensors.token_aoi[s, p].astype(object)
    m = pd.DataFrame({"stim": s, "aoi_id": ids, "pos": p})
    m = m[~m["aoi_id"].isin(["sentence"])]
    m.loc[m["aoi_id"].eq("global"), "aoi_id"] = AOI_BACKGROUND
    return m


def transition_tensor(examples: pd.DataFrame, tensors: StudyTensors) -> np.ndarray:
    """Project each trial's AOI transition probabilities onto its stimulus's tokens.

    ``T[i, a, b]`` is the probability that a fixation on token ``a``'s AOI was followed directly by one on
    token ``b``'s AOI (row-normalised over all next AOIs, including ``off_screen``); rows and columns
    of tokens without an AOI (participant, sentence, padding) stay zero.
    """
    n, L = len(examples), tensors.n_tokens
    T = np.zeros((n, L, L), dtype=np.float32)
    lens = examples["trans_from"].map(len).to_numpy()
    if lens.sum() == 0:
        return T
    row = np.repeat(np.arange(n), lens)
    long = pd.DataFrame(
        {
            "row": row,
            "stim": np.repeat(tensors.stim_index, lens),
            "from_aoi": np.concatenate([np.asarray(v, dtype=object) for v in examples["trans_from"]]),
            "to_aoi": np.concatenate([np.asarray(v, dtype=object) for v in examples["trans_to"]]),
            "prob": np.concatenate([np.asarray(v, dtype=np.float64) for v in examples["trans_prob"]]),
        }
    )
    pos = aoi_position_map(tensors)
    long = long.merge(pos.rename(columns={"aoi_id": "from_aoi", "pos": "a"}), on=["stim", "from_aoi"])
    long = long.merge(pos.rename(columns={"aoi_id": "to_aoi", "pos": "b"}), on=["stim", "to_aoi"])
    np.add.at(
        T, (long["row"].to_numpy(), long["a"].to_numpy(), long["b"].to_numpy()), long["prob"].to_numpy()
    )
    return T


def _sequence_arrays(
    examples: pd.DataFrame, tensors_stim: np.ndarray, roles: pd.DataFrame, stim_ids: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    n = len(examples)
    lens = examples["sequence"].map(len).to_numpy()
    row = np.repeat(np.arange(n), lens)
    order = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    flat = pd.DataFrame(
        {
            "row": row,
            "order": order,
            "stimulus_id": np.repeat(examples["stimulus_id"].to_numpy(), lens),
            "aoi_id": np.concatenate([np.asarray(s, dtype=object) for s in examples["sequence"]])
            if n
            else [],
            "dwell_ms": np.concatenate([np.asarray(d, dtype=np.float64) for d in examples["dwell_ms"]])
            if n
            else [],
        }
    )
    flat = flat.merge(roles[["stimulus_id", "aoi_id", "aoi_type"]], on=["stimulus_id", "aoi_id"], how="left")
    flat.loc[flat["aoi_id"].eq(AOI_BACKGROUND), "aoi_type"] = "background"
    flat.loc[flat["aoi_id"].eq(AOI_OFF_SCREEN), "aoi_type"] = "off_screen"
    flat["aoi_type"] = flat["aoi_type"].fillna("unknown")
    code = {t: i for i, t in enumerate(AOI_TYPES)}
    keep = flat[flat["order"] < MAX_SEQUENCE_LENGTH]
    types = np.zeros((n, MAX_SEQUENCE_LENGTH), dtype=np.int64)
    logd = np.zeros((n, MAX_SEQUENCE_LENGTH), dtype=np.float32)
    types[keep["row"], keep["order"]] = keep["aoi_type"].map(code).to_numpy()
    logd[keep["row"], keep["order"]] = np.log1p(keep["dwell_ms"].to_numpy().clip(min=0))
    seq_len = np.minimum(lens, MAX_SEQUENCE_LENGTH).astype(np.int64)
    return types, logd, seq_len, flat


def build_study_tensors(
    examples: pd.DataFrame,
    aois: pd.DataFrame,
    text_features: pd.DataFrame,
    image_features: pd.DataFrame,
    *,
    stimuli: pd.DataFrame | None = None,
    generic_nouns: Iterable[str] = GENERIC_NOUNS,
) -> StudyTensors:
    """Gather feature vectors once per stimulus and build the per-trial arrays of all models.

    ``stimuli`` and ``generic_nouns`` decide the token and AOI roles (see :func:`aoi_roles`).
    """
    tokens = stimulus_token_table(
        aois, text_features, image_features, stimuli=stimuli, generic_nouns=generic_nouns
    )
    stim_ids = sorted(set(examples["stimulus_id"]))
    tokens = tokens[tokens["stimulus_id"].isin(stim_ids)]
    counts = tokens.groupby(["stimulus_id", "modality"]).size().unstack(fill_value=0)
    lt = int(counts.get("text", pd.Series([1])).max())
    li = int(counts.get("image", pd.Series([1])).max())
    S, L = len(stim_ids), 1 + lt + li
    t = _token_positions(tokens, stim_ids, lt)
    tcode = {n: i for i, n in enumerate(TOKEN_TYPES)}

    text_vecs = _stack_vectors(text_features["vector"])
    image_vecs = _stack_vectors(image_features["vector"])
    text_feat = np.zeros((S, lt, text_vecs.shape[1]), dtype=np.float32)
    image_feat = np.zeros((S, li, image_vecs.shape[1]), dtype=np.float32)
    text_mask = np.zeros((S, lt), dtype=bool)
    image_mask = np.zeros((S, li), dtype=bool)
    text_types = np.zeros((S, lt), dtype=np.int64)
    image_types = np.zeros((S, li), dtype=np.int64)
    text_pos = np.zeros((S, lt), dtype=np.int64)
    token_aoi = np.full((S, L), "", dtype=object)
    tt, ii = t[t["modality"] == "text"], t[t["modality"] == "image"]
    text_feat[tt["stim"], tt["slot"]] = text_vecs[tt["feature_row"]]
    image_feat[ii["stim"], ii["slot"]] = image_vecs[ii["feature_row"]]
    text_mask[tt["stim"], tt["slot"]] = True
    image_mask[ii["stim"], ii["slot"]] = True
    text_types[tt["stim"], tt["slot"]] = tt["token_type"].map(tcode).to_numpy()
    image_types[ii["stim"], ii["slot"]] = ii["token_type"].map(tcode).to_numpy()
    text_pos[tt["stim"], tt["slot"]] = (tt["word_index"].clip(lower=-1) + 1).to_numpy()
    token_aoi[t["stim"], t["pos"]] = t["aoi_id"].to_numpy()

    stim_index = examples["stimulus_id"].map({s: i for i, s in enumerate(stim_ids)}).to_numpy(np.int64)
    roles = aoi_roles(aois, stimuli, generic_nouns=generic_nouns)
    types, logd, seq_len, flat = _sequence_arrays(examples, stim_index, roles, stim_ids)

    partial = StudyTensors(
        stimulus_ids=stim_ids,
        stim_index=stim_index,
        text_feat=text_feat,
        text_mask=text_mask,
        text_types=text_types,
        text_pos=text_pos,
        image_feat=image_feat,
        image_mask=image_mask,
        image_types=image_types,
        token_aoi=token_aoi.astype(str),
        transition=np.zeros((0, L, L), dtype=np.float32),
        dwell_tokens_ms=np.zeros((len(examples), L), dtype=np.float32),
        seq_types=types,
        seq_log_dwell=logd,
        seq_len=seq_len,
        labels=examples["label"].to_numpy(np.int64),
    )
    partial.transition = transition_tensor(examples, partial)
    # Dwell per token uses every fixation (not only the first MAX_SEQUENCE_LENGTH).
    pos = aoi_position_map(partial)
    flat["stim"] = stim_index[flat["row"].to_numpy()] if len(flat) else []
    hit = flat.merge(pos, on=["stim", "aoi_id"])
    np.add.at(
        partial.dwell_tokens_ms, (hit["row"].to_numpy(), hit["pos"].to_numpy()), hit["dwell_ms"].to_numpy()
    )
    return partial


def shuffle_fixation_order(examples: pd.DataFrame, *, seed: int, include_self: bool = True) -> pd.DataFrame:
    """Permute each trial's fixations (AOI with its dwell) and recompute the transitions.

    Dwell totals per AOI are unchanged; only the order, and so the transition matrix, is destroyed.
    """
    rng = np.random.default_rng(seed)
    out = examples.copy()
    perms = [rng.permutation(len(s)) for s in out["sequence"]]
    out["sequence"] = [[s[j] for j in p] for s, p in zip(out["sequence"], perms, strict=True)]
    out["dwell_ms"] = [[d[j] for j in p] for d, p in zip(out["dwell_ms"], perms, strict=True)]
    long = transitions_from_sequences(out["sequence"].reset_index(drop=True), include_self=include_self)
    out = out.reset_index(drop=True)
    out = out.drop(columns=["trans_from", "trans_to", "trans_count", "trans_prob"])
    out = _lists_from_long(long, ["row"], out.assign(row=np.arange(len(out)))).drop(columns="row")
    for col in ("trans_from", "trans_to", "trans_count", "trans_prob"):
        out[col] = out[col].map(lambda v: v if isinstance(v, list) else [])
    out["transitions_source"] = "shuffled"
    return out


def swap_partner_index(examples: pd.DataFrame, *, seed: int) -> np.ndarray:
    """For each trial, the row of another participant's trial on the same stimulus.

    Rows are shuffled within each stimulus and rotated by one, so no trial keeps its own gaze when the
    stimulus was seen by at least two participants (otherwise it keeps itself).
    """
    rng = np.random.default_rng(seed)
    n = len(examples)
    key = rng.random(n)
    df = pd.DataFrame({"stim": examples["stimulus_id"].to_numpy(), "key": key, "row": np.arange(n)})
    df = df.sort_values(["stim", "key"], kind="stable")
    size = df.groupby("stim", sort=False)["row"].transform("size").to_numpy()
    rank = df.groupby("stim", sort=False).cumcount().to_numpy()
    start = np.arange(n) - rank
    partner_sorted = df["row"].to_numpy()[start + (rank + 1) % size]
    out = np.empty(n, dtype=np.int64)
    out[df["row"].to_numpy()] = partner_sorted
    return out
