"""Benchmark a training step of `configs/cpu.toml`: fp32 against bf16 autocast (and torch.compile).

    .venv/bin/python scripts/bench_train.py                      # synthetic crops, batch 4 x 8000
    .venv/bin/python scripts/bench_train.py --compile --json

Each variant runs in its own process (so peak memory is its own): forward, loss in fp32, backward,
gradient clipping and an AdamW step, on crops with the shapes the loader makes (mu-law codes, tick
features, excitation). Prints samples per second (median over --steps after --warmup), the ratio to
fp32 eager measured in the same run, and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_variant(precision: str, compiled: bool, steps: int, warmup: int, batch: int, crop: int) -> dict:
    import torch

    from wavegen.config import load_config
    from wavegen.data.conditioning import N_EXCITATION, N_TICK_FEATURES, crop_ticks
    from wavegen.nn.model import WaveNet, loss_fn

    cfg = load_config(ROOT / "configs" / "cpu.toml")
    torch.manual_seed(0)
    model = WaveNet(cfg.model, 800)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step_model = torch.compile(model) if compiled else model
    g = torch.Generator().manual_seed(0)
    n_ticks = crop_ticks(crop, 800, cfg.model.cond_lookahead_ticks)
    batch_data = {
        "inputs": torch.randint(0, 256, (batch, crop), generator=g),
        "targets": torch.randint(0, 256, (batch, crop), generator=g),
        "ticks": (torch.rand(batch, N_TICK_FEATURES, n_ticks, generator=g) > 0.9).float(),
        "offset": torch.randint(0, 1600, (batch,), generator=g),
        "exc": torch.randn(batch, N_EXCITATION, crop, generator=g) * 0.1,
    }
    dtype = torch.bfloat16 if precision == "bf16" else None
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            out = step_model(batch_data["inputs"], batch_data["ticks"], batch_data["offset"], batch_data["exc"])
        loss = loss_fn("mulaw", out, batch_data["targets"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    return {"precision": precision, "compiled": compiled, "threads": torch.get_num_threads(),
            "batch": batch, "crop_samples": crop, "step_seconds": dt, "samples_per_s": batch * crop / dt,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=8000)
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant in this process
    args = ap.parse_args()

    if args.variant:
        precision, compiled = args.variant.split(":")
        print(json.dumps(run_variant(precision, compiled == "1", args.steps, args.warmup, args.batch, args.crop)))
        return 0

    variants = [("fp32", False), ("bf16", False)]
    if args.compile:
        variants += [("fp32", True), ("bf16", True)]
    rows = []
    for precision, compiled in variants:
        cmd = [sys.executable, __file__, "--variant", f"{precision}:{int(compiled)}", "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch", str(args.batch), "--crop", str(args.crop)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["ratio_to_fp32_eager"] = r["samples_per_s"] / base
    report = {"config": "configs/cpu.toml", "batch": args.batch, "crop_samples": args.crop,
              "steps": args.steps, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"configs/cpu.toml, batch {args.batch} x {args.crop} samples, median of {args.steps} steps "
              f"after {args.warmup} warm-up")
        print(f"{'variant':<18}{'threads':>8}{'samples/s':>12}{'x fp32':>8}{'peak MiB':>10}")
        for r in rows:
            name = f"{r['precision']}{' compiled' if r['compiled'] else ''}"
            print(f"{name:<18}{r['threads']:>8}{r['samples_per_s']:>12,.0f}{r['ratio_to_fp32_eager']:>8.2f}"
                  f"{r['peak_rss_mib']:>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
