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

from wavegen import machine
from wavegen.audio import from_int16, write_audio
from wavegen.data import dataset
from wavegen.errors import WavegenError
from wavegen.evaluate import basicpitch, sound, transcribe
from wavegen.files import check_output, check_output_dir, write_text_atomic
from wavegen.nn import heldout
from wavegen.nn.checkpoint import Loaded
from wavegen.nn.heldout import HeldOut
from wavegen.notes import plot
from wavegen.notes.limits import check_duration
from wavegen.notes.text import Note
from wavegen.synth import denoise as denoising
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


def _of(gen: float, ref: float) -> float:
    return gen / ref if ref else 0.0


def measure_clip(name: str, generated: np.ndarray, reference: np.ndarray, notes: list[Note], sr: int,
                 transcriber: transcribe.Transcriber, out: Path, title: str) -> dict:
    """Every measure of one generated clip beside the reference rendering of the same notes; writes both
    clips and the picture (spectrograms with the notes) into `out`."""
    onsets = sorted({nt.start for nt in notes})
    ours = {k: transcribe.score(transcriber, x, notes) for k, x in (("generated", generated), ("reference", reference))}
    row = {
        "piece": name, "seconds": len(reference) / sr,
        "generated": asdict(ours["generated"]), "reference": asdict(ours["reference"]),
        "onset_f1_of_ceiling": _of(ours["generated"].onset_f1, ours["reference"].onset_f1),
        "frame_f1_of_ceiling": _of(ours["generated"].frame_f1, ours["reference"].frame_f1),
    }
    if basicpitch.available():
        bp = {k: basicpitch.score(x, sr, notes) for k, x in (("generated", generated), ("reference", reference))}
        row["basic_pitch"] = {"generated": asdict(bp["generated"]), "reference": asdict(bp["reference"]),
                              "onset_f1_of_ceiling": _of(bp["generated"].onset_f1, bp["reference"].onset_f1),
                              "frame_f1_of_ceiling": _of(bp["generated"].frame_f1, bp["reference"].frame_f1)}
    row.update({
        "sound": sound.measures(generated, reference, sr, notes),
        "log_mel_distance": log_mel_distance(generated, reference, sr),
        "peak": float(np.abs(generated).max()), "rms": float(np.sqrt(np.mean(generated**2))),
        "stability": stability(generated, sr, onsets), "reference_stability": stability(reference, sr, onsets),
    })
    write_audio(out / f"{name}-generated.wav", generated, sr)
    write_audio(out / f"{name}-reference.wav", reference, sr)
    plot.plot_comparison(out / f"{name}.png", [(f"{name}: reference rendering", reference), (title, generated)],
                         sr, notes=notes)
    return row


