"""The training loop: one readable loop on `accelerate`, the same on a CPU, one GPU or many nodes.

    python -m wavegen train --config configs/cpu.toml --out runs/cpu          # CPU or one GPU
    accelerate launch --multi_gpu --num_processes 8 -m wavegen train ...       # many GPUs, many nodes

Each step: `grad_accum` micro-batches of crops per process (each process reads its own share of the
crop indices), loss in float32 under autocast, gradients clipped, AdamW with warm-up and cosine decay,
EMA weights kept for sampling. Every `eval_every` steps: validation loss in bits per sample on held-out
pieces, the shuffled-notes gap, and a short generated clip. Every `ckpt_every` steps: an atomic
checkpoint (see checkpoint.py). SIGTERM saves a checkpoint and ends the run cleanly; running again on the
same run folder resumes exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wavegen.audio import write_audio
from wavegen.config import Config, from_dict
from wavegen.data import dataset
from wavegen.data.crops import CropDataset, StepSampler
from wavegen.errors import WavegenError
from wavegen.nn import checkpoint, heldout
from wavegen.nn.heldout import LN2, HeldOut
from wavegen.nn.model import WaveNet, loss_fn
from wavegen.synth.fast import play

RUN_CONFIG = "config.json"


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    status: str  # "done", "preempted" (SIGTERM) or "stopped" (stop_after)
    resumed_from: int
    valid: dict[str, float] = field(default_factory=dict)
    nonfinite_steps: int = 0
    notices: list[str] = field(default_factory=list)
    is_main: bool = True  # the process that writes checkpoints and reports


class EMA:
    """Exponential moving average of every float tensor in the model's state dict (kept in fp32)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # short memory early on
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to min_ratio at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _weights_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


class _StopFlag:
    """Set by SIGTERM (cluster preemption); checked once per step."""

    def __init__(self) -> None:
        self.set = False
        self._old: Any = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.set = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


class WaveNetTask:
    """Everything `train` needs to know about the WaveNet: model, crops, loss, evaluation, records.
    (The composer's LSTM is another task, in lstm.py; the loop is the same.)"""

    rate_unit = "samples"

    def __init__(self, cfg: Config, ds: dataset.Dataset, data_dir: str | Path):
        self.cfg, self.ds, self.data_dir = cfg, ds, Path(data_dir)
        mc = cfg.model
        self.styles: list[str] = []
        if mc.n_styles:
            self.styles = sorted({it.style for it in ds.items("train")})
            if len(self.styles) > mc.n_styles:
                raise WavegenError(f"{ds.root}: {len(self.styles)} styles ({', '.join(self.styles)}) but "
                                   f"model.n_styles = {mc.n_styles}")
        self.held_out: HeldOut | None = None
        self.sketch_item = None

    def meta(self) -> dict[str, Any]:
        """What the checkpoint records besides the config (and what a resume must match)."""
        ds = self.ds
        return {"sample_rate_hz": ds.sample_rate_hz, "tick_ms": ds.tick_ms, "samples_per_tick": ds.samples_per_tick,
                "styles": self.styles, "dataset": str(self.data_dir.resolve())}

    def check_resume(self, run_dir: Path, saved: dict[str, Any]) -> None:
        old = from_dict(saved["config"], str(run_dir / RUN_CONFIG))
        if old.model != self.cfg.model or old.data != self.cfg.data or old.composer != self.cfg.composer:
            raise WavegenError(
                f"{run_dir}: this run was started with another model or data config; resume it with the "
                "same config, or train into a new --out folder"
            )
        ds = self.ds
        if (saved["sample_rate_hz"], saved["tick_ms"]) != (ds.sample_rate_hz, ds.tick_ms):
            raise WavegenError(
                f"{run_dir}: trained at {saved['sample_rate_hz']} Hz and {saved['tick_ms']} ms ticks, but the "
                f"dataset {ds.root} has {ds.sample_rate_hz} Hz and {ds.tick_ms} ms"
            )

    def build_model(self) -> WaveNet:
        return WaveNet(self.cfg.model, self.ds.samples_per_tick)

    def describe(self, model: torch.nn.Module) -> str:
        rf = self.cfg.model.receptive_field()
        n_params = sum(p.numel() for p in model.parameters())
        return f"model: {n_params:,} parameters, receptive field {rf} samples ({rf / self.ds.sample_rate_hz * 1000:.1f} ms)"

    def _crops(self, split: str, seed: int) -> CropDataset:
        return heldout.crops(self.ds, split, self.cfg.model, self.cfg.data.crop_samples, styles=self.styles, seed=seed)

    def train_set(self) -> torch.utils.data.Dataset:
        return self._crops("train", self.cfg.train.seed)

    def units_per_item(self) -> int:
        return self.cfg.data.crop_samples

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], autocast: Any) -> torch.Tensor:
        with autocast():
            out = heldout.forward(model, batch, self.cfg.model.n_styles > 0)
        return loss_fn(self.cfg.model.output, out, batch["targets"])  # float32

    def prepare_validation(self) -> str | None:
        """Build the fixed validation batches (main process); returns a notice if there is none."""
        dc = self.cfg.data
        try:
            vcrops = self._crops(dc.valid_split, 0)
        except WavegenError as e:
            return f"no validation: {e}"
        self.held_out = HeldOut.of(vcrops, dc.valid_crops)
        self.sketch_item = vcrops.items[0]
        return None

    def evaluate(self, weights: dict[str, torch.Tensor], device: torch.device, step: int, run_dir: Path,
                 tb: Any) -> dict[str, float]:
        if self.held_out is None:
            return {}
        tc, sr = self.cfg.train, self.ds.sample_rate_hz
        eval_model = self.build_model()
        eval_model.load_state_dict(weights)
        eval_model.to(device).eval()
        valid = self.held_out.measure(eval_model)
        if tc.sample_seconds > 0:
            sketch = self.ds.text(self.sketch_item)
            audio = play(eval_model, int(tc.sample_seconds * sr), sample_rate_hz=sr, sketch=sketch, seed=tc.seed,
                         style=0)
            (run_dir / "samples").mkdir(exist_ok=True)
            write_audio(run_dir / "samples" / f"step-{step:08d}-{self.sketch_item.id}.wav", audio, sr)
            if tb is not None:
                tb.add_audio("sample", torch.from_numpy(audio)[None], step, sample_rate=sr)
        return valid


