"""The fast generation engine: the WaveNet's cached step compiled for CPUs.

Two kernels compute the same function as `WaveNet.step` (tested to 1e-4 relative on the logits), faster:
the C kernel (_kernel.c, built at install time by setup.py, loaded with ctypes) is the fast path; the
numba kernel below is the declared fallback for machines where no compiler built the C one. A third
backend, "c16", is the same C source built with its weights stored in IEEE half precision
(_kernel_f16; sums, state and biases stay float): it computes the step of the model with its weights
rounded to fp16 (tested to 1e-5 against the float kernel on such a copy), not the model itself, so it
is chosen automatically only where kernels.py says its accuracy holds. It reads half the bytes per
sample: on an AVX2 EPYC it played the shipped model at batch 1 1.35-1.39x as fast as the float kernel,
and moved its held-out loss by 0.00001 bits per sample (BENCHMARKS.md, "fp16 weights in the kernel").
A fourth, "cbf16" (_kernel_bf16), stores the weights in bf16 and rounds the inputs of every matrix
product to bf16, so that AVX512_BF16's vdpbf16ps (or ARM's bfdot) does two multiply-adds per float
lane in one instruction (written out where the CPU has neither); sums stay float. It computes the step
of the model with those weights and inputs rounded to bf16 (tested against PyTorch doing so), and moved
the shipped model's held-out loss by 0.00039 bits per sample; on a Xeon with AVX512_BF16 it plays one
stream 1.42x as fast as c16 (BENCHMARKS.md, "bf16 dot products in the kernel"). All:

- lay weights out input-major, so every matrix-vector product is a run of contiguous `axpy`s that
  the compiler vectorizes, and a batch of streams shares each weight row while it sits in L1;
- compute the conditioning projection of every layer (and the biases and style) once per tick,
  not once per sample (velocities, for a model that reads them, are tick features like the notes', so
  they reach the kernels in this row and in nothing else); the excitation adds only the rows of the keys
  that sound;
- use a rational approximation of tanh and sigmoid (Eigen's, error below 1e-6), which vectorizes;
- give each stream its own seeded random generator, so a take does not depend on the thread count.

The C kernel takes its weights as one structure (`WgWeights`, built once per model) and each call's
state and inputs as another (`WgBlock`); both mirror structs of _kernel.c field for field, and the
loader checks the mirrors against the library's own layout (`wg_layout`), and the library's weight
element against its backend's (`wg_target`), before it uses it.

Unusual configs (the mixture-of-logistics output) are not compiled: `why_not(model)` says why;
wavegen/synth/generate.py then plays the model with the PyTorch step.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import torch

from wavegen.audio import mu_law_decode
from wavegen.data.conditioning import KEY_HZ, N_KEYS, partial_amplitudes
from wavegen.errors import WavegenError
from wavegen.nn.model import WaveNet
from wavegen.notes.text import KeyText
from wavegen.synth.sketchcond import sketch_conditioning


def why_not(model: WaveNet) -> str | None:
    """None if the fast path can run this model, else the reason it cannot."""
    if model.cfg.output != "mulaw":
        return f"the fast path covers mu-law output, not {model.cfg.output!r}"
    return None


KEY_HZ_NB = KEY_HZ.astype(np.float64)  # read by the kernel (numba freezes globals when compiling)
N_KEYS_NB = N_KEYS
_NO_KEYS = np.zeros(0, dtype=np.int64)
njit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")


@njit
def fast_tanh(x):
    # Eigen's rational approximation of tanh for float32 (max error about 1e-7 absolute)
    x = min(max(x, -7.90531110763549805), 7.90531110763549805)
    x2 = x * x
    p = -2.76076847742355e-16
    p = p * x2 + 2.00018790482477e-13
    p = p * x2 + -8.60467152213735e-11
    p = p * x2 + 5.12229709037114e-08
    p = p * x2 + 1.48572235717979e-05
    p = p * x2 + 6.37261928875436e-04
    p = p * x2 + 4.89352455891786e-03
    p = p * x
    q = 1.19825839466702e-06
    q = q * x2 + 1.18534705686654e-04
    q = q * x2 + 2.26843463243900e-03
    q = q * x2 + 4.89352518554385e-03
    return p / q

@njit
def next_uniform(rng, b):
    # xorshift64*: one 64-bit state per stream; returns a float in [0, 1)
    s = rng[b]
    s ^= s >> np.uint64(12)
    s ^= s << np.uint64(25)
    s ^= s >> np.uint64(27)
    rng[b] = s
    r = s * np.uint64(2685821657736338717)
    return (r >> np.uint64(11)) * (1.0 / 9007199254740992.0)

@njit
def step_block(codes_in, t0, n, cond_row, exc_keys, exc_onsets, sr, partial_amp,
               emb, w_dil, dil, hist_off, hist_len, w_exc, w_res, b_res, w_skip, b_skip,
               w1, b1, w2, b2, buf, temperature, min_p, rng, out_codes, out_logits, teacher):
    """Run samples t0 .. t0 + n - 1 of one tick for every stream: the numba twin of _kernel.c's
    wg_step_block, the fallback where no compiler built the C kernel.

    codes_in: (B,) the previous sample of each stream (updated as it samples); teacher: (B, n)
    codes to feed instead of the sampled ones (teacher forcing, for tests) or shape (0, 0).
    cond_row: (L, 2G) this tick's conditioning + biases; exc_keys: sounding keys; exc_onsets:
    their onset samples; partial_amp: (88, P) each key's partial amplitudes (conditioning.partial_amplitudes).
    buf: (B, total_hist, R) circular buffers. out_codes: (B, n); out_logits: (B, n, n_out) or empty.
    """
    B = codes_in.shape[0]
    L, K, R, G2 = w_dil.shape
    G = G2 // 2
    S = w_skip.shape[2]
    H = w1.shape[1]
    n_out = w2.shape[1]
    n_exc = exc_keys.shape[0]
    x = np.empty((B, R), dtype=np.float32)
    h = np.empty((B, G2), dtype=np.float32)
    z = np.empty((B, G), dtype=np.float32)
    skip = np.empty((B, S), dtype=np.float32)
    h1 = np.empty((B, H), dtype=np.float32)
    logits = np.empty((B, n_out), dtype=np.float32)
    exc = np.empty((L, G2), dtype=np.float32)
    sin_c = np.empty(n_exc, dtype=np.float32)
    cos_c = np.empty(n_exc, dtype=np.float32)
    for i in range(n):
        t = t0 + i
        # excitation of this sample: the rows of the sounding keys, weighted by sin and cos
        for j in range(n_exc):
            phase = 2.0 * np.pi * KEY_HZ_NB[exc_keys[j]] * (t - exc_onsets[j]) / sr
            s1 = math.sin(phase)
            c1 = math.cos(phase)
            sp, cp, ss, cc = s1, c1, 0.0, 0.0  # the sum of the partials, as conditioning.partial_sum
            for q in range(partial_amp.shape[1]):
                a = partial_amp[exc_keys[j], q]
                ss += a * sp
                cc += a * cp
                sp, cp = sp * c1 + cp * s1, cp * c1 - sp * s1
            sin_c[j] = ss
            cos_c[j] = cc
        for l in range(L):
            for o in range(G2):
                exc[l, o] = cond_row[l, o]
        for j in range(n_exc):
            k = exc_keys[j]
            s = sin_c[j]
            c = cos_c[j]
            for l in range(L):
                for o in range(G2):
                    exc[l, o] += s * w_exc[k, l, o] + c * w_exc[N_KEYS_NB + k, l, o]
        for b in range(B):
            code = codes_in[b]
            for r in range(R):
                x[b, r] = emb[code, r]
            for s_ in range(S):
                skip[b, s_] = b_skip[s_]
        for l in range(L):
            d = dil[l]
            off = hist_off[l]
            ln = hist_len[l]
            for b in range(B):
                for o in range(G2):
                    h[b, o] = exc[l, o]
            # taps into the past: tap j reads the input (K - 1 - j) * d samples back
            for j in range(K - 1):
                pos = off + (t - (K - 1 - j) * d) % ln
                for r in range(R):
                    for b in range(B):
                        xr = buf[b, pos, r]
                        for o in range(G2):
                            h[b, o] += w_dil[l, j, r, o] * xr
            for r in range(R):
                for b in range(B):
                    xr = x[b, r]
                    for o in range(G2):
                        h[b, o] += w_dil[l, K - 1, r, o] * xr
            if K > 1:
                pos = off + t % ln
                for b in range(B):
                    for r in range(R):
                        buf[b, pos, r] = x[b, r]
            for b in range(B):
                for g in range(G):
                    z[b, g] = fast_tanh(h[b, g]) * (0.5 + 0.5 * fast_tanh(0.5 * h[b, G + g]))
            if l < L - 1:
                for b in range(B):
                    for r in range(R):
                        x[b, r] += b_res[l, r]
                for g in range(G):
                    for b in range(B):
                        zg = z[b, g]
                        for r in range(R):
                            x[b, r] += w_res[l, g, r] * zg
            for g in range(G):
                for b in range(B):
                    zg = z[b, g]
                    for s_ in range(S):
                        skip[b, s_] += w_skip[l, g, s_] * zg
        # head: ReLU, 1x1, ReLU, 1x1
        for b in range(B):
            for q in range(H):
                h1[b, q] = b1[q]
            for s_ in range(S):
                v = max(skip[b, s_], 0.0)
                for q in range(H):
                    h1[b, q] += w1[s_, q] * v
            for o in range(n_out):
                logits[b, o] = b2[o]
            for q in range(H):
                v = max(h1[b, q], 0.0)
                for o in range(n_out):
                    logits[b, o] += w2[q, o] * v
        for b in range(B):
            if out_logits.shape[0]:
                for o in range(n_out):
                    out_logits[b, i, o] = logits[b, o]
            if teacher.shape[0]:
                nxt = teacher[b, i]
            elif temperature <= 0.0:
                nxt = 0
                for o in range(1, n_out):
                    if logits[b, o] > logits[b, nxt]:
                        nxt = o
            else:
                m = logits[b, 0]
                for o in range(1, n_out):
                    m = max(m, logits[b, o])
                total = 0.0
                for o in range(n_out):
                    v = math.exp((logits[b, o] - m) / temperature)
                    if v >= min_p:
                        total += v
                u = next_uniform(rng, b) * total
                acc = 0.0
                nxt = n_out - 1
                for o in range(n_out):
                    v = math.exp((logits[b, o] - m) / temperature)
                    if v >= min_p:
                        acc += v
                    if acc > u:
                        nxt = o
                        break
            out_codes[b, i] = nxt
            codes_in[b] = nxt



_P = ctypes.c_void_p


class WgWeights(ctypes.Structure):
    """A model's sizes and weights for the C kernel: the mirror of _kernel.c's wg_weights (wformat: the
    format of the weights the pointers hold, WEIGHT_FORMAT of the backend; the kernel refuses another)."""

    _fields_ = ([(f, ctypes.c_int32) for f in ("L", "K", "R", "G", "S", "H", "n_out", "n_keys", "total_hist",
                                                "wformat", "n_partials")]
                + [(f, _P) for f in ("emb", "w_dil", "dil", "hist_off", "hist_len", "w_exc", "w_res", "b_res",
                                     "w_skip", "b_skip", "w1", "b1", "w2", "b2", "key_hz", "partial_amp")])


class WgBlock(ctypes.Structure):
    """One call of the C kernel, a block of samples of one tick: the mirror of _kernel.c's wg_block."""

    _fields_ = ([(f, ctypes.c_int32) for f in ("B", "n", "n_exc")]
                + [("t0", ctypes.c_int64), ("sr", ctypes.c_double), ("temperature", ctypes.c_float),
                   ("min_p", ctypes.c_float)]
                + [(f, _P) for f in ("cond_row", "exc_keys", "exc_onsets", "codes_in", "buf", "rng", "out_codes",
                                     "out_logits", "teacher")])


