"""Notes from a file the user gives: 88-key text (.txt) or MIDI (.mid, .midi); what `wavegen encode`,
`decode`, `render` and `plot` do with one, each returning a `Converted` whose summary() the command prints."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wavegen.errors import WavegenError
from wavegen.files import check_output
from wavegen.notes import text as T
from wavegen.notes.midi import MIDI_SUFFIXES, read_midi, write_midi

TEXT_SUFFIXES = (".txt", ".88", ".keys")


@dataclass
class Sketch:
    """What a text or MIDI file holds, as notes in seconds and as 88-key text."""

    path: Path
    notes: list[T.Note]  # as read: MIDI notes keep their exact times
    keytext: T.KeyText  # quantized to ticks (for a text file, exactly the file)
    warnings: list[str] = field(default_factory=list)
    velocities: list[int] | None = None  # MIDI: notes[i] was struck with velocities[i] (1..127); text: None

    @property
    def is_text(self) -> bool:
        return self.path.suffix.lower() in TEXT_SUFFIXES


def kind_of(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in MIDI_SUFFIXES:
        return "midi"
    raise WavegenError(
        f"{path}: unknown kind of file {suffix!r}; expected 88-key text (.txt) or MIDI (.mid, .midi)"
    )


def load(path: str | os.PathLike, *, tick_ms: float = T.DEFAULT_TICK_MS, fold_octaves: bool = False,
         sustain_pedal: bool = False) -> Sketch:
    """Read a sketch. A text keeps its own tick length; MIDI is quantized with `tick_ms`, keeps its notes'
    velocities and, with sustain_pedal, holds the notes the pedal holds (notes/midi.py)."""
    p = Path(path)
    if kind_of(p) == "text":
        kt = T.read_file(p)
        return Sketch(p, kt.notes(), kt)
    read = read_midi(p, fold_octaves=fold_octaves, sustain_pedal=sustain_pedal)
    return Sketch(p, read.notes, T.from_notes(read.notes, tick_ms), read.warnings, list(read.velocities))


AUDIO_SUFFIXES = (".wav", ".flac")


def _ignore(message: str) -> None:
    pass


@dataclass
class Converted:
    """What encode, decode, render or plot wrote (`output`; None: the text is the summary itself)."""

    output: Path | None
    line: str  # what the command prints

    def summary(self) -> str:
        return self.line


def encode(path: str | os.PathLike, output: str | os.PathLike | None = None, *, tick_ms: float = T.DEFAULT_TICK_MS,
           fold_octaves: bool = False, style: str | None = None,
           warn: Callable[[str], None] = _ignore) -> Converted:
    """`wavegen encode`: a MIDI file as 88-key text (`style` in its header), written to `output`, or
    without one the summary is the text itself. warn(message) says what the MIDI reader dropped or moved."""
    from wavegen.notes import midi

    read = midi.read_midi(path, fold_octaves=fold_octaves)
    for w in read.warnings:
        warn(w)
    kt = T.from_notes(read.notes, tick_ms, meta={"style": style} if style else {})
    if not output:
        return Converted(None, T.write(kt))
    T.write_file(output, kt)
    return Converted(Path(output), f"wrote {output}: {kt.n_ticks} ticks ({kt.n_ticks * kt.tick_s:.1f} s), "
                                   f"{len(kt.notes())} notes")


def decode(path: str | os.PathLike, output: str | os.PathLike) -> Converted:
    """`wavegen decode`: 88-key text as a MIDI file."""
    if not str(output).lower().endswith((".mid", ".midi")):
        raise WavegenError(f"{output}: the MIDI output must end in .mid or .midi")
    kt = T.read_file(path)
    write_midi(output, kt)
    return Converted(Path(output), f"wrote {output}: {len(kt.notes())} notes, {kt.duration_s:.1f} s")


def dbfs(x: float) -> str:
    return "-inf dBFS" if x <= 0 else f"{20 * math.log10(x):.1f} dBFS"


def render_file(path: str | os.PathLike, output: str | os.PathLike, *, sample_rate_hz: int = 16_000,
                soundfont: str | None = None, fold_octaves: bool = False,
                warn: Callable[[str], None] = _ignore) -> Converted:
    """`wavegen render`: the SoundFont rendering of a text or MIDI file, written as WAV or FLAC. A text
    plays for all its ticks (its trailing rests too), MIDI until its last note-off; then the release tail.
    warn(message) gives the reader's warnings and the clipped samples."""
    from wavegen.audio import output_format, write_audio
    from wavegen.notes.render import render_notes

    t0 = time.perf_counter()
    output_format(output)
    check_output(output)
    sk = load(path, fold_octaves=fold_octaves)
    min_s = sk.keytext.n_ticks * sk.keytext.tick_s if sk.is_text else 0.0
    r = render_notes(sk.notes, sample_rate_hz=sample_rate_hz, soundfont=soundfont, min_seconds=min_s)
    write_audio(output, r.audio, r.sample_rate_hz)
    for w in sk.warnings + ([f"{output}: {r.clipped} samples clipped (peak {dbfs(r.peak)})"] if r.clipped else []):
        warn(w)
    return Converted(Path(output), f"wrote {output}: {len(r.audio) / r.sample_rate_hz:.1f} s at {r.sample_rate_hz} Hz, "
                                   f"peak {dbfs(r.peak)}, {r.clipped} clipped samples, "
                                   f"{time.perf_counter() - t0:.1f} s to render")


def plot_file(path: str | os.PathLike, output: str | os.PathLike, *, notes: str | None = None,
              warn: Callable[[str], None] = _ignore) -> Converted:
    """`wavegen plot`: a piano roll of a text or MIDI file, or the spectrogram of an audio file with the
    notes of `notes` drawn over it; warn(message) gives the readers' warnings."""
    from wavegen.audio import read_audio
    from wavegen.notes import plot

    if Path(output).suffix.lower() != ".png":
        raise WavegenError(f"{output}: the picture must end in .png")
    check_output(output)
    src = Path(path)
    if src.suffix.lower() not in AUDIO_SUFFIXES:
        if notes:
            raise WavegenError(f"--notes goes with an audio file (.wav, .flac), not with {src.name}")
        sk = load(src)
        plot.plot_notes(output, sk.notes, title=src.name)
    else:
        audio, sr = read_audio(src)
        sk = load(notes) if notes else None
        plot.plot_audio(output, audio, sr, notes=sk.notes if sk else None, title=src.name)
    for w in sk.warnings if sk else []:
        warn(w)
    return Converted(Path(output), f"wrote {output}")
