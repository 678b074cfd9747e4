"""Endless playing: a sketch that keeps growing, played a tick at a time with flat memory.

`StreamPlayer` keeps the fast path's state (previous sample, layer buffers, random generator) between
calls and a sliding window of recent ticks for the conditioning: a key's onset and decay features need
its history, and the conditioning network looks `cond_lookahead_ticks` ahead, so a tick is played only
once that many ticks after it are known. While the sketch is shorter than HISTORY_TICKS, the stream
plays what the offline fast engine plays for the whole sketch with the same seed, sample for sample.
`stream_compose` writes into a `wavegen.audio.GrowingWav`, a WAV file valid at every moment.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from wavegen.audio import GrowingWav, deemphasize, mu_law_decode
from wavegen.notes.text import KEY_CHARS, N_KEYS, KeyText, Note, roll_to_notes
from wavegen.synth.fast import FastWaveNet
from wavegen.synth.sketchcond import roll_conditioning

HISTORY_TICKS = 400  # 20 s at 50 ms: longer-held notes lose their onset (a decay feature saturates anyway)


class StreamPlayer:
    def __init__(self, fast: FastWaveNet, sample_rate_hz: int, *, temperature: float = 1.0, min_p: float = 0.0,
                 seed: int = 0, style: int | None = None, timbre: int | None = None):
        self.fast, self.sr, self.style, self.timbre = fast, sample_rate_hz, style, timbre
        self.sampling = (temperature, min_p)
        self.spt = fast.spt
        self.lookahead = fast.model.cfg.cond_lookahead_ticks if fast.model.uses_notes else 0
        self.codes_in, self.buf, self.rng = fast.new_state(1, seed)
        self.window: list[str] = []  # recent ticks; window[0] is absolute tick self.first
        self.first = 0
        self.played = 0  # absolute ticks played so far
        self.last_sample = 0.0  # the last sample played, for de-emphasis (model.pre_emphasis)

    def _roll(self) -> np.ndarray:
        roll = np.zeros((len(self.window), N_KEYS), dtype=bool)
        for t, tick in enumerate(self.window):
            for c in tick:
                roll[t, KEY_CHARS.index(c)] = True
        return roll

    def notes(self) -> list[Note]:
        """The notes of the recent ticks (the window), in seconds from the stream's start: a note still
        held at the last tick known ends there."""
        tick_s = self.spt / self.sr
        shift = self.first * tick_s
        return [Note(n.pitch, n.start + shift, n.end + shift) for n in roll_to_notes(self._roll(), tick_s * 1000)]

    @torch.no_grad()
    def play(self, new_ticks: Sequence[str], flush: bool = False) -> np.ndarray:
        """Add ticks to the sketch; return the audio (float32) of every tick that can now be played
        (all of them with flush=True, as if the sketch ended there)."""
        self.window.extend(new_ticks)
        last = self.first + len(self.window) - (0 if flush else self.lookahead)
        if last <= self.played:
            return np.zeros(0, dtype=np.float32)
        model = self.fast.model
        roll = self._roll()
        rows = onsets = None
        if model.uses_notes:
            cond, onsets = roll_conditioning(model, roll)  # as the offline engines compute it
            rows = self.fast.tick_rows(cond, self.style, self.timbre)
        else:
            rows = self.fast.tick_rows(None, self.style, self.timbre)
        out = []
        for tick in range(self.played, last):
            rel = tick - self.first
            row = rows[min(rel, rows.shape[0] - 1)]
            keys, key_onsets = self.fast.tick_keys(onsets, rel, self.first)
            codes = np.zeros((1, self.spt), dtype=np.int64)
            self.fast.block(self.codes_in, tick * self.spt, self.spt, row, keys, key_onsets, self.sr, self.buf,
                            self.sampling, self.rng, codes)
            out.append(codes[0])
        self.played = last
        drop = max(0, len(self.window) - HISTORY_TICKS)
        if drop:
            self.window = self.window[drop:]
            self.first += drop
        audio = mu_law_decode(np.concatenate(out), self.fast.emb.shape[0])
        a = model.cfg.pre_emphasis
        if a:  # as `play` de-emphasizes the offline takes, carried across chunks
            audio = deemphasize(audio, a, self.last_sample)
            self.last_sample = float(audio[-1])
        return audio


def stream_take(fast: FastWaveNet, n_samples: int, *, sample_rate_hz: int, sketch: KeyText | None = None,
                temperature: float = 1.0, min_p: float = 0.0, seed: int = 0,
                style: int | None = None, timbre: int | None = None) -> Iterator[np.ndarray]:
    """The take `play` makes of a whole sketch with the fast engine at batch 1, a tick of float32 audio
    at a time: joined, the chunks are `play`'s take sample for sample (de-emphasis carried across)."""
    a, last = fast.model.cfg.pre_emphasis, 0.0
    for audio in fast.stream(n_samples, sample_rate_hz=sample_rate_hz, sketch=sketch, temperature=temperature,
                             min_p=min_p, seed=seed, style=style, timbre=timbre):
        if a:
            audio = deemphasize(audio, a, last)
            last = float(audio[-1])
        yield audio


STREAM_CHUNK_TICKS = 20  # one second at 50 ms ticks


def composed_chunks(composer, player: StreamPlayer, prime: Sequence[str], rng: np.random.Generator, *,
                    temperature: float = 1.0, limit: int | None = None,
                    style: str | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
    """Compose a second at a time (an LSTM composer in `style`) and play it: yields (the new ticks, the
    audio that can now be played), without end or until `limit` ticks are composed, then the rest of
    the audio with no new ticks. The prime's audio comes first, with no new ticks (the caller has them)."""
    kw = {"style": style} if style and getattr(composer, "kind", None) == "lstm" else {}
    history, done = list(prime), 0
    if prime:
        yield [], player.play(prime)
    while limit is None or done < limit:
        k = STREAM_CHUNK_TICKS if limit is None else min(STREAM_CHUNK_TICKS, limit - done)
        new = composer.sample(k, temperature=temperature, rng=rng, prime=history[-composer.order :], **kw)
        history = (history + new)[-composer.order :]
        yield new, player.play(new)
        done += k
    yield [], player.play([], flush=True)


def stream_compose(composer, player: StreamPlayer, wav: GrowingWav, prime: Sequence[str], rng: np.random.Generator,
                   *, temperature: float = 1.0, limit: int | None = None, style: str | None = None) -> tuple[int, bool]:
    """`composed_chunks` played into `wav` until SIGINT or SIGTERM (or `limit` ticks). Returns (ticks
    composed, whether a signal stopped it). The WAV is closed in every case."""
    stop = {"now": False}

    def on_signal(signum, frame) -> None:
        stop["now"] = True

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    done = 0
    try:
        for new, audio in composed_chunks(composer, player, prime, rng, temperature=temperature, limit=limit,
                                          style=style):
            wav.write(audio)
            done += len(new)
            if stop["now"]:
                wav.write(player.play([], flush=True))
                break
    finally:
        wav.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return done, stop["now"]
