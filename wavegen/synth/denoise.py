"""Note-informed denoising: the hiss a network plays between the partials of the notes it was asked for,
turned down after the take is made. A post-process, not the network: `wavegen generate --denoise DB`
(and `evaluate`, `demo`, the studio).

The notes are known (the sketch), so is where their sound lies: at every moment, near the partials
(n x f0) of the keys sounding. The take's short-time spectrum (Hann windows of N_FFT_S, a quarter-window
hop: librosa's centred transform, see `StreamDenoiser`) keeps every cell near a sounding key's partial
as it is and turns every other cell down by `depth_db`:

- a key sounds in a frame whose window overlaps its note, from the onset to RELEASE_S after the end (a
  plucked string rings on);
- "near" is within PARTIAL_WIDTH_HZ or PARTIAL_WIDTH_CENTS of a partial, whichever is wider (harpsichord
  partials stretch a little), tapering to the turned-down level over half as much again, so that no
  cell's gain jumps;
- the frames whose centre lies within ATTACK_S after an onset (or one hop before it) pass whole: a
  pluck is broadband;
- where no key sounds (a rest, before the first note, after the release), the whole spectrum is turned
  down alike: a drone in a rest.

Then **no partial louder than the harpsichord plays it** (the whistle limit): in every frame past the
attack, each sounding key's partials above its LIMIT_LOW_PARTIALS-th are held to at most the power the
SoundFont gives that partial of that key relative to the key's first LIMIT_LOW_PARTIALS partials
(`partial_caps`: the most over the frames of the key rendered alone, shipped per named timbre in
partial_caps.npz, made by scripts/calibrate_partial_caps.py), plus LIMIT_MARGIN_DB. A whistle -- an upper
partial played 10-20 dB louder than the renderer plays it, or a tone near no low harmonic -- is turned
down to that level; the renderer's own partials are (nearly) never touched. A bin near the partials of
several sounding keys takes the most lenient of their limits (in a chord a key's first partials are
measured with whatever else sounds there, so its limit errs high).

With `depth_db = 0` the take is returned as it was (the transform alone returns it to 1e-7).
What it costs the renderer's own sound and what it gains on the network's takes are measured in
docs/evaluation/experiments.md (section 7): the reference rendering has its own quiet sound between the
partials (the pluck's noise, the body), and loses it alike.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from wavegen.data.conditioning import KEY_HZ, partial_distance
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
LIMIT_LOW_PARTIALS = 4  # a key's first partials, the measure of its level; never limited themselves
# Chosen on five validation chorales (scripts/calibrate_denoise.py; docs/evaluation/experiments.md section 9):
# the shipped model's whistles 8.1 % of the time without the limit; +3 dB 3.0 %, 0 dB 1.9 % at a log-mel cost
# to the rendering itself of 0.014, -3 dB 1.2 % at 0.068. The tables are of 16 kHz renderings.
LIMIT_MARGIN_DB = 0.0
CAPS_FILE = Path(__file__).with_name("partial_caps.npz")


def check_depth(depth_db: float) -> None:
    if not 0.0 <= depth_db <= MAX_DEPTH_DB:
        raise WavegenError(f"--denoise {depth_db:g}: must be 0 (off) to {MAX_DEPTH_DB:g} dB")


@functools.cache
def _key_gains(n_fft: int, sample_rate_hz: int) -> np.ndarray:
    """(88, bins) in [0, 1]: 1 near each key's partials, tapering to 0."""
    dist = partial_distance(np.fft.rfftfreq(n_fft, 1 / sample_rate_hz), PARTIAL_WIDTH_HZ, PARTIAL_WIDTH_CENTS)
    return np.clip(3.0 - 2.0 * dist, 0.0, 1.0)  # 1 within a width, 0 from one and a half


