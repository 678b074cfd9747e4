"""Which compiled kernel plays a model on this machine: measured, not assumed.

The C kernel is usually the faster (it is built for this CPU), but not everywhere: a build whose
vectors do not suit the CPU, or a CPU its tiles were not sized for, can leave numba's kernel ahead.
So at the first use of a model shape on a machine, `best_backend` times each kernel it may choose for a
fraction of a second (batch 1, one thread: how `wavegen generate` plays; the very first time numba
also compiles its kernel, some seconds, which it caches for every later run) and keeps the fastest; the
choice is cached in `~/.cache/wavegen/kernels.json` ($WAVEGEN_CACHE_DIR or $XDG_CACHE_HOME/wavegen)
under the CPU's identity, the C libraries' digests and the model's shape, so later runs read it back.

The kernels it may choose are those in AUTO: the float ones ("c", "numba"), which compute the PyTorch
step. "c16", the C kernel with its weights stored in fp16, computes the step of the weights rounded to
half: it joins AUTO only where that was measured not to matter (the held-out loss moving by less than
0.01 bits per sample and note F1 not moving: scripts/eval_kernel_weights.py, BENCHMARKS.md "fp16
weights in the kernel (AVX2)"); it is there for `--engine c16` either way.
`WAVEGEN_KERNEL=c|c16|numba` (or `wavegen generate --engine c|c16|numba`) forces one; `wavegen doctor`
shows the machine, every kernel's measured speed and the choice.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numba

from wavegen import machine
from wavegen.errors import WavegenError
from wavegen.files import write_text_atomic
from wavegen.synth import fast

CACHE_VERSION = 2  # 2: c16 beside c and numba
MEASURE_SECONDS = 0.15  # per kernel, after a warm-up tick
# The kernels `choose` may pick by itself (see the module's doc for why c16 is or is not among them).
AUTO = ("c", "numba")


def c_target(backend: str = "c") -> tuple[int, int, int, bool] | None:
    """What the installed library of C backend `backend` was built for (fast.c_target), or None."""
    lib = fast.c_library(backend)
    if lib is None or not hasattr(lib, "wg_target"):
        return None
    return fast.c_target(lib)


def _c_digest() -> str:
    parts = []
    for b in fast.C_LIBRARIES:
        lib = fast.c_library(b)
        parts.append(hashlib.sha256(Path(lib._name).read_bytes()).hexdigest()[:16] if lib is not None else "none")
    return " ".join(parts)


def shape(model) -> str:
    c = model.cfg
    return (f"L{len(model.layers)} K{c.kernel_size} R{c.residual_channels} G{c.gate_channels} S{c.skip_channels} "
            f"H{c.head_channels} out{model.n_out} exc{int(model.uses_excitation)}")


def cache_path() -> Path:
    root = os.environ.get("WAVEGEN_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wavegen"
    return Path(root) / "kernels.json"


def cache_key(model) -> str:
    name, flags = machine.cpu()
    return f"v{CACHE_VERSION} | {platform.machine()} {name} [{' '.join(flags)}] | c {_c_digest()} | " \
           f"numba {numba.__version__} | {shape(model)}"


def available() -> list[str]:
    """The kernels that run here (the C ones a compiler built at install time, and numba)."""
    return fast.built()


def measure(model, backend: str, seconds: float = MEASURE_SECONDS) -> float:
    """Samples per second of `backend` playing `model` at batch 1 on one thread (after a warm-up tick,
    which also compiles numba's kernel or loads it from its cache)."""
    from wavegen.notes import text as T

    player = fast.FastWaveNet(model, backend)
    spt = model.samples_per_tick
    sr = spt * 20  # any rate: the speed does not depend on it
    chord = T.parse("HLOS " * 400)  # four keys sounding, as in a chorale
    player.run(spt, sample_rate_hz=sr, sketch=chord)
    n, t0 = spt, time.perf_counter()
    while True:
        player.run(n, sample_rate_hz=sr, sketch=chord)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed
        n, t0 = 2 * n, time.perf_counter()


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@dataclass
class Choice:
    backend: str
    speeds: dict[str, float] = field(default_factory=dict)  # samples/s per kernel, as measured
    source: str = "measured"  # "measured", "cache", "forced (WAVEGEN_KERNEL)", "only one built"


def choose(model, *, fresh: bool = False) -> Choice:
    """The kernel for `model` here (see the module's doc): the fastest of those built here that AUTO lets
    it pick; fresh: measure again, every kernel built here (for `wavegen doctor`), and update the cache."""
    options = available()
    candidates = [b for b in options if b in AUTO]
    forced = os.environ.get("WAVEGEN_KERNEL", "").strip().lower()
    if forced and forced not in options:
        raise WavegenError(f"WAVEGEN_KERNEL={forced}: choose one of {', '.join(options)} (the C kernels "
                           "are there only where a compiler built them at install)")
    if forced and not fresh:
        return Choice(forced, source="forced (WAVEGEN_KERNEL)")
    if len(candidates) == 1 and not fresh:
        return Choice(candidates[0], source="only one built")
    key = cache_key(model)
    cache = _read_cache()
    hit = cache.get(key)
    if not fresh and isinstance(hit, dict) and hit.get("backend") in candidates:
        return Choice(hit["backend"], dict(hit.get("speeds", {})), "cache")
    speeds = {b: measure(model, b) for b in (options if fresh else candidates)}
    best = max(candidates, key=speeds.get)
    cache[key] = {"backend": best, "speeds": {b: round(v) for b, v in speeds.items()}}
    try:
        cache_path().parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cache_path(), json.dumps(cache, indent=1) + "\n")
    except OSError:
        pass  # a read-only home: measure again next time
    return Choice(forced, speeds, "forced (WAVEGEN_KERNEL)") if forced else Choice(best, speeds, "measured")


