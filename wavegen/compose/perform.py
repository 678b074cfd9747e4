"""Hearing what a composer writes: its SoundFont rendering, the WaveNet's take, or both without end.

`render` and `perform` play one composed sketch into a file; `stream` composes a second at a time and
plays it through the fast path into a WAV that grows (valid at every moment) or to standard output
('-'), until SIGINT or SIGTERM, or for `limit` ticks. The WaveNet must play the composer's tick length.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavegen.audio import GrowingWav, write_audio
from wavegen.compose.lstm import LSTMComposer
from wavegen.compose.markov import MarkovComposer
from wavegen.errors import WavegenError
from wavegen.files import check_output, check_output_dir
from wavegen.nn import checkpoint
from wavegen.notes.render import render_notes
from wavegen.notes.text import KeyText, write, write_file


def _ignore(message: str) -> None:
    pass


def render(kt: KeyText, output: str | os.PathLike) -> None:
    """The SoundFont rendering of the sketch."""
    r = render_notes(kt.notes(), min_seconds=kt.n_ticks * kt.tick_s)
    write_audio(output, r.audio, r.sample_rate_hz)


def perform(kt: KeyText, output: str | os.PathLike, *, model: str | None = None, seed: int = 0,
            warn: Callable[[str], None] | None = None) -> str:
    """The WaveNet's take of the sketch (with the model's own sampling, in the header's style when the
    model knows it; else warn says so); returns the model's name."""
    from wavegen.synth.generate import play
    from wavegen.synth.sketchcond import sketch_samples

    loaded = checkpoint.load(model)
    loaded.check_ticks(kt.tick_ms, "the composer's sketch")
    sr = loaded.sample_rate_hz
    style = loaded.style_index(None, kt.meta.get("style"), warn)
    audio = play(loaded.model, sketch_samples(kt, sr), sample_rate_hz=sr, sketch=kt, seed=seed, style=style,
                 **loaded.sampling())[0]
    write_audio(output, audio, sr)
    return loaded.path.name


@dataclass
class Streamed:
    seconds: float  # audio written
    ticks: int  # ticks composed
    stopped_by_signal: bool
    wall_seconds: float


def stream(composer: MarkovComposer | LSTMComposer, output: str, *, model: str | None = None,
           prime: Sequence[str] = (), rng: np.random.Generator | None = None, temperature: float = 1.0,
           limit: int | None = None, seed: int = 0, style: str | None = None,
           warn: Callable[[str], None] | None = None) -> Streamed:
    """Compose and play without end (or for `limit` ticks) into `output` ('-': standard output), the
    WaveNet in `style` (the composer's) when it knows it, else warn says so."""
    from wavegen.synth.fast import FastWaveNet, why_not
    from wavegen.synth.stream import StreamPlayer, stream_compose

    loaded = checkpoint.load(model)
    reason = why_not(loaded.model)
    if reason:
        raise WavegenError(f"--stream needs the fast path: {reason}")
    loaded.check_ticks(composer.tick_ms, "the composer")
    if output != "-":
        check_output_dir(Path(output).parent if str(Path(output).parent) else ".")
    sr = loaded.sample_rate_hz
    player = StreamPlayer(FastWaveNet(loaded.model), sr, **loaded.sampling(), seed=seed,
                          style=loaded.style_index(None, style, warn))
    t0 = time.perf_counter()
    wav = GrowingWav(output, sr)
    done, stopped = stream_compose(composer, player, wav, list(prime), rng or np.random.default_rng(seed),
                                   temperature=temperature, limit=limit, style=style)
    return Streamed(wav.frames / sr, done, stopped, time.perf_counter() - t0)


