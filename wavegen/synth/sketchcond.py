"""A sketch's conditioning, as every engine (PyTorch step, compiled kernels, stream) reads it.

The conditioning network looks `cond_lookahead_ticks` before and after each tick, so it is computed
over the whole sketch and not over the ticks a request reaches: the last ticks of a take then do not
depend on how many samples were asked for. Past the sketch's end the features are zero, as the
training crops pad them; from `cond_lookahead_ticks` ticks after the end on, every tick sees only
zeros, so one row (the last) stands for all of them. The computation has the same shape for any
request, so a longer take starts with the shorter one sample for sample.

A model with velocity channels reads them here too, beside the notes' tick features: the per-tick row
every engine folds its conditioning into (the fast kernels' `tick_rows`) then carries them, and no
kernel sees velocities as such.
"""

from __future__ import annotations

import numpy as np
import torch

from wavegen.data.conditioning import model_tick_features, sounding_and_onsets, tick_window
from wavegen.nn.model import WaveNet
from wavegen.notes.render import (
    RELEASE_TAIL_S,  # generated past the sketch's last note-off, as the renderer does
)
from wavegen.notes.text import N_KEYS, KeyText


@torch.no_grad()
def roll_conditioning(model: WaveNet, roll: np.ndarray, velocity: np.ndarray | None = None
                      ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The tick conditioning of a roll, (n, cond_channels) float32: tick t reads row min(t, n - 1);
    and (sounding, last_onset) for the excitation. roll: (ticks, 88) bool; velocity: (ticks, 88) MIDI
    velocities of its notes (the model's default velocity for each note without: None, or 0 at a sounding
    key), read by a model with velocity channels and ignored by the others."""
    # the roll's ticks and the tick the decoder gives back; the velocity channels join the tick features here,
    # so every engine gets them
    feats = model_tick_features(roll, velocity, model.default_velocity, model.uses_velocity)
    n = feats.shape[1] + model.cfg.cond_lookahead_ticks + 1  # the last row sees zeros only
    device = next(model.parameters()).device
    window = torch.from_numpy(tick_window(feats, 0, n))[None].to(device)
    cond = model.tick_conditioning(window)[0].T.contiguous()
    sounding, _, last_onset = sounding_and_onsets(roll)
    return cond.float().cpu().numpy(), (sounding, last_onset)


def sketch_conditioning(model: WaveNet, sketch: KeyText | None, velocity: np.ndarray | None = None
                        ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """`roll_conditioning` of a sketch and its velocities; None is the empty sketch (silence)."""
    roll = sketch.roll if sketch is not None else np.zeros((0, N_KEYS), dtype=bool)
    return roll_conditioning(model, roll, velocity if sketch is not None else None)


def sketch_samples(sketch: KeyText, sample_rate_hz: int) -> int:
    """Samples that play a whole sketch: to its last note-off and the release tail after it."""
    return int(round((sketch.duration_s + RELEASE_TAIL_S) * sample_rate_hz))
