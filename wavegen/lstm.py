"""The composer's character-level LSTM: char-rnn over the 88-key text, conditioned on the style tag.

The text is read as a stream of characters (the 88 keys and the tick-ending space; newlines and the
header are layout), after a start symbol. Training uses the same loop as the WaveNet (train.py) through
`CharTask`: random sequences of `composer.seq_len` characters, each starting from a zero state whose
first `composer.burn_in` characters warm the LSTM up and are not scored (a truncated-BPTT window that
needs no state carried between batches, so a sequence is a pure function of its index and resume stays
exact). Sampling is constrained by the format's grammar (keys rise within a tick, every tick ends with
a space), so everything it writes parses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wavegen import checkpoint, data
from wavegen import text as T
from wavegen.config import Config, from_dict
from wavegen.errors import WavegenError

VOCAB = T.KEY_CHARS + " "  # 89 symbols: the keys, then the space that ends a tick
SPACE = len(T.KEY_CHARS)
BOS = len(VOCAB)  # the start symbol: an input, never an output
KIND = "lstm-composer"
CONTEXT_TICKS = 64  # ticks of history re-read when a stream continues


def encode(ticks: Sequence[str]) -> np.ndarray:
    """Ticks -> int64 symbols (keys 0..87, space 88)."""
    out = []
    for tick in ticks:
        out.extend(ord(c) - ord(T.FIRST_CHAR) for c in tick)
        out.append(SPACE)
    return np.array(out, dtype=np.int64)


class CharLSTM(nn.Module):
    def __init__(self, n_styles: int, embed: int, style_embed: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(BOS + 1, embed)
        self.style = nn.Embedding(max(n_styles, 1), style_embed)
        self.lstm = nn.LSTM(embed + style_embed, hidden, layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(hidden, len(VOCAB))

    def forward(self, x: torch.Tensor, style: torch.Tensor, state: Any = None):
        """x: (B, T) symbols; style: (B,). Returns logits (B, T, 89) for the next symbol, and the state."""
        e = torch.cat([self.embed(x), self.style(style)[:, None, :].expand(-1, x.shape[1], -1)], dim=-1)
        h, state = self.lstm(e, state)
        return self.out(h), state


class CharSequences(torch.utils.data.Dataset):
    """Index -> one training sequence (deterministic in (seed, index)), like the WaveNet's crops."""

    def __init__(self, streams: list[np.ndarray], styles: list[int], seq_len: int, burn_in: int, seed: int = 0):
        self.streams = [np.concatenate([[BOS], s]) for s in streams]
        self.styles, self.seq_len, self.burn_in, self.seed = styles, seq_len, burn_in, seed
        lengths = np.array([max(len(s) - 1, 1) for s in self.streams], dtype=np.float64)
        self.cum = np.cumsum(lengths) / lengths.sum()

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        k = min(int(np.searchsorted(self.cum, rng.random(), side="right")), len(self.streams) - 1)
        s = self.streams[k]
        T_ = self.seq_len
        start = int(rng.integers(0, max(len(s) - T_ - 1, 0) + 1))
        crop = np.full(T_ + 1, SPACE, dtype=np.int64)  # pieces shorter than a sequence are padded with rests
        piece = s[start : start + T_ + 1]
        crop[: len(piece)] = piece
        mask = np.ones(T_, dtype=np.float32)
        mask[: self.burn_in if start > 0 else 0] = 0.0  # a sequence from the start has nothing to warm up
        return {"inputs": torch.from_numpy(crop[:-1]), "targets": torch.from_numpy(crop[1:]),
                "mask": torch.from_numpy(mask), "style": torch.tensor(self.styles[k]), "item": torch.tensor(k)}


