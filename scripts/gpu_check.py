"""The GPU check (scripts/gpu_check.sh runs it): training and generation of wavegen on one GPU, in minutes.

    python scripts/gpu_check.py                                   # on a CUDA machine: the whole check
    python scripts/gpu_check.py --device cpu --quick              # every path a CPU runs, in seconds (a test)
    python scripts/gpu_check.py --estimate configs/maestro-gpu.toml   # a config's sizing numbers, any machine

Training: `--steps` steps of configs/gpu.toml (its model, batch and crop) in bf16 and in fp16 (loss
scaling), eager and torch.compile'd, through the training loop's own pieces: `loop.precision` (autocast
and, for fp16, its torch.amp.GradScaler), the loss as WaveNetTask.loss computes it, gradient clipping,
AdamW and the loop's schedule; on fixed batches of a generated four-voice piece (scripts/bench_train.py's:
the shapes and the sparsity the loader makes). For each: samples/s (median step after warm-up; the
first step, with compiling, apart), peak GPU memory, and the losses of the first `--agree-steps` steps
against a CPU fp32 run of the same steps from the same weights on the same batches (the tolerances
are TOLERANCE below, with why). Training data comes from no loader: the figures are the GPU's.

Generation: the CUDA-graph step (`wavegen.synth.generate.CudaGraphStep`) against the plain
`WaveNet.step` on the same inputs (teacher-forced codes, conditioning, excitation), and samples/s of the
PyTorch engine (`play(engine="torch")`, which replays that graph on a GPU) at batch 1, 16 and 64. On a
CPU the step class runs uncaptured (the same static tensors and device counter, no graph), so that all
of it but the capture runs in tests/test_gpu_check.py.

--estimate prints what a config is sized by, from a forward and backward pass on PyTorch's meta device
(nothing is computed): parameters, receptive field, FLOPs per training sample, the bytes autograd keeps
per sample in bf16, memory per GPU at the config's batch x crop, and samples/s at a stated fraction of
a GPU's peak. Output: a table, then the report as JSON (--json: the JSON alone).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_train import four_voice_batch  # noqa: E402

from wavegen.config import WaveNetConfig, load_config  # noqa: E402
from wavegen.nn import heldout  # noqa: E402
from wavegen.nn.model import WaveNet, loss_fn  # noqa: E402
from wavegen.train import loop  # noqa: E402

SAMPLE_RATE_HZ, SAMPLES_PER_TICK = 16_000, 800  # the datasets' defaults (16 kHz, 50 ms ticks)
H200_BF16_TFLOPS = 989.0  # dense bf16 tensor-core peak of an H100/H200 SXM (NVIDIA's data sheet, no sparsity)

# How far a variant's loss may be from the CPU fp32 loss of the same step, relative. The loss is a mean of
# cross-entropies over batch x crop samples (256,000 for gpu.toml), computed in fp32 from logits the
# network computes in low precision; its rounding errors are nearly independent from sample to sample and
# mostly cancel in the mean. Measured on the CPU (AVX-512 bf16, gpu.toml's network at its initial weights,
# two batches of 2 x 8,000 samples, forward under autocast; 2026-12-02): bf16 moved the loss by 3.5e-6 and
# 3.9e-6 of itself, fp16 by 1.7e-7 and 2.6e-7 (a 500th and a 900th of their unit roundoffs, 2^-9 and 2^-12).
# The bounds are 50 to 80 times those: room for other kernels (cuDNN's, Inductor's fusions) summing in
# another order, and for the steps after the first, whose weights are one or two AdamW steps of lr / warmup
# apart (5e-7 for gpu.toml), yet tight enough that a wrong kernel or cast shows (a loss scale that is
# wrong shows as skipped steps and in the last loss, not here). fp32 on a GPU
# may use TF32 convolutions (cuDNN's default: fp16's 11 bits), hence fp16's bound.
TOLERANCE = {"bf16": 2e-4, "fp16": 2e-5, "no": 2e-5}


def make_batches(model: WaveNet, n: int, batch: int, crop: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """`n` batches of `batch` crops of `crop` samples, in the keys and dtypes of CropDataset's (CPU)."""
    cfg = model.cfg
    out = []
    for i in range(n):
        b = four_voice_batch(batch, crop, SAMPLES_PER_TICK, SAMPLE_RATE_HZ, cfg.cond_lookahead_ticks, seed=seed + i)
        codes_in, codes_out = torch.from_numpy(b["inputs"]), torch.from_numpy(b["targets"])
        if cfg.output == "mol":  # 16-bit grid in [-1, 1], as CropDataset makes it
            def grid(c: torch.Tensor) -> torch.Tensor:
                return torch.round(c.double() / (cfg.n_classes - 1) * 65535) / 65535 * 2 - 1
            codes_in, codes_out = grid(codes_in).float(), grid(codes_out).float()
        ticks = torch.from_numpy(b["ticks"])
        want = getattr(model, "n_tick_features", ticks.shape[1])  # a model with velocity channels reads more
        if want > ticks.shape[1]:  # velocity 90 of 127 on every sounding key
            ticks = torch.cat([ticks, ticks[:, : want - ticks.shape[1]] * (90 / 127)], dim=1)
        exc = torch.from_numpy(b["exc"]) if model.uses_excitation else torch.zeros(batch, 0, crop)
        out.append({"inputs": codes_in.long() if cfg.output == "mulaw" else codes_in, "targets": codes_out if
                    cfg.output == "mol" else codes_out.long(), "ticks": ticks, "offset": torch.from_numpy(b["offset"]),
                    "exc": exc, "style": torch.zeros(batch, dtype=torch.long)})
    return out


