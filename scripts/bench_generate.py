"""Benchmark generation speed: the fast path against the plain PyTorch per-sample loop, in one run.

    .venv/bin/python scripts/bench_generate.py                 # the reference network, random weights
    .venv/bin/python scripts/bench_generate.py --checkpoint runs/cpu --json
    .venv/bin/python scripts/bench_generate.py --march x86-64-v3 --march x86-64-v2   # other builds too

Prints a table (and JSON with --json): samples per second, real-time factor at the model's sample rate,
threads, and the ratio to the PyTorch baseline measured in the same run (these machines are shared and
noisy: compare ratios, not absolute numbers across runs). Each row is the median of --repeats runs,
taken in interleaved rounds (every row once, then every row again), so a busier minute slows all rows.
Rows sample at temperature 1 without a min-p cut, except one that uses the shipped model's settings
(temperature 0.9, min-p 0.05) to show what the cut costs.
Every kernel built here is measured: c (float weights), c16 (fp16 weights), cbf16 (bf16) and numba.
--march LEVEL also builds the C kernel (every variant) for that target (setup.py's flags, -march=LEVEL)
and measures it beside the installed build (native), so an AVX2 or SSE build is measured on this
machine; the CPU and its vector extensions head the report.
The model is `configs/cpu.toml` (the reference network: 2 x 10 layers, 64 residual, 2 x 64 gate,
128 skip, 256 classes, conditioned) unless --checkpoint is given; speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wavegen import machine  # noqa: E402
from wavegen.cli.main import main as cli_main  # noqa: E402
from wavegen.config import load_config  # noqa: E402
from wavegen.nn import checkpoint  # noqa: E402
from wavegen.nn.model import WaveNet  # noqa: E402
from wavegen.notes import text as T  # noqa: E402
from wavegen.synth import fast as F  # noqa: E402
from wavegen.synth.fast import FastWaveNet  # noqa: E402
from wavegen.synth.generate import play  # noqa: E402

SKETCH = ROOT / "data" / "examples" / "prelude-c.txt"


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cpu() -> dict:
    """The CPU's name and the vector extensions that decide the kernel's width (wavegen.machine)."""
    name, flags = machine.cpu()
    return {"cpu": name, "cores": os.cpu_count(), "vector_extensions": list(flags)}


def build_kernel(march: str, out_dir: Path, source: Path = ROOT / "wavegen" / "synth" / "_kernel.c",
                 name: str | None = None, backend: str = "c"):
    """`source` (default: this checkout's _kernel.c) built for `march` with setup.py's flags, with float
    weights (backend "c"), fp16 ones ("c16": -DWG_WEIGHT_F16, as setup.py's _kernel_f16) or bf16 ones
    ("cbf16": -DWG_WEIGHT_BF16); its step function."""
    defines = {"c": [], "c16": ["-DWG_WEIGHT_F16"], "cbf16": ["-DWG_WEIGHT_BF16"]}[backend]
    lib = out_dir / f"kernel-{name or march}-{backend}.so"
    obj = lib.with_suffix(".o")  # compiled with setup.py's flags, linked without -ffast-math (as setuptools does)
    cmd = ["gcc", "-O3", "-ffast-math", "-std=c11", f"-march={march}", *defines, "-fPIC", "-c", str(source), "-o",
           str(obj)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode == 0:
        done = subprocess.run(["gcc", "-shared", str(obj), "-o", str(lib), "-lm", "-lmvec"], capture_output=True,
                              text=True)
    if done.returncode != 0:
        raise SystemExit(f"building the kernel for {march} failed:\n{done.stderr}")
    return F._load_c_kernel(ctypes.CDLL(str(lib)), backend)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a checkpoint or run folder (default: configs/cpu.toml, random weights)")
    ap.add_argument("--seconds", type=float, default=2.0, help="audio per fast-path run (default 2)")
    ap.add_argument("--baseline-seconds", type=float, default=0.1, help="audio per PyTorch-loop run (default 0.1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--march", action="append", default=[], metavar="LEVEL",
                    help="also build and measure the C kernel for this -march (e.g. x86-64-v3); repeatable")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="wavegen-bench-"))
    if args.checkpoint:
        loaded = checkpoint.load(args.checkpoint)
        model, sr, ck = loaded.model, loaded.sample_rate_hz, loaded.path
    else:
        cfg = load_config(ROOT / "configs" / "cpu.toml")
        torch.manual_seed(0)
        model, sr = WaveNet(cfg.model, 800).eval(), 16_000
        meta = {"sample_rate_hz": sr, "tick_ms": 50.0, "samples_per_tick": 800, "step": 0, "styles": []}
        ck = checkpoint.save(tmp / "reference", weights=model.state_dict(), config=cfg, meta=meta)
    sketch = T.read_file(SKETCH)
    # every kernel built here, whichever `wavegen generate` would choose (its row at the end shows the choice)
    engines = {b: FastWaveNet(model, b) for b in F.built()}
    kernels = {}  # engine -> the C step it runs instead of the installed one (the --march builds)
    for march in args.march:
        for b in F.C_LIBRARIES:
            if b in engines:
                e = march if b == "c" else f"{march} {b}"
                engines[e], kernels[e] = FastWaveNet(model, b), build_kernel(march, tmp, backend=b)
    installed = dict(F._C_KERNELS)
    first = next(iter(engines))

    def use(engine: str) -> None:
        F._C_KERNELS.update(installed)
        if engine in kernels:
            F._C_KERNELS[engines[engine].backend] = kernels[engine]

    for e, f in engines.items():
        use(e)
        f.run(model.samples_per_tick, sample_rate_hz=sr, sketch=sketch)  # compile (or load numba's cache)
    use(first)

    rows = []

    def row(name: str, engine: str, batch: int, threads: int, seconds: float, min_p: float = 0.0) -> None:
        rows.append({"name": name, "engine": engine, "batch": batch, "threads": threads, "min_p": min_p,
                     "samples": int(seconds * sr) * batch, "times": []})

    def run_once(r: dict) -> None:
        n, batch, threads, min_p = r["samples"] // r["batch"], r["batch"], r["threads"], r["min_p"]
        numba.set_num_threads(threads)
        torch.set_num_threads(threads)
        if r["engine"] in engines:
            fast = engines[r["engine"]]
            use(r["engine"])
            fn = lambda: fast.run(n, sample_rate_hz=sr, sketch=sketch, batch=batch, threads=threads,  # noqa: E731
                                  temperature=0.9 if min_p else 1.0, min_p=min_p)
        else:
            fn = lambda: play(model, n, sample_rate_hz=sr, sketch=sketch, engine="torch", batch=batch)  # noqa: E731
        r["times"].append(timed(fn, 1))
        use(first)

    label = {"numba": "fast (numba)", **{b: f"fast ({b}, installed)" for b in F.C_LIBRARIES},
             **{m: f"fast (c, {m})" for m in args.march},
             **{f"{m} {b}": f"fast ({b}, {m})" for m in args.march for b in F.C_LIBRARIES}}
    row("pytorch step, batch 1", "torch", 1, 1, args.baseline_seconds)
    for e in engines:
        row(f"{label[e]}, batch 1", e, 1, 1, args.seconds)
    row(f"{label[first]}, b1, min-p 0.05", first, 1, 1, args.seconds, min_p=0.05)  # the shipped sampling
    row("pytorch step, batch 16", "torch", 16, 2, args.baseline_seconds / 4)
    for e in engines:
        row(f"{label[e]}, batch 16", e, 16, 2, args.seconds / 4)
    for _ in range(args.repeats):  # interleaved rounds: every row once per round
        for r in rows:
            run_once(r)
    for r in rows:
        r["seconds"] = statistics.median(r["times"])
        r["samples_per_s"] = r["samples"] / r["seconds"]
        r["realtime_factor"] = r["samples_per_s"] / sr
    for r in rows:
        base = next(b for b in rows if b["engine"] == "torch" and b["batch"] == r["batch"])
        r["ratio_to_pytorch"] = r["samples_per_s"] / base["samples_per_s"]

    # the same through the command line, as a user runs it (batch 1; the CLI picks one thread)
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    rates = []
    for _ in range(args.repeats):
        out = tmp / "cli.wav"
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            code = cli_main(["generate", "--checkpoint", str(ck), "--sketch", str(SKETCH),
                             "--seconds", str(args.seconds), "-o", str(out)])
        if code != 0:
            raise SystemExit(f"wavegen generate failed with status {code}")
        rates.append(float(re.search(r"([\d,]+) samples/s", buf.getvalue()).group(1).replace(",", "")))
    cli_rate = statistics.median(rates)
    from wavegen.synth import kernels as K

    rows.append({"name": f"wavegen generate, batch 1 ({K.choose(model).backend})", "engine": "auto", "batch": 1, "threads": 1,
                 "samples": int(args.seconds * sr), "seconds": args.seconds * sr / cli_rate,
                 "samples_per_s": cli_rate, "realtime_factor": cli_rate / sr,
                 "ratio_to_pytorch": cli_rate / rows[0]["samples_per_s"]})

    report = {
        **cpu(),
        "model": "reference (configs/cpu.toml)" if not args.checkpoint else str(args.checkpoint),
        "receptive_field": model.receptive_field,
        "parameters": sum(p.numel() for p in model.parameters()),
        "sample_rate_hz": sr,
        "repeats": args.repeats,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"CPU: {report['cpu']}, {report['cores']} cores, {' '.join(report['vector_extensions'])}")
        print(f"model: {report['model']}, {report['parameters']:,} parameters, receptive field "
              f"{report['receptive_field']} samples; median of {args.repeats}; peak RSS {report['peak_rss_mib']:.0f} MiB")
        print(f"{'run':<38}{'threads':>8}{'samples/s':>12}{'x real time':>13}{'x pytorch':>11}")
        for r in rows:
            print(f"{r['name']:<38}{r['threads']:>8}{r['samples_per_s']:>12,.0f}{r['realtime_factor']:>13.3f}"
                  f"{r['ratio_to_pytorch']:>11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
