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

With `depth_db = 0` the take is returned as it was (the transform alone returns it to 1e-7).
What it costs the renderer's own sound and what it gains on the network's takes are measured in
docs/evaluation/experiments.md (section 7): the reference rendering has its own quiet sound between the
partials (the pluck's noise, the body), and loses it alike.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from wavegen.data.conditioning import partial_distance
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
    dist = partial_distance(np.fft.rfftfreq(n_fft, 1 / sample_rate_hz), PARTIAL_WIDTH_HZ, PARTIAL_WIDTH_CENTS)
    return np.clip(3.0 - 2.0 * dist, 0.0, 1.0)  # 1 within a width, 0 from one and a half


def cell_gains(frames: np.ndarray, sample_rate_hz: int, notes: Sequence[Note], depth_db: float) -> np.ndarray:
    """(bins, len(frames)) gains of the short-time spectrum's frames `frames` (frame f is centred on sample
    f x hop, a quarter window)."""
    n_fft = int(N_FFT_S * sample_rate_hz)
    hop = n_fft // 4
    floor = 10 ** (-depth_db / 20)
    centre = np.asarray(frames) * hop / sample_rate_hz
    half = n_fft / 2 / sample_rate_hz
    sounding = np.zeros((len(centre), 88), dtype=bool)
    attack = np.zeros(len(centre), dtype=bool)
    for nt in notes:
        sounding[(centre + half > nt.start) & (centre - half < nt.end + RELEASE_S), nt.pitch - 21] = True
        attack |= (centre >= nt.start - hop / sample_rate_hz) & (centre < nt.start + ATTACK_S)
    keys = _key_gains(n_fft, sample_rate_hz)
    gains = np.full((keys.shape[1], len(centre)), floor)
    chords, which = np.unique(sounding, axis=0, return_inverse=True)  # few distinct chords: each once
    which = which.ravel()
    for c, chord in enumerate(chords):
        if chord.any():
            gains[:, which == c] = np.maximum(floor, keys[chord].max(axis=0))[:, None]
    gains[:, attack] = 1.0
    return gains


class StreamDenoiser:
    """`denoise` of one take that arrives in pieces (the studio's stream), in flat memory: `push` each
    piece of audio with the notes known so far (they must reach at least as far as the audio; a note not
    yet ended may end where they stop) and get back the samples that are final, about N_FFT_S / 2 behind;
    `flush` returns the rest. Joined, the pieces are `denoise` of the whole take (the same frames, summed
    in the same order).

    The short-time transform is librosa's centred one, written out so that it can stream: periodic Hann
    windows of n = N_FFT_S seconds every n / 4 samples, frame f centred on sample f x n / 4 of a take
    padded with n / 2 zeros either side (1 + length // hop frames), inverted by overlap-add divided by the
    sum of the squared windows."""

    def __init__(self, sample_rate_hz: int, depth_db: float):
        check_depth(depth_db)
        self.sr, self.depth = sample_rate_hz, depth_db
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


def denoise(audio: np.ndarray, sample_rate_hz: int, notes: Sequence[Note], depth_db: float) -> np.ndarray:
    """`audio` (samples,) or (takes, samples), every take following `notes`, with the cells away from the
    sounding partials turned down by `depth_db` (see the module docstring); float32, the same shape."""
    check_depth(depth_db)
    x = np.asarray(audio, dtype=np.float32)
    if depth_db == 0 or x.shape[-1] == 0:
        return x.copy()
    if x.ndim == 2:
        return np.stack([denoise(take, sample_rate_hz, notes, depth_db) for take in x])
    s = StreamDenoiser(sample_rate_hz, depth_db)
    return np.concatenate([s.push(x, notes), s.flush(notes)])


def denoised_stream(chunks: Iterable[np.ndarray], sample_rate_hz: int, notes: Sequence[Note],
                    depth_db: float) -> Iterator[np.ndarray]:
    """The chunks of a take following `notes`, denoised as they come (`StreamDenoiser`); with depth 0,
    the chunks as they are."""
    if depth_db == 0:
        yield from chunks
        return
    s = StreamDenoiser(sample_rate_hz, depth_db)
    for chunk in chunks:
        if len(out := s.push(chunk, notes)):
            yield out
    yield s.flush(notes)
