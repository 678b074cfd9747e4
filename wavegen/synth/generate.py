"""Sampling audio from a WaveNet, one sample at a time, free-running or following a sketch.

`play` is the one entry point: it chooses the engine (`choose_engine`) and runs it.

- "fast": the cached step compiled for CPUs (wavegen/synth/fast.py: the C kernel built at install
  time or its numba twin, whichever plays the model faster on this machine, measured once and cached
  by wavegen/synth/kernels.py); mu-law output only; "c" and "numba" force one of the two, "c16" the C
  kernel with its weights stored in fp16, "cbf16" the one with bf16 weights and dot products (see
  kernels.py for when "fast" takes these by itself);
- "torch": `WaveNet.step` in PyTorch, on the model's device (captured in a CUDA graph on a GPU); any
  model;
- "auto": the fast engine for a model on the CPU that it can run, else the PyTorch step.

Sample i is predicted from sample i - 1 (silence before the first) and the conditioning of sample i:
the tick conditioning of tick i // samples_per_tick, computed once for the whole sketch (see
wavegen/synth/sketchcond.py; with the sketch's velocities for a model that reads them), and the
excitation of sample i, computed a tick at a time. `batch` takes
share the model and differ only in their sampling noise; the same seed gives the same samples, and a
longer request starts with the shorter one. The engines draw their noise differently: the same seed
gives different takes on different engines.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

from wavegen.audio import deemphasize, mu_law_decode
from wavegen.data.conditioning import excitation
from wavegen.errors import WavegenError
from wavegen.nn.checkpoint import check_sampling
from wavegen.nn.model import WaveNet, sample
from wavegen.notes.text import N_KEYS, KeyText
from wavegen.synth.fast import FastWaveNet, c_kernel, why_not
from wavegen.synth.sketchcond import sketch_conditioning

ENGINES = ("auto", "fast", "c", "c16", "cbf16", "numba", "torch")
KERNELS = ("c", "c16", "cbf16", "numba")  # engines that are the fast one with its kernel forced
C_NAMES = {"c": "C kernel", "c16": "fp16-weight C kernel", "cbf16": "bf16 C kernel"}


def choose_engine(model: WaveNet, engine: str = "auto") -> tuple[str, str | None]:
    """The engine that plays `model`, "fast" (or a forced kernel: one of KERNELS) or "torch", and a notice
    when "auto" falls back to the slower PyTorch step (None otherwise). A forced fast engine for a model it
    cannot run, or a C kernel that was not built here, is an error, with the reason."""
    if engine not in ENGINES:
        raise WavegenError(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    if engine == "torch":
        return "torch", None
    device = next(model.parameters()).device
    if device.type != "cpu":
        if engine != "auto":
            raise WavegenError(f"--engine {engine}: the fast path runs on the CPU, and the model is on {device}")
        return "torch", None  # on a GPU the PyTorch step is the fast one
    if engine in C_NAMES and c_kernel(engine) is None:
        raise WavegenError(f"--engine {engine}: no {C_NAMES[engine]} was "
                           "built here (no compiler at install time); use --engine numba, or reinstall with gcc "
                           "present")
    reason = why_not(model)
    if reason is None:
        return ("fast" if engine == "auto" else engine), None
    if engine != "auto":
        raise WavegenError(f"--engine {engine}: {reason}")
    return "torch", f"{reason}; generating with the PyTorch step instead (slower)"


def play(
    model: WaveNet,
    n_samples: int,
    *,
    sample_rate_hz: int,
    sketch: KeyText | None = None,
    engine: str = "auto",
    batch: int = 1,
    threads: int | None = None,
    temperature: float = 1.0,
    min_p: float = 0.0,
    seed: int = 0,
    style: int | None = None,
    progress: Callable[[int], None] | None = None,
    velocity: np.ndarray | None = None,
    timbre: int | None = None,
) -> np.ndarray:
    """(batch, n_samples) float32 audio of `sketch` (None: an empty one), played by `engine` (see
    `choose_engine`) in style and timbre ids `style`, `timbre` (None: the first). progress(samples done) is
    called once per tick. threads: how many the fast engine splits the batch over (default: one per take,
    up to the CPU count; the takes do not depend on it). velocity: (sketch ticks, 88) MIDI velocities of the
    sketch's notes, for a model with velocity channels (None, or 0 at a sounding key: the model's default
    velocity); other models ignore it.

    temperature divides the logits (0 = always the most likely sample). min_p (min-p sampling) drops
    every class less likely than min_p times the most likely one before drawing: the far tail of a
    256-class distribution is where single-sample clicks come from (mu-law output only)."""
    check_sampling(temperature, min_p)
    chosen, _ = choose_engine(model, engine)
    kwargs = dict(sample_rate_hz=sample_rate_hz, sketch=sketch, temperature=temperature, min_p=min_p, seed=seed,
                  batch=batch, style=style, progress=progress, velocity=velocity, timbre=timbre)
    if chosen == "fast" or chosen in KERNELS:
        threads = threads or min(batch, os.cpu_count() or 1)
        audio = FastWaveNet(model, chosen if chosen in KERNELS else None, batch).generate(n_samples, threads=threads,
                                                                                          **kwargs)
    else:
        audio = torch_generate(model, n_samples, **kwargs)
    a = model.cfg.pre_emphasis
    return deemphasize(audio, a) if a else audio  # the network played emphasized audio (audio.emphasize)


class CudaGraphStep:
    """On CUDA: `WaveNet.step` captured once in a CUDA graph and replayed for every sample, so a batch
    costs one graph launch per sample instead of a hundred kernel launches. The step counter lives on
    the device (see `StepState.t`); inputs are copied into static tensors before each replay. Elsewhere
    (a CPU) nothing is captured: each call runs the step on the same static tensors, so that everything
    but the capture is tested without a GPU (tests/test_gpu_check.py)."""

    def __init__(self, model: WaveNet, batch: int, device: torch.device, x: torch.Tensor,
                 cond_dim: int, exc_dim: int, style: torch.Tensor | None, timbre: torch.Tensor | None = None):
        self.model = model
        self.state = model.init_state(batch, device)
        self.state.t = torch.zeros((), dtype=torch.long, device=device)
        self.x = x.clone()
        self.cond = torch.zeros(batch, cond_dim, device=device) if cond_dim else None
        self.exc = torch.zeros(batch, exc_dim, device=device) if exc_dim else None
        self.style, self.timbre = style, timbre
        self.graph: torch.cuda.CUDAGraph | None = None
        if device.type != "cuda":
            return
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up outside the graph, as capture requires
            for _ in range(2):
                model.step(self.x, self.state, self.cond, self.exc, self.style, self.timbre)
        torch.cuda.current_stream().wait_stream(side)
        self.reset()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = model.step(self.x, self.state, self.cond, self.exc, self.style, self.timbre)
        self.reset()  # capture records the kernels without running them; start clean all the same

    def reset(self) -> None:
        for buf in self.state.buffers:
            buf.zero_()
        self.state.t.zero_()

    def __call__(self, x: torch.Tensor, state: object, cond: torch.Tensor | None = None,
                 exc: torch.Tensor | None = None, style: torch.Tensor | None = None,
                 timbre: torch.Tensor | None = None) -> torch.Tensor:
        self.x.copy_(x)
        if self.cond is not None and cond is not None:
            self.cond.copy_(cond)
        if self.exc is not None and exc is not None:
            self.exc.copy_(exc)
        if self.graph is None:
            self.out = self.model.step(self.x, self.state, self.cond, self.exc, self.style, self.timbre)
        else:
            self.graph.replay()
        return self.out


@torch.no_grad()
def torch_generate(
    model: WaveNet,
    n_samples: int,
    *,
    sample_rate_hz: int,
    sketch: KeyText | None = None,
    temperature: float = 1.0,
    min_p: float = 0.0,
    seed: int = 0,
    batch: int = 1,
    style: int | None = None,
    progress: Callable[[int], None] | None = None,
    velocity: np.ndarray | None = None,
    timbre: int | None = None,
) -> np.ndarray:
    """The PyTorch engine of `play` (see there): (batch, n_samples) float32 audio."""
    model = model.eval()
    device = next(model.parameters()).device
    spt = model.samples_per_tick
    gen = torch.Generator(device=device).manual_seed(seed)
    state = model.init_state(batch, device)
    if model.cfg.output == "mulaw":
        x = torch.full((batch,), model.cfg.n_classes // 2, dtype=torch.long, device=device)  # silence
    else:
        x = torch.zeros(batch, device=device)
    style_t = None
    if model.cfg.n_styles:
        style_t = torch.full((batch,), style or 0, dtype=torch.long, device=device)
    timbre_t = None
    if model.cfg.n_timbres:
        timbre_t = torch.full((batch,), timbre or 0, dtype=torch.long, device=device)

    cond_ticks = onsets = roll = None
    if model.uses_notes:
        roll = sketch.roll if sketch is not None else np.zeros((0, N_KEYS), dtype=bool)
        cond, onsets = sketch_conditioning(model, sketch, velocity)
        cond_ticks = torch.from_numpy(cond).to(device)  # (ticks, C); the last row for every later tick

    step = model.step
    if device.type == "cuda":
        step = CudaGraphStep(model, batch, device, x, cond_ticks.shape[1] if cond_ticks is not None else 0,
                             N_KEYS * 2 if (cond_ticks is not None and model.uses_excitation) else 0, style_t,
                             timbre_t)
    out = torch.empty(batch, n_samples, dtype=torch.long if model.cfg.output == "mulaw" else torch.float32)
    for tick_start in range(0, n_samples, spt):
        n = min(spt, n_samples - tick_start)
        tick = tick_start // spt
        cond = exc = None
        if cond_ticks is not None:
            cond = cond_ticks[min(tick, cond_ticks.shape[0] - 1)][None].expand(batch, -1)
            if model.uses_excitation:
                e = excitation(roll, tick_start, n, spt, sample_rate_hz, onsets, model.cfg.excitation_partials)
                exc_block = torch.from_numpy(e.T.copy()).to(device)  # (n, 2*88)
        for i in range(n):
            if cond_ticks is not None and model.uses_excitation:
                exc = exc_block[i][None].expand(batch, -1)
            logits = step(x, state, cond=cond, exc=exc, style=style_t, timbre=timbre_t)
            x = sample(model.cfg.output, logits, temperature, gen, min_p)
            out[:, tick_start + i] = x.cpu()
        if progress:
            progress(tick_start + n)
    if model.cfg.output == "mulaw":
        return mu_law_decode(out.numpy(), model.cfg.n_classes)
    return out.numpy().astype(np.float32)
