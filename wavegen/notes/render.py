"""Notes -> harpsichord audio, through the FluidSynth synthesizer and a General MIDI SoundFont.

A SoundFont's harpsichord is a *timbre*, named (`TIMBRES`: fluidr3, musescore, musescore-coupled,
timgm6mb, the harpsichords that install with Debian and pretty_midi) or given by path (`resolve_timbre`;
FILE#N for the harpsichord of bank N); a dataset may be rendered with several, and a model trained on
them plays whichever is asked for.

Every note is played by General MIDI program 6 (Harpsichord) at one velocity, with reverb and chorus
off, by a fresh synthesizer per call (a reused one makes the output depend on what it played before).
FluidSynth renders in float at 44.1 kHz; soxr resamples to the target rate (rendering at 16 kHz
directly aliases badly on high notes). A fixed gain is applied and samples beyond full scale are
clipped and counted. The audio ends `RELEASE_TAIL_S` after the last note-off. Same input, same samples.

A harpsichord has one string per key, so the renderer plays each key as one voice: a key struck while
it still sounds (two voices in unison) is released and struck again, and sounds until the later end.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from wavegen.audio import DEFAULT_SAMPLE_RATE_HZ, resample
from wavegen.errors import WavegenError
from wavegen.notes import limits
from wavegen.notes.midi import HARPSICHORD_PROGRAM
from wavegen.notes.text import Note
from wavegen.notes.voices import one_voice

SYNTH_RATE_HZ = 44_100
RELEASE_TAIL_S = 0.5
RENDER_GAIN = 0.8  # FluidSynth's synth.gain: 4-voice chorales peak near -4 dBFS with FluidR3_GM
VELOCITY = 100
DEBIAN_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
MUSESCORE_SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")  # Debian musescore-general-soundfont
RENDER_VERSION = 1  # bump when the rendered samples change for the same input (invalidates caches)

_INSTALL_HINT = (
    "the FluidSynth library is not installed: on Debian/Ubuntu `sudo apt-get install libfluidsynth3`, "
    "on macOS `brew install fluid-synth`, with conda `conda install -c conda-forge fluidsynth`"
)


@dataclass(frozen=True)
class Rendered:
    audio: np.ndarray  # (n_samples,) float32 in [-1, 1], mono
    sample_rate_hz: int
    clipped: int  # samples that exceeded full scale and were clipped
    peak: float  # peak level before clipping


def default_soundfont() -> Path:
    """FluidR3_GM.sf2 when installed (Debian fluid-soundfont-gm), else the TimGM6mb.sf2 of pretty_midi."""
    return DEBIAN_SOUNDFONT if DEBIAN_SOUNDFONT.is_file() else _timgm6mb()


def _timgm6mb() -> Path:
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


# The named harpsichords: the SoundFonts Debian installs (fluid-soundfont-gm, musescore-general-soundfont)
# and the one inside pretty_midi's wheel. A name is what a dataset's items, a model card and
# `--timbre` call the instrument. "FILE#N" is the harpsichord of bank N (GS's variations) instead of bank
# 0's. MuseScore General's bank-0 harpsichord is FluidR3's samples 6.9 dB softer (docs/evaluation/timbre.md:
# one instrument at two levels); its Coupled Harpsichord (bank 8) is an instrument of its own.
TIMBRES: dict[str, Callable[[], Path]] = {
    "fluidr3": lambda: DEBIAN_SOUNDFONT,
    "musescore": lambda: MUSESCORE_SOUNDFONT,
    "musescore-coupled": lambda: Path(f"{MUSESCORE_SOUNDFONT}#8"),
    "timgm6mb": _timgm6mb,
}
TIMBRE_LICENCES = {  # as their distributors state them (Debian's copyright files; MuseScore for TimGM6mb)
    "fluidr3": "FluidR3_GM.sf2, Frank Wen, MIT",
    "musescore": "MuseScore_General.sf3, S. Christian Collins, MIT (parts public domain or CC0)",
    "musescore-coupled": "MuseScore_General.sf3 (bank 8, Coupled Harpsichord), S. Christian Collins, MIT",
    "timgm6mb": "TimGM6mb.sf2, Tim Brechbill, GPL-2.0 (inside pretty_midi's wheel)",
}
_TIMBRE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def split_bank(soundfont: str | os.PathLike) -> tuple[Path, int]:
    """(file, bank) of a SoundFont spec: "FILE#N" is bank N of FILE (unless a file has that very name),
    anything else bank 0 of itself."""
    text = str(soundfont)
    file, hash_, bank = text.rpartition("#")
    if hash_ and bank.isdigit() and not Path(text).is_file():
        return Path(file), int(bank)
    return Path(text), 0


def resolve_soundfont(soundfont: str | os.PathLike | None) -> Path:
    """The SoundFont spec `soundfont` (a file, or FILE#BANK) once its file is found; None: the default."""
    path = Path(soundfont) if soundfont else default_soundfont()
    if not split_bank(path)[0].is_file():
        raise WavegenError(f"{path}: SoundFont not found; give an .sf2 or .sf3 file with --soundfont")
    return path


def timbre_name(path: str | os.PathLike) -> str:
    """The timbre a SoundFont file is called by: the name of `TIMBRES` it is, else its file's stem in
    lower case with every run of other characters made one '-' ("My Harpsichord.sf2" -> "my-harpsichord"),
    and "-bankN" for FILE#N."""
    def key(spec: str | os.PathLike) -> tuple[Path, int]:
        file, bank = split_bank(spec)
        return file.resolve(), bank

    wanted = key(path)
    for name, where in TIMBRES.items():
        if key(where()) == wanted:
            return name
    file, bank = split_bank(path)
    stem = re.sub(r"[^a-z0-9_]+", "-", file.stem.lower()).strip("-") or "soundfont"
    return f"{stem}-bank{bank}" if bank else stem


def resolve_timbre(spec: str | os.PathLike | None) -> tuple[str, Path]:
    """(name, SoundFont file) of `--soundfont SPEC`: a name of `TIMBRES` (fluidr3, musescore,
    musescore-coupled, timgm6mb), a file (named by `timbre_name`; FILE#N: its bank N), or NAME=FILE; None is the default SoundFont (`default_soundfont`)."""
    if spec is None or str(spec) == "":
        path = default_soundfont()
        return timbre_name(path), path
    spec = str(spec)
    if spec in TIMBRES:
        path = TIMBRES[spec]()
        if not split_bank(path)[0].is_file():
            hint = {"fluidr3": "fluid-soundfont-gm"}.get(spec, "musescore-general-soundfont" if "musescore" in spec else None)
            raise WavegenError(f"--soundfont {spec}: {path} is not installed"
                               + (f" (Debian: `sudo apt-get install {hint}`)" if hint else ""))
        return spec, path
    name, eq, file = spec.partition("=")
    if eq and _TIMBRE_NAME.fullmatch(name) and not Path(spec).is_file():
        return name, resolve_soundfont(file)
    path = Path(spec)
    if not split_bank(path)[0].is_file():
        raise WavegenError(f"--soundfont {spec}: neither a timbre ({', '.join(TIMBRES)}) nor a SoundFont file "
                           "(.sf2, .sf3); give one of those, or NAME=FILE")
    return timbre_name(path), path


@lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def soundfont_digest(path: Path) -> str:
    """sha256 of the SoundFont file (cached per path, size and mtime), and of its bank when not 0: part of
    every audio cache key."""
    file, bank = split_bank(path)
    st = file.stat()
    digest = _file_digest(str(file.resolve()), st.st_size, st.st_mtime_ns)
    return hashlib.sha256(f"{digest}#{bank}".encode()).hexdigest() if bank else digest


def _fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError):
        raise WavegenError(_INSTALL_HINT) from None
    write_float = fluidsynth._fl.fluid_synth_write_float
    write_float.restype = ctypes.c_int
    write_float.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p, ctypes.c_int, ctypes.c_int] * 2
    return fluidsynth, write_float


