"""Faults a careful user hits in training and checkpoints (issue 12): nothing lost, nothing exhausted,
no record of what did not happen. Each test failed before its fix."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from wavegen.config import load_config
from wavegen.errors import WavegenError
from wavegen.nn import checkpoint
from wavegen.train import loop
from wavegen.train.wavenet import train_wavenet

ROOT = Path(__file__).parent.parent
TINY = ROOT / "configs" / "tiny.toml"


def test_a_set_error_names_the_set_not_the_config_file():
    with pytest.raises(WavegenError, match=r"^--set train.keep_last=0: train.keep_last must be positive$"):
        load_config(TINY, ["train.keep_last=0"])
    with pytest.raises(WavegenError, match=r"^--set train.mixed_precision=fp8: "):
        load_config(TINY, ["train.mixed_precision=fp8"])


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_settings_are_refused(value):
    with pytest.raises(WavegenError, match=rf"^--set train.lr={value} \[train\] lr: expected a finite number, got"):
        load_config(TINY, [f"train.lr={value}"])


def test_the_training_log_is_strict_json():
    """A NaN loss (or an infinite rate) is logged as null, not as the NaN or Infinity json.dumps writes."""
    log = io.StringIO()
    loop._Run.write_log(SimpleNamespace(log_file=log), {"step": 3, "loss_bits": math.nan, "samples_per_s": math.inf})
    line = log.getvalue()
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"not JSON: {c}")) == {
        "step": 3, "loss_bits": None, "samples_per_s": None}


def tiny(*overrides: str):
    return load_config(TINY, ["train.sample_seconds=0.05", *overrides])


def quiet(cfg, data, run, **kwargs):
    return train_wavenet(cfg, data, run, show_progress=False, log=lambda m: None, **kwargs)


def test_keep_last_never_deletes_the_newest_checkpoint(tiny_dataset, tmp_path):
    """Validation refuses keep_last = 0; and should a record hold it, the loop still keeps the newest."""
    cfg = tiny("train.steps=3", "train.ckpt_every=1", "train.eval_every=100")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, keep_last=0))
    quiet(cfg, tiny_dataset, tmp_path / "r")
    assert [p.name for p in checkpoint.step_dirs(tmp_path / "r")] == ["step-00000003"]


@pytest.mark.parametrize("what", ["checkpoint", "shipped", "other"])
def test_out_refuses_a_folder_that_is_not_a_run(tiny_dataset, tmp_path, what):
    """A checkpoint, a shipped model's folder or any other non-empty folder is not overwritten."""
    folder = tmp_path / "f"
    if what == "other":
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
    else:
        shutil.copytree(checkpoint.resolve("harpsichord-cpu"), folder)
        if what == "checkpoint":  # a training checkpoint holds its state besides
            (folder / checkpoint.STATE).mkdir()
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    with pytest.raises(WavegenError, match=r"not empty and not a wavegen run folder"):
        quiet(tiny("train.steps=1"), tiny_dataset, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_a_run_folder_from_before_the_marker_still_resumes(tiny_dataset, tmp_path):
    cfg = tiny("train.steps=3", "train.eval_every=100")
    quiet(cfg, tiny_dataset, tmp_path / "r", stop_after=1)
    (tmp_path / "r" / loop.RUN_MARKER).unlink()
    assert quiet(cfg, tiny_dataset, tmp_path / "r").resumed_from == 1
    assert (tmp_path / "r" / loop.RUN_MARKER).is_file()