@dataclass
class Session:
    """What `compose_and_play` did: the sketch (None when streamed), what was played and where."""

    keytext: KeyText | None
    sections: list[tuple[str, int, int]]
    performed_by: str | None = None  # the WaveNet's name, with `perform`
    perform_seconds: float = 0.0
    streamed: Streamed | None = None
    output: str | None = None  # the sketch's file, the rendering's, the performance's
    render_to: str | None = None
    perform_to: str | None = None

    def wrote(self) -> list[str]:
        """A line for each file written."""
        lines = []
        if self.output:
            kt, sections = self.keytext, " ".join(f"{letter}:{a}-{b}" for letter, a, b in self.sections)
            lines.append(f"wrote {self.output}: {kt.n_ticks} ticks ({kt.n_ticks * kt.tick_s:.1f} s)"
                         + (f", sections {sections}" if sections else ""))
        if self.render_to:
            lines.append(f"wrote {self.render_to}: the SoundFont rendering")
        if self.perform_to:
            lines.append(f"wrote {self.perform_to}: performed by {self.performed_by} in {self.perform_seconds:.1f} s")
        return lines

    def summary(self) -> str:
        """What `wavegen compose` prints: the files written; without `output` the sketch itself (the files
        then go to `log`); nothing when streamed (standard output may be the stream)."""
        if self.streamed:
            return ""
        return "\n".join(self.wrote()) if self.output else write(self.keytext)


def compose_and_play(*, composer: str | None = None, ticks: int | None = None, seconds: float | None = None,
                     temperature: float = 1.0, seed: int = 0, prime: str | None = None, form: str | None = None,
                     style: str | None = None, output: str | None = None, render_to: str | None = None,
                     perform_to: str | None = None, stream_to: str | None = None, model: str | None = None,
                     warn: Callable[[str], None] | None = None, log: Callable[[str], None] = _ignore,
                     note: Callable[[str], None] = _ignore) -> Session:
    """`wavegen compose`: `composer` (default the shipped one) writes `ticks` or `seconds` of new sketch
    after the `prime` file, in `form`, and writes it to `output` (88-key text) if given; then the SoundFont
    renders it to `render_to` and the WaveNet
    `model` performs it to `perform_to`. With `stream_to` it composes and plays without end instead
    (for `ticks` or `seconds` if given). Every output is checked before anything is composed; warn(message)
    says when the WaveNet does not know the sketch's style, note(message) what was streamed, and without
    `output` (the sketch is the summary) log(message) what was written."""
    from wavegen.audio import output_format
    from wavegen.compose import piece
    from wavegen.compose.form import parse_form
    from wavegen.compose.load import load_composer

    if stream_to and (output or render_to or perform_to or form):
        raise WavegenError("--stream plays without end: it does not go with -o, --perform, --render or --form")
    form = parse_form(form) if form else None
    writer = load_composer(composer)
    n = piece.length_in_ticks(writer.tick_ms, ticks=ticks, seconds=seconds)
    piece.check_style(writer, style)
    for path in (perform_to, render_to):
        if path:
            output_format(path)
    for path in (output, render_to, perform_to, stream_to):
        if path and path != "-":
            check_output(path)
    primed = piece.read_prime(prime, writer.tick_ms) if prime else []
    rng = np.random.default_rng(seed)
    if stream_to:
        limit = n if (ticks is not None or seconds is not None) else None
        st = stream(writer, stream_to, model=model, prime=primed, rng=rng, warn=warn, temperature=temperature,
                    limit=limit, seed=seed, style=style or (writer.styles[0] if writer.styles else None))
        note(f"streamed {st.seconds:.1f} s ({st.ticks} ticks) to {stream_to} in {st.wall_seconds:.1f} s"
             + ("; stopped by a signal" if st.stopped_by_signal else ""))
        return Session(None, [], streamed=st)
    composed = piece.compose(writer, n, temperature=temperature, rng=rng, prime=primed, form=form, style=style)
    session = Session(composed.keytext, composed.sections, output=output, render_to=render_to, perform_to=perform_to)
    if output:
        write_file(output, composed.keytext)
    if render_to:
        render(composed.keytext, render_to)
    if perform_to:
        t0 = time.perf_counter()
        session.performed_by = perform(composed.keytext, perform_to, model=model, seed=seed, warn=warn)
        session.perform_seconds = time.perf_counter() - t0
    for line in [] if output else session.wrote():
        log(line)
    return session
