"""The compiled fast path computes the same function as the PyTorch step."""

from __future__ import annotations

import ctypes
import dataclasses

import numpy as np
import pytest
import torch

from wavegen.config import ModelConfig
from wavegen.data.conditioning import excitation
from wavegen.nn.model import WaveNet
from wavegen.notes import text as T
from wavegen.synth import fast as F
from wavegen.synth.fast import FastWaveNet, c_kernel, why_not
from wavegen.synth.sketchcond import sketch_conditioning

SPT, SR = 40, 800  # 50 ms ticks at 800 Hz: short tests that still cross many ticks
SMALL = ModelConfig(residual_channels=16, gate_channels=16, skip_channels=24, head_channels=32,
                    layers_per_cycle=4, cycles=2, cond_channels=8, n_classes=64)
SKETCH = T.parse("HLO HLO  H H H  JMQ JM Q ! x ")


def torch_logits(model: WaveNet, teacher: np.ndarray, sketch, style=None) -> np.ndarray:
    B, N = teacher.shape
    state = model.init_state(B)
    x = torch.full((B,), model.cfg.n_classes // 2, dtype=torch.long)
    cond_ticks = onsets = None
    if model.uses_notes:
        cond, onsets = sketch_conditioning(model, sketch)
        cond_ticks = torch.from_numpy(cond)
    style_t = torch.full((B,), style, dtype=torch.long) if style is not None else None
    out = np.zeros((B, N, model.n_out), dtype=np.float32)
    for i in range(N):
        c = e = None
        if cond_ticks is not None:
            c = cond_ticks[min(i // SPT, len(cond_ticks) - 1)][None].expand(B, -1)
            if model.uses_excitation:
                e = torch.from_numpy(excitation(sketch.roll, i, 1, SPT, SR, onsets)[:, 0])[None].expand(B, -1)
        out[:, i] = model.step(x, state, cond=c, exc=e, style=style_t).numpy()
        x = torch.from_numpy(teacher[:, i])
    return out


CASES = {
    "k2 conditioned": dict(),
    "k3 conditioned + style": dict(kernel_size=3, n_styles=2),
    "k2 unconditional": dict(local_conditioning=False),
    "k2 no excitation": dict(excitation=False),
    "k4 wide": dict(kernel_size=4, residual_channels=24, gate_channels=12, cycles=1),
}


BACKENDS = ["numba"] + (["c"] if c_kernel() is not None else [])


def test_the_c_kernel_is_built_here():
    # setup.py compiles it at install time; CI installs with a compiler, so it must be there
    assert c_kernel() is not None


def test_the_ctypes_mirrors_match_the_c_structs():
    # the loader refuses a library whose structs differ; here the comparison itself is checked
    lib = F.c_library()
    for which, mirror in enumerate(F.MIRRORS):
        assert F.c_layout(lib, which) == F.ctypes_layout(mirror)
        assert len(F.c_layout(lib, which)) == 1 + len(mirror._fields_)

    class Short(ctypes.Structure):  # a mirror that lost a field
        _fields_ = [f for f in F.WgWeights._fields_ if f[0] != "total_hist"]

    assert F.c_layout(lib, 0) != F.ctypes_layout(Short)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("batch", [1, 3, 13])
def test_fast_logits_match_the_pytorch_step(case, batch, backend):
    torch.manual_seed(1)
    model = WaveNet(dataclasses.replace(SMALL, **CASES[case]), SPT).eval()
    # random weights at a realistic scale: default init is too quiet to test the gates' nonlinear range
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    n = 5 * SPT + 7
    teacher = np.random.default_rng(0).integers(0, 64, (batch, n))
    style = 1 if model.cfg.n_styles else None
    want = torch_logits(model, teacher, SKETCH, style)
    got = FastWaveNet(model, backend).run(n, sample_rate_hz=SR, sketch=SKETCH, teacher=teacher,
                                          return_logits=True, batch=batch, style=style)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-4 * scale, np.abs(got - want).max() / scale


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_codes_and_batch_rows_differ(backend):
    torch.manual_seed(0)
    fast = FastWaveNet(WaveNet(SMALL, SPT).eval(), backend)
    a = fast.run(300, sample_rate_hz=SR, sketch=SKETCH, seed=7, batch=2)
    b = fast.run(300, sample_rate_hz=SR, sketch=SKETCH, seed=7, batch=2)
    c = fast.run(300, sample_rate_hz=SR, sketch=SKETCH, seed=8, batch=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a[0], a[1])
    # the first stream of a batch is the same take as a batch of one with the same seed
    assert np.array_equal(fast.run(300, sample_rate_hz=SR, sketch=SKETCH, seed=7, batch=1)[0], a[0])
    greedy = fast.run(50, sample_rate_hz=SR, sketch=SKETCH, temperature=0.0)
    assert np.array_equal(greedy, fast.run(50, sample_rate_hz=SR, sketch=SKETCH, temperature=0.0, seed=99))


def test_unusual_configs_are_refused_with_a_reason():
    model = WaveNet(dataclasses.replace(SMALL, output="mol"), SPT)
    assert "mu-law" in why_not(model)
    with pytest.raises(ValueError):
        FastWaveNet(model)


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_do_not_change_the_takes(backend):
    torch.manual_seed(0)
    fast = FastWaveNet(WaveNet(SMALL, SPT).eval(), backend)
    one = fast.run(200, sample_rate_hz=SR, sketch=SKETCH, seed=3, batch=4, threads=1)
    two = fast.run(200, sample_rate_hz=SR, sketch=SKETCH, seed=3, batch=4, threads=2)
    assert np.array_equal(one, two)


@pytest.mark.parametrize("backend", BACKENDS)
def test_min_p_never_draws_the_unlikely_tail(backend):
    torch.manual_seed(0)
    model = WaveNet(SMALL, SPT).eval()
    with torch.no_grad():  # sharper than the default init: a distribution with a tail
        for p in model.parameters():
            p.mul_(3.0)
    fast = FastWaveNet(model, backend)
    n, t, cut = 400, 1.0, 0.2

    def below_cut(min_p: float) -> int:
        kw = dict(sample_rate_hz=SR, sketch=SKETCH, seed=5, batch=2, temperature=t, min_p=min_p)
        codes = fast.run(n, **kw)
        logits = fast.run(n, return_logits=True, **kw)  # the same draws, so the same take
        p = np.exp((logits - logits.max(axis=-1, keepdims=True)) / t)  # 1 for the most likely value
        return int(np.count_nonzero(np.take_along_axis(p, codes[..., None], -1)[..., 0] < cut))

    assert below_cut(0.0) > 20  # without the cut, the tail is drawn now and then ...
    assert below_cut(cut) == 0  # ... with it, never


def test_min_p_in_the_pytorch_sampler():
    from wavegen.nn.model import sample

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.12, 0.08]])).expand(4000, -1)
    gen = torch.Generator().manual_seed(0)
    free = torch.bincount(sample("mulaw", logits, 1.0, gen), minlength=4)
    cut = torch.bincount(sample("mulaw", logits, 1.0, gen, min_p=0.2), minlength=4)  # 0.08 < 0.2 * 0.5
    assert free[3] > 200 and cut[3] == 0 and cut[2] > 400
