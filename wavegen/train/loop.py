"""The training loop: one readable loop over a `Task`, the same on a CPU, one GPU or many nodes.

    python -m wavegen train --config configs/cpu.toml --out runs/cpu          # CPU or one GPU
    torchrun --nproc-per-node 8 -m wavegen train ...                          # 8 GPUs; many nodes: slurm_train.sh

A task (the WaveNet in wavenet.py, the composer's LSTM in composer.py) says what is trained: the model,
its training items, its loss, its evaluation and what its records hold. The loop does the rest. Each
step: `grad_accum` micro-batches per process (each process reads its own share of the item indices),
loss in float32 under autocast, gradients clipped, AdamW with warm-up and cosine decay, EMA weights kept
for sampling. Every `eval_every` steps the task evaluates the EMA weights (the WaveNet: validation bits
per sample on held-out pieces, the shuffled-notes gap, a short generated clip). Every `ckpt_every` steps:
an atomic checkpoint (see nn/checkpoint.py). SIGTERM saves a checkpoint and ends the run cleanly;
running again on the same run folder resumes exactly where it stopped. The run folder is locked while
a process trains in it (`RunLock`); a resume tidies what a crash left (`checkpoint.clean_partial`, the
log past the resumed step), falls back from a broken newest checkpoint (`_resume_point`), applies the
settings in RESUMABLE and refuses any other change.

Mixed precision is ours, not accelerate's: `Precision` holds the autocast dtype and, for fp16 on CUDA, a
torch.amp.GradScaler whose state is saved with the checkpoint; accelerate is always made with
mixed_precision="no" and only places the model, wraps it for DDP (no_sync, reduce, wait_for_everyone).
Why: accelerate keeps its precision in a process-wide singleton fixed by the first Accelerator, and the
only way to change it for a second run in the same process (tests, notebooks) is the private
`AcceleratorState._reset_state`; accelerate's public API has none. Owning autocast and the scaler costs
a few lines, lets every run in a process choose its own precision, and makes the loss-scaling path of
the loop runnable on a CPU in the tests (a CPU GradScaler under fp16 autocast).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from wavegen import machine
from wavegen.config import RunConfig, from_record
from wavegen.data.crops import StepSampler
from wavegen.errors import WavegenError
from wavegen.files import json_text
from wavegen.nn import checkpoint, heldout
from wavegen.nn.heldout import LN2

RUN_CONFIG = "config.json"
RUN_MARKER = ".wavegen-run"  # written when a run folder is made: what `--out` may resume into
RUN_LOCK = ".lock"  # held (flock) by the process training into the folder; holds its pid and host
LOG = "log.jsonl"

# [data] and [train] settings a resume may change: they act step by step, and the resumed run applies
# them from its first step (train.lr and weight_decay are set into the restored optimizer and schedule).
# Any other change of [data] or [train] (seed, grad_accum, ema_decay, batch_size, crop_samples, the
# validation) would make another run than the one recorded: a resume refuses it and lists the changes.
RESUMABLE = frozenset({
    "data.num_workers", "train.steps", "train.lr", "train.warmup_steps", "train.min_lr_ratio",
    "train.weight_decay", "train.grad_clip", "train.mixed_precision", "train.log_every", "train.eval_every",
    "train.ckpt_every", "train.keep_last", "train.sample_seconds", "train.max_nonfinite", "train.compile",
})


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

    def summary(self) -> str:
        """'runs/x: done at step 10, valid_bits 4.321, ...': the line the command line prints."""
        metrics = "".join(f", {k} {v:.3f}" for k, v in self.valid.items())
        return f"{self.run_dir}: {self.status} at step {self.step}{metrics}"


class Task(Protocol):
    """What is trained: everything the loop asks of the WaveNet or of the composer's LSTM."""

    cfg: RunConfig  # its [data] (batch_size, num_workers) and [train] drive the loop; recorded whole
    rate_unit: str  # what the progress bar counts per second: "samples", "chars"

    def meta(self) -> dict[str, Any]:
        """What the run record and every checkpoint hold besides the config (a resume must match it)."""

    def check_resume(self, run_dir: Path, saved: dict[str, Any]) -> None:
        """Raise a WavegenError if the run recorded in `saved` (its config.json) is not this one."""

    def build_model(self) -> torch.nn.Module: ...

    def describe(self, model: torch.nn.Module) -> str:
        """One line for the log: parameters and what they see."""

    def init_from(self, model: torch.nn.Module, source: str) -> str:
        """Load the weights of checkpoint `source` (train.init) into the new `model`; return where they came
        from, for the log and the run record. A WavegenError if they do not fit."""

    def train_set(self) -> torch.utils.data.Dataset:
        """Training items, each a pure function of its index (so a resume reads the same ones)."""

    def units_per_item(self) -> int:
        """Samples (or characters) per item, for the rate on the progress bar."""

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor],
             autocast: Callable[[], AbstractContextManager]) -> torch.Tensor:
        """Mean loss in nats, float32; the forward pass goes under `autocast()`."""

    def prepare_validation(self) -> str | None:
        """Build the fixed validation data (main process); return a notice if there is none."""

    def evaluate(self, weights: dict[str, torch.Tensor], device: torch.device, step: int, run_dir: Path,
                 tb: Any) -> dict[str, float]:
        """Metrics of these weights (empty without validation data); may write samples under run_dir."""


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


