"""Faults of the outputs: a path that cannot be written is named before any work, a full disk names the
file and its file system, a closed pipe ends quietly, and what the README's commands write stays out of git."""

from __future__ import annotations

import errno
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import one_error_line, run
from test_generate import make_checkpoint

from wavegen.files import mount_point

REPO = Path(__file__).parent.parent
TEXT = "{tick_ms=50 ticks=3}\nHL HL  \n"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "tiny")


@pytest.fixture
def no_work(monkeypatch):
    """Every slow piece of work fails the test if it starts."""
    def refuse(*a, **k):
        raise AssertionError("the work started before the output was checked")
    for target in ("wavegen.synth.takes.play", "wavegen.nn.checkpoint.load", "wavegen.notes.render.render_notes",
                   "wavegen.compose.piece.compose", "wavegen.compose.perform.stream", "wavegen.data.build.corpus_text",
                   "wavegen.data.dataset.load"):
        monkeypatch.setattr(target, refuse)


def bad_output(tmp: Path, how: str, name: str) -> Path:
    """A path named `name` that cannot be written, `how`."""
    if how == "a folder":
        (tmp / name).mkdir()
        return tmp / name
    if how == "under a file":
        (tmp / "file").write_text("")
        return tmp / "file" / name
    if not Path("/sys").is_dir():
        pytest.skip("needs /sys (Linux), a folder nobody may create files in")
    return Path("/sys/wavegen-test") / name  # permission denied, to root too


COMMANDS = {  # command line (OUT: the output, TXT: an 88-key text, MID: a MIDI file), the output's name
    "generate": (["generate", "--seconds", "1", "-o", "OUT"], "o.wav"),
    "render": (["render", "TXT", "-o", "OUT"], "o.wav"),
    "compose -o": (["compose", "--seconds", "1", "-o", "OUT"], "o.txt"),
    "compose --perform": (["compose", "--seconds", "1", "--perform", "OUT"], "o.wav"),
    "compose --render": (["compose", "--seconds", "1", "--render", "OUT"], "o.wav"),
    "compose --stream": (["compose", "--stream", "OUT"], "o.wav"),
    "decode": (["decode", "TXT", "-o", "OUT"], "o.mid"),
    "encode": (["encode", "MID", "-o", "OUT"], "o.txt"),
    "plot": (["plot", "TXT", "-o", "OUT"], "o.png"),
    "evaluate": (["evaluate", "--data", "nowhere", "-o", "OUT"], "o.json"),
}


