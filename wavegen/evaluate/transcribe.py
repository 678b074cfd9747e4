"""A simple, documented transcriber: harpsichord audio -> notes, to measure whether generated audio plays
the notes of its sketch.

1. A constant-Q spectrogram, 3 bins per semitone from A0, hop 10 ms.
2. Per-key templates learned from the reference renderer's audio: each of the 88 keys rendered alone,
   its spectrum averaged over the first 250 ms of the note and scaled to unit length.
3. Non-negative activations of the templates for every frame (multiplicative updates with the templates
   fixed, 60 iterations): activation[k, f] is how much of key k's spectrum frame f holds.
4. Activations are smoothed over 50 ms. A key starts sounding when its activation exceeds a threshold
   and stops when it falls below half of it (hysteresis); the threshold is calibrated on reference
   renderings of known notes (the frame F1 it gives there is the best on a grid).
5. An onset is a frame where the key starts sounding, or where its activation doubles over its minimum
   in the previous 50 ms (a restruck key); at most one onset per key per 100 ms.
Settings chosen on held-out chorales' reference renderings (onset F1 about 0.85, frame F1 0.8 there).

Scores compare with the sketch's notes and are mir_eval's, the library the field reports with, so they
compare with published numbers: onset precision / recall / F1 from
`mir_eval.transcription.precision_recall_f1_overlap` (a maximum one-to-one matching; same key within a
quarter tone, onsets within 50 ms, offsets ignored), and frame precision / recall / F1 from
`mir_eval.multipitch.metrics` on the 10 ms frame grid. As in mir_eval, a side with no notes at all scores
0. The same transcriber on the reference rendering gives the ceiling.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wavegen.notes.text import LOWEST_PITCH, N_KEYS, Note

BINS_PER_KEY = 3
HOP_S = 0.01
ONSET_TOLERANCE_S = 0.05
TEMPLATE_WINDOW_S = (0.02, 0.25)
THRESHOLDS = np.geomspace(0.005, 5.0, 49)
SMOOTH_S = 0.05
OFF_RATIO = 0.5
MIN_ONSET_GAP_S = 0.1


def _hop(sample_rate_hz: int) -> int:
    return int(round(HOP_S * sample_rate_hz / 32)) * 32 or 32  # librosa's CQT wants hops divisible by 2^octaves


def spectrogram(audio: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, float]:
    """(n_bins, frames) CQT magnitudes and the hop in seconds."""
    import librosa

    hop = _hop(sample_rate_hz)
    fmin = librosa.midi_to_hz(LOWEST_PITCH) / 2 ** (1 / (2 * 12))  # centre bin 1 of each key on the key
    top = librosa.hz_to_midi(sample_rate_hz / 2 * 0.9)
    n_bins = int(min(N_KEYS, top - LOWEST_PITCH)) * BINS_PER_KEY
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < hop * 4:
        audio = np.pad(audio, (0, hop * 4 - len(audio)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        c = np.abs(librosa.cqt(audio, sr=sample_rate_hz, hop_length=hop, fmin=fmin, n_bins=n_bins,
                               bins_per_octave=12 * BINS_PER_KEY))
    return c.astype(np.float32), hop / sample_rate_hz


@dataclass
class Transcriber:
    templates: np.ndarray  # (n_bins, 88), unit-length columns
    threshold: float
    sample_rate_hz: int

    def activations(self, audio: np.ndarray) -> tuple[np.ndarray, float]:
        """(88, frames) non-negative activations and the hop in seconds."""
        V, hop_s = spectrogram(audio, self.sample_rate_hz)
        W = self.templates
        H = np.full((W.shape[1], V.shape[1]), 1e-3, dtype=np.float32)
        WtV = W.T @ V
        WtW = W.T @ W
        for _ in range(60):
            H *= WtV / (WtW @ H + 1e-9)
        return H, hop_s

    def transcribe(self, audio: np.ndarray) -> tuple[list[tuple[int, float]], np.ndarray, np.ndarray, float]:
        """Onsets as (pitch, seconds) pairs, the frame roll (88, frames), smoothed activations, hop."""
        H, hop_s = self.activations(audio)
        H = smooth(H, hop_s)
        roll = hysteresis(H, self.threshold)
        return onsets_from(H, roll, hop_s), roll, H, hop_s


def smooth(H: np.ndarray, hop_s: float) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(H, max(1, int(round(SMOOTH_S / hop_s))), axis=1)


def hysteresis(H: np.ndarray, threshold: float) -> np.ndarray:
    """On above the threshold, off below half of it."""
    roll = np.zeros(H.shape, dtype=bool)
    state = np.zeros(H.shape[0], dtype=bool)
    for f in range(H.shape[1]):
        state = np.where(state, H[:, f] > threshold * OFF_RATIO, H[:, f] > threshold)
        roll[:, f] = state
    return roll


def onsets_from(H: np.ndarray, roll: np.ndarray, hop_s: float) -> list[tuple[int, float]]:
    look = max(1, int(round(0.05 / hop_s)))
    gap = max(1, int(round(MIN_ONSET_GAP_S / hop_s)))
    out = []
    for k in range(roll.shape[0]):
        last = -gap
        for f in np.nonzero(roll[k])[0]:
            starts = f == 0 or not roll[k, f - 1]
            prev_min = H[k, max(0, f - look) : f].min() if f else 0.0
            jumps = f > 0 and H[k, f] > 2.0 * prev_min and H[k, f] > H[k, f - 1]
            if (starts or jumps) and f - last >= gap:
                out.append((LOWEST_PITCH + k, f * hop_s))
                last = f
    return out


def reference_roll(notes: Sequence[Note], n_frames: int, hop_s: float) -> np.ndarray:
    """(88, n_frames) bool: a key sounds in a frame when one of its notes covers the frame's start."""
    roll = np.zeros((N_KEYS, n_frames), dtype=bool)
    t = np.arange(n_frames) * hop_s
    for n in notes:
        roll[n.pitch - LOWEST_PITCH, (t >= n.start) & (t < n.end)] = True
    return roll