def summarize(rows: list[dict]) -> dict:
    """The overall measures of a set of clips: means of the scores (each transcriber's fraction of its own
    ceiling from the means), sound measures averaged over clips (and the noise floor's excess: each clip's
    floor above its reference's, 0 where it lies under), whistles and clicks summed."""
    def mean(*path: str) -> float:
        vals = []
        for r in rows:
            v = r
            for p in path:
                v = v[p]
            vals.append(v)
        return float(np.mean(vals))

    total_s = sum(r["seconds"] for r in rows)
    o = {
        "onset_f1": mean("generated", "onset_f1"), "onset_f1_reference": mean("reference", "onset_f1"),
        "onset_precision": mean("generated", "onset_precision"),
        "onset_precision_reference": mean("reference", "onset_precision"),
        "frame_f1": mean("generated", "frame_f1"), "frame_f1_reference": mean("reference", "frame_f1"),
        "lowest_onset_f1_of_ceiling": min(r["onset_f1_of_ceiling"] for r in rows),
        "log_mel_distance": mean("log_mel_distance"),
        "noise_floor_db": mean("sound", "noise_floor_db"),
        # a clip whose floor lies under its reference's (digital silence where the rendering rings on, or
        # nothing played) counts 0 here, so that it cannot hide another clip's noise in the mean
        "noise_floor_excess_db": float(np.mean([max(0.0, r["sound"]["noise_floor_db"]) for r in rows])),
        "off_partial_db": mean("sound", "off_partial_db"),
        "quietest_second_db": mean("sound", "quietest_second_db"),
        "whistle_seconds": float(sum(r["sound"]["whistle_seconds"] for r in rows)),
        "whistle_percent": 100 * sum(r["sound"]["whistle_seconds"] for r in rows) / total_s if total_s else 0.0,
        "clicks": int(sum(r["stability"]["clicks"] for r in rows)),
        "reference_clicks": int(sum(r["reference_stability"]["clicks"] for r in rows)),
        "jumps": int(sum(r["stability"]["jumps"] for r in rows)),
        "reference_jumps": int(sum(r["reference_stability"]["jumps"] for r in rows)),
        "silent_seconds": int(sum(r["stability"]["silent_seconds"] for r in rows)),
        "runaway_seconds": int(sum(r["stability"]["runaway_seconds"] for r in rows)),
        "seconds": total_s,
    }
    o["onset_f1_of_ceiling"] = _of(o["onset_f1"], o["onset_f1_reference"])
    o["frame_f1_of_ceiling"] = _of(o["frame_f1"], o["frame_f1_reference"])
    if all("basic_pitch" in r for r in rows):
        g_on, r_on = mean("basic_pitch", "generated", "onset_f1"), mean("basic_pitch", "reference", "onset_f1")
        g_fr, r_fr = mean("basic_pitch", "generated", "frame_f1"), mean("basic_pitch", "reference", "frame_f1")
        o["basic_pitch"] = {"onset_f1": g_on, "onset_f1_reference": r_on, "onset_f1_of_ceiling": _of(g_on, r_on),
                            "frame_f1": g_fr, "frame_f1_reference": r_fr, "frame_f1_of_ceiling": _of(g_fr, r_fr),
                            "lowest_onset_f1_of_ceiling": min(r["basic_pitch"]["onset_f1_of_ceiling"] for r in rows)}
    return o


def suite_sketches(folder: str | Path) -> list[Path]:
    """The 88-key texts of a sketch suite folder (data/sketches/), in name order."""
    paths = sorted(Path(folder).glob("*.txt"))
    if not paths:
        raise WavegenError(f"{folder}: no sketches (*.txt) here; give --sketches a folder of 88-key texts "
                           "(the suite is data/sketches/ in wavegen's repository), or --sketches none")
    return paths


