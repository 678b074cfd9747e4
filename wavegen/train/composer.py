"""Training the composers (`wavegen train-composer`): `train_composer` counts the Markov chain or trains
the character LSTM, as composer.kind says.

The LSTM is a task for the loop in wavegen.train.loop (`CharTask`): random sequences of `composer.seq_len` characters, each starting from a zero state whose first
`composer.burn_in` characters warm the LSTM up and are not scored (a truncated-BPTT window that needs no
state carried between batches, so a sequence is a pure function of its index and resume stays exact).
The Markov chain is counted in one pass over the training pieces (half a minute for the Bach corpus).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wavegen.compose.load import COMPOSER_FILE
from wavegen.compose.lstm import (
    KIND,
    SPACE,
    CharLSTM,
    CharSequences,
    LSTMComposer,
    encode,
)
from wavegen.compose.markov import MarkovComposer, keytext_of, ticks_of
from wavegen.config import ComposerRunConfig, from_record
from wavegen.data import dataset
from wavegen.errors import WavegenError
from wavegen.notes import text as T
from wavegen.train.loop import RUN_CONFIG, TrainResult, differences, listed, train


def masked_nll(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean nats per scored symbol (float32): the burn-in is masked out."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), batch["targets"], reduction="none")
    return (nll * batch["mask"]).sum() / batch["mask"].sum().clamp(min=1)


def pieces(ds: dataset.Dataset, split: str, transposed: bool) -> list[dataset.Item]:
    """A split's items a composer learns from: every transposition, or only the originals."""
    return [it for it in ds.items(split) if transposed or it.transpose == 0]


class CharTask:
    """The composer's LSTM as a task for the loop (wavegen.train.loop.Task)."""

    rate_unit = "chars"

    def __init__(self, cfg: ComposerRunConfig, ds: dataset.Dataset):
        self.cfg, self.ds = cfg, ds
        c = cfg.composer
        self.train_items = pieces(ds, "train", c.transposed)
        self.valid_items = pieces(ds, cfg.data.valid_split, c.transposed)
        if not self.train_items:
            raise WavegenError(f"{ds.root}: no training pieces")
        self.styles = sorted({it.style for it in self.train_items})
        self.valid_batch = None

    def _streams(self, items: list[dataset.Item]) -> tuple[list[np.ndarray], list[int]]:
        return ([encode(ticks_of(self.ds.text(it))) for it in items],
                [self.styles.index(it.style) if it.style in self.styles else 0 for it in items])

    def meta(self) -> dict[str, Any]:
        return {"kind": KIND, "tick_ms": self.ds.tick_ms, "styles": self.styles,
                "dataset": self.ds.provenance()}

    def check_resume(self, run_dir: Path, saved: dict[str, Any]) -> None:
        if saved.get("kind") != KIND:
            raise WavegenError(f"{run_dir}: not an LSTM composer's run; train into a new --out folder")
        old = from_record(saved["config"], str(run_dir / RUN_CONFIG), kind="composer")
        changed = differences(old, self.cfg, ("composer",))
        if changed:
            raise WavegenError(f"{run_dir}: this run was started with another composer config ({listed(changed)}); "
                               "resume it with the same config, or train into a new --out folder")

    def build_model(self) -> CharLSTM:
        c = self.cfg.composer
        return CharLSTM(len(self.styles), c.embed, c.style_embed, c.hidden, c.layers, c.dropout)

    def describe(self, model: nn.Module) -> str:
        c = self.cfg.composer
        return (f"composer LSTM: {sum(p.numel() for p in model.parameters()):,} parameters, {c.layers} x {c.hidden}, "
                f"{len(self.train_items)} training pieces, sequences of {c.seq_len} characters")

    def init_from(self, model: nn.Module, source: str) -> str:
        raise WavegenError(f"train.init = {source}: starting from another model's weights is for the WaveNet; "
                           "the composer's LSTM trains from scratch")

    def train_set(self) -> torch.utils.data.Dataset:
        streams, styles = self._streams(self.train_items)
        c = self.cfg.composer
        return CharSequences(streams, styles, c.seq_len, c.burn_in, self.cfg.train.seed)

    def units_per_item(self) -> int:
        return self.cfg.composer.seq_len

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor],
             autocast: Callable[[], AbstractContextManager]) -> torch.Tensor:
        with autocast():
            logits, _ = model(batch["inputs"], batch["style"])
        return masked_nll(logits, batch)

    def prepare_validation(self) -> str | None:
        if not self.valid_items:
            return "no validation pieces"
        streams, styles = self._streams(self.valid_items)
        c = self.cfg.composer
        seqs = CharSequences(streams, styles, c.seq_len, c.burn_in, seed=1234)
        self.valid_batch = torch.utils.data.default_collate([seqs[i] for i in range(self.cfg.data.valid_crops)])
        return None

    @torch.no_grad()
    def evaluate(self, weights: dict[str, torch.Tensor], device: torch.device, step: int, run_dir: Path,
                 tb: Any) -> dict[str, float]:
        if self.valid_batch is None:
            return {}
        model = self.build_model()
        model.load_state_dict(weights)
        model.to(device).eval()
        batch = {k: v.to(device) for k, v in self.valid_batch.items()}
        bits = masked_nll(model(batch["inputs"], batch["style"])[0], batch).item() / math.log(2)
        scored = batch["mask"].bool()
        ticks = int((batch["targets"][scored] == SPACE).sum())
        chars = int(scored.sum())
        composer = LSTMComposer(model.cpu(), self.styles, self.ds.tick_ms)
        sample = composer.sample(100, rng=np.random.default_rng(step))
        (run_dir / "samples").mkdir(exist_ok=True)
        T.write_file(run_dir / "samples" / f"step-{step:08d}.txt", keytext_of(sample, self.ds.tick_ms,
                                                                               {"style": self.styles[0]}))
        return {"valid_bits": bits, "valid_bits_per_tick": bits * chars / max(ticks, 1)}


