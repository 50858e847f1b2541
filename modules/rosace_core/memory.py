"""Keep a long-running module process near its real memory use.

Two habits of the C runtime make a ROSACE server look much bigger than the
data it holds:

- glibc raises its mmap threshold each time a large block is freed (up to
  32 MiB), so after the first full frame every 12-48 MB array comes from the
  heap, where freed frames stay resident between exposures (70-90 MB a
  process). :func:`tune_allocator` fixes the threshold: blocks of 1 MiB and
  more are mapped and handed back to the system as soon as they are freed.
- CPython frees objects caught in reference cycles only at its next full
  collection: :func:`release_memory` collects now and trims the heap, for
  use after a one-off burst (a table read, a reduction).

Both are no-ops beyond the garbage collection on other platforms (Windows'
allocator returns large blocks by itself).
"""

from __future__ import annotations

import functools
import gc
import sys

#: Blocks from this size on are mapped on their own (glibc ``M_MMAP_THRESHOLD``).
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h


@functools.lru_cache(maxsize=1)
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - glibc only (musl has no mallopt/malloc_trim)
        libc.malloc_trim  # noqa: B018
        return libc
    except (OSError, AttributeError):
        return None


def tune_allocator(threshold: int = MMAP_THRESHOLD) -> bool:
    """Map blocks of ``threshold`` bytes and more on their own (glibc); True if applied."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))


def release_memory() -> None:
    """Collect garbage cycles now and give the freed heap back to the system (trim on glibc)."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
