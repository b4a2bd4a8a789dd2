"""Shared fixtures: where ../shared lives, and skipping cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POV_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
REFDATA = SHARED / "refdata"


@pytest.fixture(scope="session")
def refdata() -> Path:
    """The ``../shared/refdata`` folder; tests that need it skip with the reason when it is absent."""
    if not REFDATA.is_dir():
        pytest.skip(f"../shared/refdata not found at {REFDATA} (set POV_SHARED_DIR to point at it)")
    return REFDATA
