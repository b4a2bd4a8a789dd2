"""The allocator tuning of the pipeline's entry points (pov_pipeline.allocator)."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from pov_pipeline import allocator


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first call decides for the process; each test decides afresh.
    monkeypatch.setattr(allocator, "_applied", None)


def _glibc() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return hasattr(libc, "gnu_get_libc_version")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc(), reason="mallopt tuning applies to glibc only")
def test_tuning_is_applied_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(allocator.ENV, raising=False)
    assert allocator.tune_allocator() is True
    assert allocator.allocator_tuned() is True
    # Idempotent: the first answer stands.
    assert allocator.tune_allocator() is True


@pytest.mark.parametrize("value", ["0", "false", "OFF", " no "])
def test_environment_switches_it_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(allocator.ENV, value)
    assert allocator.tune_allocator() is False
    assert allocator.allocator_tuned() is False


def test_not_applied_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(allocator.ENV, raising=False)
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.tune_allocator() is False
