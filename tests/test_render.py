"""Rendering notes to harpsichord audio with FluidSynth."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from wavegen.errors import WavegenError
from wavegen.notes.render import RELEASE_TAIL_S, one_voice_per_key, render_notes
from wavegen.notes.text import Note

SR = 16_000
TIM = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def band_power(audio: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / sr)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum())


def test_same_input_same_samples_and_no_memory_between_calls():
    a = [Note(60, 0.0, 0.4), Note(64, 0.2, 0.6)]
    b = [Note(72, 0.0, 0.3)]
    first = render_notes(b).audio
    render_notes(a)  # a synthesizer reused across calls would still ring with these notes
    assert np.array_equal(render_notes(b).audio, first)


def test_length_is_last_note_off_plus_the_release_tail_and_it_is_not_silent():
    r = render_notes([Note(60, 0.1, 0.35), Note(67, 0.2, 0.8)], sample_rate_hz=SR)
    assert len(r.audio) == round((0.8 + RELEASE_TAIL_S) * SR)
    assert r.audio.dtype == np.float32 and np.all(np.isfinite(r.audio))
    assert np.abs(r.audio[: int(0.1 * SR) - 200]).max() < 1e-3  # nothing before the first onset
    assert np.abs(r.audio).max() > 0.05
    assert len(render_notes([Note(60, 0, 0.1)], min_seconds=2.0).audio) == round((2.0 + RELEASE_TAIL_S) * SR)


def test_a4_sounds_at_440_hz():
    audio = render_notes([Note(69, 0.0, 1.0)], sample_rate_hz=SR).audio[: SR]
    assert band_power(audio, 430, 450) > 20 * band_power(audio, 400, 420)
    assert band_power(audio, 430, 450) > 20 * band_power(audio, 455, 475)


def test_high_notes_do_not_alias_below_nyquist():
    # C8 = 4186 Hz: its 2nd harmonic (8372 Hz) is above 8 kHz and would fold back to 7628 Hz
    audio = render_notes([Note(108, 0.0, 1.0)], sample_rate_hz=SR).audio[: SR]
    assert band_power(audio, 7500, 7750) < 1e-3 * band_power(audio, 4100, 4270)


def test_clipping_is_counted_and_the_audio_stays_in_range():
    loud = render_notes([Note(p, 0.0, 0.5) for p in range(40, 80, 2)], gain=10.0)
    assert loud.clipped > 0 and loud.peak > 1.0 and np.abs(loud.audio).max() <= 1.0
    assert render_notes([Note(60, 0.0, 0.5)]).clipped == 0


def test_other_soundfonts_and_a_missing_one():
    r = render_notes([Note(60, 0.0, 0.3)], soundfont=TIM)
    assert np.abs(r.audio).max() > 0.01
    with pytest.raises(WavegenError, match="nothere.sf2: SoundFont not found"):
        render_notes([Note(60, 0.0, 0.3)], soundfont="nothere.sf2")


def test_missing_fluidsynth_library_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "fluidsynth":
            raise ImportError("Couldn't find the FluidSynth library.")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(WavegenError, match="apt-get install libfluidsynth3.*brew.*conda"):
        render_notes([Note(60, 0.0, 0.3)])


def test_one_voice_per_key():
    notes = [Note(60, 0.0, 1.0), Note(60, 0.5, 0.7), Note(62, 0.0, 0.5), Note(62, 0.0, 0.8)]
    assert one_voice_per_key(notes) == [Note(60, 0.0, 0.5), Note(62, 0.0, 0.8), Note(60, 0.5, 1.0)]