def train_lstm(cfg: ComposerRunConfig, data_dir: str | Path, run_dir: str | Path, **kwargs: Any) -> TrainResult:
    """Train (or resume) the LSTM composer into `run_dir`. kwargs: those of `train` (stop_after, log, ...)."""
    return train(CharTask(cfg, dataset.load(data_dir)), run_dir, **kwargs)


@dataclass
class MarkovResult:
    path: Path  # the chain's file
    order: int
    pieces: int
    contexts: int
    valid_bits_per_tick: float  # nan without validation pieces
    seconds: float
    is_main: bool = True  # one process counts it

    def summary(self) -> str:
        return (f"wrote {self.path}: order-{self.order} Markov chain over {self.pieces} pieces, "
                f"{self.contexts:,} contexts; held-out {self.valid_bits_per_tick:.3f} bits/tick; {self.seconds:.1f} s")


def train_markov(cfg: ComposerRunConfig, data_dir: str | Path, out: str | Path) -> MarkovResult:
    """Count the order-k Markov chain on the training pieces into `out`/markov.json.gz."""
    c = cfg.composer
    ds = dataset.load(data_dir)
    train_items = pieces(ds, "train", c.transposed)
    if not train_items:
        raise WavegenError(f"{ds.root}: no training pieces")
    t0 = time.perf_counter()
    model = MarkovComposer(c.order, ds.tick_ms, {it.style for it in train_items})
    model.fit(ticks_of(ds.text(it)) for it in train_items)
    valid = [ticks_of(ds.text(it)) for it in pieces(ds, "valid", c.transposed)]
    path = Path(out) / COMPOSER_FILE
    model.save(path)
    bits = model.bits_per_tick(valid) if valid else float("nan")
    return MarkovResult(path, c.order, len(train_items), sum(len(n) for n in model.counts), bits,
                        time.perf_counter() - t0)


def train_composer(cfg: ComposerRunConfig, data_dir: str | Path, out: str | Path,
                   log: Callable[[str], Any] = print) -> MarkovResult | TrainResult:
    """`wavegen train-composer`: the Markov chain or the LSTM (composer.kind) on the dataset in data_dir."""
    if cfg.composer.kind == "lstm":
        return train_lstm(cfg, data_dir, out, log=log)
    return train_markov(cfg, data_dir, out)
