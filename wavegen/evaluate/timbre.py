"""Which harpsichord a clip sounds like: a spectral distance between the timbre of a clip and a reference
rendering of the same notes, and the nearest of several references (one per timbre, `notes/render.py`).

**The distance** (`timbre_distance`, in dB; 0 for a clip against itself). The clip and the reference are
cut to the shorter of the two, then each gets a mel power spectrogram (N_MELS bands up to Nyquist, Hann
windows of N_FFT_S with a quarter-window hop; librosa's). Loudness is not timbre: the SoundFonts differ
in level by up to 7 dB, and a model need not play at the renderer's level. So each spectrogram is put in
dB against its own level (its mean cell power over the compared frames), and floored FLOOR_DB below it.

- The compared frames are those where the reference sounds: within GATE_DB of its loudest frame.
- In each frame the compared cells are the bands where the reference is within BAND_DB of that frame's
  loudest band: the partials that make the frame's sound. Hiss, and the decay of what the reference no
  longer plays, lie under them; a band the reference leaves quiet says more about noise than timbre.
- A frame's distance is the RMS over those cells of the difference of the two, less its mean over the
  cells (the frame's loudness; a struck note's velocity, a decay a little faster or slower); the
  distance is the median over the frames, so that the few frames a missing or wrong note changes (the
  note measures count those) do not move it.
- A frame where the clip is silent (its power in the compared cells more than GATE_DB under the
  reference's) holds no timbre and is left out (the note measures count what is missing). A clip
  silent in every frame, or below SILENCE_DBFS, or with no samples, scores SILENT_DB; a reference that
  is silent itself scores 0 against a silent clip and SILENT_DB against one that is not.

The distance is not symmetric: the reference decides the cells. `nearest_timbre` compares a clip with
the rendering of its notes by each timbre and names the nearest.

**Calibration** (`scripts/calibrate_timbre.py`; docs/evaluation/timbre.md has the table): the 16 sketches of
data/sketches and 5 test chorales, their first 15 s at 16 kHz, each rendered by the three TIMBRES.
- A rendering scores 0 against itself, and against itself 6 dB softer.
- fluidr3 against timgm6mb: median 5.6 dB (a fluidr3 clip against timgm6mb's rendering) and 7.3 dB (the
  other way); the lowest clip 2.95 dB (single notes C6-C8: high partials are few and alike).
- musescore-coupled (MuseScore General's bank-8 Coupled Harpsichord) against fluidr3: 4.8 dB (lowest 3.4),
  against timgm6mb 5.8 dB (3.0): a third harpsichord; every perturbed copy below of it is nearest it too.
- fluidr3 against musescore: 0.05 dB. MuseScore_General's harpsichord is FluidR3's samples about 7 dB
  softer (waveform correlation 0.9999): one harpsichord at two levels, which no timbre measure tells apart.
- A copy of one timbre's rendering, its distance from that rendering (median, max): white noise at
  -60 dBFS 0.04, 0.44 dB; at -40 dBFS 0.46, 3.76; at -30 dBFS 1.45, 5.36; 10 ms late 0.85, 1.50; through
  8-bit mu-law 0.03, 0.05; 10 % of the notes missing 0.00, 1.73; 5 % of them a semitone or two off 0.00,
  0.02; all at once (notes, -40 dBFS noise, late, 6 dB softer, mu-law) 1.48, 4.94. Every copy (63 of 63
  of each kind) is nearer its own harpsichord than the other one, on its worst clip by 1.49 dB (noise at
  -40 dBFS), 0.48 dB (at -30 dBFS) and 0.66 dB (all at once).
- Silence scores SILENT_DB (30); white noise alone at -20 dBFS 6.2 dB (median); another clip's notes
  by the same timbre 10 dB: the notes must be the reference's.
- BAND_DB (`--band-db`), from 15, 20, 25, 30, 35 dB: the two harpsichords' lowest distance 2.14, 2.95,
  3.20, 3.41, 3.81 dB; white noise alone 5.1, 6.2, 7.2, 8.0, 8.9 dB; the worst margin at -30 dBFS noise
  +0.71, +0.48, -0.20, -0.79, -0.61 dB (2, 4, 5 of 63 copies nearer the other harpsichord from 25 dB on).
  20 dB is the widest that keeps every copy on its own side (15 dB does too, with the harpsichords
  closer and noise alone nearer to a harpsichord than they are to each other). Every band (80 dB, a plain
  log-mel distance) lets the noise in: at -40 dBFS it moves a rendering by up to 16.8 dB and 10 copies of
  63 are nearer the other harpsichord (4 at -60 dBFS).
- Found while choosing (at 30 dB, before the -30 dBFS row): the mean over frames instead of the median
  moved a copy missing 10 % of its notes by up to 6.7 dB instead of 1.6. The long-term average spectrum
  (the mean spectrum of the sounding frames, compared once) was blind to a 10 ms delay but moved by up
  to 12 dB with 10 % of the notes missing (a prototype on 18 clips): its average is over the notes
  played, so note errors read as timbre.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

N_FFT_S = 0.064  # 1024 samples at 16 kHz: 15.6 Hz bins, fine enough for the lowest of 64 mel bands
N_MELS = 64
FLOOR_DB = 80.0  # cells no lower than this under the spectrogram's level
GATE_DB = 40.0  # frames compared: the reference within this of its loudest frame
BAND_DB = 20.0  # cells compared: the reference within this of its frame's loudest band
SILENT_DB = 30.0  # a silent clip: further than any two harpsichords (see the calibration)
SILENCE_DBFS = -100.0  # an RMS this low is digital silence (as in evaluate/sound.py)


def _mel_power(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """(frames, N_MELS) float64 mel power spectrogram of mono audio."""
    import librosa

    n_fft = int(round(N_FFT_S * sample_rate_hz))
    x = np.asarray(audio, dtype=np.float32)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    s = librosa.feature.melspectrogram(y=x, sr=sample_rate_hz, n_fft=n_fft, hop_length=n_fft // 4,
                                       n_mels=N_MELS, fmax=sample_rate_hz / 2, power=2.0)
    return s.T.astype(np.float64)


def _is_silent(x: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) < 10 ** (SILENCE_DBFS / 20)


def _mono(audio: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"{what}: expected mono audio of shape (samples,), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: holds non-finite samples")
    return x


def timbre_distance(audio: np.ndarray, reference: np.ndarray, sample_rate_hz: int, *,
                    band_db: float = BAND_DB) -> float:
    """The distance in dB between the timbre of `audio` and that of `reference`, a rendering of the same
    notes at the same times (see the module docstring). Both mono float (samples,) at `sample_rate_hz`,
    compared over the shorter; 0 for a clip against itself, SILENT_DB for a silent clip. `band_db`: the
    cells compared (BAND_DB; the calibration tries others)."""
    a, r = _mono(audio, "audio"), _mono(reference, "reference")
    n = min(len(a), len(r))
    if n == 0:
        return SILENT_DB
    a, r = a[:n], r[:n]
    if _is_silent(r):
        return 0.0 if _is_silent(a) else SILENT_DB
    if _is_silent(a):
        return SILENT_DB
    spec_a, spec_r = _mel_power(a, sample_rate_hz), _mel_power(r, sample_rate_hz)
    frame_r = spec_r.sum(axis=1)
    sounding = frame_r >= frame_r.max() * 10 ** (-GATE_DB / 10)
    if not spec_a[sounding].any():  # the clip sounds only where the reference does not
        return SILENT_DB

    def db(spec: np.ndarray) -> np.ndarray:  # (frames, bands) dB against the mean cell power of the frames
        level = spec[sounding].mean()
        return np.maximum(10 * np.log10(np.maximum(spec[sounding], 1e-30) / level), -FLOOR_DB)

    clip, ref = db(spec_a), db(spec_r)
    cells = ref >= ref.max(axis=1, keepdims=True) - band_db  # (frames, bands); each frame's loudest band at least
    count = cells.sum(axis=1)
    power = np.where(cells, 10 ** (clip / 10), 0.0).sum(axis=1), np.where(cells, 10 ** (ref / 10), 0.0).sum(axis=1)
    heard = power[0] >= power[1] * 10 ** (-GATE_DB / 10)
    if not heard.any():
        return SILENT_DB
    diff = np.where(cells, clip - ref, 0.0)
    diff -= (diff.sum(axis=1) / count)[:, None]  # the frame's loudness is not its timbre
    per_frame = np.sqrt(np.where(cells, diff**2, 0.0).sum(axis=1) / count)
    return float(np.median(per_frame[heard]))


def nearest_timbre(audio: np.ndarray, references: Mapping[str, np.ndarray], sample_rate_hz: int, *,
                   band_db: float = BAND_DB) -> tuple[str, dict[str, float]]:
    """(the name of the reference nearest to `audio` by `timbre_distance`, every name's distance in dB).
    `references`: timbre name -> the rendering of the clip's notes by that timbre; the first name wins
    a tie."""
    if not references:
        raise ValueError("nearest_timbre: no references to compare with")
    distances = {name: timbre_distance(audio, ref, sample_rate_hz, band_db=band_db) for name, ref in references.items()}
    return min(distances, key=distances.__getitem__), distances