def evaluate(loaded: Loaded, ds: dataset.Dataset, out_dir: str | Path, *, split: str = "test", pieces: int = 5,
             seconds: float = 15.0, seed: int = 0, temperature: float = 1.0, min_p: float = 0.0,
             sketches: str | Path | None = None, corpus: str | None = None, timbre: str | None = None,
             denoise: float = denoising.DEFAULT_DEPTH_DB, progress: Callable[[str], None] | None = None) -> dict:
    """Evaluate `loaded` on up to `pieces` held-out pieces of `ds` (only those of `corpus`, given one: the
    style its items carry, e.g. bach in a dataset built from several corpora) and, given a folder of `sketches` (the
    suite in data/sketches/), on each sketch of it, rendered by the dataset's SoundFont for the reference;
    writes PNGs and WAVs into out_dir. In a dataset of several timbres, one is measured (`pick_timbre`): its
    items, its SoundFont for the references, and the model asked for it when it knows timbres. Each take is
    measured as `wavegen generate` writes it: denoised by its notes by `denoise` dB (0: as the network
    played it)."""
    from wavegen.notes import text as T
    from wavegen.notes.render import render_notes

    machine.keep_freed_memory()  # the validation forwards' activations stay mapped (wavegen/machine.py)
    t0 = time.perf_counter()
    say = progress or (lambda m: None)
    sr = loaded.sample_rate_hz
    loaded.check_ticks(ds.tick_ms, str(ds.root), ds.sample_rate_hz)
    timbre, soundfont = pick_timbre(loaded, ds, timbre)
    timbre_id = loaded.timbre_index(timbre) if loaded.timbres else None
    of_timbre = timbre if ds.manifest.get("timbres") else None

    def originals(part: str, of: str | None = corpus) -> dataset.Items:  # read when played, not all at once
        return ds.items_of(ds.select(part, style=of, transpose=0, timbre=of_timbre))

    held_out = originals(split)
    if not held_out:
        if corpus is not None:
            styles = ", ".join(ds.styles(split)) or "none"
            raise WavegenError(f"{ds.root}: no pieces of {corpus} in the {split!r} split (its corpora: {styles}); "
                               "give --corpus one of them")
        raise WavegenError(f"{ds.root}: no pieces in the {split!r} split")
    suite = suite_sketches(sketches) if sketches is not None else []
    texts = [T.read_file(p) for p in suite]
    for path, kt in zip(suite, texts):
        loaded.check_ticks(kt.tick_ms, str(path))
    chosen = held_out[:pieces]
    out = check_output_dir(out_dir)
    n = int(seconds * sr)

    say("calibrating the transcriber on reference renderings of training pieces")
    examples = []
    for it in (originals("train") or originals("train", None))[:3]:
        audio = from_int16(np.asarray(ds.audio(it)[:n]))
        examples.append((audio, clip_notes(ds.text(it).notes(), len(audio) / sr)))
    transcriber = transcribe.build(sr, examples, soundfont=soundfont)
    if not basicpitch.available():
        say(f"warning: {basicpitch.NAME} is not installed: one transcriber only ({basicpitch.INSTALL})")

    say("validation loss and shuffled-notes gap")
    mc = loaded.config.model
    n_crops = max(4, 2 * len(chosen))
    held = HeldOut.of(heldout.crops(ds, split, mc, loaded.config.data.crop_samples, styles=loaded.styles,
                                    timbres=loaded.timbres, corpus=corpus, timbre=of_timbre,
                                    default_velocity=loaded.model.default_velocity), n_crops)
    measured = held.measure(loaded.model)

    def generate(sketch, length: int, header_style: str | None, name: str,
                 velocity: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        t_gen = time.perf_counter()
        style = loaded.style_index(None, header_style, lambda m: say(f"warning: {name}: {m}"))
        audio = play(loaded.model, length, sample_rate_hz=sr, sketch=sketch, seed=seed, temperature=temperature,
                     min_p=min_p, style=style, velocity=velocity, timbre=timbre_id)[0]
        took = time.perf_counter() - t_gen  # the network's time, as `wavegen generate` prints it
        if loaded.model.uses_notes:
            audio = denoising.denoise(audio, sr, sketch.notes(), denoise, loaded.timbre_played(timbre))
        return audio, took

    title = f"generated by {loaded.path.name}"
    rows = []
    for i, it in enumerate(chosen):
        say(f"piece {i + 1}/{len(chosen)}: {it.id}")
        sketch = ds.text(it)
        reference = from_int16(np.asarray(ds.audio(it)[:n]))
        generated, gen_s = generate(sketch, len(reference), it.style, it.id, ds.velocity(it))
        notes = clip_notes(sketch.notes(), len(reference) / sr)
        rows.append({**measure_clip(it.id, generated, reference, notes, sr, transcriber, out, f"{it.id}: {title}"),
                     "generation_seconds": gen_s})
    suite_rows = []
    for i, (path, kt) in enumerate(zip(suite, texts)):
        say(f"sketch {i + 1}/{len(suite)}: {path.stem}")
        notes = kt.notes()
        reference = render_notes(notes, sample_rate_hz=sr, soundfont=soundfont).audio
        generated, gen_s = generate(kt, len(reference), kt.meta.get("style"), path.stem)
        suite_rows.append({**measure_clip(path.stem, generated, reference, clip_notes(notes, len(reference) / sr), sr,
                                          transcriber, out, f"{path.stem}: {title}"), "generation_seconds": gen_s})

    report = {
        "checkpoint": str(loaded.path), "step": loaded.meta.get("step"), "dataset": str(ds.root), "split": split,
        "corpus": corpus, **({"timbre": timbre} if timbre else {}),
        "seconds_per_piece": seconds, "seed": seed, "temperature": temperature, "min_p": min_p,
        "denoise_db": denoise if loaded.model.uses_notes else 0.0,
        "transcriber_threshold": transcriber.threshold,
        "transcribers": ["wavegen"] + ([basicpitch.NAME] if basicpitch.available() else []),
        "overall": {**measured, **summarize(rows)}, "pieces": rows, "wall_seconds": 0.0,
    }
    if suite_rows:
        report["suite"] = {"folder": str(sketches), "overall": summarize(suite_rows), "sketches": suite_rows}
    report["wall_seconds"] = time.perf_counter() - t0
    return report


def pick_timbre(loaded: Loaded, ds: dataset.Dataset, timbre: str | None) -> tuple[str | None, str | None]:
    """(timbre, its SoundFont) an evaluation measures: `timbre` if given (one the dataset has, and the model
    too when it learned several), else the model's first timbre the dataset has, else the one of the
    dataset's SoundFonts the model was trained on (the dataset's first if none is). A dataset of one SoundFont: its timbre when the
    model knows it (so that it plays that harpsichord), else None, and the dataset's SoundFont."""
    from wavegen.notes.render import timbre_name

    rendered = ds.manifest.get("timbres") or {}
    if not rendered:
        if timbre is not None:
            raise WavegenError(f"--timbre {timbre}: {ds.root} was rendered with one SoundFont; leave --timbre out")
        soundfont = ds.manifest.get("soundfont") or None
        name = timbre_name(soundfont) if soundfont else None
        return (name if name in loaded.timbres else None), soundfont
    if timbre is None:
        trained = (loaded.meta.get("dataset") or {}).get("soundfont_sha256")
        known = [name for name in loaded.timbres if name in rendered]
        timbre = (known[0] if known else
                  next((name for name, t in rendered.items() if t["soundfont_sha256"] == trained), next(iter(rendered))))
    if timbre not in rendered:
        raise WavegenError(f"--timbre {timbre}: {ds.root} has the timbres {', '.join(rendered)}")
    if loaded.timbres:
        loaded.timbre_index(timbre)  # the model must know it too
    return timbre, rendered[timbre]["soundfont"]


def _table(rows: list[dict], o: dict, name: str) -> list[str]:
    """Per clip and overall: both transcribers' onset F1 against their ceilings, frame F1, the sound."""
    bp = "basic_pitch" in o
    head = (f"| {name} | onset F1 | (reference) | of ceiling |" + (" basic-pitch onset F1 | (reference) | of ceiling |"
            if bp else "") + " frame F1 of ceiling | noise floor dB | off-notes dB | quietest s dB | whistles s | log-mel |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def cells(g: dict, ref: dict, of: float, b: dict | None, frame_of: float, snd: dict, mel: float, bold: bool) -> str:
        w = (lambda x: f"**{x}**") if bold else (lambda x: x)
        out = f" {g['onset_f1']:.3f} | {ref['onset_f1']:.3f} | {w(f'{of:.2f}')} |"
        if bp:
            bof = f"{b['onset_f1_of_ceiling']:.2f}"
            out += f" {b['onset_f1']:.3f} | {b['onset_f1_reference']:.3f} | {w(bof)} |"
        return out + (f" {frame_of:.2f} | {snd['noise_floor_db']:+.1f} | {snd['off_partial_db']:+.1f} | "
                      f"{snd['quietest_second_db']:+.1f} | {snd['whistle_seconds']:.2f} | {mel:.3f} |")

    for r in rows:
        b = r.get("basic_pitch")
        bcell = {"onset_f1": b["generated"]["onset_f1"], "onset_f1_reference": b["reference"]["onset_f1"],
                 "onset_f1_of_ceiling": b["onset_f1_of_ceiling"]} if b else None
        lines.append(f"| {r['piece']} |" + cells(r["generated"], r["reference"], r["onset_f1_of_ceiling"], bcell,
                                                 r["frame_f1_of_ceiling"], r["sound"], r["log_mel_distance"], False))
    lines.append("| **all** |" + cells({"onset_f1": o["onset_f1"]}, {"onset_f1": o["onset_f1_reference"]},
                                       o["onset_f1_of_ceiling"], o.get("basic_pitch"), o["frame_f1_of_ceiling"],
                                       o, o["log_mel_distance"], True))
    return lines


def _excess(o: dict) -> str:
    if "noise_floor_excess_db" not in o:  # a report written before it was measured
        return ""
    return (f" Noise floor above the reference's, a clip under its reference counting 0: "
            f"{o['noise_floor_excess_db']:+.1f} dB (the mean of the column below: {o['noise_floor_db']:+.1f} dB).")


def markdown(report: dict) -> str:
    o = report["overall"]
    lines = [
        f"# Evaluation of {report['checkpoint']} (step {report['step']})",
        "",
        f"Split `{report['split']}` of `{report['dataset']}`"
        f"{f' (its {corpus} pieces only)' if (corpus := report.get('corpus')) else ''}, first {report['seconds_per_piece']:g} s of each piece, "
        f"seed {report['seed']}, temperature {report.get('temperature', 1.0):g}, min-p {report.get('min_p', 0.0):g}, "
        f"denoised by {report.get('denoise_db', 0.0):g} dB (0 = as the network played). "
        f"Transcribers: {', '.join(report.get('transcribers', ['wavegen']))}; each score's ceiling is the same "
        "transcriber on the reference rendering. Sound: noise floor, power off the notes and the quietest second "
        "in dB against the reference (0 = as clean), whistles in seconds (see wavegen/evaluate/sound.py).",
        "",
        f"Validation loss {o['valid_bits']:.3f} bits/sample; with another piece's notes {o['shuffled_bits']:.3f}; "
        f"**shuffled-notes gap {o['gap_bits']:.3f} bits/sample**.",
        "",
        f"Stability of the generated clips: {o['clicks']} clicks (the reference renderings: "
        f"{o.get('reference_clicks', '-')}), {o['silent_seconds']} silent seconds, {o['runaway_seconds']} "
        f"runaway seconds; {o.get('jumps', '-')} jumps of more than half full scale between neighbouring "
        f"samples (the reference renderings: {o.get('reference_jumps', '-')}); whistles "
        f"{o.get('whistle_percent', 0.0):.2f} % of the time.{_excess(o)}",
        "",
        "## Held-out chorales",
        "",
        *_table(report["pieces"], o, "piece"),
    ]
    if "suite" in report:
        so = report["suite"]["overall"]
        lines += ["", f"## The sketch suite (`{report['suite']['folder']}`)", "",
                  f"Each sketch whole, with its release tail; whistles {so['whistle_percent']:.2f} % of the time, "
                  f"{so['clicks']} clicks (the references: {so['reference_clicks']}); the lowest sketch scores "
                  f"{so['lowest_onset_f1_of_ceiling']:.2f} of its ceiling"
                  + (f" (basic-pitch: {so['basic_pitch']['lowest_onset_f1_of_ceiling']:.2f})." if "basic_pitch" in so
                     else ".") + _excess(so), "", *_table(report["suite"]["sketches"], so, "sketch")]
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

    def summary(self) -> str:
        """What `wavegen evaluate` prints: the Markdown report, then where it and its files are."""
        return (f"{self.markdown}wrote {self.json_path}, {self.markdown_path} and pictures and clips in "
                f"{self.pieces_dir}/ ({self.wall_seconds:.0f} s)")


def evaluate_to(output: str | Path, *, model: str | None = None, data: str | Path, split: str = "test",
                pieces: int = 5, seconds: float = 15.0, seed: int = 0, temperature: float | None = None,
                min_p: float | None = None, sketches: str | Path | None = None, corpus: str | None = None,
                timbre: str | None = None, denoise: float | None = None,
                progress: Callable[[str], None] | None = None) -> Written:
    """`wavegen evaluate`: evaluate `model` (default the shipped one) on the dataset `data` with its own
    sampling unless given, and write REPORT.json, REPORT.md and REPORT-pieces/ (pictures, clips)."""
    from wavegen.nn import checkpoint

    denoise = denoising.DEFAULT_DEPTH_DB if denoise is None else denoise
    denoising.check_depth(denoise)
    if pieces <= 0:
        raise WavegenError(f"--pieces {pieces}: must be positive")
    check_duration(seconds, "--seconds")
    report_path = Path(output)
    if report_path.suffix.lower() != ".json":
        raise WavegenError(f"{report_path}: the report must end in .json (a .md table is written beside it)")
    for path in (report_path, report_path.with_suffix(".md")):
        check_output(path)
    if sketches is not None and str(sketches).lower() == "none":
        sketches = None
    if sketches is not None:
        suite_sketches(sketches)  # before the model loads: the folder holds sketches
    loaded = checkpoint.load(model)
    sampling = loaded.sampling(temperature, min_p)
    out_dir = report_path.with_name(report_path.stem + "-pieces")
    report = evaluate(loaded, dataset.load(data), out_dir, split=split, pieces=pieces, seconds=seconds, seed=seed,
                      sketches=sketches, corpus=corpus, timbre=timbre, denoise=denoise, **sampling, progress=progress)
    json_path, md_path = write_report(report, report_path)
    return Written(json_path, md_path, out_dir, md_path.read_text(), report["wall_seconds"])