@dataclass
class Precision:
    """Autocast for the forward pass and, for fp16, the loss scaler (see the module docstring)."""

    name: str  # what runs: "no", "bf16" or "fp16"
    device_type: str
    dtype: torch.dtype | None = None  # None: float32 throughout
    scaler: torch.amp.GradScaler | None = None
    notice: str | None = None

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss if self.scaler is None else self.scaler.scale(loss)


def precision(mixed_precision: str, device: torch.device, probe: Callable[[], tuple[Any, dict]] | None = None
              ) -> Precision:
    """train.mixed_precision on this device: bf16 anywhere; fp16 (with a loss scaler) on CUDA only; auto:
    bf16 on a GPU that has it (else fp16), and on a CPU only where bf16 can be fast (machine.fast_bf16)
    and, given `probe` (() -> (a step timer, the settings it depends on): see autoprecision.py), measured
    faster than fp32 for this model; else fp32. The notice says what auto took, and why."""
    if mixed_precision == "auto":
        if device.type == "cuda":
            mixed_precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            p = precision(mixed_precision, device)
            return dataclasses.replace(p, notice=f"mixed precision auto: {p.name} on this GPU")
        from wavegen.machine import fast_bf16

        fast, why = fast_bf16()
        if fast and probe is not None:
            from wavegen.train import autoprecision

            fast, why = autoprecision.choose(*probe())
        p = precision("bf16" if fast else "no", device)
        return dataclasses.replace(p, notice=f"mixed precision auto: {'bf16' if fast else 'fp32'} ({why})")
    if mixed_precision == "bf16":
        return Precision("bf16", device.type, torch.bfloat16)
    if mixed_precision == "fp16" and device.type == "cuda":
        return Precision("fp16", device.type, torch.float16, torch.amp.GradScaler("cuda"))
    if mixed_precision == "fp16":
        return Precision("no", device.type, notice="fp16 mixed precision needs CUDA: on the CPU wavegen trains in "
                         "fp32 (use --set train.mixed_precision=bf16 for mixed precision on a CPU)")
    return Precision("no", device.type)


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


@dataclass
class LoopState:
    """What changes as the run goes; step, nonfinite_total and best_valid are saved for an exact resume."""

    step: int = 0
    nonfinite_total: int = 0  # steps skipped for a non-finite loss or gradient, over the whole run
    nonfinite_run: int = 0  # ... in a row, now
    best_valid: float = float("inf")  # the best validation bits so far (the `best/` checkpoint)
    valid: dict[str, float] = field(default_factory=dict)  # the last evaluation's metrics
    calls: int = 0  # steps taken in this call of `train`


