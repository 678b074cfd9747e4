"""Training crops per second of a real dataset, in this process (one loader worker's work).

    .venv/bin/python scripts/bench_crops.py --data data/build/all
    .venv/bin/python scripts/bench_crops.py --data data/build/all --config configs/gpu.toml --crops 200 --json

Makes the training split's crops as a run of --config would (its model's excitation, velocity and
output), warms up with 5, then times --crops more (each a fresh index; a piece a crop has not met
before in this process is parsed, as a worker starting its run parses each piece the first time: with
1,936 pieces nearly every one of 120 crops) and prints crops per second and milliseconds per crop.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wavegen import machine  # noqa: E402
from wavegen.config import load_config  # noqa: E402
from wavegen.data import dataset as D  # noqa: E402
from wavegen.errors import WavegenError  # noqa: E402
from wavegen.nn import heldout  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a dataset folder (wavegen data build)")
    ap.add_argument("--config", default=str(ROOT / "configs" / "cpu.toml"))
    ap.add_argument("--crop-samples", type=int, default=16_000)
    ap.add_argument("--crops", type=int, default=120, help="crops timed after 5 of warm-up (default 120)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    machine.keep_freed_memory()  # as in a training run's loader workers (forked from `wavegen train`)
    try:
        ds = D.load(args.data)
        cfg = load_config(args.config)
    except WavegenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    crops = heldout.crops(ds, "train", cfg.model, args.crop_samples)
    for i in range(5):
        crops[i]
    t0 = time.perf_counter()
    for i in range(5, 5 + args.crops):
        crops[i]
    seconds = time.perf_counter() - t0
    result = {"data": args.data, "config": args.config, "crop_samples": args.crop_samples, "crops": args.crops,
              "crops_per_s": args.crops / seconds, "ms_per_crop": 1e3 * seconds / args.crops}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['crops_per_s']:.1f} crops/s ({result['ms_per_crop']:.1f} ms a crop of {args.crop_samples:,} "
              f"samples), {args.crops} crops of {args.data}'s training split")
    return 0


if __name__ == "__main__":
    sys.exit(main())
