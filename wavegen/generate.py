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
from wavegen.conditioning import excitation, sounding_and_onsets, tick_features
from wavegen.model import WaveNet, sample
from wavegen.text import KeyText

RELEASE_TAIL_S = 0.5  # generated past the sketch's last note-off, as the renderer does


def sketch_samples(sketch: KeyText, sample_rate_hz: int) -> int:
    return int(round((sketch.duration_s + RELEASE_TAIL_S) * sample_rate_hz))


@torch.no_grad()
def generate(
    model: WaveNet,
    n_samples: int,
    *,
    sample_rate_hz: int,
    sketch: KeyText | None = None,
    temperature: float = 1.0,
    seed: int = 0,
    batch: int = 1,
    style: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Returns (batch, n_samples) float32 audio. progress(samples done) is called once per tick."""
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
        roll = sketch.roll if sketch is not None else np.zeros((0, 88), dtype=bool)
        feats = torch.from_numpy(tick_features(roll))[None].to(device)  # (1, 3*88, ticks + 1)
        cond_ticks = model.tick_conditioning(feats)[0].T.contiguous()  # (ticks + 1, C)
        sounding, _, last_onset = sounding_and_onsets(roll)
        onsets = (sounding, last_onset)

    out = torch.empty(batch, n_samples, dtype=torch.long if model.cfg.output == "mulaw" else torch.float32)
    for tick_start in range(0, n_samples, spt):
        n = min(spt, n_samples - tick_start)
        tick = tick_start // spt
        cond = exc = None
        if cond_ticks is not None:
            row = cond_ticks[tick] if tick < cond_ticks.shape[0] else torch.zeros_like(cond_ticks[0])
            cond = row[None].expand(batch, -1)
            if model.uses_excitation:
                e = excitation(roll, tick_start, n, spt, sample_rate_hz, onsets)
                exc_block = torch.from_numpy(e.T.copy()).to(device)  # (n, 2*88)
        for i in range(n):
            if cond_ticks is not None and model.uses_excitation:
                exc = exc_block[i][None].expand(batch, -1)
            logits = model.step(x, state, cond=cond, exc=exc, style=style_t)
            x = sample(model.cfg.output, logits, temperature, gen)
            out[:, tick_start + i] = x.cpu()
        if progress:
            progress(tick_start + n)
    if model.cfg.output == "mulaw":
        return mu_law_decode(out.numpy(), model.cfg.n_classes)
    return out.numpy().astype(np.float32)
