"""mixed_precision = "auto" on a CPU: bf16 only where the CPU can run it fast and it measured faster than
fp32 for the run's model, measured once per CPU and model and read back after."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import FakeLoad

from wavegen import machine
from wavegen.train import autoprecision
from wavegen.train import loop as train_mod

AMX = ("a Xeon", ("avx512f", "avx512bw", "amx_bf16"))


def fake_probe(seconds: dict, calls: list):
    """A probe whose steps take `seconds[dtype]` (None: fp32), recording each dtype it times."""
    def probe():
        def timer(dtype):
            calls.append(dtype)
            return seconds[dtype]
        return timer, {"model": "one shape"}
    return probe


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WAVEGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(machine, "OtherLoad", FakeLoad)
    monkeypatch.setattr(FakeLoad, "cores", 0.0)
    return tmp_path / "cache" / "precision.json"


def test_a_ratio_measured_while_other_programs_ran_is_measured_again(cache, monkeypatch):
    monkeypatch.setattr(machine, "cpu", lambda: AMX)
    FakeLoad.cores = 1.5
    calls = []
    busy = train_mod.precision("auto", torch.device("cpu"), probe=fake_probe({None: 1.0, torch.bfloat16: 2.0}, calls))
    assert busy.name == "no" and "while other programs kept 1.5 cores busy" in busy.notice
    FakeLoad.cores = 0.0
    quiet = train_mod.precision("auto", torch.device("cpu"), probe=fake_probe({None: 2.0, torch.bfloat16: 1.0}, calls))
    assert quiet.name == "bf16" and len(calls) == 4 and "measured now on this CPU)" in quiet.notice
    again = train_mod.precision("auto", torch.device("cpu"), probe=fake_probe({None: 1.0, torch.bfloat16: 9.0}, calls))
    assert again.name == "bf16" and len(calls) == 4  # the quiet measurement is kept


@pytest.mark.parametrize(("fp32_s", "bf16_s", "want"), [(2.0, 1.0, "bf16"), (1.0, 2.0, "no"), (1.0, 0.98, "no")])
def test_auto_takes_bf16_only_where_it_measured_faster(cache, monkeypatch, fp32_s, bf16_s, want):
    monkeypatch.setattr(machine, "cpu", lambda: AMX)
    calls = []
    p = train_mod.precision("auto", torch.device("cpu"), probe=fake_probe({None: fp32_s, torch.bfloat16: bf16_s}, calls))
    assert p.name == want and calls == [None, torch.bfloat16]
    ratio = fp32_s / bf16_s
    assert p.notice == (f"mixed precision auto: {'bf16' if want == 'bf16' else 'fp32'} (bf16 trains this model "
                        f"{ratio:.2f}x as fast as fp32, measured now on this CPU"
                        + ("" if want == "bf16" else "; bf16 is taken from 1.05x") + ")")
    # read back, not measured again
    again = train_mod.precision("auto", torch.device("cpu"), probe=fake_probe({None: 9.0, torch.bfloat16: 1.0}, calls))
    assert again.name == want and len(calls) == 2 and "measured before on this CPU" in again.notice
    assert cache.is_file()


def test_without_fast_bf16_auto_does_not_measure(cache, monkeypatch):
    monkeypatch.setattr(machine, "cpu", lambda: ("an EPYC", ("avx2", "fma")))
    calls = []
    p = train_mod.precision("auto", torch.device("cpu"), probe=fake_probe({None: 9.0, torch.bfloat16: 1.0}, calls))
    assert p.name == "no" and calls == [] and "bf16 would be emulated" in p.notice


def test_another_cpu_or_model_is_measured_afresh(cache, monkeypatch):
    monkeypatch.setattr(machine, "cpu", lambda: AMX)
    calls = []
    train_mod.precision("auto", torch.device("cpu"), probe=fake_probe({None: 2.0, torch.bfloat16: 1.0}, calls))
    monkeypatch.setattr(machine, "cpu", lambda: ("another Xeon", AMX[1]))
    p = train_mod.precision("auto", torch.device("cpu"), probe=fake_probe({None: 1.0, torch.bfloat16: 2.0}, calls))
    assert p.name == "no" and len(calls) == 4
    assert autoprecision.key({"a": 1}) != autoprecision.key({"a": 2})


def test_the_step_timer_trains_the_model_it_builds():
    built, initial = [], []

    def build():
        built.append(torch.nn.Linear(8, 4))
        initial.append(built[-1].weight.detach().clone())
        return built[-1]

    batch = {"x": torch.randn(16, 8), "y": torch.randint(0, 4, (16,))}

    def loss(model, b, autocast):
        with autocast():
            out = model(b["x"])
        return torch.nn.functional.cross_entropy(out.float(), b["y"])

    timer = autoprecision.step_timer(build, batch, loss)
    for dtype in (None, torch.bfloat16):
        assert timer(dtype) > 0
    assert len(built) == 2  # a fresh model per precision, from the same seed, each trained by its steps
    assert torch.equal(initial[0], initial[1])
    assert not torch.equal(built[0].weight, initial[0]) and not torch.equal(built[1].weight, initial[1])


def test_a_training_run_measures_its_own_model_once(tiny_dataset, tmp_path, cache, monkeypatch):
    from wavegen.config import load_config
    from wavegen.train.wavenet import train_wavenet

    monkeypatch.setattr(machine, "cpu", lambda: AMX)
    timed = []
    real = autoprecision.step_timer

    def recording_timer(build_model, batch, loss):
        timer = real(build_model, batch, loss)

        def timed_step(dtype):
            timed.append((dtype, {k: tuple(v.shape) for k, v in batch.items()}))
            return timer(dtype)
        return timed_step

    monkeypatch.setattr(autoprecision, "step_timer", recording_timer)
    tiny = Path(__file__).parent.parent / "configs" / "tiny.toml"
    cfg = load_config(tiny, ["train.steps=1", "train.mixed_precision=auto", "train.sample_seconds=0"])
    res = train_wavenet(cfg, tiny_dataset, tmp_path / "a", show_progress=False, log=lambda m: None)
    (notice,) = [n for n in res.notices if n.startswith("mixed precision auto")]
    assert "measured now on this CPU" in notice and cache.is_file()
    assert [d for d, _ in timed] == [None, torch.bfloat16]
    assert timed[0][1]["inputs"] == (cfg.data.batch_size, cfg.data.crop_samples)  # a batch of the run's own crops
    res = train_wavenet(cfg, tiny_dataset, tmp_path / "b", show_progress=False, log=lambda m: None)
    assert len(timed) == 2 and any("measured before on this CPU" in n for n in res.notices)
