"""Participant-split models of the yes/no/unsure judgement and their evaluation (no Dagster import).

Pipeline: :func:`build_training_examples` → :func:`make_splits` → :func:`run_experiment` (naive,
LSTM, content Transformer, PGMT, ensembles, ablations) → :func:`compute_metrics`. The PGMT adds
``λ[layer, head] · T`` to the attention logits, ``T`` being the trial's AOI transition matrix projected
onto the caption-word and image-object tokens (see :mod:`pov_pipeline.models.nets`).
"""

from pov_pipeline.models.alignment import (
    alignment_table,
    cosine_similarity,
    js_distance_squared,
    kl_divergence_bits,
    top_k_overlap,
)
from pov_pipeline.models.dataset import (
    StudyTensors,
    build_study_tensors,
    build_training_examples,
    shuffle_fixation_order,
    transitions_from_sequences,
)
from pov_pipeline.models.metrics import (
    alignment_metrics,
    bayes_optimal_predictions,
    compute_metrics,
    confusion_matrices,
    per_participant_accuracy,
)
from pov_pipeline.models.nets import BiasedMultiHeadAttention, SequenceLSTM, TokenTransformer
from pov_pipeline.models.splits import PROTOCOLS, inner_validation_mask, make_splits
from pov_pipeline.models.training import ExperimentResult, TrainConfig, fit_model, run_experiment

__all__ = [
    "PROTOCOLS",
    "BiasedMultiHeadAttention",
    "ExperimentResult",
    "SequenceLSTM",
    "StudyTensors",
    "TokenTransformer",
    "TrainConfig",
    "alignment_metrics",
    "alignment_table",
    "bayes_optimal_predictions",
    "build_study_tensors",
    "build_training_examples",
    "compute_metrics",
    "confusion_matrices",
    "cosine_similarity",
    "fit_model",
    "inner_validation_mask",
    "js_distance_squared",
    "kl_divergence_bits",
    "make_splits",
    "per_participant_accuracy",
    "run_experiment",
    "shuffle_fixation_order",
    "top_k_overlap",
    "transitions_from_sequences",
]