def best_backend(model) -> str:
    return choose(model).backend


@dataclass
class Report:
    lines: list[str]

    def summary(self) -> str:
        return "\n".join(self.lines)


def doctor(model: str | None = None) -> Report:
    """`wavegen doctor`: the CPU, the kernels built here and what they were built for, each one's measured
    speed on `model` (default: the shipped one) and the one `wavegen generate` runs."""
    from wavegen.nn import checkpoint

    name, flags = machine.cpu()
    lines = [f"CPU: {name} ({platform.machine()}, {os.cpu_count()} cores); vector extensions: "
             f"{' '.join(flags) or 'none found'}"]
    for backend in fast.C_LIBRARIES:
        target = c_target(backend)
        what = "C kernel" if backend == "c" else "C kernel, fp16 weights (c16)"
        if target is None:
            lines.append(f"{what}: not built (no compiler at install time)"
                         + ("; the numba kernel plays" if backend == "c" else ""))
            continue
        isa = {16: "AVX-512", 8: "AVX/AVX2"}.get(target[0], "SSE" if platform.machine() in ("x86_64", "AMD64")
                                                 else "NEON" if platform.machine() in ("aarch64", "arm64") else "128-bit")
        half = "" if backend == "c" else (", widened by " + ("F16C/NEON" if target[3] else "software (no F16C: slow)"))
        lines.append(f"{what}: {fast.c_library(backend)._name}, built for {isa}: vectors of {target[0]} floats, "
                     f"tiles for {target[1]} registers{half}")
    lines.append(f"numba kernel: numba {numba.__version__}")
    loaded = checkpoint.load(model)
    reason = fast.why_not(loaded.model)
    if reason:
        lines.append(f"{loaded.path.name}: not for the compiled kernels ({reason}); the PyTorch step plays it")
        return Report(lines)
    chosen = choose(loaded.model, fresh=True)
    sr = loaded.sample_rate_hz
    for b, v in chosen.speeds.items():
        lines.append(f"  {b:<6} {v:>9,.0f} samples/s  {v / sr:5.2f}x real time  (batch 1, one thread, "
                     f"{loaded.path.name})" + ("" if b in AUTO else "; --engine only (fp16 weights: see BENCHMARKS.md)"))
    lines.append(f"wavegen generate runs: {chosen.backend}"
                 f"{' (forced by WAVEGEN_KERNEL)' if chosen.source.startswith('forced') else ''}; choice cached in "
                 f"{cache_path()}")
    return Report(lines)