@pytest.mark.parametrize("how", ["a folder", "under a file", "in a folder that cannot be written"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_output_that_cannot_be_written_is_named_before_any_work(capsys, tmp_path, chord_midi, no_work, command, how):
    argv, name = COMMANDS[command]
    (tmp_path / "in.txt").write_text(TEXT)
    out = bad_output(tmp_path, how, name)
    given = {"OUT": str(out), "TXT": str(tmp_path / "in.txt"), "MID": str(chord_midi)}
    code, stdout, err = run(capsys, *[given.get(a, a) for a in argv])
    assert code == 2 and not stdout
    one_error_line(err, "wavegen: error:", f"{out}:", "is a folder" if how == "a folder" else "cannot be written")
    assert ".tmp" not in err and "probe" not in err


@pytest.mark.parametrize("option, blocked", [(["--batch", "3"], "o-3.wav"), (["--plot"], "o.png")])
def test_every_file_generate_writes_is_checked_first(capsys, tmp_path, no_work, option, blocked):
    (tmp_path / blocked).mkdir()
    code, _, err = run(capsys, "generate", "--seconds", "1", *option, "-o", str(tmp_path / "o.wav"))
    assert code == 2
    one_error_line(err, f"{tmp_path / blocked}: is a folder")


@pytest.mark.parametrize("how", ["a file", "holding a folder where it writes a file", "under a file"])
def test_the_demo_folder_is_checked_before_any_work(capsys, tmp_path, no_work, how):
    folder = tmp_path / "demo"
    if how == "a file":
        folder.write_text("")
    elif how == "holding a folder where it writes a file":
        (folder / "generated.wav").mkdir(parents=True)
    else:
        (tmp_path / "file").write_text("")
        folder = tmp_path / "file" / "demo"
    code, _, err = run(capsys, "demo", "-o", str(folder))
    assert code == 2
    one_error_line(err, "wavegen: error:", str(folder))


def test_missing_folders_on_the_way_are_created(capsys, tmp_path, ckpt):
    out = tmp_path / "a" / "b" / "o.wav"
    code, _, _ = run(capsys, "generate", "--checkpoint", str(ckpt), "--seconds", "0.1", "-o", str(out))
    assert code == 0 and out.is_file()


# a full disk: "no space left on FILE SYSTEM (writing PATH)", exit 2

def full_disk_line(err: str, path: Path) -> None:
    one_error_line(err, "wavegen: error: no space left on", f"{mount_point(path)} (writing {path})")


@pytest.fixture
def dev_full():
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full, where every write fails with ENOSPC")
    return "/dev/full"


def soundfile_writes_to(monkeypatch, device: str) -> None:
    """soundfile writes into `device` instead: libsndfile itself meets the full disk ("System error")."""
    import soundfile as sf

    real = sf.write
    monkeypatch.setattr(sf, "write", lambda file, *a, **k: real(device, *a, **k))


def test_a_full_disk_during_render_names_the_file_and_its_file_system(capsys, monkeypatch, tmp_path, dev_full):
    (tmp_path / "in.txt").write_text(TEXT)
    soundfile_writes_to(monkeypatch, dev_full)
    code, out, err = run(capsys, "render", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o.wav"))
    assert code == 2 and not out
    full_disk_line(err, tmp_path / "o.wav")
    assert not list(tmp_path.glob("*.wav")) and not list(tmp_path.glob(".*"))  # nothing half-written left


def test_a_full_disk_during_generate_too(capsys, monkeypatch, tmp_path, ckpt, dev_full):
    (tmp_path / "in.txt").write_text(TEXT)
    soundfile_writes_to(monkeypatch, dev_full)
    code, _, err = run(capsys, "generate", "--checkpoint", str(ckpt), "--sketch", str(tmp_path / "in.txt"), "-o",
                       str(tmp_path / "o.wav"))
    assert code == 2
    full_disk_line(err, tmp_path / "o.wav")


def test_a_full_disk_writing_a_text(capsys, monkeypatch, tmp_path, chord_midi):
    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Path, "write_text", full)
    code, _, err = run(capsys, "encode", str(chord_midi), "-o", str(tmp_path / "o.txt"))
    assert code == 2
    full_disk_line(err, tmp_path / "o.txt")


def test_a_full_disk_during_stream(capsys, monkeypatch, tmp_path, ckpt, dev_full):
    import builtins

    import wavegen.audio

    monkeypatch.setattr(wavegen.audio, "open", lambda path, mode: builtins.open(dev_full, mode), raising=False)
    code, _, err = run(capsys, "compose", "--model", "composer-markov", "--checkpoint", str(ckpt), "--seconds", "2",
                       "--stream", str(tmp_path / "s.wav"))
    assert code == 2
    full_disk_line(err, tmp_path / "s.wav")


# a closed pipe: `wavegen compose --stream - | head -c 100000` ends quietly

def test_a_closed_pipe_ends_the_stream_quietly(tmp_path, ckpt):
    proc = subprocess.Popen([sys.executable, "-m", "wavegen", "compose", "--stream", "-", "--model", "composer-markov",
                             "--checkpoint", str(ckpt)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        head = proc.stdout.read(100_000)
        proc.stdout.close()  # what `head -c 100000` does once it has its bytes
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    assert head.startswith(b"RIFF") and len(head) == 100_000
    assert err == "" and code == 141  # 128 + SIGPIPE, as a writer killed by the closed pipe would end


# what the README's commands and the demo write stays out of git

def readme_outputs() -> list[str]:
    """Every path a `wavegen` command in the README's bash blocks writes (and what is written beside it)."""
    text = (REPO / "README.md").read_text()
    paths: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("#")[0].split("&&"):
                words = shlex.split(part)
                if "wavegen" not in [Path(w).name for w in words]:
                    continue
                words = words[[Path(w).name for w in words].index("wavegen") + 1:]
                paths += outputs_of(words)
    return paths


def outputs_of(words: list[str]) -> list[str]:
    found = [words[i + 1] for i, w in enumerate(words[:-1])
             if w in ("-o", "--output", "--out", "--perform", "--render", "--stream") and words[i + 1] != "-"]
    if words[0] == "demo" and not found:
        found = ["demo"]
    if words[0] == "evaluate" and not found:
        found = ["evaluation/report.json"]
    paths = []
    for p in found:
        if Path(p).stem.isupper() or "{" in p:  # a placeholder of the synopsis: OUT.wav, RUN_DIR
            continue
        if words[0] in ("demo", "train", "train-composer", "build") or not Path(p).suffix:
            paths += [f"{p}/{name}" for name in ("generated.wav", "demo.png", "checkpoints/step-00000010/x")]
            continue
        if "--batch" in words:
            n = int(words[words.index("--batch") + 1])
            paths += [str(Path(p).with_name(f"{Path(p).stem}-{i}{Path(p).suffix}")) for i in range(1, n + 1)]
        paths += [p] + ([str(Path(p).with_suffix(".png"))] if "--plot" in words else [])
        if p.endswith(".json"):
            paths += [str(Path(p).with_suffix(".md")), f"{p[:-5]}-pieces/x.png"]
    return paths


def test_the_readme_commands_write_only_what_git_ignores():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and the repository")
    paths = readme_outputs()
    for expected in ("demo/generated.wav", "evaluation/report.json", "prelude.wav", "prelude.png", "my-piece-3.wav",
                     "sketch.txt", "live.wav", "runs/mine/checkpoints/step-00000010/x"):
        assert expected in paths, expected  # the reader of the README found them
    check = subprocess.run(["git", "check-ignore", "--no-index", "--verbose", "--non-matching", "--stdin"], cwd=REPO,
                           input="\n".join(paths) + "\n", capture_output=True, text=True)
    kept = [line.split("\t", 1)[1] for line in check.stdout.splitlines() if line.startswith("::")]
    assert check.returncode in (0, 1) and not kept, f"not git-ignored: {kept}"
