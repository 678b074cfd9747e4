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

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wavegen.config import ComposerRunConfig
from wavegen.nn import checkpoint
from wavegen.notes import text as T

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
        """x: (B, T) symbols; style: (B,) style ids, or (B, style_embed) style vectors (a blend of the
        learned ones). Returns logits (B, T, 89) for the next symbol, and the state."""
        s = style if style.is_floating_point() else self.style(style)
        e = torch.cat([self.embed(x), s[:, None, :].expand(-1, x.shape[1], -1)], dim=-1)
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


class LSTMComposer:
    """A trained CharLSTM with the composer interface of MarkovComposer (sample, bits_per_tick)."""

    kind = "lstm"

    def __init__(self, model: CharLSTM, styles: Sequence[str], tick_ms: float):
        self.model, self.styles, self.tick_ms = model.eval(), list(styles), tick_ms
        self.order = CONTEXT_TICKS

    @classmethod
    def load(cls, path: str | Path) -> LSTMComposer:
        """A checkpoint or run folder of the LSTM composer, checked as every checkpoint is (checkpoint.read)."""

        def build(config: ComposerRunConfig, meta: dict[str, Any]) -> CharLSTM:
            c = config.composer
            return CharLSTM(len(meta["styles"]), c.embed, c.style_embed, c.hidden, c.layers, c.dropout)

        loaded = checkpoint.read(path, KIND, build)
        return cls(loaded.model, loaded.styles, loaded.tick_ms)

    def _style(self, style: str | None, blend: tuple[str, float] | None = None) -> torch.Tensor:
        """The style vector (1, style_embed) of `style` (else the first learned), moved the fraction w of
        the way to the style `other` of blend=(other, w): 0 is `style`, 1 is `other`."""
        learned = self.model.style.weight.detach()
        v = learned[self.styles.index(style) if style in self.styles else 0]
        if blend:
            other, w = blend
            v = (1 - w) * v + w * learned[self.styles.index(other)]
        return v[None]

    @torch.no_grad()
    def sample(self, n_ticks: int, *, temperature: float = 1.0, rng: np.random.Generator | None = None,
               prime: Sequence[str] = (), style: str | None = None,
               blend: tuple[str, float] | None = None) -> list[str]:
        """n_ticks new ticks after `prime` in `style` (blended with another, see `_style`); the format's
        grammar masks impossible symbols."""
        rng = rng or np.random.default_rng(0)
        s = self._style(style, blend)
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
