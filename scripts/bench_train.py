"""Benchmark a training step of `configs/cpu.toml`: per precision (fp32, bf16, and what "auto" takes on
this CPU), with torch.compile, and against a peer WaveNet of the same size.

    .venv/bin/python scripts/bench_train.py                      # batch 4 x 8000, 3 rounds
    .venv/bin/python scripts/bench_train.py --compile --peer --json

Each variant runs in its own process (so peak memory is its own): forward, loss in fp32, backward,
gradient clipping and an AdamW step, on a crop batch with the shapes and the sparsity the loader makes:
mu-law codes, tick features and excitation of a generated four-voice piece (the excitation is zero on
keys that do not sound, as in real data). The variants run in turn, --rounds times; a variant's figure
is the median over rounds of its median step. Ratios are to fp32 eager, the baseline of the same run.

--peer also measures r9y9's wavenet_vocoder 0.1.1 (a popular PyTorch WaveNet), installed with
`--no-deps` into a throwaway venv that sees this venv's torch through a .pth file, with our shape: 20
layers in 2 cycles, 64 residual, 128 gate (2 x 64), 128 skip channels, 256 one-hot mu-law classes, the
88-key roll as 88 conditioning channels at audio rate; once with our kernel size 2 and once with its
default 3 (its other defaults kept: weight normalisation, dropout 0.05), and once plain (kernel 2, no
weight normalisation, no dropout: its fastest form). It needs the package index.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PEER = "wavenet_vocoder==0.1.1"


def four_voice_batch(batch: int, crop: int, spt: int, sample_rate: int, margin: int, seed: int = 0):
    """Codes, tick features, offsets, excitation and the 88-key roll at audio rate of `batch` crops of a
    generated four-voice piece (notes of 2 to 8 ticks in four registers)."""
    import numpy as np

    from wavegen.data.conditioning import crop_ticks, crop_window, excitation, tick_features, tick_window

    rng = np.random.default_rng(seed)
    n = crop // spt * 40
    roll = np.zeros((n, 88), dtype=bool)
    for low in (20, 32, 40, 48):
        t = 0
        while t < n:
            length, key = int(rng.integers(2, 9)), low + int(rng.integers(0, 14))
            roll[t : t + length - 1, key] = True
            t += length
    feats = tick_features(roll)
    n_ticks = crop_ticks(crop, spt, margin)
    ticks, offsets, exc, roll_up = [], [], [], []
    for _ in range(batch):
        start = int(rng.integers(0, (n - crop // spt - 2) * spt))
        first, off = crop_window(start, spt, margin)
        ticks.append(tick_window(feats, first, n_ticks))
        offsets.append(off)
        exc.append(excitation(roll, start, crop, spt, sample_rate))
        roll_up.append(roll[(start + np.arange(crop)) // spt].T)
    codes = rng.integers(0, 256, (batch, crop + 1))
    return {"inputs": codes[:, :-1], "targets": codes[:, 1:], "ticks": np.stack(ticks),
            "offset": np.array(offsets), "exc": np.stack(exc), "roll": np.stack(roll_up).astype(np.float32)}


def timed_steps(step, steps: int, warmup: int) -> float:
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_variant(variant: str, steps: int, warmup: int, batch: int, crop: int) -> dict:
    import torch
    import torch.nn.functional as F

    from wavegen import machine
    from wavegen.config import load_config

    kept = machine.keep_freed_memory()  # as `wavegen train` does, for every variant (the peer's too)
    cfg = load_config(ROOT / "configs" / "cpu.toml")
    data = {k: torch.from_numpy(v) for k, v in four_voice_batch(
        batch, crop, 800, 16000, cfg.model.cond_lookahead_ticks).items()}
    torch.manual_seed(0)
    row: dict = {"variant": variant, "malloc": "keeps freed memory" if kept else "system default"}
    if variant.startswith("peer"):
        from wavenet_vocoder import WaveNet as PeerWaveNet

        kernel, plain = int(variant[6]), variant.endswith("plain")
        model = PeerWaveNet(out_channels=256, layers=20, stacks=2, residual_channels=64, gate_channels=128,
                            skip_out_channels=128, kernel_size=kernel, cin_channels=88, scalar_input=False,
                            weight_normalization=not plain, dropout=0.0 if plain else 0.05)
        x = F.one_hot(data["inputs"], 256).transpose(1, 2).float()

        def forward():
            return model(x, data["roll"])
        dtype = None
    else:
        from wavegen.nn.model import WaveNet
        from wavegen.train import autoprecision
        from wavegen.train.loop import precision

        precision_name, compiled = variant.split(":")

        def loss(model, batch, autocast):  # the training loop's step, for auto's measurement
            with autocast():
                out = model(batch["inputs"], batch["ticks"], batch["offset"], batch["exc"])
            return F.cross_entropy(out.float(), batch["targets"])

        probe = lambda: (autoprecision.step_timer(lambda: WaveNet(cfg.model, 800), data, loss),  # noqa: E731
                         {"kind": "bench_train", "model": cfg.to_dict()["model"], "batch": [batch, crop]})
        amp = precision(precision_name, torch.device("cpu"), probe=probe)  # as `wavegen train` chooses
        row.update(precision=amp.name, notice=amp.notice)
        dtype = amp.dtype
        model = WaveNet(cfg.model, 800)
        step_model = torch.compile(model) if compiled == "compiled" else model

        def forward():
            return step_model(data["inputs"], data["ticks"], data["offset"], data["exc"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            out = forward()
        F.cross_entropy(out.float(), data["targets"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    dt = timed_steps(step, steps, warmup)
    row.update(threads=torch.get_num_threads(), step_seconds=dt, samples_per_s=batch * crop / dt,
               peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def peer_python(venv: Path) -> Path:
    """A venv with the peer in it and this venv's packages (torch) visible through a .pth file."""
    import site

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    peer_site = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    Path(peer_site, "wavegen-bench.pth").write_text(site.getsitepackages()[0] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", PEER], check=True)
    return py


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="times each variant runs, in turn with the others")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=8000)
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    ap.add_argument("--peer", action="store_true", help=f"also measure {PEER} (installs it in a throwaway venv)")
    ap.add_argument("--system-malloc", action="store_true",
                    help="also measure fp32, bf16 and the plain peer with glibc's default malloc "
                         "(WAVEGEN_SYSTEM_MALLOC=1), as wavegen trained before it kept freed memory")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant in this process
    args = ap.parse_args()

    if args.variant:
        print(json.dumps(run_variant(args.variant, args.steps, args.warmup, args.batch, args.crop)))
        return 0

    names = ["fp32:eager", "bf16:eager", "auto:eager"] + (["fp32:compiled", "bf16:compiled"] if args.compile else [])
    variants = dict.fromkeys(names, sys.executable)
    tmp = Path(tempfile.mkdtemp(prefix="wavegen-peer-")) if args.peer else None
    try:
        if tmp is not None:
            py = str(peer_python(tmp / "venv"))
            variants.update({"peer-k2": py, "peer-k3": py, "peer-k2-plain": py})
        if args.system_malloc:
            variants.update({f"{v}+system-malloc": variants[v] for v in ("fp32:eager", "bf16:eager", "peer-k2-plain")
                             if v in variants})
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for variant, py in variants.items():
                name, system = variant.removesuffix("+system-malloc"), variant.endswith("+system-malloc")
                cmd = [py, __file__, "--variant", name.replace("fp32", "no"), "--steps", str(args.steps),
                       "--warmup", str(args.warmup), "--batch", str(args.batch), "--crop", str(args.crop)]
                env = dict(os.environ, WAVEGEN_SYSTEM_MALLOC="1" if system else "0")
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
                runs[variant].append(json.loads(out.strip().splitlines()[-1]))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for variant, got in runs.items():
        row = dict(got[0])
        row["variant"] = variant
        row["samples_per_s"] = statistics.median(r["samples_per_s"] for r in got)
        row["samples_per_s_rounds"] = [round(r["samples_per_s"]) for r in got]
        row["peak_rss_mib"] = max(r["peak_rss_mib"] for r in got)
        rows.append(row)
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["ratio_to_fp32_eager"] = r["samples_per_s"] / base
    report = {"config": "configs/cpu.toml", "batch": args.batch, "crop_samples": args.crop, "steps": args.steps,
              "rounds": args.rounds, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"configs/cpu.toml, batch {args.batch} x {args.crop} samples; median over {args.rounds} rounds of the "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'variant':<42}{'threads':>8}{'samples/s':>12}{'x fp32':>8}{'peak MiB':>10}")
    for r in rows:
        base_name = r["variant"].removesuffix("+system-malloc")
        name = {"fp32:eager": "fp32", "bf16:eager": "bf16", "fp32:compiled": "fp32 compiled",
                "bf16:compiled": "bf16 compiled", "peer-k2": "peer, kernel 2",
                "peer-k3": "peer, kernel 3 (its default)", "peer-k2-plain": "peer, k2, no wnorm/dropout"}.get(base_name)
        if r["variant"] == "auto:eager":
            name = f"auto (took {r['precision'].replace('no', 'fp32')})"
        if r["variant"] != base_name:
            name += ", system malloc"
        print(f"{name:<42}{r['threads']:>8}{r['samples_per_s']:>12,.0f}{r['ratio_to_fp32_eager']:>8.2f}"
              f"{r['peak_rss_mib']:>10,.0f}")
    print(next(r["notice"] for r in rows if r["variant"] == "auto:eager"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
