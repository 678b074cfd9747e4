"""Pictures: piano rolls, and spectrograms with the notes drawn over them, on one time axis.

The spectrogram is a constant-Q transform with one bin per piano key (A0 .. C8), so a note's outline
sits exactly on the row of its fundamental.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from wavegen.files import atomic_path
from wavegen.notes.text import HIGHEST_PITCH, LOWEST_PITCH, N_KEYS, Note

_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
SPECTROGRAM_HOP = 256
SPECTROGRAM_RANGE_DB = 60.0


def pitch_name(pitch: int) -> str:
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _key_axis(ax, lo: int, hi: int) -> None:
    cs = [p for p in range(lo, hi + 1) if p % 12 == 0]
    ax.set_yticks([p - LOWEST_PITCH for p in cs], [pitch_name(p) for p in cs])
    ax.set_ylim(lo - LOWEST_PITCH - 0.5, hi - LOWEST_PITCH + 0.5)
    ax.set_ylabel("key")


def pitch_span(notes: Sequence[Note], margin: int = 3) -> tuple[int, int]:
    if not notes:
        return LOWEST_PITCH, HIGHEST_PITCH
    lo = max(LOWEST_PITCH, min(n.pitch for n in notes) - margin)
    hi = min(HIGHEST_PITCH, max(n.pitch for n in notes) + margin)
    return lo, hi


def draw_roll(ax, notes: Sequence[Note], *, span: tuple[int, int] | None = None, title: str = "") -> None:
    """Filled bars, one per note, rows are keys."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    bars = [Rectangle((n.start, n.pitch - LOWEST_PITCH - 0.4), n.end - n.start, 0.8) for n in notes]
    ax.add_collection(PatchCollection(bars, facecolor="#2b6cb0", edgecolor="#1a365d", linewidth=0.3))
    end = max((n.end for n in notes), default=1.0)
    ax.set_xlim(0, end)
    _key_axis(ax, *(span or pitch_span(notes)))
    ax.grid(axis="y", color="#dddddd", linewidth=0.5)
    if title:
        ax.set_title(title, fontsize=10)


def key_spectrogram(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """(88, frames) dB constant-Q magnitudes, one bin per key, hop SPECTROGRAM_HOP samples."""
    import librosa

    fmin = librosa.midi_to_hz(LOWEST_PITCH)
    n_bins = N_KEYS
    nyquist_keys = int(np.floor(librosa.hz_to_midi(sample_rate_hz / 2 * 0.95))) - LOWEST_PITCH + 1
    n_bins = max(1, min(n_bins, nyquist_keys))
    if len(audio) < 2 * SPECTROGRAM_HOP:
        return np.full((N_KEYS, 1), -80.0, dtype=np.float32)
    with warnings.catch_warnings():  # short clips make librosa warn about its low octaves
        warnings.simplefilter("ignore", UserWarning)
        c = np.abs(
            librosa.cqt(np.asarray(audio, dtype=np.float32), sr=sample_rate_hz, hop_length=SPECTROGRAM_HOP,
                        fmin=fmin, n_bins=n_bins, bins_per_octave=12)
        )
    db = librosa.amplitude_to_db(c, ref=1.0, top_db=None)
    out = np.full((N_KEYS, db.shape[1]), -120.0, dtype=np.float32)
    out[:n_bins] = db
    return np.maximum(out, out.max() - SPECTROGRAM_RANGE_DB)


def draw_spectrogram(
    ax, audio: np.ndarray, sample_rate_hz: int, *, notes: Sequence[Note] | None = None,
    span: tuple[int, int] | None = None, title: str = "", end_s: float | None = None,
) -> None:
    spec = key_spectrogram(audio, sample_rate_hz)
    seconds = len(audio) / sample_rate_hz
    ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
              extent=(0, spec.shape[1] * SPECTROGRAM_HOP / sample_rate_hz, -0.5, N_KEYS - 0.5))
    if notes:
        from matplotlib.collections import PatchCollection
        from matplotlib.patches import Rectangle

        boxes = [Rectangle((n.start, n.pitch - LOWEST_PITCH - 0.5), n.end - n.start, 1.0) for n in notes]
        ax.add_collection(PatchCollection(boxes, facecolor="none", edgecolor="#00e5ff", linewidth=0.8))
    ax.set_xlim(0, end_s or seconds)
    _key_axis(ax, *(span or (pitch_span(notes) if notes else (LOWEST_PITCH, HIGHEST_PITCH))))
    if title:
        ax.set_title(title, fontsize=10)


def _width(seconds: float) -> float:
    return float(np.clip(4 + seconds * 0.25, 8, 30))


def save(fig, path: str | os.PathLike) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_notes(path: str | os.PathLike, notes: Sequence[Note], *, title: str = "") -> None:
    """A piano roll picture of notes."""
    plt = _pyplot()
    end = max((n.end for n in notes), default=1.0)
    fig, ax = plt.subplots(figsize=(_width(end), 4))
    draw_roll(ax, notes, title=title)
    ax.set_xlabel("seconds")
    save(fig, path)


def plot_audio(
    path: str | os.PathLike, audio: np.ndarray, sample_rate_hz: int, *,
    notes: Sequence[Note] | None = None, title: str = "",
) -> None:
    """The key spectrogram of audio; with notes, their piano roll above and their outlines over it."""
    plt = _pyplot()
    seconds = len(audio) / sample_rate_hz
    end = max([seconds] + [n.end for n in notes or []])
    span = pitch_span(notes) if notes else (LOWEST_PITCH, HIGHEST_PITCH)
    if notes:
        fig, (ax_roll, ax_spec) = plt.subplots(
            2, 1, figsize=(_width(end), 7), sharex=True, gridspec_kw={"height_ratios": [1, 1.4]}
        )
        draw_roll(ax_roll, notes, span=span, title=title)
        draw_spectrogram(ax_spec, audio, sample_rate_hz, notes=notes, span=span, end_s=end,
                         title="spectrogram (one row per key) with the notes outlined")
    else:
        fig, ax_spec = plt.subplots(figsize=(_width(end), 4))
        draw_spectrogram(ax_spec, audio, sample_rate_hz, title=title, end_s=end)
    ax_spec.set_xlabel("seconds")
    save(fig, path)


def plot_comparison(
    path: str | os.PathLike, panels: Sequence[tuple[str, np.ndarray]], sample_rate_hz: int,
    notes: Sequence[Note] | None = None,
) -> None:
    """Several audio clips (e.g. reference and generated) one above the other, notes outlined on each."""
    plt = _pyplot()
    end = max([len(a) / sample_rate_hz for _, a in panels] + [n.end for n in notes or []])
    span = pitch_span(notes) if notes else (LOWEST_PITCH, HIGHEST_PITCH)
    fig, axes = plt.subplots(len(panels), 1, figsize=(_width(end), 3.2 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, audio) in zip(axes[:, 0], panels, strict=True):
        draw_spectrogram(ax, audio, sample_rate_hz, notes=notes, span=span, title=title, end_s=end)
    axes[-1, 0].set_xlabel("seconds")
    save(fig, path)
