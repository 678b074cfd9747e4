"""MIDI files in and out: Standard MIDI Files of keyboard music <-> notes in seconds.

Reading (`read_midi`) follows these rules, so the text encoder and the renderer, which both take
their notes from here, treat every file the same way:

- Every track and channel is merged into one keyboard; tempo changes are honoured.
- Drums (MIDI channel 10) are dropped, with a warning.
- Notes outside the 88 keys (MIDI 21..108) are dropped and counted, or, with `fold_octaves=True`,
  moved by whole octaves onto the keyboard.
- A key struck again while it still sounds (same track and channel) ends its previous note there, and
  a key struck twice at one moment is one note (each key is one voice, notes/voices.py); a note-off
  releases the key. The same key in two tracks (voices in unison) makes two notes.
- A note whose note-off comes at the same moment as its note-on is a struck key: it lasts
  `ZERO_LENGTH_NOTE_S` (50 ms).
- A note that is never released ends at the last event of the file (at least `ZERO_LENGTH_NOTE_S`).
- Only with `sustain_pedal=True` (recordings, whose MIDI is a performance): a note released while its
  channel's sustain pedal is down (CC64 >= 64, any track) sounds on until the pedal lifts, or until the
  same key (track and channel) is struck again, as MAESTRO's tools (note_seq) and pretty_midi-based code
  extend notes; a pedal still down at the end holds to the last event. Without it the pedal is ignored.
- Every note keeps the velocity it was struck with (`MidiNotes.velocities`; the loudest of a key's notes
  that merge into one).
- Limits are in seconds and notes, never in MIDI ticks (music21 writes 10,080 ticks per quarter):
  at most `MAX_SECONDS` of music, `MAX_NOTES` notes, `MAX_TRACKS` tracks, `MAX_FILE_BYTES` bytes (the
  first, second and last shared with the 88-key text, notes/limits.py).
  SMPTE time division, type-2 files, division 0 and tempo 0 are errors.

Writing (`write_midi`) puts 480 MIDI ticks in a quarter note and a tempo of ten text ticks per quarter
(120 bpm at 50 ms ticks), so every text tick is exactly 48 MIDI ticks, on one harpsichord track.
"""

from __future__ import annotations

import bisect
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import mido

from wavegen.errors import WavegenError
from wavegen.files import check_input, write_bytes_atomic
from wavegen.notes.limits import MAX_FILE_BYTES, MAX_NOTES, MAX_SECONDS
from wavegen.notes.text import HIGHEST_PITCH, LOWEST_PITCH, KeyText, Note
from wavegen.notes.voices import one_voice

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")
DRUM_CHANNEL = 9  # "channel 10" counted from 1
HARPSICHORD_PROGRAM = 6  # General MIDI program 7 counted from 1
ZERO_LENGTH_NOTE_S = 0.05
SUSTAIN_CC = 64  # the damper (sustain) pedal's controller
SUSTAIN_DOWN = 64  # a value from here up holds the dampers off
MAX_TRACKS = 128
WRITE_TICKS_PER_QUARTER = 480
WRITE_MIDI_TICKS_PER_TEXT_TICK = 48  # a quarter note = 10 text ticks
WRITE_VELOCITY = 100


class MidiError(WavegenError):
    """A MIDI file that cannot be read as keyboard music."""

    def __init__(self, source: str, message: str):
        super().__init__(f"{source}: {message}")


@dataclass
class MidiNotes:
    """The notes of a MIDI file and what reading it had to change."""

    notes: list[Note]
    end_s: float  # time of the last event in the file
    drum_notes: int = 0
    out_of_range: int = 0  # dropped (or folded, if `folded`)
    folded: bool = False
    zero_length: int = 0
    unended: int = 0
    warnings: list[str] = field(default_factory=list)
    velocities: list[int] = field(default_factory=list)  # notes[i] was struck with velocities[i] (1..127)
    sustained: int = 0  # notes lengthened by the sustain pedal (with sustain_pedal=True)


def read_midi(
    path: str | os.PathLike,
    *,
    fold_octaves: bool = False,
    max_seconds: float = MAX_SECONDS,
    max_notes: int = MAX_NOTES,
    sustain_pedal: bool = False,
) -> MidiNotes:
    """Read a Standard MIDI File into notes in seconds. Every problem is a MidiError (WavegenError)."""
    p = check_input(path)
    size = p.stat().st_size
    if size == 0:
        raise MidiError(str(p), "the file is empty")
    if size > MAX_FILE_BYTES:
        raise MidiError(str(p), f"{size / 2**20:.0f} MiB is larger than the {MAX_FILE_BYTES // 2**20} MiB wavegen reads")
    return read_midi_bytes(
        p.read_bytes(), str(p), fold_octaves=fold_octaves, max_seconds=max_seconds, max_notes=max_notes,
        sustain_pedal=sustain_pedal,
    )