@dataclass
class _Run:
    """The parts of a run that stay put while it trains, and what it does with them each step."""

    task: Task
    run_dir: Path
    accelerator: Any  # accelerate.Accelerator
    amp: Precision
    model: torch.nn.Module  # as prepared (DDP-wrapped on many processes)
    raw_model: torch.nn.Module  # the same weights, unwrapped
    forward_model: torch.nn.Module  # the same weights, torch.compile'd if asked
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: EMA | None
    tb: Any = None  # a TensorBoard SummaryWriter (main process)
    log_file: Any = None  # log.jsonl (main process)
    lock: RunLock | None = None  # the run folder's lock (held by the main process)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights generation uses: the EMA's when kept."""
        return self.ema.shadow if self.ema is not None else self.raw_model.state_dict()

    def write_log(self, record: dict[str, Any]) -> None:
        if self.log_file is not None:
            self.log_file.write(json_text(record) + "\n")
            self.log_file.flush()

    def step(self, st: LoopState, batches: Iterator[dict[str, torch.Tensor]]) -> float:
        """One optimizer step over grad_accum micro-batches; returns the mean loss in nats (all processes)."""
        tc, acc, scaler = self.task.cfg.train, self.accelerator, self.amp.scaler
        losses = []
        for m in range(tc.grad_accum):
            batch = heldout.to_device(next(batches), acc.device)
            sync = m == tc.grad_accum - 1
            with contextlib.nullcontext() if sync else acc.no_sync(self.model):
                loss = self.task.loss(self.forward_model, batch, self.amp.autocast)  # float32
                acc.backward(self.amp.scale(loss / tc.grad_accum))
            losses.append(loss.detach())
        loss_mean = acc.reduce(torch.stack(losses).mean(), "mean")
        ok = bool(torch.isfinite(loss_mean))
        if ok:
            if scaler is not None:
                scaler.unscale_(self.optimizer)
            norm = acc.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
            ok = bool(torch.isfinite(norm)) or scaler is not None  # fp16: the scaler skips the step itself
        if ok:
            if scaler is not None:
                scaler.step(self.optimizer)
                scaler.update()
            else:
                self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.raw_model, st.step)
            st.nonfinite_run = 0
        else:
            st.nonfinite_total += 1
            st.nonfinite_run += 1
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        st.step += 1
        st.calls += 1
        if st.nonfinite_run >= tc.max_nonfinite:
            raise WavegenError(
                f"{self.run_dir}: {st.nonfinite_run} non-finite losses in a row at step {st.step}; the run is "
                "diverging: lower train.lr or raise train.warmup_steps, then resume from the last checkpoint"
            )
        return loss_mean.item()

    def log_step(self, st: LoopState, bits: float, rate: float, wall_s: float) -> None:
        record = {"step": st.step, "loss_bits": bits, "lr": self.scheduler.get_last_lr()[0],
                  "samples_per_s": rate, "wall_s": wall_s, "nonfinite_total": st.nonfinite_total}
        self.write_log(record)
        if self.tb is not None:
            self.tb.add_scalar("train/loss_bits", bits, st.step)
            self.tb.add_scalar("train/lr", record["lr"], st.step)
            self.tb.add_scalar("train/samples_per_s", rate, st.step)

    def evaluate(self, st: LoopState) -> None:
        """Main process: the task's metrics of the current weights, into st.valid and the logs."""
        st.valid = self.task.evaluate(self.weights(), self.accelerator.device, st.step, self.run_dir, self.tb)
        if st.valid:
            self.write_log({"step": st.step, **st.valid})
            if self.tb is not None:
                for k, v in st.valid.items():
                    self.tb.add_scalar(f"valid/{k}", v, st.step)

    def train_state(self, st: LoopState) -> dict[str, Any]:
        """Everything an exact resume needs (see `restore`)."""
        state = {"raw_weights": self.raw_model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "step": st.step, "nonfinite_total": st.nonfinite_total,
                 "best_valid": st.best_valid}
        if self.ema is not None:
            state["ema"] = self.ema.shadow
        if self.amp.scaler is not None:
            state["scaler"] = self.amp.scaler.state_dict()
        return state

    def save(self, st: LoopState) -> None:
        """A checkpoint of this step (the last `keep_last` are kept), and `best/` if validation improved."""
        tc = self.task.cfg.train
        self.accelerator.wait_for_everyone()
        if self.main:
            weights, cfg = self.weights(), self.task.cfg
            meta = {**self.task.meta(), "step": st.step, "metrics": st.valid}
            checkpoint.save(self.run_dir / "checkpoints" / f"step-{st.step:08d}", weights=weights, config=cfg,
                            meta=meta, train_state=self.train_state(st))
            for old in checkpoint.step_dirs(self.run_dir)[: -max(1, tc.keep_last)]:  # never the newest
                shutil.rmtree(old, ignore_errors=True)
            if st.valid and st.valid["valid_bits"] < st.best_valid:
                st.best_valid = st.valid["valid_bits"]
                checkpoint.save(self.run_dir / "best", weights=weights, config=cfg, meta=meta)
        self.accelerator.wait_for_everyone()

    def any_rank(self, flag: bool) -> bool:
        """True on every process if `flag` is true on any (a SIGTERM reaches one node first)."""
        t = torch.tensor(1.0 if flag else 0.0, device=self.accelerator.device)
        return self.accelerator.reduce(t, "sum").item() > 0

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.log_file is not None:
            self.log_file.close()
        if self.lock is not None:
            self.lock.release()