def precision_for(name: str, device: torch.device) -> loop.Precision:
    """The loop's precision of `name` on `device`; fp16 on a CPU gets what CUDA gets (fp16 autocast and a
    loss scaler, on the CPU) instead of the loop's fp32 fallback, so that its path runs in the CPU test."""
    if name == "fp16" and device.type == "cpu":
        return loop.Precision("fp16", "cpu", torch.float16, torch.amp.GradScaler("cpu"))
    return loop.precision(name, device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps(cfg: WaveNetConfig, init: dict[str, torch.Tensor], batches: list[dict[str, torch.Tensor]],
                steps: int, device: torch.device, precision: str, compile: bool) -> dict[str, Any]:
    """`steps` training steps from the weights `init`, cycling `batches`, as the loop takes them
    (loop._Run.step without the accelerator). Returns the losses (nats), step times and peak memory."""
    tc = cfg.train
    model = WaveNet(cfg.model, SAMPLES_PER_TICK).to(device)
    model.load_state_dict(init)
    amp = precision_for(precision, device)
    scaler = amp.scaler
    forward_model = torch.compile(model) if compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: loop.lr_factor(s, tc.warmup_steps, tc.steps,
                                                                            tc.min_lr_ratio))
    on_device = [heldout.to_device(b, device) for b in batches]
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    losses, times, skipped = [], [], 0
    for s in range(steps):
        batch = on_device[s % len(on_device)]
        _sync(device)
        t0 = time.perf_counter()
        with amp.autocast():  # as WaveNetTask.loss: the forward under autocast, the loss in fp32
            out = heldout.forward(forward_model, batch, cfg.model)
        loss = loss_fn(cfg.model.output, out, batch["targets"])
        amp.scale(loss).backward()
        if scaler is not None:
            scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        if scaler is not None:
            before = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            skipped += scaler.get_scale() < before  # an overflow: the scaler skipped this step
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        losses.append(loss.item())  # the loop reads the loss every step too (one sync per step)
        _sync(device)
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's, all variants
    return {"losses": losses, "times": times, "peak_mib": peak_mib, "precision": amp.name,
            "skipped_steps": int(skipped), "loss_scale": scaler.get_scale() if scaler is not None else None}


