"""Faults a careful user hits on the command line: bad numbers, requests past the limits, outputs that
cannot be written, closed pipes and full disks. Each is one line on stderr and an exit status, never a
traceback, a wrong answer with exit 0, or work thrown away after it was done."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import one_error_line, run
from test_generate import make_checkpoint, small_model

from wavegen.errors import WavegenError
from wavegen.synth.generate import play


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "tiny")


@pytest.mark.parametrize("argv, words", [
    (["generate", "--temperature", "nan"], "--temperature: nan must be a finite number"),
    (["generate", "--temperature", "-1"], "-1 must be a finite number, 0 or more"),
    (["generate", "--temperature", "inf"], "--temperature"),
    (["generate", "--seconds", "nan"], "--seconds"),
    (["generate", "--seconds", "inf"], "--seconds"),
    (["generate", "--min-p", "nan"], "--min-p"),
    (["generate", "--min-p", "1"], "--min-p"),
    (["evaluate", "--seconds", "nan"], "--seconds"),
    (["evaluate", "--pieces", "0"], "--pieces"),
    (["compose", "--seconds", "inf"], "--seconds"),
    (["compose", "--ticks", "-5"], "--ticks"),
    (["compose", "--temperature", "nan"], "--temperature"),
    (["evaluate-composer", "--temperature", "-0.5"], "--temperature"),
])
def test_every_number_is_checked_by_its_option_type(capsys, tmp_path, argv, words):
    code, out, err = run(capsys, *argv, "-o", str(tmp_path / "o.wav"))
    assert code == 2 and not out
    one_error_line(err, "wavegen", "error", words)
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("engine", ["fast", "torch"])
@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -1.0])
def test_both_engines_refuse_a_temperature_that_is_not_a_number_of_0_or_more(engine, temperature):
    with pytest.raises(WavegenError, match="--temperature"):
        play(small_model(), 10, sample_rate_hz=16_000, engine=engine, temperature=temperature)


def test_the_model_sampling_refuses_it_too(ckpt):
    from wavegen.nn import checkpoint

    loaded = checkpoint.load(str(ckpt))
    with pytest.raises(WavegenError, match="--temperature nan"):
        loaded.sampling(float("nan"))
    assert loaded.sampling(0.0)["temperature"] == 0.0


# requests beyond the documented limits (notes/limits.py): refused up front, before a model is loaded or a
# sample played, on one line naming the limit

@pytest.fixture
def nothing_is_played(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the work started before the request was checked")
    monkeypatch.setattr("wavegen.synth.takes.play", refuse)
    monkeypatch.setattr("wavegen.compose.piece.compose", refuse)
    monkeypatch.setattr("wavegen.compose.perform.stream", refuse)


@pytest.mark.parametrize("argv, words", [
    (["generate", "--seconds", "1e5", "--checkpoint", "no-such-model"], "7200 s (2 h)"),
    (["generate", "--seconds", "1", "--batch", "100000", "--checkpoint", "no-such-model"], "1 to 256 takes"),
    (["compose", "--seconds", "1e9"], "7200 s (2 h)"),
    (["compose", "--seconds", "1e9", "--stream", "-"], "7200 s (2 h)"),
    (["compose", "--ticks", "1000000000"], "1 to 144,000 ticks of 50 ms"),
])
def test_a_request_past_the_limits_is_refused_up_front(capsys, tmp_path, nothing_is_played, argv, words):
    code, out, err = run(capsys, *argv, *(["-o", str(tmp_path / "o.wav")] if argv[0] == "generate" else []))
    assert code == 2 and not out
    one_error_line(err, "wavegen: error:", words)


def test_takes_that_would_not_fit_in_memory_are_refused_before_they_are_played(capsys, tmp_path, ckpt,
                                                                              nothing_is_played):
    code, out, err = run(capsys, "generate", "--checkpoint", str(ckpt), "--seconds", "3600", "--batch", "200",
                         "-o", str(tmp_path / "o.wav"))
    assert code == 2 and not out
    one_error_line(err, "--batch 200", "268,435,456 (1 GiB of audio)")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0, 0.0, 1e5])
def test_the_library_checks_the_length_too(tmp_path, seconds):
    from wavegen.evaluate.report import evaluate_to
    from wavegen.synth.takes import generate_takes

    with pytest.raises(WavegenError, match="--seconds"):
        generate_takes(tmp_path / "o.wav", model="no-such-model", seconds=seconds)
    with pytest.raises(WavegenError, match="--seconds"):
        evaluate_to(tmp_path / "r.json", model="no-such-model", data=tmp_path / "none", seconds=seconds)


# --traceback after the command, as well as before it

@pytest.mark.parametrize("where", ["before", "after"])
def test_traceback_goes_before_or_after_the_command(capsys, monkeypatch, tmp_path, where):
    def broken(*a, **k):
        raise RuntimeError("a bug")
    monkeypatch.setattr("wavegen.notes.midi.read_midi", broken)
    argv = ["encode", str(tmp_path / "x.mid")]
    code, _, err = run(capsys, *(["--traceback", *argv] if where == "before" else [*argv, "--traceback"]))
    assert code == 1 and "Traceback" in err and "RuntimeError: a bug" in err
    code, _, err = run(capsys, *argv)
    assert code == 1 and "Traceback" not in err and "internal error: RuntimeError: a bug" in err


# --show-config: every section and key with its value, then exit without training

@pytest.mark.parametrize("command, kind", [("train", "wavenet"), ("train-composer", "composer")])
def test_show_config_lists_every_setting_and_reads_back(capsys, tmp_path, monkeypatch, command, kind):
    import dataclasses
    import tomllib

    from wavegen.config import load_config

    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, command, "--show-config", "--set", "train.lr=0.5")
    assert code == 0 and not err and not list(tmp_path.iterdir())  # nothing trained, no run folder
    table = tomllib.loads(out)
    cfg = load_config(None, ["train.lr=0.5"], kind=kind)
    assert table == cfg.to_dict()  # every section and every key, with its value
    assert [f.name for f in dataclasses.fields(cfg)] == list(table)
    assert "lr = 0.5  # default 0.001" in out
    assert "keep_last = 2  # checkpoints kept besides the best" in out
    (tmp_path / "shown.toml").write_text(out)
    assert load_config(tmp_path / "shown.toml", kind=kind) == cfg


def test_show_config_applies_the_config_file(capsys):
    lstm = Path(__file__).parent.parent / "configs" / "composer-lstm.toml"
    code, out, _ = run(capsys, "train-composer", "--show-config", "--config", str(lstm))
    assert code == 0 and 'kind = "lstm"  # default "markov"' in out


def test_train_still_needs_a_run_folder(capsys):
    code, out, err = run(capsys, "train")
    assert code == 2 and not out
    one_error_line(err, "--out", "--show-config")


# a style the model does not know: --style is refused (generate); a sketch header's is a warning, not silence

@pytest.fixture(scope="module")
def styled(tmp_path_factory) -> Path:
    """A tiny WaveNet that learned two styles."""
    import torch
    from test_generate import TINY

    from wavegen.config import load_config
    from wavegen.nn import checkpoint
    from wavegen.nn.model import WaveNet

    cfg = load_config(TINY, ["model.n_styles=2"])
    torch.manual_seed(0)
    meta = {"sample_rate_hz": 16_000, "tick_ms": 50.0, "samples_per_tick": 800, "step": 0,
            "styles": ["baroque", "romantic"]}
    return checkpoint.save(tmp_path_factory.mktemp("styled") / "styled", weights=WaveNet(cfg.model, 800).state_dict(),
                           config=cfg, meta=meta)


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("wavegen: warning:")]


@pytest.mark.parametrize("header, warned", [("style=jazz", True), ("style=romantic", False), ("", False)])
def test_a_sketch_style_the_model_does_not_know_is_a_warning(capsys, tmp_path, styled, header, warned):
    sketch = tmp_path / "s.txt"
    sketch.write_text(f"{{tick_ms=50 ticks=2 {header}}}\nH H \n".replace(" }", "}"))
    code, _, err = run(capsys, "generate", "--checkpoint", str(styled), "--sketch", str(sketch), "-o",
                       str(tmp_path / "o.wav"))
    assert code == 0
    if warned:
        [line] = warnings_in(err)
        assert "'jazz'" in line and "baroque, romantic" in line and "plays 'baroque'" in line
    else:
        assert not warnings_in(err)


def test_style_index_warns_only_for_a_model_with_styles(styled, ckpt):
    from wavegen.nn import checkpoint

    said: list[str] = []
    assert checkpoint.load(str(styled)).style_index(None, "romantic", said.append) == 1
    assert checkpoint.load(str(styled)).style_index(None, "jazz", said.append) is None and len(said) == 1
    assert checkpoint.load(str(ckpt)).style_index(None, "bach", said.append) is None and len(said) == 1
    with pytest.raises(WavegenError, match="--style jazz: the model knows the styles: baroque, romantic"):
        checkpoint.load(str(styled)).style_index("jazz")


def test_compose_perform_plays_the_sketch_style_or_says_it_cannot(capsys, tmp_path, styled):
    code, _, err = run(capsys, "compose", "--model", "composer-markov", "--seconds", "0.2", "--checkpoint",
                       str(styled), "-o", str(tmp_path / "s.txt"), "--perform", str(tmp_path / "s.wav"))
    assert code == 0 and (tmp_path / "s.wav").exists()
    [line] = warnings_in(err)
    assert "'bach'" in line and "baroque, romantic" in line


def test_render_takes_no_style(capsys, tmp_path):
    code, _, err = run(capsys, "render", "x.txt", "-o", str(tmp_path / "o.wav"), "--style", "jazz")
    assert code == 2
    one_error_line(err, "unrecognized arguments: --style jazz")


class Recorder:
    """A composer that writes silence and records the style it was asked for."""
    kind, order, tick_ms, styles = "lstm", 4, 50.0, ["bach", "fugue"]

    def __init__(self):
        self.asked: list[str | None] = []

    def sample(self, n, *, temperature=1.0, rng=None, prime=(), style=None):
        self.asked.append(style)
        return [""] * n


def test_the_lstm_writes_in_the_style_asked_for_with_a_form_too():
    from wavegen.compose import piece

    for form in (None, "AB"):
        c = Recorder()
        composed = piece.compose(c, 16, form=form, style="fugue")
        assert c.asked and set(c.asked) == {"fugue"} and composed.keytext.meta["style"] == "fugue"


def test_the_stream_composes_in_the_style_asked_for(tmp_path):
    import numpy as np

    from wavegen.audio import GrowingWav
    from wavegen.synth.stream import stream_compose

    class Player:
        def play(self, ticks, flush=False):
            return np.zeros(10 * len(ticks), dtype=np.float32)

    c = Recorder()
    stream_compose(c, Player(), GrowingWav(str(tmp_path / "s.wav"), 16_000), [], np.random.default_rng(0), limit=30,
                   style="fugue")
    assert c.asked and set(c.asked) == {"fugue"}


# the demo shows its progress as generate does

def test_demo_reports_its_progress(capsys, monkeypatch, tmp_path, ckpt):
    from wavegen.cli.common import Bar

    seen = []
    monkeypatch.setattr(Bar, "start", lambda self, total, rate_hz=0: seen.append(("start", total, rate_hz)))
    monkeypatch.setattr(Bar, "to", lambda self, done, total=None: seen.append(("to", done)))
    code, out, _ = run(capsys, "demo", "-o", str(tmp_path / "demo"), "--checkpoint", str(ckpt), "--seconds", "0.2")
    assert code == 0 and "x real time" in out
    done = [n for what, n, *_ in seen[1:]]
    assert seen[0] == ("start", 3200, 16_000) and done == sorted(done) and done[-1] == 3200
