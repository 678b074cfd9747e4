"""Training: bf16 on CPU, checkpoints, exact resume, SIGTERM, non-finite steps, DDP on two processes.

What the loop did with its data and gradients is seen through tests/recorded_train.py's `Recording` task
wrapper (nothing of it is in the package)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from recorded_train import Recording
from safetensors.torch import load_file

from wavegen.cli import main
from wavegen.config import ComposerConfig, load_config
from wavegen.data import dataset
from wavegen.errors import WavegenError
from wavegen.nn import checkpoint
from wavegen.nn.model import WaveNet, loss_fn
from wavegen.train import loop as train_mod
from wavegen.train import wavenet as wavenet_mod
from wavegen.train.wavenet import WaveNetTask, train_wavenet

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
    whole = train_wavenet(cfg, tiny_dataset, tmp_path / "whole", show_progress=False, log=lambda m: None)
    first = train_wavenet(cfg, tiny_dataset, tmp_path / "split", stop_after=3, show_progress=False, log=lambda m: None)
    assert (whole.status, first.status, first.step) == ("done", "stopped", 3)
    second = train_wavenet(cfg, tiny_dataset, tmp_path / "split", show_progress=False, log=lambda m: None)
    assert (second.resumed_from, second.step, second.status) == (3, 8, "done")
    a = checkpoint.load_train_state(checkpoint.step_dirs(tmp_path / "whole")[-1])
    b = checkpoint.load_train_state(checkpoint.step_dirs(tmp_path / "split")[-1])
    for k in a["raw_weights"]:
        assert torch.equal(a["raw_weights"][k], b["raw_weights"][k]), k
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    assert whole.valid == second.valid


def test_resume_refuses_another_model(tiny_dataset, tmp_path):
    train_wavenet(tiny("train.steps=2"), tiny_dataset, tmp_path / "r", show_progress=False, log=lambda m: None)
    with pytest.raises(WavegenError, match=r"another model config \(model.cycles 2 -> 3\)"):
        train_wavenet(tiny("train.steps=4", "model.cycles=3"), tiny_dataset, tmp_path / "r", log=lambda m: None)


def test_a_composer_setting_does_not_stop_a_wavenet_resume(tiny_dataset, tmp_path):
    run = tmp_path / "r"
    train_wavenet(tiny("train.steps=2"), tiny_dataset, run, show_progress=False, log=lambda m: None)
    # a run record written before the WaveNet had its own config holds a [composer] section too
    record = json.loads((run / "config.json").read_text())
    assert "composer" not in record["config"]
    record["config"]["composer"] = {**dataclasses.asdict(ComposerConfig()), "hidden": 17, "kind": "lstm"}
    (run / "config.json").write_text(json.dumps(record))
    res = train_wavenet(tiny("train.steps=4"), tiny_dataset, run, show_progress=False, log=lambda m: None)
    assert (res.resumed_from, res.step, res.status) == (2, 4, "done")
    # and a WaveNet run cannot be given a composer setting at all
    with pytest.raises(WavegenError, match="composer settings: they go in `wavegen train-composer`'s config"):
        tiny("composer.hidden=18")
    with pytest.raises(WavegenError, match=r"another model config \(model.cycles 2 -> 3\)"):
        train_wavenet(tiny("train.steps=6", "model.cycles=3"), tiny_dataset, run, log=lambda m: None)


def test_init_starts_a_new_run_from_another_runs_weights(tiny_dataset, tmp_path):
    quiet = {"show_progress": False, "log": lambda m: None}
    train_wavenet(tiny("train.steps=3"), tiny_dataset, tmp_path / "a", **quiet)
    source = checkpoint.load(tmp_path / "a")  # its inference (EMA) weights
    res = train_wavenet(tiny("train.steps=2", "train.lr=1e-12", f"train.init={tmp_path / 'a'}"),
                        tiny_dataset, tmp_path / "b", **quiet)
    assert (res.resumed_from, res.step) == (0, 2)  # a new run: its own step count, optimizer and schedule
    state = checkpoint.load_train_state(checkpoint.step_dirs(tmp_path / "b")[-1])
    for k, v in source.model.state_dict().items():  # lr 1e-12: the weights are still the ones it started from
        assert torch.allclose(state["raw_weights"][k], v, atol=1e-9), k
        assert torch.allclose(state["ema"][k], v.float()), k
    record = json.loads((tmp_path / "b" / "config.json").read_text())
    assert record["init"] == f"{tmp_path / 'a' / 'best'} (step 3)"
    # without train.init the same run starts elsewhere
    fresh = train_wavenet(tiny("train.steps=2", "train.lr=1e-12"), tiny_dataset,
                          tmp_path / "c", **quiet)
    other = checkpoint.load_train_state(checkpoint.step_dirs(fresh.run_dir)[-1])["raw_weights"]
    assert not all(torch.allclose(other[k], v, atol=1e-3) for k, v in source.model.state_dict().items())


def test_init_from_fewer_mu_law_levels_starts_predicting_what_the_source_did(tiny_dataset, tmp_path):
    quiet = {"show_progress": False, "log": lambda m: None}
    train_wavenet(tiny("train.steps=2"), tiny_dataset, tmp_path / "a", **quiet)
    source = checkpoint.load(tmp_path / "a")
    n = source.config.model.n_classes
    res = train_wavenet(tiny("train.steps=1", "train.lr=1e-12", f"model.n_classes={4 * n}",
                             f"train.init={tmp_path / 'a'}"), tiny_dataset, tmp_path / "b", **quiet)
    record = json.loads((tmp_path / "b" / "config.json").read_text())
    assert record["init"].endswith(f"(step 2; its {n} mu-law levels re-cut into {4 * n})")
    raw = checkpoint.load_train_state(checkpoint.step_dirs(res.run_dir)[-1])["raw_weights"]
    assert raw["embed.weight"].shape[0] == 4 * n
    for k, v in source.model.state_dict().items():  # everything but the levels' rows is the source's
        if k != "embed.weight" and not k.startswith("head.3."):
            assert torch.allclose(raw[k], v, atol=1e-9), k


def test_init_refuses_weights_of_another_shape_before_writing_a_run(tiny_dataset, tmp_path):
    train_wavenet(tiny("train.steps=2"), tiny_dataset, tmp_path / "a", show_progress=False, log=lambda m: None)
    with pytest.raises(WavegenError, match=r"train.init = .*: its weights do not fit this run's \[model\]"):
        train_wavenet(tiny("train.steps=2", "model.cycles=3", f"train.init={tmp_path / 'a'}"), tiny_dataset,
                      tmp_path / "b", show_progress=False, log=lambda m: None)
    assert not (tmp_path / "b" / "config.json").exists() and not checkpoint.step_dirs(tmp_path / "b")
    with pytest.raises(WavegenError, match="no such checkpoint"):
        train_wavenet(tiny("train.steps=2", f"train.init={tmp_path / 'nothing'}"), tiny_dataset, tmp_path / "c",
                      show_progress=False, log=lambda m: None)


def test_keeps_the_last_checkpoints_and_the_best(tiny_dataset, tmp_path):
    cfg = tiny("train.steps=8", "train.ckpt_every=2", "train.eval_every=2", "train.keep_last=2",
               "train.sample_seconds=0")
    train_wavenet(cfg, tiny_dataset, tmp_path / "r", show_progress=False, log=lambda m: None)
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

    monkeypatch.setattr(wavenet_mod, "loss_fn", sometimes_nan)
    res = train_wavenet(tiny("train.steps=4", "train.sample_seconds=0"), tiny_dataset, tmp_path / "a",
                          show_progress=False, log=lambda m: None)
    assert res.nonfinite_steps == 1 and res.step == 4
    weights = load_file(str(checkpoint.step_dirs(tmp_path / "a")[-1] / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())

    monkeypatch.setattr(wavenet_mod, "loss_fn", lambda o, out, t: loss_fn(o, out, t) * float("nan"))
    with pytest.raises(WavegenError, match="3 non-finite losses in a row"):
        train_wavenet(tiny("train.steps=10", "train.max_nonfinite=3"), tiny_dataset, tmp_path / "b",
                        show_progress=False, log=lambda m: None)


@pytest.mark.parametrize(("flags", "want"), [
    (("avx2", "fma"), "no"), (("avx512f", "avx512bw", "avx2"), "bf16"), (("avx512_bf16",), "bf16"),
    (("amx_bf16",), "bf16"), (("asimd",), "no"), (("asimd", "bf16"), "bf16"),
])
def test_auto_precision_takes_bf16_only_where_the_cpu_runs_it_fast(flags, want, monkeypatch):
    from wavegen import machine

    monkeypatch.setattr(machine, "cpu", lambda: ("a CPU", flags))
    p = train_mod.precision("auto", torch.device("cpu"))
    assert p.name == want and (p.dtype is torch.bfloat16) == (want == "bf16")
    assert p.notice.startswith(f"mixed precision auto: {'bf16' if want == 'bf16' else 'fp32'} (")


def _cpu_fp16(init_scale: float):
    """What `loop.precision` gives fp16 on CUDA, on the CPU: fp16 autocast and a loss scaler (growing
    every 2 good steps, so that a few steps of the tiny model see it grow and overflow)."""
    def precision(mixed_precision: str, device: torch.device, probe=None) -> train_mod.Precision:
        assert mixed_precision == "fp16"
        scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=2)
        return train_mod.Precision("fp16", "cpu", torch.float16, scaler)
    return precision


def test_fp16_on_cpu_says_so_and_the_scaler_path_works(tiny_dataset, tmp_path, monkeypatch):
    res = train_wavenet(tiny("train.steps=2", "train.mixed_precision=fp16", "train.sample_seconds=0"),
                        tiny_dataset, tmp_path / "f", show_progress=False, log=lambda m: None)
    assert any("fp16 mixed precision needs CUDA" in n for n in res.notices)
    # the loop's loss-scaling path, on the CPU. A scale so large that every gradient overflows: each step
    # is skipped (the weights stay as built) and halves the scale; none counts as a non-finite loss.
    cfg = tiny("train.steps=3", "train.mixed_precision=fp16", "train.sample_seconds=0")
    monkeypatch.setattr(train_mod, "precision", _cpu_fp16(2.0**40))
    res = train_wavenet(cfg, tiny_dataset, tmp_path / "skip", show_progress=False, log=lambda m: None)
    state = checkpoint.load_train_state(checkpoint.step_dirs(tmp_path / "skip")[-1])
    torch.manual_seed(cfg.train.seed)
    built = WaveNet(cfg.model, 800).state_dict()
    assert res.step == 3 and res.nonfinite_steps == 0 and state["scaler"]["scale"] == 2.0**37
    for k, w in state["raw_weights"].items():
        assert torch.equal(w, built[k]), k
    # a workable scale: the scaler grows it, an overflow skips a step and halves it; its state is saved
    # and restored, so a run stopped and resumed ends with the weights and scale of one run straight through
    monkeypatch.setattr(train_mod, "precision", _cpu_fp16(2.0**16))
    cfg = tiny("train.steps=6", "train.mixed_precision=fp16", "train.sample_seconds=0", "train.eval_every=100")
    whole = train_wavenet(cfg, tiny_dataset, tmp_path / "whole", show_progress=False, log=lambda m: None)
    train_wavenet(cfg, tiny_dataset, tmp_path / "split", stop_after=3, show_progress=False, log=lambda m: None)
    split = train_wavenet(cfg, tiny_dataset, tmp_path / "split", show_progress=False, log=lambda m: None)
    assert whole.step == split.step == 6 and split.resumed_from == 3
    a = checkpoint.load_train_state(checkpoint.step_dirs(tmp_path / "whole")[-1])
    b = checkpoint.load_train_state(checkpoint.step_dirs(tmp_path / "split")[-1])
    assert a["scaler"] == b["scaler"] and a["scaler"]["scale"] < 2.0**16 * 2**3  # it did skip a step
    for k in a["raw_weights"]:
        assert torch.isfinite(a["raw_weights"][k]).all(), k
        assert torch.equal(a["raw_weights"][k], b["raw_weights"][k]), k


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
    # --standalone: the launcher takes a free port itself (a fixed one fails when two suites run at once)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "recorded_train.py"), "--config", str(TINY), "--data", str(tiny_dataset),
           "--out", str(run), "--set", "train.steps=4", "--set", "train.sample_seconds=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_cli_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((run / "ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [4, 4]
    assert ranks[0]["first_crop_indices"] != ranks[1]["first_crop_indices"]
    assert ranks[0]["first_items"] != ranks[1]["first_items"]
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert checkpoint.load(run).meta["step"] == 4


def _recorded(cfg, data_dir: Path, run_dir: Path) -> tuple[train_mod.TrainResult, Recording]:
    task = Recording(WaveNetTask(cfg, dataset.load(data_dir)))
    return train_mod.train(task, run_dir, show_progress=False, log=lambda m: None), task


def test_gradient_accumulation_with_loader_workers(tiny_dataset, tmp_path):
    cfg = tiny("train.steps=2", "train.grad_accum=2", "data.num_workers=1", "train.sample_seconds=0")
    res, seen = _recorded(cfg, tiny_dataset, tmp_path / "acc")
    assert res.step == 2 and len(seen.batches) == 4  # 2 steps x 2 micro-batches
    # a step of 2 micro-batches of 2 equals a step of one batch of 4: same crops, same mean gradient
    one, one_seen = _recorded(tiny("train.steps=1", "data.batch_size=4", "train.sample_seconds=0", "train.ema_decay=0"),
                              tiny_dataset, tmp_path / "b4")
    two, two_seen = _recorded(tiny("train.steps=1", "train.grad_accum=2", "train.sample_seconds=0", "train.ema_decay=0"),
                              tiny_dataset, tmp_path / "a2")
    assert one.step == two.step == 1
    assert one_seen.batches[0]["index"] == two_seen.batches[0]["index"] + two_seen.batches[1]["index"]
    assert one_seen.grads.keys() == two_seen.grads.keys() and one_seen.grads
    for k in one_seen.grads:  # the gradient itself: AdamW's step would hide a wrong scale
        torch.testing.assert_close(one_seen.grads[k], two_seen.grads[k], rtol=1e-4, atol=1e-7)
    wa = load_file(str(checkpoint.step_dirs(tmp_path / "b4")[-1] / "model.safetensors"))
    wb = load_file(str(checkpoint.step_dirs(tmp_path / "a2")[-1] / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-6)


def test_torch_compile_trains_the_same_model(tiny_dataset, tmp_path):
    eager = train_wavenet(tiny("train.steps=2", "train.sample_seconds=0", "train.ema_decay=0"),
                            tiny_dataset, tmp_path / "e", show_progress=False, log=lambda m: None)
    compiled = train_wavenet(tiny("train.steps=2", "train.sample_seconds=0", "train.ema_decay=0", "train.compile=true"),
                               tiny_dataset, tmp_path / "c", show_progress=False, log=lambda m: None)
    assert eager.step == compiled.step == 2
    a = load_file(str(checkpoint.step_dirs(tmp_path / "e")[-1] / "model.safetensors"))
    b = load_file(str(checkpoint.step_dirs(tmp_path / "c")[-1] / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-5)


def test_input_noise_reaches_the_training_crops_and_not_the_validation_ones(tiny_dataset):
    ds = dataset.load(tiny_dataset)
    plain, noisy = WaveNetTask(tiny(), ds), WaveNetTask(tiny("data.input_noise=3"), ds)
    a, b = plain.train_set()[5], noisy.train_set()[5]
    assert torch.equal(a["targets"], b["targets"])
    assert 2.5 < float((b["inputs"] - a["inputs"]).double().std()) < 3.5
    for task in (plain, noisy):
        assert task.prepare_validation() is None
    for key in ("inputs", "targets"):
        assert torch.equal(plain.held_out.true[key], noisy.held_out.true[key])
