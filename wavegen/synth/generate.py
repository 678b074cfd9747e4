"""Sampling audio from a WaveNet, one sample at a time, free-running or following a sketch.

Sample i is predicted from sample i - 1 (silence before the first) and the conditioning of sample i:
the tick conditioning of tick i // samples_per_tick, computed once for the whole sketch, and the
excitation of sample i, computed a tick at a time. `batch` takes share the model and differ only in
their sampling noise; the same seed gives the same samples.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from wavegen.audio import mu_law_decode
from wavegen.data.conditioning import (
    excitation,
    sounding_and_onsets,
    tick_features,
    tick_window,
)
from wavegen.nn.model import WaveNet, sample
from wavegen.notes.render import (
    RELEASE_TAIL_S,  # generated past the sketch's last note-off, as the renderer does
)
from wavegen.notes.text import N_KEYS, KeyText


@torch.no_grad()
def sketch_conditioning(model: WaveNet, sketch: KeyText | None, n_samples: int) -> tuple[np.ndarray, tuple]:
    """The tick conditioning of every tick that n_samples reach, (n_ticks, cond_channels) float32, and
    (sounding, last_onset) for the excitation. Past the sketch's end the features are zero, as the
    training crops pad them."""
    roll = sketch.roll if sketch is not None else np.zeros((0, N_KEYS), dtype=bool)
    spt = model.samples_per_tick
    n_ticks = max(-(-n_samples // spt), 1)
    feats = tick_window(tick_features(roll), 0, n_ticks)  # zero-padded to n_ticks
    device = next(model.parameters()).device
    cond = model.tick_conditioning(torch.from_numpy(feats)[None].to(device))[0].T.contiguous()
    sounding, _, last_onset = sounding_and_onsets(roll)
    return cond.float().cpu().numpy(), (sounding, last_onset)


def sketch_samples(sketch: KeyText, sample_rate_hz: int) -> int:
    return int(round((sketch.duration_s + RELEASE_TAIL_S) * sample_rate_hz))


class CudaGraphStep:
    """On CUDA: `WaveNet.step` captured once in a CUDA graph and replayed for every sample, so a batch
    costs one graph launch per sample instead of a hundred kernel launches. The step counter lives on
    the device (see `StepState.t`); inputs are copied into static tensors before each replay."""

    def __init__(self, model: WaveNet, batch: int, device: torch.device, x: torch.Tensor,
                 cond_dim: int, exc_dim: int, style: torch.Tensor | None):
        self.model = model
        self.state = model.init_state(batch, device)
        self.state.t = torch.zeros((), dtype=torch.long, device=device)
        self.x = x.clone()
        self.cond = torch.zeros(batch, cond_dim, device=device) if cond_dim else None
        self.exc = torch.zeros(batch, exc_dim, device=device) if exc_dim else None
        self.style = style
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up outside the graph, as capture requires
            for _ in range(2):
                model.step(self.x, self.state, self.cond, self.exc, self.style)
        torch.cuda.current_stream().wait_stream(side)
        self.reset()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = model.step(self.x, self.state, self.cond, self.exc, self.style)
        self.reset()  # capture records the kernels without running them; start clean all the same

    def reset(self) -> None:
        for buf in self.state.buffers:
            buf.zero_()
        self.state.t.zero_()

    def __call__(self, x: torch.Tensor, state: object, cond: torch.Tensor | None = None,
                 exc: torch.Tensor | None = None, style: torch.Tensor | None = None) -> torch.Tensor:
        self.x.copy_(x)
        if self.cond is not None and cond is not None:
            self.cond.copy_(cond)
        if self.exc is not None and exc is not None:
            self.exc.copy_(exc)
        self.graph.replay()
        return self.out


@torch.no_grad()
def generate(
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
) -> np.ndarray:
    """Returns (batch, n_samples) float32 audio. progress(samples done) is called once per tick.

    temperature divides the logits (0 = always the most likely sample). min_p (min-p sampling) drops
    every class less likely than min_p times the most likely one before drawing: the far tail of a
    256-class distribution is where single-sample clicks come from (mu-law output only)."""
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

    cond_ticks = onsets = roll = None
    if model.uses_notes:
        roll = sketch.roll if sketch is not None else np.zeros((0, N_KEYS), dtype=bool)
        cond, onsets = sketch_conditioning(model, sketch, n_samples)
        cond_ticks = torch.from_numpy(cond).to(device)  # (ticks, C)

    step = model.step
    if device.type == "cuda":
        step = CudaGraphStep(model, batch, device, x, cond_ticks.shape[1] if cond_ticks is not None else 0,
                             N_KEYS * 2 if (cond_ticks is not None and model.uses_excitation) else 0, style_t)
    out = torch.empty(batch, n_samples, dtype=torch.long if model.cfg.output == "mulaw" else torch.float32)
    for tick_start in range(0, n_samples, spt):
        n = min(spt, n_samples - tick_start)
        tick = tick_start // spt
        cond = exc = None
        if cond_ticks is not None:
            cond = cond_ticks[tick][None].expand(batch, -1)
            if model.uses_excitation:
                e = excitation(roll, tick_start, n, spt, sample_rate_hz, onsets)
                exc_block = torch.from_numpy(e.T.copy()).to(device)  # (n, 2*88)
        for i in range(n):
            if cond_ticks is not None and model.uses_excitation:
                exc = exc_block[i][None].expand(batch, -1)
            logits = step(x, state, cond=cond, exc=exc, style=style_t)
            x = sample(model.cfg.output, logits, temperature, gen, min_p)
            out[:, tick_start + i] = x.cpu()
        if progress:
            progress(tick_start + n)
    if model.cfg.output == "mulaw":
        return mu_law_decode(out.numpy(), model.cfg.n_classes)
    return out.numpy().astype(np.float32)
