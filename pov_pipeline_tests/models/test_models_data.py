"""Training examples, exclusions, token layout and grouped splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pov_pipeline.models.dataset import (
    TOKEN_TYPES,
    aoi_roles,
    build_study_tensors,
    build_training_examples,
    shuffle_fixation_order,
    swap_partner_index,
    transitions_from_sequences,
)
from pov_pipeline.models.splits import inner_validation_mask, make_splits
from pov_pipeline.models.synthetic import make_synthetic_study


@pytest.fixture(scope="module")
def study() -> dict[str, pd.DataFrame]:
    return make_synthetic_study(n_participants=8, n_stimuli=12, seed=3)


def _build(d: dict[str, pd.DataFrame], **over: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    t = {**d, **over}
    return build_training_examples(
        t["responses"],
        t["aoi_sequences"],
        t["transitions"],
        t["aois"],
        t["text_features"],
        t["image_features"],
        stimuli=t["stimuli"],
    )


def test_examples_one_row_per_trial(study: dict[str, pd.DataFrame]) -> None:
    ex, excl = _build(study)
    assert len(ex) == len(study["responses"]) and len(excl) == 0
    assert not ex.duplicated(["participant", "trial"]).any()
    r = ex.iloc[0]
    assert r["n_fixations"] == len(r["sequence"]) == len(r["dwell_ms"])
    assert len(r["trans_from"]) == len(r["trans_to"]) == len(r["trans_prob"]) > 0
    assert r["token_aoi_ids"][0] == "sentence" and "global" in r["token_aoi_ids"]


def test_exclusions_have_reasons(study: dict[str, pd.DataFrame]) -> None:
    resp = study["responses"].copy()
    seqs = study["aoi_sequences"].copy()
    resp.loc[0, "response"] = "maybe"
    resp.loc[1, "stimulus_id"] = "nope"
    gone = resp.loc[2, ["participant", "trial"]]
    seqs = seqs[~((seqs["participant"] == gone["participant"]) & (seqs["trial"] == gone["trial"]))]
    empty = resp.loc[3, ["participant", "trial"]]
    sel = (seqs["participant"] == empty["participant"]) & (seqs["trial"] == empty["trial"])
    seqs.loc[sel, "sequence"] = pd.Series([[]] * int(sel.sum()), index=seqs.index[sel])
    seqs.loc[sel, "dwell_ms"] = pd.Series([[]] * int(sel.sum()), index=seqs.index[sel])
    no_feat_stim = resp.loc[4, "stimulus_id"]
    tf = study["text_features"][study["text_features"]["stimulus_id"] != no_feat_stim]
    ex, excl = _build(study, responses=resp, aoi_sequences=seqs, text_features=tf)
    n_nofeat = int((resp["stimulus_id"] == no_feat_stim).sum())
    assert len(ex) + len(excl) == len(resp)
    reasons = excl.set_index(["participant", "trial"])["reason"]
    assert reasons[tuple(resp.loc[0, ["participant", "trial"]])] == "invalid_response"
    assert reasons[tuple(resp.loc[1, ["participant", "trial"]])] == "unknown_stimulus"
    assert reasons[tuple(gone)] == "no_gaze"
    assert reasons[tuple(empty)] == "no_fixations"
    assert (excl["reason"] == "no_features").sum() >= n_nofeat - 2


def test_missing_transition_rows_are_derived_from_sequence(study: dict[str, pd.DataFrame]) -> None:
    tr = study["transitions"]
    p, t = study["responses"].loc[0, ["participant", "trial"]]
    ex, _ = _build(study, transitions=tr[~((tr["participant"] == p) & (tr["trial"] == t))])
    row = ex[(ex["participant"] == p) & (ex["trial"] == t)].iloc[0]
    assert row["transitions_source"] == "sequence" and len(row["trans_from"]) > 0


def test_transition_tensor_places_verification_between_word_and_object() -> None:
    d = make_synthetic_study(n_participants=6, n_stimuli=6, seed=5, verify_rate=1.0)
    ex, _ = _build(d)
    st = build_study_tensors(ex, d["aois"], d["text_features"], d["image_features"], stimuli=d["stimuli"])
    truth = d["truth_trials"].merge(ex[["participant", "trial"]].reset_index(), on=["participant", "trial"])
    v = truth[truth["verified"]]
    assert len(v)
    for r in v.itertuples():
        s = st.stim_index[r.index]
        aoi = list(st.token_aoi[s])
        w = aoi.index("word:2")
        o = aoi.index(f"obj:{d['stimuli'].set_index('stimulus_id').loc[r.stimulus_id, 'mentioned_object']}")
        assert st.transition[r.index, w, o] + st.transition[r.index, o, w] > 0
        assert TOKEN_TYPES[st.text_types[s, w - 1]] == "mentioning_word"
    # Rows of the participant and sentence tokens never carry transitions.
    assert np.all(st.transition[:, 0, :] == 0) and np.all(st.transition[:, 1, :] == 0)
    sums = st.transition.sum(-1)
    assert np.all(sums <= 1.0 + 1e-5)


def _caption_aois(stimulus_id: str, words: list[str], objects: list[tuple[str, bool]]) -> pd.DataFrame:
    rows = [
        {"stimulus_id": stimulus_id, "aoi_id": f"word:{i}", "aoi_kind": "word", "label": w, "word_index": i}
        for i, w in enumerate(words)
    ]
    rows += [
        {"stimulus_id": stimulus_id, "aoi_id": f"obj:{o}", "aoi_kind": "object", "label": o, "is_central": c}
        for o, c in objects
    ]
    return pd.DataFrame(rows)


def test_roles_resolve_generic_noun_to_central_object_only_when_nothing_is_named() -> None:
    objects = [("boat", True), ("table", False), ("cup", False)]
    aois = pd.concat(
        [
            # names nothing in its image: "Something" stands for the central boat
            _caption_aois("vague", ["Something", "is", "on", "the", "shelf"], objects),
            # names the table: "Something" is not resolved, the table is the mention
            _caption_aois("named", ["Something", "is", "on", "the", "table"], objects),
            # neither a name nor a generic noun: no mention at all
            _caption_aois("none", ["It", "is", "nice"], objects),
        ],
        ignore_index=True,
    )
    roles = aoi_roles(aois).set_index(["stimulus_id", "aoi_id"])["token_type"]
    assert roles["vague", "word:0"] == "mentioning_word"
    assert roles["vague", "obj:boat"] == "object_central_mentioned"
    assert roles["vague", "obj:table"] == "object"
    assert roles["named", "word:0"] == "word"
    assert roles["named", "word:4"] == "mentioning_word"
    assert roles["named", "obj:table"] == "object_mentioned"
    assert roles["named", "obj:boat"] == "object_central"
    assert set(roles["none"]) == {"word", "object", "object_central"}
    # The list is configurable: empty switches the resolution off, another list resolves other words.
    off = aoi_roles(aois, generic_nouns=()).set_index(["stimulus_id", "aoi_id"])["token_type"]
    assert set(off["vague"]) == {"word", "object", "object_central"}
    custom = aoi_roles(aois, generic_nouns=("It",)).set_index(["stimulus_id", "aoi_id"])["token_type"]
    assert custom["none", "word:0"] == "mentioning_word"
    assert custom["none", "obj:boat"] == "object_central_mentioned"
    assert custom["vague", "word:0"] == "word"


def test_transitions_from_sequences_counts() -> None:
    out = transitions_from_sequences(pd.Series([["a", "b", "a", "b"], ["c"]]), include_self=True)
    assert out[["from_aoi", "to_aoi", "count"]].values.tolist() == [["a", "b", 2], ["b", "a", 1]]
    assert out["prob"].tolist() == [1.0, 1.0]


def test_shuffle_keeps_dwell_and_swap_keeps_stimulus(study: dict[str, pd.DataFrame]) -> None:
    ex, _ = _build(study)
    sh = shuffle_fixation_order(ex, seed=0)
    for a, b in zip(ex["sequence"], sh["sequence"], strict=True):
        assert sorted(a) == sorted(b)
    partner = swap_partner_index(ex, seed=0)
    assert (ex["stimulus_id"].to_numpy() == ex["stimulus_id"].to_numpy()[partner]).all()
    assert (ex["participant"].to_numpy() != ex["participant"].to_numpy()[partner]).all()


@pytest.mark.parametrize(
    "protocol,col", [("unseen_participants", "participant"), ("unseen_stimuli", "stimulus_id")]
)
def test_splits_never_leak(study: dict[str, pd.DataFrame], protocol: str, col: str) -> None:
    ex, _ = _build(study)
    sp = make_splits(ex, protocol=protocol, n_folds=4, seed=1)
    assert list(sp.columns) == ["participant", "trial", "fold", "protocol"]
    assert sp.equals(make_splits(ex, protocol=protocol, n_folds=4, seed=1))
    groups = ex[col].to_numpy()
    assert set(sp["fold"]) == {0, 1, 2, 3}
    for k in range(4):
        test, train = sp["fold"].to_numpy() == k, sp["fold"].to_numpy() != k
        assert not set(groups[test]) & set(groups[train])
        tr = ex[train]
        val = inner_validation_mask(tr, protocol=protocol, seed=k)
        assert 0 < val.sum() < len(tr)
        assert not set(tr[col][val]) & set(tr[col][~val])
    if protocol == "unseen_stimuli":
        for k in range(4):
            assert set(ex["participant"][sp["fold"] != k]) == set(ex["participant"])


def test_splits_reject_too_few_groups(study: dict[str, pd.DataFrame]) -> None:
    ex, _ = _build(study)
    with pytest.raises(ValueError, match="groups"):
        make_splits(ex, protocol="unseen_participants", n_folds=50)


def test_examples_survive_parquet_round_trip(study: dict[str, pd.DataFrame], tmp_path) -> None:
    """Lake tables come back with numpy arrays in list columns; everything downstream must accept them."""
    ex, _ = _build(study)
    ex.to_parquet(tmp_path / "ex.parquet")
    back = pd.read_parquet(tmp_path / "ex.parquet")
    assert isinstance(back["sequence"].iloc[0], np.ndarray)
    tf, imf = study["text_features"], study["image_features"]
    tf.to_parquet(tmp_path / "tf.parquet")
    a = build_study_tensors(ex, study["aois"], tf, imf, stimuli=study["stimuli"])
    b = build_study_tensors(
        back, study["aois"], pd.read_parquet(tmp_path / "tf.parquet"), imf, stimuli=study["stimuli"]
    )
    np.testing.assert_array_equal(a.transition, b.transition)
    np.testing.assert_array_equal(a.seq_types, b.seq_types)
    np.testing.assert_array_equal(a.text_feat, b.text_feat)
    sh = shuffle_fixation_order(back, seed=1)
    assert len(sh) == len(back)
