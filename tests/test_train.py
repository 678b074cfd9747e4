"""Training: bf16 on CPU, checkpoints, exact resume, SIGTERM, non-finite steps, DDP on two processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wavegen.cli import main
from wavegen.config import load_config
from wavegen.errors import WavegenError
from wavegen.nn import checkpoint
from wavegen.nn.model import WaveNet, loss_fn
from wavegen.train import loop as train_mod

ROOT = Path(__file__).parent.parent
TINY = ROOT / "configs" / "tiny.toml"


def tiny(*overrides: str):
    return load_config(TINY, ["train.sample_seconds=0.05", *overrides])


def test_train_in_process_with_bf16_autocast(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--config", str(TINY), "--data", str(tiny_dataset), "--out", str(run),
                 "--set", "train.mixed_precision=bf16", "--set", "train.steps=10"])
    out = capsys.readouterr().out
    assert code == 0 and "done at step 10" in out and "gap_bits" in out
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train_bits = [r["loss_bits"] for r in log if "loss_bits" in r]
    valid = [r for r in log if "valid_bits" in r]
    assert train_bits and all(0 < b < 9 for b in train_bits) and valid[-1]["step"] == 10
    assert [p.name for p in checkpoint.step_dirs(run)] == ["step-00000010"]
    assert (run / "best" / "model.safetensors").is_file()
    assert list((run / "samples").glob("step-00000010-*.wav"))
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    loaded = checkpoint.load(run)
    assert loaded.meta["step"] == 10 and loaded.sample_rate_hz == 16_000 and loaded.samples_per_tick == 800
    assert loaded.config.train.mixed_precision == "bf16"


def test_stop_and_resume_gives_the_same_weights(tiny_dataset, tmp_path):
    cfg = tiny("train.steps=8", "train.ckpt_every=100", "train.eval_every=4")
    whole = train_mod.train(cfg, tiny_dataset, tmp_path / "whole", show_progress=False, log=lambda m: None)
    first = train_mod.train(cfg, tiny_dataset, tmp_path / "split", stop_after=3, show_progress=False, log=lambda m: None)
    assert (whole.status, first.status, first.step) == ("done", "stopped", 3)
    second = train_mod.train(cfg, tiny_dataset, tmp_path / "split", show_progress=False, log=lambda m: None)
    assert (second.resumed_from, second.step, second.status) == (3, 8, "done")
    a = checkpoint.load_train_state(checkpoint.step_dirs(tmp_path / "whole")[-1])
    b = checkpoint.load_train_state(checkpoint.step_dirs(tmp_path / "split")[-1])
    for k in a["raw_weights"]:
        assert torch.equal(a["raw_weights"][k], b["raw_weights"][k]), k
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    assert whole.valid == second.valid


def test_resume_refuses_another_model(tiny_dataset, tmp_path):
    train_mod.train(tiny("train.steps=2"), tiny_dataset, tmp_path / "r", show_progress=False, log=lambda m: None)
    with pytest.raises(WavegenError, match="another model or data config"):
        train_mod.train(tiny("train.steps=4", "model.cycles=3"), tiny_dataset, tmp_path / "r", log=lambda m: None)


def test_keeps_the_last_checkpoints_and_the_best(tiny_dataset, tmp_path):
    cfg = tiny("train.steps=8", "train.ckpt_every=2", "train.eval_every=2", "train.keep_last=2",
               "train.sample_seconds=0")
    train_mod.train(cfg, tiny_dataset, tmp_path / "r", show_progress=False, log=lambda m: None)
    assert [p.name for p in checkpoint.step_dirs(tmp_path / "r")] == ["step-00000006", "step-00000008"]
    best = json.loads((tmp_path / "r" / "best" / "config.json").read_text())
    log = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    bits = {r["step"]: r["valid_bits"] for r in log if "valid_bits" in r}
    assert best["metrics"]["valid_bits"] == min(bits.values())
    assert not [p for p in (tmp_path / "r" / "checkpoints").iterdir() if p.name.startswith(".")]


def test_non_finite_losses_are_skipped_then_stop_the_run(tiny_dataset, tmp_path, monkeypatch):
    calls = {"n": 0}

    def sometimes_nan(output, out, targets):
        calls["n"] += 1
        loss = loss_fn(output, out, targets)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(train_mod, "loss_fn", sometimes_nan)
    res = train_mod.train(tiny("train.steps=4", "train.sample_seconds=0"), tiny_dataset, tmp_path / "a",
                          show_progress=False, log=lambda m: None)
    assert res.nonfinite_steps == 1 and res.step == 4
    weights = load_file(str(checkpoint.step_dirs(tmp_path / "a")[-1] / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())

    monkeypatch.setattr(train_mod, "loss_fn", lambda o, out, t: loss_fn(o, out, t) * float("nan"))
    with pytest.raises(WavegenError, match="3 non-finite losses in a row"):
        train_mod.train(tiny("train.steps=10", "train.max_nonfinite=3"), tiny_dataset, tmp_path / "b",
                        show_progress=False, log=lambda m: None)


def test_fp16_on_cpu_says_so_and_the_scaler_path_works(tiny_dataset, tmp_path):
    res = train_mod.train(tiny("train.steps=2", "train.mixed_precision=fp16", "train.sample_seconds=0"),
                          tiny_dataset, tmp_path / "f", show_progress=False, log=lambda m: None)
    assert any("fp16 mixed precision needs CUDA" in n for n in res.notices)
    # the loss-scaling path itself, on the CPU: scale, unscale, clip, step, update
    model = WaveNet(tiny().model, 800)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x = torch.randint(0, 256, (2, 400))
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.float16):
            out = model(x[:, :-1])
        loss = loss_fn("mulaw", out, x[:, 1:])
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    assert all(torch.isfinite(p).all() for p in model.parameters()) and scaler.get_scale() > 0


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_sigterm_saves_a_loadable_checkpoint_and_exits_0(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wavegen", "train", "--config", str(TINY), "--data", str(tiny_dataset),
         "--out", str(run), "--set", "train.steps=100000", "--set", "train.log_every=1",
         "--set", "train.eval_every=100000", "--set", "train.ckpt_every=100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_cli_env())
    deadline = time.time() + 120
    while not (run / "log.jsonl").exists() or not (run / "log.jsonl").read_text().strip():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "preempted at step" in out and "run the same command again to resume" in err
    loaded = checkpoint.load(checkpoint.step_dirs(run)[-1])
    assert loaded.meta["step"] >= 1


@pytest.mark.slow
def test_two_processes_see_different_data_and_end_with_identical_weights(tiny_dataset, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561",
           "-m", "wavegen", "train", "--config", str(TINY), "--data", str(tiny_dataset), "--out", str(run),
           "--set", "train.steps=4", "--set", "train.sample_seconds=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_cli_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((run / "ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["first_crop_indices"] != ranks[1]["first_crop_indices"]
    assert ranks[0]["first_items"] != ranks[1]["first_items"]
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert checkpoint.load(run).meta["step"] == 4


def test_gradient_accumulation_with_loader_workers(tiny_dataset, tmp_path):
    cfg = tiny("train.steps=2", "train.grad_accum=2", "data.num_workers=1", "train.sample_seconds=0")
    res = train_mod.train(cfg, tiny_dataset, tmp_path / "acc", show_progress=False, log=lambda m: None)
    rank = json.loads((tmp_path / "acc" / "ranks" / "rank-0.json").read_text())
    assert res.step == 2 and len(rank["first_items"]) == 4  # 2 steps x 2 micro-batches
    # a step of 2 micro-batches of 2 equals a step of one batch of 4 (same crops, same mean gradient)
    one = train_mod.train(tiny("train.steps=1", "data.batch_size=4", "train.sample_seconds=0", "train.ema_decay=0"),
                          tiny_dataset, tmp_path / "b4", show_progress=False, log=lambda m: None)
    two = train_mod.train(tiny("train.steps=1", "train.grad_accum=2", "train.sample_seconds=0", "train.ema_decay=0"),
                          tiny_dataset, tmp_path / "a2", show_progress=False, log=lambda m: None)
    assert one.step == two.step == 1
    wa = load_file(str(checkpoint.step_dirs(tmp_path / "b4")[-1] / "model.safetensors"))
    wb = load_file(str(checkpoint.step_dirs(tmp_path / "a2")[-1] / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-6)


def test_torch_compile_trains_the_same_model(tiny_dataset, tmp_path):
    eager = train_mod.train(tiny("train.steps=2", "train.sample_seconds=0", "train.ema_decay=0"),
                            tiny_dataset, tmp_path / "e", show_progress=False, log=lambda m: None)
    compiled = train_mod.train(tiny("train.steps=2", "train.sample_seconds=0", "train.ema_decay=0", "train.compile=true"),
                               tiny_dataset, tmp_path / "c", show_progress=False, log=lambda m: None)
    assert eager.step == compiled.step == 2
    a = load_file(str(checkpoint.step_dirs(tmp_path / "e")[-1] / "model.safetensors"))
    b = load_file(str(checkpoint.step_dirs(tmp_path / "c")[-1] / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-5)
