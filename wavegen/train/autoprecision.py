"""`mixed_precision = "auto"` on a CPU: bf16 autocast only where it trains this model faster than fp32.

Having the instructions is not enough. On an AVX2-only CPU PyTorch emulates bf16 (0.10-0.16x fp32,
BENCHMARKS.md), so there auto takes fp32 without measuring (`machine.fast_bf16`). Where the CPU has
bf16 instructions or AVX-512, how much bf16 pays depends on the CPU and the model's shape: it trained the
reference network 1.37x as fast as fp32 on an AMD EPYC with AVX-512, but only 1.15x on an Intel Xeon
with AMX and AVX512_BF16, where one dilated convolution's training step alone ran 0.83x fp32 (oneDNN's
AMX forward was twice as fast, its weight gradient no faster, and the layout reorders around each
convolution ate the rest: BENCHMARKS.md, "Training step"). So there auto times both: a few
training steps of the run's own model on one batch of its own data, in fp32 and in bf16 (eager, the
optimizer included; a second or two per step on the CPU config), and takes bf16 only if it is at least
MARGIN faster. The result is cached under the CPU's identity, torch's version, the thread count and
the model's and batch's settings (`~/.cache/wavegen/precision.json`, beside the kernels' choice), so
later runs and resumes read it back, unless other programs kept more than `machine.BUSY_CORES` busy
while it measured (a busy machine slows the two precisions unalike, as it does the kernels: then the
ratio serves that run and is measured again at the next start). A run of several processes does not
measure (each would choose for itself): it takes the capability rule.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable

import torch

from wavegen import machine
from wavegen.files import write_text_atomic

CACHE_VERSION = 3  # 2: whether the machine was quiet while measuring; 3: malloc keeps freed memory (fp32 was slowed most)
MARGIN = 1.05  # bf16 must be this much faster than fp32 to be taken: a tie stays in fp32
STEPS = 3  # timed per precision, after one warm-up step; the fastest counts

Probe = Callable[[torch.dtype | None], float]  # autocast dtype (None: fp32) -> seconds per training step


def cache_path():
    return machine.cache_dir() / "precision.json"


def key(settings: dict) -> str:
    """What the measurement depends on: the CPU, torch, the threads and the model's and batch's settings."""
    name, flags = machine.cpu()
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return (f"v{CACHE_VERSION} | {platform.machine()} {name} [{' '.join(flags)}] | torch {torch.__version__} | "
            f"threads {torch.get_num_threads()} | {digest}")


def step_timer(build_model: Callable[[], torch.nn.Module], batch: dict[str, torch.Tensor],
               loss: Callable[..., torch.Tensor]) -> Probe:
    """A probe: seconds of one training step (forward under autocast, fp32 loss, backward, AdamW) of a
    freshly built model on `batch`, the fastest of STEPS after a warm-up."""
    def seconds(dtype: torch.dtype | None) -> float:
        torch.manual_seed(0)
        model = build_model().train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        autocast = lambda: torch.autocast("cpu", dtype=dtype, enabled=dtype is not None)  # noqa: E731
        times = []
        for _ in range(STEPS + 1):
            t0 = time.perf_counter()
            loss(model, batch, autocast).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t0)
        return min(times[1:])
    return seconds


def choose(probe: Probe, settings: dict) -> tuple[bool, str]:
    """(take bf16, why) for a CPU that has bf16 instructions or AVX-512, measured once per key."""
    try:
        cache = json.loads(cache_path().read_text())
        cache = cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        cache = {}
    k = key(settings)
    hit = cache.get(k)
    if isinstance(hit, dict) and isinstance(hit.get("ratio"), (int, float)) and hit.get("quiet") is True:
        ratio, how = float(hit["ratio"]), "measured before on this CPU"
    else:
        with machine.OtherLoad() as load:
            ratio = probe(None) / probe(torch.bfloat16)
        quiet = load.quiet
        how = "measured now on this CPU" + ("" if quiet else f", while other programs kept {load.cores:.1f} cores "
                                            "busy (measured again at the next start)")
        cache[k] = {"ratio": round(ratio, 3), "quiet": quiet}
        try:
            cache_path().parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(cache_path(), json.dumps(cache, indent=1) + "\n")
        except OSError:
            pass  # a read-only home: measure again next time
    take = ratio >= MARGIN
    return take, (f"bf16 trains this model {ratio:.2f}x as fast as fp32, {how}"
                  + ("" if take else f"; bf16 is taken from {MARGIN:g}x"))
