"""The models shipped inside the package: found by name, loadable without pickles, and playing."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from wavegen.cli import main
from wavegen.nn import checkpoint
from wavegen.synth.fast import why_not


def test_the_default_harpsichord_model_is_shipped_and_loads_by_name():
    assert {"harpsichord-cpu", "composer-lstm"} <= set(checkpoint.shipped_models())
    loaded = checkpoint.load()  # no name: the default
    assert loaded.path.name == checkpoint.DEFAULT_MODEL and why_not(loaded.model) is None
    assert loaded.sample_rate_hz == 16_000 and loaded.tick_ms == 50.0
    card = (checkpoint.MODELS_DIR / "harpsichord-cpu" / "MODEL_CARD.md").read_text()
    assert "Learning curve" in card and "onset F1" in card
    meta = json.loads((loaded.path / "config.json").read_text())
    assert meta["metrics"]["gap_bits"] > 0.1  # it listens to the notes
    assert 0 < loaded.temperature <= 1 and 0 < loaded.min_p < 1  # shipped with its sampling settings


def test_generate_with_the_default_model(capsys, tmp_path):
    sketch = tmp_path / "s.txt"
    sketch.write_text("HLO HLO HLO HLO  JMQ JMQ JMQ JMQ  ")
    assert main(["generate", "--sketch", str(sketch), "-o", str(tmp_path / "a.wav")]) == 0
    audio, sr = sf.read(tmp_path / "a.wav")
    assert sr == 16_000 and len(audio) == round((0.5 + 0.5) * sr)
    assert np.all(np.isfinite(audio)) and 0.01 < np.sqrt(np.mean(audio**2)) < 0.5
