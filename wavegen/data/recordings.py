"""Recordings with their notes: audio that was played, not rendered, beside the MIDI of what was played.

Two layouts are read (`wavegen data build --pairs DIR | --maestro DIR`):

    pairs     every audio file below DIR (WAV, FLAC, OGG, MP3, AIFF: what libsndfile reads) with a MIDI file
              of the same name beside it (`take1.flac` + `take1.mid`); one without the other is skipped
    maestro   the MAESTRO layout: `maestro-vX.Y.Z.csv` (or its `.json`) in DIR, each row naming a MIDI and an
              audio file below DIR and the row's split (train, validation, test), which is kept

The notes are a performance: read with the sustain pedal (a note released under the pedal sounds on until
it lifts, notes/midi.py) and the velocities, kept as a (n_ticks, 88) uint8 roll beside the 88-key text
(`text.velocity_roll`). The audio becomes mono at the dataset's rate (`wavegen.audio.read_recording`).

**Alignment is checked, not assumed** (`align`): the audio's onsets in semitone bands (a frame every
`hop_ms`) are cross-correlated with the notes' onsets in the bands of their harmonics, over lags within
`search_ms`; the peak is the lag, and the confidence is how many standard deviations it stands above the
correlation at the other lags. The lag is then refined on librosa's broadband onset strength (between
frames by a parabola). `build` corrects a lag within its bound
by shifting the *audio* by whole samples (the notes stay as the MIDI has them, quantised to ticks like any
MIDI file), and skips a pair whose lag is beyond the bound or whose confidence is below the threshold:
notes that do not match the sound. The threshold is calibrated in docs/data.md.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavegen.data.corpora import Source, _piece_name
from wavegen.errors import WavegenError
from wavegen.notes import text as T

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
PAIR_MIDI_SUFFIXES = (".mid", ".midi")
USER_SUPPLIED = "user-supplied"
MAESTRO_LICENCE = ("CC BY-NC-SA 4.0: the MAESTRO dataset (Hawthorne et al. 2019, Google Magenta), "
                   "https://magenta.tensorflow.org/datasets/maestro")
MAESTRO_SPLITS = {"train": "train", "validation": "valid", "test": "test"}
MAESTRO_COLUMNS = ("split", "midi_filename", "audio_filename", "duration")


# ---------------------------------------------------------------------------------------------
# finding the pairs


def pair_sources(folder: str | os.PathLike, *, style: str = "pairs",
                 licence: str = USER_SUPPLIED) -> tuple[list[Source], list[dict]]:
    """Every audio file below `folder` with a MIDI file of the same name beside it, a piece each (named by
    its path). Returns (sources, skipped): an audio file without its MIDI, or a MIDI file without its
    audio, is skipped with the reason."""
    root = Path(folder)
    if not root.is_dir():
        raise WavegenError(f"{root}: no such folder of recordings")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    audio = [p for p in files if p.suffix.lower() in AUDIO_SUFFIXES]
    midi = [p for p in files if p.suffix.lower() in PAIR_MIDI_SUFFIXES]
    if not audio and not midi:
        raise WavegenError(f"{root}: holds no audio files ({', '.join(AUDIO_SUFFIXES)}) with MIDI files beside them")
    midi_of: dict[Path, Path] = {}
    for m in midi:
        midi_of.setdefault(m.with_suffix(""), m)  # take1.mid before take1.midi
    sources, skipped, paired = [], [], set()
    for a in audio:
        m = midi_of.get(a.with_suffix(""))
        if m is None:
            skipped.append({"source": str(a), "reason": f"{a}: no MIDI file of the same name beside it "
                            f"({a.with_suffix('.mid').name}); add one to build it"})
            continue
        paired.add(m)
        sources.append(Source(piece=_piece_name(str(a.relative_to(root).with_suffix("")).replace(os.sep, "__")),
                              path=str(m), kind="recording", style=style, licence=licence, audio=str(a)))
    audio_stems = {a.with_suffix("") for a in audio}
    for m in midi:
        if m not in paired and m.with_suffix("") not in audio_stems:
            skipped.append({"source": str(m), "reason": f"{m}: no audio file of the same name beside it "
                            f"({', '.join(AUDIO_SUFFIXES)}); add one to build it"})
    return sources, skipped


def maestro_table(folder: Path) -> tuple[Path, list[dict]]:
    """The rows of a MAESTRO folder's metadata: `maestro-v*.csv`, else `maestro-v*.json` (both layouts of
    its JSON: one object of columns keyed by row number, or a list of rows)."""
    found = sorted(folder.glob("maestro-v*.csv")) or sorted(folder.glob("maestro-v*.json"))
    if not found:
        raise WavegenError(f"{folder}: no maestro-vX.Y.Z.csv or .json here; give the folder MAESTRO unpacks to")
    if len(found) > 1:
        raise WavegenError(f"{folder}: several MAESTRO tables ({', '.join(p.name for p in found)}); keep one")
    path = found[0]
    try:
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):  # {column: {row: value}}
                keys = sorted(next(iter(data.values()), {}), key=int)
                rows = [{col: data[col].get(k) for col in data} for k in keys]
            else:
                rows = list(data)
    except (OSError, ValueError, TypeError, AttributeError, csv.Error) as e:
        raise WavegenError(f"{path}: not a readable MAESTRO table ({e})") from None
    missing = [c for c in MAESTRO_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise WavegenError(f"{path}: {'no rows' if not rows else 'no column ' + ', '.join(missing)}; "
                           "expected MAESTRO's columns " + ", ".join(MAESTRO_COLUMNS))
    return path, rows


def maestro_sources(folder: str | os.PathLike, *, style: str = "maestro",
                    licence: str = MAESTRO_LICENCE) -> tuple[list[Source], list[dict]]:
    """The pieces of a MAESTRO folder with the split of its table (validation -> valid). Returns (sources,
    skipped): a row whose MIDI or audio file is missing, or whose split is unknown, is skipped."""
    root = Path(folder)
    if not root.is_dir():
        raise WavegenError(f"{root}: no such MAESTRO folder")
    table, rows = maestro_table(root)
    sources, skipped = [], []
    for i, row in enumerate(rows, 1):
        where = f"{table.name} row {i}"
        midi, audio = root / str(row["midi_filename"] or ""), root / str(row["audio_filename"] or "")
        split = MAESTRO_SPLITS.get(str(row["split"]).strip().lower())
        try:
            seconds = float(row["duration"])
        except (TypeError, ValueError):
            seconds = math.nan
        reason = (f"split {row['split']!r} is not one of {', '.join(MAESTRO_SPLITS)}" if split is None
                  else f"no MIDI file {midi}" if not midi.is_file()
                  else f"no audio file {audio}" if not audio.is_file() else "")
        if reason:
            skipped.append({"source": str(audio), "reason": f"{where}: {reason}; skipped"})
            continue
        sources.append(Source(piece=_piece_name(str(Path(str(row["midi_filename"])).with_suffix(""))
                                                .replace("/", "__").replace(os.sep, "__")),
                              path=str(midi), kind="recording", style=style, licence=licence, audio=str(audio),
                              split=split, seconds=None if math.isnan(seconds) else seconds))
    if not sources and not skipped:
        raise WavegenError(f"{table}: lists no pieces")
    return sources, skipped


# ---------------------------------------------------------------------------------------------
# alignment


@dataclass(frozen=True)
class AlignSettings:
    """The alignment check's analysis; its decisions (the lag bound, the confidence threshold) are
    `BuildSettings` fields."""

    hop_ms: float = 10.0  # one frame of both onset functions
    search_ms: float = 1000.0  # lags tried: -search_ms .. +search_ms
    pitch_fft_ms: float = 64.0  # the window of the pitch bands (semitones resolved from about 200 Hz up)
    onset_fft_ms: float = 16.0  # the window of the broadband onset strength: short, so onsets are not smeared
    refine_ms: float = 50.0  # the broadband lag is sought within this of the pitch bands' lag
    exclude_ms: float = 100.0  # lags this close to the peak are not "other lags" for the confidence
    pitch_sigma_frames: float = 3.0  # the notes' onsets in the pitch bands, spread as the window spreads them
    onset_sigma_frames: float = 1.0


@dataclass(frozen=True)
class Alignment:
    """What `align` found: how late the sound is, and how surely its notes are these."""

    lag_ms: float  # > 0: the sound comes this much after its notes
    confidence: float  # how many standard deviations the correlation at the lag stands above the others
    peak: float  # the normalized correlation of pitch-band onsets at the lag (1 = identical)

    def shift_samples(self, sample_rate_hz: int) -> int:
        return round(self.lag_ms * sample_rate_hz / 1000)


# the harmonics a struck key adds onset energy to, in semitones above it, and their weights: a generic
# string spectrum (harpsichord and piano alike), not a model of either
HARMONICS = {0: 1.0, 12: 0.8, 19: 0.6, 24: 0.5, 28: 0.4, 31: 0.35, 34: 0.3, 36: 0.3}
BAND_LOW, BAND_HIGH = T.LOWEST_PITCH, T.HIGHEST_PITCH + 12  # semitone bands, MIDI 21..120


def _frames(sample_rate_hz: int, hop_ms: float, fft_ms: float) -> tuple[int, int]:
    hop = max(1, round(sample_rate_hz * hop_ms / 1000))
    return hop, 1 << max(6, math.ceil(math.log2(sample_rate_hz * fft_ms / 1000)))


def _band_power(audio: np.ndarray, hop: int, n_fft: int, bank: np.ndarray, chunk_frames: int = 6000) -> np.ndarray:
    """(n_bands, n_frames) float32: power through `bank` (n_bands, n_fft // 2 + 1) of frames centred at
    t * hop, n_frames = 1 + len(audio) // hop, computed a chunk at a time (a half-hour STFT would not fit)."""
    import librosa

    n_frames = 1 + len(audio) // hop
    padded = np.concatenate([np.zeros(n_fft // 2, np.float32), audio, np.zeros(n_fft // 2 + hop, np.float32)])
    out = np.empty((bank.shape[0], n_frames), dtype=np.float32)
    for f0 in range(0, n_frames, chunk_frames):
        nf = min(chunk_frames, n_frames - f0)
        seg = padded[f0 * hop: f0 * hop + (nf - 1) * hop + n_fft]
        spec = np.abs(librosa.stft(seg, n_fft=n_fft, hop_length=hop, center=False)) ** 2
        out[:, f0:f0 + nf] = bank @ spec[:, :nf]
    return out


def onset_strength(audio: np.ndarray, sample_rate_hz: int, settings: AlignSettings = AlignSettings()) -> np.ndarray:
    """(n_frames,) librosa's onset strength (mean positive change of a log-mel spectrogram, in dB), a frame
    every hop_ms, frame t centred at t * hop."""
    import librosa

    hop, n_fft = _frames(sample_rate_hz, settings.hop_ms, settings.onset_fft_ms)
    mel = librosa.filters.mel(sr=sample_rate_hz, n_fft=n_fft, n_mels=32, fmax=min(8000.0, sample_rate_hz / 2))
    S = librosa.power_to_db(_band_power(np.asarray(audio, np.float32), hop, n_fft, mel))
    return librosa.onset.onset_strength(S=S, sr=sample_rate_hz, hop_length=hop, center=False)


def pitch_onsets(audio: np.ndarray, sample_rate_hz: int, settings: AlignSettings = AlignSettings()) -> np.ndarray:
    """(n_bands, n_frames) the positive change of log power in semitone bands MIDI 21..120 (triangular,
    one semitone either side), frame t centred at t * hop."""
    import librosa

    hop, n_fft = _frames(sample_rate_hz, settings.hop_ms, settings.pitch_fft_ms)
    freqs = librosa.fft_frequencies(sr=sample_rate_hz, n_fft=n_fft)
    with np.errstate(divide="ignore"):
        bin_pitch = 69 + 12 * np.log2(np.maximum(freqs, 1e-3) / 440.0)
    bands = np.arange(BAND_LOW, BAND_HIGH + 1)
    bank = np.maximum(0.0, 1.0 - np.abs(bin_pitch[None, :] - bands[:, None])).astype(np.float32)
    logp = np.log1p(10.0 * np.sqrt(_band_power(np.asarray(audio, np.float32), hop, n_fft, bank)))
    return np.maximum(0.0, np.diff(logp, axis=1, prepend=logp[:, :1]))


def onset_train(notes: list[T.Note], n_frames: int, hop_s: float) -> np.ndarray:
    """(n_frames,) float32: the number of note onsets in each frame (frame t centred at t * hop_s)."""
    train = np.zeros(n_frames, dtype=np.float32)
    frames = np.floor(np.array([n.start for n in notes]) / hop_s + 0.5).astype(np.int64)
    np.add.at(train, frames[(frames >= 0) & (frames < n_frames)], 1.0)
    return train


def expected_pitch_onsets(notes: list[T.Note], n_frames: int, hop_s: float) -> np.ndarray:
    """(n_bands, n_frames): each note's onset in the bands of its harmonics (`HARMONICS`)."""
    out = np.zeros((BAND_HIGH - BAND_LOW + 1, n_frames), dtype=np.float32)
    for n in notes:
        f = math.floor(n.start / hop_s + 0.5)
        if 0 <= f < n_frames:
            for up, w in HARMONICS.items():
                if n.pitch + up <= BAND_HIGH:
                    out[n.pitch + up - BAND_LOW, f] += w
    return out


def correlate(sound: np.ndarray, notes: np.ndarray, max_lag: int) -> np.ndarray:
    """(2 * max_lag + 1,) normalized cross-correlation of sound[..., t + lag] with notes[..., t] (1-D or
    (bands, frames), both standardized once, normalized by their energies over the overlap), lag = -max_lag
    .. max_lag frames, through the FFT; 0 where a side is silent."""
    sound, notes = np.atleast_2d(sound).astype(np.float64), np.atleast_2d(notes).astype(np.float64)
    n = min(sound.shape[1], notes.shape[1])
    a, b = sound[:, :n], notes[:, :n]
    if a.std() == 0 or b.std() == 0:
        return np.zeros(2 * max_lag + 1)
    a, b = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    size = 1 << math.ceil(math.log2(n + max_lag + 1))
    spectrum = np.zeros(size // 2 + 1, dtype=np.complex128)
    for row_a, row_b in zip(a, b, strict=True):  # a band at a time: memory stays at one row's FFT
        spectrum += np.fft.rfft(row_a, size) * np.conj(np.fft.rfft(row_b, size))
    full = np.fft.irfft(spectrum, size)  # full[lag mod size] = sum_t a[t + lag] b[t]
    lags = np.arange(-max_lag, max_lag + 1)
    ea, eb = np.concatenate([[0.0], np.cumsum((a * a).sum(axis=0))]), np.concatenate([[0.0], np.cumsum((b * b).sum(axis=0))])
    lo_a, hi_a = np.maximum(0, lags), n + np.minimum(0, lags)  # a's frames in the overlap
    lo_b, hi_b = np.maximum(0, -lags), n - np.maximum(0, lags)
    energy = np.sqrt((ea[hi_a] - ea[lo_a]) * (eb[hi_b] - eb[lo_b]))
    return np.where(energy > 0, full[lags % size] / np.maximum(energy, 1e-12), 0.0)


def _parabola(r: np.ndarray, i: int) -> float:
    """The offset (-0.5 .. 0.5) of the peak of the parabola through r[i - 1], r[i], r[i + 1]."""
    if not 0 < i < len(r) - 1:
        return 0.0
    den = r[i - 1] - 2 * r[i] + r[i + 1]
    return float(np.clip(0.5 * (r[i - 1] - r[i + 1]) / den, -0.5, 0.5)) if den < 0 else 0.0


def align(audio: np.ndarray, sample_rate_hz: int, notes: list[T.Note],
          settings: AlignSettings = AlignSettings()) -> Alignment:
    """How far the sound lags its notes, and how surely these are its notes.

    1. The pitch bands' onsets (`pitch_onsets`) are correlated with the notes' onsets in the bands of
       their harmonics over every lag within search_ms: the peak is the coarse lag, and the confidence is
       how far the peak stands above the correlation at the other lags (more than exclude_ms away), in
       their standard deviations. Notes of another piece match at no lag better than at any other.
    2. The lag is refined within refine_ms of it on the broadband onset strength (`onset_strength`, a
       shorter window: sharper in time), to a fraction of a frame by a parabola through the peak.
    """
    from scipy.ndimage import gaussian_filter1d

    hop_s = settings.hop_ms / 1000
    max_lag = round(settings.search_ms / settings.hop_ms)
    bands = pitch_onsets(audio, sample_rate_hz, settings)
    expected = gaussian_filter1d(expected_pitch_onsets(notes, bands.shape[1], hop_s), settings.pitch_sigma_frames,
                                 axis=1)
    r = correlate(bands, expected, max_lag)
    i = int(np.argmax(r))
    near = round(settings.exclude_ms / settings.hop_ms)
    others = np.concatenate([r[:max(0, i - near)], r[i + near + 1:]])
    spread = float(others.std()) if len(others) > 1 else 0.0
    confidence = (r[i] - float(np.median(others))) / spread if spread > 0 else 0.0

    env = onset_strength(audio, sample_rate_hz, settings)
    train = gaussian_filter1d(onset_train(notes, len(env), hop_s), settings.onset_sigma_frames)
    fine = correlate(env, train, max_lag)
    window = round(settings.refine_ms / settings.hop_ms)
    lo, hi = max(0, i - window), min(len(fine), i + window + 1)
    j = lo + int(np.argmax(fine[lo:hi]))
    lag_frames = j - max_lag + _parabola(fine, j)
    return Alignment(lag_ms=round(lag_frames * settings.hop_ms, 2), confidence=round(float(confidence), 3),
                     peak=round(float(r[i]), 4))


def shift_audio(audio: np.ndarray, samples: int) -> np.ndarray:
    """The audio moved `samples` earlier (> 0: its first samples dropped) or later (< 0: silence before it),
    so that a sound `samples` late lands on its notes."""
    if samples >= 0:
        return audio[samples:]
    return np.concatenate([np.zeros(-samples, dtype=audio.dtype), audio])
