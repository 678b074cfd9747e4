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



HOLD_LOCK = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.seek(0); f.truncate(); f.write(f"process {os.getpid()} on testhost\\n"); f.flush()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_second_trainer_is_refused_and_a_dead_ones_lock_taken_over(tiny_dataset, tmp_path):
    import subprocess
    import sys

    run = tmp_path / "r"
    cfg = tiny("train.steps=2", "train.eval_every=100")
    quiet(cfg, tiny_dataset, run, stop_after=1)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run / loop.RUN_LOCK)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = (run / "log.jsonl").read_text()
        with pytest.raises(WavegenError, match=rf"process {holder.pid} on testhost is training into this run folder"):
            quiet(cfg, tiny_dataset, run)
        assert (run / "log.jsonl").read_text() == before and len(checkpoint.step_dirs(run)) == 1
    finally:
        holder.kill()  # kill -9: it never releases the lock; the kernel drops it
        holder.wait()
    res = quiet(cfg, tiny_dataset, run)
    assert (res.resumed_from, res.step) == (1, 2)
    assert any(f"took over the run folder from process {holder.pid} on testhost" in n for n in res.notices)
    assert (run / loop.RUN_LOCK).read_text() == ""  # released on a clean end: the next run takes no one over
    assert not any("took over" in n for n in quiet(tiny("train.steps=3", "train.eval_every=100"), tiny_dataset,
                                                      run).notices)


def test_a_resume_applies_a_new_lr_and_records_it(tiny_dataset, tmp_path):
    run = tmp_path / "r"
    quiet(tiny("train.steps=8", "train.eval_every=100"), tiny_dataset, run, stop_after=6)
    res = quiet(tiny("train.steps=8", "train.eval_every=100", "train.lr=0.0005", "train.weight_decay=0.01"),
                tiny_dataset, run)
    assert res.resumed_from == 6
    assert any("changed settings: train.lr 0.001 -> 0.0005, train.weight_decay 0.0 -> 0.01" in n for n in res.notices)
    state = checkpoint.load_train_state(checkpoint.step_dirs(run)[-1])
    group = state["optimizer"]["param_groups"][0]
    # step 8 of 8 with 5 warm-up steps: the cosine has reached min_lr_ratio (0.1) of the new lr
    assert state["scheduler"]["base_lrs"] == [0.0005] and group["lr"] == pytest.approx(0.0005 * 0.1)
    assert group["weight_decay"] == 0.01
    assert json.loads((run / "config.json").read_text())["config"]["train"]["lr"] == 0.0005
    assert json.loads((checkpoint.step_dirs(run)[-1] / "config.json").read_text())["config"]["train"]["lr"] == 0.0005


def test_a_resume_refuses_settings_that_would_make_another_run(tiny_dataset, tmp_path):
    run = tmp_path / "r"
    quiet(tiny("train.steps=4", "train.eval_every=100"), tiny_dataset, run, stop_after=2)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(WavegenError, match=r"cannot change on resume: data.batch_size 2 -> 3, train.seed 0 -> 1;"):
        quiet(tiny("train.steps=4", "train.seed=1", "data.batch_size=3"), tiny_dataset, run)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != loop.RUN_LOCK} == {
        p: b for p, b in before.items() if p.name != loop.RUN_LOCK}


class Hostile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "pwned"))


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


@pytest.mark.parametrize("damage", ["raw.safetensors", "trainer.pt", "config.json", "hostile trainer.pt"])
def test_a_broken_newest_checkpoint_is_set_aside_and_the_one_before_resumed(tiny_dataset, tmp_path, damage):
    import torch

    run = tmp_path / "r"
    cfg = tiny("train.steps=6", "train.ckpt_every=2", "train.eval_every=100", "train.keep_last=3")
    quiet(cfg, tiny_dataset, run, stop_after=4)
    newest = checkpoint.step_dirs(run)[-1]
    assert newest.name == "step-00000004"
    pwned = tmp_path / "pwned"
    if damage == "config.json":
        (newest / "config.json").write_text('{"step": 4, ')
        named = newest / "config.json"
    elif damage == "hostile trainer.pt":
        torch.save({"step": Hostile(pwned)}, newest / "state" / "trainer.pt")
        named = newest / "state" / "trainer.pt"
    else:
        named = newest / "state" / damage
        _truncate(named)
    res = quiet(cfg, tiny_dataset, run)
    assert (res.resumed_from, res.step) == (2, 6)
    notice = next(n for n in res.notices if "set aside" in n)
    assert str(named) in notice and str(run / "checkpoints" / "broken-step-00000004") in notice
    if damage == "hostile trainer.pt":
        assert "not a wavegen checkpoint, refusing to unpickle it" in notice and not pwned.exists()
    assert (run / "checkpoints" / "broken-step-00000004").is_dir()  # kept for a look, out of the rotation
    assert [p.name for p in checkpoint.step_dirs(run)] == ["step-00000002", "step-00000004", "step-00000006"]