def masked_nll(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean nats per scored symbol (float32): the burn-in is masked out."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), batch["targets"], reduction="none")
    return (nll * batch["mask"]).sum() / batch["mask"].sum().clamp(min=1)


class CharTask:
    """The composer's LSTM as a task for `train.train` (see WaveNetTask for the interface)."""

    rate_unit = "chars"

    def __init__(self, cfg: Config, ds: data.Dataset, data_dir: str | Path):
        self.cfg, self.ds, self.data_dir = cfg, ds, Path(data_dir)
        c = cfg.composer
        pick = lambda split: [it for it in ds.items(split) if c.transposed or it.transpose == 0]  # noqa: E731
        self.train_items, self.valid_items = pick("train"), pick(cfg.data.valid_split)
        if not self.train_items:
            raise WavegenError(f"{ds.root}: no training pieces")
        self.styles = sorted({it.style for it in self.train_items})
        self.valid_batch = None

    def _streams(self, items) -> tuple[list[np.ndarray], list[int]]:
        from wavegen.composer import ticks_of

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
        from wavegen.composer import keytext_of

        T.write_file(run_dir / "samples" / f"step-{step:08d}.txt", keytext_of(sample, self.ds.tick_ms,
                                                                               {"style": self.styles[0]}))
        return {"valid_bits": bits, "valid_bits_per_tick": bits * chars / max(ticks, 1)}


class LSTMComposer:
    """A trained CharLSTM with the composer interface of MarkovComposer (sample, bits_per_tick)."""

    kind = "lstm"

    def __init__(self, model: CharLSTM, styles: Sequence[str], tick_ms: float):
        self.model, self.styles, self.tick_ms = model.eval(), list(styles), tick_ms
        self.order = CONTEXT_TICKS

    @classmethod
    def load(cls, path: str | Path) -> LSTMComposer:
        from safetensors.torch import load_file

        p = checkpoint.resolve(path)
        meta = json.loads((p / checkpoint.CONFIG).read_text())
        if meta.get("kind") != KIND:
            raise WavegenError(f"{p}: not an LSTM composer")
        cfg = from_dict(meta["config"], str(p / checkpoint.CONFIG)).composer
        model = CharLSTM(len(meta["styles"]), cfg.embed, cfg.style_embed, cfg.hidden, cfg.layers, cfg.dropout)
        model.load_state_dict(load_file(str(p / checkpoint.WEIGHTS)))
        return cls(model, meta["styles"], float(meta["tick_ms"]))

    def _style(self, style: str | None) -> torch.Tensor:
        return torch.tensor([self.styles.index(style) if style in self.styles else 0])

    @torch.no_grad()
    def sample(self, n_ticks: int, *, temperature: float = 1.0, rng: np.random.Generator | None = None,
               prime: Sequence[str] = (), style: str | None = None) -> list[str]:
        """n_ticks new ticks after `prime`; the format's grammar masks impossible symbols."""
        rng = rng or np.random.default_rng(0)
        s = self._style(style)
        history = np.concatenate([[BOS], encode(prime)]) if prime else np.array([BOS])
        logits, state = self.model(torch.from_numpy(history)[None], s)
        last = logits[0, -1]
        ticks: list[str] = []
        current: list[int] = []
        while len(ticks) < n_ticks:
            lo = current[-1] + 1 if current else 0  # keys rise within a tick
            allowed = torch.zeros(len(VOCAB), dtype=torch.bool)
            allowed[lo:SPACE] = True
            allowed[SPACE] = True
            z = last.float().masked_fill(~allowed, float("-inf"))
            if temperature <= 0:
                sym = int(z.argmax())
            else:
                p = torch.softmax(z / temperature, dim=0).numpy().astype(np.float64)
                sym = int(rng.choice(len(VOCAB), p=p / p.sum()))
            if sym == SPACE:
                ticks.append("".join(T.KEY_CHARS[k] for k in current))
                current = []
            else:
                current.append(sym)
            logits, state = self.model(torch.tensor([[sym]]), s, state)
            last = logits[0, -1]
        return ticks

    @torch.no_grad()
    def bits_per_tick(self, sequences: Sequence[Sequence[str]], style: str | None = None) -> float:
        total, ticks = 0.0, 0
        for seq in sequences:
            x = np.concatenate([[BOS], encode(seq)])
            logits, _ = self.model(torch.from_numpy(x[:-1])[None], self._style(style))
            total += F.cross_entropy(logits[0].float(), torch.from_numpy(x[1:]), reduction="sum").item() / math.log(2)
            ticks += len(seq)
        return total / max(ticks, 1)


def train_lstm(cfg: Config, data_dir: str | Path, run_dir: str | Path, **kwargs):
    from wavegen.train import train

    ds = data.load(data_dir)
    return train(cfg, data_dir, run_dir, task=CharTask(cfg, ds, data_dir), **kwargs)
