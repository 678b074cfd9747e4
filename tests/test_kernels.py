"""The fast path's kernel is chosen by measuring, once per machine and model shape, and cached; the
fp16-weight kernel only where kernels.AUTO lets it be chosen."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from conftest import FakeLoad
from test_generate import make_checkpoint

from wavegen.cli import main
from wavegen.config import ModelConfig
from wavegen.errors import WavegenError
from wavegen.nn.model import WaveNet
from wavegen.synth import fast, kernels
from wavegen.synth import generate as G

SMALL = ModelConfig(residual_channels=16, gate_channels=16, skip_channels=24, head_channels=32,
                    layers_per_cycle=4, cycles=2, cond_channels=8, n_classes=64)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WAVEGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WAVEGEN_KERNEL", raising=False)
    monkeypatch.setattr(kernels, "available", lambda: ["c", "numba"])
    monkeypatch.setattr(kernels.machine, "OtherLoad", FakeLoad)
    monkeypatch.setattr(FakeLoad, "cores", 0.0)
    monkeypatch.setattr(kernels, "_BUSY_CHOICES", {})  # each test a fresh process
    return tmp_path / "cache" / "kernels.json"


def fake_speeds(monkeypatch, speeds: dict[str, float], batch_speeds: dict[str, float] | None = None) -> list[str]:
    """Kernels measure `speeds` for one stream and `batch_speeds` (default the same) for a batch."""
    timed = []

    def measure_all(model, backends, seconds=0.0, batch=1, rounds=1):
        timed.extend(b if batch == 1 else f"{b} x{batch}" for b in backends)
        return {b: (speeds if batch == 1 or batch_speeds is None else batch_speeds)[b] for b in backends}

    monkeypatch.setattr(kernels, "measure_all", measure_all)
    return timed


def test_the_faster_kernel_is_chosen_measured_once_and_cached(cache, monkeypatch):
    model = WaveNet(SMALL, 40)
    timed = fake_speeds(monkeypatch, {"c": 1000.0, "numba": 3000.0})
    first = kernels.choose(model)
    assert (first.backend, first.source, sorted(timed)) == ("numba", "measured", ["c", "numba"])
    stored = json.loads(cache.read_text())
    assert [v["backend"] for v in stored.values()] == ["numba"]
    timed.clear()
    again = kernels.choose(model)
    assert (again.backend, again.source, timed) == ("numba", "cache", [])  # read back, nothing timed
    # another shape is timed anew, and there the C kernel wins
    fake_speeds(monkeypatch, {"c": 5000.0, "numba": 3000.0})
    wider = WaveNet(ModelConfig(**{**SMALL.__dict__, "residual_channels": 24}), 40)
    assert kernels.choose(wider).backend == "c"
    assert len(json.loads(cache.read_text())) == 2
    # fresh (wavegen doctor) times again and rewrites the choice
    fake_speeds(monkeypatch, {"c": 9000.0, "numba": 3000.0})
    assert kernels.choose(model, fresh=True).backend == "c" and kernels.choose(model).source == "cache"
    assert kernels.choose(model).backend == "c"


def test_a_choice_measured_while_other_programs_ran_is_measured_again(cache, monkeypatch):
    """Beside a training run, one kernel can measure far slower than the other (cbf16 at 10k against
    57k quiet, c 25k of 30k, on a Zen 5): such a choice is not kept; a quiet one is, and is not undone."""
    model = WaveNet(SMALL, 40)
    FakeLoad.cores = 1.6
    timed = fake_speeds(monkeypatch, {"c": 2000.0, "numba": 1000.0})
    assert kernels.choose(model).backend == "c"  # numba slowed more by the load
    timed.clear()
    timed = fake_speeds(monkeypatch, {"c": 500.0, "numba": 3000.0})  # measured again, numba would win
    same_run = kernels.choose(model)  # the rest of this process keeps what it measured
    assert (same_run.backend, timed) == ("c", [])
    kernels._BUSY_CHOICES.clear()  # the next process: measured again
    fake_speeds(monkeypatch, {"c": 1500.0, "numba": 1200.0})
    again = kernels.choose(model)  # still busy: measured again, each kernel's best so far decides
    assert (again.source, again.backend, again.others) == ("measured", "c", 1.6)
    assert json.loads(cache.read_text())[kernels.cache_key(model)]["speeds"] == {"c": 2000, "numba": 1200}
    FakeLoad.cores = 0.1
    kernels._BUSY_CHOICES.clear()
    timed = fake_speeds(monkeypatch, {"c": 2500.0, "numba": 6000.0})
    assert kernels.choose(model).backend == "numba"  # quiet: this measurement replaces the busy ones
    timed.clear()
    assert (kernels.choose(model).source, timed) == ("cache", [])  # and is kept
    FakeLoad.cores = 1.9  # wavegen doctor beside a training run measures afresh, but keeps the quiet choice
    fake_speeds(monkeypatch, {"c": 2400.0, "numba": 900.0})
    doctor = kernels.choose(model, fresh=True)
    assert (doctor.backend, doctor.kept_quiet, doctor.speeds) == ("numba", True, {"c": 2400.0, "numba": 900.0})
    assert kernels.choose(model).backend == "numba"


def test_other_load_counts_the_cores_another_program_keeps_busy():
    import subprocess
    import sys

    if kernels.machine._busy_cpu_seconds() is None:
        pytest.skip("no /proc/stat here")
    with kernels.machine.OtherLoad() as idle:
        time.sleep(0.5)
    if idle.cores > (os.cpu_count() or 1) - 1.5:
        pytest.skip(f"other programs already keep {idle.cores:.1f} cores busy: no room to see one more")
    with kernels.machine.OtherLoad() as alone:
        t = time.perf_counter()
        while time.perf_counter() - t < 0.5:  # this process's own work is not counted
            pass
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    try:
        time.sleep(0.3)
        with kernels.machine.OtherLoad() as beside:
            time.sleep(1.0)
    finally:
        spin.wait()
    assert alone.cores - idle.cores < 0.4, (idle.cores, alone.cores)
    assert beside.cores - idle.cores > 0.6, (idle.cores, beside.cores)  # about one core


def test_a_broken_cache_is_measured_again_and_an_environment_choice_wins(cache, monkeypatch):
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    fake_speeds(monkeypatch, {"c": 1.0, "numba": 2.0})
    model = WaveNet(SMALL, 40)
    assert kernels.choose(model).backend == "numba"
    monkeypatch.setenv("WAVEGEN_KERNEL", "c")
    assert kernels.choose(model).backend == "c" and kernels.choose(model).source.startswith("forced")
    # measuring afresh (wavegen doctor) still times both, and still says the forced one plays
    fresh = kernels.choose(model, fresh=True)
    assert (fresh.backend, fresh.speeds, fresh.source) == ("c", {"c": 1.0, "numba": 2.0}, "forced (WAVEGEN_KERNEL)")
    monkeypatch.setenv("WAVEGEN_KERNEL", "cuda")
    with pytest.raises(WavegenError, match="WAVEGEN_KERNEL=cuda: choose one of c, numba"):
        kernels.choose(model)


def test_auto_takes_the_fp16_kernel_only_where_auto_lets_it(cache, monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda: ["c", "c16", "numba"])
    monkeypatch.setattr(kernels, "reduced_kl", lambda model, backend: 0.0)  # a model half holds
    monkeypatch.setattr(kernels, "AUTO", ("c", "numba"))  # not measured accurate enough
    model = WaveNet(SMALL, 40)
    timed = fake_speeds(monkeypatch, {"c": 2000.0, "c16": 4000.0, "numba": 1000.0})
    first = kernels.choose(model)
    assert (first.backend, sorted(timed)) == ("c", ["c", "numba"])  # the faster c16 is not even timed
    # the doctor times it and shows its speed, and still does not choose it
    fresh = kernels.choose(model, fresh=True)
    assert (fresh.backend, fresh.speeds) == ("c", {"c": 2000.0, "c16": 4000.0, "numba": 1000.0})
    assert kernels.choose(model).backend == "c"
    # forced, it plays
    monkeypatch.setenv("WAVEGEN_KERNEL", "c16")
    assert kernels.choose(model).backend == "c16"
    monkeypatch.delenv("WAVEGEN_KERNEL")
    # where AUTO holds it, the fastest wins, and never a slower one
    monkeypatch.setattr(kernels, "AUTO", ("c", "c16", "numba"))
    assert kernels.choose(model, fresh=True).backend == "c16"
    fake_speeds(monkeypatch, {"c": 2000.0, "c16": 1500.0, "numba": 1000.0})
    assert kernels.choose(model, fresh=True).backend == "c"
    # a cached c16 from where AUTO held it is not taken where it does not
    fake_speeds(monkeypatch, {"c": 2000.0, "c16": 4000.0, "numba": 1000.0})
    assert kernels.choose(model, fresh=True).backend == "c16"
    monkeypatch.setattr(kernels, "AUTO", ("c", "numba"))
    assert kernels.choose(model).backend == "c"


def test_c16_is_left_out_for_weights_half_does_not_hold(cache, monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda: ["c", "c16", "numba"])
    monkeypatch.setattr(kernels, "AUTO", ("c", "c16", "numba"))
    kls = {}
    monkeypatch.setattr(kernels, "reduced_kl", lambda model, backend: kls.setdefault(id(model), 0.0))
    fake_speeds(monkeypatch, {"c": 2000.0, "c16": 4000.0, "numba": 1000.0})
    held, lost = WaveNet(SMALL, 40), WaveNet(SMALL, 40)  # one shape, other weights
    kls[id(lost)] = 2 * kernels.REDUCED_KL_LIMIT
    assert kernels.choose(held).backend == "c16"
    lost_choice = kernels.choose(lost)  # the shape's cached c16 is not taken for these weights
    assert (lost_choice.backend, lost_choice.kl["c16"]) == ("c", 2 * kernels.REDUCED_KL_LIMIT)
    # measured once per weights, then read back by their digest
    kls[id(held)] = 1.0
    assert kernels.choose(held).backend == "c16" and kernels.choose(held).kl == {"c16": 0.0}


def test_reduced_kl_is_small_for_a_model_and_infinite_past_half_range():
    if fast.c_kernel("c16") is None or fast.c_kernel("cbf16") is None:
        pytest.skip("no fp16- or bf16-weight C kernel here")
    torch.manual_seed(0)
    model = WaveNet(SMALL, 40).eval()
    fp16, bf16 = kernels.reduced_kl(model, "c16"), kernels.reduced_kl(model, "cbf16")
    assert 0.0 < fp16 < kernels.REDUCED_KL_LIMIT / 100
    assert 10 * fp16 < bf16 < kernels.REDUCED_KL_LIMIT  # bf16 keeps 3 bits fewer, and rounds the inputs too
    with torch.no_grad():
        model.head[3].weight[0, 0, 0] = 1e5
    assert kernels.reduced_kl(model, "c16") == float("inf")
    assert kernels.reduced_kl(model, "cbf16") < float("inf")  # within bf16's range


def test_fastwavenet_without_a_backend_takes_the_measured_one(cache, monkeypatch):
    if fast.c_kernel() is None:
        pytest.skip("no C kernel here")
    fake_speeds(monkeypatch, {"c": 1.0, "numba": 2.0})
    assert fast.FastWaveNet(WaveNet(SMALL, 40)).backend == "numba"
    fake_speeds(monkeypatch, {"c": 3.0, "numba": 2.0})
    assert fast.FastWaveNet(WaveNet(SMALL, 40), None).backend == "numba"  # cached: not timed again


def test_real_measurement_gives_a_speed():
    assert kernels.measure(WaveNet(SMALL, 40), "numba", seconds=0.01) > 0


class Clock:
    """A clock that the fake kernels below advance: each plays at its own speed, slower while busy."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_a_busy_moment_does_not_swap_two_kernels(monkeypatch):
    # c16 is 10 % faster than c, but the machine is busy (everything at a third of its speed) during c16's
    # warm-up and first two timings, the last of which is the first round's: one timing each (or their
    # mean) would choose c; the best of the interleaved rounds chooses c16
    clock, speed, calls = Clock(), {"c": 10_000.0, "c16": 11_000.0}, {"c": 0, "c16": 0}

    class Player:
        def __init__(self, model, backend):
            self.backend = backend

        def run(self, n, *, sample_rate_hz, sketch, batch):
            calls[self.backend] += 1
            busy = self.backend == "c16" and calls["c16"] <= 3  # its warm-up and first two timings
            clock.now += n * batch / speed[self.backend] * (3.0 if busy else 1.0)

    monkeypatch.setattr(kernels.fast, "FastWaveNet", Player)
    monkeypatch.setattr(kernels, "time", clock)
    model = WaveNet(SMALL, 40)
    got = kernels.measure_all(model, ["c", "c16"], seconds=0.1, rounds=5)
    assert max(got, key=got.get) == "c16"
    assert got == pytest.approx(speed)  # each kernel's best timing is its unhurried speed
    assert calls["c"] >= 6 and calls["c16"] >= 6  # a warm-up, then a timing in every round


