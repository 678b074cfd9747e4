"""The composer: new sketches in the 88-key text, learned from Bach, and the measures that tell whether
it composes or copies.

A sketch is a sequence of ticks; a tick is the characters of its sounding keys ('' is a rest), exactly
as in the text format. The baseline composer is an order-k Markov chain over ticks (with backoff to
shorter contexts for contexts it never saw). Measures (`copy_check`, `musical_stats`) work on any tick
sequence, so generated and real music are measured the same way.
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


# ---------------------------------------------------------------------------------------------
# the Markov chain


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


# ---------------------------------------------------------------------------------------------
# large-scale form


MAJOR, MINOR = frozenset({0, 4, 7}), frozenset({0, 3, 7})


def is_triad(tick: str) -> bool:
    """The tick's pitch classes are exactly a major or minor triad (doublings allowed)."""
    pcs = {(ord(c) - T.CHAR_OFFSET) % 12 for c in tick}
    if len(pcs) != 3:
        return False
    return any(frozenset((p - r) % 12 for p in pcs) in (MAJOR, MINOR) for r in pcs)


def parse_form(form: str) -> str:
    if not form or not form.isalpha() or not form.isascii():
        raise WavegenError(f"--form {form!r}: use letters only, e.g. ABACABA")
    return form.upper()


