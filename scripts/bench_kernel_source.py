"""Compare two versions of the C kernel's source on this machine, and both against the CPU's ceiling.

    .venv/bin/python scripts/bench_kernel_source.py --base HEAD~1 --march x86-64-v3
    .venv/bin/python scripts/bench_kernel_source.py --base 4dbc38a --march native --batch 1 --threads 1

Builds `wavegen/synth/_kernel.c` as it is in the checkout ("new") and as it is at git revision --base
("base"), each for --march with setup.py's flags and for every weight format asked (--backend, default
c and c16), then plays the shipped model (or --checkpoint) following the prelude with each build in
interleaved rounds (every build once per round, --rounds rounds; medians, so that a busier moment of a
shared machine slows every build alike). Also measures the CPU's multiply-add ceiling: a loop of 12
independent vector multiply-adds per iteration, built for --march, one thread (`fma_peak`), and turns the
model's multiply-adds per sample into the samples per second that ceiling allows on --threads cores, so
a kernel's speed reads as a fraction of what the arithmetic alone would take. Prints a table, then JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_generate as BG  # noqa: E402

from wavegen.nn import checkpoint  # noqa: E402
from wavegen.notes import text as T  # noqa: E402
from wavegen.synth import fast as F  # noqa: E402

PEAK_SOURCE = r"""
#include <stdio.h>
#include <time.h>
typedef float vf __attribute__((vector_size(VB)));
int main(void) {
    vf x = (vf){0} + 1.0000001f, y = (vf){0} + 0.9999999f;
    vf a0 = x, a1 = x + 1, a2 = x + 2, a3 = x + 3, a4 = x + 4, a5 = x + 5;
    vf a6 = x + 6, a7 = x + 7, a8 = x + 8, a9 = x + 9, a10 = x + 10, a11 = x + 11;
    const long iters = 100000000L / (VB / 16);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < iters; k++) {
        a0 = a0 * x + y; a1 = a1 * x + y; a2 = a2 * x + y; a3 = a3 * x + y; a4 = a4 * x + y; a5 = a5 * x + y;
        a6 = a6 * x + y; a7 = a7 * x + y; a8 = a8 * x + y; a9 = a9 * x + y; a10 = a10 * x + y; a11 = a11 * x + y;
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5),
                              "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    vf t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    printf("%.6g %g\n", iters * 12.0 * (VB / 4) / s, (double)t[0]);
    return 0;
}
"""


def fma_peak(march: str, vector_bytes: int, tmp: Path) -> float:
    """Float multiply-adds per second on one core with vectors of `vector_bytes`, built for `march`."""
    src, exe = tmp / "peak.c", tmp / f"peak-{march}-{vector_bytes}"
    src.write_text(PEAK_SOURCE)
    subprocess.run(["gcc", "-O2", f"-march={march}", f"-DVB={vector_bytes}", str(src), "-o", str(exe)], check=True)
    return max(float(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()[0])
               for _ in range(3))


def macs_per_sample(model) -> int:
    """The multiply-adds of one sample's step: every layer's taps, residual and skip products, the head."""
    c = model.cfg
    R, G, S, H, K = c.residual_channels, c.gate_channels, c.skip_channels, c.head_channels, c.kernel_size
    n_layers = c.layers_per_cycle * c.cycles
    return n_layers * (K * R * 2 * G + G * S) + (n_layers - 1) * G * R + S * H + H * c.n_classes


def vector_bytes(march: str) -> int:
    probe = subprocess.run(["gcc", f"-march={march}", "-dM", "-E", "-x", "c", "/dev/null"], capture_output=True,
                           text=True, check=True).stdout
    return 64 if "__AVX512F__" in probe else 32 if "__AVX__" in probe else 16


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="HEAD", help="git revision of the source to compare with (default HEAD)")
    ap.add_argument("--march", default="x86-64-v3", help="the -march both are built for (default x86-64-v3)")
    ap.add_argument("--backend", action="append", choices=["c", "c16", "cbf16"], help="weight formats (default c, c16)")
    ap.add_argument("--checkpoint", default=str(ROOT / "wavegen" / "models" / "harpsichord-cpu"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.0, help="audio per stream per timing (default 1)")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    backends = args.backend or ["c", "c16"]

    tmp = Path(tempfile.mkdtemp(prefix="wavegen-kernel-source-"))
    base_src = tmp / "base.c"
    shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{args.base}:wavegen/synth/_kernel.c"],
                           capture_output=True, text=True)
    if shown.returncode != 0:
        raise SystemExit(f"--base {args.base}: {shown.stderr.strip() or 'no such revision'}")
    base_src.write_text(shown.stdout)
    sources = {"base": base_src, "new": ROOT / "wavegen" / "synth" / "_kernel.c"}

    loaded = checkpoint.load(args.checkpoint)
    model, sr = loaded.model, loaded.sample_rate_hz
    sketch = T.read_file(BG.SKETCH)
    installed = dict(F._C_KERNELS)
    players = {b: F.FastWaveNet(model, b) for b in backends}
    builds = {(name, b): BG.build_kernel(args.march, tmp, source=src, name=name, backend=b)
              for name, src in sources.items() for b in backends}
    n = int(args.seconds * sr)
    times: dict[tuple, list[float]] = {k: [] for k in builds}
    try:
        for _ in range(args.rounds):
            for (name, b), lib in builds.items():
                F._C_KERNELS[b] = lib
                run = lambda samples: players[b].run(samples, sample_rate_hz=sr, sketch=sketch,  # noqa: E731
                                                     batch=args.batch, threads=args.threads)
                run(model.samples_per_tick)  # warm
                t0 = time.perf_counter()
                run(n)
                times[(name, b)].append(time.perf_counter() - t0)
    finally:
        F._C_KERNELS.update(installed)

    vb = vector_bytes(args.march)
    peak = fma_peak(args.march, vb, tmp)
    macs = macs_per_sample(model)
    ceiling = peak * min(args.threads, args.batch) / macs
    rows = []
    for (name, b), ts in times.items():
        sps = n * args.batch / statistics.median(ts)
        rows.append({"source": name, "backend": b, "samples_per_s": sps, "realtime_factor": sps / sr,
                     "of_ceiling": sps / ceiling, "all_samples_per_s": [round(n * args.batch / t) for t in ts]})
    for r in rows:
        base = next(x for x in rows if x["source"] == "base" and x["backend"] == r["backend"])
        r["x_base"] = r["samples_per_s"] / base["samples_per_s"]

    name, flags = BG.machine.cpu()
    print(f"{name} ({', '.join(flags)}); -march={args.march} ({vb * 8}-bit vectors); batch {args.batch}, "
          f"{args.threads} threads; base = {args.base}; {args.rounds} rounds, medians")
    print(f"multiply-add ceiling: {peak / 1e9:.1f} G/s per core; the model: {macs:,} per sample -> "
          f"{ceiling:,.0f} samples/s on {min(args.threads, args.batch)} cores")
    print("| source | weights | samples/s | x real time | x base | of the ceiling |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {r['backend']} | {r['samples_per_s']:,.0f} | {r['realtime_factor']:.2f} | "
              f"{r['x_base']:.2f} | {r['of_ceiling']:.0%} |")
    print(json.dumps({"cpu": name, "march": args.march, "vector_bits": vb * 8, "batch": args.batch,
                      "threads": args.threads, "base": args.base, "fma_per_s_per_core": peak,
                      "macs_per_sample": macs, "ceiling_samples_per_s": ceiling, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