def _hz(pitches: Sequence[int]) -> np.ndarray:
    import mir_eval

    return mir_eval.util.midi_to_hz(np.asarray(pitches, dtype=np.float64))


def onset_scores(est: Sequence[tuple[int, float]], ref: Sequence[tuple[int, float]],
                 tolerance_s: float = ONSET_TOLERANCE_S) -> tuple[float, float, float]:
    """Onset precision, recall and F1 of (pitch, seconds) onsets: mir_eval's maximum one-to-one matching of
    notes of the same key whose onsets lie within the tolerance. Each onset is scored as a note one frame
    long (offsets are ignored)."""
    import mir_eval

    def intervals(onsets: Sequence[tuple[int, float]]) -> np.ndarray:
        t = np.array([s for _, s in onsets], dtype=np.float64).reshape(-1)
        return np.stack([t, t + HOP_S], axis=1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # mir_eval warns about an empty side, which scores 0
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            intervals(ref), _hz([k for k, _ in ref]), intervals(est), _hz([k for k, _ in est]),
            onset_tolerance=tolerance_s, offset_ratio=None)
    return float(p), float(r), float(f)


def frame_scores(est_roll: np.ndarray, ref_roll: np.ndarray, hop_s: float) -> tuple[float, float, float]:
    """Frame precision, recall and F1 of two (88, frames) rolls on the same grid, by
    `mir_eval.multipitch.metrics` (a key sounding in a frame of both counts once)."""
    import mir_eval

    if est_roll.shape != ref_roll.shape:
        raise ValueError(f"rolls of different shapes: {est_roll.shape} and {ref_roll.shape}")
    hz = _hz(range(LOWEST_PITCH, LOWEST_PITCH + N_KEYS))
    times = np.arange(ref_roll.shape[1]) * hop_s

    def freqs(roll: np.ndarray) -> list[np.ndarray]:
        return [hz[np.flatnonzero(roll[:, f])] for f in range(roll.shape[1])]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # as for onsets: an empty side scores 0
        p, r = mir_eval.multipitch.metrics(times, freqs(ref_roll), times, freqs(est_roll))[:2]
    return float(p), float(r), float(mir_eval.util.f_measure(p, r))


