"""Conditioning features from the 88-key state roll, made hard for the network to ignore.

Two kinds, both derived from the roll alone (numpy, no torch):

- per tick (`tick_features`): for each key, whether it sounds, whether it was struck in this tick, and
  exp(-ticks since it was struck / DECAY_TICKS) while it sounds: 3 x 88 channels. The model runs a small
  convolutional network over these (it may look a few ticks ahead) and repeats it to the sample rate.
- per sample (`excitation`): for every sounding key, the sine and cosine of its fundamental frequency
  with phase zero at the note's onset: 2 x 88 channels, zero for silent keys. Like the source signal of
  a neural source-filter model, it tells each layer where the partials are.

With velocities (a model with `model.velocity` on, trained on recordings), the tick features gain 88
channels (`velocity_features`): the MIDI velocity / 127 of the note sounding at each key and tick, 0 where
none sounds. A note without a velocity (every note of an 88-key text) gets a default one: the model's
(the median of its training data, recorded in its checkpoint), else DEFAULT_VELOCITY.

A key "sounds" over its decoded extent: a run of ticks [s, e) and the tick e the decoder gives back.
"""

from __future__ import annotations

import numpy as np

from wavegen.notes.text import LOWEST_PITCH, N_KEYS

N_TICK_FEATURES = 3 * N_KEYS
N_EXCITATION = 2 * N_KEYS
N_VELOCITY = N_KEYS  # the velocity channels, after the N_TICK_FEATURES when a model has them
DEFAULT_VELOCITY = 64  # a note's velocity when neither it nor the model says otherwise (MIDI's mezzo-forte)
DECAY_TICKS = 10.0  # e-folding time of the time-since-onset feature (0.5 s at 50 ms ticks)
KEY_HZ = 440.0 * 2.0 ** ((np.arange(N_KEYS) + LOWEST_PITCH - 69) / 12.0)  # equal temperament, A4 = 440