def test_engine_c_where_none_was_built_is_a_clear_error(monkeypatch):
    model = WaveNet(SMALL, 40)
    assert G.choose_engine(model, "numba") == ("numba", None)
    monkeypatch.setattr(G, "c_kernel", lambda backend="c": None)
    with pytest.raises(WavegenError, match="--engine c: no C kernel was built here"):
        G.choose_engine(model, "c")
    with pytest.raises(WavegenError, match="--engine c16: no fp16-weight C kernel was built here"):
        G.choose_engine(model, "c16")


def test_generate_with_a_forced_kernel_and_the_doctor(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WAVEGEN_CACHE_DIR", str(tmp_path / "cache"))
    ck = make_checkpoint(tmp_path / "ck")
    out = tmp_path / "a.wav"
    assert main(["generate", "--checkpoint", str(ck), "--seconds", "0.1", "--engine", "numba", "-o", str(out)]) == 0
    assert out.is_file()
    assert main(["generate", "--checkpoint", str(ck), "--seconds", "0.1", "--engine", "c16", "-o", str(out)]) == 0
    torch.manual_seed(0)
    assert main(["doctor", "--checkpoint", str(ck)]) == 0
    text = capsys.readouterr().out
    assert "CPU: " in text and "numba" in text and "samples/s" in text and "wavegen generate runs: " in text
    assert "C kernel, fp16 weights (c16): " in text and "widened by " in text
    c16 = next(line for line in text.splitlines() if line.strip().startswith("c16 "))
    assert ("--engine only" in c16) == ("c16" not in kernels.AUTO)
    assert ("bits/sample (KL), under 0.001" in c16) == ("c16" in kernels.AUTO)  # the model's weights half holds
    assert (tmp_path / "cache" / "kernels.json").is_file()


def test_a_batch_of_takes_gets_its_own_choice(cache, monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda: ["c", "c16", "numba"])
    monkeypatch.setattr(kernels, "reduced_kl", lambda model, backend: 0.0)
    timed = fake_speeds(monkeypatch, {"c": 1000.0, "c16": 3000.0, "numba": 500.0},
                        {"c": 9000.0, "c16": 6000.0, "numba": 2000.0})
    model = WaveNet(SMALL, 40)
    assert kernels.choose(model).backend == "c16"
    assert kernels.choose(model, batch=16).backend == "c"
    assert timed == ["c", "c16", "numba", "c x8", "c16 x8", "numba x8"]  # a batch is timed with one block
    # each read back from the cache; any batch of takes shares the batch's choice
    assert kernels.choose(model, batch=1).backend == "c16" and kernels.choose(model, batch=3).backend == "c"
    assert len(timed) == 6