def _sounding(frames: np.ndarray, sample_rate_hz: int, notes: Sequence[Note]) -> tuple[np.ndarray, np.ndarray]:
    """(len(frames), 88) the keys sounding in each frame, and (len(frames),) the frames of an attack."""
    n_fft = int(N_FFT_S * sample_rate_hz)
    hop = n_fft // 4
    centre = np.asarray(frames) * hop / sample_rate_hz
    half = n_fft / 2 / sample_rate_hz
    sounding = np.zeros((len(centre), 88), dtype=bool)
    attack = np.zeros(len(centre), dtype=bool)
    for nt in notes:
        sounding[(centre + half > nt.start) & (centre - half < nt.end + RELEASE_S), nt.pitch - 21] = True
        attack |= (centre >= nt.start - hop / sample_rate_hz) & (centre < nt.start + ATTACK_S)
    return sounding, attack


def cell_gains(frames: np.ndarray, sample_rate_hz: int, notes: Sequence[Note], depth_db: float) -> np.ndarray:
    """(bins, len(frames)) gains of the short-time spectrum's frames `frames` (frame f is centred on sample
    f x hop, a quarter window)."""
    n_fft = int(N_FFT_S * sample_rate_hz)
    floor = 10 ** (-depth_db / 20)
    sounding, attack = _sounding(frames, sample_rate_hz, notes)
    keys = _key_gains(n_fft, sample_rate_hz)
    gains = np.full((keys.shape[1], len(frames)), floor)
    chords, which = np.unique(sounding, axis=0, return_inverse=True)  # few distinct chords: each once
    which = which.ravel()
    for c, chord in enumerate(chords):
        if chord.any():
            gains[:, which == c] = np.maximum(floor, keys[chord].max(axis=0))[:, None]
    gains[:, attack] = 1.0
    return gains


@functools.cache
def _partial_bins(n_fft: int, sample_rate_hz: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """Per key: (bins, starts, partials): the bins within a width (PARTIAL_WIDTH_HZ or _CENTS) of one of the
    key's partials, in order; where each partial's run of them starts; the partial's number less one.
    A bin near two partials (the lowest keys' upper ones) belongs to the nearer."""
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate_hz)
    stretch = 2 ** (PARTIAL_WIDTH_CENTS / 1200) - 1
    out = []
    for f0 in KEY_HZ:
        n = np.maximum(np.rint(freqs / f0), 1.0)
        near = np.abs(freqs - n * f0) <= np.maximum(PARTIAL_WIDTH_HZ, n * f0 * stretch)
        bins = np.flatnonzero(near)
        number = n[bins].astype(np.int64) - 1
        starts = np.flatnonzero(np.r_[True, np.diff(number) != 0]) if len(bins) else np.zeros(0, dtype=np.int64)
        out.append((bins, starts, number[starts]))
    return tuple(out)


def partial_powers(power: np.ndarray, key: int, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """power: (frames, bins) of the short-time spectrum (N_FFT_S windows) -> ((frames, m) the power near
    each of key `key`'s m partials that lie in it, (m,) their numbers less one)."""
    bins, starts, numbers = _partial_bins(int(N_FFT_S * sample_rate_hz), sample_rate_hz)[key]
    if not len(bins):
        return np.zeros((len(power), 0)), numbers
    return np.add.reduceat(power[:, bins], starts, axis=1), numbers


def relative_partials(power: np.ndarray, key: int, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, m) each partial's power over the key's first LIMIT_LOW_PARTIALS' (0 where those are
    silent), and the partials' numbers less one: what partial_caps.npz holds the most of, per key."""
    parts, numbers = partial_powers(power, key, sample_rate_hz)
    low = parts[:, numbers < LIMIT_LOW_PARTIALS].sum(axis=1, keepdims=True)
    return np.divide(parts, low, out=np.zeros_like(parts), where=low > 0), numbers


@functools.cache
def _caps_tables() -> dict[str, np.ndarray]:
    with np.load(CAPS_FILE) as z:
        return {name: z[name].astype(np.float64) for name in z.files}


def caps_timbres() -> list[str]:
    """The timbres partial_caps.npz has limits for."""
    return sorted(_caps_tables())