def check_training(cfg: WaveNetConfig, device: torch.device, steps: int, warmup: int, agree_steps: int,
                   variants: list[tuple[str, bool]], n_batches: int = 4) -> dict[str, Any]:
    """Every (precision, compile) variant on `device`, and the CPU fp32 run its first losses are held to."""
    dc = cfg.data
    flops_per_sample = estimate(cfg, H200_BF16_TFLOPS, 1.0)["train_mflops_per_sample"] * 1e6
    torch.manual_seed(cfg.train.seed)
    init = {k: v.clone() for k, v in WaveNet(cfg.model, SAMPLES_PER_TICK).state_dict().items()}
    batches = make_batches(WaveNet(cfg.model, SAMPLES_PER_TICK), n_batches, dc.batch_size, dc.crop_samples)
    t0 = time.perf_counter()
    ref = train_steps(cfg, init, batches, agree_steps, torch.device("cpu"), "no", False)["losses"]
    rows = [{"variant": "cpu fp32 (reference)", "precision": "no", "compile": False, "device": "cpu",
             "losses": ref, "seconds": time.perf_counter() - t0}]
    for precision, compile in variants:
        if compile:
            torch._dynamo.reset()  # each compiled variant compiles afresh, and is timed as such
        run = train_steps(cfg, init, batches, warmup + steps, device, precision, compile)
        timed = run["times"][warmup:] or run["times"]
        rate = dc.batch_size * dc.crop_samples / statistics.median(timed)
        diffs = [abs(a - b) / abs(b) for a, b in zip(run["losses"][:agree_steps], ref, strict=True)]
        tol = TOLERANCE[run["precision"]]
        rows.append({
            "variant": f"{run['precision']}{' compiled' if compile else ''}", "precision": run["precision"],
            "compile": compile, "device": device.type, "samples_per_s": rate, "tflops": rate * flops_per_sample / 1e12,
            "first_step_s": run["times"][0], "peak_mib": run["peak_mib"],
            "first_loss_bits": run["losses"][0] / math.log(2), "last_loss_bits": run["losses"][-1] / math.log(2),
            "max_rel_diff": max(diffs), "tolerance": tol, "agrees": max(diffs) <= tol,
            "skipped_steps": run["skipped_steps"], "loss_scale": run["loss_scale"], "losses": run["losses"],
        })
    return {"config": cfg.to_dict(), "batch": dc.batch_size, "crop_samples": dc.crop_samples, "steps": steps,
            "warmup": warmup, "agree_steps": agree_steps, "train_mflops_per_sample": flops_per_sample / 1e6,
            "rows": rows}


def check_generation(cfg: WaveNetConfig, device: torch.device, batches: list[int], seconds: float,
                     equal_steps: int) -> dict[str, Any]:
    """The graph step against the plain step, then the PyTorch engine's samples/s at each batch size."""
    from wavegen.notes.text import parse
    from wavegen.synth.generate import CudaGraphStep, play

    torch.manual_seed(1)
    model = WaveNet(cfg.model, SAMPLES_PER_TICK).to(device).eval()
    b = max(batches)
    data = make_batches(model, 1, b, max(equal_steps, 2 * SAMPLES_PER_TICK))[0]  # a piece of two ticks at least
    data = heldout.to_device({k: v[..., :equal_steps] if k in ("inputs", "exc") else v for k, v in data.items()},
                             device)
    with torch.no_grad():
        cond = model.upsample(model.tick_conditioning(data["ticks"]), data["offset"], equal_steps) \
            if model.uses_notes else None
        exc = data["exc"] if model.uses_excitation else None
        style = data["style"] if cfg.model.n_styles else None
        graphed = CudaGraphStep(model, b, device, data["inputs"][:, 0], cond.shape[1] if cond is not None else 0,
                                exc.shape[1] if exc is not None else 0, style)
        plain = model.init_state(b, device)
        worst = 0.0
        for t in range(equal_steps):
            c = cond[:, :, t] if cond is not None else None
            e = exc[:, :, t] if exc is not None else None
            want = model.step(data["inputs"][:, t], plain, c, e, style)
            got = graphed(data["inputs"][:, t], None, c, e, style)
            worst = max(worst, float((got - want).abs().max()))
    # a broken chord, held, for the engine's conditioning
    sketch = parse("{tick_ms=50}\n" + "HLO " * max(1, math.ceil(seconds * 20)))
    n = int(seconds * SAMPLE_RATE_HZ)
    rows = []
    for batch in batches:
        play(model, min(n, 2 * SAMPLES_PER_TICK), sample_rate_hz=SAMPLE_RATE_HZ, sketch=sketch, engine="torch",
             batch=batch)  # warm-up: the graph's capture, cuDNN's choices
        _sync(device)
        t0 = time.perf_counter()
        audio = play(model, n, sample_rate_hz=SAMPLE_RATE_HZ, sketch=sketch, engine="torch", batch=batch, seed=2)
        _sync(device)
        dt = time.perf_counter() - t0
        rows.append({"batch": batch, "samples": n, "seconds": dt, "samples_per_s": batch * n / dt,
                     "x_real_time_per_take": n / SAMPLE_RATE_HZ / dt, "finite": bool(torch.isfinite(
                         torch.from_numpy(audio)).all())})
    return {"graph": device.type == "cuda", "equal_steps": equal_steps, "graph_batch": b,
            "max_abs_diff": worst, "tolerance": 1e-4, "equal": worst <= 1e-4, "rows": rows}


