"""Device, mixed precision, memory-adaptive batches and GPU routing tags (CPU-tested)."""

from __future__ import annotations

import pytest
import torch

from pov_pipeline.accel import (
    ACCELERATOR_TAG,
    accelerator_tags,
    autocast_dtype,
    map_batches_adaptive,
    select_device,
)


def test_auto_device_and_precision_stay_cpu_float32_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the test pins the CPU default")
    device = select_device("auto")
    assert device.type == "cpu"
    assert autocast_dtype(device, "auto", training=True) is None
    assert autocast_dtype(device, "auto", training=False) is None


def test_named_precisions_and_refusals() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "off", training=False) is None
    assert autocast_dtype(cpu, "bf16", training=True) is torch.bfloat16
    assert autocast_dtype(cpu, "fp16", training=False) is torch.float16
    with pytest.raises(ValueError, match="loss scaling"):
        autocast_dtype(cpu, "fp16", training=True)
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        autocast_dtype(cpu, "half", training=False)


def _oom_above(limit: int, calls: list[int]):
    def fn(batch):
        calls.append(len(batch))
        if len(batch) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 10 for x in batch]

    return fn


def test_batches_halve_after_out_of_memory_and_keep_order() -> None:
    calls: list[int] = []
    shrunk: list[int] = []
    out = map_batches_adaptive(_oom_above(3, calls), list(range(11)), 8, on_shrink=shrunk.append)
    assert out == [x * 10 for x in range(11)]
    assert shrunk == [4, 2]
    # 8 and 4 fail once each; then batches of 2 until the end (the smaller size is kept).
    assert calls == [8, 4, 2, 2, 2, 2, 2, 1]


def test_out_of_memory_at_batch_one_and_other_errors_propagate() -> None:
    with pytest.raises(torch.OutOfMemoryError):
        map_batches_adaptive(_oom_above(0, []), [1, 2], 4)

    def broken(batch):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        map_batches_adaptive(broken, [1, 2], 4)


def test_accelerator_tags_route_gpu_work_only() -> None:
    assert accelerator_tags(False, k8s_gpu_limit="") == {ACCELERATOR_TAG: "cpu"}
    assert accelerator_tags(True, k8s_gpu_limit="") == {ACCELERATOR_TAG: "gpu"}
    tags = accelerator_tags(True, k8s_gpu_limit="2")
    assert tags["dagster-k8s/config"]["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert "dagster-k8s/config" not in accelerator_tags(False, k8s_gpu_limit="2")
    with pytest.raises(ValueError, match="positive integer"):
        accelerator_tags(True, k8s_gpu_limit="many")


def test_jobs_and_gpu_capable_steps_carry_the_tag() -> None:
    from pov_pipeline.assets.features import image_features, text_features
    from pov_pipeline.assets.models import train_models
    from pov_pipeline.jobs import participant_job, study_job, training_job

    assert study_job.tags[ACCELERATOR_TAG] == "gpu"
    assert training_job.tags[ACCELERATOR_TAG] == "gpu"
    assert participant_job.tags[ACCELERATOR_TAG] == "cpu"
    for asset in (text_features, image_features, train_models):
        assert asset.op.tags[ACCELERATOR_TAG] == "gpu"


def test_executor_is_chosen_by_environment() -> None:
    from dagster import in_process_executor, multiprocess_executor

    from pov_pipeline.definitions import executor_from_env

    assert executor_from_env("") is None
    assert executor_from_env("multiprocess") is multiprocess_executor
    assert executor_from_env("in_process") is in_process_executor
    assert executor_from_env("k8s").name == "k8s"
    with pytest.raises(ValueError, match="POV_EXECUTOR"):
        executor_from_env("celery")
