"""Pre-emphasis (model.pre_emphasis): the network predicts (x[n] - a x[n-1]) / (1 + a) and every way of
playing turns that back into x, the same way."""

from __future__ import annotations

import numpy as np
import pytest
from test_generate import SKETCH, SPT, SR, small_model
from test_stream import TICKS

from wavegen.audio import deemphasize, emphasize, from_int16, mu_law_encode
from wavegen.config import load_config
from wavegen.data import dataset
from wavegen.errors import WavegenError
from wavegen.nn import heldout
from wavegen.synth.fast import FastWaveNet
from wavegen.synth.generate import play
from wavegen.synth.stream import StreamPlayer

A = 0.85


def test_emphasis_stays_in_range_and_deemphasis_inverts_it():
    x = np.random.default_rng(0).uniform(-1, 1, (3, 500))
    e = emphasize(x, A, before=0.25)
    assert np.abs(e).max() <= 1.0
    assert e[0, 0] == pytest.approx((x[0, 0] - A * 0.25) / (1 + A)) and e[1, 7] == pytest.approx(
        (x[1, 7] - A * x[1, 6]) / (1 + A))
    assert np.allclose(deemphasize(e, A, before=0.25), x, atol=1e-6)


def test_crops_hold_the_emphasized_signal(tiny_dataset):
    ds = dataset.load(tiny_dataset)
    cfg = load_config(None, ["model.pre_emphasis=0.85", "model.n_classes=256"])
    crops = heldout.crops(ds, "train", cfg.model, 400)
    k, start = 0, 1234
    crop = crops.crop_at(k, start)
    x = from_int16(np.asarray(ds.audio(crops.items[k])[start - 1 : start + 401])).astype(np.float64)
    by_hand = [(x[i] - A * x[i - 1]) / (1 + A) for i in range(1, len(x))]  # the formula, written out
    assert np.array_equal(crop["inputs"].numpy(), mu_law_encode(np.array(by_hand[:-1])))
    assert np.array_equal(crop["targets"].numpy(), mu_law_encode(np.array(by_hand[1:])))


def test_pre_emphasis_is_for_mu_law_and_below_one():
    for bad in (["model.pre_emphasis=1.0"], ["model.pre_emphasis=-0.1"], ["model.pre_emphasis=0.5", "model.output=mol"]):
        with pytest.raises(WavegenError, match="model.pre_emphasis must be in"):
            load_config(None, bad)


@pytest.mark.parametrize("engine", ["fast", "torch"])
def test_play_deemphasizes_what_the_network_drew(engine):
    plain, emph = small_model(), small_model(pre_emphasis=0.5)  # the same weights: the same draws
    kw = dict(sample_rate_hz=SR, sketch=SKETCH, seed=2, engine=engine)
    e = play(plain, 10 * SPT, **kw)[0].astype(np.float64)
    x = play(emph, 10 * SPT, **kw)[0]
    y, prev = [], 0.0
    for v in e:  # x[n] = (1 + a) e[n] + a x[n - 1]
        prev = 1.5 * v + 0.5 * prev
        y.append(prev)
    assert np.allclose(x, y, atol=1e-5) and not np.allclose(x, e, atol=1e-3)


def test_the_stream_deemphasizes_across_chunks_as_play_does():
    model = small_model(pre_emphasis=0.5)
    player = StreamPlayer(FastWaveNet(model), SR, seed=4)
    parts = [player.play(TICKS[i : i + 7]) for i in range(0, len(TICKS), 7)] + [player.play([], flush=True)]
    offline = play(model, len(TICKS) * SPT, sample_rate_hz=SR, sketch=SKETCH, engine="fast", seed=4)[0]
    assert np.allclose(np.concatenate(parts), offline, atol=1e-5)
