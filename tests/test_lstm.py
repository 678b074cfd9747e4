"""The composer's LSTM: trained by the shared loop, its loss falls, its sketches parse, seeds repeat."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from wavegen.cli import main
from wavegen.compose.lstm import LSTMComposer, encode
from wavegen.compose.markov import keytext_of
from wavegen.config import load_config
from wavegen.errors import WavegenError
from wavegen.nn import checkpoint
from wavegen.notes import text as T
from wavegen.train.composer import train_lstm

LSTM_TOML = Path(__file__).parent.parent / "configs" / "composer-lstm.toml"


def small(*extra: str):
    return load_config(LSTM_TOML, kind="composer", overrides=["composer.hidden=48", "composer.seq_len=96", "composer.burn_in=8",
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
        checkpoint.load(lstm_run)
    with pytest.raises(WavegenError, match="a WaveNet checkpoint, not an LSTM composer"):
        LSTMComposer.load("harpsichord-cpu")


def test_the_shipped_lstm_loads_from_a_record_with_both_products_sections():
    meta = json.loads((checkpoint.MODELS_DIR / "composer-lstm" / "config.json").read_text())
    assert {"model", "composer"} <= meta["config"].keys()  # written before each product had its own config
    comp = LSTMComposer.load("composer-lstm")
    assert comp.styles == ["bach"] and len(comp.sample(8, rng=np.random.default_rng(0))) == 8


@pytest.mark.parametrize("model, load", [("composer-lstm", LSTMComposer.load), ("harpsichord-cpu", checkpoint.load)])
@pytest.mark.parametrize("field, value, words", [
    ("text_format_version", 2, "made for 88-key text format version 2"),
    ("checkpoint_version", 7, "checkpoint version 7 is not 1"),
    ("kind", "drum-machine", "a 'drum-machine' checkpoint, not"),
])
def test_every_kind_of_checkpoint_is_checked_alike(tmp_path, model, load, field, value, words):
    ck = tmp_path / model
    shutil.copytree(checkpoint.MODELS_DIR / model, ck)
    meta = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**meta, field: value}))
    with pytest.raises(WavegenError, match=words) as e:
        load(ck)
    assert str(ck) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("model, load", [("composer-lstm", LSTMComposer.load), ("harpsichord-cpu", checkpoint.load)])
def test_unreadable_records_and_weights_are_one_line_errors(tmp_path, model, load):
    ck = tmp_path / model
    shutil.copytree(checkpoint.MODELS_DIR / model, ck)
    (ck / "model.safetensors").write_bytes((ck / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(WavegenError, match="model.safetensors: cannot load these weights"):
        load(ck)
    (ck / "config.json").write_text("{not json")
    with pytest.raises(WavegenError, match="config.json: unreadable"):
        load(ck)


def test_train_composer_refuses_wavenet_settings(capsys, tiny_dataset, tmp_path):
    code = main(["train-composer", "--config", str(LSTM_TOML), "--data", str(tiny_dataset), "--out", str(tmp_path / "c"),
                 "--set", "model.cycles=3"])
    err = capsys.readouterr().err
    assert code == 2 and "model.cycles=3: [model] holds WaveNet settings: they go in `wavegen train`'s config" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "c").exists()


def two_style_composer() -> LSTMComposer:
    from wavegen.compose.lstm import CharLSTM

    torch.manual_seed(0)
    model = CharLSTM(2, embed=8, style_embed=4, hidden=16, layers=1, dropout=0.0)
    with torch.no_grad():
        model.style.weight.mul_(20.0)  # styles far apart, so that a blend is heard
    return LSTMComposer(model, ["bach", "folk"], 50.0)


def test_a_blend_of_two_styles_runs_from_one_to_the_other():
    comp = two_style_composer()

    def sample(**kw):
        return comp.sample(40, rng=np.random.default_rng(1), **kw)

    bach, folk = sample(style="bach"), sample(style="folk")
    assert bach != folk
    assert sample(style="bach", blend=("folk", 0.0)) == bach and sample(style="bach", blend=("folk", 1.0)) == folk
    assert sample(style="bach", blend=("folk", 0.5)) not in (bach, folk)


def test_compose_checks_a_blend_and_heads_the_text_with_the_heavier_style():
    from wavegen.compose import piece

    comp = two_style_composer()
    assert piece.compose(comp, 8, style="bach", blend=("folk", 0.7)).keytext.meta["style"] == "folk"
    assert piece.compose(comp, 8, style="bach", blend=("folk", 0.3), form="AB").keytext.meta["style"] == "bach"
    for bad in (("jazz", 0.5), ("folk", 1.5)):
        with pytest.raises(WavegenError):
            piece.compose(comp, 8, style="bach", blend=bad)


def test_the_shipped_styles_composer_blends_chorales_into_folk_tunes():
    from wavegen.compose.stats import musical_stats

    comp = LSTMComposer.load("composer-styles")
    assert comp.styles == ["bach", "essen", "oneills", "palestrina", "ryans"]
    density = [musical_stats(comp.sample(200, rng=np.random.default_rng(0), style="bach", blend=("essen", w)))
               ["notes_per_tick"] for w in (0.0, 1.0)]
    assert density[0] > 2.5 and density[1] < 1.5, density  # four voices, then one (its card: 3.6 and 1.0)
