"""machine.keep_freed_memory: a block freed and allocated again is not page-faulted in again (glibc)."""

import os
import platform
import subprocess
import sys

import pytest

from wavegen import machine

CHILD = """
import ctypes, resource
from wavegen import machine
kept = machine.keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
n = 64 << 20  # as torch allocates a tensor (numpy would ask for huge pages: fewer faults to count)
block = libc.malloc(n)
ctypes.memset(block, 1, n)  # every page written
libc.free(block)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = libc.malloc(n)
ctypes.memset(block, 1, n)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = (64 << 20) // os.sysconf("SC_PAGE_SIZE")


def faults_on_second_allocation(system_malloc: bool) -> tuple[str, int]:
    env = dict(os.environ, WAVEGEN_SYSTEM_MALLOC="1" if system_malloc else "0")
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, env=env)
    kept, faults = out.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_memory_is_kept_for_the_next_allocation():
    kept, faults = faults_on_second_allocation(system_malloc=False)
    assert kept == "True"
    assert faults < PAGES // 10  # the 64 MiB come back from the heap, already mapped
    # glibc's default maps a block this large on its own and unmaps it when freed: every page faults again
    kept, faults = faults_on_second_allocation(system_malloc=True)
    assert kept == "False"
    assert faults >= PAGES * 0.9


def test_turned_off_by_the_environment(monkeypatch):
    machine.keep_freed_memory.cache_clear()
    monkeypatch.setenv("WAVEGEN_SYSTEM_MALLOC", "1")
    try:
        assert machine.keep_freed_memory() is False
    finally:
        machine.keep_freed_memory.cache_clear()
