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