def sounding_and_onsets(roll: np.ndarray, lo: int = 0, hi: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """roll: (T, 88) bool. Returns (sounding, onset, last_onset) for the ticks [lo, hi) of 0 .. T (the
    roll's ticks and the one given back after them; all of them by default), each (hi - lo, 88):

    sounding[t, k]: key k sounds in tick lo + t (its runs, each extended by the tick given back);
    onset[t, k]: a run of key k starts at tick lo + t;
    last_onset[t, k]: the tick of key k's latest onset at or before lo + t (-1 if none).

    A window reads the roll from tick lo - 1 on, and before it only for each key's latest onset: a crop
    costs its own ticks, not its piece's.
    """
    T = roll.shape[0]
    hi = T + 1 if hi is None else hi
    if not 0 <= lo <= hi <= T + 1:
        raise ValueError(f"ticks [{lo}, {hi}) are not within the roll's 0 .. {T}")
    r = _rows_before(roll, lo, hi)  # ticks lo - 1 .. hi - 1, silent before 0 and at T
    onset = r[1:] & ~r[:-1]
    sounding = r[1:] | r[:-1]
    t = np.arange(lo, hi)[:, None]
    last_onset = np.maximum.accumulate(np.where(onset, t, -1), axis=0)
    if lo > 0:
        last_onset = np.maximum(last_onset, last_onset_before(roll, lo))
    return sounding, onset, last_onset


def _rows_before(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows lo - 1 .. hi - 1 of x (a roll's ticks, or their velocities), zero where they fall outside it."""
    out = np.zeros((hi - lo + 1, *x.shape[1:]), dtype=x.dtype)
    a, b = max(lo - 1, 0), min(hi, x.shape[0])
    if b > a:
        out[a - lo + 1 : b - lo + 1] = x[a:b]
    return out


def last_onset_before(roll: np.ndarray, lo: int) -> np.ndarray:
    """(88,) int64: each key's latest onset at a tick before lo (-1 if none)."""
    seg = roll[: min(lo, roll.shape[0])]
    if not len(seg):
        return np.full(N_KEYS, -1, dtype=np.int64)
    on = seg.copy()
    on[1:] &= ~seg[:-1]
    latest = len(seg) - 1 - np.argmax(on[::-1], axis=0)
    return np.where(on.any(axis=0), latest, -1).astype(np.int64)


def tick_features(roll: np.ndarray, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """(3 * 88, hi - lo) float32: state, onset flag, decay since onset, per key and tick of [lo, hi)
    (by default every tick, T + 1)."""
    sounding, onset, last_onset = sounding_and_onsets(roll, lo, hi)
    since = np.arange(lo, lo + sounding.shape[0])[:, None] - last_onset
    decay = np.where(sounding, np.exp(-since / DECAY_TICKS), 0.0)
    return np.concatenate([sounding, onset, decay], axis=1).T.astype(np.float32)


def velocity_features(roll: np.ndarray, velocity: np.ndarray | None, default_velocity: int,
                      lo: int = 0, hi: int | None = None) -> np.ndarray:
    """(88, hi - lo) float32: velocity / 127 of the note sounding at each key and tick of [lo, hi) (by
    default every tick, T + 1), 0 where none sounds.

    roll: (T, 88) bool; velocity: (T, 88) MIDI velocities (uint8, 1..127 where the roll has a key), or None
    for notes without velocities. The tick a run gives back takes the run's velocity; a sounding key whose
    velocity is 0 (or None) takes default_velocity."""
    T = roll.shape[0]
    hi = T + 1 if hi is None else hi
    sounding, _, _ = sounding_and_onsets(roll, lo, hi)
    v = np.zeros(sounding.shape, dtype=np.float32)
    if velocity is not None:
        if velocity.shape != roll.shape:
            raise ValueError(f"velocity {velocity.shape} and roll {roll.shape} differ in shape")
        r = _rows_before(roll, lo, hi)  # ticks lo - 1 .. hi - 1, as sounding_and_onsets
        w = np.where(r, _rows_before(velocity, lo, hi), 0).astype(np.float32)  # their velocities, 0 where no key
        given_back = sounding & ~r[1:]  # sounds only as the tick after a run: the run's velocity
        v = np.where(given_back, w[:-1], w[1:])
    v = np.where(sounding & (v == 0), float(default_velocity), v)
    return (v / 127.0).T.astype(np.float32)


def model_tick_features(roll: np.ndarray, velocity: np.ndarray | None, default_velocity: int,
                        with_velocity: bool, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """What a model's conditioning network reads of a roll, (3*88 [+ 88], hi - lo) float32 for the ticks
    [lo, hi) (by default every tick, T + 1): `tick_features`, and for a model with velocity channels
    (with_velocity) `velocity_features` after them. The one place training crops and generation build
    them, so both give a model the same channels."""
    feats = tick_features(roll, lo, hi)
    if not with_velocity:
        return feats
    return np.concatenate([feats, velocity_features(roll, velocity, default_velocity, lo, hi)])


def model_tick_window(roll: np.ndarray, velocity: np.ndarray | None, default_velocity: int,
                      with_velocity: bool, first_tick: int, n_ticks: int) -> np.ndarray:
    """`tick_window(model_tick_features(...), first_tick, n_ticks)`, computed for the window's ticks only."""
    channels = N_TICK_FEATURES + (N_VELOCITY if with_velocity else 0)
    out = np.zeros((channels, n_ticks), dtype=np.float32)
    lo, hi = max(first_tick, 0), min(first_tick + n_ticks, roll.shape[0] + 1)
    if hi > lo:
        out[:, lo - first_tick : hi - first_tick] = model_tick_features(
            roll, velocity, default_velocity, with_velocity, lo, hi)
    return out


def tick_window(features: np.ndarray, first_tick: int, n_ticks: int) -> np.ndarray:
    """features[:, first_tick : first_tick + n_ticks], zero outside the piece. (C, n_ticks)."""
    out = np.zeros((features.shape[0], n_ticks), dtype=np.float32)
    lo, hi = max(first_tick, 0), min(first_tick + n_ticks, features.shape[1])
    if hi > lo:
        out[:, lo - first_tick : hi - first_tick] = features[:, lo:hi]
    return out


def crop_ticks(n_samples: int, samples_per_tick: int, margin_ticks: int) -> int:
    """Ticks in a conditioning window for any crop of n_samples: covers the crop plus margins."""
    return n_samples // samples_per_tick + 2 + 2 * margin_ticks


def crop_window(start: int, samples_per_tick: int, margin_ticks: int) -> tuple[int, int]:
    """(first tick of the window, offset of sample `start` within the window in samples)."""
    first = start // samples_per_tick - margin_ticks
    return first, start - first * samples_per_tick


def partial_distance(freqs: np.ndarray, width_hz: float, width_cents: float) -> np.ndarray:
    """(88, len(freqs)): how far each frequency lies from the nearest partial (n x f0, up to the highest of
    `freqs`) of each key, in widths: |f - n f0| / max(width_hz, width_cents of n f0). 1 or less is "on the
    partial" (evaluate/sound.py's masks, synth/denoise.py's gains)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    dist = np.full((N_KEYS, len(freqs)), np.inf)
    stretch = 2 ** (width_cents / 1200) - 1
    for k, f0 in enumerate(KEY_HZ):
        for h in range(1, int(freqs[-1] // f0) + 1):
            f = h * f0
            dist[k] = np.minimum(dist[k], np.abs(freqs - f) / max(width_hz, f * stretch))
    return dist


def partial_amplitudes(n_partials: int, sample_rate_hz: int) -> np.ndarray:
    """(88, n_partials) float64: the amplitude of partial p (p = 1 .. n_partials, the fundamental first) in
    each key's excitation: 1 / p, and 0 for an overtone at or above 0.45 times the sample rate (below the
    Nyquist frequency with room to spare). The fundamental is always there at amplitude 1, so one partial
    is the excitation of every model trained before `model.excitation_partials`."""
    if n_partials < 1:
        raise ValueError(f"n_partials must be at least 1, not {n_partials}")
    p = np.arange(1, n_partials + 1, dtype=np.float64)
    amp = np.broadcast_to(1.0 / p, (N_KEYS, n_partials)).copy()
    amp[:, 1:][KEY_HZ[:, None] * p[None, 1:] >= 0.45 * sample_rate_hz] = 0.0
    return amp


def partial_sum(s1: np.ndarray, c1: np.ndarray, amp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum_p amp[..., p] sin(p x), sum_p amp[..., p] cos(p x)) from s1 = sin(x), c1 = cos(x), by the
    angle-addition recurrence, in the order the kernels (_kernel.c, fast.step_block) sum them. amp: (P,)
    or broadcastable against s1 with a last axis of P."""
    sp, cp = s1, c1
    s = np.zeros_like(s1)
    c = np.zeros_like(c1)
    for q in range(amp.shape[-1]):
        a = amp[..., q]
        s = s + a * sp
        c = c + a * cp
        sp, cp = sp * c1 + cp * s1, cp * c1 - sp * s1
    return s, c


def excitation(
    roll: np.ndarray, start: int, n_samples: int, samples_per_tick: int, sample_rate_hz: int,
    onsets: tuple[np.ndarray, np.ndarray] | None = None, n_partials: int = 1, onsets_from: int = 0,
) -> np.ndarray:
    """(2 * 88, n_samples) float32 for samples [start, start + n_samples): for each sounding key the sum
    of its first `n_partials` partials' sines, then of their cosines (`partial_amplitudes`: with one, the
    sine and cosine of its fundamental), phase zero at its onset; zero for keys that do not sound.

    onsets: (sounding, last_onset) from `sounding_and_onsets`, to skip recomputing them per chunk: for
    every tick, or for the ticks from `onsets_from` on (a window that holds every tick of these samples
    within the roll's 0 .. T).
    """
    if onsets is None:
        sounding, _, last_onset = sounding_and_onsets(roll)
        onsets_from = 0
    else:
        sounding, last_onset = onsets
    out = np.zeros((N_EXCITATION, n_samples), dtype=np.float32)
    if not sounding.shape[0]:
        return out
    idx = start + np.arange(n_samples)
    ticks = idx // samples_per_tick - onsets_from
    inside = (ticks >= 0) & (ticks < sounding.shape[0])
    tk = np.clip(ticks, 0, sounding.shape[0] - 1)
    on = sounding[tk] & inside[:, None]  # (n, 88)
    if not on.any():
        return out
    keys = np.nonzero(on.any(axis=0))[0]  # only the keys that sound somewhere in this stretch
    elapsed = (idx[:, None] - last_onset[tk][:, keys] * samples_per_tick) / sample_rate_hz  # seconds
    # cycles since the onset, in float64 (thousands of them a few seconds into a high note); only their
    # fraction, the phase within a cycle, goes to float32's sine and cosine, which numpy vectorizes
    # (float64's were 60 times slower here, and most of a training crop's time)
    cycles = KEY_HZ[keys] * elapsed
    phase = (2.0 * np.pi * (cycles - np.floor(cycles))).astype(np.float32)
    mask = on[:, keys]
    s, c = np.sin(phase), np.cos(phase)
    if n_partials > 1:  # the recurrence in float64, as the kernels sum it
        s, c = partial_sum(s.astype(np.float64), c.astype(np.float64),
                           partial_amplitudes(n_partials, sample_rate_hz)[keys])
    out[keys] = np.where(mask, s, 0.0).T
    out[N_KEYS + keys] = np.where(mask, c, 0.0).T
    return out
