"""The baseline composer: an order-k Markov chain over ticks, and the tick helpers every composer uses.

A sketch is a sequence of ticks; a tick is the characters of its sounding keys ('' is a rest), exactly
as in the text format (`ticks_of`, `keytext_of`). The chain counts which tick follows each context of k
ticks and backs off to shorter contexts for contexts it never saw. Form (compose/form.py), the copy check
(compose/copycheck.py) and the musical statistics (compose/stats.py) work on any tick sequence, so
generated and real music are measured the same way.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from wavegen.errors import WavegenError
from wavegen.files import write_bytes_atomic
from wavegen.notes import text as T

START = "^"  # context padding before the first tick (not a key character)


def ticks_of(kt: T.KeyText) -> list[str]:
    chars = np.array(list(T.KEY_CHARS))
    return ["".join(chars[row]) for row in kt.roll]


def keytext_of(ticks: Sequence[str], tick_ms: float = T.DEFAULT_TICK_MS, meta: dict | None = None) -> T.KeyText:
    roll = np.zeros((len(ticks), T.N_KEYS), dtype=bool)
    for t, tick in enumerate(ticks):
        for c in tick:
            roll[t, ord(c) - ord(T.FIRST_CHAR)] = True
    return T.KeyText(roll, tick_ms, dict(meta or {}))


def transpose_tick(tick: str, semitones: int) -> str | None:
    """The tick moved by semitones, or None if a key would leave the keyboard."""
    out = []
    for c in tick:
        o = ord(c) + semitones
        if not ord(T.FIRST_CHAR) <= o <= ord(T.LAST_CHAR):
            return None
        out.append(chr(o))
    return "".join(out)


class MarkovComposer:
    """Order-k Markov chain over ticks; unseen contexts back off to shorter ones."""

    kind = "markov"

    def __init__(self, order: int = 3, tick_ms: float = T.DEFAULT_TICK_MS, styles: Sequence[str] = ()):
        if order < 1:
            raise ValueError("order must be at least 1")
        self.order, self.tick_ms, self.styles = order, tick_ms, sorted(set(styles))
        self.counts: list[dict[tuple[str, ...], Counter]] = [{} for _ in range(order + 1)]  # by context length
        self.vocab: set[str] = set()

    def fit(self, sequences: Iterable[Sequence[str]]) -> MarkovComposer:
        for seq in sequences:
            padded = [START] * self.order + list(seq)
            for i in range(self.order, len(padded)):
                nxt = padded[i]
                self.vocab.add(nxt)
                for k in range(self.order + 1):
                    ctx = tuple(padded[i - k : i])
                    self.counts[k].setdefault(ctx, Counter())[nxt] += 1
        return self

    def distribution(self, history: Sequence[str]) -> Counter:
        padded = [START] * self.order + list(history)
        for k in range(self.order, -1, -1):
            ctx = tuple(padded[len(padded) - k :]) if k else ()
            found = self.counts[k].get(ctx)
            if found:
                return found
        raise ValueError("the chain is empty: fit it first")

    def sample(self, n_ticks: int, *, temperature: float = 1.0, rng: np.random.Generator | None = None,
               prime: Sequence[str] = ()) -> list[str]:
        """n_ticks new ticks continuing `prime`. Temperature scales log-counts (0: the most frequent)."""
        rng = rng or np.random.default_rng(0)
        out = list(prime)
        for _ in range(n_ticks):
            dist = self.distribution(out)
            keys = sorted(dist)
            counts = np.array([dist[k] for k in keys], dtype=np.float64)
            if temperature <= 0:
                out.append(keys[int(np.argmax(counts))])
                continue
            logits = np.log(counts) / temperature
            p = np.exp(logits - logits.max())
            out.append(keys[int(rng.choice(len(keys), p=p / p.sum()))])
        return out[len(prime) :]

    def bits_per_tick(self, sequences: Iterable[Sequence[str]]) -> float:
        """Held-out cross-entropy with interpolated backoff (Witten-Bell style), bits per tick."""
        total, n = 0.0, 0
        V = len(self.vocab) + 1
        for seq in sequences:
            padded = [START] * self.order + list(seq)
            for i in range(self.order, len(padded)):
                p = 1.0 / V
                for k in range(0, self.order + 1):
                    c = self.counts[k].get(tuple(padded[i - k : i]) if k else ())
                    if not c:
                        break
                    total_c = sum(c.values())
                    lam = total_c / (total_c + len(c))
                    p = lam * c.get(padded[i], 0) / total_c + (1 - lam) * p
                total += -math.log2(p)
                n += 1
        return total / max(n, 1)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "format_version": T.FORMAT_VERSION, "order": self.order,
                "tick_ms": self.tick_ms, "styles": self.styles,
                "counts": [[[list(ctx), dict(c)] for ctx, c in level.items()] for level in self.counts]}

    @classmethod
    def from_dict(cls, d: dict) -> MarkovComposer:
        m = cls(int(d["order"]), float(d["tick_ms"]), d.get("styles", []))
        m.counts = [{tuple(ctx): Counter(c) for ctx, c in level} for level in d["counts"]]
        m.vocab = set(m.counts[0].get((), Counter()))
        return m

    def save(self, path: str | os.PathLike) -> None:
        """gzip-compressed JSON (a few MB for the Bach chorales at order 3)."""
        data = gzip.compress(json.dumps(self.to_dict(), separators=(",", ":")).encode(), mtime=0)
        write_bytes_atomic(path, data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MarkovComposer:
        p = Path(path)
        try:
            d = json.loads(gzip.decompress(p.read_bytes()))
            if d.get("kind") != cls.kind:
                raise ValueError(f"kind {d.get('kind')!r}")
            return cls.from_dict(d)
        except FileNotFoundError:
            raise WavegenError(f"{p}: no such composer model") from None
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise WavegenError(f"{p}: not a Markov composer model ({e})") from None
