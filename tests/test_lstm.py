"""The composer's LSTM: trained by the shared loop, its loss falls, its sketches parse, seeds repeat."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wavegen.cli import main
from wavegen.compose.lstm import LSTMComposer, encode
from wavegen.compose.markov import keytext_of
from wavegen.config import load_config
from wavegen.errors import WavegenError
from wavegen.notes import text as T
from wavegen.train.composer import train_lstm

LSTM_TOML = Path(__file__).parent.parent / "configs" / "composer-lstm.toml"


def small(*extra: str):
    return load_config(LSTM_TOML, ["composer.hidden=48", "composer.seq_len=96", "composer.burn_in=8",
                                   "data.batch_size=8", "data.valid_crops=4", "train.steps=60",
                                   "train.eval_every=30", "train.ckpt_every=30", "train.log_every=10",
                                   "train.warmup_steps=5", "train.lr=1e-2", *extra])


@pytest.fixture(scope="module")
def lstm_run(tiny_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("lstm") / "run"
    res = train_lstm(small(), tiny_dataset, run, show_progress=False, log=lambda m: None)
    assert res.step == 60
    return run


def test_the_loss_falls_on_a_small_corpus(lstm_run):
    log = [json.loads(x) for x in (lstm_run / "log.jsonl").read_text().splitlines()]
    bits = [r["loss_bits"] for r in log if "loss_bits" in r]
    assert bits[-1] < bits[0] and bits[-1] < 0.5 * np.log2(89)  # from log2(89) = 6.5 bits untrained
    assert any("valid_bits_per_tick" in r for r in log)
    assert list((lstm_run / "samples").glob("step-*.txt"))


def test_sampling_is_seeded_valid_and_follows_a_prime(lstm_run):
    comp = LSTMComposer.load(lstm_run)
    a = comp.sample(40, rng=np.random.default_rng(1))
    assert a == comp.sample(40, rng=np.random.default_rng(1))
    assert a != comp.sample(40, rng=np.random.default_rng(2))
    kt = keytext_of(a, comp.tick_ms, {"style": comp.styles[0]})
    assert T.parse(T.write(kt)) == kt and len(a) == 40
    assert len(comp.sample(5, prime=["HLO", ""], rng=np.random.default_rng(0))) == 5
    assert np.isfinite(comp.bits_per_tick([a]))
    assert encode(["HL", ""]).tolist() == [39, 43, 88, 88]


def test_compose_with_the_lstm(capsys, lstm_run, tmp_path):
    assert main(["compose", "--model", str(lstm_run), "--ticks", "30", "--style", "midi", "-o", str(tmp_path / "s.txt")]) == 0
    assert T.read_file(tmp_path / "s.txt").n_ticks == 30
    capsys.readouterr()
    assert main(["compose", "--model", str(lstm_run), "--ticks", "30", "--style", "bach"]) == 2
    assert "--style bach" in capsys.readouterr().err
    with pytest.raises(WavegenError, match="not a WaveNet"):
        from wavegen.nn import checkpoint
        checkpoint.load(lstm_run)
