"""Note-informed denoising: the hiss a network plays between the partials of the notes it was asked for,
turned down after the take is made. A post-process, not the network: `wavegen generate --denoise DB`.

The notes are known (the sketch), so is where their sound lies: at every moment, near the partials
(n x f0) of the keys sounding. The take's short-time spectrum (Hann windows of N_FFT_S, a quarter-window
hop) keeps every cell near a sounding key's partial as it is and turns every other cell down by `depth_db`:

- a key sounds in a frame whose window overlaps its note, from the onset to RELEASE_S after the end (a
  plucked string rings on);
- "near" is within PARTIAL_WIDTH_HZ or PARTIAL_WIDTH_CENTS of a partial, whichever is wider (harpsichord
  partials stretch a little), tapering to the turned-down level over half as much again, so that no
  cell's gain jumps;
- the frames whose centre lies within ATTACK_S after an onset (or one hop before it) pass whole: a
  pluck is broadband;
- where no key sounds (a rest, before the first note, after the release), the whole spectrum is turned
  down alike: a drone in a rest.

With `depth_db = 0` the take is returned as it was (the short-time transform alone returns it to 1e-6).
What it costs the renderer's own sound and what it gains on the network's takes are measured in
docs/evaluation/experiments.md (section 7): the reference rendering has its own quiet sound between the
partials (the pluck's noise, the body), and loses it alike.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from wavegen.errors import WavegenError
from wavegen.notes.text import Note

N_FFT_S = 0.064
RELEASE_S = 0.3
ATTACK_S = 0.03
PARTIAL_WIDTH_HZ = 25.0
PARTIAL_WIDTH_CENTS = 20.0
MAX_DEPTH_DB = 60.0
# The default: the network's cells between the partials lie a median 9.6 dB (mean 10.9) above the
# renderer's on five validation chorales (scripts/calibrate_denoise.py, the shipped model): turned down by
# about that, they sit where the renderer's do.
DEFAULT_DEPTH_DB = 10.0


def check_depth(depth_db: float) -> None:
    if not 0.0 <= depth_db <= MAX_DEPTH_DB:
        raise WavegenError(f"--denoise {depth_db:g}: must be 0 (off) to {MAX_DEPTH_DB:g} dB")


@functools.cache
def _key_gains(n_fft: int, sample_rate_hz: int) -> np.ndarray:
    """(88, bins) in [0, 1]: 1 near each key's partials, tapering to 0."""
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate_hz)
    gains = np.zeros((88, len(freqs)))
    for k in range(88):
        f0 = 440.0 * 2 ** ((k + 21 - 69) / 12)
        for h in range(1, int(freqs[-1] // f0) + 1):
            f = h * f0
            width = max(PARTIAL_WIDTH_HZ, f * (2 ** (PARTIAL_WIDTH_CENTS / 1200) - 1))
            gains[k] = np.maximum(gains[k], np.clip(3.0 - 2.0 * np.abs(freqs - f) / width, 0.0, 1.0))
    return gains


def cell_gains(n_frames: int, sample_rate_hz: int, notes: Sequence[Note], depth_db: float) -> np.ndarray:
    """(bins, frames) gains of the short-time spectrum (librosa's centred frames, a quarter-window hop)."""
    n_fft = int(N_FFT_S * sample_rate_hz)
    hop = n_fft // 4
    floor = 10 ** (-depth_db / 20)
    centre = np.arange(n_frames) * hop / sample_rate_hz
    half = n_fft / 2 / sample_rate_hz
    sounding = np.zeros((n_frames, 88), dtype=bool)
    attack = np.zeros(n_frames, dtype=bool)
    for nt in notes:
        sounding[(centre + half > nt.start) & (centre - half < nt.end + RELEASE_S), nt.pitch - 21] = True
        attack |= (centre >= nt.start - hop / sample_rate_hz) & (centre < nt.start + ATTACK_S)
    keys = _key_gains(n_fft, sample_rate_hz)
    gains = np.full((keys.shape[1], n_frames), floor)
    chords, which = np.unique(sounding, axis=0, return_inverse=True)  # few distinct chords: each once
    which = which.ravel()
    for c, chord in enumerate(chords):
        if chord.any():
            gains[:, which == c] = np.maximum(floor, keys[chord].max(axis=0))[:, None]
    gains[:, attack] = 1.0
    return gains


def denoise(audio: np.ndarray, sample_rate_hz: int, notes: Sequence[Note], depth_db: float) -> np.ndarray:
    """`audio` (samples,) or (takes, samples), every take following `notes`, with the cells away from the
    sounding partials turned down by `depth_db` (see the module docstring); float32, the same shape."""
    import librosa

    check_depth(depth_db)
    x = np.asarray(audio, dtype=np.float32)
    if depth_db == 0 or x.shape[-1] == 0:
        return x.copy()
    n_fft = int(N_FFT_S * sample_rate_hz)
    hop = n_fft // 4
    spec = librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann", center=True)
    spec *= cell_gains(spec.shape[-1], sample_rate_hz, notes, depth_db).astype(np.float32)
    y = librosa.istft(spec, hop_length=hop, n_fft=n_fft, window="hann", center=True, length=x.shape[-1])
    return y.astype(np.float32)