def estimate(cfg: WaveNetConfig, peak_tflops: float, utilization: float) -> dict[str, Any]:
    """What `cfg` is sized by (see the module docstring), for its batch and crop."""
    dc, mc = cfg.data, cfg.model
    cpu_model = WaveNet(mc, SAMPLES_PER_TICK)
    params = sum(p.numel() for p in cpu_model.parameters())
    batch = make_batches(cpu_model, 1, 1, dc.crop_samples)[0]
    model = cpu_model.to("meta")
    meta = {k: v.to("meta") for k, v in batch.items()}
    # what autograd keeps for the backward pass, by tensor: the network's floats counted at 2 bytes (bf16,
    # as a GPU's autocast keeps the outputs of its convolutions and gates), the loss's at their own 4
    kept: dict[int, int] = {}
    width = {"network": 2}

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept[id(t)] = t.numel() * (width.get("network", t.element_size()) if t.is_floating_point() else
                                   t.element_size())
        return t

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as flops:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = heldout.forward(model, meta, mc)
            width.clear()
            loss = loss_fn(mc.output, out, meta["targets"])  # in fp32, as in training
        forward_flops = flops.get_total_flops()
        loss.backward()
    per_sample = flops.get_total_flops() / dc.crop_samples
    kept_per_sample = sum(kept.values()) / dc.crop_samples
    samples_per_step = dc.batch_size * dc.crop_samples * cfg.train.grad_accum
    state_bytes = params * (4 + 4 + 8 + 4)  # fp32 weights, gradients, AdamW's two moments, EMA
    act_bytes = kept_per_sample * dc.batch_size * dc.crop_samples  # one micro-batch's
    rate = peak_tflops * 1e12 * utilization / per_sample
    rf = mc.receptive_field()
    return {
        "parameters": params, "receptive_field_samples": rf, "receptive_field_ms": rf / SAMPLE_RATE_HZ * 1000,
        "forward_mflops_per_sample": forward_flops / dc.crop_samples / 1e6,
        "train_mflops_per_sample": per_sample / 1e6, "kept_kib_per_sample": kept_per_sample / 1024,
        "batch": dc.batch_size, "crop_samples": dc.crop_samples, "samples_per_step": samples_per_step,
        "activations_gib": act_bytes / 2**30, "weights_and_optimizer_gib": state_bytes / 2**30,
        "memory_gib": (act_bytes + state_bytes) / 2**30, "peak_tflops": peak_tflops, "utilization": utilization,
        "samples_per_s": rate, "step_s": samples_per_step / rate, "steps": cfg.train.steps,
        "samples_per_run": samples_per_step * cfg.train.steps,
        "hours_of_audio_per_run": samples_per_step * cfg.train.steps / SAMPLE_RATE_HZ / 3600,
        "run_hours_one_gpu": samples_per_step * cfg.train.steps / rate / 3600,
    }