def compose_form(model: MarkovComposer, form: str, n_ticks: int, *, temperature: float = 1.0,
                 rng: np.random.Generator | None = None, prime: Sequence[str] = (),
                 cadence_tries: int = 20) -> tuple[list[str], list[tuple[str, int, int]]]:
    """One section per new letter, repeated verbatim where the letter recurs. Each new section ends,
    where the model allows, on a tick whose notes form a major or minor triad (its last ticks are
    sampled again up to `cadence_tries` times). Returns the ticks and (letter, start, end) sections."""
    rng = rng or np.random.default_rng(0)
    form = parse_form(form)
    length = max(4, n_ticks // len(form))
    tail = min(8, length // 2)
    sections: dict[str, list[str]] = {}
    out, spans = list(prime), []
    for letter in form:
        if letter not in sections:
            body = model.sample(length - tail, temperature=temperature, rng=rng, prime=out)
            best = None
            for _ in range(cadence_tries):
                end = model.sample(tail, temperature=temperature, rng=rng, prime=out + body)
                sounding = [t for t in end if t]
                if best is None:
                    best = end
                if sounding and is_triad(sounding[-1]):
                    best = end
                    break
            sections[letter] = body + best
        start = len(out)
        out.extend(sections[letter])
        spans.append((letter, start - len(prime), len(out) - len(prime)))
    return out[len(prime) :], spans


# ---------------------------------------------------------------------------------------------
# measures: does it compose or copy, and does it sound like the music it learned?


def _ngrams(seq: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)}


class CopyIndex:
    """The n-grams of a training corpus, for transposition-invariant copy checks."""

    def __init__(self, corpus: Sequence[Sequence[str]]):
        self.corpus = [list(s) for s in corpus]
        self._sets: dict[int, set[tuple[str, ...]]] = {}

    def grams(self, n: int) -> set[tuple[str, ...]]:
        if n not in self._sets:
            found: set[tuple[str, ...]] = set()
            for s in self.corpus:
                found |= _ngrams(s, n)
            self._sets[n] = found
        return self._sets[n]

    def _shifts(self, seq: Sequence[str]) -> list[list[str]]:
        out = []
        for s in range(-12, 13):
            moved = [transpose_tick(t, s) for t in seq]
            if all(m is not None for m in moved):
                out.append(moved)
        return out

    def contains(self, seq: Sequence[str], n: int) -> bool:
        grams = self.grams(n)
        return any(not _ngrams(m, n).isdisjoint(grams) for m in self._shifts(seq))

    def longest_copy(self, seq: Sequence[str]) -> int:
        """The longest run of ticks of seq found verbatim in the corpus, in any transposition."""
        lo, hi = 0, len(seq)
        while lo < hi:  # the property "some n-gram is found" is monotone in n
            mid = (lo + hi + 1) // 2
            if self.contains(seq, mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def share_found(self, seq: Sequence[str], n: int = 16) -> float:
        """Share of seq's n-grams found in the corpus (each in any transposition)."""
        grams = self.grams(n)
        own = [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]
        if not own:
            return 0.0
        found = 0
        for g in own:
            for s in range(-12, 13):
                moved = tuple(transpose_tick(t, s) for t in g)
                if None not in moved and moved in grams:
                    found += 1
                    break
        return found / len(own)


# Krumhansl-Kessler key profiles
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def best_key(ticks: Sequence[str]) -> int | None:
    """0..11 major, 12..23 minor, by correlation of the pitch-class histogram with the KK profiles."""
    hist = np.zeros(12)
    for t in ticks:
        for c in t:
            hist[(ord(c) - T.CHAR_OFFSET) % 12] += 1
    if hist.sum() == 0 or np.all(hist == hist[0]):
        return None
    scores = [np.corrcoef(hist, np.roll(p, k))[0, 1] for p in (_MAJOR_PROFILE, _MINOR_PROFILE) for k in range(12)]
    return int(np.argmax(scores))


def musical_stats(ticks: Sequence[str], window: int = 40) -> dict[str, float]:
    """Notes per sounding tick, pitch range, share of sounding ticks forming a triad, and key consistency
    (share of `window`-tick windows whose best key is the whole sequence's)."""
    sounding = [t for t in ticks if t]
    pitches = [ord(c) - T.CHAR_OFFSET for t in sounding for c in t]
    overall = best_key(ticks)
    windows = [ticks[i : i + window] for i in range(0, max(len(ticks) - window + 1, 1), window)]
    keys = [best_key(w) for w in windows]
    keys = [k for k in keys if k is not None]
    return {
        "ticks": len(ticks),
        "rest_share": 1 - len(sounding) / max(len(ticks), 1),
        "notes_per_tick": float(np.mean([len(t) for t in sounding])) if sounding else 0.0,
        "lowest_pitch": min(pitches) if pitches else 0,
        "highest_pitch": max(pitches) if pitches else 0,
        "triad_share": float(np.mean([is_triad(t) for t in sounding])) if sounding else 0.0,
        "key_consistency": float(np.mean([k == overall for k in keys])) if keys and overall is not None else 0.0,
    }


def evaluate_composer(model, ds, *, split: str = "test", samples: int = 5, seconds: float = 20.0,
                      temperature: float = 1.0, seed: int = 0) -> dict:
    """Held-out bits per tick and per character, and, for `samples` generated sketches next to as many real
    held-out pieces of the same length: musical statistics and the copy check against the training set.
    `model` is a MarkovComposer or an LSTMComposer; `ds` a dataset (its untransposed pieces are used)."""
    def originals(part: str) -> list[list[str]]:
        return [ticks_of(ds.text(it)) for it in ds.items(part) if it.transpose == 0]

    train, held = originals("train"), originals(split)
    if not held:
        raise WavegenError(f"{ds.root}: no pieces in the {split!r} split")
    index = CopyIndex(train)
    n = int(round(seconds * 1000 / model.tick_ms))
    rng = np.random.default_rng(seed)
    generated = [model.sample(n, temperature=temperature, rng=rng) for _ in range(samples)]
    real = [h[:n] for h in held[:samples]]

    def summary(seqs: list[list[str]]) -> dict[str, float]:
        stats = [musical_stats(s) for s in seqs]
        out = {k: float(np.mean([st[k] for st in stats])) for k in stats[0]}
        out["longest_copy_ticks"] = float(np.mean([index.longest_copy(s) for s in seqs]))
        out["share_16grams_in_training"] = float(np.mean([index.share_found(s, 16) for s in seqs]))
        return out

    bits_tick = model.bits_per_tick(held)
    chars = sum(len(t) + 1 for h in held for t in h)  # each tick's keys and its space
    ticks = sum(len(h) for h in held)
    return {"kind": model.kind, "order": model.order, "split": split, "samples": samples, "real_pieces": len(real),
            "heldout_bits_per_tick": bits_tick, "heldout_bits_per_char": bits_tick * ticks / chars,
            "ticks_per_sample": n, "generated": summary(generated), "real_heldout": summary(real)}


def report_markdown(report: dict) -> str:
    rows = ["| measure | generated | real held-out |", "|---|---|---|"]
    for k in report["generated"]:
        rows.append(f"| {k} | {report['generated'][k]:.3f} | {report['real_heldout'][k]:.3f} |")
    what = f"order-{report['order']} Markov" if report["kind"] == "markov" else "character LSTM"
    n = report["ticks_per_sample"]
    return (f"# Composer evaluation: {report.get('model', '')} ({what})\n\n"
            f"Held-out {report['heldout_bits_per_tick']:.3f} bits per tick, {report['heldout_bits_per_char']:.3f} "
            f"bits per character. {report['samples']} samples of {n} ticks against {report['real_pieces']} real "
            f"held-out pieces (first {n} ticks), copies checked in any transposition.\n\n" + "\n".join(rows) + "\n")