def _frame_f1_by_counting(est_roll: np.ndarray, ref_roll: np.ndarray) -> float:
    """`frame_scores`' F1 by counting coinciding cells (the same number for exact keys on one grid, checked
    in tests/test_evaluate.py): the threshold search needs it 49 times a clip, where mir_eval's per-frame
    matching takes 0.2 s for 15 s of music."""
    tp, n_est, n_ref = int(np.count_nonzero(est_roll & ref_roll)), int(est_roll.sum()), int(ref_roll.sum())
    return 2 * tp / (n_est + n_ref) if tp else 0.0


@dataclass
class NoteScores:
    onset_precision: float
    onset_recall: float
    onset_f1: float
    frame_f1: float


def score(transcriber: Transcriber, audio: np.ndarray, notes: Sequence[Note]) -> NoteScores:
    """How well `audio` plays `notes`: mir_eval's onset scores (exact key, 50 ms) and frame F1."""
    est_onsets, roll, _, hop_s = transcriber.transcribe(audio)
    ref_roll = reference_roll(notes, roll.shape[1], hop_s)
    duration = roll.shape[1] * hop_s
    ref_onsets = [(n.pitch, n.start) for n in notes if n.start < duration]
    p, r, f = onset_scores(est_onsets, ref_onsets)
    return NoteScores(p, r, f, frame_scores(roll, ref_roll, hop_s)[2])


def score_notes(est: Sequence[Note], notes: Sequence[Note], seconds: float) -> NoteScores:
    """`score` for a transcriber that gives notes (basicpitch.py): the same metrics on the same grid."""
    n_frames = int(np.ceil(seconds / HOP_S))
    ref_onsets = [(n.pitch, n.start) for n in notes if n.start < seconds]
    p, r, f = onset_scores([(n.pitch, n.start) for n in est if n.start < seconds], ref_onsets)
    frame = frame_scores(reference_roll(est, n_frames, HOP_S), reference_roll(notes, n_frames, HOP_S), HOP_S)[2]
    return NoteScores(p, r, f, frame)


def learn_templates(sample_rate_hz: int, soundfont: str | None = None) -> np.ndarray:
    """(n_bins, 88): each key rendered alone by the reference renderer, its spectrum averaged."""
    from wavegen.notes.render import render_notes

    spacing = 0.8
    notes = [Note(LOWEST_PITCH + k, k * spacing, k * spacing + 0.5) for k in range(N_KEYS)]
    audio = render_notes(notes, sample_rate_hz=sample_rate_hz, soundfont=soundfont).audio
    V, hop_s = spectrogram(audio, sample_rate_hz)
    W = np.zeros((V.shape[0], N_KEYS), dtype=np.float32)
    for k in range(N_KEYS):
        a = int((k * spacing + TEMPLATE_WINDOW_S[0]) / hop_s)
        b = int((k * spacing + TEMPLATE_WINDOW_S[1]) / hop_s)
        W[:, k] = V[:, a:b].mean(axis=1)
    return W / (np.linalg.norm(W, axis=0, keepdims=True) + 1e-9)


def calibrate(templates: np.ndarray, sample_rate_hz: int, examples: Sequence[tuple[np.ndarray, Sequence[Note]]]) -> float:
    """The threshold with the best mean frame F1 on reference renderings of known notes."""
    best, best_f = float(THRESHOLDS[0]), -1.0
    prepared = []
    probe = Transcriber(templates, 0.0, sample_rate_hz)
    for audio, notes in examples:
        H, hop_s = probe.activations(audio)
        H = smooth(H, hop_s)
        prepared.append((H, reference_roll(notes, H.shape[1], hop_s)))
    for th in THRESHOLDS:
        fs = []
        for H, ref in prepared:
            fs.append(_frame_f1_by_counting(hysteresis(H, th), ref))
        if np.mean(fs) > best_f:
            best, best_f = float(th), float(np.mean(fs))
    return best


def build(sample_rate_hz: int, examples: Sequence[tuple[np.ndarray, Sequence[Note]]],
          soundfont: str | None = None) -> Transcriber:
    templates = learn_templates(sample_rate_hz, soundfont)
    return Transcriber(templates, calibrate(templates, sample_rate_hz, examples), sample_rate_hz)
