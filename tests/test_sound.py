"""The sound measures of the report (evaluate/sound.py) and the second transcriber (evaluate/basicpitch.py)
on known answers: a reference scores itself at its ceiling, noise scores low, wrong notes score low."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wavegen.evaluate import basicpitch, sound, transcribe
from wavegen.notes.render import render_notes
from wavegen.notes.text import Note

SR = 16_000


@pytest.fixture(scope="module")
def chorale_like():
    """Four voices moving by step, a chord every half second for 6 s, rendered by the reference renderer."""
    bass, tenor, alto, soprano = [48, 50, 52, 53, 55, 53, 52, 50] * 2, [55, 57, 59, 60, 62, 60, 59, 57] * 2, \
        [60, 62, 64, 65, 67, 65, 64, 62] * 2, [64, 65, 67, 69, 71, 69, 67, 65] * 2
    notes = [Note(p, i * 0.375, (i + 1) * 0.375) for voice in (bass, tenor, alto, soprano) for i, p in enumerate(voice)]
    audio = render_notes(notes, sample_rate_hz=SR).audio
    return audio, notes


def test_the_reference_scores_itself_zero_and_added_noise_raises_the_floor(chorale_like):
    audio, notes = chorale_like
    rng = np.random.default_rng(0)
    assert sound.measures(audio, audio, SR, notes)["noise_floor_db"] == 0.0
    by_level = {}
    for dbfs in (-60, -40):
        noisy = audio + rng.normal(0, 10 ** (dbfs / 20), len(audio))
        by_level[dbfs] = sound.measures(noisy, audio, SR, notes)["noise_floor_db"]
    assert by_level[-40] > 10 and 0 < by_level[-60] < by_level[-40]
    assert sound.measures(audio + rng.normal(0, 0.01, len(audio)), audio, SR, notes)["whistle_seconds"] == 0.0


def test_wrong_notes_lie_off_the_partials(chorale_like):
    audio, notes = chorale_like
    wrong = render_notes([Note(n.pitch + 1, n.start, n.end) for n in notes], sample_rate_hz=SR).audio[: len(audio)]
    assert sound.off_partial_dbfs(wrong, SR, notes) > sound.off_partial_dbfs(audio, SR, notes) + 10


def test_a_drone_where_no_note_sounds_raises_the_floor():
    t = np.arange(3 * SR) / SR
    notes = [Note(69, 0.0, 1.0)]
    clean = 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-10 * t)  # a plucked string's decay, no click
    drone = clean + 0.003 * np.sin(2 * np.pi * 97 * t)  # -53 dBFS, off every partial of A4
    assert sound.off_partial_dbfs(drone, SR, notes) - sound.off_partial_dbfs(clean, SR, notes) > 10


def test_the_quietest_second_of_a_known_signal():
    t = np.arange(4 * SR) / SR
    x = np.where(t < 2, 0.1, 0.01) * np.sin(2 * np.pi * 220 * t)
    assert sound.quietest_second_db(x, SR) == pytest.approx(20 * np.log10(0.01 / np.sqrt(2)), abs=0.05)
    assert sound.quietest_second_db(np.zeros(SR * 2), SR) == sound.LEVEL_FLOOR_DB
    assert sound.quietest_second_db(np.full(SR * 2, 0.01), SR) == sound.LEVEL_FLOOR_DB  # an offset is not heard


def test_a_high_sine_whistles_for_its_length(chorale_like):
    audio, _ = chorale_like
    t = np.arange(len(audio)) / SR
    whistle = audio + 0.05 * np.sin(2 * np.pi * 4100 * t) * ((t >= 1.0) & (t < 1.5))
    assert sound.whistle_seconds(audio, audio, SR) == 0.0
    assert sound.whistle_seconds(whistle, audio, SR) == pytest.approx(0.5, abs=0.051)
    assert sound.whistle_times(whistle, audio, SR)[0] == pytest.approx(1.0, abs=0.051)


def test_score_notes_scores_the_sketch_itself_perfectly_and_other_keys_zero():
    notes = [Note(60 + i % 5, i * 0.25, i * 0.25 + 0.2) for i in range(12)]
    perfect = transcribe.score_notes(notes, notes, 3.0)
    assert (perfect.onset_f1, perfect.frame_f1) == (1.0, 1.0)
    other = transcribe.score_notes([Note(n.pitch + 7, n.start, n.end) for n in notes], notes, 3.0)
    assert (other.onset_f1, other.frame_f1) == (0.0, 0.0)
    late = transcribe.score_notes([Note(n.pitch, n.start + 0.08, n.end) for n in notes], notes, 3.0)
    assert late.onset_f1 == 0.0 and late.frame_f1 > 0.5  # 80 ms late is past the 50 ms onset tolerance


needs_basic_pitch = pytest.mark.skipif(not basicpitch.available(), reason="basic-pitch is not installed "
                                       f"(scripts/setup.sh installs it: {basicpitch.INSTALL})")


@needs_basic_pitch
def test_basic_pitch_hears_the_reference_and_not_wrong_notes(chorale_like):
    audio, notes = chorale_like
    ref = basicpitch.score(audio, SR, notes)
    assert ref.onset_f1 > 0.5 and ref.frame_f1 > 0.6
    wrong = render_notes([Note(n.pitch + 1, n.start, n.end) for n in notes], sample_rate_hz=SR).audio
    assert basicpitch.score(wrong, SR, notes).onset_f1 < 0.1
    rng = np.random.default_rng(0)
    assert basicpitch.score(rng.normal(0, 0.1, len(audio)), SR, notes).onset_f1 < 0.1


def test_the_report_scores_the_chorales_and_the_suite_with_both_transcribers(tiny_dataset, tmp_path):
    from test_generate import make_checkpoint

    from wavegen.evaluate.report import evaluate_to

    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "scale.txt").write_text("{tick_ms=50}\n" + "".join(f"{c} {c} {c} " for c in "HJLMOQ") + "\n")
    (suite / "chord.txt").write_text("{tick_ms=50}\n" + "HLO " * 10 + "\n")
    written = evaluate_to(tmp_path / "ev" / "r.json", model=str(make_checkpoint(tmp_path / "ck")), data=tiny_dataset,
                          pieces=1, seconds=1.0, sketches=suite)
    report = json.loads(written.json_path.read_text())
    names = [r["piece"] for r in report["suite"]["sketches"]]
    assert names == ["chord", "scale"]
    for row in [*report["pieces"], *report["suite"]["sketches"]]:
        assert {"noise_floor_db", "off_partial_db", "quietest_second_db", "whistle_seconds"} <= row["sound"].keys()
        assert (written.pieces_dir / f"{row['piece']}.png").read_bytes().startswith(b"\x89PNG")
        if basicpitch.available():
            assert row["basic_pitch"]["reference"]["onset_f1"] >= 0
    # the excess floor: each clip above its reference, one under it counting 0 (not lowering the mean)
    floors = [r["sound"]["noise_floor_db"] for r in report["suite"]["sketches"]]
    assert report["suite"]["overall"]["noise_floor_excess_db"] == pytest.approx(sum(max(0, f) for f in floors) / 2)
    assert "a clip under its reference counting 0" in written.markdown
    scale = next(r for r in report["suite"]["sketches"] if r["piece"] == "scale")
    assert scale["seconds"] > 6 * 0.2 and scale["reference"]["onset_f1"] > 0.5  # its reference: the SoundFont's
    assert "## The sketch suite" in written.markdown and "| scale |" in written.markdown
    if basicpitch.available():
        assert "basic-pitch onset F1" in written.markdown and report["transcribers"] == ["wavegen", "basic-pitch"]


def test_a_missing_suite_is_named_before_any_work(tmp_path):
    from wavegen.errors import WavegenError
    from wavegen.evaluate.report import evaluate_to

    with pytest.raises(WavegenError, match=r"nowhere: no sketches \(\*\.txt\) here; .* or --sketches none"):
        evaluate_to(tmp_path / "r.json", model=str(tmp_path / "no-such-model"), data=tmp_path, sketches=tmp_path / "nowhere")


def test_a_clip_quieter_than_its_reference_does_not_hide_another_clips_noise():
    from wavegen.evaluate.report import summarize

    def row(floor: float) -> dict:
        score = {"onset_f1": 0.5, "onset_precision": 0.5, "frame_f1": 0.5}
        return {"generated": score, "reference": score, "onset_f1_of_ceiling": 1.0, "log_mel_distance": 1.0,
                "seconds": 2.0, "sound": {"noise_floor_db": floor, "off_partial_db": 0.0, "quietest_second_db": 0.0,
                                          "whistle_seconds": 0.0},
                "stability": {"clicks": 0, "jumps": 0, "silent_seconds": 0, "runaway_seconds": 0},
                "reference_stability": {"clicks": 0, "jumps": 0}}

    # one clip 12 dB noisier than its rendering, one silent where its rendering rings on (-40 dB)
    o = summarize([row(12.0), row(-40.0)])
    assert o["noise_floor_db"] == pytest.approx(-14.0)  # the plain mean: "cleaner than the reference"
    assert o["noise_floor_excess_db"] == pytest.approx(6.0)  # the noise is still there


def test_harmonic_share_of_a_held_note_its_tritone_and_a_whistle():
    """A tone of the note's first six harmonics has all its energy on them and none on the tritone's; a
    loud partial off the harmonics (a whistle) takes its share away."""
    t = np.arange(int(1.2 * SR)) / SR
    f0 = 440 * 2 ** ((63 - 69) / 12)  # E flat 4, the held note of tests/test_shipped.py
    note = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 7))
    assert sound.harmonic_share(note, SR, 63) > 0.999
    assert sound.harmonic_share(note, SR, 69) < 0.01  # A4: no harmonic of E flat 4 within 50 cents below 8
    whistle = note + 1.5 * np.sin(2 * np.pi * 20.15 * f0 * t)  # the tone the rebalanced model played
    assert 0.3 < sound.harmonic_share(whistle, SR, 63) < 0.5
    assert sound.harmonic_share(np.zeros(SR), SR, 63) == 0.0