def partial_caps(timbre: str | None) -> np.ndarray:
    """(88, partials) the most power the SoundFont `timbre` gives each partial of each key over its first
    LIMIT_LOW_PARTIALS (see the module docstring); for a timbre without limits of its own (None, a user's
    SoundFont), the most over every timbre that has them."""
    tables = _caps_tables()
    if timbre in tables:
        return tables[timbre]
    return np.maximum.reduce(list(tables.values()))


def limit_gains(power: np.ndarray, frames: np.ndarray, sample_rate_hz: int, notes: Sequence[Note],
                caps: np.ndarray, margin_db: float = LIMIT_MARGIN_DB) -> np.ndarray:
    """(len(frames), bins) gains that hold each sounding key's upper partials in `power` (len(frames),
    bins) to `caps` (see the module docstring); 1 in attack frames and away from every sounding partial."""
    sounding, attack = _sounding(frames, sample_rate_hz, notes)
    best = np.full(power.shape, -1.0)
    allow = caps * 10 ** (margin_db / 10)
    for key in np.flatnonzero(sounding.any(axis=0)):
        rows = np.flatnonzero(sounding[:, key] & ~attack)
        if not len(rows):
            continue
        rel, numbers = relative_partials(power[rows], key, sample_rate_hz)
        cap = np.full(len(numbers), np.inf)
        inside = numbers < allow.shape[1]
        cap[inside] = allow[key, numbers[inside]]
        cap[numbers < LIMIT_LOW_PARTIALS] = np.inf
        g = np.sqrt(np.minimum(1.0, np.divide(cap, rel, out=np.ones_like(rel), where=rel > 0)))
        bins, starts, _ = _partial_bins(int(N_FFT_S * sample_rate_hz), sample_rate_hz)[key]
        per_bin = g[:, np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(bins)]))]
        best[np.ix_(rows, bins)] = np.maximum(best[np.ix_(rows, bins)], per_bin)
    return np.where(best >= 0, best, 1.0)