MIRRORS = (WgWeights, WgBlock)  # in the order of wg_layout's `which`


def ctypes_layout(struct: type[ctypes.Structure]) -> list[int]:
    """[size, offset of each field in order] of a ctypes mirror."""
    return [ctypes.sizeof(struct)] + [getattr(struct, name).offset for name, _ in struct._fields_]


def c_layout(lib: ctypes.CDLL, which: int) -> list[int]:
    """[size, offset of each field in order] of struct `which` as the C library was compiled."""
    fn = lib.wg_layout
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int, _P, ctypes.c_int]
    out = (ctypes.c_int64 * 64)()
    n = fn(which, out, len(out))
    return list(out[:n])


C_LIBRARIES = {"c": "_kernel", "c16": "_kernel_f16", "cbf16": "_kernel_bf16"}  # backend -> its library (setup.py)
# backend -> the format its weights are laid out in (_kernel.c's WG_WFORMAT): float32, IEEE half, bf16 in
# input pairs
WEIGHT_FORMAT = {"c": 0, "c16": 1, "cbf16": 2}
FORMAT_NAMES = ("float32", "fp16", "bf16")


def c_library(backend: str = "c") -> ctypes.CDLL | None:
    """The library of C backend `backend` ("c", "c16" or "cbf16") as built at install time (setup.py), or
    None if there is none."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = Path(__file__).parent / f"{C_LIBRARIES[backend]}{suffix}"
        if path.is_file():
            try:
                return ctypes.CDLL(str(path))
            except OSError:
                return None
    return None


def c_target(lib: ctypes.CDLL) -> tuple[int, int, int, bool]:
    """What `lib` was built for (wg_target): floats per vector, vector registers, its weights' format
    (WEIGHT_FORMAT), and whether the hardware has that format's instructions (fp16: F16C or NEON widen it;
    bf16: AVX512_BF16 or ARM's BF16 take its dot products; True for a float build)."""
    out = (ctypes.c_int32 * 4)()
    lib.wg_target(out)
    return int(out[0]), int(out[1]), int(out[2]), bool(out[3])


