"""Which compiled kernel plays a model on this machine: measured, not assumed.

The C kernel is usually the faster (it is built for this CPU), but not everywhere: a build whose
vectors do not suit the CPU, or a CPU its tiles were not sized for, can leave numba's kernel ahead.
So at the first use of a model shape on a machine, `best_backend` times each kernel it may choose for a
fraction of a second on one thread, in turns (every kernel once, five times over), keeping each one's
best timing so that a busy moment of a shared machine does not decide (the very first time numba also
compiles its kernel, some seconds, which it caches for every later run), and keeps the fastest, once for
one stream (how `wavegen generate` and the studio play) and once for a batch of takes, timed with one
block of BLOCK streams: the fastest for one stream need not be the fastest for a batch (cbf16 on a Xeon
with AVX512_BF16: the fastest for one stream, 0.75x c16 at batch 16; on a Zen 5 the fastest for both).
The choices are cached in `~/.cache/wavegen/kernels.json` ($WAVEGEN_CACHE_DIR or
$XDG_CACHE_HOME/wavegen) under the CPU's identity, the C libraries' digests, the model's shape and the
batch class, so later runs read them back.

Best-of-five does not help when other programs keep the cores busy through the whole measurement, and
they do not slow every kernel alike: on a 2-core Zen 5 with a training run beside it, cbf16 measured
10,104 samples/s against its quiet 51,701 while c kept 24,711 of 30,096, so the choice flipped to a
kernel half as fast, and was cached. So the measurement also counts the cores other programs used
meanwhile (`machine.OtherLoad`); past BUSY_CORES the choice is used for the rest of that process (every
player of the model in it plays with the same kernel), each kernel keeping the best it has measured so
far, and measured again at the next start, until a quiet measurement replaces it. A busy measurement
never replaces a quiet one.

The kernels it may choose are those in AUTO: the float ones ("c", "numba"), which compute the PyTorch
step, and the reduced-precision ones (REDUCED): "c16", the C kernel with its weights stored in fp16,
computes the step of the weights rounded to half; "cbf16" takes bf16 weights and bf16 inputs to its
matrix products. Each joins AUTO only where that was measured not to matter (the held-out loss moving
by less than 0.01 bits per sample and note F1 not moving: scripts/eval_kernel_weights.py, BENCHMARKS.md
"fp16 weights in the kernel (AVX2)" and "bf16 dot products in the kernel (AVX512_BF16)"); each is there
for `--engine` either way. That was measured on the shipped model; for every model it may choose one
for, `choose` also checks, once per model's weights (cached by their digest), that the kernel moves its
predictions by less than REDUCED_KL_LIMIT (`reduced_kl`), and otherwise leaves it out.
`WAVEGEN_KERNEL=c|c16|cbf16|numba` (or `wavegen generate --engine ...`) forces one; `wavegen doctor`
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

CACHE_VERSION = 5  # 2: c16 beside c and numba; 3: cbf16, and a choice per batch class; 4: best of timings in
# turns; 5: whether other programs kept the cores busy while measuring (choices made busy are measured again)
BLOCK = 8  # streams a batch is timed with: one of the kernels' blocks
MEASURE_SECONDS = 0.3  # per kernel, after a warm-up tick, in ROUNDS timings taken in turns
ROUNDS = 5
BUSY_CORES = machine.BUSY_CORES  # other programs using more cores than this make a measurement "busy"
# The kernels `choose` may pick by itself. c16 is among them: on the shipped model its fp16 weights moved
# the held-out loss by +0.00001 bits per sample (the issue allows 0.01) and onset F1 by less than the
# seed-to-seed noise (BENCHMARKS.md, "fp16 weights in the kernel (AVX2)"); it is taken where it measures
# faster, for weights half holds (REDUCED_KL_LIMIT). So is cbf16 (BENCHMARKS.md, "bf16 dot products").
AUTO = ("c", "c16", "cbf16", "numba")
REDUCED = {"c16": "fp16", "cbf16": "bf16"}  # the kernels that compute a model in less than float
# a reduced kernel joins the choice for a model only where it moves the model's predictions by less than
# this (`reduced_kl`, bits per sample): ten times under the 0.01 bits of loss
REDUCED_KL_LIMIT = 1e-3


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
            f"H{c.head_channels} out{model.n_out} exc{int(model.uses_excitation)}"
            + (f" partials{c.excitation_partials}" if c.excitation_partials > 1 else ""))


def cache_path() -> Path:
    return machine.cache_dir() / "kernels.json"


def cache_key(model, batch: int = 1) -> str:
    name, flags = machine.cpu()
    return f"v{CACHE_VERSION} | {platform.machine()} {name} [{' '.join(flags)}] | c {_c_digest()} | " \
           f"numba {numba.__version__} | {shape(model)} | batch {batch_class(batch)}"


def available() -> list[str]:
    """The kernels that run here (the C ones a compiler built at install time, and numba)."""
    return fast.built()


def batch_class(batch: int) -> int:
    """The batch a choice is measured at and cached for: 1, or BLOCK for any batch of takes."""
    return 1 if batch <= 1 else BLOCK


def measure(model, backend: str, seconds: float = MEASURE_SECONDS, batch: int = 1) -> float:
    """Samples per second of `backend` playing `model` for `batch` streams on one thread (measure_all)."""
    return measure_all(model, [backend], seconds=seconds, batch=batch)[backend]


def measure_all(model, backends: list[str], *, seconds: float = MEASURE_SECONDS, batch: int = 1,
                rounds: int = ROUNDS) -> dict[str, float]:
    """Samples per second of each of `backends` playing `model` for `batch` streams on one thread, after a
    warm-up tick (which also compiles numba's kernel or loads it from its cache). Each kernel is timed
    `rounds` times, about seconds / rounds each, in turns (every kernel once, then every kernel again),
    and keeps its best: on a shared machine a busier moment slows one timing of one kernel, which a single
    timing each would take for that kernel's speed (two kernels 10 % apart then swap places)."""
    from wavegen.notes import text as T

    spt = model.samples_per_tick
    sr = spt * 20  # any rate: the speed does not depend on it
    chord = T.parse("HLOS " * 400)  # four keys sounding, as in a chorale
    players, lengths, best = {}, {}, {}

    def timed(b: str) -> float:
        t0 = time.perf_counter()
        players[b].run(lengths[b], sample_rate_hz=sr, sketch=chord, batch=batch)
        return time.perf_counter() - t0

    for b in backends:  # the first round also finds each kernel's length of a timing
        players[b], lengths[b] = fast.FastWaveNet(model, b), spt
        players[b].run(spt, sample_rate_hz=sr, sketch=chord, batch=batch)
        while (elapsed := timed(b)) < seconds / rounds:
            lengths[b] *= 2
        best[b] = lengths[b] * batch / elapsed
    for _ in range(rounds - 1):
        for b in backends:
            best[b] = max(best[b], lengths[b] * batch / timed(b))
    return best


def kl_bits(p_logits, q_logits) -> float:
    """Mean KL(p || q) over samples, in bits, of the distributions two kernels' logits (..., classes) give."""
    import numpy as np

    def log_softmax(x):
        x = np.asarray(x, dtype=np.float64)
        x = x - x.max(axis=-1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=-1)) / np.log(2))


