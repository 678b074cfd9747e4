"""`wavegen evaluate`: does a trained model play what it is given? Measured on held-out pieces.

For each held-out piece (its untransposed rendering), the model generates audio that follows the
piece's 88-key text. The report gives, per piece and overall:

- the validation loss in bits per sample, and the shuffled-notes gap (the loss with another piece's
  notes minus the loss with the true notes), on fixed crops of the split;
- note accuracy: the generated audio transcribed back to notes (see transcribe.py) against the sketch:
  onset precision / recall / F1 (exact key, 50 ms) and frame F1; the same for the reference rendering of
  the same text, which is the ceiling; and our F1 as a fraction of it;
- a spectral distance to the reference rendering (mean absolute difference of log-mel spectrograms);
- a PNG per piece (reference and generated spectrograms with the sketch's notes drawn over both), and
  both clips as WAV.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from wavegen import data, plot, transcribe
from wavegen.audio import from_int16, write_audio
from wavegen.checkpoint import Loaded
from wavegen.crops import CropDataset, validation_batch
from wavegen.errors import WavegenError
from wavegen.fast import play
from wavegen.files import check_output_dir, write_text_atomic
from wavegen.text import Note


def log_mel_distance(a: np.ndarray, b: np.ndarray, sample_rate_hz: int) -> float:
    """Mean |log-mel(a) - log-mel(b)| (80 mel bands, 64 ms windows); 0 for identical audio."""
    import librosa

    n = min(len(a), len(b))
    mels = [np.log(librosa.feature.melspectrogram(y=np.asarray(x[:n], dtype=np.float32), sr=sample_rate_hz,
                                                  n_fft=1024, hop_length=256, n_mels=80) + 1e-5) for x in (a, b)]
    return float(np.mean(np.abs(mels[0] - mels[1])))


def stability(audio: np.ndarray, sample_rate_hz: int) -> dict[str, float]:
    """Signs of a broken clip: clicks (jumps between neighbouring samples of more than half full
    scale), silent seconds (RMS below -60 dBFS), and runaway seconds (RMS above -6 dBFS, far above
    anything the renderer makes)."""
    x = np.asarray(audio, dtype=np.float64)
    sec = max(1, len(x) // sample_rate_hz)
    rms = np.sqrt(np.mean(x[: sec * sample_rate_hz].reshape(sec, -1) ** 2, axis=1)) if len(x) >= sample_rate_hz else np.array([np.sqrt(np.mean(x**2))])
    return {
        "clicks": int(np.count_nonzero(np.abs(np.diff(x)) > 0.5)),
        "silent_seconds": int(np.count_nonzero(rms < 1e-3)),
        "runaway_seconds": int(np.count_nonzero(rms > 0.5)),
        "rms_min_dbfs": float(20 * np.log10(rms.min() + 1e-12)),
        "rms_max_dbfs": float(20 * np.log10(rms.max() + 1e-12)),
    }


def clip_notes(notes: list[Note], seconds: float) -> list[Note]:
    return [Note(n.pitch, n.start, min(n.end, seconds)) for n in notes if n.start < seconds]


def evaluate(loaded: Loaded, ds: data.Dataset, out_dir: str | Path, *, split: str = "test", pieces: int = 5,
             seconds: float = 15.0, seed: int = 0, temperature: float = 1.0,
             progress: Callable[[str], None] | None = None) -> dict:
    """Evaluate `loaded` on up to `pieces` held-out pieces of `ds`; writes PNGs and WAVs into out_dir."""
    from wavegen.train import validation_loss

    t0 = time.perf_counter()
    say = progress or (lambda m: None)
    sr = loaded.sample_rate_hz
    if (ds.sample_rate_hz, ds.tick_ms) != (sr, loaded.tick_ms):
        raise WavegenError(f"{ds.root}: {ds.sample_rate_hz} Hz and {ds.tick_ms:g} ms ticks, but the model was trained "
                           f"at {sr} Hz and {loaded.tick_ms:g} ms")
    held_out = [it for it in ds.items(split) if it.transpose == 0]
    if not held_out:
        raise WavegenError(f"{ds.root}: no pieces in the {split!r} split")
    chosen = held_out[:pieces]
    out = check_output_dir(out_dir)
    n = int(seconds * sr)

    say("calibrating the transcriber on reference renderings of training pieces")
    examples = []
    for it in [it for it in ds.items("train") if it.transpose == 0][:3]:
        audio = from_int16(np.asarray(ds.audio(it)[:n]))
        examples.append((audio, clip_notes(ds.text(it).notes(), len(audio) / sr)))
    transcriber = transcribe.build(sr, examples, soundfont=ds.manifest.get("soundfont") or None)

    say("validation loss and shuffled-notes gap")
    mc = loaded.config.model
    crops = CropDataset(ds, split, crop_samples=loaded.config.data.crop_samples, margin_ticks=mc.cond_lookahead_ticks,
                        output=mc.output, n_classes=mc.n_classes, styles=loaded.styles,
                        excitation=mc.excitation and mc.local_conditioning)
    n_crops = max(4, 2 * len(chosen))
    true_bits = validation_loss(loaded.model, validation_batch(crops, n_crops), mc.output)
    shuffled_bits = validation_loss(loaded.model, validation_batch(crops, n_crops, shuffled=True), mc.output)

    rows = []
    for i, it in enumerate(chosen):
        say(f"piece {i + 1}/{len(chosen)}: {it.id}")
        sketch = ds.text(it)
        reference = from_int16(np.asarray(ds.audio(it)[:n]))
        length = len(reference)
        t_gen = time.perf_counter()
        generated = play(loaded.model, length, sample_rate_hz=sr, sketch=sketch, seed=seed, temperature=temperature)
        gen_s = time.perf_counter() - t_gen
        notes = clip_notes(sketch.notes(), length / sr)
        ref_scores = transcribe.score(transcriber, reference, notes)
        gen_scores = transcribe.score(transcriber, generated, notes)
        write_audio(out / f"{it.id}-generated.wav", generated, sr)
        write_audio(out / f"{it.id}-reference.wav", reference, sr)
        plot.plot_comparison(out / f"{it.id}.png", [(f"{it.id}: reference rendering", reference),
                                                    (f"{it.id}: generated by {loaded.path.name}", generated)],
                             sr, notes=notes)
        rows.append({
            "piece": it.id, "seconds": length / sr, "generation_seconds": gen_s,
            "generated": asdict(gen_scores), "reference": asdict(ref_scores),
            "onset_f1_of_ceiling": gen_scores.onset_f1 / ref_scores.onset_f1 if ref_scores.onset_f1 else 0.0,
            "frame_f1_of_ceiling": gen_scores.frame_f1 / ref_scores.frame_f1 if ref_scores.frame_f1 else 0.0,
            "log_mel_distance": log_mel_distance(generated, reference, sr),
            "peak": float(np.abs(generated).max()), "rms": float(np.sqrt(np.mean(generated**2))),
            "stability": stability(generated, sr),
            "reference_stability": stability(reference, sr),
        })

    def mean(path: tuple[str, ...]) -> float:
        vals = []
        for r in rows:
            v = r
            for p in path:
                v = v[p]
            vals.append(v)
        return float(np.mean(vals))

    overall = {
        "valid_bits": true_bits, "shuffled_bits": shuffled_bits, "gap_bits": shuffled_bits - true_bits,
        "onset_f1": mean(("generated", "onset_f1")), "onset_f1_reference": mean(("reference", "onset_f1")),
        "frame_f1": mean(("generated", "frame_f1")), "frame_f1_reference": mean(("reference", "frame_f1")),
        "log_mel_distance": mean(("log_mel_distance",)),
        "clicks": int(sum(r["stability"]["clicks"] for r in rows)),
        "silent_seconds": int(sum(r["stability"]["silent_seconds"] for r in rows)),
        "runaway_seconds": int(sum(r["stability"]["runaway_seconds"] for r in rows)),
    }
    overall["onset_f1_of_ceiling"] = overall["onset_f1"] / overall["onset_f1_reference"] if overall["onset_f1_reference"] else 0.0
    overall["frame_f1_of_ceiling"] = overall["frame_f1"] / overall["frame_f1_reference"] if overall["frame_f1_reference"] else 0.0
    return {
        "checkpoint": str(loaded.path), "step": loaded.meta.get("step"), "dataset": str(ds.root), "split": split,
        "seconds_per_piece": seconds, "seed": seed, "temperature": temperature, "transcriber_threshold": transcriber.threshold,
        "overall": overall, "pieces": rows, "wall_seconds": time.perf_counter() - t0,
    }


def markdown(report: dict) -> str:
    o = report["overall"]
    lines = [
        f"# Evaluation of {report['checkpoint']} (step {report['step']})",
        "",
        f"Split `{report['split']}` of `{report['dataset']}`, first {report['seconds_per_piece']:g} s of each piece, "
        f"seed {report['seed']}, temperature {report.get('temperature', 1.0):g}.",
        "",
        f"Validation loss {o['valid_bits']:.3f} bits/sample; with another piece's notes {o['shuffled_bits']:.3f}; "
        f"**shuffled-notes gap {o['gap_bits']:.3f} bits/sample**.",
        "",
        "| piece | onset F1 | (reference) | of ceiling | frame F1 | (reference) | of ceiling | log-mel distance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["pieces"]:
        g, ref = r["generated"], r["reference"]
        lines.append(f"| {r['piece']} | {g['onset_f1']:.3f} | {ref['onset_f1']:.3f} | {r['onset_f1_of_ceiling']:.2f} | "
                     f"{g['frame_f1']:.3f} | {ref['frame_f1']:.3f} | {r['frame_f1_of_ceiling']:.2f} | {r['log_mel_distance']:.3f} |")
    lines.insert(5, f"Stability of the generated clips: {o['clicks']} clicks, {o['silent_seconds']} silent seconds, "
                    f"{o['runaway_seconds']} runaway seconds.\n")
    lines.append(f"| **all** | {o['onset_f1']:.3f} | {o['onset_f1_reference']:.3f} | **{o['onset_f1_of_ceiling']:.2f}** | "
                 f"{o['frame_f1']:.3f} | {o['frame_f1_reference']:.3f} | **{o['frame_f1_of_ceiling']:.2f}** | {o['log_mel_distance']:.3f} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    write_text_atomic(p, json.dumps(report, indent=1) + "\n")
    md = p.with_suffix(".md")
    write_text_atomic(md, markdown(report))
    return p, md
