"""MIDI in and out: the reading rules, the round trip through text, and broken files."""

from __future__ import annotations

import mido
import pytest
from conftest import END_OF_TRACK, note_track, smf, vlq, write_notes_midi
from hypothesis import given, settings
from hypothesis import strategies as st

from wavegen.notes import text as T
from wavegen.notes.midi import (
    ZERO_LENGTH_NOTE_S,
    MidiError,
    keytext_to_midi,
    read_midi,
    read_midi_bytes,
    write_midi,
)
from wavegen.notes.text import Note


def _approx(notes):
    return [(n.pitch, round(n.start, 6), round(n.end, 6)) for n in notes]


def test_reads_notes_in_seconds(chord_midi):
    read = read_midi(chord_midi)
    assert _approx(read.notes)[:3] == [(60, 0.0, 0.5), (64, 0.5, 1.0), (67, 1.0, 1.5)]
    assert len(read.notes) == 6 and read.warnings == []


def test_tempo_changes_are_honoured():
    # 480 tpq; quarter at 120 bpm (0.5 s), then the tempo halves (1 s per quarter)
    track = (b"\x00\xff\x51\x03" + (500_000).to_bytes(3, "big")
             + b"\x00\x90\x3c\x50" + vlq(480) + b"\x80\x3c\x00"
             + b"\x00\xff\x51\x03" + (1_000_000).to_bytes(3, "big")
             + b"\x00\x90\x3e\x50" + vlq(480) + b"\x80\x3e\x00" + END_OF_TRACK)
    notes = read_midi_bytes(smf([track])).notes
    assert _approx(notes) == [(60, 0.0, 0.5), (62, 0.5, 1.5)]


def test_tracks_merge_and_unison_voices_stay_two_notes():
    data = smf([note_track(60, 0, 480), note_track(60, 0, 960), note_track(64, 480, 480, channel=1)])
    notes = read_midi_bytes(data).notes
    assert _approx(notes) == [(60, 0.0, 0.5), (60, 0.0, 1.0), (64, 0.5, 1.0)]


def test_a_key_struck_again_in_one_channel_ends_its_note_there():
    on, off = b"\x90\x3c\x50", b"\x80\x3c\x00"  # middle C; 480 MIDI ticks are 0.5 s
    restruck = b"\x00" + on + vlq(480) + on + vlq(480) + off + vlq(480) + off + END_OF_TRACK
    read = read_midi_bytes(smf([restruck]))
    assert _approx(read.notes) == [(60, 0.0, 0.5), (60, 0.5, 1.0)]  # the second note-off finds nothing held
    twice_at_once = b"\x00" + on + b"\x00" + on + vlq(480) + off + b"\x00" + off + END_OF_TRACK
    read = read_midi_bytes(smf([twice_at_once]))
    assert _approx(read.notes) == [(60, 0.0, 0.5)] and read.zero_length == 0  # one string: one note
    never_released = b"\x00" + on + vlq(480) + on + vlq(480) + b"\xff\x2f\x00"
    read = read_midi_bytes(smf([never_released]))
    assert _approx(read.notes) == [(60, 0.0, 0.5), (60, 0.5, 1.0)] and read.unended == 1


def test_drums_are_dropped_with_a_warning_and_drum_only_is_an_error():
    read = read_midi_bytes(smf([note_track(60), note_track(38, channel=9)]), "x.mid")
    assert [n.pitch for n in read.notes] == [60] and read.drum_notes == 1
    assert any("drum" in w for w in read.warnings)
    with pytest.raises(MidiError, match="x.mid: no notes .*only drums"):
        read_midi_bytes(smf([note_track(38, channel=9)]), "x.mid")


def test_notes_outside_the_keyboard_are_dropped_or_folded():
    data = smf([note_track(12), note_track(60), note_track(120)])
    dropped = read_midi_bytes(data)
    assert [n.pitch for n in dropped.notes] == [60] and dropped.out_of_range == 2
    folded = read_midi_bytes(data, fold_octaves=True)
    assert sorted(n.pitch for n in folded.notes) == [24, 60, 108]


def test_zero_length_and_never_ended_notes_follow_the_documented_rules():
    zero = b"\x00\x90\x3c\x50\x00\x80\x3c\x00" + END_OF_TRACK
    assert _approx(read_midi_bytes(smf([zero])).notes) == [(60, 0.0, ZERO_LENGTH_NOTE_S)]
    unended = b"\x00\x90\x3c\x50" + vlq(960) + b"\x90\x40\x50" + vlq(960) + b"\xff\x2f\x00"
    read = read_midi_bytes(smf([unended]))
    assert _approx(read.notes) == [(60, 0.0, 2.0), (64, 1.0, 2.0)] and read.unended == 2


