"""What this machine's CPU can do fast: its name and the vector extensions the kernels and the
training precision depend on (Linux /proc/cpuinfo; elsewhere only the platform's words)."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import time
from pathlib import Path

# the extensions that matter here, in the order they are reported (f16c: the c16 kernel widens its half
# weights with it)
VECTOR_FLAGS = ("avx512f", "avx512bw", "avx512_bf16", "amx_bf16", "avx2", "fma", "f16c", "sse4_2", "asimd", "bf16")


@functools.cache
def cpu() -> tuple[str, tuple[str, ...]]:
    """The CPU's name and which of VECTOR_FLAGS it has."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not name:
                name = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), tuple(f for f in VECTOR_FLAGS if f in flags)


def _busy_cpu_seconds() -> float | None:
    """CPU seconds every core has spent busy since boot (Linux /proc/stat), None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


BUSY_CORES = 0.5  # other programs using more than this many cores on average make a measurement "busy"


class OtherLoad:
    """`with OtherLoad() as load: ...` measures how many cores other programs kept busy, on average, while
    the block ran: the machine's busy CPU time less this process's own, over the wall time. `load.cores`
    is None where that cannot be read (no /proc/stat)."""

    cores: float | None = None

    def __enter__(self) -> OtherLoad:
        self._t0, self._own0, self._busy0 = time.perf_counter(), time.process_time(), _busy_cpu_seconds()
        return self

    def __exit__(self, *exc) -> None:
        busy = _busy_cpu_seconds()
        wall = time.perf_counter() - self._t0
        if busy is None or self._busy0 is None or wall <= 0:
            return
        others = (busy - self._busy0) - (time.process_time() - self._own0)
        self.cores = max(0.0, others / wall)

    @property
    def quiet(self) -> bool:
        """Whether other programs kept at most BUSY_CORES busy (or that could not be read)."""
        return self.cores is None or self.cores <= BUSY_CORES


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep what this process frees for its next allocations, instead of handing it
    back to the kernel: no block is mapped on its own (by default every block over 128 KiB to 32 MiB is,
    every activation of a training batch, and unmapped when freed, so that each step page-faults its
    whole working set in again, zero-filled) and the heap's top is never trimmed. On a 2-core CPU a
    training step spent up to a third of its time in the kernel this way; kept, fp32 trained 1.76x and
    bf16 1.46x as fast in the same run, and torch.compile compiled in half the time (BENCHMARKS.md).
    The cost: the process keeps its peak memory until it ends, so it is for the processes that train
    and evaluate. Returns whether it was applied: glibc only (elsewhere nothing changes), and not with
    WAVEGEN_SYSTEM_MALLOC=1 (to measure against)."""
    if os.environ.get("WAVEGEN_SYSTEM_MALLOC", "") not in ("", "0") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, -1) == 1  # -1: never trim (man mallopt)


def cache_dir() -> Path:
    """Where wavegen keeps what it measured on this machine (the kernels' and the training precision's
    choices): $WAVEGEN_CACHE_DIR, else $XDG_CACHE_HOME/wavegen, else ~/.cache/wavegen."""
    root = os.environ.get("WAVEGEN_CACHE_DIR")
    return Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wavegen"


def fast_bf16() -> tuple[bool, str]:
    """Whether bf16 autocast can train faster than fp32 on this CPU, and why: where the CPU has bf16
    instructions (AVX512_BF16, AMX, ARM's BF16) or AVX-512 (measured 1.37x fp32 on the development
    machine, BENCHMARKS.md; only 1.15x on a Xeon with AMX, and slower than fp32 for some shapes, so the
    training loop then measures: wavegen/train/autoprecision.py); not with AVX2 alone, where PyTorch
    emulates it (0.10x fp32)."""
    _, flags = cpu()
    for flag, what in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512_BF16"), ("bf16", "BF16 instructions"),
                       ("avx512bw", "AVX-512")):
        if flag in flags:
            return True, f"the CPU has {what}"
    return False, "the CPU has neither bf16 instructions nor AVX-512: bf16 would be emulated, about 10x slower"