class StreamDenoiser:
    """`denoise` of one take that arrives in pieces (the studio's stream), in flat memory: `push` each
    piece of audio with the notes known so far (they must reach at least as far as the audio; a note not
    yet ended may end where they stop) and get back the samples that are final, about N_FFT_S / 2 behind;
    `flush` returns the rest. Joined, the pieces are `denoise` of the whole take (the same frames, summed
    in the same order).

    The short-time transform is librosa's centred one, written out so that it can stream: periodic Hann
    windows of n = N_FFT_S seconds every n / 4 samples, frame f centred on sample f x n / 4 of a take
    padded with n / 2 zeros either side (1 + length // hop frames), inverted by overlap-add divided by the
    sum of the squared windows.

    timbre: the harpsichord the take imitates, whose partials limit it (`partial_caps`); None: the most
    lenient of them. limit=False: no whistle limit (the experiments measure it apart)."""

    def __init__(self, sample_rate_hz: int, depth_db: float, timbre: str | None = None, limit: bool = True):
        check_depth(depth_db)
        self.sr, self.depth = sample_rate_hz, depth_db
        self.caps = partial_caps(timbre) if limit and depth_db else None
        self.n = int(N_FFT_S * sample_rate_hz)
        self.hop = self.n // 4
        self.window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.n) / self.n)
        self.inp = np.zeros(self.n // 2)  # input from absolute sample inp_start (the centre padding first)
        self.inp_start = -(self.n // 2)
        self.acc = np.zeros(0)  # overlap-added output and squared windows, from absolute sample `emitted`
        self.wss = np.zeros(0)
        self.frame = 0  # the next frame to compute
        self.emitted = 0

    def _frames(self, last: int, notes: Sequence[Note]) -> None:
        """Compute frames self.frame .. last - 1 (their input is in self.inp) and overlap-add them."""
        if last <= self.frame:
            return
        n, hop = self.n, self.hop
        idx = np.arange(self.frame, last)
        lo = idx * hop - n // 2 - self.inp_start  # each frame's first input sample, in self.inp
        frames = self.inp[lo[:, None] + np.arange(n)] * self.window
        spec = np.fft.rfft(frames, axis=1)
        if self.depth:
            spec *= cell_gains(idx, self.sr, notes, self.depth).T
        if self.caps is not None:
            spec *= limit_gains(np.abs(spec) ** 2, idx, self.sr, notes, self.caps, LIMIT_MARGIN_DB)
        y = np.fft.irfft(spec, n=n, axis=1) * self.window
        end = (last - 1) * hop - n // 2 + n - self.emitted  # the output reaches this far, from `emitted`
        if end > len(self.acc):
            grow = end - len(self.acc)
            self.acc, self.wss = np.concatenate([self.acc, np.zeros(grow)]), np.concatenate([self.wss, np.zeros(grow)])
        w2 = self.window**2
        for k, f in enumerate(idx):  # in frame order, as one pass over the whole take would add them
            o = f * hop - n // 2 - self.emitted
            if o < 0:  # the first frames reach into the padding before sample 0
                self.acc[: o + n] += y[k, -o:]
                self.wss[: o + n] += w2[-o:]
            else:
                self.acc[o:o + n] += y[k]
                self.wss[o:o + n] += w2
        self.frame = last
        keep = self.frame * hop - n // 2 - self.inp_start  # input the next frame needs
        self.inp, self.inp_start = self.inp[keep:], self.inp_start + keep

    def _emit(self, upto: int) -> np.ndarray:
        k = max(0, upto - self.emitted)
        wss = self.wss[:k]
        out = np.where(wss > 1e-10, self.acc[:k] / np.where(wss > 1e-10, wss, 1.0), self.acc[:k])
        self.acc, self.wss, self.emitted = self.acc[k:], self.wss[k:], self.emitted + k
        return out.astype(np.float32)

    def push(self, audio: np.ndarray, notes: Sequence[Note]) -> np.ndarray:
        """Add the next samples of the take; return those that are final."""
        self.inp = np.concatenate([self.inp, np.asarray(audio, dtype=np.float64)])
        received = self.inp_start + len(self.inp)
        ahead = self.n - self.n // 2  # a frame's input reaches this far past its centre
        last = (received - ahead) // self.hop + 1 if received >= ahead else 0  # the frames whose input is here
        self._frames(last, notes)
        return self._emit(self.frame * self.hop - self.n // 2)

    def flush(self, notes: Sequence[Note]) -> np.ndarray:
        """The take has ended: the rest of its samples."""
        length = self.inp_start + len(self.inp)
        frames = 1 + length // self.hop
        need = (frames - 1) * self.hop - self.n // 2 + self.n - self.inp_start  # the end padding, in zeros
        if need > len(self.inp):
            self.inp = np.concatenate([self.inp, np.zeros(need - len(self.inp))])
        self._frames(frames, notes)
        return self._emit(length)


def denoise(audio: np.ndarray, sample_rate_hz: int, notes: Sequence[Note], depth_db: float,
            timbre: str | None = None, limit: bool = True) -> np.ndarray:
    """`audio` (samples,) or (takes, samples), every take following `notes`, with the cells away from the
    sounding partials turned down by `depth_db` and no partial louder than `timbre` plays it (see the
    module docstring and StreamDenoiser); float32, the same shape. Depth 0: the takes as they are."""
    check_depth(depth_db)
    x = np.asarray(audio, dtype=np.float32)
    if depth_db == 0 or x.shape[-1] == 0:
        return x.copy()
    if x.ndim == 2:
        return np.stack([denoise(take, sample_rate_hz, notes, depth_db, timbre, limit) for take in x])
    s = StreamDenoiser(sample_rate_hz, depth_db, timbre, limit)
    return np.concatenate([s.push(x, notes), s.flush(notes)])


def denoised_stream(chunks: Iterable[np.ndarray], sample_rate_hz: int, notes: Sequence[Note],
                    depth_db: float, timbre: str | None = None) -> Iterator[np.ndarray]:
    """The chunks of a take following `notes`, denoised as they come (`StreamDenoiser`); with depth 0,
    the chunks as they are."""
    if depth_db == 0:
        yield from chunks
        return
    s = StreamDenoiser(sample_rate_hz, depth_db, timbre)
    for chunk in chunks:
        if len(out := s.push(chunk, notes)):
            yield out
    yield s.flush(notes)