def train(
    cfg: Config,
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    stop_after: int | None = None,
    show_progress: bool = True,
    log: Any = print,
    task: Any = None,
) -> TrainResult:
    """Train (or resume) into `run_dir`. task: what to train (default: the WaveNet on this dataset).
    stop_after: end after this many steps in this call (tests)."""
    from accelerate import Accelerator
    from tqdm import tqdm

    run_dir = Path(run_dir)
    ds = dataset.load(data_dir)
    task = task or WaveNetTask(cfg, ds, data_dir)
    tc, dc = cfg.train, cfg.data
    notices: list[str] = []

    # accelerate keeps its settings in process-wide singletons; a second run in the same process (tests,
    # notebooks) with another precision must start from a clean slate. The distributed setup
    # (PartialState) is kept.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    accelerator = Accelerator(mixed_precision=tc.mixed_precision, cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process
    if tc.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        notices.append("fp16 mixed precision needs CUDA: on the CPU accelerate trains in fp32 "
                       "(use --set train.mixed_precision=bf16 for mixed precision on a CPU)")
    for n in notices:
        if main:
            log(f"notice: {n}")

    resume = checkpoint.step_dirs(run_dir)
    if resume:
        task.check_resume(run_dir, json.loads((run_dir / RUN_CONFIG).read_text()))
    elif main:
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {"config": cfg.to_dict(), **task.meta()}
        (run_dir / RUN_CONFIG).write_text(json.dumps(record, indent=1) + "\n")

    torch.manual_seed(tc.seed)
    model = task.build_model()
    ema = EMA(model, tc.ema_decay) if tc.ema_decay > 0 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, tc.warmup_steps, tc.steps, tc.min_lr_ratio))
    step, nonfinite_total, best = 0, 0, float("inf")
    if resume:
        st = checkpoint.load_train_state(resume[-1])
        model.load_state_dict(st["raw_weights"])
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        if ema is not None and "ema" in st:
            ema.shadow = {k: v.float() for k, v in st["ema"].items()}
        step, nonfinite_total, best = int(st["step"]), int(st["nonfinite_total"]), float(st["best_valid"])
        if main:
            log(f"resuming {run_dir} from step {step}")
    resumed_from = step
    if main:
        log(f"{task.describe(model)}; {accelerator.num_processes} process(es) on {accelerator.device.type}, "
            f"mixed precision {accelerator.mixed_precision}")
    model, optimizer = accelerator.prepare(model, optimizer)
    if resume and accelerator.scaler is not None and "scaler" in st:
        accelerator.scaler.load_state_dict(st["scaler"])
    raw_model = accelerator.unwrap_model(model)
    forward_model = torch.compile(model) if tc.compile else model  # same weights, fused kernels

    crops = task.train_set()
    sampler = StepSampler(step, tc.steps, dc.batch_size, tc.grad_accum,
                          accelerator.process_index, accelerator.num_processes)
    loader = torch.utils.data.DataLoader(crops, batch_sampler=sampler, num_workers=dc.num_workers,
                                         persistent_workers=False, pin_memory=accelerator.device.type == "cuda")
    if main:
        notice = task.prepare_validation()
        if notice:
            notices.append(notice)
            log(f"notice: {notice}")
    tb = None
    if main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            notices.append("tensorboard is not installed: no TensorBoard logs")
    log_file = (run_dir / "log.jsonl").open("a") if main else None

    def write_log(record: dict[str, Any]) -> None:
        if log_file is not None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()

    valid: dict[str, float] = {}

    def evaluate() -> None:
        nonlocal valid
        weights = ema.shadow if ema is not None else raw_model.state_dict()
        valid = task.evaluate(weights, accelerator.device, step, run_dir, tb)
        if valid:
            write_log({"step": step, **valid})
            if tb is not None:
                for k, v in valid.items():
                    tb.add_scalar(f"valid/{k}", v, step)

    def save(with_state: bool = True) -> None:
        nonlocal best
        accelerator.wait_for_everyone()
        if main:
            weights = ema.shadow if ema is not None else raw_model.state_dict()
            meta = {**task.meta(), "step": step, "metrics": valid}
            state = {"raw_weights": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "step": step, "nonfinite_total": nonfinite_total,
                     "best_valid": best}
            if ema is not None:
                state["ema"] = ema.shadow
            if accelerator.scaler is not None:
                state["scaler"] = accelerator.scaler.state_dict()
            checkpoint.save(run_dir / "checkpoints" / f"step-{step:08d}", weights=weights, config=cfg,
                            meta=meta, train_state=state)
            for old in checkpoint.step_dirs(run_dir)[: -tc.keep_last or None]:
                shutil.rmtree(old, ignore_errors=True)
            if valid and valid["valid_bits"] < best:
                best = valid["valid_bits"]
                checkpoint.save(run_dir / "best", weights=weights, config=cfg, meta=meta)
        accelerator.wait_for_everyone()

    status = "done"
    crop_per_step = dc.batch_size * tc.grad_accum * accelerator.num_processes * task.units_per_item()
    bar = tqdm(total=tc.steps, initial=step, disable=not (main and show_progress), unit="step",
               dynamic_ncols=True)
    seen: list[list[int]] = []
    nonfinite_run = 0
    calls = 0
    t_start = time.perf_counter()
    with _StopFlag() as stop:
        batches = iter(loader)
        while step < tc.steps:
            t0 = time.perf_counter()
            losses = []
            for m in range(tc.grad_accum):
                batch = heldout.to_device(next(batches), accelerator.device)
                if len(seen) < 8:
                    seen.append(batch["item"].tolist())
                sync = m == tc.grad_accum - 1
                with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                    loss = task.loss(forward_model, batch, accelerator.autocast)  # float32
                    accelerator.backward(loss / tc.grad_accum)
                losses.append(loss.detach())
            loss_mean = accelerator.reduce(torch.stack(losses).mean(), "mean")
            ok = bool(torch.isfinite(loss_mean))
            if ok:
                norm = accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip)
                ok = bool(torch.isfinite(norm)) or accelerator.scaler is not None  # fp16: the scaler skips
            if ok:
                optimizer.step()
                if ema is not None:
                    ema.update(raw_model, step)
                nonfinite_run = 0
            else:
                nonfinite_total += 1
                nonfinite_run += 1
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            calls += 1
            if nonfinite_run >= tc.max_nonfinite:
                raise WavegenError(
                    f"{run_dir}: {nonfinite_run} non-finite losses in a row at step {step}; the run is "
                    "diverging: lower train.lr or raise train.warmup_steps, then resume from the last checkpoint"
                )
            dt = time.perf_counter() - t0
            bits = loss_mean.item() / LN2
            bar.update(1)
            bar.set_postfix({"bits": f"{bits:.3f}", f"{task.rate_unit}/s": f"{crop_per_step / dt:,.0f}"})
            if step % tc.log_every == 0 or step == tc.steps:
                record = {"step": step, "loss_bits": bits, "lr": scheduler.get_last_lr()[0],
                          "samples_per_s": crop_per_step / dt, "wall_s": time.perf_counter() - t_start,
                          "nonfinite_total": nonfinite_total}
                write_log(record)
                if tb is not None:
                    tb.add_scalar("train/loss_bits", bits, step)
                    tb.add_scalar("train/lr", record["lr"], step)
                    tb.add_scalar("train/samples_per_s", record["samples_per_s"], step)
            stop_now = torch.tensor(1.0 if stop.set else 0.0, device=accelerator.device)
            preempted = accelerator.reduce(stop_now, "sum").item() > 0
            halted = stop_after is not None and calls >= stop_after
            if main and (step % tc.eval_every == 0 or step == tc.steps):
                evaluate()
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in valid.items()))
            if step % tc.ckpt_every == 0 or step == tc.steps or preempted or halted:
                save()
            if preempted:
                status = "preempted"
                break
            if halted:
                status = "stopped"
                break
    bar.close()
    # per-rank record: which data it saw and what weights it ended with (checked by the DDP test)
    ranks = run_dir / "ranks"
    ranks.mkdir(parents=True, exist_ok=True)
    first_step = next(iter(StepSampler(resumed_from, resumed_from + 1, dc.batch_size, 1,
                                       accelerator.process_index, accelerator.num_processes)), [])
    (ranks / f"rank-{accelerator.process_index}.json").write_text(json.dumps({
        "rank": accelerator.process_index, "world": accelerator.num_processes, "step": step,
        "first_crop_indices": first_step, "first_items": seen,
        "weights_sha256": _weights_digest(raw_model.state_dict()),
    }) + "\n")
    if tb is not None:
        tb.close()
    if log_file is not None:
        log_file.close()
    accelerator.wait_for_everyone()
    return TrainResult(run_dir, step, status, resumed_from, valid, nonfinite_total, notices, main)
