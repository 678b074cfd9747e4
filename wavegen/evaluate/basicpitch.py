"""A second, independent transcriber: Spotify's basic-pitch, a small neural note transcriber trained on
many instruments, none of them ours. Its ONNX model ships inside its PyPI wheel, so nothing downloads.

basic-pitch pins TensorFlow, which does not install on Python >= 3.11; wavegen installs it without its
dependencies, plus onnxruntime, which runs the model (`pip install -e ".[eval]"` does the extras;
scripts/setup.sh does both). Without it, `wavegen evaluate` reports our own transcriber only and says so.

Its notes are scored with the same mir_eval metrics as ours (transcribe.py: onsets within 50 ms, the
exact key; frames on the 10 ms grid), and its score on the generated clip is divided by its score on the
reference rendering: the ceiling is each transcriber's own.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Sequence

import numpy as np

from wavegen.evaluate import transcribe
from wavegen.notes.text import HIGHEST_PITCH, LOWEST_PITCH, Note

NAME = "basic-pitch"
INSTALL = 'pip install --no-deps basic-pitch && pip install onnxruntime "resampy<0.4.3" scikit-learn'


@functools.cache
def available() -> bool:
    root = logging.getLogger()
    quiet, level = logging.NullHandler(), root.level
    root.addHandler(quiet)  # basic-pitch logs a warning at import for every backend it lacks (TensorFlow, ...):
    root.setLevel(logging.ERROR)  # keep them, and the handler logging.warning would install, out of our output
    try:
        import basic_pitch.inference  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    finally:
        root.removeHandler(quiet)
        root.setLevel(level)
    return True


@functools.cache
def _model():
    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import Model

    onnx = ICASSP_2022_MODEL_PATH.with_suffix(".onnx") if ICASSP_2022_MODEL_PATH.suffix != ".onnx" else ICASSP_2022_MODEL_PATH
    return Model(onnx)


def notes_of(audio: np.ndarray, sample_rate_hz: int) -> list[Note]:
    """basic-pitch's notes of this audio (its default thresholds), kept to the 88 keys."""
    import contextlib
    import io

    import soundfile as sf
    from basic_pitch.inference import predict

    fd, path = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        sf.write(path, np.asarray(audio, dtype=np.float32), sample_rate_hz)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Predicting MIDI for ..."
            _, _, events = predict(path, _model())
    finally:
        os.unlink(path)
    return sorted((Note(int(p), float(s), float(e)) for s, e, p, *_ in events if LOWEST_PITCH <= p <= HIGHEST_PITCH),
                  key=lambda n: (n.start, n.pitch))


def score(audio: np.ndarray, sample_rate_hz: int, notes: Sequence[Note]) -> transcribe.NoteScores:
    """basic-pitch's transcription of `audio` against the sketch's notes, scored as transcribe.score does."""
    return transcribe.score_notes(notes_of(audio, sample_rate_hz), notes, len(audio) / sample_rate_hz)
