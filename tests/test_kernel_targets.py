"""The C kernel builds, warning-free, for every target it claims (x86-64 baseline, v2, v3 = AVX2, v4 =
AVX-512, and 64-bit ARM with Debian's cross compiler), with float weights, with fp16 ones
(WG_WEIGHT_F16) and with bf16 ones (WG_WEIGHT_BF16), and each build this CPU can run computes the PyTorch
step's logits (the fp16 build: of the model with its weights rounded to half; the bf16 build: of the step
with its weights and their products' inputs rounded to bf16). Its vector width, tiles, half conversion
(F16C, NEON or portable C) and bf16 dot products (AVX512_BF16, ARM's BF16 or written out) change with the
target (see _kernel.c), so one native build passing test_fast.py says nothing about the others."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_fast import CASES, SKETCH, SMALL, SPT, SR, bf16_logits, half_rounded, per_sample_error, torch_logits

from wavegen.nn.model import WaveNet
from wavegen.synth import fast as F

SOURCE = Path(F.__file__).with_name("_kernel.c")
ROOT_DIR = Path(__file__).resolve().parent.parent
FLAGS = ["-O3", "-ffast-math", "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]  # setup.py's, strict
X86 = {  # -march level: the CPU flags it needs (Linux /proc/cpuinfo names)
    "x86-64": set(),
    "x86-64-v2": {"sse4_2", "ssse3", "popcnt"},
    "x86-64-v3": {"avx2", "fma", "bmi2", "f16c", "movbe"},
    "x86-64-v4": {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"},
}
ORDER = list(X86)


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def runs_here(march: str) -> bool:
    flags = cpu_flags()
    return all(X86[m] <= flags for m in ORDER[: ORDER.index(march) + 1])


needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
x86_only = pytest.mark.skipif(not cpu_flags() & {"sse2"}, reason="not an x86-64 machine")


def build(tmp: Path, march: str, cc: str = "gcc", shared: bool = True, backend: str = "c") -> Path:
    """Compiled with the flags, linked without them, as setuptools does: linking a shared library with
    -ffast-math (GCC 12) adds crtfastmath.o, which turns on flush-to-zero for the whole process that
    loads it (and breaks every later test that needs subnormal floats). backend "c16": with fp16 weights
    (-DWG_WEIGHT_F16, as setup.py builds _kernel_f16.c); "cbf16": with bf16 weights (-DWG_WEIGHT_BF16)."""
    defines = {"c": [], "c16": ["-DWG_WEIGHT_F16"], "cbf16": ["-DWG_WEIGHT_BF16"]}[backend]
    obj = tmp / f"kernel-{march}-{backend}.o"
    done = subprocess.run([cc, *FLAGS, *defines, f"-march={march}", "-fPIC", "-c", str(SOURCE), "-o", str(obj)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not done.stderr.strip(), done.stderr  # no warning either
    if not shared:
        return obj
    lib = obj.with_suffix(".so")
    subprocess.run([cc, "-shared", str(obj), "-o", str(lib), "-lm"], check=True, capture_output=True)
    return lib


@needs_gcc
@x86_only
@pytest.mark.parametrize("backend", ["c", "c16", "cbf16"])
@pytest.mark.parametrize("march", ORDER)
def test_each_x86_build_is_clean_and_those_this_cpu_runs_match_pytorch(march, backend, tmp_path, monkeypatch):
    lib_path = build(tmp_path, march, backend=backend)
    if not runs_here(march):
        pytest.skip(f"built; this CPU cannot run {march} code")
    lib = ctypes.CDLL(str(lib_path))
    # F16C from x86-64-v3 on; below it the portable conversion (which these builds test); no -march level
    # has AVX512_BF16 (x86-64-v4 is AVX-512's foundation alone), so these bf16 builds test the written-out
    # dot products, and test_fast.py the native build's vdpbf16ps where the CPU has it
    native = {"c": True, "c16": ORDER.index(march) >= 2, "cbf16": False}[backend]
    assert F.c_target(lib)[2:] == (F.WEIGHT_FORMAT[backend], native)
    monkeypatch.setitem(F._C_KERNELS, backend, F._load_c_kernel(lib, backend))
    for case in ("k2 conditioned", "k4 wide"):
        torch.manual_seed(1)
        model = WaveNet(dataclasses.replace(SMALL, **CASES[case]), SPT).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(2.0)
        n, batch = 2 * SPT + 3, 13  # 13 streams: a block of 8, one of 4 and a single one
        teacher = np.random.default_rng(0).integers(0, 64, (batch, n))
        got = F.FastWaveNet(model, backend).run(n, sample_rate_hz=SR, sketch=SKETCH, teacher=teacher,
                                                return_logits=True, batch=batch)
        if backend == "cbf16":  # sharp in the median (see test_fast.py's bf16 test for why not the maximum)
            err = per_sample_error(got, bf16_logits(model, teacher, SKETCH))
            assert np.median(err) < 1e-6 and err.max() < 1e-2, (march, case, np.median(err))
            continue
        want = torch_logits(model if backend == "c" else half_rounded(model), teacher, SKETCH)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), (march, case)


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None,
                    reason="no aarch64 cross compiler (apt install gcc-aarch64-linux-gnu; .ci/run does)")
@pytest.mark.parametrize("backend,march", [("c", "armv8-a"), ("c16", "armv8-a"), ("cbf16", "armv8-a"),
                                          ("cbf16", "armv8.6-a+bf16")])  # the last: bfdot (Graviton 3, Apple M2)
def test_it_builds_for_64_bit_arm(tmp_path, backend, march):
    obj = build(tmp_path, march, cc="aarch64-linux-gnu-gcc", shared=False, backend=backend)
    header = obj.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64


def bench_kernel_source():
    from test_measure_scripts import script

    return script("bench_kernel_source")


def test_the_kernel_source_benchmark_counts_the_reference_networks_multiply_adds():
    """configs/cpu.toml's network, by hand: 20 layers of 2 taps x 64 x 128 and a 64 x 128 skip, 19
    residual 64 x 64, the head 128 x 256 and 256 x 256."""
    from wavegen.config import load_config

    cfg = load_config(ROOT_DIR / "configs" / "cpu.toml")
    want = 20 * (2 * 64 * 128 + 64 * 128) + 19 * 64 * 64 + 128 * 256 + 256 * 256
    assert want == 667_648
    assert bench_kernel_source().macs_per_sample(WaveNet(cfg.model, SPT)) == want


@needs_gcc
@x86_only
def test_the_kernel_source_benchmark_compares_two_sources_and_the_ceiling(tmp_path, capsys, monkeypatch):
    from test_generate import make_checkpoint

    mod = bench_kernel_source()
    assert [mod.vector_bytes(m) for m in ("x86-64-v2", "x86-64-v3", "x86-64-v4")] == [16, 32, 64]
    ck = make_checkpoint(tmp_path / "ck")
    monkeypatch.setattr(sys, "argv", ["bench_kernel_source.py", "--base", "HEAD", "--march", "x86-64-v3",
                                      "--backend", "c", "--checkpoint", str(ck), "--batch", "2", "--threads", "1",
                                      "--seconds", "0.02", "--rounds", "1"])
    assert mod.main() == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    assert [(r["source"], r["backend"]) for r in report["rows"]] == [("base", "c"), ("new", "c")]
    assert report["rows"][0]["x_base"] == 1.0 and report["fma_per_s_per_core"] > 1e8
    assert report["vector_bits"] == 256 and "| new | c |" in out
