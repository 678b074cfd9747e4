"""Endless playing: the stream plays what the offline engine plays, however the sketch arrives."""

from __future__ import annotations

import numpy as np
import pytest
from test_generate import SKETCH, SPT, SR, small_model

from wavegen.notes.text import KEY_CHARS
from wavegen.synth.denoise import StreamDenoiser, denoise
from wavegen.synth.fast import FastWaveNet
from wavegen.synth.generate import play
from wavegen.synth.sketchcond import sketch_samples
from wavegen.synth.stream import HISTORY_TICKS, StreamPlayer, stream_take

TICKS = ["".join(KEY_CHARS[k] for k in np.nonzero(row)[0]) for row in SKETCH.roll]


@pytest.mark.parametrize("chunk", [1, 7, 20])
def test_the_stream_equals_the_offline_take(chunk):
    assert len(TICKS) < HISTORY_TICKS  # the stream's conditioning window holds the whole sketch
    model = small_model()
    player = StreamPlayer(FastWaveNet(model), SR, temperature=0.9, min_p=0.05, seed=4)
    parts = [player.play(TICKS[i : i + chunk]) for i in range(0, len(TICKS), chunk)]
    parts.append(player.play([], flush=True))
    streamed = np.concatenate(parts)
    offline = play(model, len(TICKS) * SPT, sample_rate_hz=SR, sketch=SKETCH, engine="fast", temperature=0.9,
                   min_p=0.05, seed=4)[0]
    assert len(streamed) == len(offline) and np.array_equal(streamed, offline)
    whole = play(model, sketch_samples(SKETCH, SR), sample_rate_hz=SR, sketch=SKETCH, engine="fast",
                 temperature=0.9, min_p=0.05, seed=4)[0]  # the sketch and its release tail
    assert np.array_equal(whole[: len(streamed)], streamed)


def test_the_radio_denoises_its_stream_as_the_whole_take_would_be():
    """The studio's radio denoises each piece as it is played, with the notes the player knows (its
    window of ticks, which runs ahead of the audio): the same as denoising the whole take afterwards."""
    model = small_model()
    player = StreamPlayer(FastWaveNet(model), SR, seed=4)
    cleaner = StreamDenoiser(SR, 10.0)
    raw, clean = [], []
    for i in range(0, len(TICKS) + 1, 7):
        audio = player.play(TICKS[i : i + 7], flush=i + 7 > len(TICKS))
        raw.append(audio)
        clean.append(cleaner.push(audio, player.notes()))
    clean.append(cleaner.flush(player.notes()))
    assert player.notes() == SKETCH.notes()
    raw = np.concatenate(raw)
    whole = denoise(raw, SR, SKETCH.notes(), 10.0)
    assert len(whole) == len(raw) and not np.allclose(whole, raw, atol=1e-3)
    np.testing.assert_allclose(np.concatenate(clean), whole, atol=1e-6)


@pytest.mark.parametrize("pre_emphasis", [0.0, 0.5])
def test_a_whole_sketch_streamed_a_tick_at_a_time_is_the_take_play_makes(pre_emphasis):
    model = small_model(pre_emphasis=pre_emphasis)
    n = sketch_samples(SKETCH, SR) - 5  # a last tick cut short
    chunks = list(stream_take(FastWaveNet(model), n, sample_rate_hz=SR, sketch=SKETCH, temperature=0.9, min_p=0.05,
                              seed=4))
    assert [len(c) for c in chunks[:-1]] == [SPT] * (len(chunks) - 1) and 0 < len(chunks[-1]) < SPT
    offline = play(model, n, sample_rate_hz=SR, sketch=SKETCH, engine="fast", temperature=0.9, min_p=0.05, seed=4)[0]
    assert np.allclose(np.concatenate(chunks), offline, atol=1e-6)


def test_a_growing_wav_is_valid_after_every_chunk(tmp_path):
    import soundfile as sf

    from wavegen.audio import GrowingWav

    wav = GrowingWav(str(tmp_path / "g.wav"), SR)
    for i in range(3):
        wav.write(np.full(100, 0.5 if i < 2 else 2.0, dtype=np.float32))  # the last chunk clips
        assert sf.info(tmp_path / "g.wav").frames == 100 * (i + 1)
    wav.close()
    audio, sr = sf.read(tmp_path / "g.wav")
    assert sr == SR and len(audio) == 300 and wav.clipped == 100 and abs(audio[0] - 0.5) < 1e-4
