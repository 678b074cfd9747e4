"""`wavegen generate` and `play`: lengths, determinism by seed, takes, engines, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavegen.cli import main
from wavegen.config import ModelConfig, load_config
from wavegen.errors import WavegenError
from wavegen.nn import checkpoint
from wavegen.nn.model import WaveNet
from wavegen.notes import text as T
from wavegen.synth.fast import FastWaveNet
from wavegen.synth.generate import choose_engine, play

TINY = Path(__file__).parent.parent / "configs" / "tiny.toml"


def make_checkpoint(path: Path, *overrides: str) -> Path:
    cfg = load_config(TINY, list(overrides))
    torch.manual_seed(0)
    model = WaveNet(cfg.model, 800)
    meta = {"sample_rate_hz": 16_000, "tick_ms": 50.0, "samples_per_tick": 800, "step": 0, "styles": []}
    return checkpoint.save(path, weights=model.state_dict(), config=cfg, meta=meta)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "tiny")


def gen(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["generate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_follows_a_sketch_for_its_length_plus_the_tail(capsys, tmp_path, ckpt):
    sketch = tmp_path / "s.txt"
    sketch.write_text("{tick_ms=50 ticks=3}\nHL HL  \n")
    code, out, _ = gen(capsys, "--checkpoint", str(ckpt), "--sketch", str(sketch), "-o", str(tmp_path / "a.wav"), "--plot")
    assert code == 0 and "real time" in out
    audio, sr = sf.read(tmp_path / "a.wav")
    assert sr == 16_000 and len(audio) == round((0.15 + 0.5) * sr)  # decoded notes end at 0.15 s
    assert np.all(np.isfinite(audio)) and (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")


def test_a_take_that_follows_a_sketch_is_denoised_by_its_notes(capsys, tmp_path, ckpt):
    """By default the take is the played audio denoised by the sketch's notes (synth/denoise.py) at the
    default depth; --denoise 0 writes it as played; --denoise DB at DB."""
    from wavegen.audio import from_int16, to_int16
    from wavegen.synth.denoise import DEFAULT_DEPTH_DB, denoise

    sketch = tmp_path / "s.txt"
    sketch.write_text("{tick_ms=50 ticks=6}\nHL HL HL    \n")
    args = ["--checkpoint", str(ckpt), "--sketch", str(sketch), "--seconds", "0.5"]
    for name, more in (("raw", ["--denoise", "0"]), ("default", []), ("deep", ["--denoise", "30"])):
        code, _, err = gen(capsys, *args, *more, "-o", str(tmp_path / f"{name}.wav"))
        assert code == 0, err
    raw, default, deep = (sf.read(tmp_path / f"{n}.wav", dtype="int16")[0] for n in ("raw", "default", "deep"))
    notes = T.read_file(sketch).notes()
    played = from_int16(raw)  # the raw take, as the file holds it
    timbre = checkpoint.load(ckpt).timbre_played()  # whose partials the whistle limit holds it to
    for got, depth in ((default, DEFAULT_DEPTH_DB), (deep, 30.0)):
        assert not np.array_equal(got, raw)
        # the same as denoising the written raw take: at most a step of 16-bit rounding apart
        assert np.max(np.abs(got.astype(int) - to_int16(denoise(played, 16_000, notes, depth, timbre))[0].astype(int))) <= 2


def test_same_seed_same_bytes_and_batch_takes_differ(capsys, tmp_path, ckpt):
    args = ["--checkpoint", str(ckpt), "--seconds", "0.1"]
    assert gen(capsys, *args, "--seed", "3", "-o", str(tmp_path / "a.wav"))[0] == 0
    assert gen(capsys, *args, "--seed", "3", "-o", str(tmp_path / "b.wav"))[0] == 0
    assert gen(capsys, *args, "--seed", "4", "-o", str(tmp_path / "c.wav"))[0] == 0
    a, b, c = ((tmp_path / f"{n}.wav").read_bytes() for n in "abc")
    assert a == b and a != c
    assert gen(capsys, *args, "--batch", "2", "-o", str(tmp_path / "t.wav"))[0] == 0
    t1, t2 = sf.read(tmp_path / "t-1.wav")[0], sf.read(tmp_path / "t-2.wav")[0]
    assert len(t1) == len(t2) == 1600 and not np.array_equal(t1, t2)


def test_unconditional_and_mixture_of_logistics_models(capsys, tmp_path):
    ck = make_checkpoint(tmp_path / "mol", "model.output=mol", "model.local_conditioning=false")
    code, _, err = gen(capsys, "--checkpoint", str(ck), "--seconds", "0.05", "-o", str(tmp_path / "m.wav"))
    assert code == 0 and "empty sketch" not in err
    assert "the fast path covers mu-law output" in err and "PyTorch step instead" in err  # the fallback
    audio, _ = sf.read(tmp_path / "m.wav")
    assert len(audio) == 800 and np.all(np.abs(audio) <= 1)


@pytest.mark.parametrize("case, words", [
    ("other format version", "text format version 2"),
    ("bad sketch", "s.txt:1:2: key 'H' is out of order"),
    ("missing sketch", "nothere.txt: no such file"),
    ("zero seconds", "--seconds: 0 must be a positive number"),
    ("missing checkpoint", "no such checkpoint"),
    ("other tick", "ticks of 25 ms"),
    ("unknown style", "--style rock"),
    ("no length", "give --seconds"),
    ("min-p out of range", "--min-p: 1 must be at least 0 and below 1"),
    ("denoise out of range", "--denoise 61: must be 0 (off) to 60 dB"),
])
def test_bad_input(capsys, tmp_path, ckpt, case, words):
    ck = ckpt
    args = ["--seconds", "0.05"]
    if case == "other format version":
        ck = make_checkpoint(tmp_path / "v2")
        meta = json.loads((ck / "config.json").read_text())
        (ck / "config.json").write_text(json.dumps({**meta, "text_format_version": 2}))
    elif case == "bad sketch":
        (tmp_path / "s.txt").write_text("LH ")
        args += ["--sketch", str(tmp_path / "s.txt")]
    elif case == "missing sketch":
        args += ["--sketch", str(tmp_path / "nothere.txt")]
    elif case == "zero seconds":
        args = ["--seconds", "0"]
    elif case == "missing checkpoint":
        ck = tmp_path / "nothere"
    elif case == "other tick":
        (tmp_path / "s.txt").write_text("{tick_ms=25}\nH \n")
        args += ["--sketch", str(tmp_path / "s.txt")]
    elif case == "unknown style":
        args += ["--style", "rock"]
    elif case == "no length":
        args = []
    elif case == "min-p out of range":
        args += ["--min-p", "1"]
    elif case == "denoise out of range":
        args += ["--denoise", "61"]
    code, _, err = gen(capsys, "--checkpoint", str(ck), *args, "-o", str(tmp_path / "o.wav"))
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.wav").exists()


def test_the_pytorch_engine_is_deterministic_too(capsys, tmp_path, ckpt):
    args = ["--checkpoint", str(ckpt), "--seconds", "0.05", "--engine", "torch", "--seed", "1"]
    assert gen(capsys, *args, "-o", str(tmp_path / "a.wav"))[0] == 0
    assert gen(capsys, *args, "-o", str(tmp_path / "b.wav"))[0] == 0
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    code, _, err = gen(capsys, "--checkpoint", str(make_checkpoint(tmp_path / "mol", "model.output=mol")),
                       "--seconds", "0.05", "--engine", "fast", "-o", str(tmp_path / "c.wav"))
    assert code == 2 and "--engine fast: the fast path covers mu-law output" in err


def test_a_model_can_ship_its_sampling_temperature(capsys, tmp_path):
    ck = make_checkpoint(tmp_path / "greedy")
    meta = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**meta, "sampling_temperature": 0.0}))
    for seed in ("1", "2"):
        assert gen(capsys, "--checkpoint", str(ck), "--seconds", "0.05", "--seed", seed, "-o", str(tmp_path / f"{seed}.wav"))[0] == 0
    assert (tmp_path / "1.wav").read_bytes() == (tmp_path / "2.wav").read_bytes()  # greedy: the seed does not matter
    assert gen(capsys, "--checkpoint", str(ck), "--seconds", "0.05", "--seed", "2", "--temperature", "1",
               "-o", str(tmp_path / "3.wav"))[0] == 0
    assert (tmp_path / "3.wav").read_bytes() != (tmp_path / "2.wav").read_bytes()


def test_a_model_can_ship_its_min_p(capsys, tmp_path):
    ck = make_checkpoint(tmp_path / "cut")
    meta = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**meta, "sampling_min_p": 0.999}))  # only the most likely value
    # the float kernel: in bf16 (cbf16) two of this random model's near-equal logits can round to a tie,
    # which min-p keeps both of, and then the seed picks
    for seed in ("1", "2"):
        assert gen(capsys, "--checkpoint", str(ck), "--seconds", "0.05", "--seed", seed, "--engine", "c",
                   "-o", str(tmp_path / f"{seed}.wav"))[0] == 0
    assert (tmp_path / "1.wav").read_bytes() == (tmp_path / "2.wav").read_bytes()
    assert gen(capsys, "--checkpoint", str(ck), "--seconds", "0.05", "--seed", "2", "--min-p", "0", "--engine", "c",
               "-o", str(tmp_path / "3.wav"))[0] == 0
    assert (tmp_path / "3.wav").read_bytes() != (tmp_path / "2.wav").read_bytes()


SPT, SR = 40, 800  # 50 ms ticks at 800 Hz: short takes that cross many ticks
SKETCH = T.parse("HLO HLO  H H H  JMQ JM Q ! x " * 2)  # 24 ticks, keys sounding up to the end


def small_model(**changes) -> WaveNet:
    cfg = ModelConfig(residual_channels=16, gate_channels=16, skip_channels=24, head_channels=32, layers_per_cycle=4,
                      cycles=2, cond_channels=8, n_classes=64, **changes)
    torch.manual_seed(1)
    model = WaveNet(cfg, SPT).eval()
    with torch.no_grad():  # a realistic scale: with the quiet default init a changed tick seldom changes a draw
        for p in model.parameters():
            p.mul_(2.0)
    return model


@pytest.mark.parametrize("engine", ["c", "c16", "numba", "torch"])
def test_a_longer_take_starts_with_the_shorter_one(engine):
    # the conditioning looks cond_lookahead_ticks ahead: it must not end where the request ends
    model = small_model()

    def take(ticks: int) -> np.ndarray:
        kw = dict(sample_rate_hz=SR, sketch=SKETCH, seed=3, batch=2)
        if engine == "torch":
            return play(model, ticks * SPT, engine="torch", **kw)
        return FastWaveNet(model, engine).generate(ticks * SPT, **kw)

    short, mid, long = take(12), take(20), take(30)  # 30 ticks: past the sketch's end
    assert short.shape == (2, 12 * SPT)
    assert np.array_equal(mid[:, : 12 * SPT], short) and np.array_equal(long[:, : 20 * SPT], mid)


def test_play_chooses_the_engine_in_one_place():
    model = small_model()
    assert choose_engine(model) == ("fast", None) and choose_engine(model, "torch") == ("torch", None)
    fast = play(model, 100, sample_rate_hz=SR, sketch=SKETCH, seed=2, batch=2)
    assert fast.shape == (2, 100) and fast.dtype == np.float32
    # the kernel chosen for a batch of takes (kernels.py measures one for a stream and one for a batch)
    batched = FastWaveNet(model, batch=2)
    assert np.array_equal(fast, batched.generate(100, sample_rate_hz=SR, sketch=SKETCH, seed=2, batch=2))
    mol = small_model(output="mol")
    engine, notice = choose_engine(mol)
    assert engine == "torch" and notice.endswith("generating with the PyTorch step instead (slower)")
    assert "mu-law" in notice
    with pytest.raises(WavegenError, match="--engine fast: the fast path covers mu-law output"):
        choose_engine(mol, "fast")
    assert play(mol, 50, sample_rate_hz=SR, sketch=SKETCH).shape == (1, 50)
