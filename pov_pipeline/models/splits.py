"""Grouped cross-validation splits: unseen participants or unseen stimuli."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Protocol = Literal["unseen_participants", "unseen_stimuli"]
PROTOCOLS: tuple[str, ...] = ("unseen_participants", "unseen_stimuli")
_GROUP = {"unseen_participants": "participant", "unseen_stimuli": "stimulus_id"}


def group_column(protocol: str) -> str:
    """The column whose values never straddle train and test under ``protocol``."""
    if protocol not in _GROUP:
        raise ValueError(f"unknown protocol {protocol!r}: expected one of {PROTOCOLS}")
    return _GROUP[protocol]


def make_splits(
    examples: pd.DataFrame, *, protocol: Protocol, n_folds: int = 5, seed: int = 0
) -> pd.DataFrame:
    """Assign each example to a test fold, grouped so that no group is in train and test of a fold.

    Groups (participants or stimuli) are shuffled with ``seed`` and dealt round-robin, so folds have
    equal numbers of groups (±1) and the result depends only on the set of groups and the seed.

    Parameters
    ----------
    examples:
        Frame with ``participant, trial, stimulus_id``.
    protocol:
        ``"unseen_participants"`` (grouped by participant) or ``"unseen_stimuli"`` (grouped by stimulus;
        every participant appears in every training set).
    n_folds:
        Number of folds.
    seed:
        Seed of the group shuffle.

    Returns
    -------
    pd.DataFrame
        ``participant, trial, fold, protocol`` in the order of ``examples``.
    """
    col = group_column(protocol)
    groups = examples[col].astype(str).to_numpy()
    uniq = np.unique(groups)
    if len(uniq) < n_folds:
        raise ValueError(f"protocol {protocol}: {len(uniq)} groups cannot fill {n_folds} folds")
    perm = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = pd.Series(np.arange(len(uniq)) % n_folds, index=uniq[perm])
    return pd.DataFrame(
        {
            "participant": examples["participant"].to_numpy(),
            "trial": examples["trial"].to_numpy().astype("int32"),
            "fold": fold_of.reindex(groups).to_numpy().astype("int32"),
            "protocol": protocol,
        }
    )


def inner_validation_mask(
    train: pd.DataFrame, *, protocol: Protocol, val_fraction: float = 0.15, seed: int = 0
) -> np.ndarray:
    """Boolean mask over ``train`` rows held out for early stopping, grouped like the outer split.

    At least one group is held out and at least one is kept for training; with a single group,
    a share of its rows is held out instead.
    """
    col = group_column(protocol)
    groups = train[col].astype(str).to_numpy()
    uniq = np.unique(groups)
    if len(uniq) < 2:
        # A single group cannot be split by group (tiny studies): hold out rows instead.
        rng = np.random.default_rng(seed)
        n_val = max(1, round(val_fraction * len(groups))) if len(groups) > 1 else 0
        mask = np.zeros(len(groups), dtype=bool)
        mask[rng.choice(len(groups), size=n_val, replace=False)] = True
        return mask
    n_val = int(np.clip(round(val_fraction * len(uniq)), 1, max(len(uniq) - 1, 1)))
    chosen = np.random.default_rng(seed).choice(uniq, size=n_val, replace=False)
    return np.isin(groups, chosen)
