"""Endless playing: a sketch that keeps growing, played a tick at a time with flat memory.

`StreamPlayer` keeps the fast path's state (previous sample, layer buffers, random generator) between
calls and a sliding window of recent ticks for the conditioning: a key's onset and decay features need
its history, and the conditioning network looks `cond_lookahead_ticks` ahead, so a tick is played only
once that many ticks after it are known. `GrowingWav` writes 16-bit PCM whose header is brought up to
date after every chunk, so the file on disk is a valid WAV at every moment, however the process ends.
"""

from __future__ import annotations

import signal
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from wavegen.audio import mu_law_decode, to_int16
from wavegen.data.conditioning import sounding_and_onsets, tick_features
from wavegen.notes.text import KEY_CHARS, N_KEYS
from wavegen.synth.fast import FastWaveNet

HISTORY_TICKS = 400  # 20 s at 50 ms: longer-held notes lose their onset (a decay feature saturates anyway)


class StreamPlayer:
    def __init__(self, fast: FastWaveNet, sample_rate_hz: int, *, temperature: float = 1.0, min_p: float = 0.0,
                 seed: int = 0, style: int | None = None):
        self.fast, self.sr, self.style = fast, sample_rate_hz, style
        self.sampling = (temperature, min_p)
        self.spt = fast.spt
        self.lookahead = fast.model.cfg.cond_lookahead_ticks if fast.model.uses_notes else 0
        self.codes_in, self.buf, self.rng = fast.new_state(1, seed)
        self.window: list[str] = []  # recent ticks; window[0] is absolute tick self.first
        self.first = 0
        self.played = 0  # absolute ticks played so far

    def _roll(self) -> np.ndarray:
        roll = np.zeros((len(self.window), N_KEYS), dtype=bool)
        for t, tick in enumerate(self.window):
            for c in tick:
                roll[t, KEY_CHARS.index(c)] = True
        return roll

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
            feats = torch.from_numpy(tick_features(roll))[None]
            cond = model.tick_conditioning(feats)[0].T.contiguous().float().numpy()
            rows = self.fast.tick_rows(cond, self.style)
            sounding, _, last_onset = sounding_and_onsets(roll)
            onsets = (sounding, last_onset)
        else:
            rows = self.fast.tick_rows(None, self.style)
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
        return mu_law_decode(np.concatenate(out), self.fast.emb.shape[0])


class GrowingWav:
    """Mono 16-bit PCM WAV written in chunks; the header is rewritten after each chunk (to a file) so the
    file is always valid. To a pipe ('-' = standard output) the sizes are left at their maximum."""

    def __init__(self, path: str, sample_rate_hz: int):
        self.sr = sample_rate_hz
        self.pipe = path == "-"
        self.f: BinaryIO = sys.stdout.buffer if self.pipe else open(Path(path), "wb")  # noqa: SIM115
        self.frames = 0
        self.clipped = 0
        self._header(0xFFFFFFFF - 36 if self.pipe else 0)

    def _header(self, data_bytes: int) -> None:
        self.f.write(b"RIFF" + struct.pack("<I", min(36 + data_bytes, 0xFFFFFFFF)) + b"WAVE")
        self.f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, self.sr, self.sr * 2, 2, 16))
        self.f.write(b"data" + struct.pack("<I", data_bytes))

    def write(self, audio: np.ndarray) -> None:
        pcm, clipped = to_int16(audio)
        self.clipped += clipped
        self.f.write(pcm.astype("<i2").tobytes())
        self.frames += len(pcm)
        if not self.pipe:
            end = self.f.tell()
            self.f.seek(0)
            self._header(self.frames * 2)
            self.f.seek(end)
        self.f.flush()

    def close(self) -> None:
        if not self.pipe:
            self.f.close()
        else:
            self.f.flush()


STREAM_CHUNK_TICKS = 20  # one second at 50 ms ticks


def stream_compose(composer, player: StreamPlayer, wav: GrowingWav, prime: Sequence[str], rng: np.random.Generator,
                   *, temperature: float = 1.0, limit: int | None = None) -> tuple[int, bool]:
    """Compose a second at a time and play it into `wav` until SIGINT or SIGTERM (or `limit` ticks).
    Returns (ticks composed, whether a signal stopped it). The WAV is closed in every case."""
    stop = {"now": False}

    def on_signal(signum, frame) -> None:
        stop["now"] = True

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    history, done = list(prime), 0
    try:
        if prime:
            wav.write(player.play(prime))
        while not stop["now"] and (limit is None or done < limit):
            k = STREAM_CHUNK_TICKS if limit is None else min(STREAM_CHUNK_TICKS, limit - done)
            new = composer.sample(k, temperature=temperature, rng=rng, prime=history[-composer.order :])
            history = (history + new)[-composer.order :]
            wav.write(player.play(new))
            done += k
        wav.write(player.play([], flush=True))
    finally:
        wav.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return done, stop["now"]