def reduced_kl(model, backend: str = "c16", ticks: int = 2) -> float:
    """How far a reduced kernel (REDUCED: c16's fp16 weights, cbf16's bf16) moves `model`'s predictions:
    the KL divergence from the float kernel's distribution to its, bits per sample, over a take the float
    kernel samples (two ticks following a four-key chord): the loss it would add on the model's own audio.
    On held-out audio the shipped model's loss moved by far less than the issue's 0.01 bits (BENCHMARKS.md,
    "fp16 weights in the kernel", "bf16 dot products"); this checks each other model (its weights might sit
    where the format is coarse) in a fraction of a second."""
    from wavegen.notes import text as T

    try:
        reduced = fast.FastWaveNet(model, backend)
    except ValueError:  # a weight beyond half's range
        return float("inf")
    exact = fast.FastWaveNet(model, "c" if "c" in available() else "numba")
    spt = model.samples_per_tick
    kw = dict(sample_rate_hz=spt * 20, sketch=T.parse("HLOS " * 400))
    n = ticks * spt
    codes = exact.run(n, seed=0, **kw)
    p, q = (k.run(n, teacher=codes, return_logits=True, **kw) for k in (exact, reduced))
    return kl_bits(p, q)


def weights_digest(model) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


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
    kl: dict[str, float] = field(default_factory=dict)  # reduced_kl of the model, per reduced candidate
    others: float | None = None  # cores other programs kept busy while it was measured (None: unknown)
    kept_quiet: bool = False  # busy now, so the choice is the quiet measurement in the cache