def _parse_smf(data: bytes, source: str) -> mido.MidiFile:
    if not data.startswith(b"MThd"):
        raise MidiError(source, "not a MIDI file (it does not start with 'MThd')")
    try:
        return mido.MidiFile(file=io.BytesIO(data), clip=False)
    except EOFError:
        raise MidiError(source, "the MIDI file is truncated (it ends inside a chunk)") from None
    except Exception as e:  # mido raises OSError, ValueError, KeyError, IndexError on bad bytes
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MidiError(source, f"corrupt MIDI data ({detail})") from None


def read_midi_bytes(
    data: bytes,
    source: str = "<midi>",
    *,
    fold_octaves: bool = False,
    max_seconds: float = MAX_SECONDS,
    max_notes: int = MAX_NOTES,
    sustain_pedal: bool = False,
) -> MidiNotes:
    """`read_midi` on bytes in memory; `source` names them in messages."""
    if len(data) >= 14 and data.startswith(b"MThd"):
        # Check the header before mido reads every track: type, track count and division.
        fmt, ntrks, division = (int.from_bytes(data[i : i + 2], "big") for i in (8, 10, 12))
        if ntrks > MAX_TRACKS:
            raise MidiError(source, f"{ntrks} tracks; wavegen reads at most {MAX_TRACKS}")
        if division & 0x8000:
            raise MidiError(
                source, "SMPTE time division is not supported; save it with ticks per quarter note"
            )
        if division == 0:
            raise MidiError(source, "division 0 (zero ticks per quarter note) is invalid")
        if fmt == 2:
            raise MidiError(source, "MIDI type 2 (independent sequences) is not supported")
    mid = _parse_smf(data, source)
    if not mid.tracks:
        raise MidiError(source, "the MIDI file has no tracks")
    tpq = mid.ticks_per_beat

    # Merge the tracks: (absolute tick, track, index) keeps each track's order at equal ticks.
    events: list[tuple[int, int, int, mido.Message]] = []
    wanted = ("note_on", "note_off", "set_tempo", "end_of_track") + (("control_change",) if sustain_pedal else ())
    for ti, track in enumerate(mid.tracks):
        tick = 0
        for mi, msg in enumerate(track):
            tick += msg.time
            if msg.type in wanted:
                events.append((tick, ti, mi, msg))
    events.sort(key=lambda e: (e[0], e[1], e[2]))

    out = MidiNotes(notes=[], end_s=0.0, folded=fold_octaves)
    struck: dict[tuple[int, int, int], list[list[float]]] = {}  # (track, channel, pitch) -> [onset, release, velocity]
    pedal: dict[int, list[tuple[float, bool]]] = {}  # channel -> (time, down) at each change of the sustain pedal
    held: dict[tuple[int, int, int], list[list[float]]] = {}  # the notes of struck[key] not yet released
    n_struck = 0
    tempo = 500_000  # microseconds per quarter note, the MIDI default
    seconds_at, tick_at = 0.0, 0
    for tick, ti, _, msg in events:
        now = seconds_at + (tick - tick_at) * tempo / (1e6 * tpq)
        if now > max_seconds:
            raise MidiError(
                source,
                f"an event at {now:.0f} s (track {ti}) is past the {max_seconds:.0f} s wavegen reads; "
                "the file is likely corrupt (a huge delta time)",
            )
        if msg.type == "set_tempo":
            if msg.tempo <= 0:
                raise MidiError(source, f"tempo 0 at MIDI tick {tick} (track {ti}) is invalid")
            seconds_at, tick_at, tempo = now, tick, msg.tempo
            continue
        out.end_s = max(out.end_s, now)
        if msg.type == "end_of_track":
            continue
        if msg.channel == DRUM_CHANNEL:
            if msg.type == "note_on" and msg.velocity > 0:
                out.drum_notes += 1
            continue
        if msg.type == "control_change":
            if msg.control == SUSTAIN_CC:
                down = msg.value >= SUSTAIN_DOWN
                changes = pedal.setdefault(msg.channel, [])
                if (changes[-1][1] if changes else False) != down:
                    changes.append((now, down))
            continue
        key = (ti, msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            note = [now, now, msg.velocity]
            struck.setdefault(key, []).append(note)
            held.setdefault(key, []).append(note)
            n_struck += 1
            if n_struck > max_notes:
                raise MidiError(source, f"more than {max_notes} notes; wavegen reads at most {max_notes}")
        else:  # a note-off releases the key: every note of it still held ends now
            for note in held.pop(key, []):
                note[1] = now
    for notes in held.values():
        out.unended += 1
        for note in notes:
            note[1] = out.end_s
    if sustain_pedal:
        out.sustained = _hold_by_pedal(struck, pedal, out.end_s)
    raw = []  # (pitch, start, end, velocity), before the key-range rule
    for (_, _, pitch), notes in struck.items():
        loudest: dict[float, int] = {}  # a merged note keeps the loudest velocity struck at its onset
        for a, _, v in notes:
            loudest[a] = max(loudest.get(a, 0), int(v))
        raw += [(pitch, start, end, loudest[start]) for start, end in one_voice((a, b) for a, b, _ in notes)]

    kept: list[tuple[Note, int]] = []
    for pitch, start, end, velocity in raw:
        if end <= start:
            out.zero_length += 1
            end = start + ZERO_LENGTH_NOTE_S
        if not LOWEST_PITCH <= pitch <= HIGHEST_PITCH:
            out.out_of_range += 1
            if not fold_octaves:
                continue
            while pitch < LOWEST_PITCH:
                pitch += 12
            while pitch > HIGHEST_PITCH:
                pitch -= 12
        kept.append((Note(pitch, start, end), velocity))
    kept.sort(key=lambda nv: (nv[0].start, nv[0].pitch, nv[0].end))
    out.notes = [n for n, _ in kept]
    out.velocities = [v for _, v in kept]

    if out.drum_notes:
        out.warnings.append(f"{source}: {out.drum_notes} drum notes (channel 10) dropped")
    if out.out_of_range:
        how = "moved by octaves onto the keyboard" if fold_octaves else "dropped (use --fold-octaves to keep them)"
        out.warnings.append(f"{source}: {out.out_of_range} notes outside the 88 keys {how}")
    if out.zero_length:
        out.warnings.append(f"{source}: {out.zero_length} zero-length notes given {ZERO_LENGTH_NOTE_S * 1000:.0f} ms")
    if out.unended:
        out.warnings.append(f"{source}: {out.unended} notes never released end at the end of the file")
    if not out.notes:
        why = " (only drums)" if out.drum_notes else ""
        raise MidiError(source, f"no notes on the 88 keys to play{why}")
    return out


def _hold_by_pedal(struck: dict[tuple[int, int, int], list[list[float]]],
                   pedal: dict[int, list[tuple[float, bool]]], end_s: float) -> int:
    """Lengthen, in place, every note released while its channel's sustain pedal is down to the moment the
    pedal lifts (`end_s` if it never does), or to the key's next onset if that comes first. A release at
    the very moment the pedal goes down is caught by it (note_seq orders pedal events first). Returns the
    number of notes lengthened."""
    lengthened = 0
    for (_, channel, _), notes in struck.items():
        changes = pedal.get(channel)
        if not changes:
            continue
        times = [t for t, _ in changes]
        onsets = sorted(n[0] for n in notes)
        for note in notes:
            onset, release = note[0], note[1]
            i = bisect.bisect_right(times, release) - 1  # the last change at or before the release
            if i < 0 or not changes[i][1]:
                continue
            lifted = changes[i + 1][0] if i + 1 < len(changes) else end_s
            j = bisect.bisect_right(onsets, onset)
            until = min(lifted, onsets[j]) if j < len(onsets) else lifted
            if until > release:
                note[1] = until
                lengthened += 1
    return lengthened


def keytext_to_midi(kt: KeyText) -> mido.MidiFile:
    """One harpsichord track; every text tick is exactly 48 MIDI ticks (see the module docstring)."""
    tempo_us = kt.tick_ms * 1000 * WRITE_TICKS_PER_QUARTER / WRITE_MIDI_TICKS_PER_TEXT_TICK
    if not (tempo_us.is_integer() and 0 < tempo_us < 2**24):
        raise WavegenError(
            f"tick_ms={kt.tick_ms} cannot be written as a MIDI tempo; use a whole number of "
            "tenths of a millisecond up to 1677 ms"
        )
    events: list[tuple[int, int, mido.Message]] = []  # (tick, 0 = off first, message)
    for n in kt.notes():
        on = round(n.start / kt.tick_s) * WRITE_MIDI_TICKS_PER_TEXT_TICK
        off = round(n.end / kt.tick_s) * WRITE_MIDI_TICKS_PER_TEXT_TICK
        events.append((on, 1, mido.Message("note_on", note=n.pitch, velocity=WRITE_VELOCITY)))
        events.append((off, 0, mido.Message("note_off", note=n.pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="wavegen harpsichord", time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=int(tempo_us), time=0))
    track.append(mido.Message("program_change", program=HARPSICHORD_PROGRAM, time=0))
    last = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    mid = mido.MidiFile(type=1, ticks_per_beat=WRITE_TICKS_PER_QUARTER)
    mid.tracks.append(track)
    return mid


def midi_bytes(mid: mido.MidiFile) -> bytes:
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def write_midi(path: str | os.PathLike, kt: KeyText) -> None:
    write_bytes_atomic(Path(path), midi_bytes(keytext_to_midi(kt)))


def transpose_notes(notes: list[Note], semitones: int) -> list[Note] | None:
    """Shift every note; None if any note would leave the 88 keys (that transposition is skipped)."""
    moved = [Note(n.pitch + semitones, n.start, n.end) for n in notes]
    if any(not LOWEST_PITCH <= n.pitch <= HIGHEST_PITCH for n in moved):
        return None
    return moved
