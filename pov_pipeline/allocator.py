"""Keep freed memory in the process instead of handing it back to the kernel (glibc's malloc).

The gaze stage works on frames of a few hundred thousand samples: every column, mask and result is
an allocation of one to a few MB, freed again once the participant is done. glibc's ``malloc``
serves such sizes with fresh ``mmap`` pages, or trims the heap as soon as more than twice its
(dynamic) mmap threshold sits free at the top, so the next participant touches fresh pages again.
On a virtual machine a first touch costs a page fault of a few microseconds per 4 KiB (3.4 us
measured on the benchmark machine: 2 ms to fill a fresh 2.3 MB array, 0.1 ms to refill it).

:func:`tune_allocator` raises the mmap threshold to glibc's ceiling (32 MiB on 64-bit builds) and
the trim threshold to 1 GiB, so freed blocks are reused by the next frame instead. The price is
a resident size that stays at its high-water mark (a few hundred MB per worker here) rather than
shrinking between participants. The entry points that run the gaze stage call it: the Dagster code
location, the ``pov`` command line and the benchmarks. Set ``POV_MALLOC_TUNING=0`` to leave the
allocator alone. Elsewhere than on glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: Environment variable: ``0`` / ``false`` / ``no`` / ``off`` leaves malloc's settings alone.
ENV = "POV_MALLOC_TUNING"
#: glibc's ``mallopt`` parameter numbers (``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc refuses mmap thresholds above half its largest heap (32 MiB on 64-bit builds).
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 1 << 30

_applied: bool | None = None


def tune_allocator(
    *, mmap_threshold_bytes: int = MMAP_THRESHOLD_BYTES, trim_threshold_bytes: int = TRIM_THRESHOLD_BYTES
) -> bool:
    """Set glibc's mmap and trim thresholds for this process; whether they are now in effect.

    Idempotent: the first call decides (later calls return its answer). ``False`` where the C
    library is not glibc, where ``$POV_MALLOC_TUNING`` switches the tuning off, or where glibc
    refused a value.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it: musl's mallopt does nothing)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success; setting the mmap threshold also fixes it (no dynamic raise).
    ok = mallopt(M_MMAP_THRESHOLD, int(mmap_threshold_bytes)) == 1
    ok = mallopt(M_TRIM_THRESHOLD, int(trim_threshold_bytes)) == 1 and ok
    _applied = ok
    return ok


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` has put its settings in effect in this process."""
    return bool(_applied)
