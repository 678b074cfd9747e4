"""The composer: the Markov chain, form, the copy check, musical statistics, and `wavegen compose`."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from wavegen.cli import main
from wavegen.compose.copycheck import CopyIndex
from wavegen.compose.form import compose_form, is_triad
from wavegen.compose.markov import MarkovComposer, keytext_of, ticks_of, transpose_tick
from wavegen.compose.stats import best_key, musical_stats
from wavegen.notes import text as T

CHORDS = ["HLO", "HLO", "", "JMQ", "JMQ", "", "LOS", "", "HLO", "", "GJMQ", ""]


def test_the_chain_reproduces_its_transition_counts():
    seqs = [["a", "b", "a", "b", "c"], ["a", "b", "c"]]
    m = MarkovComposer(order=1).fit(seqs)
    assert m.counts[1][("a",)] == Counter({"b": 3})
    assert m.counts[1][("b",)] == Counter({"a": 1, "c": 2})
    assert m.counts[0][()] == Counter({"a": 3, "b": 3, "c": 2})
    assert m.distribution(["x", "b"]) == Counter({"a": 1, "c": 2})  # unseen "x" does not matter at order 1
    m2 = MarkovComposer.from_dict(m.to_dict())
    assert m2.counts == m.counts and m2.order == 1


def test_sampling_is_seeded_and_always_valid_text(tmp_path):
    m = MarkovComposer(order=2).fit([CHORDS * 3])
    a = m.sample(50, rng=np.random.default_rng(1))
    assert a == m.sample(50, rng=np.random.default_rng(1))
    kt = keytext_of(a, 50, {"style": "x"})
    assert T.parse(T.write(kt)) == kt and ticks_of(kt) == a
    m.save(tmp_path / "m.json.gz")
    assert MarkovComposer.load(tmp_path / "m.json.gz").sample(50, rng=np.random.default_rng(1)) == a


def test_form_repeats_the_sections_it_promised():
    m = MarkovComposer(order=2).fit([CHORDS * 4, list(reversed(CHORDS)) * 4])
    ticks, spans = compose_form(m, "ABACA", 100, rng=np.random.default_rng(0))
    assert [s[0] for s in spans] == list("ABACA") and spans[-1][2] == len(ticks)
    sec = {letter: ticks[a:b] for letter, a, b in spans}
    for letter, a, b in spans:
        assert ticks[a:b] == sec[letter]


def test_copy_check_finds_a_planted_copy_and_none_in_noise():
    rng = np.random.default_rng(0)
    chars = T.KEY_CHARS[20:60]
    def random_ticks(n):  # noqa: E306
        return ["".join(sorted(set(rng.choice(list(chars), 3)))) for _ in range(n)]
    training = [random_ticks(300) for _ in range(3)]
    index = CopyIndex(training)
    planted = random_ticks(20) + [transpose_tick(t, 2) for t in training[1][100:140]] + random_ticks(20)
    assert index.longest_copy(planted) == 40  # found although transposed by a whole tone
    assert index.share_found(planted, 16) > 0.2
    noise = random_ticks(200)
    assert index.longest_copy(noise) <= 2 and index.share_found(noise, 16) == 0.0


def test_musical_statistics():
    assert is_triad("HLO") and is_triad("HKO") and is_triad("<HLO") and not is_triad("HJL") and not is_triad("")
    stats = musical_stats(CHORDS * 10)
    assert stats["notes_per_tick"] == pytest.approx(np.mean([len(t) for t in CHORDS if t]))
    assert stats["triad_share"] > 0.7 and stats["lowest_pitch"] == ord("G") - 12
    assert stats["rest_share"] == pytest.approx(5 / 12)


# I I IV IV V V I I in C major: C4 E4 G4 ('HLO'), F4 A4 C5 ('MQT'), G3 B3 D4 ('CGJ'); 8 ticks, 5 in a 40-tick window
CADENCE = ["HLO", "HLO", "MQT", "MQT", "CGJ", "CGJ", "HLO", "HLO"]


def test_key_statistics_of_music_in_known_keys():
    in_c = CADENCE * 10  # 80 ticks, two windows of 40, both in C major
    assert best_key(in_c) == 0 and best_key(CADENCE) == 0  # 0..11: C..B major
    assert musical_stats(in_c) == {"ticks": 80, "rest_share": 0.0, "notes_per_tick": 3.0, "lowest_pitch": 55,
                                   "highest_pitch": 72, "triad_share": 1.0, "key_consistency": 1.0}
    in_f_sharp = [transpose_tick(t, 6) for t in in_c]  # a tritone up: F# major
    assert best_key(in_f_sharp) == 6 and best_key([transpose_tick(t, 7) for t in CADENCE]) == 7  # G major
    both = musical_stats(in_c + in_f_sharp)  # four windows: two in C, two in F#; the whole in one of them
    assert best_key(in_c + in_f_sharp) in (0, 6) and both["key_consistency"] == 0.5
    assert both["highest_pitch"] == 72 + 6 and both["ticks"] == 160
    assert best_key(["", ""]) is None and musical_stats([""] * 40)["key_consistency"] == 0.0


@pytest.fixture
def composer_model(tmp_path):
    m = MarkovComposer(order=2, styles=["bach"]).fit([CHORDS * 4])
    m.save(tmp_path / "markov.json.gz")
    return tmp_path / "markov.json.gz"


def test_compose_a_sketch_in_the_library(composer_model):
    from wavegen.compose import piece
    from wavegen.compose.load import load_composer
    from wavegen.errors import WavegenError

    model = load_composer(str(composer_model))
    assert piece.length_in_ticks(50, seconds=2.0) == 40 and piece.length_in_ticks(50) == 400  # 20 s default
    done = piece.compose(model, 40, rng=np.random.default_rng(0), prime=["HLO", ""], form="aba")
    kt = done.keytext
    assert ticks_of(kt)[:2] == ["HLO", ""] and kt.n_ticks == 2 + 39  # 3 sections of 13 ticks after the prime
    assert dict(kt.meta) == {"style": "bach", "form": "ABA"} and [s[0] for s in done.sections] == list("ABA")
    assert piece.compose(model, 5).sections == [] and piece.compose(model, 5).keytext.n_ticks == 5
    for bad in (lambda: piece.compose(model, 5, style="rock"), lambda: piece.length_in_ticks(50, ticks=0),
                lambda: load_composer(str(composer_model.parent / "missing"))):
        with pytest.raises(WavegenError):
            bad()


def test_compose_command_and_its_bad_input(capsys, tmp_path, composer_model):
    out = tmp_path / "s.txt"
    assert main(["compose", "--model", str(composer_model), "--ticks", "40", "--form", "ABA", "-o", str(out),
                 "--render", str(tmp_path / "s.wav")]) == 0
    kt = T.read_file(out)
    assert kt.n_ticks == 39 and kt.meta["form"] == "ABA" and (tmp_path / "s.wav").stat().st_size > 1000
    (tmp_path / "prime.txt").write_text("HLO HLO  ")
    assert main(["compose", "--model", str(composer_model), "--ticks", "5", "--prime", str(tmp_path / "prime.txt"),
                 "-o", str(out)]) == 0
    assert ticks_of(T.read_file(out))[:3] == ["HLO", "HLO", ""]
    capsys.readouterr()
    (tmp_path / "bad.txt").write_text("OH ")
    for argv, words in (
        (["--prime", str(tmp_path / "bad.txt")], "bad.txt:1:2"),
        (["--style", "rock"], "--style rock"),
        (["--form", "AB-A"], "letters only"),
        (["--ticks", "0"], "must be positive"),
        (["--seconds", "-2"], "-2 must be a positive number"),
    ):
        assert main(["compose", "--model", str(composer_model), *argv]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err


def test_shipped_composer_writes_a_bach_like_sketch(capsys):
    assert main(["compose", "--ticks", "200", "--seed", "3"]) == 0
    kt = T.parse(capsys.readouterr().out)
    stats = musical_stats(ticks_of(kt))
    assert kt.n_ticks == 200 and kt.meta["style"] == "bach" and 2.5 < stats["notes_per_tick"] < 5


def test_stream_writes_a_valid_growing_wav_and_stops_on_a_signal(tmp_path, composer_model):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import soundfile as sf
    from test_generate import make_checkpoint

    ck = make_checkpoint(tmp_path / "ck")
    out = tmp_path / "live.wav"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))
    proc = subprocess.Popen([sys.executable, "-m", "wavegen", "compose", "--model", str(composer_model),
                             "--checkpoint", str(ck), "--stream", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sizes = []
    deadline = time.time() + 120
    while len(sizes) < 2 and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        if out.exists() and out.stat().st_size > 44:
            frames = sf.info(out).frames  # valid WAV while it is being written
            if not sizes or frames > sizes[-1]:
                sizes.append(frames)
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped by a signal" in err, err
    final = sf.info(out)
    assert len(sizes) == 2 and sizes[1] > sizes[0] and final.frames >= sizes[1] and final.samplerate == 16_000
    audio, _ = sf.read(out)
    assert len(audio) == final.frames and np.all(np.isfinite(audio))


def test_compose_perform_plays_the_sketch_with_the_wavenet(tmp_path, composer_model):
    import soundfile as sf
    from test_generate import make_checkpoint

    ck = make_checkpoint(tmp_path / "ck")
    assert main(["compose", "--model", str(composer_model), "--ticks", "10", "-o", str(tmp_path / "s.txt"),
                 "--perform", str(tmp_path / "p.wav"), "--checkpoint", str(ck)]) == 0
    kt = T.read_file(tmp_path / "s.txt")
    info = sf.info(tmp_path / "p.wav")
    assert info.frames == round((kt.duration_s + 0.5) * 16_000)


def test_evaluate_composer_reports_both_and_real_music(capsys, tiny_dataset, composer_model, tmp_path):
    import json

    assert main(["evaluate-composer", "--model", str(composer_model), "--data", str(tiny_dataset),
                 "--split", "test", "--samples", "1", "--seconds", "1", "-o", str(tmp_path / "c.json")]) == 0
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["kind"] == "markov" and np.isfinite(report["heldout_bits_per_tick"])
    for side in ("generated", "real_heldout"):
        assert {"longest_copy_ticks", "share_16grams_in_training", "triad_share", "key_consistency"} <= set(report[side])
    assert "bits per character" in (tmp_path / "c.md").read_text()
