"""`wavegen evaluate`: does a trained model play what it is given? Measured on held-out pieces.

For each held-out piece (its untransposed rendering), the model generates audio that follows the
piece's 88-key text. The report gives, per piece and overall:

- the validation loss in bits per sample, and the shuffled-notes gap (the loss with another piece's
  notes minus the loss with the true notes), on fixed crops of the split;
- note accuracy: the generated audio transcribed back to notes (see transcribe.py) against the sketch,
  scored by mir_eval: onset precision / recall / F1 (exact key, 50 ms) and frame F1; the same for the
  reference rendering of the same text, which is the ceiling; and our F1 as a fraction of it;
- a spectral distance to the reference rendering (mean absolute difference of log-mel spectrograms);
- a PNG per piece (reference and generated spectrograms with the sketch's notes drawn over both), and
  both clips as WAV.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wavegen.audio import from_int16, write_audio
from wavegen.data import dataset
from wavegen.errors import WavegenError
from wavegen.evaluate import transcribe
from wavegen.files import check_output, check_output_dir, write_text_atomic
from wavegen.nn import heldout
from wavegen.nn.checkpoint import Loaded
from wavegen.nn.heldout import HeldOut
from wavegen.notes import plot
from wavegen.notes.limits import check_duration
from wavegen.notes.text import Note
from wavegen.synth.generate import play


def log_mel_distance(a: np.ndarray, b: np.ndarray, sample_rate_hz: int) -> float:
    """Mean |log-mel(a) - log-mel(b)| (80 mel bands, 64 ms windows); 0 for identical audio."""
    import librosa

    n = min(len(a), len(b))
    mels = [np.log(librosa.feature.melspectrogram(y=np.asarray(x[:n], dtype=np.float32), sr=sample_rate_hz,
                                                  n_fft=1024, hop_length=256, n_mels=80) + 1e-5) for x in (a, b)]
    return float(np.mean(np.abs(mels[0] - mels[1])))


CLICK_STRENGTH = 10.0  # an impulse stands this many robust deviations above its 20 ms neighbourhood
CLICK_FLOOR = 0.05  # ... and at least this far (full scale = 1) from the line through its neighbours
PLUCK_SECONDS = 0.03  # a harpsichord pluck is itself an impulse: the first 30 ms after a note onset are exempt


def click_times(audio: np.ndarray, sample_rate_hz: int, onsets: Iterable[float] = ()) -> list[float]:
    """Clicks: single-sample impulses that a harpsichord does not make.

    The residual of each sample from the line through its two neighbours, e[i] = x[i] - (x[i-1] + x[i+1]) / 2,
    is compared with its 20 ms neighbourhood (median absolute residual x 1.4826, a robust standard
    deviation): a click stands out by CLICK_STRENGTH and by CLICK_FLOOR. The plucks of a harpsichord are
    impulses too, so the PLUCK_SECONDS after each note onset in `onsets` (seconds) are exempt. Calibrated on
    the reference renderings: the 126 test-split renderings of the Bach dataset (about 2.5 h) have none.
    Hits closer than 5 ms count as one click; returns their times in seconds."""
    from scipy.ndimage import median_filter

    x = np.asarray(audio, dtype=np.float64)
    if len(x) < 3:
        return []
    e = np.zeros_like(x)
    e[1:-1] = np.abs(x[1:-1] - (x[:-2] + x[2:]) / 2)
    e[0], e[-1] = e[1], e[-2]  # the ends have one neighbour: no residual of their own
    scale = 1.4826 * median_filter(e, size=int(sample_rate_hz * 0.02) | 1, mode="reflect")
    hits = np.flatnonzero(e > np.maximum(CLICK_STRENGTH * scale, CLICK_FLOOR))
    on = np.sort(np.asarray(list(onsets), dtype=np.float64))
    if len(hits) and len(on):
        t = hits / sample_rate_hz
        j = np.searchsorted(on, t, side="right") - 1
        hits = hits[(j < 0) | (t - on[np.maximum(j, 0)] > PLUCK_SECONDS)]
    if not len(hits):
        return []
    groups = np.split(hits, np.flatnonzero(np.diff(hits) > sample_rate_hz * 0.005) + 1)
    return [float(g[np.argmax(e[g])] / sample_rate_hz) for g in groups]


def stability(audio: np.ndarray, sample_rate_hz: int, onsets: Iterable[float] = ()) -> dict[str, float]:
    """Signs of a broken clip: clicks (see click_times), silent seconds (RMS below -60 dBFS), runaway
    seconds (RMS above -6 dBFS, far above anything the renderer makes). Also `jumps`: neighbouring samples
    more than half full scale apart, a cruder count that loud plucks trigger too (the reference renderings
    have a few), kept for comparison with earlier reports."""
    x = np.asarray(audio, dtype=np.float64)
    sec = max(1, len(x) // sample_rate_hz)
    rms = np.sqrt(np.mean(x[: sec * sample_rate_hz].reshape(sec, -1) ** 2, axis=1)) if len(x) >= sample_rate_hz else np.array([np.sqrt(np.mean(x**2))])
    clicks = click_times(x, sample_rate_hz, onsets)
    return {
        "clicks": len(clicks),
        "click_seconds": [round(t, 4) for t in clicks],
        "jumps": int(np.count_nonzero(np.abs(np.diff(x)) > 0.5)),
        "silent_seconds": int(np.count_nonzero(rms < 1e-3)),
        "runaway_seconds": int(np.count_nonzero(rms > 0.5)),
        "rms_min_dbfs": float(20 * np.log10(rms.min() + 1e-12)),
        "rms_max_dbfs": float(20 * np.log10(rms.max() + 1e-12)),
    }


def clip_notes(notes: list[Note], seconds: float) -> list[Note]:
    return [Note(n.pitch, n.start, min(n.end, seconds)) for n in notes if n.start < seconds]


def evaluate(loaded: Loaded, ds: dataset.Dataset, out_dir: str | Path, *, split: str = "test", pieces: int = 5,
             seconds: float = 15.0, seed: int = 0, temperature: float = 1.0, min_p: float = 0.0,
             progress: Callable[[str], None] | None = None) -> dict:
    """Evaluate `loaded` on up to `pieces` held-out pieces of `ds`; writes PNGs and WAVs into out_dir."""
    t0 = time.perf_counter()
    say = progress or (lambda m: None)
    sr = loaded.sample_rate_hz
    loaded.check_ticks(ds.tick_ms, str(ds.root), ds.sample_rate_hz)
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
    n_crops = max(4, 2 * len(chosen))
    held = HeldOut.of(heldout.crops(ds, split, mc, loaded.config.data.crop_samples, styles=loaded.styles), n_crops)
    measured = held.measure(loaded.model)

    rows = []
    for i, it in enumerate(chosen):
        say(f"piece {i + 1}/{len(chosen)}: {it.id}")
        sketch = ds.text(it)
        reference = from_int16(np.asarray(ds.audio(it)[:n]))
        length = len(reference)
        t_gen = time.perf_counter()
        style = loaded.style_index(None, it.style, lambda m: say(f"warning: {it.id}: {m}"))
        generated = play(loaded.model, length, sample_rate_hz=sr, sketch=sketch, seed=seed, temperature=temperature,
                         min_p=min_p, style=style)[0]
        gen_s = time.perf_counter() - t_gen
        notes = clip_notes(sketch.notes(), length / sr)
        onsets = sorted({nt.start for nt in notes})
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
            "stability": stability(generated, sr, onsets),
            "reference_stability": stability(reference, sr, onsets),
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
        **measured,
        "onset_f1": mean(("generated", "onset_f1")), "onset_f1_reference": mean(("reference", "onset_f1")),
        "frame_f1": mean(("generated", "frame_f1")), "frame_f1_reference": mean(("reference", "frame_f1")),
        "log_mel_distance": mean(("log_mel_distance",)),
        "clicks": int(sum(r["stability"]["clicks"] for r in rows)),
        "reference_clicks": int(sum(r["reference_stability"]["clicks"] for r in rows)),
        "jumps": int(sum(r["stability"]["jumps"] for r in rows)),
        "reference_jumps": int(sum(r["reference_stability"]["jumps"] for r in rows)),
        "silent_seconds": int(sum(r["stability"]["silent_seconds"] for r in rows)),
        "runaway_seconds": int(sum(r["stability"]["runaway_seconds"] for r in rows)),
    }
    overall["onset_f1_of_ceiling"] = overall["onset_f1"] / overall["onset_f1_reference"] if overall["onset_f1_reference"] else 0.0
    overall["frame_f1_of_ceiling"] = overall["frame_f1"] / overall["frame_f1_reference"] if overall["frame_f1_reference"] else 0.0
    return {
        "checkpoint": str(loaded.path), "step": loaded.meta.get("step"), "dataset": str(ds.root), "split": split,
        "seconds_per_piece": seconds, "seed": seed, "temperature": temperature, "min_p": min_p,
        "transcriber_threshold": transcriber.threshold,
        "overall": overall, "pieces": rows, "wall_seconds": time.perf_counter() - t0,
    }


def markdown(report: dict) -> str:
    o = report["overall"]
    lines = [
        f"# Evaluation of {report['checkpoint']} (step {report['step']})",
        "",
        f"Split `{report['split']}` of `{report['dataset']}`, first {report['seconds_per_piece']:g} s of each piece, "
        f"seed {report['seed']}, temperature {report.get('temperature', 1.0):g}, min-p {report.get('min_p', 0.0):g}.",
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
    lines.insert(5, f"Stability of the generated clips: {o['clicks']} clicks (the reference renderings: "
                    f"{o.get('reference_clicks', '-')}), {o['silent_seconds']} silent seconds, {o['runaway_seconds']} "
                    f"runaway seconds; {o.get('jumps', '-')} jumps of more than half full scale between neighbouring "
                    f"samples (the reference renderings: {o.get('reference_jumps', '-')}).\n")
    lines.append(f"| **all** | {o['onset_f1']:.3f} | {o['onset_f1_reference']:.3f} | **{o['onset_f1_of_ceiling']:.2f}** | "
                 f"{o['frame_f1']:.3f} | {o['frame_f1_reference']:.3f} | **{o['frame_f1_of_ceiling']:.2f}** | {o['log_mel_distance']:.3f} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    write_text_atomic(p, json.dumps(report, indent=1) + "\n")
    md = p.with_suffix(".md")
    write_text_atomic(md, markdown(report))
    return p, md


@dataclass
class Written:
    json_path: Path
    markdown_path: Path
    pieces_dir: Path  # pictures and clips
    markdown: str
    wall_seconds: float


def evaluate_to(output: str | Path, *, model: str | None = None, data: str | Path, split: str = "test",
                pieces: int = 5, seconds: float = 15.0, seed: int = 0, temperature: float | None = None,
                min_p: float | None = None, progress: Callable[[str], None] | None = None) -> Written:
    """`wavegen evaluate`: evaluate `model` (default the shipped one) on the dataset `data` with its own
    sampling unless given, and write REPORT.json, REPORT.md and REPORT-pieces/ (pictures, clips)."""
    from wavegen.nn import checkpoint

    if pieces <= 0:
        raise WavegenError(f"--pieces {pieces}: must be positive")
    check_duration(seconds, "--seconds")
    report_path = Path(output)
    if report_path.suffix.lower() != ".json":
        raise WavegenError(f"{report_path}: the report must end in .json (a .md table is written beside it)")
    for path in (report_path, report_path.with_suffix(".md")):
        check_output(path)
    loaded = checkpoint.load(model)
    sampling = loaded.sampling(temperature, min_p)
    out_dir = report_path.with_name(report_path.stem + "-pieces")
    report = evaluate(loaded, dataset.load(data), out_dir, split=split, pieces=pieces, seconds=seconds, seed=seed,
                      **sampling, progress=progress)
    json_path, md_path = write_report(report, report_path)
    return Written(json_path, md_path, out_dir, md_path.read_text(), report["wall_seconds"])