def restore(saved: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LambdaLR, ema: EMA | None,
            scaler: torch.amp.GradScaler | None, tc: Any) -> LoopState:
    """Load a checkpoint's training state (`_Run.train_state`, as `checkpoint.load_train_state` reads
    it) into these; returns the loop's state. The run's lr and weight_decay (`tc`) replace the saved
    ones, so a resume with a lower train.lr trains with it (see RESUMABLE)."""
    wrong = checkpoint.mismatch(model.state_dict(), saved["raw_weights"])
    if wrong:
        raise WavegenError(f"raw weights do not fit the model ({wrong})")
    model.load_state_dict(saved["raw_weights"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if scheduler.base_lrs != [tc.lr] * len(scheduler.base_lrs):
        scheduler.base_lrs = [tc.lr] * len(scheduler.base_lrs)
        factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
        for group in optimizer.param_groups:
            group["initial_lr"], group["lr"] = tc.lr, tc.lr * factor
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["weight_decay"] = tc.weight_decay
    if ema is not None and "ema" in saved:
        ema.shadow = {k: v.float().to(ema.shadow[k].device) for k, v in saved["ema"].items()}
    if scaler is not None and "scaler" in saved:
        scaler.load_state_dict(saved["scaler"])
    return LoopState(step=int(saved["step"]), nonfinite_total=int(saved["nonfinite_total"]),
                     best_valid=float(saved["best_valid"]))


def differences(old: RunConfig, new: RunConfig, sections: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
    """{'train.lr': (0.001, 0.5), ...}: the settings of these sections that differ."""
    out = {}
    for section in sections:
        a, b = dataclasses.asdict(getattr(old, section)), dataclasses.asdict(getattr(new, section))
        out.update({f"{section}.{k}": (a[k], b[k]) for k in a if a[k] != b[k]})
    return out


def listed(diffs: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diffs.items())


def claim_run_dir(run_dir: Path) -> None:
    """Make `run_dir` a run folder, or check that it is one: a folder with the marker, or (runs from before
    the marker) config.json and checkpoints/. Anything else that is not empty (a checkpoint, a shipped
    model, a folder of the user's) is refused: training would overwrite its config.json."""
    if (run_dir / RUN_MARKER).is_file():
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise WavegenError(f"{run_dir}: exists and is not a folder; give --out a new or empty folder")
    legacy = (run_dir / RUN_CONFIG).is_file() and (run_dir / "checkpoints").is_dir()
    if run_dir.is_dir() and any(run_dir.iterdir()) and not legacy:
        raise WavegenError(f"{run_dir}: not empty and not a wavegen run folder (no {RUN_MARKER}); "
                           "give --out a new or empty folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_MARKER).write_text("a wavegen run folder: `wavegen train --out` resumes here\n")


class RunLock:
    """An exclusive flock on RUN_DIR/.lock while a process trains there. The kernel drops the lock when
    its process dies, however it dies; the pid it leaves in the file names it in the notice of the
    process that takes the folder over."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / RUN_LOCK
        self.file: Any = None

    def acquire(self) -> str | None:
        """Take the lock or raise a WavegenError naming its holder; returns a notice on a take-over."""
        f = self.path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise WavegenError(f"{self.path.parent}: {holder} is training into this run folder; wait for it to "
                               "end (or stop it), or train into another --out folder") from None
        f.seek(0)
        previous = f.read().strip()
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        self.file = f
        if previous:
            return f"took over the run folder from {previous}, which ended without releasing it"
        return None

    def release(self) -> None:
        if self.file is not None:
            self.file.truncate(0)  # a clean end: the next run takes no one over
            self.file.close()  # and drops the flock
            self.file = None


def _truncate_log(run_dir: Path, step: int) -> int:
    """Keep the log's records up to `step` (where the run resumes): a run that died after its last
    checkpoint logged steps it will take again. Returns how many records were dropped."""
    path = run_dir / LOG
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            ok = json.loads(line).get("step", 0) <= step
        except (ValueError, AttributeError):  # a line half-written by a killed process
            ok = False
        if ok:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        tmp = path.with_name(f".{LOG}.tmp")
        tmp.write_text("".join(f"{x}\n" for x in kept))
        os.replace(tmp, path)
    return dropped


def _run_record(task: Task, run_dir: Path, newest: Path | None, say: Callable[[str], None]) -> dict[str, Any] | None:
    """The run's config.json; a broken one is rewritten from the newest checkpoint's record."""
    path = run_dir / RUN_CONFIG
    try:
        record = json.loads(path.read_text())
        if isinstance(record, dict) and isinstance(record.get("config"), dict):
            return record
        problem = "no config in it"
    except (OSError, ValueError) as e:
        problem = str(e)
    if newest is None:
        raise WavegenError(f"{path}: unreadable ({problem}); remove it to start the run afresh")
    ckpt = json.loads((newest / checkpoint.CONFIG).read_text())
    record = {k: v for k, v in ckpt.items() if k not in ("checkpoint_version", "text_format_version", "step", "metrics")}
    path.write_text(json_text(record, indent=1) + "\n")
    say(f"{path}: unreadable ({problem}); rewritten from {newest / checkpoint.CONFIG}")
    return record


def _set_aside(ckpt: Path, problem: str, say: Callable[[str], None]) -> None:
    broken = ckpt.with_name(f"broken-{ckpt.name}")
    shutil.rmtree(broken, ignore_errors=True)
    os.replace(ckpt, broken)
    say(f"{problem}; set aside as {broken}, resuming from the checkpoint before it")


def _resume_point(run_dir: Path, say: Callable[[str], None]) -> tuple[Path | None, dict[str, Any] | None]:
    """The newest checkpoint that reads back whole, and its training state. A broken one (truncated
    files, invalid config.json, a foreign pickle) is renamed broken-step-N, with a notice, and the one
    before it is tried."""
    for ckpt in reversed(checkpoint.step_dirs(run_dir)):
        try:
            json.loads((ckpt / checkpoint.CONFIG).read_text())
        except (OSError, ValueError) as e:
            _set_aside(ckpt, f"{ckpt / checkpoint.CONFIG}: unreadable ({e})", say)
            continue
        try:
            return ckpt, checkpoint.load_train_state(ckpt)
        except WavegenError as e:
            _set_aside(ckpt, str(e), say)
    return None, None


def _step_probe(task: Task) -> tuple[Callable, dict]:
    """For auto precision on a CPU: a timer of one training step of `task`'s model on a batch of its own
    items, and the settings the timing depends on (autoprecision.py)."""
    from wavegen.train import autoprecision

    items = task.train_set()
    batch = torch.utils.data.default_collate([items[i] for i in range(task.cfg.data.batch_size)])
    settings = {"kind": task.cfg.kind, "model": task.cfg.to_dict().get("model"),
                "shapes": {k: list(v.shape) for k, v in batch.items()}}
    return autoprecision.step_timer(task.build_model, batch, task.loss), settings


def _open(task: Task, run_dir: Path, log: Callable[[str], Any], notices: list[str]) -> tuple[_Run, LoopState]:
    """Start or resume the run: lock, record, model, optimizer, schedule, EMA, devices, logs."""
    from accelerate import Accelerator

    tc = task.cfg.train
    accelerator = Accelerator(mixed_precision="no", cpu=not torch.cuda.is_available())  # precision: ours
    main = accelerator.is_main_process

    def say(notice: str) -> None:
        notices.append(notice)
        if main:
            log(f"notice: {notice}")

    amp = precision(tc.mixed_precision, accelerator.device,
                    probe=(lambda: _step_probe(task)) if accelerator.num_processes == 1 else None)
    if amp.notice:
        say(amp.notice)

    lock = RunLock(run_dir)
    saved = None
    try:
        if main:  # the main process owns the folder: it claims, locks, tidies and checks it
            claim_run_dir(run_dir)
            took_over = lock.acquire()
            if took_over:
                say(took_over)
            for folder in (run_dir / "checkpoints", run_dir):
                for done in checkpoint.clean_partial(folder):
                    say(f"{done}: left by an interrupted checkpoint")
            newest, saved = _resume_point(run_dir, say)
            record = _run_record(task, run_dir, newest, say) if newest else None
            if record is not None:
                task.check_resume(run_dir, record)
                old = from_record(record["config"], str(run_dir / RUN_CONFIG), kind=task.cfg.kind)
                changed = differences(old, task.cfg, ("data", "train"))
                fixed = {k: v for k, v in changed.items() if k not in RESUMABLE}
                if fixed:
                    raise WavegenError(f"{run_dir}: these settings cannot change on resume: {listed(fixed)}; resume "
                                       "with the recorded ones, or train into a new --out folder")
                if changed:
                    say(f"resuming with changed settings: {listed(changed)}")
                    record = {**record, "config": task.cfg.to_dict()}
            else:
                record = {"config": task.cfg.to_dict(), **task.meta()}
                if tc.init:
                    record["init"] = task.init_from(task.build_model(), tc.init)  # checked before anything is written
            (run_dir / RUN_CONFIG).write_text(json_text(record, indent=1) + "\n")
        accelerator.wait_for_everyone()  # the others read the checkpoint the main process chose
        if not main and (chosen := checkpoint.step_dirs(run_dir)):
            saved = checkpoint.load_train_state(chosen[-1])

        torch.manual_seed(tc.seed)
        model = task.build_model()
        if saved is None and tc.init:  # a new run from another's weights; the EMA starts from them too
            started = task.init_from(model, tc.init)
            if main:
                log(f"starting from the weights of {started}")
        optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, tc.warmup_steps, tc.steps, tc.min_lr_ratio))
        model, optimizer = accelerator.prepare(model, optimizer)
        raw_model = accelerator.unwrap_model(model)
        ema = EMA(raw_model, tc.ema_decay) if tc.ema_decay > 0 else None  # on the model's device
        st = LoopState()
        if saved is not None:
            st = restore(saved, raw_model, optimizer, scheduler, ema, amp.scaler, tc)
            if main:
                log(f"resuming {run_dir} from step {st.step}")
        if main:
            dropped = _truncate_log(run_dir, st.step)
            if dropped:
                say(f"{run_dir / LOG}: dropped {dropped} record(s) after step {st.step}, logged before the run stopped")
            log(f"{task.describe(raw_model)}; {accelerator.num_processes} process(es) on "
                f"{accelerator.device.type}, mixed precision {amp.name}")
        forward_model = torch.compile(model) if tc.compile else model  # same weights, fused kernels
        run = _Run(task, run_dir, accelerator, amp, model, raw_model, forward_model, optimizer, scheduler, ema,
                   lock=lock)
        if main:
            notice = task.prepare_validation()
            if notice:
                say(notice)
            try:
                from torch.utils.tensorboard import SummaryWriter

                run.tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                notices.append("tensorboard is not installed: no TensorBoard logs")
            run.log_file = (run_dir / LOG).open("a")
    except BaseException:
        lock.release()
        raise
    return run, st


def train(task: Task, run_dir: str | Path, *, stop_after: int | None = None, show_progress: bool = True,
          log: Callable[[str], Any] = print) -> TrainResult:
    """Train (or resume) `task` into `run_dir`. stop_after: end after this many steps in this call (tests)."""
    from tqdm import tqdm

    machine.keep_freed_memory()  # a step's activations stay mapped for the next (set before the precision is measured)
    run_dir = Path(run_dir)
    tc, dc = task.cfg.train, task.cfg.data
    notices: list[str] = []
    run, st = _open(task, run_dir, log, notices)
    acc = run.accelerator
    resumed_from = st.step
    sampler = StepSampler(st.step, tc.steps, dc.batch_size, tc.grad_accum, acc.process_index, acc.num_processes)
    loader = torch.utils.data.DataLoader(task.train_set(), batch_sampler=sampler, num_workers=dc.num_workers,
                                         persistent_workers=False, pin_memory=acc.device.type == "cuda")
    units_per_step = dc.batch_size * tc.grad_accum * acc.num_processes * task.units_per_item()
    status = "done"
    bar = tqdm(total=tc.steps, initial=st.step, disable=not (run.main and show_progress), unit="step",
               dynamic_ncols=True)
    t_start = time.perf_counter()
    try:
        with _StopFlag() as stop:
            batches = iter(loader)
            while st.step < tc.steps:
                t0 = time.perf_counter()
                bits = run.step(st, batches) / LN2
                rate = units_per_step / (time.perf_counter() - t0)
                bar.update(1)
                bar.set_postfix({"bits": f"{bits:.3f}", f"{task.rate_unit}/s": f"{rate:,.0f}"})
                if st.step % tc.log_every == 0 or st.step == tc.steps:
                    run.log_step(st, bits, rate, time.perf_counter() - t_start)
                preempted = run.any_rank(stop.set)
                halted = stop_after is not None and st.calls >= stop_after
                if run.main and (st.step % tc.eval_every == 0 or st.step == tc.steps):
                    run.evaluate(st)
                    bar.write(f"step {st.step}: " + ", ".join(f"{k} {v:.3f}" for k, v in st.valid.items()))
                if st.step % tc.ckpt_every == 0 or st.step == tc.steps or preempted or halted:
                    run.save(st)
                if preempted or halted:
                    status = "preempted" if preempted else "stopped"
                    break
    finally:
        bar.close()
        run.close()
    acc.wait_for_everyone()
    return TrainResult(run_dir, st.step, status, resumed_from, st.valid, st.nonfinite_total, notices, run.main)
