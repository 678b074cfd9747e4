"""The models shipped inside the package, by what they do: found by name, playing what a sketch says, and
composing sketches that the shipped WaveNet can play. Seconds of audio at most: the models are small."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from wavegen.cli import main
from wavegen.compose.load import load_composer
from wavegen.evaluate.sound import harmonic_share
from wavegen.nn import checkpoint
from wavegen.notes import text as T
from wavegen.synth.fast import why_not

SR = 16_000


def test_the_default_harpsichord_model_is_shipped_and_loads_by_name():
    assert {"harpsichord-cpu", "composer-lstm"} <= set(checkpoint.shipped_models())
    loaded = checkpoint.load()  # no name: the default
    assert loaded.path.name == checkpoint.DEFAULT_MODEL and why_not(loaded.model) is None
    assert checkpoint.load("harpsichord-cpu").path == loaded.path


@pytest.mark.parametrize("pitch", [57, 63])  # A3 and E flat 4, a tritone apart: no harmonic in common below 8
def test_the_default_model_plays_the_held_note_of_a_sketch(tmp_path, pitch):
    sketch = tmp_path / "held.txt"
    sketch.write_text((chr(pitch + T.CHAR_OFFSET) + " ") * 20)  # the key held for 20 ticks, 1 s
    assert main(["generate", "--sketch", str(sketch), "--seconds", "1.2", "-o", str(tmp_path / "a.wav")]) == 0
    audio, sr = sf.read(tmp_path / "a.wav")
    assert sr == SR and len(audio) == round(1.2 * SR) and np.all(np.isfinite(audio))
    assert np.sqrt(np.mean(audio[: SR] ** 2)) > 0.01  # it sounds while the key is held
    # Measured at step 9000: 85-94% of the energy on the note's harmonics, under 6% on the tritone's
    assert harmonic_share(audio, SR, pitch) > 0.6 and harmonic_share(audio, SR, pitch + 6) < 0.2


def test_generate_with_the_default_model(capsys, tmp_path):
    sketch = tmp_path / "s.txt"
    sketch.write_text("HLO HLO HLO HLO  JMQ JMQ JMQ JMQ  ")
    assert main(["generate", "--sketch", str(sketch), "-o", str(tmp_path / "a.wav")]) == 0
    audio, sr = sf.read(tmp_path / "a.wav")
    assert sr == 16_000 and len(audio) == round((0.5 + 0.5) * sr)
    assert np.all(np.isfinite(audio)) and 0.01 < np.sqrt(np.mean(audio**2)) < 0.5


def test_the_shipped_composer_writes_sketches_in_its_style_that_the_wavenet_plays(tmp_path, capsys):
    out, played = tmp_path / "s.txt", tmp_path / "p.wav"
    assert main(["compose", "--ticks", "20", "--seed", "1", "-o", str(out), "--perform", str(played)]) == 0
    kt = T.read_file(out)  # parses: valid 88-key text
    assert kt.n_ticks == 20 and kt.meta["style"] == "bach" and load_composer().styles == ["bach"]
    assert len(kt.notes()) > 0
    audio, sr = sf.read(played)  # the default WaveNet plays the default composer's ticks
    assert sr == SR and len(audio) == round((kt.duration_s + 0.5) * SR) and np.all(np.isfinite(audio))
