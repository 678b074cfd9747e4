"""What a listener hears besides the notes: the noise floor, the quietest second and whistles, each of a
generated clip against the reference rendering of the same 88-key text.

- **Noise floor** (`noise_floor_db`): how loud the spectrum is between the partials of the keys
  sounding at each moment. A short-time power spectrum (128 ms Hann windows, 10 ms hop); at each frame
  the keys sounding (a note from its onset to RELEASE_S after its end, as a plucked string rings on;
  a frame counts a note its window overlaps) mask every bin within PARTIAL_WIDTH of their partials
  (n * f0 up to Nyquist), and bins below 25 Hz are left out. The floor is the FLOOR_PERCENTILE-th
  percentile of the remaining time-frequency cells' power in dB: the level the quiet cells between the
  partials sit at, which hiss under the notes and a drone where none sounds both raise. A clip scores
  its floor minus the reference rendering's, so the reference scores itself 0 dB. Calibration (the
  first 15 s of five test chorales of the Bach dataset; tests/test_sound.py checks the same on a
  rendered piece): white noise added to the reference at -40 dBFS scores +9 to +22 dB, at -60 dBFS +1
  to +2 dB; the median cell (the 50th percentile) separated noise less well (+4 dB at -40 dBFS on dense
  chorales), since the skirts of loud partials fill the cells next to them. A clip can score far under
  0 (-40 dB) where a fifth of its cells are digital silence while the rendering rings on there (a model
  that plays nothing, or exact silence between sparse notes): the report's `noise_floor_excess_db`
  counts such a clip 0, so that the mean over clips does not let it hide another clip's noise.
- **Off the notes** (`off_partial_dbfs`): the mean power of those same cells, loud ones included: all the
  clip holds that its notes do not explain (wrong notes, a drone in a rest, hiss), in dB against the
  reference's, which has its own share (each pluck's noise, the soundfont's body resonance).
- **Quietest second** (`quietest_second_db`): the RMS level of the quietest whole second (a 1 s window
  every 0.25 s, its mean removed: an offset is not heard), in dBFS, no lower than -100 dBFS (silence);
  a noise floor, or a drone in a rest, shows here as a level the reference never falls to.
- **Whistles** (`whistle_seconds`): 50 ms windows (louder than -50 dBFS) in which one narrow band
  (100 Hz) above WHISTLE_HZ holds at least WHISTLE_SHARE of the window's power and is more than
  WHISTLE_DB louder than the reference's same band: a loud high partial the renderer does not play.
  Calibration: the reference against itself scores 0; white noise at -40 dBFS spreads its power over
  every band and scores 0; a 4.1 kHz sine at -29 dBFS under a chorale scores its length. The shipped
  model's first 15 s of five test chorales: 2.4 s (3.2 % of the time; the 10 dB threshold would count
  9 %, most of it upper partials of sounding notes played 10-20 dB louder than the renderer plays them).
  This replaces the one-off `scripts/find_whistles.py` (the share of all power above 3 kHz).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from wavegen.data.conditioning import KEY_HZ, partial_distance
from wavegen.notes.text import LOWEST_PITCH, Note

N_FFT_S = 0.128
HOP_S = 0.01
RELEASE_S = 0.3
PARTIAL_WIDTH_HZ = 20.0  # at least this either side of a partial (about 2.5 bins of the 128 ms window) ...
PARTIAL_WIDTH_CENTS = 35.0  # ... or this, whichever is wider (harpsichord partials stretch a little)
FLOOR_DB = -140.0  # the level of digital silence, so that log(0) never appears
FLOOR_PERCENTILE = 20
LEVEL_FLOOR_DB = -100.0  # a level this low is silence: 16-bit audio's own quantization noise is -101 dBFS

WHISTLE_WINDOW_S = 0.05
WHISTLE_HZ = 2000.0
WHISTLE_BAND_BINS = 2  # the band: the strongest bin and this many either side (20 Hz bins)
WHISTLE_SHARE = 0.05
WHISTLE_DB = 20.0
WHISTLE_MIN_RMS = 0.003  # -50 dBFS: a window quieter than this whistles at no one


def _db(power: float) -> float:
    return float(max(FLOOR_DB, 10 * np.log10(power))) if power > 0 else FLOOR_DB


def _stft_power(audio: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(frames, bins) power spectra scaled so that a full-scale sine's partial sums to 0.5 (its mean
    square), with the bin frequencies and the hop in seconds."""
    n = int(N_FFT_S * sample_rate_hz)
    hop = int(HOP_S * sample_rate_hz)
    x = np.asarray(audio, dtype=np.float64)
    if len(x) < n:
        x = np.pad(x, (0, n - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
    window = np.hanning(n)
    spec = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    spec *= 2.0 / (n * np.sum(window**2))  # Parseval: the bins of a frame sum to its windowed mean square
    return spec, np.fft.rfftfreq(n, 1 / sample_rate_hz), hop / sample_rate_hz


@functools.cache
def _masks(n_fft: int, sample_rate_hz: int) -> np.ndarray:
    return key_masks(np.fft.rfftfreq(n_fft, 1 / sample_rate_hz))


def key_masks(freqs: np.ndarray) -> np.ndarray:
    """(88, bins) boolean: the bins near each key's partials."""
    return partial_distance(freqs, PARTIAL_WIDTH_HZ, PARTIAL_WIDTH_CENTS) <= 1.0


def off_partial_cells(audio: np.ndarray, sample_rate_hz: int, notes: Sequence[Note]) -> tuple[np.ndarray, int]:
    """The power (full-scale sine = 0.5) of every time-frequency cell off the sounding keys' partials, and
    how many frames there are."""
    spec, freqs, hop_s = _stft_power(audio, sample_rate_hz)
    masks = _masks(int(N_FFT_S * sample_rate_hz), sample_rate_hz)
    start = np.arange(len(spec)) * hop_s  # each frame's window: [start, start + N_FFT_S)
    sounding = np.zeros((len(spec), 88), dtype=bool)
    for nt in notes:
        sounding[(start + N_FFT_S > nt.start) & (start < nt.end + RELEASE_S), nt.pitch - 21] = True
    off = np.ones_like(spec, dtype=bool)
    chords, which = np.unique(sounding, axis=0, return_inverse=True)  # few distinct chords: mask each once
    for c, chord in enumerate(chords):
        if chord.any():
            off[which.ravel() == c] &= ~np.any(masks[chord], axis=0)
    off[:, freqs < 25] = False
    return spec[off], len(spec)


def levels(audio: np.ndarray, sample_rate_hz: int, notes: Sequence[Note]) -> tuple[float, float]:
    """(floor, off the notes) in dB, full scale 0, from one pass over the cells: the FLOOR_PERCENTILE-th
    percentile of the cells off the sounding partials (the quiet ones between them), and their mean power
    per frame -- everything the notes do not explain, loud or quiet (wrong notes, a drone in a rest,
    hiss). The reference has its share of both (the pluck, the soundfont's body): compare the two."""
    cells, n_frames = off_partial_cells(audio, sample_rate_hz, notes)
    if not len(cells):
        return FLOOR_DB, FLOOR_DB
    floor = float(max(FLOOR_DB, np.percentile(10 * np.log10(cells + 1e-30), FLOOR_PERCENTILE)))
    return floor, _db(float(cells.sum()) / max(1, n_frames))


def off_partial_dbfs(audio: np.ndarray, sample_rate_hz: int, notes: Sequence[Note]) -> float:
    """The mean power of the cells off the sounding partials (see `levels`)."""
    return levels(audio, sample_rate_hz, notes)[1]


def floor_dbfs(audio: np.ndarray, sample_rate_hz: int, notes: Sequence[Note]) -> float:
    """The level of the quiet cells between the sounding partials (see `levels`)."""
    return levels(audio, sample_rate_hz, notes)[0]


def quietest_second_db(audio: np.ndarray, sample_rate_hz: int) -> float:
    """The level in dBFS of the quietest 1 s window (stepped by 0.25 s; the whole clip when shorter): the
    RMS about the window's mean, since an offset (DC) is not heard, and no lower than LEVEL_FLOOR_DB."""
    x = np.asarray(audio, dtype=np.float64)
    n = min(sample_rate_hz, len(x))
    if n == 0:
        return LEVEL_FLOOR_DB
    c1, c2 = (np.concatenate([[0.0], np.cumsum(v)]) for v in (x, x**2))
    starts = np.arange(0, len(x) - n + 1, max(1, n // 4))
    mean = (c1[starts + n] - c1[starts]) / n
    var = (c2[starts + n] - c2[starts]) / n - mean**2
    return float(max(LEVEL_FLOOR_DB, 10 * np.log10(max(float(np.min(var)), 1e-30))))


def _window_power(audio: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 50 ms window: the power spectrum, the bin frequencies, the RMS."""
    n = int(WHISTLE_WINDOW_S * sample_rate_hz)
    x = np.asarray(audio, dtype=np.float64)
    k = len(x) // n
    frames = x[: k * n].reshape(k, n)
    power = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2
    return power, np.fft.rfftfreq(n, 1 / sample_rate_hz), np.sqrt(np.mean(frames**2, axis=1))


def whistle_times(audio: np.ndarray, reference: np.ndarray, sample_rate_hz: int) -> list[float]:
    """Start times (s) of the 50 ms windows that whistle (see the module docstring)."""
    g, freqs, rms = _window_power(audio, sample_rate_hz)
    r, _, _ = _window_power(reference, sample_rate_hz)
    m = min(len(g), len(r))
    g, r, rms = g[:m], r[:m], rms[:m]
    high = freqs > WHISTLE_HZ
    w = WHISTLE_BAND_BINS
    kernel = np.ones(2 * w + 1)
    band_g = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), 1, g)
    band_r = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), 1, r)
    total = g.sum(axis=1, keepdims=True) + 1e-20
    loud = (band_g >= WHISTLE_SHARE * total) & (band_g > band_r * 10 ** (WHISTLE_DB / 10)) & high
    hits = loud.any(axis=1) & (rms > WHISTLE_MIN_RMS)
    return [float(i * WHISTLE_WINDOW_S) for i in np.flatnonzero(hits)]


def whistle_seconds(audio: np.ndarray, reference: np.ndarray, sample_rate_hz: int) -> float:
    return len(whistle_times(audio, reference, sample_rate_hz)) * WHISTLE_WINDOW_S


def harmonic_share(audio: np.ndarray, sample_rate_hz: int, pitch: int, start_s: float = 0.1, end_s: float = 1.0,
                   harmonics: int = 8, cents: float = 50.0) -> float:
    """The share of a held note's energy (from start_s to end_s) within `cents` of the first `harmonics`
    harmonics of MIDI `pitch`: about 0.8-1.0 for a harpsichord (its higher partials hold the rest); a
    whistle -- a loud partial off the harmonics or above them -- takes its energy away
    (scripts/held_notes.py, tests/test_shipped.py)."""
    x = np.asarray(audio, dtype=np.float64)[int(start_s * sample_rate_hz):int(end_s * sample_rate_hz)]
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    hz = np.fft.rfftfreq(len(x), 1 / sample_rate_hz)
    f0 = KEY_HZ[pitch - LOWEST_PITCH]
    near = np.zeros(len(hz), dtype=bool)
    for k in range(1, harmonics + 1):
        near |= np.abs(1200 * np.log2(np.maximum(hz, 1.0) / (k * f0))) < cents
    total = float(power.sum())
    return float(power[near].sum() / total) if total > 0 else 0.0


def measures(generated: np.ndarray, reference: np.ndarray, sample_rate_hz: int,
             notes: Sequence[Note]) -> dict[str, float]:
    """The report's sound measures of one clip (see the module docstring)."""
    (gen_floor, gen_off), (ref_floor, ref_off) = (levels(x, sample_rate_hz, notes) for x in (generated, reference))
    gen_quiet, ref_quiet = (quietest_second_db(x, sample_rate_hz) for x in (generated, reference))
    return {
        "noise_floor_db": gen_floor - ref_floor, "floor_dbfs": gen_floor, "reference_floor_dbfs": ref_floor,
        "off_partial_db": gen_off - ref_off, "off_partial_dbfs": gen_off, "reference_off_partial_dbfs": ref_off,
        "quietest_second_db": gen_quiet - ref_quiet, "quietest_second_dbfs": gen_quiet,
        "reference_quietest_second_dbfs": ref_quiet,
        "whistle_seconds": whistle_seconds(generated, reference, sample_rate_hz),
    }
