"""Jobs: what the sensor, the schedule and ``pov demo`` launch."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from pov_pipeline.accel import accelerator_tags
from pov_pipeline.partitions import participants_partitions

#: The last per-participant asset; the schedule compares its partitions with the last training.
LAST_PARTICIPANT_ASSET = "transitions"
#: The first asset of the training stage; its metadata records the participants it covered.
TRAINING_ENTRY_ASSET = "training_examples"

STUDY_GROUPS = ("study", "features")
PARTICIPANT_GROUPS = ("ingest", "gaze")
TRAINING_GROUPS = ("models",)

study_job = define_asset_job(
    "study_job",
    selection=AssetSelection.groups(*STUDY_GROUPS),
    # Encoders and training gain from a GPU: ``pov/accelerator=gpu`` lets a queue or a cluster route
    # them (plus Kubernetes GPU resources when $POV_K8S_GPU_LIMIT is set); the gaze stage is CPU work.
    tags={"pov/stage": "encoders", **accelerator_tags(gpu_capable=True)},
    description="Stimuli, AOIs and their feature caches.",
)

participant_job = define_asset_job(
    "participant_job",
    selection=AssetSelection.groups(*PARTICIPANT_GROUPS),
    partitions_def=participants_partitions,
    tags={"pov/stage": "gaze", **accelerator_tags(gpu_capable=False)},
    description="Everything per participant: raw gaze → events → AOI hits → sequences → transitions.",
)

training_job = define_asset_job(
    "training_job",
    selection=AssetSelection.groups(*TRAINING_GROUPS),
    tags={"pov/stage": "models", **accelerator_tags(gpu_capable=True)},
    description="Training examples → splits → models → predictions → metrics → report.",
)
