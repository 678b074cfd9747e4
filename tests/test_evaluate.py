"""Evaluation: the note-accuracy metric on cases with known answers, and `wavegen evaluate` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from wavegen.errors import WavegenError
from wavegen.evaluate import transcribe as TR
from wavegen.notes.render import render_notes
from wavegen.notes.text import Note

SR = 16_000


def chorale_like(seed: int, seconds: float = 6.0) -> list[Note]:
    """Four voices moving in quarter notes (0.5 s), like a chorale."""
    rng = np.random.default_rng(seed)
    notes, t = [], 0.0
    base = [48, 55, 64, 69]
    while t < seconds:
        for b in base:
            notes.append(Note(int(b + rng.integers(-4, 5)), t, t + 0.45))
        t += 0.5
    return notes


@pytest.fixture(scope="module")
def transcriber() -> TR.Transcriber:
    examples = []
    for seed in (1, 2):
        notes = chorale_like(seed)
        examples.append((render_notes(notes, sample_rate_hz=SR).audio, notes))
    return TR.build(SR, examples)


def test_reference_audio_scores_high_silence_zero_wrong_piece_low(transcriber):
    notes = chorale_like(10)
    reference = render_notes(notes, sample_rate_hz=SR).audio
    other = render_notes(chorale_like(11), sample_rate_hz=SR).audio[: len(reference)]
    right = TR.score(transcriber, reference, notes)
    silent = TR.score(transcriber, np.zeros_like(reference), notes)
    wrong = TR.score(transcriber, other, notes)
    assert right.onset_f1 > 0.6 and right.frame_f1 > 0.6
    assert silent.onset_f1 == 0.0 and silent.frame_f1 == 0.0 and silent.onset_recall == 0.0
    assert wrong.onset_f1 < 0.5 * right.onset_f1 and wrong.frame_f1 < 0.6 * right.frame_f1


def test_onset_matching_is_one_to_one_within_50_ms():
    ref = [(60, 1.0), (60, 1.2), (64, 1.0)]
    # one match: 60 at 1.04 (64 is 60 ms late, 62 is the wrong key): 1 of 3 estimated, 1 of 3 reference
    assert TR.onset_scores([(60, 1.04), (64, 1.06), (62, 1.0)], ref) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    # a reference onset matches one estimate only: 1 of 2 estimated, 1 of 1 reference
    assert TR.onset_scores([(60, 1.0), (60, 1.01)], [(60, 1.0)]) == pytest.approx((1 / 2, 1.0, 2 / 3))


def test_onset_matching_is_a_maximum_matching():
    # Two onsets of one key 40 ms apart against two 40 ms apart, 30 ms early: 0.97-1.00 and 1.01-1.04 are
    # two matches. Matching the closest estimate first (1.01 to 1.00) leaves 1.04 none: greedy counted one.
    assert TR.onset_scores([(60, 0.97), (60, 1.01)], [(60, 1.00), (60, 1.04)]) == (1.0, 1.0, 1.0)


def test_a_wrong_key_or_60_ms_off_is_no_match_and_50_ms_is():
    assert TR.onset_scores([(61, 1.0)], [(60, 1.0)]) == (0.0, 0.0, 0.0)
    assert TR.onset_scores([(60, 1.06)], [(60, 1.0)]) == (0.0, 0.0, 0.0)
    assert TR.onset_scores([(60, 0.94)], [(60, 1.0)]) == (0.0, 0.0, 0.0)
    assert TR.onset_scores([(60, 1.05)], [(60, 1.0)]) == (1.0, 1.0, 1.0)
    assert TR.onset_scores([], [(60, 1.0)]) == (0.0, 0.0, 0.0)  # as in mir_eval: an empty side scores 0
    assert TR.onset_scores([], []) == (0.0, 0.0, 0.0)


def test_frame_scores_of_a_known_roll():
    ref = np.zeros((88, 8), dtype=bool)
    est = np.zeros((88, 8), dtype=bool)
    ref[60 - 21, 0:4] = True  # middle C in frames 0-3
    est[60 - 21, 2:6] = True  # ... played in frames 2-5: 2 frames right, 2 late
    est[62 - 21, 0] = True  # and a D in frame 0: wrong
    p, r, f = TR.frame_scores(est, ref, 0.01)
    assert (p, r) == pytest.approx((2 / 5, 2 / 4)) and f == pytest.approx(4 / 9)  # 2 PR / (P + R)
    assert TR.frame_scores(ref, ref, 0.01) == (1.0, 1.0, 1.0)
    assert TR.frame_scores(np.zeros_like(ref), ref, 0.01) == (0.0, 0.0, 0.0)


def test_the_threshold_search_counts_the_frame_f1_that_mir_eval_gives():
    rng = np.random.default_rng(0)
    for density in (0.02, 0.1):
        est, ref = rng.random((88, 300)) < density, rng.random((88, 300)) < density
        assert TR._frame_f1_by_counting(est, ref) == pytest.approx(TR.frame_scores(est, ref, 0.01)[2])
    assert TR._frame_f1_by_counting(np.zeros((88, 3), bool), np.zeros((88, 3), bool)) == 0.0


def test_evaluate_command_writes_the_report(tiny_dataset, tmp_path, capsys):
    from test_generate import make_checkpoint

    from wavegen.cli import main

    ck = make_checkpoint(tmp_path / "ck")
    code = main(["evaluate", "--checkpoint", str(ck), "--data", str(tiny_dataset), "--split", "test",
                 "--pieces", "1", "--seconds", "1", "--sketches", "none", "-o", str(tmp_path / "ev" / "report.json")])
    out = capsys.readouterr().out
    assert code == 0 and "shuffled-notes gap" in out
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    o = report["overall"]
    for key in ("valid_bits", "gap_bits", "onset_f1", "onset_f1_reference", "onset_f1_of_ceiling",
                "frame_f1", "log_mel_distance"):
        assert np.isfinite(o[key]), key
    assert o["onset_f1_reference"] > 0.3  # the reference rendering of the test piece transcribes well
    assert o["reference_clicks"] == 0  # the renderer makes no clicks
    piece = report["pieces"][0]["piece"]
    assert (tmp_path / "ev" / "report-pieces" / f"{piece}.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "ev" / "report-pieces" / f"{piece}-generated.wav").is_file()
    assert (tmp_path / "ev" / "report.md").read_text().startswith("# Evaluation")
    # the takes are measured as `wavegen generate` writes them: denoised by their notes, unless --denoise 0
    from wavegen.synth.denoise import DEFAULT_DEPTH_DB

    assert report["denoise_db"] == DEFAULT_DEPTH_DB and f"denoised by {DEFAULT_DEPTH_DB:g} dB" in out
    assert main(["evaluate", "--checkpoint", str(ck), "--data", str(tiny_dataset), "--split", "test", "--pieces", "1",
                 "--seconds", "1", "--sketches", "none", "--denoise", "0", "-o", str(tmp_path / "raw" / "report.json")]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "raw" / "report.json").read_text())["denoise_db"] == 0.0
    takes = [sf.read(tmp_path / d / "report-pieces" / f"{piece}-generated.wav")[0] for d in ("ev", "raw")]
    assert len(takes[0]) == len(takes[1]) and not np.array_equal(*takes)


def test_evaluate_corpus_keeps_one_corpus_and_names_the_others(tiny_dataset, tmp_path, capsys):
    from test_generate import make_checkpoint

    from wavegen.cli import main
    from wavegen.data import dataset
    from wavegen.data.crops import CropDataset

    ds = dataset.load(tiny_dataset)
    style = ds.items("test")[0].style
    kept = CropDataset(ds, "test", crop_samples=800, margin_ticks=2, output="mulaw", corpus=style)
    assert kept.items and all(it.style == style for it in kept.items)
    with pytest.raises(WavegenError, match="no test pieces of essen longer than"):
        CropDataset(ds, "test", crop_samples=800, margin_ticks=2, output="mulaw", corpus="essen")
    ck = make_checkpoint(tmp_path / "ck")
    out = tmp_path / "ev" / "report.json"
    code = main(["evaluate", "--checkpoint", str(ck), "--data", str(tiny_dataset), "--corpus", "essen",
                 "--sketches", "none", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"no pieces of essen in the 'test' split (its corpora: {style})" in err
    assert not out.exists()


def test_stability_finds_clicks_silence_and_runaway_noise():
    from wavegen.evaluate.report import stability

    t = np.arange(3 * SR) / SR
    calm = 0.1 * np.sin(2 * np.pi * 440 * t)
    assert stability(calm, SR) == {**stability(calm, SR), "clicks": 0, "silent_seconds": 0, "runaway_seconds": 0}
    broken = calm.copy()
    broken[SR : 2 * SR] = 0.0  # a silent second
    broken[100] = 0.9  # a click
    broken[2 * SR + 4000] += 0.25  # a smaller one, inside a note
    noisy = np.random.default_rng(0).uniform(-1, 1, 3 * SR)
    s = stability(broken, SR)
    assert s["clicks"] == 2 and s["silent_seconds"] == 1
    assert s["click_seconds"] == [round(100 / SR, 4), round((2 * SR + 4000) / SR, 4)]
    assert stability(noisy, SR)["runaway_seconds"] == 3


def test_harpsichord_plucks_are_not_clicks_but_an_impulse_between_them_is():
    from wavegen.evaluate.report import stability

    notes = chorale_like(3, seconds=4.0)
    audio = render_notes(notes, sample_rate_hz=SR).audio.astype(np.float64)
    onsets = sorted({n.start for n in notes})
    assert stability(audio, SR, onsets)["clicks"] == 0  # the renderer's own plucks are exempt
    hit = int(0.75 * SR)  # 250 ms after the onset at 0.5 s: the strings ring, nothing is plucked
    audio[hit] += 0.6  # like the one click found in a generated chorale at step 4034
    s = stability(audio, SR, onsets)
    assert s["clicks"] == 1 and s["click_seconds"] == [round(hit / SR, 4)]
