"""Faults of the data, text and render layers (issue 12): each request beyond a documented limit is refused
up front with one line, a broken dataset cache is rebuilt, and the build's workers die with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wavegen.errors import WavegenError
from wavegen.notes import limits
from wavegen.notes import text as T
from wavegen.notes.render import render_notes
from wavegen.notes.text import Note, TextFormatError


def one_line(e: pytest.ExceptionInfo, *words: str) -> None:
    message = str(e.value)
    assert "\n" not in message and all(w in message for w in words), message


# ---------------------------------------------------------------------------------------------
# an 88-key text has the limits of MIDI, checked while it is parsed


def test_a_text_longer_than_the_duration_limit_is_refused_while_parsing():
    ticks = limits.max_ticks(limits.MAX_TICK_MS)
    T.parse(f"{{tick_ms={limits.MAX_TICK_MS:g}}}\n" + " " * ticks)  # exactly at the limit: read
    with pytest.raises(TextFormatError) as e:
        T.parse(f"{{tick_ms={limits.MAX_TICK_MS:g}}}\n" + " " * (ticks + 1), "long.txt")
    one_line(e, "long.txt:2:", f"more than {ticks} ticks", "2 h")


def test_a_text_with_more_notes_than_the_limit_is_refused_while_parsing():
    with pytest.raises(TextFormatError) as e:
        T.parse("{tick_ms=1}\n" + "!  " * (limits.MAX_NOTES + 1), "many.txt")
    one_line(e, "many.txt:", f"more than {limits.MAX_NOTES} notes")


def test_a_text_file_larger_than_the_byte_limit_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # sparse: no disk or memory is used
        f.truncate(limits.MAX_FILE_BYTES + 1)
    with pytest.raises(WavegenError) as e:
        T.read_file(big)
    one_line(e, str(big), "32 MiB")


@pytest.mark.parametrize("tick_ms", ["0.5", "2000"])
def test_a_text_header_tick_outside_the_limits_is_refused(tick_ms):
    with pytest.raises(TextFormatError) as e:
        T.parse(f"{{tick_ms={tick_ms}}}\nH \n", "tick.txt")
    one_line(e, "tick.txt:1:1:", f"tick_ms={tick_ms}", "1..1000 ms")


# ---------------------------------------------------------------------------------------------
# encode and render refuse requests beyond their limits (in the library)


@pytest.mark.parametrize("tick_ms", [0.5, 2000.0, float("nan")])
def test_encoding_notes_refuses_a_tick_outside_the_limits(tick_ms):
    with pytest.raises(WavegenError) as e:
        T.from_notes([Note(60, 0.0, 0.3)], tick_ms)
    one_line(e, "tick_ms", "1..1000 ms")


def test_encoding_notes_refuses_more_ticks_than_the_duration_limit():
    most = limits.max_ticks(limits.MAX_TICK_MS)
    assert T.from_notes([Note(60, 0.0, 1.0)], limits.MAX_TICK_MS, n_ticks=most).n_ticks == most
    with pytest.raises(WavegenError) as e:
        T.from_notes([Note(60, 0.0, 1.0)], limits.MAX_TICK_MS, n_ticks=most + 1)
    one_line(e, f"{most + 1} ticks", "7200 s")


@pytest.mark.parametrize("rate", [500, 200_000, 16_000.5])
def test_rendering_refuses_a_sample_rate_outside_the_limits(rate):
    with pytest.raises(WavegenError) as e:
        render_notes([Note(60, 0.0, 0.1)], sample_rate_hz=rate)
    one_line(e, "sample rate", "1000..192000 Hz")


def test_rendering_refuses_music_longer_than_the_duration_limit(monkeypatch):
    monkeypatch.setattr(limits, "MAX_SECONDS", 1.0)  # so that the refused request stays small
    with pytest.raises(WavegenError) as e:
        render_notes([Note(60, 0.0, 0.1)], min_seconds=2.0)
    one_line(e, "the music to render", "longer than the 1 s")


# ---------------------------------------------------------------------------------------------
# the dataset build


def test_a_skipped_duplicate_piece_names_both_files(tmp_path):
    from conftest import write_notes_midi

    from wavegen.data import build

    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    a = write_notes_midi(tmp_path / "one" / "p.mid", [Note(60, 0.0, 0.3)])
    b = write_notes_midi(tmp_path / "two" / "p.mid", [Note(62, 0.0, 0.3)])
    sources = [build.Source(piece="p", path=str(p), kind="midi", style="midi", licence="") for p in (a, b)]
    res = build.build(sources, tmp_path / "ds", jobs=1)
    [skip] = res.skipped
    assert skip["source"] == str(b)
    assert str(b) in skip["reason"] and str(a) in skip["reason"] and "\n" not in skip["reason"]


def test_a_truncated_cached_npy_is_rebuilt_and_reading_it_names_the_file(tmp_path):
    from conftest import write_notes_midi

    from wavegen.data import build, dataset

    midi = write_notes_midi(tmp_path / "p.mid", [Note(60, 0.0, 0.3), Note(64, 0.3, 0.6)])
    sources = [build.Source(piece="p", path=str(midi), kind="midi", style="midi", licence="")]
    out = tmp_path / "ds"
    build.build(sources, out, jobs=1)
    ds = dataset.load(out)
    [item] = ds.items()
    npy = out / item.audio_path
    whole = npy.read_bytes()
    npy.write_bytes(whole[: len(whole) // 2])  # a crash or a full disk in the middle of the file
    with pytest.raises(WavegenError) as e:
        ds.audio(item)
    one_line(e, str(npy), "wavegen data build")

    res = build.build(sources, out, jobs=1)
    assert res.built == 1 and res.reused == 0
    assert npy.read_bytes() == whole and len(dataset.load(out).audio(item)) == item.n_samples


def test_a_file_that_fails_takes_no_validation_slot(tmp_path):
    from conftest import write_notes_midi

    from wavegen.data import build, dataset

    # with p0 among them p0 draws the only validation slot (build.assign_splits); p0 is broken
    assert build.assign_splits(["p0", "p1", "p2", "p3"])["p0"] == "valid"
    (tmp_path / "p0.mid").write_bytes(b"MThd\x00\x00")
    for i in (1, 2, 3):
        write_notes_midi(tmp_path / f"p{i}.mid", [Note(60 + i, 0.0, 0.3)])
    res = build.build(build.midi_dir_sources(tmp_path), tmp_path / "ds", jobs=1)
    assert [s["source"].endswith("p0.mid") for s in res.skipped] == [True]
    ds = dataset.load(tmp_path / "ds")
    assert {it.split for it in ds.items()} == {"train", "valid", "test"}
    for it in ds.items():  # each item's own record says the same
        assert json.loads((tmp_path / "ds" / "items" / f"{it.id}.json").read_text())["split"] == it.split


def _children(pid: int) -> list[int]:
    """The live build workers (multiprocessing's spawn_main) whose parent is `pid`, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in cmdline:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_kill_9_of_a_build_takes_its_workers_with_it(tmp_path):
    from conftest import write_notes_midi

    for i in range(4):  # long pieces: each takes its worker many seconds to render
        write_notes_midi(tmp_path / f"p{i}.mid", [Note(48 + i + j % 12, j * 0.5, j * 0.5 + 0.4) for j in range(2400)])
    script = (
        "import sys; from wavegen.data import build; "
        "build.build(build.midi_dir_sources(sys.argv[1]), sys.argv[2], jobs=2)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(tmp_path / "ds")])
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            workers = _children(proc.pid)
        assert len(workers) == 2, "the build did not start its two workers"
        time.sleep(1.0)  # let them start rendering
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 5
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if _alive(w)]
    for w in left:  # never leave them behind, even when the test fails
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed build"
