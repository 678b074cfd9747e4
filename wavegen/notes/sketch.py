"""Notes from a file the user gives: 88-key text (.txt) or MIDI (.mid, .midi)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from wavegen.errors import WavegenError
from wavegen.notes import text as T
from wavegen.notes.midi import MIDI_SUFFIXES, read_midi

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