def test_a_broken_run_record_is_rewritten_from_the_newest_checkpoint(tiny_dataset, tmp_path):
    run = tmp_path / "r"
    cfg = tiny("train.steps=3", "train.eval_every=100")
    quiet(cfg, tiny_dataset, run, stop_after=2)
    (run / "config.json").write_text("{not json")
    res = quiet(cfg, tiny_dataset, run)
    assert res.resumed_from == 2 and any(f"{run / 'config.json'}: unreadable" in n for n in res.notices)
    # the config as the run resolved it: model.velocity "auto" is recorded as what it decided (this
    # rendered dataset has no velocities)
    resolved = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, velocity=False))
    assert json.loads((run / "config.json").read_text())["config"] == resolved.to_dict()


def test_a_crash_leaves_no_temporaries_and_no_step_logged_twice(tiny_dataset, tmp_path):
    run = tmp_path / "r"
    cfg = tiny("train.steps=6", "train.ckpt_every=2", "train.eval_every=100", "train.log_every=1")
    quiet(cfg, tiny_dataset, run, stop_after=3)
    # as if killed after logging step 3 and while writing its checkpoint: step-3 never renamed into place
    shutil.rmtree(checkpoint.step_dirs(run)[-1])
    stale = run / "checkpoints" / ".step-00000003.k2j4.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    with (run / "log.jsonl").open("a") as f:
        f.write('{"step": 3, "loss_bi')  # a line cut short by the kill
    res = quiet(cfg, tiny_dataset, run)
    assert res.resumed_from == 2 and not stale.exists()
    assert any("removed" in n and ".step-00000003.k2j4.tmp" in n for n in res.notices)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss_bits" in r] == [1, 2, 3, 4, 5, 6]


def test_a_crash_between_the_renames_puts_the_previous_best_back(tmp_path):
    (tmp_path / ".best.old").mkdir()
    (tmp_path / ".best.old" / "config.json").write_text("{}")
    (tmp_path / ".best.x1.tmp").mkdir()
    done = checkpoint.clean_partial(tmp_path)
    assert (tmp_path / "best" / "config.json").is_file() and not (tmp_path / ".best.x1.tmp").exists()
    assert len(done) == 2


def test_weights_of_another_shape_are_named(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(checkpoint.resolve("harpsichord-cpu"), folder)
    record = json.loads((folder / "config.json").read_text())
    record["config"]["model"]["skip_channels"] = 96
    (folder / "config.json").write_text(json.dumps(record))
    with pytest.raises(WavegenError, match=r"model.safetensors: cannot load these weights into the model its config "
                       r"describes \(\d+ of another shape, e\.g\. [\w.]+: \[\d+(, \d+)*\] in the file, \[96"):
        checkpoint.load(folder)


def _strings(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)
    elif isinstance(x, str):
        yield x


def test_records_hold_no_paths_of_the_machine_they_were_made_on(tiny_dataset, tmp_path):
    quiet(tiny("train.steps=1", "train.eval_every=100"), tiny_dataset, tmp_path / "r")
    made = json.loads((tmp_path / "r" / "config.json").read_text())
    assert made["dataset"]["name"] == "ds" and len(made["dataset"]["manifest_sha256"]) == 64
    records = [made, *(json.loads(p.read_text()) for p in (ROOT / "wavegen" / "models").glob("*/config.json")),
               *(json.loads(p.read_text()) for p in (ROOT / "data" / "resume").rglob("config.json"))]
    assert len(records) >= 5
    for record in records:
        assert not [s for s in _strings(record) if s.startswith("/") or str(tmp_path) in s]