def _load_c_kernel(lib: ctypes.CDLL | None = None, backend: str = "c") -> Callable[..., int] | None:
    """The step of C backend `backend` from `lib` (default: the library built for it at install time), or
    None without a library. A library whose structs differ from the mirrors here (built from another
    version of _kernel.c), or whose weights are not the backend's (a float build loaded as "c16"), is an
    error."""
    lib = lib or c_library(backend)
    if lib is None:
        return None
    if not hasattr(lib, "wg_layout") or any(c_layout(lib, i) != ctypes_layout(m) for i, m in enumerate(MIRRORS)):
        raise WavegenError(f"{lib._name}: built from another version of _kernel.c (its structs differ); "
                           "rebuild it with `python setup.py build_ext --inplace`")
    if c_target(lib)[2] != WEIGHT_FORMAT[backend]:
        raise WavegenError(f"{lib._name}: its weights are {FORMAT_NAMES[c_target(lib)[2]]}, and the {backend!r} "
                           f"backend lays out {FORMAT_NAMES[WEIGHT_FORMAT[backend]]} (a library of another backend)")
    fn = lib.wg_step_block
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.POINTER(WgWeights), ctypes.POINTER(WgBlock)]
    return fn


_C_KERNELS: dict[str, Callable[..., int] | None] = {}  # backend -> its step (None: not built), loaded once