def one_voice_per_key(notes: Iterable[Note]) -> list[Note]:
    """Resolve overlapping notes of the same key (notes/voices.py, holding): the earlier one is cut at the
    later onset and the later one lasts until the later of the two ends. Notes that start together merge."""
    by_pitch: dict[int, list[tuple[float, float]]] = {}
    for n in notes:
        by_pitch.setdefault(n.pitch, []).append((n.start, n.end))
    out = [Note(p, s, e) for p, spans in by_pitch.items() for s, e in one_voice(spans, hold=True)]
    out.sort(key=lambda n: (n.start, n.pitch))
    return out


def render_notes(
    notes: Iterable[Note],
    *,
    sample_rate_hz: int = DEFAULT_SAMPLE_RATE_HZ,
    soundfont: str | os.PathLike | None = None,
    min_seconds: float = 0.0,
    tail_s: float = RELEASE_TAIL_S,
    gain: float = RENDER_GAIN,
) -> Rendered:
    """Render notes (seconds) to mono harpsichord audio at `sample_rate_hz`.

    The audio lasts until max(last note-off, min_seconds) + tail_s, rounded to whole samples. The rate and
    the length are checked against the limits (notes/limits.py) before anything is allocated.
    """
    sample_rate_hz = limits.check_sample_rate(sample_rate_hz)
    notes = one_voice_per_key(notes)
    sf2, bank = split_bank(resolve_soundfont(soundfont))
    fluidsynth, write_float = _fluidsynth()
    limits.check_seconds(max([n.end for n in notes] + [min_seconds]), "the music to render")
    end_s = max([n.end for n in notes] + [min_seconds]) + tail_s
    n_out = int(round(end_s * sample_rate_hz))
    n_synth = int(np.ceil(end_s * SYNTH_RATE_HZ)) + 64  # a little beyond the end for the resampler

    events: list[tuple[int, int, int]] = []  # (sample at 44.1 kHz, 0 = note-off first, pitch)
    for n in notes:
        events.append((int(round(n.start * SYNTH_RATE_HZ)), 1, n.pitch))
        events.append((int(round(n.end * SYNTH_RATE_HZ)), 0, n.pitch))
    events.sort()

    # dynamic sample loading reads only the harpsichord's samples (the same output; MuseScore_General.sf3
    # decodes in 0.1 s instead of 15 s, since an .sf3's samples are compressed)
    settings = {"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1,
                "synth.dynamic-sample-loading": 1}
    synth = fluidsynth.Synth(gain=float(gain), samplerate=float(SYNTH_RATE_HZ), **settings)
    try:
        sfid = synth.sfload(str(sf2))
        if sfid < 0:
            raise WavegenError(f"{sf2}: FluidSynth cannot load this SoundFont")
        if synth.program_select(0, sfid, bank, HARPSICHORD_PROGRAM) != 0:
            raise WavegenError(f"{sf2}: this SoundFont has no harpsichord (program 6) in bank {bank}")
        left = np.zeros(n_synth, dtype=np.float32)
        right = np.zeros(n_synth, dtype=np.float32)
        pos = 0

        def run_until(stop: int) -> None:
            nonlocal pos
            while pos < stop:
                n = min(stop - pos, 65_536)
                lp = left[pos:].ctypes.data
                rp = right[pos:].ctypes.data
                if write_float(synth.synth, n, lp, 0, 1, rp, 0, 1) != 0:
                    raise RuntimeError("fluid_synth_write_float failed")
                pos += n

        for at, kind, pitch in events:
            run_until(min(at, n_synth))
            if kind:
                synth.noteon(0, pitch, VELOCITY)
            else:
                synth.noteoff(0, pitch)
        run_until(n_synth)
    finally:
        synth.delete()

    mono = 0.5 * (left + right)
    audio = resample(mono, SYNTH_RATE_HZ, sample_rate_hz)
    audio = np.pad(audio, (0, max(0, n_out - len(audio))))[:n_out]
    peak = float(np.max(np.abs(audio), initial=0.0))
    clipped = int(np.count_nonzero(np.abs(audio) > 1.0))
    return Rendered(np.clip(audio, -1.0, 1.0).astype(np.float32), sample_rate_hz, clipped, peak)
