"""The composer's character LSTM as a training task: `CharTask` for the loop in wavegen.train.loop.

Random sequences of `composer.seq_len` characters, each starting from a zero state whose first
`composer.burn_in` characters warm the LSTM up and are not scored (a truncated-BPTT window that needs no
state carried between batches, so a sequence is a pure function of its index and resume stays exact).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wavegen.compose.lstm import (
    KIND,
    SPACE,
    CharLSTM,
    CharSequences,
    LSTMComposer,
    encode,
)
from wavegen.config import Config, from_dict
from wavegen.data import dataset
from wavegen.errors import WavegenError
from wavegen.notes import text as T


def masked_nll(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean nats per scored symbol (float32): the burn-in is masked out."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), batch["targets"], reduction="none")
    return (nll * batch["mask"]).sum() / batch["mask"].sum().clamp(min=1)


class CharTask:
    """The composer's LSTM as a task for `train.train` (see WaveNetTask for the interface)."""

    rate_unit = "chars"

    def __init__(self, cfg: Config, ds: dataset.Dataset, data_dir: str | Path):
        self.cfg, self.ds, self.data_dir = cfg, ds, Path(data_dir)
        c = cfg.composer
        pick = lambda split: [it for it in ds.items(split) if c.transposed or it.transpose == 0]  # noqa: E731
        self.train_items, self.valid_items = pick("train"), pick(cfg.data.valid_split)
        if not self.train_items:
            raise WavegenError(f"{ds.root}: no training pieces")
        self.styles = sorted({it.style for it in self.train_items})
        self.valid_batch = None

    def _streams(self, items) -> tuple[list[np.ndarray], list[int]]:
        from wavegen.compose.markov import ticks_of

        return ([encode(ticks_of(self.ds.text(it))) for it in items],
                [self.styles.index(it.style) if it.style in self.styles else 0 for it in items])

    def meta(self) -> dict[str, Any]:
        return {"kind": KIND, "tick_ms": self.ds.tick_ms, "styles": self.styles,
                "dataset": str(self.data_dir.resolve())}

    def check_resume(self, run_dir: Path, saved: dict[str, Any]) -> None:
        old = from_dict(saved["config"], str(run_dir / "config.json"))
        if old.composer != self.cfg.composer or saved.get("kind") != KIND:
            raise WavegenError(f"{run_dir}: this run was started with another composer config; "
                               "train into a new --out folder")

    def build_model(self) -> CharLSTM:
        c = self.cfg.composer
        return CharLSTM(len(self.styles), c.embed, c.style_embed, c.hidden, c.layers, c.dropout)

    def describe(self, model: nn.Module) -> str:
        c = self.cfg.composer
        return (f"composer LSTM: {sum(p.numel() for p in model.parameters()):,} parameters, {c.layers} x {c.hidden}, "
                f"{len(self.train_items)} training pieces, sequences of {c.seq_len} characters")

    def train_set(self) -> torch.utils.data.Dataset:
        streams, styles = self._streams(self.train_items)
        c = self.cfg.composer
        return CharSequences(streams, styles, c.seq_len, c.burn_in, self.cfg.train.seed)

    def units_per_item(self) -> int:
        return self.cfg.composer.seq_len

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], autocast: Any) -> torch.Tensor:
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
        from wavegen.compose.markov import keytext_of

        T.write_file(run_dir / "samples" / f"step-{step:08d}.txt", keytext_of(sample, self.ds.tick_ms,
                                                                               {"style": self.styles[0]}))
        return {"valid_bits": bits, "valid_bits_per_tick": bits * chars / max(ticks, 1)}


def train_lstm(cfg: Config, data_dir: str | Path, run_dir: str | Path, **kwargs):
    from wavegen.train.loop import train

    ds = dataset.load(data_dir)
    return train(cfg, data_dir, run_dir, task=CharTask(cfg, ds, data_dir), **kwargs)
