"""Note-informed denoising (synth/denoise.py) on known answers: the partials of the notes pass, noise
between them, a wrong note and a drone in a rest are turned down by the depth asked for, a pluck passes."""

from __future__ import annotations

import numpy as np
import pytest

from wavegen.errors import WavegenError
from wavegen.notes.text import Note
from wavegen.synth import denoise as D

SR = 16_000
A4 = 69  # 440 Hz


def tone(f0: float, seconds: float, partials: int = 6, level: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(level / p * np.sin(2 * np.pi * p * f0 * t) for p in range(1, partials + 1)).astype(np.float32)


def band_db(x: np.ndarray, lo: float, hi: float, start: float, end: float) -> float:
    """Power (dB) of x[start:end] in the band [lo, hi] Hz, by one Hann-windowed FFT."""
    seg = x[int(start * SR):int(end * SR)].astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    f = np.fft.rfftfreq(len(seg), 1 / SR)
    return float(10 * np.log10(spec[(f >= lo) & (f <= hi)].sum() + 1e-30))


@pytest.fixture(scope="module")
def noisy_a4():
    notes = [Note(A4, 0.5, 2.5)]
    clean = np.concatenate([np.zeros(SR // 2, np.float32), tone(440.0, 2.0), np.zeros(SR, np.float32)])
    noise = np.random.default_rng(0).normal(0, 0.003, len(clean)).astype(np.float32)
    return clean, noise, notes


def test_depth_zero_returns_the_take_as_it_was(noisy_a4):
    clean, noise, notes = noisy_a4
    x = clean + noise
    assert np.array_equal(D.denoise(x, SR, notes, 0.0), x)


def test_the_partials_pass_and_the_noise_between_them_is_turned_down(noisy_a4):
    clean, noise, notes = noisy_a4
    y = D.denoise(clean + noise, SR, notes, 20.0)
    for p in (1, 2, 3):  # the partials of the note keep their level
        before, after = (band_db(v, 440 * p - 10, 440 * p + 10, 1.0, 2.0) for v in (clean + noise, y))
        assert abs(after - before) < 0.5
    # between the partials (mid-way, where no partial's taper reaches): what is left is the noise, 20 dB down
    for lo, hi in ((600, 700), (1050, 1150), (3250, 3350)):
        before, after = (band_db(v, lo, hi, 1.0, 2.0) for v in (clean + noise, y))
        assert before - after == pytest.approx(20.0, abs=1.5)


def test_a_drone_in_a_rest_and_a_wrong_note_are_turned_down(noisy_a4):
    clean, _, notes = noisy_a4
    wrong = tone(440 * 2 ** (6 / 12), len(clean) / SR, partials=1)  # D#5: a tritone off, none of A4's partials
    y = D.denoise(clean + wrong, SR, notes, 30.0)
    before, after = (band_db(v, 610, 635, 1.0, 2.0) for v in (clean + wrong, y))
    assert before - after == pytest.approx(30.0, abs=2.0)  # while the note sounds
    before, after = (band_db(v, 610, 635, 3.0, 3.9) for v in (clean + wrong, y))
    assert before - after == pytest.approx(30.0, abs=1.0)  # after its release: a rest


def test_a_pluck_passes_whole(noisy_a4):
    """The first few milliseconds of a note are broadband (a pluck); they are not turned down."""
    _, _, notes = noisy_a4
    rng = np.random.default_rng(1)
    x = np.zeros(3 * SR, np.float32)
    x[int(0.5 * SR):int(0.51 * SR)] = rng.normal(0, 0.3, int(0.01 * SR))  # 10 ms of noise at the onset
    y = D.denoise(x, SR, notes, 30.0)
    energy = (np.sum(v[int(0.45 * SR):int(0.6 * SR)].astype(np.float64) ** 2) for v in (x, y))
    assert 10 * np.log10(next(energy) / next(energy)) < 1.0
    late = x.copy()
    late[:] = 0
    late[int(1.5 * SR):int(1.51 * SR)] = x[int(0.5 * SR):int(0.51 * SR)]  # the same burst mid-note: turned down
    z = D.denoise(late, SR, notes, 30.0)
    before, after = (band_db(v, 600, 700, 1.45, 1.6) for v in (late, z))  # between A4's partials
    assert before - after > 20.0


def test_takes_are_denoised_each_alike(noisy_a4):
    clean, noise, notes = noisy_a4
    batch = np.stack([clean + noise, clean - noise])
    y = D.denoise(batch, SR, notes, 12.0)
    assert y.shape == batch.shape and y.dtype == np.float32
    for i in range(2):
        np.testing.assert_allclose(y[i], D.denoise(batch[i], SR, notes, 12.0), atol=1e-6)


@pytest.mark.parametrize("depth", [-1.0, 61.0, float("nan")])
def test_a_depth_out_of_range_is_refused(depth):
    with pytest.raises(WavegenError, match="--denoise"):
        D.check_depth(depth)


def test_the_transform_is_librosas_and_a_stream_is_the_whole_take():
    """denoise is librosa's centred STFT, masked, and its inverse (an independent implementation of the
    same transform); pushed in pieces of any length, with the notes known only as far as the audio (a
    note not yet ended ends there), it gives the same samples."""
    import librosa

    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.1, 3 * SR + 123).astype(np.float32)
    notes = [Note(A4, 0.5, 2.5), Note(60, 1.0, 1.7), Note(40, 2.9, 3.2)]
    n = int(D.N_FFT_S * SR)
    spec = librosa.stft(x, n_fft=n, hop_length=n // 4, window="hann", center=True, pad_mode="constant")
    spec *= D.cell_gains(np.arange(spec.shape[1]), SR, notes, 10.0)
    spec *= D.limit_gains(np.abs(spec.T) ** 2, np.arange(spec.shape[1]), SR, notes, D.partial_caps("fluidr3")).T
    expected = librosa.istft(spec, hop_length=n // 4, n_fft=n, window="hann", center=True, length=len(x))
    whole = D.denoise(x, SR, notes, 10.0, "fluidr3")
    np.testing.assert_allclose(whole, expected, atol=1e-6)
    assert np.abs(whole - D.denoise(x, SR, notes, 10.0, "fluidr3", limit=False)).max() > 1e-3  # the limit acted
    assert np.abs(D.denoise(x, SR, [], 1e-6) - x).max() < 1e-5  # all but unchanged: the transform inverts

    s, parts, i = D.StreamDenoiser(SR, 10.0, "fluidr3"), [], 0
    while i < len(x):
        k = int(rng.integers(1, 3000))
        known = (i + k) / SR
        parts.append(s.push(x[i:i + k], [Note(nt.pitch, nt.start, min(nt.end, known)) for nt in notes
                                         if nt.start < known]))
        i += k
    parts.append(s.flush(notes))
    assert max(len(p) for p in parts) > 0 and np.array_equal(np.concatenate(parts), whole)


def test_a_whistle_on_a_held_note_is_turned_down_to_the_harpsichords_level():
    """The held E-flat 4 a fine-tune played (docs/evaluation/experiments.md section 5): the rendering with a
    tone at 20.15 x the fundamental holding about half the power. The limit brings the note's energy back
    onto its harmonics as the rendering has it; the rendering alone passes all but untouched."""
    from wavegen.data.conditioning import KEY_HZ
    from wavegen.evaluate.sound import harmonic_share
    from wavegen.notes.render import render_notes

    eb4 = 63
    notes = [Note(eb4, 0.0, 1.0)]
    rendering = render_notes(notes, sample_rate_hz=SR, soundfont=None).audio[:int(1.2 * SR)]
    whistle_hz = 20.15 * KEY_HZ[eb4 - 21]
    t = np.arange(len(rendering)) / SR
    rms = float(np.sqrt(np.mean(rendering[int(0.1 * SR):SR] ** 2)))
    whistling = (rendering + rms * np.sqrt(2) * np.sin(2 * np.pi * whistle_hz * t)).astype(np.float32)
    ceiling = harmonic_share(rendering, SR, eb4)
    assert ceiling > 0.8 and harmonic_share(whistling, SR, eb4) < 0.5  # the test's premise
    limited = D.denoise(whistling, SR, notes, 10.0, "fluidr3")
    unlimited = D.denoise(whistling, SR, notes, 10.0, "fluidr3", limit=False)
    assert harmonic_share(unlimited, SR, eb4) < 0.5  # the partial-width mask alone lets it through
    assert harmonic_share(limited, SR, eb4) > 0.9 * ceiling
    lo, hi = whistle_hz - 30, whistle_hz + 30
    assert band_db(limited, lo, hi, 0.1, 1.0) < band_db(whistling, lo, hi, 0.1, 1.0) - 10
    own = D.denoise(rendering, SR, notes, 10.0, "fluidr3")
    assert abs(band_db(own, 2000, 8000, 0.1, 1.0) - band_db(D.denoise(rendering, SR, notes, 10.0, "fluidr3", limit=False),
                                                            2000, 8000, 0.1, 1.0)) < 0.5


def test_a_timbre_without_limits_of_its_own_takes_the_most_lenient():
    assert set(D.caps_timbres()) >= {"fluidr3", "timgm6mb"}
    lenient = D.partial_caps(None)
    for name in D.caps_timbres():
        assert np.all(lenient >= D.partial_caps(name))
    assert np.array_equal(D.partial_caps("my-own-harpsichord"), lenient)
    assert not np.array_equal(D.partial_caps("fluidr3"), D.partial_caps("timgm6mb"))


def test_the_limit_is_the_timbre_the_model_imitates():
    from pathlib import Path

    from wavegen.nn.checkpoint import Loaded

    def loaded(**meta):
        return Loaded(model=None, config=None, meta=meta, path=Path("m"))

    one = loaded(dataset={"soundfont": "FluidR3_GM.sf2"})
    assert one.timbre_played() == "fluidr3"
    assert loaded(dataset={"soundfont": "TimGM6mb.sf2"}).timbre_played() == "timgm6mb"
    assert loaded(dataset={"soundfont": "my.sf2"}).timbre_played() is None  # the most lenient limit
    several = loaded(timbres=["musescore-coupled", "fluidr3"], dataset={"soundfont": "FluidR3_GM.sf2"})
    assert several.timbre_played() == "musescore-coupled" and several.timbre_played("fluidr3") == "fluidr3"
