"""rosace_core.memory: freed frames go back to the system; garbage cycles are collected on demand."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys
import weakref

import pytest

from rosace_core.memory import release_memory, tune_allocator

# Free a 32 MB frame, then allocate and free another one as a server does between
# exposures; print how much of it stays resident.
FRAMES = """
import re, sys
import numpy as np
from rosace_core.memory import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator()
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
a = np.ones((2000, 2000))  # 32 MB
del a
before = rss()
b = np.ones((2000, 2000))
small = [bytes(100) for _ in range(1000)]  # heap in use above the frame
del b
print(rss() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_a_freed_frame_leaves_the_process_once_the_allocator_is_tuned():
    kept = float(subprocess.run([sys.executable, "-c", FRAMES, "tuned"], capture_output=True, text=True, check=True).stdout)
    assert kept < 8  # MB; untuned glibc keeps the whole 32 MB frame on its heap
    untuned = float(subprocess.run([sys.executable, "-c", FRAMES, "plain"], capture_output=True, text=True, check=True).stdout)
    assert untuned > kept


def test_tune_allocator_applies_on_glibc_only():
    assert tune_allocator() is (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc")


def test_release_memory_frees_reference_cycles_now():
    class Node:
        pass

    gc.disable()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        assert ref() is not None  # a cycle waits for the collector
        release_memory()
        assert ref() is None
    finally:
        gc.enable()


def test_earth_orientation_is_read_once_and_serves_ut1():
    from astropy.time import Time

    from rosace_core.astro import load_earth_orientation

    table = load_earth_orientation()
    assert len(table) > 10000 and load_earth_orientation() is table
    t = Time("2026-12-15T20:00:00", scale="utc")
    assert abs((t.ut1.jd - t.jd) * 86400) < 0.9  # |UT1 - UTC| from the table