# choices measured busy in this process, by cache key: the run keeps the one it measured (two players of
# one model in one process must not play with different kernels); the next process measures again
_BUSY_CHOICES: dict[str, Choice] = {}


def _write_cache(cache: dict) -> None:
    try:
        cache_path().parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cache_path(), json.dumps(cache, indent=1) + "\n")
    except OSError:
        pass  # a read-only home: measure again next time


def choose(model, *, fresh: bool = False, batch: int = 1) -> Choice:
    """The kernel for `model` here (see the module's doc): the fastest of those built here that AUTO lets
    it pick, a reduced one only for weights it holds (`reduced_kl`, measured once per model's weights); fresh:
    measure again, every kernel built here (for `wavegen doctor`), and update the cache. batch: the streams
    it will play (a choice for one stream, and one for any batch: `batch_class`)."""
    options = available()
    candidates = [b for b in options if b in AUTO]
    forced = os.environ.get("WAVEGEN_KERNEL", "").strip().lower()
    if forced and forced not in options:
        raise WavegenError(f"WAVEGEN_KERNEL={forced}: choose one of {', '.join(options)} (the C kernels "
                           "are there only where a compiler built them at install)")
    if forced and not fresh:
        return Choice(forced, source="forced (WAVEGEN_KERNEL)")
    cache = _read_cache()
    kl: dict[str, float] = {}
    for backend, name in REDUCED.items():
        if backend not in candidates:
            continue
        kl_key = f"v{CACHE_VERSION} | {name} KL | {shape(model)} | weights {weights_digest(model)}"
        kl[backend] = cache.get(kl_key)
        if fresh or not isinstance(kl[backend], float):
            kl[backend] = cache[kl_key] = reduced_kl(model, backend)
            _write_cache(cache)
        if kl[backend] >= REDUCED_KL_LIMIT:
            candidates.remove(backend)
    if len(candidates) == 1 and not fresh:
        return Choice(candidates[0], source="only one built", kl=kl)
    key = cache_key(model, batch)
    hit = cache.get(key) if isinstance(cache.get(key), dict) else {}
    known = dict(hit["speeds"]) if isinstance(hit.get("speeds"), dict) else {}
    complete = all(isinstance(known.get(b), (int, float)) for b in candidates)
    quiet_before = complete and hit.get("quiet") is True
    if not fresh and quiet_before:  # timed before, this shape, on a quiet machine
        return Choice(max(candidates, key=known.get), known, "cache", kl)
    if not fresh and key in _BUSY_CHOICES and _BUSY_CHOICES[key].backend in candidates:
        return _BUSY_CHOICES[key]  # measured busy earlier in this run
    with machine.OtherLoad() as load:
        speeds = measure_all(model, options if fresh else candidates, batch=batch_class(batch))
    quiet = load.quiet
    if quiet:
        chosen_from = speeds
    elif quiet_before:  # a busy measurement (wavegen doctor beside a training run) keeps the quiet one
        chosen_from = known
    else:  # busy again: each kernel's best so far, and measured again next time
        chosen_from = {b: max(v, known.get(b, 0)) for b, v in speeds.items()}
    best = max(candidates, key=chosen_from.get)
    if quiet or not quiet_before:
        cache[key] = {"backend": best, "speeds": {b: round(v) for b, v in chosen_from.items()}, "quiet": quiet}
        if load.cores is not None:
            cache[key]["other_cores"] = round(load.cores, 2)
        _write_cache(cache)
    chosen = Choice(forced or best, speeds, "forced (WAVEGEN_KERNEL)" if forced else "measured", kl,
                    others=load.cores, kept_quiet=not quiet and quiet_before)
    if quiet:
        _BUSY_CHOICES.pop(key, None)
    elif not forced:
        _BUSY_CHOICES[key] = chosen
    return chosen