def test_music21_resolution_and_long_files_are_not_called_corrupt(tmp_path):
    # 10,080 ticks per quarter and over 10 million ticks in all: pretty_midi would refuse this file
    notes = [Note(60 + i % 12, i * 0.5, i * 0.5 + 0.4) for i in range(1100)]
    path = write_notes_midi(tmp_path / "long.mid", notes, tpq=10_080)
    read = read_midi(path)
    assert len(read.notes) == 1100 and read.notes[-1].end == pytest.approx(549.9, abs=1e-3)


def test_written_midi_puts_every_tick_on_whole_midi_ticks(tmp_path):
    kt = T.parse("{tick_ms=50 ticks=5}\nHL HL  H H \n")
    write_midi(tmp_path / "o.mid", kt)
    mid = mido.MidiFile(tmp_path / "o.mid")
    tick = 0
    for msg in mid.tracks[0]:
        tick += msg.time
        assert tick % 48 == 0
        if msg.type == "program_change":
            assert msg.program == 6
    assert T.from_notes(read_midi(tmp_path / "o.mid").notes, 50, n_ticks=5).roll.tolist() == kt.roll.tolist()


def test_tempo_for_unusual_tick_lengths():
    assert keytext_to_midi(T.parse("{tick_ms=12.5}\nH \n")).tracks[0][1].tempo == 125_000
    with pytest.raises(MidiError.__mro__[1], match="tick_ms"):
        keytext_to_midi(T.parse("{tick_ms=1.00001}\nH \n"))


@given(
    st.lists(st.tuples(st.integers(21, 108), st.integers(0, 400), st.integers(1, 60)), min_size=1, max_size=40),
    st.sampled_from([(480, 500_000), (10_080, 500_000), (96, 731_000), (384, 1_200_000)]),
)
@settings(max_examples=60, deadline=None)
def test_midi_text_midi_text_is_stable(tmp_path_factory, raw, timing):
    tpq, tempo = timing
    d = tmp_path_factory.mktemp("rt")
    notes = [Note(p, s * 0.013, s * 0.013 + n * 0.021) for p, s, n in raw]
    first = T.write(T.from_notes(read_midi(write_notes_midi(d / "in.mid", notes, tpq=tpq, tempo=tempo)).notes))
    write_midi(d / "back.mid", T.parse(first))
    second = T.write(T.from_notes(read_midi(d / "back.mid").notes))
    assert second == first


# --------------------------------------------------------------------------------------------
# broken files: one clear MidiError each, never another exception


def _huge_delta() -> bytes:
    return smf([note_track(60) + b"", vlq(0x0FFFFFFF) + b"\x90\x3c\x50" + vlq(1) + b"\x80\x3c\x00" + END_OF_TRACK])


BROKEN = {
    "empty": (b"", "empty"),
    "not midi": (b"RIFF....WAVEfmt ", "not a MIDI file"),
    "truncated": (smf([note_track(60)])[:-6], "truncated"),
    "huge delta": (_huge_delta(), "huge delta"),
    "tempo 0": (smf([b"\x00\xff\x51\x03\x00\x00\x00" + note_track(60)]), "tempo 0"),
    "division 0": (smf([note_track(60)], division=0), "division 0"),
    "smpte": (smf([note_track(60)], division=0xE728), "SMPTE"),
    "too many tracks": (smf([note_track(60)] * 129), "129 tracks"),
    "type 2": (smf([note_track(60)], fmt=2), "type 2"),
    "garbage track": (smf([b"\x00\xf4\x01\x02\x03"]), "corrupt"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_raise_one_line_midi_errors(tmp_path, name):
    data, words = BROKEN[name]
    path = tmp_path / "bad.mid"
    path.write_bytes(data)
    with pytest.raises(MidiError) as e:
        read_midi(path)
    assert str(e.value).startswith(f"{path}: ") and words in str(e.value) and "\n" not in str(e.value)


def test_thousands_of_notes_beyond_the_cap(tmp_path):
    notes = [Note(60 + i % 20, i * 0.01, i * 0.01 + 0.005) for i in range(3000)]
    path = write_notes_midi(tmp_path / "many.mid", notes)
    assert len(read_midi(path).notes) == 3000
    with pytest.raises(MidiError, match="more than 2000 notes"):
        read_midi(path, max_notes=2000)