def c_kernel(backend: str = "c") -> Callable[..., int] | None:
    """The step of C backend `backend`, "c" (float weights), "c16" (half weights) or "cbf16" (bf16), loaded
    once; None where no compiler built it (then numba's kernel runs)."""
    if backend not in _C_KERNELS:
        _C_KERNELS[backend] = _load_c_kernel(backend=backend)
    return _C_KERNELS[backend]


def half(a: np.ndarray) -> np.ndarray:
    """`a` rounded to IEEE half (to nearest, ties to even, as torch's .half()), for the "c16" backend; a
    weight beyond half's range (65504) is an error, not an infinity."""
    big = float(np.abs(a).max(initial=0.0))
    if not np.isfinite(big) or big > float(np.finfo(np.float16).max):
        raise ValueError(f"a weight of {big:g} does not fit in fp16 (at most 65504): use the float kernel")
    return np.ascontiguousarray(a.astype(np.float16))


def bf16_bits(a: np.ndarray) -> np.ndarray:
    """`a` rounded to bf16 (to nearest, ties to even, as torch's .bfloat16()), as its 16 bits (uint16)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_pairs(w: np.ndarray) -> np.ndarray:
    """Input-major matrices (..., n_in, n_out) in bf16 as the "cbf16" kernel reads them: input pairs, the
    word of pair p and output o holding W[2p, o] in its low half and W[2p + 1, o] in its high half, that
    is (..., n_in / 2, n_out, 2) uint16. n_in must be even (the kernel's matrices follow one another)."""
    *lead, n_in, n_out = w.shape
    if n_in % 2:
        raise ValueError(f"the bf16 kernel takes matrices with an even number of inputs, not {n_in}")
    pairs = bf16_bits(w).reshape(*lead, n_in // 2, 2, n_out)
    return np.ascontiguousarray(np.swapaxes(pairs, -1, -2))


def _ptr(a: np.ndarray | None, dtype: type) -> int | None:
    """The address of a C-contiguous array of `dtype` for the C kernel (None for NULL)."""
    if a is None:
        return None
    if a.dtype != dtype or not a.flags.c_contiguous:
        raise ValueError(f"the C kernel needs C-contiguous {np.dtype(dtype)}, got {a.dtype} {a.shape}")
    return a.ctypes.data


BACKENDS = ("c", "c16", "cbf16", "numba")


def built() -> list[str]:
    """The backends that run here: the C ones a compiler built at install time, and numba."""
    return [b for b in C_LIBRARIES if c_kernel(b) is not None] + ["numba"]


def seeded(batch: int, seed: int) -> np.ndarray:
    """The random state of `batch` streams from `seed` (odd, as the kernels' generators need)."""
    return np.random.SeedSequence(seed).generate_state(batch, dtype=np.uint64) | np.uint64(1)


class FastWaveNet:
    """A WaveNet's weights laid out for the compiled step. Build once, generate many times."""

    def __init__(self, model: WaveNet, backend: str | None = None, batch: int = 1):
        """backend: "c" (the kernel built at install time), "c16" (the same with its weights in fp16: the
        step of the model with its weights rounded to half), "cbf16" (bf16 weights and dot products),
        "numba" (the float kernel's twin, also the fallback where no compiler built the C one), or None
        for the fastest here that kernels.py lets play by itself for `batch` streams (measured once and
        cached: one stream and a batch may want different kernels)."""
        reason = why_not(model)
        if reason:
            raise ValueError(reason)
        if backend is None:  # the faster kernel on this machine, measured once and cached (kernels.py)
            from wavegen.synth.kernels import best_backend

            backend = best_backend(model, batch)
        if backend not in BACKENDS or (backend in C_LIBRARIES and c_kernel(backend) is None):
            raise ValueError(f"backend {backend!r} is not available (built: {', '.join(built())})")
        self.backend = backend
        self.model = model.eval()
        cfg = model.cfg
        f32 = lambda t: np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())  # noqa: E731
        layers = model.layers
        self.L, self.K = len(layers), cfg.kernel_size
        self.R, self.G, self.S = cfg.residual_channels, cfg.gate_channels, cfg.skip_channels
        self.spt = model.samples_per_tick
        # (88, P) each key's partial amplitudes in its excitation at the rate of the last call (set_rate)
        self.partial_rate, self.partial_amp = 16_000, partial_amplitudes(cfg.excitation_partials, 16_000)
        self.emb = f32(model.embed.weight)  # (n_classes, R)
        # dilated conv (2G, R, K) -> (L, K, R, 2G): input-major, output contiguous
        self.w_dil = np.stack([f32(ly.dilated.weight).transpose(2, 1, 0) for ly in layers]).copy()
        self.b_dil = np.stack([f32(ly.dilated.bias) for ly in layers])  # (L, 2G)
        self.dil = np.array([ly.dilation for ly in layers], dtype=np.int64)
        hist = np.array([max(ly.history, 1) for ly in layers], dtype=np.int64)
        self.hist_len = hist
        self.hist_off = np.concatenate([[0], np.cumsum(hist)[:-1]]).astype(np.int64)
        self.total_hist = int(hist.sum())
        G2 = 2 * self.G
        if model.uses_excitation:
            # (2G, 176) per layer -> (176, L, 2G)
            self.w_exc = np.stack([f32(ly.exc.weight[:, :, 0]).T for ly in layers], axis=1).copy()
        else:
            self.w_exc = np.zeros((2 * N_KEYS, self.L, G2), dtype=np.float32)
        self.w_res = np.stack([f32(ly.res.weight[:, :, 0]).T if ly.res is not None else
                               np.zeros((self.G, self.R), np.float32) for ly in layers]).copy()  # (L, G, R)
        self.b_res = np.stack([f32(ly.res.bias) if ly.res is not None else np.zeros(self.R, np.float32)
                               for ly in layers])
        self.w_skip = np.stack([f32(ly.skip.weight[:, :, 0]).T for ly in layers]).copy()  # (L, G, S)
        self.b_skip = np.sum([f32(ly.skip.bias) for ly in layers], axis=0).astype(np.float32)
        self.w1 = f32(model.head[1].weight[:, :, 0]).T.copy()  # (S, H)
        self.b1 = f32(model.head[1].bias)
        self.w2 = f32(model.head[3].weight[:, :, 0]).T.copy()  # (H, n_out)
        self.b2 = f32(model.head[3].bias)
        if backend in C_LIBRARIES:  # points into the arrays above (or their half copies), kept by this object
            F32, I64 = np.float32, np.int64
            weights = (self.emb, self.w_dil, self.w_exc, self.w_res, self.w_skip, self.w1, self.w2)
            if backend == "c16":  # the per-sample weights in half; biases and conditioning stay float
                weights = tuple(half(w) for w in weights)
            elif backend == "cbf16":  # bf16; the matrices in input pairs, as _kernel.c's bf16 gemm_acc reads them
                weights = (bf16_bits(self.emb), bf16_pairs(self.w_dil), bf16_bits(self.w_exc), bf16_pairs(self.w_res),
                           bf16_pairs(self.w_skip), bf16_pairs(self.w1), bf16_pairs(self.w2))
            self.c_arrays = weights
            WT = weights[0].dtype.type
            emb, w_dil, w_exc, w_res, w_skip, w1, w2 = (_ptr(w, WT) for w in weights)
            self.c_weights = WgWeights(
                self.L, self.K, self.R, self.G, self.S, self.w1.shape[1], self.w2.shape[1], N_KEYS, self.total_hist,
                WEIGHT_FORMAT[backend], self.partial_amp.shape[1], emb, w_dil, _ptr(self.dil, I64), _ptr(self.hist_off, I64),
                _ptr(self.hist_len, I64), w_exc, w_res, _ptr(self.b_res, F32), w_skip, _ptr(self.b_skip, F32),
                w1, _ptr(self.b1, F32), w2, _ptr(self.b2, F32), _ptr(KEY_HZ_NB, np.float64),
                _ptr(self.partial_amp, np.float64))

    # ------------------------------------------------------------------------------------------
    def tick_rows(self, cond_ticks: np.ndarray | None, style: int | None, timbre: int | None = None) -> np.ndarray:
        """(n_ticks, L, 2G): per tick and layer, the conditioning projection plus all biases (the style's
        and the timbre's embeddings among them: None is id 0)."""
        model = self.model
        base = self.b_dil.copy()
        with torch.no_grad():
            g = [ly.globals(torch.tensor([style or 0]), torch.tensor([timbre or 0])) for ly in model.layers]
        if g[0] is not None:
            base += np.stack([v[0].float().numpy() for v in g])
        if cond_ticks is None:
            return base[None].astype(np.float32)
        c = torch.from_numpy(cond_ticks)  # (n_ticks, C)
        with torch.no_grad():
            proj = np.stack([(c @ ly.cond.weight[:, :, 0].T).float().numpy() for ly in model.layers], axis=1)
        return (proj + base[None]).astype(np.float32)

    def sketch_rows(self, sketch: KeyText | None, style: int | None, velocity: np.ndarray | None = None,
                    timbre: int | None = None) -> tuple[np.ndarray, tuple | None]:
        """The sketch's per-tick rows (see tick_rows: the last row for every later tick; its velocities, if
        the model reads them, are folded in there) and its onsets for the excitation (None for a model
        without notes). velocity: (ticks, 88) MIDI velocities of the sketch's notes, or None."""
        cond = onsets = None
        if self.model.uses_notes:
            cond, onsets = sketch_conditioning(self.model, sketch, velocity)
        return self.tick_rows(cond, style, timbre), onsets

    def run(self, n_samples: int, *, sample_rate_hz: int, sketch: KeyText | None = None,
            temperature: float = 1.0, min_p: float = 0.0, seed: int = 0, batch: int = 1, style: int | None = None,
            teacher: np.ndarray | None = None, return_logits: bool = False, threads: int = 1,
            progress: Callable[[int], None] | None = None, velocity: np.ndarray | None = None,
            timbre: int | None = None) -> np.ndarray:
        """Generate (batch, n_samples) codes; or, with `teacher` (batch, n_samples) codes fed instead of
        the sampled ones and return_logits, the logits (batch, n_samples, n_out), for testing.
        velocity: the sketch's velocities (see sketch_rows)."""
        rows, onsets = self.sketch_rows(sketch, style, velocity, timbre)
        if sample_rate_hz != self.partial_rate:  # here, before any thread runs a block
            self.set_rate(sample_rate_hz)
        n_out = self.w2.shape[1]
        rng = seeded(batch, seed)
        out_codes = np.zeros((batch, n_samples), dtype=np.int64)
        logits = np.zeros((batch, n_samples, n_out), dtype=np.float32) if return_logits else None
        # streams are independent: split them over threads (the kernel releases the GIL); each stream
        # keeps its own random state, so the takes do not depend on the thread count
        groups = [g for g in np.array_split(np.arange(batch), max(1, min(threads, batch))) if len(g)]
        done = np.zeros(len(groups), dtype=np.int64)

        def run_group(gi: int, streams: np.ndarray) -> None:
            self._run_streams(streams, n_samples, rows, onsets, sample_rate_hz,
                              (temperature, min_p), rng, teacher, out_codes, logits, done, gi, progress)

        if len(groups) == 1:
            run_group(0, groups[0])
        else:
            with ThreadPoolExecutor(len(groups)) as pool:
                list(pool.map(run_group, range(len(groups)), groups))
        return logits if logits is not None else out_codes

    def tick_keys(self, onsets: tuple | None, tick: int, first_tick: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The keys sounding in `tick` of the onsets' window, and their onsets as absolute samples
        (the window starts at absolute tick `first_tick`); none without excitation."""
        if onsets is None or not self.model.uses_excitation or tick >= onsets[0].shape[0]:
            return _NO_KEYS, _NO_KEYS
        sounding, last_onset = onsets
        keys = np.nonzero(sounding[tick])[0].astype(np.int64)
        return keys, ((last_onset[tick, keys] + first_tick) * self.spt).astype(np.int64)

    def _run_streams(self, streams, n_samples, rows, onsets, sample_rate_hz, sampling,
                     rng_all, teacher, out_codes, logits, done, gi, progress) -> None:
        """Streams `streams` of the batch, all ticks; rows: per-tick conditioning (see tick_rows)."""
        rng = rng_all[streams].copy()
        for t0, n, oc, ol in self._blocks(streams, n_samples, rows, onsets, sample_rate_hz, sampling, rng, teacher,
                                          logits is not None):
            out_codes[streams, t0 : t0 + n] = oc
            if logits is not None:
                logits[streams, t0 : t0 + n] = ol
            done[gi] = t0 + n
            if progress and gi == 0:
                progress(int(done.min()))
        if progress and gi == 0:
            progress(n_samples)

    def _blocks(self, streams, n_samples, rows, onsets, sample_rate_hz, sampling, rng, teacher=None,
                want_logits=False):
        """Play streams `streams` from silence a tick at a time: yields (t0, n, codes (B, n), logits
        (B, n, n_out) or None) for samples t0 .. t0 + n - 1. rng: their generators, advanced in place."""
        spt = self.spt
        B = len(streams)
        n_out = self.w2.shape[1]
        codes_in, buf, _ = self.new_state(B, 0)  # silence before the first sample
        for t0 in range(0, n_samples, spt):
            n = min(spt, n_samples - t0)
            tick = t0 // spt
            row = rows[min(tick, rows.shape[0] - 1)]
            keys, key_onsets = self.tick_keys(onsets, tick)
            tf = np.ascontiguousarray(teacher[streams, t0 : t0 + n]) if teacher is not None else None
            oc = np.zeros((B, n), dtype=np.int64)
            ol = np.zeros((B, n, n_out), dtype=np.float32) if want_logits else None
            self.block(codes_in, t0, n, row, keys, key_onsets, sample_rate_hz, buf, sampling, rng, oc, ol, tf)
            yield t0, n, oc, ol

    def stream(self, n_samples: int, *, sample_rate_hz: int, sketch: KeyText | None = None,
               temperature: float = 1.0, min_p: float = 0.0, seed: int = 0,
               style: int | None = None, velocity: np.ndarray | None = None,
               timbre: int | None = None) -> Iterator[np.ndarray]:
        """The take `generate` plays at batch 1, a tick at a time: yields float32 audio (as the network
        played it: `play` de-emphasizes), sample for sample the same as `generate`'s with the same seed."""
        rows, onsets = self.sketch_rows(sketch, style, velocity, timbre)
        if sample_rate_hz != self.partial_rate:  # here, before any thread runs a block
            self.set_rate(sample_rate_hz)
        for _, _, oc, _ in self._blocks(np.arange(1), n_samples, rows, onsets, sample_rate_hz,
                                        (temperature, min_p), seeded(1, seed)):
            yield mu_law_decode(oc[0], self.emb.shape[0])

    def new_state(self, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(codes_in, buffers, rng) of `batch` streams before their first sample."""
        codes_in = np.full(batch, self.emb.shape[0] // 2, dtype=np.int64)
        buf = np.zeros((batch, self.total_hist, self.R), dtype=np.float32)
        return codes_in, buf, seeded(batch, seed)

    def block(self, codes_in, t0, n, row, keys, key_onsets, sample_rate_hz, buf, sampling, rng, out_codes,
              out_logits=None, teacher=None) -> None:
        """Samples t0 .. t0 + n - 1 (within one tick) for every stream, with the chosen kernel;
        sampling: (temperature, min_p)."""
        temperature, min_p = sampling
        if sample_rate_hz != self.partial_rate:  # a caller of block alone (stream.py): once, a model has one rate
            self.set_rate(sample_rate_hz)
        if self.backend in C_LIBRARIES:
            self._c_block(len(codes_in), codes_in, t0, n, row, keys, key_onsets, sample_rate_hz, buf,
                          temperature, min_p, rng, out_codes, out_logits, teacher)
        else:
            no_teacher = np.zeros((0, 0), dtype=np.int64)
            no_logits = np.zeros((0, 0, 0), dtype=np.float32)
            step_block(codes_in, t0, n, row, keys, key_onsets, float(sample_rate_hz), self.partial_amp,
                       self.emb, self.w_dil, self.dil, self.hist_off, self.hist_len, self.w_exc,
                       self.w_res, self.b_res, self.w_skip, self.b_skip, self.w1, self.b1, self.w2, self.b2,
                       buf, float(temperature), float(min_p), rng, out_codes,
                       out_logits if out_logits is not None else no_logits,
                       teacher if teacher is not None else no_teacher)

    def set_rate(self, sample_rate_hz: int) -> None:
        """The partials of the excitation at this sample rate (overtones at or above 0.45 of it left out). Not
        while another thread runs a block: run() and stream() call it before any does."""
        self.partial_rate = sample_rate_hz
        self.partial_amp = partial_amplitudes(self.model.cfg.excitation_partials, int(sample_rate_hz))
        if self.backend in C_LIBRARIES:
            self.c_weights.partial_amp = _ptr(self.partial_amp, np.float64)

    def _c_block(self, B, codes_in, t0, n, row, keys, key_onsets, sample_rate_hz, buf, temperature, min_p, rng,
                 out_codes, out_logits, teacher) -> None:
        F32, I64 = np.float32, np.int64
        row = np.ascontiguousarray(row, dtype=F32)
        block = WgBlock(B, n, len(keys), t0, float(sample_rate_hz), float(temperature), float(min_p),
                        _ptr(row, F32), _ptr(keys, I64), _ptr(key_onsets, I64), _ptr(codes_in, I64),
                        _ptr(buf, F32), _ptr(rng, np.uint64), _ptr(out_codes, I64), _ptr(out_logits, F32),
                        _ptr(teacher, I64))
        status = c_kernel(self.backend)(ctypes.byref(self.c_weights), ctypes.byref(block))
        if status == -2:
            raise WavegenError(f"the {self.backend!r} kernel was given {FORMAT_NAMES[WEIGHT_FORMAT[self.backend]]} "
                               "weights and was built for another format (a float library loaded as c16, or the like)")
        if status != 0:
            raise MemoryError("the C kernel could not allocate its scratch memory")

    def generate(self, n_samples: int, *, sample_rate_hz: int, sketch: KeyText | None = None,
                 temperature: float = 1.0, min_p: float = 0.0, seed: int = 0, batch: int = 1,
                 style: int | None = None, threads: int = 1, progress: Callable[[int], None] | None = None,
                 velocity: np.ndarray | None = None, timbre: int | None = None) -> np.ndarray:
        """(batch, n_samples) float32 audio; velocity: the sketch's velocities (see sketch_rows)."""
        codes = self.run(n_samples, sample_rate_hz=sample_rate_hz, sketch=sketch, temperature=temperature, min_p=min_p,
                         seed=seed, batch=batch, style=style, threads=threads, progress=progress, velocity=velocity,
                         timbre=timbre)
        return mu_law_decode(codes, self.emb.shape[0])
