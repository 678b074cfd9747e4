"""Notes from a file the user gives: 88-key text (.txt) or MIDI (.mid, .midi); rendering or plotting one."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wavegen.errors import WavegenError
from wavegen.files import check_output
from wavegen.notes import text as T
from wavegen.notes.midi import MIDI_SUFFIXES, read_midi

if TYPE_CHECKING:
    from wavegen.notes.render import Rendered

TEXT_SUFFIXES = (".txt", ".88", ".keys")


@dataclass
class Sketch:
    """What a text or MIDI file holds, as notes in seconds and as 88-key text."""

    path: Path
    notes: list[T.Note]  # as read: MIDI notes keep their exact times
    keytext: T.KeyText  # quantized to ticks (for a text file, exactly the file)
    warnings: list[str] = field(default_factory=list)

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


def load(path: str | os.PathLike, *, tick_ms: float = T.DEFAULT_TICK_MS, fold_octaves: bool = False) -> Sketch:
    """Read a sketch. A text keeps its own tick length; MIDI is quantized with `tick_ms`."""
    p = Path(path)
    if kind_of(p) == "text":
        kt = T.read_file(p)
        return Sketch(p, kt.notes(), kt)
    read = read_midi(p, fold_octaves=fold_octaves)
    return Sketch(p, read.notes, T.from_notes(read.notes, tick_ms), read.warnings)


AUDIO_SUFFIXES = (".wav", ".flac")


def render_file(path: str | os.PathLike, output: str | os.PathLike, *, sample_rate_hz: int,
                soundfont: str | None = None, fold_octaves: bool = False) -> tuple[Sketch, Rendered]:
    """`wavegen render`: the SoundFont rendering of a text or MIDI file, written as WAV or FLAC. A text
    plays for all its ticks (its trailing rests too), MIDI until its last note-off; then the release tail."""
    from wavegen.audio import output_format, write_audio
    from wavegen.notes.render import render_notes

    output_format(output)
    check_output(output)
    sk = load(path, fold_octaves=fold_octaves)
    min_s = sk.keytext.n_ticks * sk.keytext.tick_s if sk.is_text else 0.0
    r = render_notes(sk.notes, sample_rate_hz=sample_rate_hz, soundfont=soundfont, min_seconds=min_s)
    write_audio(output, r.audio, r.sample_rate_hz)
    return sk, r


def plot_file(path: str | os.PathLike, output: str | os.PathLike, *, notes: str | None = None) -> list[str]:
    """`wavegen plot`: a piano roll of a text or MIDI file, or the spectrogram of an audio file with the
    notes of `notes` drawn over it. Returns the readers' warnings."""
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
        return sk.warnings
    audio, sr = read_audio(src)
    over = load(notes) if notes else None
    plot.plot_audio(output, audio, sr, notes=over.notes if over else None, title=src.name)
    return over.warnings if over else []
