"""Benchmark the data side at cluster scale: start-up time and memory of training and evaluation as the
dataset grows, the crops a loader worker makes per second, and how many workers one GPU needs.

    .venv/bin/python scripts/bench_data_scale.py                        # 1, 10, 100 and 500 hours
    .venv/bin/python scripts/bench_data_scale.py --hours 1,500 --json

For each size it lays out, in a temporary folder, a dataset of that many hours as `wavegen data build`
writes one: manifest.json with an entry per item (pieces of 20 to 60 s in 7 transpositions, four styles,
split by piece as the build splits), text/<id>.txt and audio/<id>.npy. The files are hard links to one
88-key text (random four-voice chords) and one sparse, silent int16 array per length, so 500 hours take
a few MiB of disk; every item still has its own paths, as in a real dataset.

Then, per size, each in a fresh process (so its peak memory is its own), with `configs/gpu.toml`:

- first load: `dataset.load` of the new manifest, which makes its index (index.npz), seconds and memory;
- start: `dataset.load` (from the index), `WaveNetTask` and its run record (`meta()`: styles, velocity, provenance), the
  training crops, a DataLoader with one worker and its first batch (StepSampler, as the loop builds it),
  then the validation crops (`prepare_validation`) and what `wavegen evaluate` reads before it plays
  (`pieces_of` the test split and its held-out crops). Seconds per phase, peak RSS of the process
  (and of the worker) against the same process just after its imports;
- loop: `wavegen.train.loop.train` for one step, the real start of a run (accelerate, run folder, record,
  validation, loader), with configs/gpu.toml's [data] but the tiny model, so the step is cheap;
- crops/s: batches from the one-worker loader after its first, timed: crops per second per worker.

Beside it, the GPU side: multiply-adds per training sample of configs/gpu.toml's WaveNet, forward and
backward, counted by torch.utils.flop_counter on one crop, and the samples per second one H200 would
consume at --utilisation of its dense bf16 peak; divided by a worker's samples per second, the workers a
GPU needs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
H200_BF16_DENSE_FLOPS = 989e12  # NVIDIA H200 SXM, bf16 tensor cores without sparsity (the same as H100 SXM)
STYLES = ("bach", "essen", "oneills", "palestrina")
TRANSPOSITIONS = range(-3, 4)


def rss_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_dataset(root: Path, hours: float, seed: int = 0) -> dict:
    """A dataset folder of `hours` hours at 16 kHz, 50 ms ticks (see the module docstring)."""
    import numpy as np

    from wavegen.data.build import assign_splits
    from wavegen.data.dataset import DATASET_VERSION, Item
    from wavegen.notes import text as T

    t0 = time.perf_counter()
    sr, spt, tick_ms = 16_000, 800, 50.0
    rng = np.random.default_rng(seed)
    for sub in ("text", "audio", "templates"):
        (root / sub).mkdir(parents=True)
    templates: dict[int, tuple[Path, Path, str]] = {}

    def template(seconds: int) -> tuple[Path, Path, str]:
        if seconds not in templates:
            n_ticks = seconds * 1000 // int(tick_ms)
            roll = np.zeros((n_ticks, 88), dtype=bool)
            for low in (20, 32, 40, 48):  # four voices, notes of 2 to 8 ticks
                t = 0
                while t < n_ticks:
                    length, key = int(rng.integers(2, 9)), low + int(rng.integers(0, 14))
                    roll[t : t + length - 1, key] = True
                    t += length
            text = root / "templates" / f"{seconds}.txt"
            T.write_file(text, T.KeyText(roll, tick_ms))
            audio = root / "templates" / f"{seconds}.npy"
            np.lib.format.open_memmap(audio, mode="w+", dtype=np.int16, shape=((n_ticks + 10) * spt,)).flush()
            keys = "".join(chr(21 + k + 12) for k in np.flatnonzero(roll.any(axis=0)))
            templates[seconds] = (text, audio, keys)
        return templates[seconds]

    items, total, p = [], 0.0, 0
    while total < hours * 3600:
        piece, style = f"piece{p:06d}", STYLES[p % len(STYLES)]
        seconds = int(rng.integers(20, 61))
        text, audio, keys = template(seconds)
        n_ticks = seconds * 1000 // int(tick_ms)
        for shift in TRANSPOSITIONS:
            name = f"{piece}{'' if shift == 0 else f'_t{shift:+d}'}"
            os.link(text, root / "text" / f"{name}.txt")
            os.link(audio, root / "audio" / f"{name}.npy")
            n_samples = (n_ticks + 10) * spt
            items.append(Item(id=name, piece=piece, transpose=shift, split="", source=f"{style}/{piece}.krn",
                              licence="public domain", style=style, n_ticks=n_ticks, n_samples=n_samples,
                              seconds=n_samples / sr, clipped=0, peak=0.5, lowest_pitch=41 + shift,
                              highest_pitch=82 + shift, keys=keys, text_key=f"{p:064x}", audio_key=f"{p:064x}"))
            total += n_samples / sr
        p += 1
    splits = assign_splits([it.piece for it in items])
    for it in items:
        it.split = splits[it.piece]
    manifest = {"dataset_version": DATASET_VERSION, "text_format_version": T.FORMAT_VERSION, "sample_rate_hz": sr,
                "tick_ms": tick_ms, "samples_per_tick": spt, "transpositions": list(TRANSPOSITIONS),
                "fold_octaves": False, "soundfont": "/usr/share/sounds/sf2/FluidR3_GM.sf2", "soundfont_sha256": "0" * 64,
                "render_version": 1, "styles": {}, "items": [asdict(it) for it in items], "skipped": [],
                "warnings": []}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return {"hours": round(total / 3600, 1), "items": len(items), "pieces": p,
            "manifest_mib": (root / "manifest.json").stat().st_size / 2**20, "make_seconds": time.perf_counter() - t0}


def gpu_config():
    from wavegen.config import load_config

    return load_config(ROOT / "configs" / "gpu.toml")


def measure_start(root: Path, batches: int) -> dict:
    """In this (fresh) process: the phases of a start (module docstring), then the worker's crops/s."""
    t0 = time.perf_counter()
    import torch

    from wavegen.data import dataset
    from wavegen.data.crops import StepSampler
    from wavegen.nn import heldout
    from wavegen.train.wavenet import WaveNetTask

    torch.set_num_threads(1)
    row: dict = {"import_s": time.perf_counter() - t0, "rss_after_import_mib": rss_mib()}
    cfg = gpu_config()
    dc = cfg.data

    def phase(name: str, fn):
        t = time.perf_counter()
        out = fn()
        row[f"{name}_s"] = time.perf_counter() - t
        row[f"rss_after_{name}_mib"] = rss_mib()
        return out

    ds = phase("load", lambda: dataset.load(root))
    task = phase("task", lambda: (lambda t: (t, t.meta()))(WaveNetTask(cfg, ds))[0])
    crops = phase("train_set", task.train_set)
    sampler = StepSampler(0, 1 + batches, dc.batch_size, 1, 0, 1)
    loader = torch.utils.data.DataLoader(crops, batch_sampler=sampler, num_workers=1, persistent_workers=False)
    it = iter(loader)
    phase("first_batch", it.__next__)
    row["start_to_first_batch_s"] = sum(row[f"{k}_s"] for k in ("load", "task", "train_set", "first_batch"))
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    row["crops_per_s_per_worker"] = batches * dc.batch_size / (time.perf_counter() - t)
    del it, loader
    row["worker_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    phase("validation", task.prepare_validation)

    def evaluation_start():
        if hasattr(ds, "select"):  # as report.evaluate chooses its pieces (before the index: every item read)
            pieces = ds.items_of(ds.select("test", transpose=0))[:5]
        else:
            pieces = [i for i in ds.items("test") if i.transpose == 0][:5]
        held = heldout.HeldOut.of(heldout.crops(ds, "test", task.cfg.model, dc.crop_samples, styles=task.styles),
                                  max(4, 2 * len(pieces)))
        return pieces, held
    ds = phase("eval_load", lambda: dataset.load(root))  # evaluate's own load, after training's
    phase("eval_start", evaluation_start)
    row["peak_rss_mib"] = rss_mib()
    return row


def measure_first_load(root: Path) -> dict:
    """In this (fresh) process: the first `dataset.load` of a new manifest, which makes its index."""
    from wavegen.data import dataset

    def status_mib(field: str) -> float:  # VmRSS (now) or VmHWM (peak) of this process, MiB
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
        return int(line.split()[1]) / 1024

    rss0 = status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from now (Linux 4.0 and later)
    t = time.perf_counter()
    dataset.load(root)
    return {"first_load_s": time.perf_counter() - t, "first_load_rss_mib": status_mib("VmHWM") - rss0}


def measure_loop(root: Path) -> dict:
    """In this (fresh) process: `train` for one step of the tiny model with gpu.toml's [data]."""
    t0 = time.perf_counter()
    import torch

    from wavegen.config import load_config
    from wavegen.data import dataset
    from wavegen.train.loop import train
    from wavegen.train.wavenet import WaveNetTask

    torch.set_num_threads(1)
    import_s, rss0 = time.perf_counter() - t0, rss_mib()
    gpu = gpu_config().data
    cfg = load_config(ROOT / "configs" / "tiny.toml", [  # the tiny model, gpu.toml's data
        f"data.crop_samples={gpu.crop_samples}", f"data.batch_size={gpu.batch_size}", "data.num_workers=1",
        f"data.valid_crops={gpu.valid_crops}", "train.steps=1", "train.eval_every=1000000",
        "train.ckpt_every=1000000", "train.sample_seconds=0", "train.mixed_precision=no"])
    run_dir = Path(tempfile.mkdtemp(prefix="wavegen-loop-")) / "run"
    t = time.perf_counter()
    try:
        train(WaveNetTask(cfg, dataset.load(root)), run_dir, stop_after=1, show_progress=False, log=lambda m: None)
    finally:
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    return {"loop_import_s": import_s, "loop_one_step_s": time.perf_counter() - t,
            "loop_rss_after_import_mib": rss0, "loop_peak_rss_mib": rss_mib(),
            "loop_worker_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def gpu_demand(utilisation: float) -> dict:
    """Multiply-adds per training sample of configs/gpu.toml's WaveNet (forward and backward of one crop,
    counted by torch's FlopCounterMode) and the samples per second an H200 consumes at `utilisation`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from wavegen.data.conditioning import N_EXCITATION, N_TICK_FEATURES, crop_ticks
    from wavegen.nn.model import WaveNet, loss_fn

    torch.set_num_threads(1)
    cfg = gpu_config()
    T, spt = cfg.data.crop_samples, 800
    model = WaveNet(cfg.model, spt)
    n_ticks = crop_ticks(T, spt, cfg.model.cond_lookahead_ticks)
    inputs = torch.randint(0, 256, (1, T))
    ticks = torch.rand(1, N_TICK_FEATURES, n_ticks)
    exc = torch.rand(1, N_EXCITATION, T)  # every channel: a GPU multiplies all 176 (nn.model.sounding_channels)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(inputs, ticks, torch.tensor([cfg.model.cond_lookahead_ticks * spt]), exc)
        loss_fn(cfg.model.output, out, torch.randint(0, 256, (1, T))).backward()
    flops = counter.get_total_flops() / T  # FLOPs = 2 x multiply-adds
    consumed = utilisation * H200_BF16_DENSE_FLOPS / flops
    return {"config": "configs/gpu.toml", "macs_per_sample_fwd_bwd": flops / 2, "flops_per_sample_fwd_bwd": flops,
            "h200_bf16_dense_flops": H200_BF16_DENSE_FLOPS, "utilisation": utilisation,
            "samples_per_s_consumed": consumed, "crops_per_s_consumed": consumed / T,
            "crop_samples": T, "batch_size": cfg.data.batch_size}


def child(kind: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, *args], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode:
        raise SystemExit(f"{kind} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", default="1,10,100,500", help="dataset sizes, comma-separated hours")
    ap.add_argument("--batches", type=int, default=8, help="batches timed for crops/s, after the first")
    ap.add_argument("--utilisation", type=float, default=0.3, help="share of the H200's bf16 peak assumed")
    ap.add_argument("--no-loop", action="store_true", help="skip the one-step train() start")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # internal: one measurement in this process
    args = ap.parse_args()

    if args.child:
        kind, *rest = args.child
        got = {"start": lambda: measure_start(Path(rest[0]), int(rest[1])), "loop": lambda: measure_loop(Path(rest[0])),
               "gpu": lambda: gpu_demand(float(rest[0])), "first": lambda: measure_first_load(Path(rest[0]))}[kind]()
        print(json.dumps(got))
        return 0

    gpu = child("gpu", str(args.utilisation))
    rows = []
    for hours in [float(h) for h in args.hours.split(",")]:
        tmp = Path(tempfile.mkdtemp(prefix="wavegen-scale-"))
        try:
            row = make_dataset(tmp / "ds", hours)
            row.update(child("first", str(tmp / "ds")))
            row.update(child("start", str(tmp / "ds"), str(args.batches)))
            if not args.no_loop:
                row.update(child("loop", str(tmp / "ds")))
            row["index_mib"] = sum(f.stat().st_size for f in (tmp / "ds").glob("index*")) / 2**20
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rows.append(row)
        print(f"{hours:g} h done", file=sys.stderr)
    per_worker = min(r["crops_per_s_per_worker"] for r in rows) * gpu["crop_samples"]
    report = {"rows": rows, "gpu": gpu, "worker_samples_per_s": per_worker,
              "workers_per_gpu": gpu["samples_per_s_consumed"] / per_worker}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"configs/gpu.toml data ([data] crop {gpu['crop_samples']}, batch {gpu['batch_size']}), one loader worker, "
          "each size in fresh processes; seconds, MiB; RSS@1 = peak RSS at the first batch, +RSS@1 = beyond imports")
    head = (f"{'hours':>6}{'items':>8}{'manifest':>9}{'1st load':>9}{'+RSS':>6}{'load':>7}{'task':>7}{'crops':>7}{'batch1':>7}{'to batch':>9}"
            f"{'valid':>7}{'eval':>7}{'RSS@1':>7}{'+RSS@1':>7}{'RSS':>7}{'worker':>7}{'crops/s':>8}{'loop 1':>8}{'loopRSS':>8}")
    print(head)
    for r in rows:
        print(f"{r['hours']:>6g}{r['items']:>8,}{r['manifest_mib']:>9.1f}{r['first_load_s']:>9.2f}"
              f"{r['first_load_rss_mib']:>6.0f}{r['load_s']:>7.2f}{r['task_s']:>7.2f}"
              f"{r['train_set_s']:>7.2f}{r['first_batch_s']:>7.2f}{r['start_to_first_batch_s']:>9.2f}"
              f"{r['validation_s']:>7.2f}{r['eval_load_s'] + r['eval_start_s']:>7.2f}{r['rss_after_first_batch_mib']:>7.0f}"
              f"{r['rss_after_first_batch_mib'] - r['rss_after_import_mib']:>7.0f}{r['peak_rss_mib']:>7.0f}{r['worker_peak_rss_mib']:>7.0f}"
              f"{r['crops_per_s_per_worker']:>8.1f}{r.get('loop_one_step_s', float('nan')):>8.2f}"
              f"{r.get('loop_peak_rss_mib', float('nan')):>8.0f}")
    print(f"GPU: {gpu['macs_per_sample_fwd_bwd'] / 1e6:.2f} M multiply-adds per training sample (forward + backward); "
          f"an H200 at {gpu['utilisation']:.0%} of {gpu['h200_bf16_dense_flops'] / 1e12:.0f} TFLOP/s bf16 consumes "
          f"{gpu['samples_per_s_consumed'] / 1e6:.1f} M samples/s ({gpu['crops_per_s_consumed']:,.0f} crops/s); one worker "
          f"makes {per_worker / 1e6:.2f} M: {report['workers_per_gpu']:.0f} workers per GPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