def best_backend(model, batch: int = 1) -> str:
    return choose(model, batch=batch).backend


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
        what = "C kernel" if backend == "c" else f"C kernel, {REDUCED[backend]} weights ({backend})"
        if target is None:
            lines.append(f"{what}: not built (no compiler at install time)"
                         + ("; the numba kernel plays" if backend == "c" else ""))
            continue
        isa = {16: "AVX-512", 8: "AVX/AVX2"}.get(target[0], "SSE" if platform.machine() in ("x86_64", "AMD64")
                                                 else "NEON" if platform.machine() in ("aarch64", "arm64") else "128-bit")
        how = {"c": "",
               "c16": ", widened by " + ("F16C/NEON" if target[3] else "software (no F16C: slow)"),
               "cbf16": ", dot products by " + ("AVX512_BF16/ARM BF16" if target[3] else
                                                "float arithmetic (no bf16 instructions: slow)")}[backend]
        lines.append(f"{what}: {fast.c_library(backend)._name}, built for {isa}: vectors of {target[0]} floats, "
                     f"tiles for {target[1]} registers{how}")
    lines.append(f"numba kernel: numba {numba.__version__}")
    loaded = checkpoint.load(model)
    reason = fast.why_not(loaded.model)
    if reason:
        lines.append(f"{loaded.path.name}: not for the compiled kernels ({reason}); the PyTorch step plays it")
        return Report(lines)
    chosen = choose(loaded.model, fresh=True)
    sr = loaded.sample_rate_hz
    for b, v in chosen.speeds.items():
        note = ""
        if b in REDUCED and b not in AUTO:
            note = f"; --engine only ({REDUCED[b]} weights: see BENCHMARKS.md)"
        elif b in chosen.kl:
            held = chosen.kl[b] < REDUCED_KL_LIMIT
            note = (f"; {REDUCED[b]} moves its predictions by {chosen.kl[b]:.1e} bits/sample (KL), "
                    f"{'under' if held else 'over'} {REDUCED_KL_LIMIT:g}{'' if held else ': --engine only'}")
        lines.append(f"  {b:<6} {v:>9,.0f} samples/s  {v / sr:5.2f}x real time  (batch 1, one thread, "
                     f"{loaded.path.name}){note}")
    batched = choose(loaded.model, fresh=True, batch=BLOCK)
    lines.append("  for a batch of takes (" + ", ".join(f"{b} {v:,.0f}" for b, v in batched.speeds.items())
                 + f" samples/s at {BLOCK} streams, one thread)")
    busy = [c.others for c in (chosen, batched) if c.others is not None and c.others > BUSY_CORES]
    if busy:
        lines.append(f"  measured while other programs kept {max(busy):.1f} cores busy: slower than on a quiet "
                     "machine, and not alike for every kernel; " + (
                         "the choice keeps the quiet measurement cached before" if chosen.kept_quiet
                         else "the choice keeps each kernel's best so far and is measured again at the next start"))
    forced = " (forced by WAVEGEN_KERNEL)" if chosen.source.startswith("forced") else ""
    lines.append(f"wavegen generate runs: {chosen.backend}{forced}, and {batched.backend} for a batch of takes; "
                 f"choices cached in {cache_path()}")
    return Report(lines)
