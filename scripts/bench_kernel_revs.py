"""Benchmark the C kernel as it was at other commits against the current one and numba, in one run.

    .venv/bin/python scripts/bench_kernel_revs.py --rev 3d0c5aa^ --rev HEAD       # before/after a change
    .venv/bin/python scripts/bench_kernel_revs.py --rev HEAD --march x86-64-v2 --json
    .venv/bin/python scripts/bench_kernel_revs.py --rev HEAD --rev worktree --f16   # and their c16 builds

Each --rev's wavegen/synth/_kernel.c (from git; `worktree` for the file on disk) is built with setup.py's
flags for --march (default native) and plays the shipped model (or --checkpoint) following
data/examples/prelude-c.txt at its own sampling settings: 1 s of audio at batch 1 on one thread and
0.25 s a take at batch 16 on two. Prints samples/s, medians of --repeats, and the real-time factor;
numba's kernel is measured alongside. With --f16, each revision is also built with fp16 weights
(-DWG_WEIGHT_F16: the "c16" backend; revisions before it cannot be loaded as one). The kernels take
turns in every round, so a busier minute slows all of them. A build whose structs differ from this
checkout's mirrors cannot be loaded and is reported as such.
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

from bench_generate import build_kernel  # noqa: E402  (scripts/ is on the path when a script runs)

from wavegen.errors import WavegenError  # noqa: E402
from wavegen.machine import cpu  # noqa: E402
from wavegen.nn import checkpoint  # noqa: E402
from wavegen.notes import text as T  # noqa: E402
from wavegen.synth import fast as F  # noqa: E402

SOURCE = "wavegen/synth/_kernel.c"


def build(rev: str, march: str, out: Path, backend: str = "c"):
    src = out / f"kernel-{rev.replace('/', '_')}.c"
    if rev == "worktree":
        src.write_text((ROOT / SOURCE).read_text())
    else:
        src.write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{SOURCE}"], check=True,
                                       capture_output=True).stdout)
    return build_kernel(march, out, source=src, name=src.stem, backend=backend)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", action="append", default=[], help="a git revision, or worktree; repeatable")
    ap.add_argument("--march", default="native")
    ap.add_argument("--checkpoint", help="default: the shipped model")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--f16", action="store_true", help="also each revision's build with fp16 weights (c16)")
    args = ap.parse_args()
    loaded = checkpoint.load(args.checkpoint)
    sr, sampling = loaded.sample_rate_hz, loaded.sampling(None, None)
    sketch = T.read_file(ROOT / "data" / "examples" / "prelude-c.txt")
    tmp = Path(tempfile.mkdtemp(prefix="wavegen-kernels-"))
    kernels, broken = {}, {}
    for rev in args.rev or ["worktree"]:
        for backend in ("c", "c16") if args.f16 else ("c",):
            name = rev if backend == "c" else f"{rev} c16"
            try:
                kernels[name] = (backend, build(rev, args.march, tmp, backend))
            except WavegenError as e:
                broken[name] = str(e)
    cases = [(1, 1, 1.0), (16, 2, 0.25)]
    speeds: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for name in [*kernels, "numba"]:
            backend = "numba"
            if name != "numba":
                backend, F._C_KERNELS[backend] = kernels[name]
            player = F.FastWaveNet(loaded.model, backend)
            for batch, threads, seconds in cases:
                n = int(seconds * sr)
                player.run(loaded.samples_per_tick, sample_rate_hz=sr, sketch=sketch, batch=batch, threads=threads)
                t0 = time.perf_counter()
                player.run(n, sample_rate_hz=sr, sketch=sketch, batch=batch, threads=threads, **sampling)
                speeds.setdefault((name, batch), []).append(n * batch / (time.perf_counter() - t0))
    name, flags = cpu()
    rows = [{"kernel": k, "batch": b, "threads": 1 if b == 1 else 2, "samples_per_s": statistics.median(v),
             "realtime_factor": statistics.median(v) / sr, "runs": [round(x) for x in v]}
            for (k, b), v in speeds.items()]
    report = {"cpu": name, "vector_extensions": list(flags), "march": args.march, "repeats": args.repeats,
              "rows": rows, "not_loadable": broken}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"CPU: {name} ({' '.join(flags)}); kernels built -march={args.march}; median of {args.repeats}")
    print(f"{'kernel':<24}{'batch':>6}{'threads':>8}{'samples/s':>12}{'x real time':>13}")
    for r in rows:
        print(f"{r['kernel']:<24}{r['batch']:>6}{r['threads']:>8}{r['samples_per_s']:>12,.0f}{r['realtime_factor']:>13.2f}")
    for rev, why in broken.items():
        print(f"{rev}: not loadable here ({why})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