def _table(report: dict[str, Any]) -> str:
    lines = []
    if "estimate" in report:
        e = report["estimate"]
        lines += [f"{report['config_path']}: {e['parameters']:,} parameters, receptive field "
                  f"{e['receptive_field_samples']} samples ({e['receptive_field_ms']:.0f} ms)",
                  f"  {e['train_mflops_per_sample']:.1f} MFLOP per training sample (forward "
                  f"{e['forward_mflops_per_sample']:.1f}); autograd keeps {e['kept_kib_per_sample']:.1f} KiB "
                  "per sample in bf16",
                  f"  batch {e['batch']} x {e['crop_samples']} = {e['samples_per_step']:,} samples per step: "
                  f"activations {e['activations_gib']:.1f} GiB + weights and optimizer "
                  f"{e['weights_and_optimizer_gib']:.2f} GiB = {e['memory_gib']:.1f} GiB per GPU",
                  f"  at {e['utilization']:.0%} of {e['peak_tflops']:.0f} TFLOPS: {e['samples_per_s']:,.0f} samples/s, "
                  f"{e['step_s'] * 1000:.0f} ms per step; {e['steps']:,} steps = {e['hours_of_audio_per_run']:,.0f} h "
                  f"of audio, {e['run_hours_one_gpu']:.1f} h on one GPU"]
    if "training" in report:
        t = report["training"]
        lines += [f"training: batch {t['batch']} x {t['crop_samples']}, {t['steps']} steps after {t['warmup']} "
                  f"warm-up; losses of the first {t['agree_steps']} steps against the CPU fp32 run; TFLOPS: "
                  f"samples/s x {t['train_mflops_per_sample']:.1f} MFLOP per sample (--estimate's count)",
                  f"{'variant':<16}{'samples/s':>12}{'TFLOPS':>8}{'1st step s':>11}{'peak MiB':>10}{'bits first':>11}"
                  f"{'bits last':>10}{'rel diff':>10}{'tol':>7}{'skipped':>8}  agrees"]
        for r in t["rows"][1:]:
            lines.append(f"{r['variant']:<16}{r['samples_per_s']:>12,.0f}{r['tflops']:>8.1f}{r['first_step_s']:>11.1f}"
                         f"{r['peak_mib']:>10,.0f}{r['first_loss_bits']:>11.4f}{r['last_loss_bits']:>10.4f}"
                         f"{r['max_rel_diff']:>10.1e}{r['tolerance']:>7.0e}{r['skipped_steps']:>8}  "
                         f"{'yes' if r['agrees'] else 'NO'}")
    if "generation" in report:
        g = report["generation"]
        lines += [f"generation ({'CUDA graph' if g['graph'] else 'uncaptured step, no CUDA'}): graph step - plain "
                  f"step over {g['equal_steps']} samples at batch {g['graph_batch']}: max |diff| "
                  f"{g['max_abs_diff']:.1e} ({'equal' if g['equal'] else 'NOT EQUAL'}, tolerance {g['tolerance']:.0e})",
                  f"{'batch':>6}{'samples/s':>12}{'x real time per take':>22}"]
        for r in g["rows"]:
            lines.append(f"{r['batch']:>6}{r['samples_per_s']:>12,.0f}{r['x_real_time_per_take']:>22.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "gpu.toml"))
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--quick", action="store_true", help="configs/tiny.toml, a few steps and samples: the CPU test")
    ap.add_argument("--steps", type=int, default=300, help="timed training steps per variant")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (compiling, cuDNN's choices)")
    ap.add_argument("--agree-steps", type=int, default=2, help="steps whose loss is held to the CPU fp32 run's")
    ap.add_argument("--variants", default="bf16,fp16,bf16:compile,fp16:compile",
                    help="training variants: precision (bf16, fp16, no), ':compile' for torch.compile; '' for none")
    ap.add_argument("--gen-batches", default="1,16,64", help="batch sizes of the generation timing; '' for none")
    ap.add_argument("--gen-seconds", type=float, default=0.5, help="audio per take in the generation timing")
    ap.add_argument("--estimate", metavar="CONFIG", help="print CONFIG's sizing numbers instead of checking")
    ap.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS)
    ap.add_argument("--utilization", type=float, default=0.2, help="of the peak, for --estimate's samples/s")
    ap.add_argument("--json", action="store_true", help="print the report as JSON only")
    args = ap.parse_args(argv)

    if args.estimate:
        report = {"config_path": args.estimate, "estimate": estimate(load_config(args.estimate, args.set),
                                                                     args.peak_tflops, args.utilization)}
        print(json.dumps(report, indent=1) if args.json else _table(report) + "\n" + json.dumps(report))
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; --device cpu runs what a CPU can", file=sys.stderr)
        return 2
    config, overrides = args.config, list(args.set)
    steps, warmup, gen_seconds, agree = args.steps, args.warmup, args.gen_seconds, args.agree_steps
    if args.quick:
        config = str(ROOT / "configs" / "tiny.toml")
        steps, warmup, gen_seconds, agree = 3, 1, 0.02, 2
    cfg = load_config(config, overrides)
    variants = [(v.split(":")[0], v.endswith(":compile")) for v in args.variants.split(",") if v]
    gen_batches = [int(b) for b in args.gen_batches.split(",") if b]
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                              "torch": torch.__version__, "config_path": config, "overrides": overrides}
    ok = True
    if variants:
        report["training"] = check_training(cfg, device, steps, warmup, agree, variants)
        ok &= all(r["agrees"] for r in report["training"]["rows"][1:])
    if gen_batches:
        report["generation"] = check_generation(cfg, device, gen_batches, gen_seconds,
                                                equal_steps=40 if args.quick else 200)
        ok &= report["generation"]["equal"] and all(r["finite"] for r in report["generation"]["rows"])
    report["ok"] = ok
    print(json.dumps(report, indent=1) if args.json else _table(report) + "\n" + json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
