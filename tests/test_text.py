"""The 88-key text format, version 1: vectors, round trips (hypothesis) and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wavegen.errors import WavegenError
from wavegen.notes import text as T
from wavegen.notes.text import Note, TextFormatError


def test_alphabet_ends_and_vector_from_the_original_experiment():
    assert T.KEY_CHARS[0] == "!" and T.KEY_CHARS[-1] == "x" and len(T.KEY_CHARS) == 88
    assert " " not in T.KEY_CHARS and all(c.isprintable() for c in T.KEY_CHARS)
    notes = T.parse("Yaeh ").notes()
    assert [n.pitch for n in notes] == [77, 85, 89, 92]  # F5 C#6 F6 G#6
    assert all(n.start == 0.0 and n.end == pytest.approx(0.1) for n in notes)  # one tick + the gap


def test_state_roll_notes_and_the_one_tick_release_gap():
    # 'H' is MIDI 60: held for 3 ticks, a free tick, struck again for 1 tick: two notes
    notes = [(n.pitch, round(n.start, 9), round(n.end, 9)) for n in T.parse("H H H  H ").notes()]
    assert notes == [(60, 0.0, 0.2), (60, 0.2, 0.3)]
    # a note from a*tick to b*tick becomes the run [a, max(a+1, b-1))
    roll = T.notes_to_roll([Note(60, 0.0, 0.5), Note(60, 0.5, 0.55)], 50)
    assert roll[:, 60 - 21].tolist() == [True] * 9 + [False, True]


def test_restrike_before_a_free_tick_cuts_or_merges():
    # second onset 5 ticks later while the first note is still held: cut, one free tick between
    runs = T.note_runs([Note(60, 0.0, 1.0), Note(60, 0.25, 0.5)], 50)[60 - 21]
    assert runs == [(0, 4), (5, 9)]
    # onsets one tick apart cannot both be notes: they merge
    runs = T.note_runs([Note(60, 0.0, 0.1), Note(60, 0.05, 0.3)], 50)[60 - 21]
    assert runs == [(0, 5)]


def test_each_key_is_one_voice():
    from wavegen.notes.voices import one_voice

    # in seconds: struck again at 0.5 while held to 1.0 -> cut there; the later note keeps its own end or,
    # holding, the later end; struck together -> one note to the later end; touching notes stay two
    assert one_voice([(0.5, 0.7), (0.0, 1.0)]) == [(0.0, 0.5), (0.5, 0.7)]
    assert one_voice([(0.0, 1.0), (0.5, 0.7)], hold=True) == [(0.0, 0.5), (0.5, 1.0)]
    assert one_voice([(0.0, 0.5), (0.0, 0.8)]) == [(0.0, 0.8)] == one_voice([(0.0, 0.8), (0.0, 0.5)], hold=True)
    assert one_voice([(0.0, 0.5), (0.5, 0.8)]) == [(0.0, 0.5), (0.5, 0.8)]
    # in ticks with a free tick between: touching runs are cut one tick early; a tick apart they merge
    assert one_voice([(0, 4), (4, 6)], gap=1) == [(0, 3), (4, 6)]
    assert one_voice([(0, 4), (1, 6)], gap=1) == [(0, 6)]
    assert one_voice([(0, 4), (5, 6)], gap=1) == [(0, 4), (5, 6)]


def test_writer_header_and_line_breaks():
    roll = np.zeros((120, 88), dtype=bool)
    roll[3, [0, 87]] = True
    out = T.write(T.KeyText(roll, 50, {"style": "bach"}))
    lines = out.split("\n")
    assert lines[0] == "{tick_ms=50 ticks=120 style=bach}"
    assert [ln.count(" ") for ln in lines[1:-1]] == [50, 50, 20] and lines[-1] == ""
    assert "!x " in lines[1]
    assert T.parse(out) == T.KeyText(roll, 50, {"style": "bach"})


def test_unknown_header_keys_are_kept_and_tick_ms_is_read():
    kt = T.parse("{tick_ms=25 ticks=2 composer=me mood=bright}\nab  \n")
    assert kt.tick_ms == 25 and dict(kt.meta) == {"composer": "me", "mood": "bright"}
    assert kt.notes()[0].end == pytest.approx(0.05)
    assert T.write(kt).startswith("{tick_ms=25 ticks=2 composer=me mood=bright}\n")


def test_crlf_newlines_are_layout():
    lf = "{tick_ms=50 ticks=3}\nab \n  \n"
    assert T.parse(lf.replace("\n", "\r\n")) == T.parse(lf)
    assert T.parse("ab \n \n ") == T.parse("ab   ")


@pytest.mark.parametrize(
    "text, line, col, words",
    [
        ("ab", 1, 3, "final space"),
        ("ba ", 1, 2, "out of order"),
        ("aa ", 1, 2, "repeated"),
        ("a\tb ", 1, 2, "tab"),
        ("\ufeffab ", 1, 1, "byte-order mark"),
        ("ab \nc~ ", 2, 2, "'~'"),
        ("{tick_ms=50}\nab \nba ", 3, 2, "out of order"),
        ("ab\n", 1, 3, "line ends inside a tick"),
        ("a b \r c ", 1, 5, "carriage return"),
        ("ab é ", 1, 4, "'é'"),
        ("{ticks=3}\nab \n", 1, 1, "strips trailing spaces"),
        ("{ticks=x}\nab \n", 1, 1, "whole number"),
        ("{tick_ms=0}\nab \n", 1, 1, "positive"),
        ("{tick_ms=50\nab \n", 1, 12, "not closed"),
        ("{tick ms}\nab \n", 1, 2, "key=value"),
        ("ab {x=1}\n", 1, 4, "header must be the first line"),
    ],
)
def test_errors_name_line_and_column(text, line, col, words):
    with pytest.raises(TextFormatError) as e:
        T.parse(text, "sketch.txt")
    assert (e.value.line, e.value.column) == (line, col)
    assert str(e.value).startswith(f"sketch.txt:{line}:{col}: ") and words in str(e.value)
    assert "\n" not in str(e.value)


def test_lost_ticks_are_reported_not_silently_accepted():
    roll = np.zeros((100, 88), dtype=bool)
    roll[99, 40] = True  # ticks 0..98 are rests: line 2 is all spaces
    good = T.write(T.KeyText(roll))
    stripped = "\n".join(ln.rstrip(" ") for ln in good.split("\n"))
    assert T.parse(good).n_ticks == 100
    with pytest.raises(TextFormatError, match="strip"):
        T.parse(stripped)
    roll[0, 40] = True  # now line 2 starts with a key: stripping also cuts a tick's space
    stripped = "\n".join(ln.rstrip(" ") for ln in T.write(T.KeyText(roll)).split("\n"))
    with pytest.raises(TextFormatError, match="strip"):
        T.parse(stripped)


# --------------------------------------------------------------------------------------------
# properties


@st.composite
def rolls(draw, max_ticks: int = 80) -> np.ndarray:
    n = draw(st.integers(0, max_ticks))
    keys = st.sets(st.integers(0, 87), max_size=6)
    ticks = draw(st.lists(keys, min_size=n, max_size=n))
    roll = np.zeros((n, 88), dtype=bool)
    for t, ks in enumerate(ticks):
        roll[t, sorted(ks)] = True
    return roll


@given(rolls(), st.sampled_from([50, 25, 12.5, 100]))
@settings(max_examples=200, deadline=None)
def test_text_notes_text_is_the_identity_on_canonical_text(roll, tick_ms):
    canonical = T.write(T.KeyText(roll, tick_ms, {"style": "x"}))
    kt = T.parse(canonical)
    again = T.from_notes(kt.notes(), tick_ms, meta=kt.meta, n_ticks=kt.n_ticks)
    assert T.write(again) == canonical
    assert T.parse(canonical.replace("\n", "\r\n")) == kt


@given(st.lists(st.tuples(st.integers(21, 108), st.floats(0, 10), st.floats(0.001, 3)), max_size=40))
@settings(max_examples=200, deadline=None)
def test_notes_encode_to_a_roll_whose_decoding_encodes_to_itself(raw):
    notes = [Note(p, s, s + d) for p, s, d in raw]
    roll = T.notes_to_roll(notes, 50)
    assert np.array_equal(T.notes_to_roll(T.roll_to_notes(roll, 50), 50), roll)
    # every note sounds: each onset tick of the input has its key on
    for n in notes:
        assert roll[int(np.floor(n.start / 0.05 + 0.5)), n.pitch - 21]


_NOISE = st.text(alphabet=st.sampled_from(list(" \n\r\t{}=!x~y#abcXY\ufeff\x00é") + list("ticks_ms0123")), max_size=60)


@given(_NOISE)
@settings(max_examples=500, deadline=None)
def test_anything_invalid_raises_the_formats_own_error(s):
    try:
        kt = T.parse(s)
    except TextFormatError as e:
        assert "\n" not in str(e) and e.line >= 1 and e.column >= 1
    else:  # every tick ends with one space, every key character after the header sounds one key in one tick
        body = s.partition("\n")[2] if s.startswith("{") else s
        assert kt.n_ticks == body.count(" ") and int(kt.roll.sum()) == sum(c in T.KEY_CHARS for c in body)


def test_text_format_error_is_a_wavegen_error(tmp_path):
    p = tmp_path / "s.txt"
    p.write_bytes(b"ab \xff ")
    with pytest.raises(WavegenError, match="s.txt:1:4: .*not UTF-8"):
        T.read_file(p)
    p.write_bytes(b"")
    with pytest.raises(WavegenError, match="empty"):
        T.read_file(p)
    with pytest.raises(WavegenError, match="no such file"):
        T.read_file(tmp_path / "missing.txt")


def _outcome(text: str):
    try:
        kt = T.parse(text)
    except TextFormatError as e:
        return "error", str(e)
    return "roll", kt.roll.tobytes(), kt.roll.shape, kt.tick_ms, dict(kt.meta)


_PARTS = list(T.KEY_CHARS[:6] + T.KEY_CHARS[-3:]) + [" ", " ", " ", "\n", "\r\n", "\r", "\t", "é", "{"]


@settings(max_examples=400, deadline=None)
@given(st.booleans(), st.lists(st.sampled_from(_PARTS), max_size=60))
def test_the_vectorized_reader_reads_as_the_character_loop(header, parts):
    """parse's numpy path (`_fast_roll`) gives the roll the character loop gives, and leaves every text
    the loop rejects to the loop (the same error)."""
    text = ("{tick_ms=25 ticks=%d}\n" % "".join(parts).count(" ") if header else "") + "".join(parts)
    fast = _outcome(text)
    original = T._fast_roll
    T._fast_roll = lambda *a: None
    try:
        slow = _outcome(text)
    finally:
        T._fast_roll = original
    assert fast == slow


def test_the_vectorized_reader_reads_a_real_text():
    rng = np.random.default_rng(0)
    roll = rng.random((500, 88)) < 0.05
    text = T.write(T.KeyText(roll=roll, tick_ms=50))
    assert T._fast_roll(text, text.index("\n") + 1, 10**6) is not None  # the fast path is taken
    np.testing.assert_array_equal(T.parse(text).roll, roll)
