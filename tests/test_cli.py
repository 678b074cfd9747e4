"""The command line, in-process: every command, and bad input as one line with exit status 2."""

from __future__ import annotations

import mido
import numpy as np
import pytest
import soundfile as sf
from conftest import write_notes_midi

from wavegen.cli import main
from wavegen.notes import text as T
from wavegen.notes.text import Note

PNG = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wavegen") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], err


@pytest.mark.parametrize("command", [[], ["encode"], ["decode"], ["render"], ["plot"], ["data"], ["train"], ["generate"],
                                     ["evaluate"], ["train-composer"], ["compose"], ["evaluate-composer"],
                                     ["data", "build"], ["data", "info"], ["demo"]])
def test_help_everywhere(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and "usage: wavegen" in out


def test_every_option_reaches_its_library_function():
    """A command passes its options by name: one its function does not take would be dropped unsaid."""
    import inspect
    from pkgutil import resolve_name

    from wavegen.cli.common import COMMANDS, Parser, add_options

    for name, _, options, _, call, _ in COMMANDS:
        p = Parser()
        add_options(p, options)
        dests = {a.dest for a in p._actions} - {"help"}
        takes = set(inspect.signature(resolve_name(call)).parameters)
        if name in ("train", "train-composer"):  # read by common.train, which loads the config
            takes = {"config", "set", "data", "out", "show_config"}
        assert dests <= takes, (name, dests - takes)


def test_help_loads_neither_torch_nor_numpy():
    import subprocess
    import sys

    code = ("import sys; from wavegen.cli import main\nfor c in (['--help'], ['generate', '--help']): main(c)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.endswith("[]\n")


def test_usage_errors_are_one_line(capsys):
    code, _, err = run(capsys, "render", "x.txt")
    assert code == 2
    one_error_line(err, "-o/--output")
    code, _, err = run(capsys, "data", "build", "--corpus", "bach", "--midi-dir", "x", "--out", "y")
    assert code == 2


def test_encode_decode_render_plot(capsys, tmp_path, chord_midi):
    code, out, _ = run(capsys, "encode", str(chord_midi))
    assert code == 0 and out.startswith("{tick_ms=50 ticks=") and T.parse(out).notes()
    txt = tmp_path / "c.txt"
    assert run(capsys, "encode", str(chord_midi), "-o", str(txt), "--style", "test")[0] == 0
    assert T.read_file(txt).meta["style"] == "test"
    mid = tmp_path / "c.mid"
    assert run(capsys, "decode", str(txt), "-o", str(mid))[0] == 0
    assert mido.MidiFile(mid).tracks[0]
    wav = tmp_path / "c.wav"
    code, out, _ = run(capsys, "render", str(txt), "-o", str(wav))
    assert code == 0 and "0 clipped samples" in out
    audio, sr = sf.read(wav)
    assert sr == 16_000 and len(audio) == round((2.0 + 0.5) * sr)  # last note-off + release tail
    flac = tmp_path / "m.flac"
    assert run(capsys, "render", str(chord_midi), "-o", str(flac), "--sample-rate", "8000")[0] == 0
    assert sf.info(flac).samplerate == 8000
    for src, extra in ((txt, []), (chord_midi, []), (wav, ["--notes", str(txt)]), (wav, [])):
        png = tmp_path / f"{src.name}{len(extra)}.png"
        assert run(capsys, "plot", str(src), "-o", str(png), *extra)[0] == 0
        assert png.read_bytes().startswith(PNG)


BAD_INPUTS = {
    "missing file": (["render", "{d}/nothere.mid", "-o", "{d}/o.wav"], "no such file"),
    "empty text": (["render", "{d}/empty.txt", "-o", "{d}/o.wav"], "empty"),
    "not midi": (["encode", "{d}/fake.mid", "-o", "{d}/o.txt"], "not a MIDI file"),
    "bad text": (["decode", "{d}/bad.txt", "-o", "{d}/o.mid"], "bad.txt:2:5:"),
    "foreign char": (["render", "{d}/tab.txt", "-o", "{d}/o.wav"], "a tab"),
    "unknown kind": (["render", "{d}/song.mp3", "-o", "{d}/o.wav"], "unknown kind of file"),
    "audio suffix": (["render", "{d}/good.txt", "-o", "{d}/o.ogg"], "use .wav or .flac"),
    "unwritable folder": (["render", "{d}/good.txt", "-o", "{d}/good.txt/o.wav"], "good.txt is not a folder"),
    "png suffix": (["plot", "{d}/good.txt", "-o", "{d}/o.jpg"], "must end in .png"),
    "notes without audio": (["plot", "{d}/good.txt", "-o", "{d}/o.png", "--notes", "{d}/good.txt"], "--notes"),
    "missing wav": (["plot", "{d}/nothere.wav", "-o", "{d}/o.png"], "no such file"),
    "bad sample rate": (["render", "{d}/good.txt", "-o", "{d}/o.wav", "--sample-rate", "0"], "must be positive"),
    "bad dataset": (["data", "info", "{d}"], "not a wavegen dataset"),
    "empty midi dir": (["data", "build", "--midi-dir", "{d}/nomidi", "--out", "{d}/ds"], "holds no MIDI files"),
    "misaligned ticks": (["data", "build", "--midi-dir", "{d}", "--out", "{d}/ds", "--tick-ms", "0.3"], "whole number of samples"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_no_output(capsys, tmp_path, name):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "fake.mid").write_bytes(b"hello")
    (tmp_path / "bad.txt").write_text("{tick_ms=50}\nab ba \n")
    (tmp_path / "tab.txt").write_text("ab\t")
    (tmp_path / "good.txt").write_text("HL H \n")
    (tmp_path / "song.mp3").write_bytes(b"ID3")
    (tmp_path / "nomidi").mkdir()
    before = {p.name for p in tmp_path.rglob("*")}
    argv, words = BAD_INPUTS[name]
    code, _, err = run(capsys, *(a.format(d=tmp_path) for a in argv))
    assert code == 2
    one_error_line(err, words)
    assert {p.name for p in tmp_path.rglob("*")} - before <= {"ds", "text", "audio", "items"}
    assert not list(tmp_path.rglob("o.*"))


def test_data_build_skips_a_broken_file_and_builds_the_rest(capsys, tmp_path):
    src = tmp_path / "midi"
    src.mkdir()
    for i in range(3):
        write_notes_midi(src / f"p{i}.mid", [Note(60 + i, 0, 0.5), Note(64 + i, 0.5, 1.0)])
    (src / "zz_truncated.mid").write_bytes((src / "p0.mid").read_bytes()[:-5])
    out = tmp_path / "ds"
    code, stdout, err = run(capsys, "data", "build", "--midi-dir", str(src), "--out", str(out),
                            "--transpose", "-1..1", "--jobs", "1")
    assert code == 0 and "9 items" in stdout and "1 files skipped" in stdout
    assert "zz_truncated.mid" in err and "truncated" in err
    code, stdout, _ = run(capsys, "data", "info", str(out))
    assert code == 0 and "skipped files: 1" in stdout and "keys used: 9 of 88" in stdout
    code, stdout, _ = run(capsys, "data", "info", str(out), "--json")
    assert code == 0 and '"items": 9' in stdout
    only_broken = tmp_path / "broken"
    only_broken.mkdir()
    (only_broken / "x.mid").write_bytes(b"MThd")
    code, _, err = run(capsys, "data", "build", "--midi-dir", str(only_broken), "--out", str(tmp_path / "ds2"))
    assert code == 2 and "no piece could be built" in err


@pytest.mark.slow
def test_demo_plays_a_held_out_chorale_beside_its_reference(capsys, tmp_path):
    from test_generate import make_checkpoint

    from wavegen.data import build
    assert build.split_of("bwv244.37")[0] == "test"  # the demo piece is held out from training
    ck = make_checkpoint(tmp_path / "ck")
    code, out, _ = run(capsys, "demo", "-o", str(tmp_path / "demo"), "--checkpoint", str(ck), "--seconds", "2")
    assert code == 0 and "bwv244.37" in out and "x real time" in out
    kt = T.read_file(tmp_path / "demo" / "sketch.txt")
    gen, sr = sf.read(tmp_path / "demo" / "generated.wav")
    ref, _ = sf.read(tmp_path / "demo" / "reference.wav")
    assert kt.n_ticks > 200 and len(gen) == len(ref) == 2 * sr and np.abs(ref).max() > 0.1
    assert (tmp_path / "demo" / "demo.png").read_bytes().startswith(PNG)
