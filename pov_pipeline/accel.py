"""Accelerator choices shared by the encoders and the training: device, mixed precision, batch size.

CPU is the tested default and stays bit-for-bit what it was: ``device="auto"`` resolves to CUDA only
where ``torch.cuda.is_available()``, and mixed precision is only ever switched on for CUDA unless it is
asked for by name. Batches adapt to memory by halving on an out-of-memory error, so a batch size tuned
on a large GPU still runs on a small one.

Routing a run to a GPU node is the orchestrator's job: :func:`accelerator_tags` gives the Dagster tags
that the queued run coordinator (``pov/accelerator`` concurrency limit) and the Kubernetes executor
(``dagster-k8s/config`` resource limits) read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")

#: Dagster tag naming the hardware a run or step can use (``gpu`` or ``cpu``).
ACCELERATOR_TAG = "pov/accelerator"
#: Environment variable asking for Kubernetes GPU resources on the GPU-capable runs and steps.
K8S_GPU_ENV = "POV_K8S_GPU_LIMIT"
MIXED_PRECISION_CHOICES = ("auto", "off", "bf16", "fp16")


def select_device(device: str) -> torch.device:
    """Map ``"auto"`` to CUDA when available and CPU otherwise; pass other names through."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_dtype(device: torch.device, mixed_precision: str, *, training: bool) -> torch.dtype | None:
    """The autocast dtype for ``device``, or ``None`` for full float32.

    Parameters
    ----------
    device:
        Where the model runs.
    mixed_precision:
        ``auto``: bfloat16 on CUDA devices that support it, float32 elsewhere (CPU included, where
        autocast rarely pays and would change the tested results); ``off``: always float32;
        ``bf16`` / ``fp16``: that dtype on any device.
    training:
        float16 training needs loss scaling, which this project does not do, so ``fp16`` is refused
        for training; bfloat16 keeps float32's exponent range and needs none.

    Raises
    ------
    ValueError
        For an unknown choice, or ``fp16`` with ``training=True``.
    """
    if mixed_precision not in MIXED_PRECISION_CHOICES:
        raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION_CHOICES}, got {mixed_precision!r}")
    if mixed_precision == "off":
        return None
    if mixed_precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if mixed_precision == "fp16" and training:
        raise ValueError("fp16 training needs loss scaling; use mixed_precision='bf16' or 'off'")
    return torch.bfloat16 if mixed_precision == "bf16" else torch.float16


def dtype_name(dtype: torch.dtype | None) -> str:
    """The compute dtype as a short name (``float32`` when autocast is off), e.g. for cache keys."""
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[None]:
    """``torch.autocast`` for ``dtype``, or a no-op context for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator out-of-memory error (CUDA's, or a backend's message)."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def map_batches_adaptive(
    fn: Callable[[Sequence[T]], list[object]],
    items: Sequence[T],
    batch_size: int,
    *,
    on_shrink: Callable[[int], None] | None = None,
) -> list[object]:
    """Apply ``fn`` to ``items`` in batches, halving the batch size after an out-of-memory error.

    ``fn`` maps a batch to one result per item. The smaller size is kept for the remaining batches
    (memory pressure rarely goes away within a run). A batch of one that still runs out of memory
    raises the original error.

    Parameters
    ----------
    fn:
        Batch function; must not keep partial state when it raises.
    items:
        Everything to process, in order.
    batch_size:
        Starting batch size (at least 1).
    on_shrink:
        Called with the new batch size after each halving (logging hook).

    Returns
    -------
    list
        ``fn``'s results for all items, in order.
    """
    size = max(1, int(batch_size))
    out: list[object] = []
    start = 0
    while start < len(items):
        batch = items[start : start + size]
        try:
            res = fn(batch)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc) or size == 1:
                raise
            size = max(1, size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if on_shrink is not None:
                on_shrink(size)
            continue
        out.extend(res)
        start += len(batch)
    return out


def accelerator_tags(gpu_capable: bool, *, k8s_gpu_limit: str | None = None) -> dict[str, object]:
    """Dagster tags for a run or step: ``pov/accelerator`` plus, when asked, Kubernetes GPU resources.

    Parameters
    ----------
    gpu_capable:
        Whether the work gains from a GPU (encoders, training) or not (parsing, detection).
    k8s_gpu_limit:
        Number of GPUs to request from Kubernetes (``nvidia.com/gpu``) for GPU-capable work; defaults
        to ``$POV_K8S_GPU_LIMIT``. Unset or empty: no Kubernetes config, so the local and Postgres
        profiles see only the plain tag.
    """
    tags: dict[str, object] = {ACCELERATOR_TAG: "gpu" if gpu_capable else "cpu"}
    limit = os.environ.get(K8S_GPU_ENV, "") if k8s_gpu_limit is None else k8s_gpu_limit
    if gpu_capable and limit:
        if not limit.isdigit() or int(limit) < 1:
            raise ValueError(f"{K8S_GPU_ENV} must be a positive integer, got {limit!r}")
        tags["dagster-k8s/config"] = {
            "container_config": {"resources": {"limits": {"nvidia.com/gpu": limit}}},
            "pod_spec_config": {
                "node_selector": {"pov/accelerator": "gpu"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        }
    return tags
